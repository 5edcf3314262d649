"""Collectives on Python values, NumPy arrays and DistributedArrays, with
non-zero roots and sub-group communicators, in real jobs of 1 to 5
localities; every result is checked against what the script computes by
itself from the values each locality contributed."""

import pytest

COLLECTIVES = r"""
import functools
import math
import operator
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, truth, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())
last = n - 1
everyone = range(n)

# --- all_reduce: Python scalars ---------------------------------------------
r = hpx.all_reduce(me + 1)
equal("all_reduce int", (r, type(r)), (n * (n + 1) // 2, int))
r = hpx.all_reduce(0.5 * me + 0.25)
equal("all_reduce float type", type(r), float)
check("all_reduce float", r, sum(0.5 * i + 0.25 for i in everyone))
equal("all_reduce prod", hpx.all_reduce(me + 2, op="prod"), math.prod(i + 2 for i in everyone))
equal("all_reduce min", hpx.all_reduce(10 - me, op="min"), 10 - last)
equal("all_reduce max", hpx.all_reduce((me * 7) % 5, op="max"), max((i * 7) % 5 for i in everyone))
check("all_reduce float max", hpx.all_reduce(-1.5 * me, op="max"), 0.0)
equal("all_reduce bitwise_or", hpx.all_reduce(1 << me, op="bitwise_or"), (1 << n) - 1)
equal("all_reduce bitwise_and", hpx.all_reduce(0xFF ^ (1 << me), op="bitwise_and"),
      functools.reduce(operator.and_, [0xFF ^ (1 << i) for i in everyone]))
equal("all_reduce bitwise_xor", hpx.all_reduce(me * 3 + 1, op="bitwise_xor"),
      functools.reduce(operator.xor, [i * 3 + 1 for i in everyone]))
equal("all_reduce negative ints", hpx.all_reduce(-(me + 1) * 10**12), -10**12 * n * (n + 1) // 2)
equal("all_reduce of a bool counts", int(hpx.all_reduce(me % 2 == 0)), len(range(0, n, 2)))
# A plain number and an array of one element are the same call: they mix.
r = hpx.all_reduce(0.5 * me if me % 2 else np.array([0.5 * me]))
check("all_reduce float mixed with arrays", float(np.asarray(r).reshape(-1)[0]),
      sum(0.5 * i for i in everyone))
r = hpx.all_reduce(me if me % 2 == 0 else np.array(me, dtype=np.int64), op="max")
equal("all_reduce int mixed with 0-d arrays", int(r), last)
r = hpx.reduce(float(me), root=last)
check("reduce float to the last", r if me == last else 0.0, sum(map(float, everyone)) if me == last else 0.0)
equal("reduce float elsewhere is None", r is None, me != last)
r = hpx.exclusive_scan(1.5)
equal("exclusive_scan float", (r, type(r)), (1.5 * me, float))

# --- all_reduce: NumPy arrays, element by element ----------------------------
def contribution(i, dt, shape=(4,)):
    base = np.array([i, 2 * i + 1, 3, (i * 5) % 7], dtype=np.int64)
    return np.resize(base, shape).astype(dt)


for dt in ("int64", "int32", "uint64", "uint32", "uint8", "float64", "float32"):
    mine = contribution(me, dt)
    stack = np.stack([contribution(i, dt) for i in everyone])
    for op, ref in (("sum", np.sum), ("prod", np.prod), ("min", np.min), ("max", np.max)):
        got = hpx.all_reduce(mine, op=op)
        truth(f"all_reduce {dt} {op} gives an array", isinstance(got, np.ndarray), repr(got))
        check(f"all_reduce {dt} {op}", got, ref(stack, axis=0).astype(dt), dtype=True)
    if dt[0] in "iu":
        for op, f in (("bitwise_and", np.bitwise_and), ("bitwise_or", np.bitwise_or),
                      ("bitwise_xor", np.bitwise_xor)):
            check(f"all_reduce {dt} {op}", hpx.all_reduce(mine, op=op),
                  f.reduce(stack, axis=0).astype(dt), dtype=True)
    got = hpx.all_reduce(np.float64(me) if dt == "float64" else mine[0])
    check(f"all_reduce NumPy scalar {dt}", got, stack[:, 0].sum().astype(dt))
m2 = (np.arange(6).reshape(2, 3) * (me + 1)).astype(np.float64)
check("all_reduce 2-d array keeps its shape", hpx.all_reduce(m2),
      np.arange(6).reshape(2, 3) * sum(i + 1 for i in everyone))
big = np.full(100_000, me + 1.0)
check("all_reduce of 100k elements", hpx.all_reduce(big), np.full(100_000, n * (n + 1) / 2))

# --- all_reduce: a DistributedArray reduces all its elements ------------------
arr = hpx.arange(1000, distribution="block")
equal("all_reduce(DistributedArray)", int(hpx.all_reduce(arr)), 499500)
equal("all_reduce(DistributedArray, max)", int(hpx.all_reduce(arr, op="max")), 999)
equal("all_reduce(DistributedArray, min)", int(hpx.all_reduce(arr, op="min")), 0)
check("all_reduce(DistributedArray, prod)",
      hpx.all_reduce(hpx.full(10, 2.0, distribution="cyclic"), op="prod"), 1024.0)

# --- reduce to a root ----------------------------------------------------------
for root in sorted({0, last, n // 2}):
    got = hpx.reduce(me + 1, root=root)
    equal(f"reduce root={root}", got, n * (n + 1) // 2 if me == root else None)
    got = hpx.reduce(np.array([me, -me], np.int32), op="min", root=root)
    check(f"reduce array min root={root}", got,
          np.array([0, -last], np.int32) if me == root else None, dtype=True)
    got = hpx.reduce(float(me), op="max", root=root)
    equal(f"reduce max root={root}", got, float(last) if me == root else None)
    got = hpx.reduce(1 << me, op="bitwise_or", root=root)
    equal(f"reduce bitwise_or root={root}", got, (1 << n) - 1 if me == root else None)

# --- scans ---------------------------------------------------------------------
equal("inclusive_scan sum", hpx.inclusive_scan(me + 1), sum(i + 1 for i in range(me + 1)))
equal("inclusive_scan prod", hpx.inclusive_scan(me + 2, op="prod"),
      math.prod(i + 2 for i in range(me + 1)))
equal("inclusive_scan max", hpx.inclusive_scan((me * 7) % 5, op="max"),
      max((i * 7) % 5 for i in range(me + 1)))
equal("inclusive_scan min", hpx.inclusive_scan(10 - me, op="min"), 10 - me)
equal("exclusive_scan sum", hpx.exclusive_scan(me + 1), sum(i + 1 for i in range(me)))
equal("exclusive_scan prod", hpx.exclusive_scan(me + 2, op="prod"),
      math.prod(i + 2 for i in range(me)))
equal("exclusive_scan max", hpx.exclusive_scan((me * 7) % 5, op="max"),
      None if me == 0 else max((i * 7) % 5 for i in range(me)))
v = np.array([me, 1.5, -me], np.float64)
check("inclusive_scan array", hpx.inclusive_scan(v),
      np.sum([[i, 1.5, -i] for i in range(me + 1)], axis=0))
check("exclusive_scan array", hpx.exclusive_scan(v),
      np.sum([[i, 1.5, -i] for i in range(me)] or [[0, 0, 0]], axis=0))
check("inclusive_scan bitwise_xor", hpx.inclusive_scan(me * 3 + 1, op="bitwise_xor"),
      functools.reduce(operator.xor, [i * 3 + 1 for i in range(me + 1)]))

# --- broadcast -----------------------------------------------------------------
for root in sorted({0, last, n // 2}):
    value = {"from": me, "list": [me] * 3, "array": np.arange(5) * me, "text": "é" * me}
    got = hpx.broadcast(value if me == root else None, root=root)
    equal(f"broadcast dict root={root}", (got["from"], got["list"], got["text"]),
          (root, [root] * 3, "é" * root))
    check(f"broadcast array inside root={root}", got["array"], np.arange(5) * root)
    got = hpx.broadcast(np.full((300, 300), root + 0.5, np.float32) if me == root else None,
                        root=root)
    check(f"broadcast big array root={root}", got, np.full((300, 300), root + 0.5, np.float32),
          dtype=True)
    equal(f"broadcast None root={root}", hpx.broadcast(None, root=root), None)
    equal(f"broadcast int root={root}", hpx.broadcast(me * 11, root=root), root * 11)
shared = hpx.broadcast(arr if me == last else None, root=last)
check("broadcast of the root's DistributedArray", shared.to_numpy(), arr.to_numpy())
equal("the root gets its own object back", shared is arr if me == last else True, True)
truth("the others get a handle to the same array", shared.is_distributed == arr.is_distributed
      and shared.partition_sizes == arr.partition_sizes, repr(shared))
same = hpx.broadcast(arr, root=last)
equal("every locality that passes the array gets its own object back", same is arr, True)
other = hpx.arange(7, dtype="int64")
got = hpx.broadcast(other if me == last else arr, root=last)
equal("a locality that passed another array gets the root's", got is (other if me == last else arr),
      me == last)
check("... with the root's elements", got.to_numpy(), np.arange(7))

# --- gather / all_gather -----------------------------------------------------------
for root in sorted({0, last}):
    got = hpx.gather(me * 10, root=root)
    equal(f"gather ints root={root}", got, [i * 10 for i in everyone] if me == root else None)
    got = hpx.gather(np.arange(me), root=root)
    if me == root:
        equal(f"gather arrays of different sizes root={root}", [g.tolist() for g in got],
              [list(range(i)) for i in everyone])
    else:
        equal(f"gather arrays root={root} elsewhere", got, None)
    x = np.arange(57) * 0.5
    got = hpx.gather(hpx.from_numpy(x, distribution="cyclic"), root=root)
    check(f"gather DistributedArray root={root}", got, x if me == root else None)
equal("all_gather tuples", hpx.all_gather(("loc", me)), [("loc", i) for i in everyone])
got = hpx.all_gather(np.full(me + 1, me, np.int32))
equal("all_gather arrays", [g.tolist() for g in got], [[i] * (i + 1) for i in everyone])
equal("all_gather None", hpx.all_gather(None), [None] * n)

# --- scatter -------------------------------------------------------------------------
for root in sorted({0, last}):
    got = hpx.scatter([f"item{i}" for i in everyone] if me == root else None, root=root)
    equal(f"scatter list root={root}", got, f"item{me}")
    x = np.arange(10 * 3).reshape(10, 3)
    got = hpx.scatter(x if me == root else None, root=root)
    check(f"scatter array_split root={root}", got, np.array_split(x, n)[me], dtype=True)
    got = hpx.scatter(tuple({"i": i} for i in everyone) if me == root else None, root=root)
    equal(f"scatter tuple root={root}", got, {"i": me})
x = np.arange(103, dtype=np.float64)
a = hpx.from_numpy(x, distribution="block")
lo = sum(a.partition_sizes[:me])
check("scatter(block DistributedArray) gives this locality's block", hpx.scatter(a),
      x[lo: lo + a.partition_sizes[me]])
c = hpx.from_numpy(x, distribution="cyclic")
check("scatter(cyclic DistributedArray) gives this locality's elements", hpx.scatter(c),
      x[me::n])

# --- all_to_all --------------------------------------------------------------------
equal("all_to_all", hpx.all_to_all([(me, j) for j in everyone]), [(i, me) for i in everyone])
got = hpx.all_to_all([np.full(j + 1, me) for j in everyone])
equal("all_to_all arrays", [g.tolist() for g in got], [[i] * (me + 1) for i in everyone])

# --- barrier -----------------------------------------------------------------------
for _ in range(20):
    hpx.barrier()

# --- Communicator: the whole job and sub-groups ---------------------------------------
world = hpx.Communicator()
equal("world rank/size/localities", (world.rank, world.size, world.localities),
      (me, n, list(everyone)))
equal("world all_reduce", world.all_reduce(me), sum(everyone))
equal("comm= keyword", hpx.all_reduce(me, comm=world), sum(everyone))

evens, odds = list(range(0, n, 2)), list(range(1, n, 2))
group = evens if me % 2 == 0 else odds
name = "even" if me % 2 == 0 else "odd"
c = hpx.Communicator(name, group)
equal(f"{name} rank", c.rank, group.index(me))
equal(f"{name} size", c.size, len(group))
equal(f"{name} localities", c.localities, group)
for rep in range(2):     # the two groups run at the same time, twice
    equal(f"{name} all_reduce", c.all_reduce(me), sum(group))
    equal(f"{name} all_reduce max", hpx.all_reduce(me, op="max", comm=c), max(group))
    root = c.size - 1
    equal(f"{name} reduce to the last rank", c.reduce(me, root=root),
          sum(group) if c.rank == root else None)
    equal(f"{name} broadcast from the last rank", c.broadcast(me, root=root), group[-1])
    equal(f"{name} gather", c.gather(me * 2, root=0), [g * 2 for g in group] if c.rank == 0 else None)
    equal(f"{name} all_gather", hpx.all_gather(me, comm=c), group)
    equal(f"{name} scatter", c.scatter([g + 100 for g in group] if c.rank == root else None,
                                       root=root), me + 100)
    equal(f"{name} all_to_all", c.all_to_all([(me, g) for g in group]), [(g, me) for g in group])
    equal(f"{name} inclusive_scan", c.inclusive_scan(me), sum(group[: c.rank + 1]))
    equal(f"{name} exclusive_scan", c.exclusive_scan(me), sum(group[: c.rank]))
    c.barrier()
    hpx.barrier(comm=c)
# Members listed in another order: ranks follow the list.
rev = hpx.Communicator("reversed", list(reversed(everyone)))
equal("reversed rank", rev.rank, last - me)
equal("reversed all_gather by rank", rev.all_gather(me), list(reversed(everyone)))
equal("reversed broadcast root rank 0 is the last locality", rev.broadcast(me, root=0), last)
# A group of one per locality (different names).
solo = hpx.Communicator(f"solo{me}", [me])
equal("solo", (solo.rank, solo.size, solo.all_reduce(me + 5), solo.all_gather("x")),
      (0, 1, me + 5, ["x"]))
# --- reductions into out= (mpi4py's receive buffer) ---------------------------
from _jobkit import raises
for dt in ("float64", "int32", "uint8"):
    for shape in ((5,), (3, 4), (0,), (1 << 17,)):
        x = (np.arange(int(np.prod(shape))) % 7 + me).astype(dt).reshape(shape)
        total = sum((np.arange(int(np.prod(shape))) % 7 + i).astype(dt).reshape(shape)
                    for i in everyone).astype(dt)
        for rep in range(2):  # out is overwritten each time
            out = np.full(shape, 99, dtype=dt)
            got = hpx.all_reduce(x + rep, out=out)
            truth(f"all_reduce out {dt} {shape} {rep} is out", got is out)
            check(f"all_reduce out {dt} {shape} {rep}", out, (total + n * rep).astype(dt),
                  dtype=True)
        out = np.zeros(shape, dtype=dt)
        got = hpx.reduce(x, op="max", root=last, out=out)
        if me == last:
            truth(f"reduce out {dt} {shape} is out", got is out)
            check(f"reduce out {dt} {shape}", out,
                  np.maximum.reduce([(np.arange(int(np.prod(shape))) % 7 + i).astype(dt)
                                     for i in everyone]).reshape(shape), dtype=True)
        else:
            truth(f"reduce out {dt} {shape} elsewhere is None", got is None)
        out = np.zeros(shape, dtype=dt)
        hpx.inclusive_scan(x, out=out)
        check(f"inclusive_scan out {dt} {shape}", out,
              sum((np.arange(int(np.prod(shape))) % 7 + i).astype(dt).reshape(shape)
                  for i in range(me + 1)).astype(dt), dtype=True)
        out = np.full(shape, 5, dtype=dt)
        hpx.exclusive_scan(x, out=out)
        check(f"exclusive_scan out {dt} {shape}", out,
              sum((np.arange(int(np.prod(shape))) % 7 + i).astype(dt).reshape(shape)
                  for i in range(me)) + np.zeros(shape, dtype=dt) if me else np.zeros(shape, dt),
              dtype=False)
v = np.ones(6)
raises("out of another shape", (hpx.HPXValueError,), lambda: hpx.all_reduce(v, out=np.ones(5)))
raises("out of another dtype", (hpx.HPXValueError,),
       lambda: hpx.all_reduce(v, out=np.ones(6, dtype="float32")))
raises("out not contiguous", (hpx.HPXValueError,),
       lambda: hpx.all_reduce(v, out=np.ones(12)[::2]))
raises("out with a number", (hpx.HPXValueError,), lambda: hpx.all_reduce(1.5, out=np.ones(1)))
# The world still works after the groups.
equal("world after groups", hpx.all_reduce(1), n)
hpx.barrier()
done("collectives")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_collectives(run_job, n):
    run_job(n, COLLECTIVES, args=(n,)).assert_done("collectives")

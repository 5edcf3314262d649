"""HPXPy phase 4: distributed operations.

Collectives, element-wise math and reductions on distributed arrays,
collectives on NumPy arrays and Python values, a sub-group Communicator
and for_each. Every result is checked against NumPy.

    python3 python/examples/seed_phase4.py
    python -m hpxpy.run -l 4 python/examples/seed_phase4.py

SPMD rule: every locality makes the same collective calls (and the same
array-making calls) in the same order; reads such as to_numpy() may be
made by any locality alone.
"""

import numpy as np

import hpxpy as hpx

me = hpx.get_locality_id()
n = hpx.get_num_localities()
assert 0 <= me < n


def job_fact(*args):
    if me == 0:
        print(*args, flush=True)


job_fact(f"phase 4 on {n} localities")

# Every locality builds the same reference data with NumPy.
N = 10_007  # not a multiple of the locality count: uneven partitions
x = np.linspace(-1.0, 3.0, N)
y = np.cos(np.arange(N, dtype=np.float64))

a = hpx.from_numpy(x, distribution='block')
b = hpx.from_numpy(y, distribution='block')

# --- collectives on a DistributedArray ---------------------------------------
total = hpx.all_reduce(a, op='sum')  # the sum of all elements, everywhere
assert np.isclose(total, x.sum()), (total, x.sum())
assert hpx.all_reduce(a, op='max') == x.max()
job_fact("all_reduce(a, op='sum') =", total)

same = hpx.broadcast(a, root=0)  # already shared by all: each locality gets its own a back
assert same is a

full = hpx.gather(a, root=0)  # the root gets every element, others None
if me == 0:
    assert isinstance(full, np.ndarray) and np.array_equal(full, x)
    print("gather(a, root=0) on the root:", type(full).__name__, full.shape, flush=True)
else:
    assert full is None

mine = hpx.scatter(a, root=0)  # a copy of this locality's own elements
offsets = a.local_offsets()  # [(first index,)] for the block this locality holds
start = offsets[0][0] if offsets and offsets[0] is not None else 0
assert np.array_equal(mine, x[start:start + mine.size])
sizes = hpx.all_gather(mine.size)
assert sum(sizes) == N
job_fact("scatter(a, root=0) sizes per locality:", sizes)

hpx.barrier()

# --- element-wise math and reductions (run where the data lives) -----------
c = a + b
assert np.allclose(c.to_numpy(), x + y)
d = a * 2.0
assert np.array_equal(d.to_numpy(), x * 2.0)
gt = a > b
assert gt.dtype == np.bool_ and np.array_equal(gt.to_numpy(), x > y)
s = hpx.sqrt(hpx.abs(a))
assert np.allclose(s.to_numpy(), np.sqrt(np.abs(x)))
assert np.isclose(a.sum(), x.sum())
assert np.isclose((a * b).sum(), np.dot(x, y))
assert a.min() == x.min() and a.argmax() == x.argmax()
assert gt.count_nonzero() == np.count_nonzero(x > y)
w = hpx.where(a > 0.0, a, 0.0)
assert np.array_equal(w.to_numpy(), np.where(x > 0.0, x, 0.0))
job_fact("a + b, a * 2.0, a > b, sqrt, sum, where: match NumPy;",
         f"(a > b).count_nonzero() = {gt.count_nonzero()}")

m_np = np.arange(6 * 5, dtype=np.float64).reshape(6, 5) ** 1.5
m = hpx.from_numpy(m_np, distribution='block')  # rows in blocks
col_means = m.mean(axis=0)
assert np.allclose(col_means, m_np.mean(axis=0))
assert np.allclose(m.sum(axis=1), m_np.sum(axis=1))
job_fact("m.mean(axis=0) =", np.round(col_means, 3))

ints = hpx.arange(1000, dtype="int64", distribution='cyclic')
assert ints.sum() == 499500 and ints.partition_sizes[0] == len(range(0, 1000, n))
assert np.array_equal(ints.cumsum().to_numpy(), np.cumsum(np.arange(1000)))

# --- collectives on NumPy arrays and Python values -------------------------
v = np.array([me, 1.0, -me], dtype=np.float64)
assert np.array_equal(hpx.all_reduce(v, op='sum'),
                      [sum(range(n)), n, -sum(range(n))])
assert np.array_equal(hpx.all_reduce(v, op='max'), [n - 1, 1.0, 0.0])
assert hpx.all_reduce(me + 1) == n * (n + 1) // 2  # a Python int stays an int
assert isinstance(hpx.all_reduce(me + 1), int)
assert hpx.all_reduce(0.5 * me, op='min') == 0.0
assert hpx.all_reduce(1 << me, op='bitwise_or') == (1 << n) - 1
r = hpx.reduce(me, op='sum', root=n - 1)
assert r == (sum(range(n)) if me == n - 1 else None)
assert hpx.inclusive_scan(1) == me + 1
assert hpx.exclusive_scan(1) == me

config = hpx.broadcast({"steps": 10, "name": "run-1"} if me == 0 else None, root=0)
assert config == {"steps": 10, "name": "run-1"}
arr = hpx.broadcast(np.arange(4.0) if me == 0 else None, root=0)
assert np.array_equal(arr, np.arange(4.0))
got = hpx.gather(f"hello from {me}", root=0)
assert got == ([f"hello from {i}" for i in range(n)] if me == 0 else None)
assert hpx.all_gather(me * me) == [i * i for i in range(n)]
item = hpx.scatter([f"item {i}" for i in range(n)] if me == 0 else None, root=0)
assert item == f"item {me}"
piece = hpx.scatter(np.arange(10) if me == 0 else None, root=0)  # as np.array_split
assert np.array_equal(piece, np.array_split(np.arange(10), n)[me])
back = hpx.all_to_all([(me, j) for j in range(n)])
assert back == [(i, me) for i in range(n)]
job_fact("collectives on NumPy arrays and Python values: OK; gather ->", got)

# --- a sub-group: the even localities ----------------------------------------
evens = list(range(0, n, 2))
if me in evens:  # only the members make (and use) the group
    comm = hpx.Communicator("evens", evens)
    assert comm.localities == evens and comm.size == len(evens)
    assert comm.rank == evens.index(me)
    assert comm.all_reduce(me) == sum(evens)
    assert hpx.all_gather(me, comm=comm) == evens
    assert comm.broadcast("from the last even" if comm.rank == comm.size - 1 else None,
                          root=comm.size - 1) == "from the last even"
    comm.barrier()
    if comm.rank == 0:
        print(f"sub-group {comm.localities}: all_reduce(id) = {comm.all_reduce(me)}",
              flush=True)
    else:
        comm.all_reduce(me)  # the same collective calls on every member
world = hpx.Communicator()
assert world.size == n and world.rank == me

# --- for_each: a function on every partition, where it lives -----------------
parts = hpx.zeros((N,), chunks=1000)  # more partitions than localities


def partition_sum(view):
    view += 1.0  # a writable, zero-copy view of the partition
    return float(view.sum())


sums = hpx.for_each(parts, partition_sum)  # collective; results in partition order
assert sums == [float(k) for k in parts.partition_sizes]
assert parts.sum() == N
job_fact("for_each partition sums:", sums)

job_fact("phase 4 OK")

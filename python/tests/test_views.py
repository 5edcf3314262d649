"""for_each on the owners' zero-copy views, and local arrays that share
memory with a NumPy array (from_numpy(x, copy=False))."""

import pytest

VIEWS = r"""
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, truth, raises, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())

# --- for_each: fn runs on every partition, where it lives ---------------------------
for kw in ({}, {"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": 7},
           {"num_partitions": 5}, {"distribution": "block_cyclic", "chunks": 4},
           {"chunks": (3, -1)}, {"chunks": (2, 2)}):
    shape = (11, 4) if isinstance(kw.get("chunks"), tuple) else (44,)
    x = np.arange(44, dtype=np.float64).reshape(shape)
    a = hpx.from_numpy(x, **kw)
    seen = []

    def visit(view):
        seen.append(view.size)
        return (hpx.get_locality_id(), view.size, float(view.sum()))

    got = hpx.for_each(a, visit)
    equal(f"for_each {kw}: one result per partition", len(got), a.num_partitions)
    equal(f"for_each {kw}: run where the partition lives", [g[0] for g in got], a.localities)
    equal(f"for_each {kw}: sizes", [g[1] for g in got], a.partition_sizes)
    check(f"for_each {kw}: partial sums add up", sum(g[2] for g in got), x.sum())
    equal(f"for_each {kw}: ran here on this locality's partitions only", sorted(seen),
          sorted(s for s, l in zip(a.partition_sizes, a.localities) if l == me))

    # fn changes its view in place: the array changes (zero copy).
    def double(view):
        view *= 2
        view += 1

    res = hpx.for_each(a, double)
    equal(f"for_each {kw}: results of a fn returning None", res, [None] * a.num_partitions)
    check(f"for_each {kw}: in-place changes seen everywhere", a.to_numpy(), x * 2 + 1)
    check(f"for_each {kw}: and by reductions", a.sum(), (x * 2 + 1).sum())
    hpx.barrier()

b = hpx.arange(10, dtype="int64", distribution="block")
equal("for_each with a picklable result", hpx.for_each(b, lambda v: v.tolist()),
      [np.array_split(np.arange(10), n)[i].tolist() for i in range(n)])

# --- from_numpy(x, copy=False): a local view sharing memory -------------------------
x = np.arange(12, dtype=np.float64)
v = hpx.from_numpy(x, copy=False)
equal("view is_view", v.is_view(), True)
equal("view is not distributed", (v.is_distributed, v.num_partitions, v.localities),
      (False, 1, [me]))
equal("view attributes", (v.shape, v.dtype, v.size, v.ndim, v.partition_sizes),
      ((12,), np.dtype(np.float64), 12, 1, [12]))
truth("view shares memory", np.shares_memory(v.local_partition, x))
x[3] = 100.0
equal("a change to the NumPy array shows in the view", float(v[3]), 100.0)
v[4] = -1.0
equal("a change through the view shows in the NumPy array", float(x[4]), -1.0)
v.local_partition[5] = 55.0
equal("local_partition of a view writes x", float(x[5]), 55.0)
check("view to_numpy", v.to_numpy(), x)
truth("to_numpy of a view is a copy", not np.shares_memory(v.to_numpy(), x))
check("view sum", v.sum(), x.sum())
check("view mean/min/max/argmax", (v.mean(), v.min(), v.max(), v.argmax()),
      (x.mean(), x.min(), x.max(), x.argmax()))
check("view arithmetic", (v * 2 + 1).to_numpy(), x * 2 + 1)
check("view functions", hpx.sqrt(abs(v)).to_numpy(), np.sqrt(np.abs(x)))
check("view comparison", (v > 5).to_numpy(), x > 5)
check("view cumsum", v.cumsum().to_numpy(), np.cumsum(x))
v.fill(2.0)
check("view fill writes x", x, np.full(12, 2.0))
# A view with a distributed array: NumPy semantics, local result.
d = hpx.arange(12, dtype="float64", distribution="cyclic")
check("view + distributed", (v + d).to_numpy(), x + np.arange(12))
# for_each on a view: the local view only.
equal("for_each on a view", hpx.for_each(v, lambda w: w.size), [12])
# A 2-d view; different data on each locality (views are local).
m = np.arange(6, dtype=np.int32).reshape(2, 3) + me
mv = hpx.from_numpy(m, copy=False)
check("2-d view sum", mv.sum(), m.sum())
check("2-d view sum axis 0", mv.sum(axis=0), m.sum(axis=0))
check("2-d view element", mv[1, 2], m[1, 2])
mv[0, 0] = 40
equal("2-d view write", int(m[0, 0]), 40)
# Views of every dtype.
for dt in hpx.DTYPES:
    y = np.ones(5, dtype=dt)
    w = hpx.from_numpy(y, copy=False)
    equal(f"view {dt}", (w.dtype, w.is_view(), np.shares_memory(w.local_partition, y)),
          (np.dtype(dt), True, True))
# copy=True (the default) does not share.
y = np.arange(5.0)
c = hpx.from_numpy(y)
y[0] = 99
equal("copy=True copies", float(c[0]), 0.0)
raises("copy=False of a list", (hpx.HPXValueError,), lambda: hpx.from_numpy([1, 2], copy=False),
       also=(ValueError,))
raises("copy=False cannot be distributed", (hpx.HPXValueError,),
       lambda: hpx.from_numpy(np.zeros(4), copy=False, distribution="block"), also=(ValueError,))
raises("copy=False with chunks", (hpx.HPXValueError,),
       lambda: hpx.from_numpy(np.zeros(4), copy=False, chunks=2), also=(ValueError,))
raises("copy=False of int16", (hpx.DTypeError,),
       lambda: hpx.from_numpy(np.zeros(4, np.int16), copy=False), also=(TypeError,))
raises("a view cannot be redistributed", (hpx.HPXValueError,),
       lambda: v.redistribute(distribution="block"), also=(ValueError,))
# A view keeps its partition alive after the array is dropped: new arrays
# do not take its memory, and writes through it touch nothing else.
import gc
kept = hpx.arange(5000, dtype="float64", distribution="block").local_partitions()
want = [k.copy() for k in kept]
gc.collect()
hpx.barrier()
others = [hpx.full(5000, -5.0, distribution="block") for _ in range(10)]
hpx.barrier()
equal("views outlive their array", all(np.array_equal(k, w) for k, w in zip(kept, want)), True)
for k in kept:
    k[:] = 123.0
hpx.barrier()
equal("writes through them touch no other array",
      all(bool((o.to_numpy() == -5.0).all()) for o in others), True)
hpx.barrier()
done("views")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_for_each_and_numpy_views(run_job, n):
    run_job(n, VIEWS, args=(n,)).assert_done("views")

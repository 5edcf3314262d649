"""HPXPy array costs beside NumPy, measured in one job.

(a) ``to_numpy()`` of a float64 array (64 MiB by default) that lives
    entirely on locality 1 (nothing of it on locality 0), timed on
    locality 0, beside ``np.copy`` of as many bytes in the same process
    (a memcpy baseline). On one locality the array is local.
(b) ``a + b`` and ``a.sum()`` of ``--n`` float64 (block distributed over
    all localities) beside NumPy's ``x + y`` and ``x.sum()`` on the same
    data in locality 0's process.

Figures: the median of ``--reps`` repetitions, as ms and GB/s (bytes
read and written: to_numpy/copy count the array once, a + b three arrays,
sum one), and the ratio hpxpy / NumPy (time).

    python3 python/bench/bench_arrays.py
    python -m hpxpy.run -l 2 python/bench/bench_arrays.py --n 10000000 --reps 7
"""

import argparse
import statistics
import time

import numpy as np

import hpxpy as hpx

me = hpx.get_locality_id()
nloc = hpx.get_num_localities()


def timed(fn, reps, collective):
    """The median seconds of ``reps`` calls of ``fn`` (after one warm-up).
    A collective ``fn`` is called by every locality, after a barrier; a
    local one by the caller alone."""
    times = []
    for i in range(reps + 1):
        if collective:
            hpx.barrier()
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        del out
        if i:
            times.append(dt)
    return statistics.median(times)


def row(what, seconds, nbytes, baseline=None):
    ratio = "" if baseline is None else f"{seconds / baseline:8.2f}x"
    print(f"  {what:<34} {seconds * 1e3:10.3f} ms {nbytes / seconds / 1e9:9.2f} GB/s  {ratio}",
          flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000_000, help="elements for a + b and sum")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions (median)")
    p.add_argument("--mib", type=int, default=64, help="MiB moved by to_numpy (part a)")
    args = p.parse_args()
    reps = max(1, args.reps)

    if me == 0:
        print(f"hpxpy {hpx.__version__}, numpy {np.__version__}: {nloc} localities, "
              f"median of {reps}", flush=True)
        print(f"  {'':<34} {'time':>13} {'rate':>14}  {'hpxpy/numpy':>9}", flush=True)

    # --- (a) gathering an array held by another locality -------------------
    m = args.mib * (1 << 20) // 8
    owner = 1 if nloc > 1 else 0
    remote = hpx.arange(m, dtype="float64", localities=[owner])
    assert remote.localities == [owner]
    if me == 0:
        t_gather = timed(remote.to_numpy, reps, collective=False)  # not collective
        check = remote.to_numpy()
        assert check[-1] == m - 1
        src = np.arange(m, dtype=np.float64)
        t_copy = timed(lambda: np.copy(src), reps, collective=False)
        where = f"on locality {owner}" if owner else "local: one locality"
        print(f"(a) {args.mib} MiB float64 ({where})", flush=True)
        row("np.copy (memcpy baseline)", t_copy, 8 * m)
        row("to_numpy()", t_gather, 8 * m, t_copy)
        del check, src
    hpx.barrier()  # the others wait (and serve) while locality 0 reads
    del remote

    # --- (b) element-wise add and sum, block distributed ---------------------
    n = args.n
    a = hpx.random.uniform(0.0, 1.0, size=(n,), seed=1, distribution="block")
    b = hpx.random.uniform(0.0, 1.0, size=(n,), seed=2, distribution="block")
    t_add = timed(lambda: a + b, reps, collective=True)
    t_sum = timed(a.sum, reps, collective=True)
    total = a.sum()
    if me == 0:
        x, y = a.to_numpy(), b.to_numpy()
        assert np.isclose(total, x.sum())
        t_np_add = timed(lambda: x + y, reps, collective=False)
        t_np_sum = timed(x.sum, reps, collective=False)
        print(f"(b) {n} float64, blocks {a.partition_sizes}", flush=True)
        row("numpy x + y", t_np_add, 24 * n)
        row("hpxpy a + b", t_add, 24 * n, t_np_add)
        row("numpy x.sum()", t_np_sum, 8 * n)
        row("hpxpy a.sum()", t_sum, 8 * n, t_np_sum)
    hpx.barrier()


if __name__ == "__main__":
    main()

"""The same SPMD work through hpxpy and through mpi4py + NumPy.

Run it once under each, with the same number of processes:

    python -m hpxpy.run -l 4 python/bench/vs_mpi4py.py hpx
    mpirun -np 4 python python/bench/vs_mpi4py.py mpi

(``bash python/bench/vs-mpi4py.sh`` does both for 2 and 4 processes and
prints one table of ratios.) Each case is what an mpi4py user writes with
its buffer calls, each process holding its block of the arrays as a NumPy
array, beside what the same user writes with hpxpy:

    barrier         hpx.barrier()                 comm.Barrier()
    allreduce1      hpx.all_reduce(1.0, op="sum") comm.Allreduce of 1 float64
    allreduce8M     hpx.all_reduce(ndarray 8 MiB) comm.Allreduce (8 MiB)
    arange          hpx.arange(n, dtype=float64,  np.arange of the block
                      distribution="block")
    sum             a.sum()                       block.sum() + Allreduce
    axpy            hpx.evaluate(a * 2.0 + b)     x * 2.0 + y
                      (the new array made: an expression is otherwise held)
    axpy_sum        (a * 2.0 + b).sum()           (x * 2.0 + y).sum() + Allreduce
    norm_max        hpx.sqrt(a*a + b*b).max()     np.sqrt(x*x + y*y).max() + Allreduce MAX
    center          hpx.evaluate(m - m.mean(axis=0))  column sums + Allreduce, then
                      (m: n/8 x 8, block rows;        the block minus the means
                      broadcasting a row)
    gather          hpx.gather(a, 0)              comm.Gatherv to rank 0
    to_numpy        a.to_numpy() everywhere       comm.Allgatherv

``--n`` float64 elements (default 2*10**7) in blocks over the processes
(hpxpy's arrays ``a = arange(n)`` and ``b = ones(n)`` with
``distribution="block"``).
A repetition's time is the slowest process's (each process times its own
calls; the maximum is taken afterwards, outside the timed span), and the
figure is the median of ``--reps`` repetitions after one warm-up, in
microseconds per call. Process 0 prints, flushed, one line per case:

    RESULT <case> <processes> <microseconds>
"""

import argparse
import statistics
import sys
import time

import numpy as np

CASES = ["barrier", "allreduce1", "allreduce8M", "arange", "sum", "axpy",
         "axpy_sum", "norm_max", "center", "gather", "to_numpy"]
# Columns of the matrix of the "center" case.
COLS = 8
# Calls per timed repetition: many for the small collectives, whose single
# call is shorter than the clock's noise.
CALLS = {"barrier": 2000, "allreduce1": 2000}


def check(name, got, n):
    """Ends the run if a reduction of ``a = arange(n)``, ``b = ones(n)``
    is wrong."""
    expect = {"sum": n * (n - 1) / 2, "axpy_sum": float(n * (n - 1) + n),
              "norm_max": float(np.sqrt((n - 1.0) ** 2 + 1.0))}
    if name in expect and abs(got - expect[name]) > 1e-9 * abs(expect[name]):
        sys.exit(f"{name}: got {got}, expected {expect[name]}")


class Hpx:
    """The cases through hpxpy."""

    def __init__(self, n):
        import hpxpy as hpx
        self.hpx = hpx
        self.rank = hpx.get_locality_id()
        self.size = hpx.get_num_localities()
        self.n = n
        # Block distribution, as the MPI side holds its blocks (hpxpy's
        # default puts an array on locality 0 alone).
        self.a = hpx.arange(n, dtype="float64", distribution="block")
        self.b = hpx.ones(n, dtype="float64", distribution="block")
        self.m = hpx.ones((n // COLS, COLS), dtype="float64", distribution="block")
        self.big = np.ones(1 << 20)

    def barrier(self):
        self.hpx.barrier()

    def slowest(self, seconds):
        return self.hpx.all_reduce(seconds, op="max")

    def case(self, name):
        hpx, a, b = self.hpx, self.a, self.b
        return {
            "barrier": hpx.barrier,
            "allreduce1": lambda: hpx.all_reduce(1.0, op="sum"),
            "allreduce8M": lambda: hpx.all_reduce(self.big, op="sum"),
            "arange": lambda: hpx.arange(self.n, dtype="float64", distribution="block"),
            "sum": a.sum,
            "axpy": lambda: hpx.evaluate(a * 2.0 + b),
            "axpy_sum": lambda: (a * 2.0 + b).sum(),
            "norm_max": lambda: hpx.sqrt(a * a + b * b).max(),
            "center": lambda: hpx.evaluate(self.m - self.m.mean(axis=0)),
            "gather": lambda: hpx.gather(a, 0),
            "to_numpy": a.to_numpy,
        }[name]


class Mpi:
    """The cases through mpi4py's buffer calls and NumPy."""

    def __init__(self, n):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.n = n
        # Blocks as hpxpy's block distribution makes them: the first
        # n % size blocks one element longer.
        base, extra = divmod(n, self.size)
        self.counts = [base + (r < extra) for r in range(self.size)]
        self.offsets = [sum(self.counts[:r]) for r in range(self.size)]
        lo = self.offsets[self.rank]
        self.lo, self.hi = lo, lo + self.counts[self.rank]
        self.x = np.arange(self.lo, self.hi, dtype="float64")
        self.y = np.ones(self.hi - self.lo)
        rows, extra = divmod(n // COLS, self.size)
        self.rows = n // COLS
        self.xm = np.ones((rows + (self.rank < extra), COLS))
        self.big = np.ones(1 << 20)
        self.big_out = np.empty_like(self.big)
        self.one = np.ones(1)
        self.one_out = np.empty(1)

    def barrier(self):
        self.comm.Barrier()

    def slowest(self, seconds):
        return self.comm.allreduce(seconds, op=self.MPI.MAX)

    def total(self, local, op=None):
        out = np.empty(1)
        self.comm.Allreduce(np.array([local]), out, op=op or self.MPI.SUM)
        return out[0]

    def gatherv(self):
        whole = np.empty(self.n) if self.rank == 0 else None
        spec = [whole, self.counts, self.offsets, self.MPI.DOUBLE] if whole is not None else None
        self.comm.Gatherv(self.x, spec, root=0)
        return whole

    def allgatherv(self):
        whole = np.empty(self.n)
        self.comm.Allgatherv(self.x, [whole, self.counts, self.offsets, self.MPI.DOUBLE])
        return whole

    def center(self):
        sums = np.empty(COLS)
        self.comm.Allreduce(self.xm.sum(axis=0), sums)
        return self.xm - sums / self.rows

    def case(self, name):
        comm, x, y = self.comm, self.x, self.y
        return {
            "barrier": comm.Barrier,
            "allreduce1": lambda: comm.Allreduce(self.one, self.one_out),
            "allreduce8M": lambda: comm.Allreduce(self.big, self.big_out),
            "arange": lambda: np.arange(self.lo, self.hi, dtype="float64"),
            "sum": lambda: self.total(x.sum()),
            "axpy": lambda: x * 2.0 + y,
            "axpy_sum": lambda: self.total((x * 2.0 + y).sum()),
            "norm_max": lambda: self.total(np.sqrt(x * x + y * y).max(), self.MPI.MAX),
            "center": self.center,
            "gather": self.gatherv,
            "to_numpy": self.allgatherv,
        }[name]


def run(impl, name, reps):
    fn = impl.case(name)
    calls = CALLS.get(name, 1)
    times = []
    result = None
    for rep in range(reps + 1):
        impl.barrier()
        t0 = time.perf_counter()
        for _ in range(calls):
            result = fn()
        took = (time.perf_counter() - t0) / calls
        slowest = impl.slowest(took)
        if rep == 0 and name in ("sum", "axpy_sum", "norm_max"):
            check(name, result, impl.n)
        if rep:
            times.append(slowest)
        del result
        result = None
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("impl", choices=["hpx", "mpi"])
    parser.add_argument("--n", type=int, default=2 * 10**7)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    impl = (Hpx if args.impl == "hpx" else Mpi)(args.n)
    for name in args.cases.split(","):
        if name not in CASES:
            sys.exit(f"unknown case {name!r} (known: {', '.join(CASES)})")
        seconds = run(impl, name, args.reps)
        if impl.rank == 0:
            print(f"RESULT {name} {impl.size} {seconds * 1e6:.3f}", flush=True)


if __name__ == "__main__":
    main()

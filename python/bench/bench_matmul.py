"""hpxpy's ``a @ b`` beside NumPy's on this machine, in one run.

    python python/bench/bench_matmul.py numpy [N] [REPS]          # NumPy alone
    python -m hpxpy.run -l NP python/bench/bench_matmul.py hpx [N] [REPS]

Both multiply two N x N float64 matrices (default N = 4096) of the same
values; hpxpy's are block distributed (rows), the product too. Each prints
``RESULT <who> <np> <N> <median seconds> <GFLOP/s>`` (median of REPS,
default 3, after one warm-up); for hpxpy a repetition's time is locality
0's, which waits for the product on every locality (a barrier after the
call). python/bench/matmul.sh runs both and prints the ratio.
"""

import sys
import time

import numpy as np

who = sys.argv[1] if len(sys.argv) > 1 else "numpy"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
rng = np.random.default_rng(7)
A = rng.standard_normal((N, N))
B = rng.standard_normal((N, N))
flop = 2.0 * N * N * N

if who == "numpy":
    A @ B
    times = []
    for _ in range(REPS):
        t = time.perf_counter()
        A @ B
        times.append(time.perf_counter() - t)
    med = float(np.median(times))
    print(f"RESULT numpy 1 {N} {med:.4f} {flop / med / 1e9:.1f}", flush=True)
else:
    import hpxpy as hpx

    a = hpx.from_numpy(A, distribution="block")
    b = hpx.from_numpy(B, distribution="block")
    c = a @ b
    # The product is checked once against NumPy on a few rows.
    rows = c[:4]
    if not np.allclose(rows, A[:4] @ B):
        raise SystemExit("hpxpy's product differs from NumPy's")
    del c
    times = []
    for _ in range(REPS):
        hpx.barrier()
        t = time.perf_counter()
        c = a @ b
        hpx.barrier()
        times.append(time.perf_counter() - t)
        del c
    med = float(np.median(times))
    if hpx.get_locality_id() == 0:
        np_ = hpx.get_num_localities()
        print(f"RESULT hpx {np_} {N} {med:.4f} {flop / med / 1e9:.1f}", flush=True)

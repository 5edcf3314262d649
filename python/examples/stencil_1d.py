"""A 1-d heat equation, NumPy style, on a distributed array.

    u[i] <- u[i] + alpha * (u[i-1] - 2 u[i] + u[i+1])     (the ends stay fixed)

The rod is one block-distributed array: each locality updates its own
block in place through ``local_partition`` (a zero-copy NumPy view) and
gets the two values beyond its edges (ghost cells) from its neighbours
with one collective per step (``all_gather`` of every block's edge values).
At the end locality 0 compares the result with the same stencil run by
NumPy on the whole rod and prints the largest difference and the time per
step.

    python3 python/examples/stencil_1d.py
    python -m hpxpy.run -l 4 python/examples/stencil_1d.py --n 1000003 --steps 100

Works for any number of localities and any size (blocks may be uneven or,
with fewer elements than localities, empty).
"""

import argparse
import time

import numpy as np

import hpxpy as hpx


def initial(i, n):
    """The starting temperature at the global indices ``i`` of a rod of ``n``."""
    x = i / max(n - 1, 1)
    return np.sin(np.pi * x) + (np.abs(x - 0.3) < 0.05)  # a smooth bump and a hot spot


def update(u, left, right, alpha, first, last, ext, lap):
    """One step of the stencil, in place, on ``u`` (a block, or the whole
    rod) with the ghost values ``left`` and ``right``; ``first``/``last``:
    whether ``u`` holds the rod's fixed first/last element. ``ext`` (size
    + 2) and ``lap`` (size) are work buffers, reused so that a step
    allocates nothing."""
    ext[1:-1] = u
    ext[0] = u[0] if left is None else left
    ext[-1] = u[-1] if right is None else right
    np.multiply(u, -2.0, out=lap)  # lap = u[i-1] - 2 u[i] + u[i+1]
    lap += ext[:-2]
    lap += ext[2:]
    lap *= alpha
    if first:
        lap[0] = 0.0
    if last:
        lap[-1] = 0.0
    u += lap


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_003, help="points on the rod")
    p.add_argument("--steps", type=int, default=200, help="time steps")
    p.add_argument("--alpha", type=float, default=0.25, help="D dt / dx^2 (stable up to 0.5)")
    args = p.parse_args()
    n, steps, alpha = args.n, args.steps, args.alpha
    if n < 1:
        p.error("--n must be at least 1")

    me = hpx.get_locality_id()
    nloc = hpx.get_num_localities()

    # The rod, one block per locality; each locality fills its own block.
    u = hpx.zeros((n,), distribution="block")
    block = u.local_partition  # writable view of this locality's block (maybe empty)
    assert isinstance(block, np.ndarray)  # block: one view, never a list
    offsets = u.local_offsets()  # [(first index,)], or [] for an empty block
    start = offsets[0][0] if offsets and offsets[0] is not None else 0
    block[:] = initial(np.arange(start, start + block.size), n)
    first, last = start == 0, start + block.size == n
    ext, lap = np.empty(block.size + 2), np.empty(block.size)

    hpx.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        # Ghost cells: every block's (first, last) values, everywhere (None
        # for an empty block); the left ghost is the last value of the
        # nearest non-empty block to the left, the right ghost likewise.
        edges = hpx.all_gather((block[0], block[-1]) if block.size else None)
        left = next((e[1] for e in reversed(edges[:me]) if e is not None), None)
        right = next((e[0] for e in edges[me + 1:] if e is not None), None)
        if block.size:
            update(block, left, right, alpha, first, last, ext, lap)
    hpx.barrier()  # every block is written before locality 0 reads the rod
    elapsed = time.perf_counter() - t0

    total = u.sum()  # collective: every locality calls it
    if me == 0:
        result = u.to_numpy()
        reference = initial(np.arange(n), n)
        ref_ext, ref_lap = np.empty(n + 2), np.empty(n)
        r0 = time.perf_counter()
        for _ in range(steps):
            update(reference, None, None, alpha, True, True, ref_ext, ref_lap)
        numpy_elapsed = time.perf_counter() - r0
        error = float(np.max(np.abs(result - reference)))
        print(f"1-d heat stencil: n={n}, steps={steps}, {nloc} localities, "
              f"blocks {u.partition_sizes}")
        print(f"max |hpxpy - numpy| = {error:.3e}; sum {total:.6f} (numpy {reference.sum():.6f})")
        print(f"time per step: {1e3 * elapsed / max(steps, 1):.3f} ms "
              f"(NumPy alone, one process: {1e3 * numpy_elapsed / max(steps, 1):.3f} ms)",
              flush=True)
        assert error <= 1e-12, error
        assert np.isclose(total, reference.sum())


if __name__ == "__main__":
    main()

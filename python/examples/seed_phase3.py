"""HPXPy phase 3: distributed arrays.

Run it plainly (one locality) or as a job of several:

    python3 python/examples/seed_phase3.py
    hpxrun -l 4 python3 python/examples/seed_phase3.py
    python -m hpxpy.run -l 4 python/examples/seed_phase3.py

Every locality runs this whole script (SPMD). Making an array is
collective: every locality makes the same call, in the same order, and
they all share the one array. Facts about the whole array are printed by
locality 0; what each locality holds is printed by every locality.
"""

import numpy as np

import hpxpy as hpx

me = hpx.get_locality_id()
n = hpx.get_num_localities()


def job_fact(*args):
    """Printed once, by locality 0."""
    if me == 0:
        print(*args, flush=True)


def local_fact(*args):
    """Printed by every locality (hpxrun prefixes its lines with [L<i>])."""
    print(*args, flush=True)


def describe(views):
    """A short text for local_partition: one view, none, or a list of views."""
    if isinstance(views, list):
        return f"{len(views)} views of sizes {[v.size for v in views]}"
    return f"one view of {views.size} elements ({type(views).__name__}, {views.dtype})"


job_fact(f"{n} localities; hpx.distribution members: {[d.value for d in hpx.distribution]}")
job_fact(f"hpx.distribution.block is {hpx.distribution.block!r}, equal to 'block': "
         f"{hpx.distribution.block == 'block'}")

# --- a block distribution: one contiguous block per locality ---------------
arr = hpx.zeros((10000,), distribution='block')
job_fact("block:", arr)
job_fact("  is_distributed =", arr.is_distributed)
job_fact("  num_partitions =", arr.num_partitions)
job_fact("  partition_sizes =", arr.partition_sizes)
job_fact("  localities =", arr.localities)
local_fact(f"block: local_partition is {describe(arr.local_partition)}, "
           f"starting at {arr.local_offsets()}")
assert arr.num_partitions == n and sum(arr.partition_sizes) == 10000
assert arr.is_distributed == (n > 1)

# The distribution enum names the same layouts as the strings.
same = hpx.zeros((10000,), distribution=hpx.distribution.block)
job_fact("distribution=hpx.distribution.block gives partition_sizes", same.partition_sizes,
         "and", same.distribution)
assert same.partition_sizes == arr.partition_sizes

# --- chunks: partitions of 1000 elements, placed round robin ----------------
arr = hpx.zeros((10000,), chunks=1000)
job_fact("chunks=1000:", arr)
job_fact("  is_distributed =", arr.is_distributed)
job_fact("  num_partitions =", arr.num_partitions)
job_fact("  partition_sizes =", arr.partition_sizes)
job_fact("  localities =", arr.localities)
local_fact(f"chunks=1000: local_partition is {describe(arr.local_partition)}")
assert arr.num_partitions == 10 and arr.partition_sizes == [1000] * 10

# local_partition views are zero-copy and writable: write this locality's
# number into its own chunks, then read the whole array back.
views = arr.local_partition
for v in views if isinstance(views, list) else [views]:
    v[:] = me
hpx.barrier()  # every locality has written before anyone reads
local_arr = arr.to_numpy()  # not collective: a plain read, gathered in bulk
job_fact("to_numpy() after each locality wrote its id into its chunks:",
         type(local_arr).__name__, local_arr.shape, local_arr.dtype,
         "first element of each chunk:", local_arr[::1000].tolist())
assert local_arr[::1000].tolist() == [float(p) for p in arr.localities]

# --- from_numpy: every locality passes the same data, each keeps its share ---
data = np.arange(10000, dtype=np.float64)
arr = hpx.from_numpy(data, distribution='block')
job_fact("from_numpy(data, distribution='block'):", arr, "sum =", arr.sum())
mine = arr.local_partition
assert isinstance(mine, np.ndarray)  # block: one view (empty if it holds nothing)
offsets = arr.local_offsets()  # [(first index,)], or [] if it holds nothing
start = offsets[0][0] if offsets and offsets[0] is not None else 0
local_fact(f"from_numpy: holds data[{start}:{start + mine.size}]",
           f"(first values {mine[:3].tolist()})")
assert np.array_equal(mine, data[start:start + mine.size])
assert np.array_equal(arr.to_numpy(), data)

# --- copy=False: a local array sharing memory with a NumPy array ------------
x = np.linspace(0.0, 1.0, 5)
view = hpx.from_numpy(x, copy=False)
x[0] = 42.0  # the view sees it: same memory
local_fact(f"from_numpy(x, copy=False): is_view() = {view.is_view()}, "
           f"view[0] = {view[0]}, is_distributed = {view.is_distributed}")
assert view.is_view() and view[0] == 42.0
assert not arr.is_view()

job_fact("phase 3 OK")

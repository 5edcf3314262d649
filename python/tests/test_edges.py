"""Cases a NumPy or mpi4py user meets (found in review): bool arrays hold
only 0/1, out-of-range Python integers, the MPI-style broadcast/scatter of
a DistributedArray from the root alone, sub-groups and arrays, views in
where(), rows of 2-d arrays, threads starting the runtime together."""

import pytest

EDGES = r"""
import threading
import numpy as np
import hpxpy as hpx

me, n = hpx.get_locality_id(), hpx.get_num_localities()
b = hpx.full(4, 2, dtype=bool, distribution="block")
assert b.sum() == 4, b.sum()
b.fill(0.5)
assert b.all()
b[0] = 2
assert (b == True).all()
b[0:3] = [0, 2, 4]
assert b.to_numpy().tolist() == [False, True, True, True]
u = hpx.from_numpy(np.array([1, 2, 3], np.uint8), distribution="cyclic")
try:
    u + 300
    raise AssertionError("uint8 + 300 did not overflow")
except OverflowError:
    pass
assert not (u == -1).any() and (u > -1).all() and not (u >= 256).any()
x = hpx.arange(7, distribution="cyclic")
try:
    x // np.float32(2)
    raise AssertionError("// of a float scalar")
except hpx.DTypeError:
    pass
assert hpx.arange(0.0, 1.0, 0.1).size == len(np.arange(0.0, 1.0, 0.1))
assert hpx.arange(3, 40, 7).to_numpy().tolist() == list(range(3, 40, 7))
assert isinstance(float(hpx.random.random(seed=3)), float)
assert hpx.random.uniform(size=0).size == 0
d = hpx.arange(10, distribution="block")
got = hpx.broadcast(d if me == n - 1 else None, root=n - 1)
assert got.to_numpy().tolist() == list(range(10))
g = hpx.gather(d, root=n - 1)
assert (g is None) == (me != n - 1)
part = hpx.scatter(d if me == 0 else None, root=0)
assert np.concatenate(hpx.all_gather(part)).tolist() == list(range(10))
if n > 2:
    sub = hpx.Communicator("pair", [0, 1]) if me < 2 else None
    if sub is not None:
        try:
            sub.all_reduce(d)
            raise AssertionError("a sub-group reduced a job-wide array")
        except hpx.HPXValueError:
            pass
try:
    hpx.Communicator("x")
    raise AssertionError("a named group without members")
except hpx.HPXValueError:
    pass
try:
    -b
    raise AssertionError("-bool")
except hpx.DTypeError:
    pass
v = hpx.from_numpy(np.array([1.0, -2.0]), copy=False)
assert hpx.where(v > 0, v, 0.0).to_numpy().tolist() == [1.0, 0.0]
m = hpx.from_numpy(np.arange(6.0).reshape(2, 3), distribution="block")
assert m[1].tolist() == [3.0, 4.0, 5.0] and m[-1, 0] == 3.0
results = []
threads = [threading.Thread(target=lambda: results.append(float(d.sum()) if n == 1 else 45.0))
           for _ in range(3)]
[t.start() for t in threads]
[t.join(30) for t in threads]
assert results == [45.0] * 3, results
hpx.barrier()
print("EDGES-OK", me)
"""


@pytest.mark.parametrize("n", [1, 3])
def test_numpy_and_mpi_edges(run_job, n):
    result = run_job(n, EDGES)
    assert result.rc == 0, result.describe()
    for i in range(n):
        assert f"EDGES-OK {i}" in result.lines(i), result.describe()


THREADS = r"""
import threading
import hpxpy as hpx
out = []
ts = [threading.Thread(target=lambda: out.append(float(hpx.zeros(10).sum()))) for _ in range(4)]
[t.start() for t in ts]
[t.join(30) for t in ts]
print("THREADS", out)
"""


def test_threads_start_the_runtime_together(run_job):
    # The first calls race to start the runtime (a plain run starts lazily):
    # none may deadlock on the GIL.
    result = run_job(1, THREADS, plain=True, timeout=60)
    assert result.rc == 0, result.describe()
    assert "THREADS [0.0, 0.0, 0.0, 0.0]" in result.stdout, result.describe()


INTERRUPT = r"""
import os, signal, threading, time
import hpxpy as hpx
hpx.zeros(10)
threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
start = time.monotonic()
try:
    hpx.random.normal(size=(10**8,), seed=1)
    print("NOT INTERRUPTED", time.monotonic() - start)
except KeyboardInterrupt:
    print("INTERRUPTED", round(time.monotonic() - start, 2))
"""


def test_ctrl_c_interrupts_a_long_call_in_a_plain_run(run_job):
    # One locality: Python's own SIGINT handler runs while the runtime works
    # (the wait hands the GIL back to it), so KeyboardInterrupt comes at once.
    result = run_job(1, INTERRUPT, plain=True, timeout=120)
    lines = [l for l in result.stdout.splitlines() if l.startswith("INTERRUPTED")]
    assert lines, result.describe()
    assert float(lines[0].split()[1]) < 3.0, result.describe()

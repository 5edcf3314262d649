"""Failures of a job: a script that raises on one locality, a locality
killed while the others wait in a collective, Ctrl-C (SIGINT) to the whole
job or to one locality. Each job must end, non-zero, within a deadline, the
other localities must say why, and no process may be left."""

import os
import signal
import time

import pytest

from conftest import group_alive

RAISE_WHILE_OTHERS_WAIT = r"""
import hpxpy as hpx
me, n = hpx.get_locality_id(), hpx.get_num_localities()
hpx.barrier()
print("STARTED", flush=True)
try:
    # Whoever leaves this barrier knows that every other locality has left
    # the one before (and printed STARTED).
    hpx.barrier()
    if me == n - 1:
        raise ValueError("deliberate failure on the last locality")
    hpx.barrier()
except hpx.HPXError as e:
    print("CAUGHT", type(e).__name__, "|", e, flush=True)
    raise
print("NOT REACHED", flush=True)
"""

RAISE_WHILE_OTHERS_FINISH = r"""
import os, sys
import hpxpy as hpx
me, n = hpx.get_locality_id(), hpx.get_num_localities()
fifo = sys.argv[1]
total = hpx.all_reduce(1)
print("STARTED", total, flush=True)
if me == n - 1:
    # Fail only once every other locality is done with its collectives
    # (each says so through the FIFO): they end their script normally and
    # learn of the failure at exit.
    fd = os.open(fifo, os.O_RDWR)
    got = b""
    while got.count(b"\n") < n - 1:
        got += os.read(fd, 64)
    raise ValueError("deliberate failure on the last locality")
with open(fifo, "w") as f:
    f.write(f"{me}\n")
print("SCRIPT ENDED", flush=True)
"""

KILLED = r"""
import os, signal, sys
import hpxpy as hpx
me, n = hpx.get_locality_id(), hpx.get_num_localities()
victim = int(sys.argv[1])
a = hpx.arange(1000, distribution="block")
hpx.barrier()
print("STARTED", flush=True)
try:
    # The victim leaves this barrier only when every other locality has
    # left the one before: they are all in this one or the next.
    hpx.barrier()
    if me == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    hpx.barrier()
    print("NOT REACHED", flush=True)
except hpx.HPXError as e:
    print("CAUGHT", type(e).__name__, "|", e, flush=True)
    raise
"""

WAIT_FOR_SIGINT = r"""
import os, sys, threading
import hpxpy as hpx
me, n = hpx.get_locality_id(), hpx.get_num_localities()
out = sys.argv[1]
hpx.barrier()
print("READY", os.getpid(), flush=True)
try:
    if me == n - 1:
        threading.Event().wait()   # never joins: the others wait in the barrier
    hpx.barrier()
    print("NOT REACHED", flush=True)
except BaseException as e:
    # Written whole or not at all: the launcher may kill us at any moment.
    with open(os.path.join(out, f"L{me}.part"), "w") as f:
        f.write(f"{type(e).__name__}: {e}")
    os.replace(os.path.join(out, f"L{me}.part"), os.path.join(out, f"L{me}"))
    print("CAUGHT", type(e).__name__, "|", e, flush=True)
    raise
"""


def caught(result, i):
    """(class name, message) of the CAUGHT line of locality i, or None."""
    for line in result.lines(i):
        if line.startswith("CAUGHT "):
            cls, _, msg = line[len("CAUGHT "):].partition(" | ")
            return cls, msg
    return None


@pytest.mark.parametrize("n", [2, 3, 4])
def test_raise_on_one_locality_while_others_wait(run_job, n):
    result = run_job(n, RAISE_WHILE_OTHERS_WAIT, timeout=30)
    why = result.describe()
    assert result.rc != 0, why
    assert result.elapsed < 10, why
    for i in range(n):
        assert "STARTED" in result.lines(i), why
        assert "NOT REACHED" not in result.lines(i), why
    for i in range(n - 1):
        got = caught(result, i)
        assert got is not None, f"locality {i} did not report the failure\n{why}"
        assert got[0] == "JobAbortedError", why
        assert "deliberate failure on the last locality" in got[1], why
        assert f"locality {n - 1}" in got[1], why
    assert any("ValueError: deliberate failure" in l for l in result.err_lines(n - 1)), why
    # hpxrun names the locality that failed first, not one that followed it.
    assert any(f"locality {n - 1} exited with code 1" in l
               for l in result.launcher_err_lines()), why


@pytest.mark.parametrize("n", [2, 4])
def test_raise_on_one_locality_while_others_finish(run_job, n, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run_job(n, RAISE_WHILE_OTHERS_FINISH, timeout=30, args=(fifo,))
    why = result.describe()
    assert result.rc != 0, why
    assert result.elapsed < 10, why
    for i in range(n - 1):
        assert "SCRIPT ENDED" in result.lines(i), why
        # At exit the others learn that the job failed, and say why.
        errors = [l for l in result.err_lines(i) if l.startswith("Error:")]
        assert errors and "deliberate failure" in errors[0], why
    assert any(f"locality {n - 1} exited with code 1" in l
               for l in result.launcher_err_lines()), why


@pytest.mark.parametrize("plain", [False, True])
def test_raise_in_a_job_of_one(run_job, plain):
    result = run_job(1, 'import hpxpy as hpx\nhpx.barrier()\nraise ValueError("alone")\n',
                     plain=plain)
    assert result.rc != 0, result.describe()
    assert any("ValueError: alone" in l for l in result.err_lines(0)), result.describe()


@pytest.mark.parametrize("n,victim", [(2, 1), (3, 1), (4, 2), (3, 0)])
def test_killed_locality(run_job, n, victim):
    result = run_job(n, KILLED, timeout=40, args=(victim,))
    why = result.describe()
    assert result.rc != 0, why
    assert result.elapsed < 15, why
    for i in range(n):
        assert "STARTED" in result.lines(i), why
        assert "NOT REACHED" not in result.lines(i), why
        if i == victim:
            assert caught(result, i) is None, why
            continue
        got = caught(result, i)
        assert got is not None, f"locality {i} did not report the loss\n{why}"
        assert got[0] in ("LocalityLostError", "JobAbortedError"), why
        assert got[1].strip(), why
    assert any("SIGKILL" in l or "signal 9" in l for l in result.launcher_err_lines()), why


def test_sigint_to_the_job_while_it_waits_in_a_barrier(start_job, tmp_path):
    n = 3
    job = start_job(n, WAIT_FOR_SIGINT, timeout=40, args=(tmp_path,))
    job.wait_for_lines("READY", timeout=20)
    sent = time.monotonic()
    job.signal_group(signal.SIGINT)     # as Ctrl-C in a terminal does
    result = job.finish(timeout=15)     # fails the test if it does not end
    why = result.describe()
    assert time.monotonic() - sent < 10, why
    assert result.rc != 0, why
    assert not group_alive(job.pgid), why
    for i in range(n):
        assert "NOT REACHED" not in result.lines(i), why
        # A locality that had time to say something says the job stopped.
        report = tmp_path / f"L{i}"
        if report.exists():
            assert report.read_text().startswith(("JobAbortedError", "KeyboardInterrupt")), why


def test_sigint_to_one_locality(start_job, tmp_path):
    """Ctrl-C reaching one locality only stops the whole job: the others,
    waiting in a barrier, raise JobAbortedError naming it."""
    n = 3
    job = start_job(n, WAIT_FOR_SIGINT, timeout=40, args=(tmp_path,))
    ready = job.wait_for_lines("READY", timeout=20)
    pid0 = int(ready.lines(0)[-1].split()[1])
    sent = time.monotonic()
    os.kill(pid0, signal.SIGINT)
    result = job.finish(timeout=20)
    why = result.describe()
    assert time.monotonic() - sent < 15, why
    assert result.rc != 0, why
    for i in range(n - 1):     # the last one was not in hpxpy
        report = tmp_path / f"L{i}"
        assert report.exists(), f"locality {i} did not report\n{why}"
        text = report.read_text()
        assert text.startswith("JobAbortedError"), text + "\n" + why
        assert "SIGINT" in text, text + "\n" + why

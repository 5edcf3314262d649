"""The job runner itself: a script of one locality runs the same plainly and
through the launcher; output is split by locality; a job past its deadline
is killed with its whole process group and fails the test."""

import os
import sys
import time

import pytest

from conftest import group_alive, run_job as run_job_plain, start_job as start_job_plain

HELLO = r"""
import sys
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())
print("HELLO", me, n)
a = hpx.arange(10, distribution="block")
check("sum", a.sum(), 45)
print("ARGS", sys.argv[1:])
done("hello")
"""


@pytest.mark.parametrize("plain", [False, True], ids=["launcher", "plain"])
def test_one_locality_plain_and_launched(run_job, plain):
    result = run_job(1, HELLO, args=(1, "x y"), plain=plain).assert_done("hello")
    assert result.lines(0)[0] == "HELLO 0 1", result.describe()
    assert "ARGS ['1', 'x y']" in result.lines(0), result.describe()
    if plain:
        assert not any(l.startswith("[L") for l in result.stdout.splitlines())
    else:
        assert all(l.startswith("[L0] ") for l in result.stdout.splitlines())


@pytest.mark.parametrize("n", [2, 5])
def test_lines_by_locality(run_job, n):
    result = run_job(n, HELLO, args=(n,)).assert_done("hello")
    for i in range(n):
        assert result.lines(i)[0] == f"HELLO {i} {n}", result.describe()
    assert result.lines(n) == []


def test_deadline_kills_the_job():
    job = start_job_plain(2, "import threading\nprint('WAITING', flush=True)\n"
                             "threading.Event().wait()\n", timeout=3)
    job.wait_for_lines("WAITING", timeout=20)
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="did not end within"):
        job.finish()
    assert time.monotonic() - start < 10
    assert not group_alive(job.pgid)


def test_wait_for_fails_when_the_job_ends_first():
    job = start_job_plain(1, "print('hi')\n", timeout=20)
    with pytest.raises(pytest.fail.Exception, match="never showed"):
        job.wait_for_lines("NEVER PRINTED")
    assert not group_alive(job.pgid)
    job.close()


def test_a_script_that_does_nothing_does_not_pass():
    result = run_job_plain(2, "import hpxpy\n")
    assert result.rc == 0, result.describe()
    with pytest.raises(pytest.fail.Exception, match="no 'DONE hello' line"):
        result.assert_done("hello")


def _built_hpxrun():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "target")
    for profile in ("debug", "release"):
        path = os.path.abspath(os.path.join(root, profile, "hpxrun"))
        if os.access(path, os.X_OK):
            return path
    return None


@pytest.mark.skipif(_built_hpxrun() is None, reason="hpxrun is not built (cargo build --bin hpxrun)")
def test_the_rust_launcher_runs_python_scripts():
    # scripts/test-all.sh runs the Rust tests first, which build hpxrun.
    job = start_job_plain(3, HELLO, args=(3,), hpxrun=_built_hpxrun())
    result = job.finish().assert_done("hello")
    for i in range(3):
        assert result.lines(i)[0] == f"HELLO {i} 3", result.describe()


def test_the_installed_hpxrun_runs_the_readme_line(monkeypatch):
    # Installing the package (pip install ./python, or maturin develop as
    # scripts/test-all.sh does) puts the launcher `hpxrun` beside the
    # interpreter: in an active environment the README's
    # `hpxrun -l N python3 script.py` runs as written, without cargo.
    bindir = os.path.dirname(sys.executable)
    assert os.access(os.path.join(bindir, "hpxrun"), os.X_OK), f"no hpxrun in {bindir}"
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))
    job = start_job_plain(3, HELLO, args=(3,), hpxrun="hpxrun", python="python3")
    result = job.finish().assert_done("hello")
    for i in range(3):
        assert result.lines(i)[0] == f"HELLO {i} 3", result.describe()

"""Runs HPXPy scripts as real jobs of N processes (localities).

``run_job(n, source, timeout=60, args=())`` writes ``source`` (dedented)
to a temporary file, runs it with ``python -m hpxpy.run -l n`` in a new
session (its own process group), enforces a deadline (on expiry the whole
group is killed and the test fails with the output), checks that no process
of the group is left, and returns a :class:`JobResult`.

``start_job(...)`` does the same but returns a :class:`Job` at once, for
tests that talk to the job while it runs (wait for a marker line, send it a
signal).

Scripts can ``from _jobkit import ...`` (this folder is put on their
``PYTHONPATH``): the checking helpers every job script uses.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

_PREFIX = re.compile(r"^\[L(\d+)\] ?(.*)$")


def _clean_env():
    env = dict(os.environ)
    # A test run inside a job (or with leftovers in the environment) must
    # not make the scripts join someone else's job.
    for key in list(env):
        if key.startswith("HPX_"):
            del env[key]
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (TESTS_DIR, env.get("PYTHONPATH", "")) if p
    )
    return env


def group_alive(pgid):
    """Whether any process of the process group ``pgid`` is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _split(text, locality, plain):
    out = []
    for line in text.splitlines():
        if plain:
            if locality == 0:
                out.append(line)
            continue
        m = _PREFIX.match(line)
        if m and int(m.group(1)) == locality:
            out.append(m.group(2))
    return out


class JobResult:
    """What a finished job left: ``rc``, ``stdout``, ``stderr``,
    ``elapsed`` (seconds), and the lines of each locality."""

    def __init__(self, n, rc, stdout, stderr, elapsed, plain, command):
        self.n = n
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.plain = plain
        self.command = command

    def lines(self, locality):
        """The lines locality ``locality`` printed on stdout, prefix stripped
        (a plain run is locality 0)."""
        return _split(self.stdout, locality, self.plain)

    def err_lines(self, locality):
        """The lines locality ``locality`` printed on stderr, prefix stripped."""
        return _split(self.stderr, locality, self.plain)

    def launcher_err_lines(self):
        """stderr lines of the launcher itself (no locality prefix)."""
        if self.plain:
            return []
        return [l for l in self.stderr.splitlines() if not _PREFIX.match(l)]

    def describe(self):
        return (
            f"command: {' '.join(self.command)}\nexit code: {self.rc}, "
            f"{self.elapsed:.2f} s\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def assert_done(self, marker):
        """The job succeeded and every locality ran the script to its end:
        each printed ``DONE <marker> ...`` as its last line, reported no
        failed check (``FAIL`` lines) and ran at least one check."""
        problems = []
        if self.rc != 0:
            problems.append(f"exit code {self.rc}")
        for i in range(self.n):
            mine = self.lines(i)
            fails = [l for l in mine if l.startswith("FAIL")]
            if fails:
                problems.append(f"locality {i}: {len(fails)} failed checks")
            done = [l for l in mine if l.startswith(f"DONE {marker} ")]
            if not done:
                problems.append(f"locality {i}: no 'DONE {marker}' line")
            else:
                m = re.search(r"checks=(\d+) fails=(\d+)", done[-1])
                if not m or int(m.group(1)) == 0 or int(m.group(2)) != 0:
                    problems.append(f"locality {i}: {done[-1]!r}")
                if mine[-1] != done[-1]:
                    problems.append(f"locality {i}: output after its DONE line")
        if not self.plain:
            stray = [i for i in range(self.n, self.n + 8) if self.lines(i)]
            if stray:
                problems.append(f"lines from localities {stray} in a job of {self.n}")
        if problems:
            pytest.fail("; ".join(problems) + "\n" + self.describe(), pytrace=False)
        return self

    def marker_values(self, locality, key):
        """The values printed as ``<key> <value>`` lines by ``locality``."""
        return [l[len(key) + 1:] for l in self.lines(locality) if l.startswith(key + " ")]


class Job:
    """A running job (see :func:`start_job`)."""

    def __init__(self, n, source, timeout=60, args=(), plain=False, tmpdir=None, hpxrun=None,
                 python=None):
        if plain and n != 1:
            raise ValueError("only a job of one locality runs plainly")
        self.n = n
        self.plain = plain
        self.timeout = timeout
        self._dir = tempfile.mkdtemp(prefix="hpxpy-job-", dir=tmpdir)
        self.path = os.path.join(self._dir, "job_script.py")
        with open(self.path, "w") as f:
            f.write(textwrap.dedent(source).lstrip("\n"))
        if plain:
            self.command = [sys.executable, self.path, *map(str, args)]
        elif hpxrun is not None:
            # A launcher, as a cluster user runs it: hpxrun -l N python3 script.py
            self.command = [hpxrun, "-l", str(n), python or sys.executable, self.path,
                            *map(str, args)]
        else:
            self.command = [sys.executable, "-m", "hpxpy.run", "-l", str(n), self.path,
                            *map(str, args)]
        self._out = []
        self._err = []
        self._cond = threading.Condition()
        self.start = time.monotonic()
        self.ended = None   # when the launcher (or plain script) exited
        self.deadline = self.start + timeout
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self._dir,
                env=_clean_env(),
                start_new_session=True,
            )
        except BaseException:
            self._remove_files()
            raise
        self.pgid = self.proc.pid  # the session leader leads its group
        self._eof = 0
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream, sink):
        try:
            for raw in iter(stream.readline, b""):
                with self._cond:
                    sink.append(raw.decode("utf-8", "replace"))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof += 1
                self._cond.notify_all()

    def output(self):
        with self._cond:
            return "".join(self._out), "".join(self._err)

    def _snapshot(self, rc=None):
        out, err = self.output()
        end = self.ended if self.ended is not None else time.monotonic()
        return JobResult(self.n, rc, out, err, end - self.start, self.plain, self.command)

    def wait_for(self, predicate, timeout=None, what="the condition"):
        """Waits (reading the output as it comes) until ``predicate(result)``
        holds for the output so far; fails the test at the deadline or if the
        job ends first."""
        end = min(self.deadline, time.monotonic() + (timeout or self.timeout))
        with self._cond:
            while True:
                snap = JobResult(self.n, None, "".join(self._out), "".join(self._err),
                                 time.monotonic() - self.start, self.plain, self.command)
                if predicate(snap):
                    return snap
                if self._eof == 2:
                    break
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        self.kill()
        result = self._collect()
        self._wait_group_gone(time.monotonic() + 5)
        pytest.fail(f"the job never showed {what}\n" + result.describe(), pytrace=False)

    def wait_for_lines(self, text, localities=None, timeout=None):
        """Waits until every locality in ``localities`` (default all) printed
        a line containing ``text``."""
        locs = range(self.n) if localities is None else localities
        return self.wait_for(
            lambda r: all(any(text in l for l in r.lines(i)) for i in locs),
            timeout, f"{text!r} from localities {list(locs)}",
        )

    def signal_group(self, sig):
        """Sends ``sig`` to every process of the job (launcher and localities)."""
        os.killpg(self.pgid, sig)

    def kill(self):
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _collect(self):
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        for t in self._readers:
            t.join(timeout=5)
        return self._snapshot(rc)

    def _wait_group_gone(self, until):
        # The launcher has exited; its children (other processes of the
        # group) must be gone as well. No event tells us when a process
        # that is not our child ends, so look, up to the deadline.
        while group_alive(self.pgid):
            if time.monotonic() > until:
                return False
            time.sleep(0.02)
        return True

    def finish(self, timeout=None):
        """Waits for the job to end (up to the deadline; then kills the
        group and fails the test), checks that no process is left, cleans
        up and returns its :class:`JobResult`."""
        end = self.deadline if timeout is None else min(self.deadline, time.monotonic() + timeout)
        try:
            try:
                rc = self.proc.wait(timeout=max(0.0, end - time.monotonic()))
                self.ended = time.monotonic()
            except subprocess.TimeoutExpired:
                self.kill()
                result = self._collect()
                gone = self._wait_group_gone(time.monotonic() + 5)
                pytest.fail(
                    f"the job did not end within {end - self.start:.1f} s; killed"
                    f"{'' if gone else ' (and processes of it are still there)'}\n"
                    + result.describe(),
                    pytrace=False,
                )
            gone = self._wait_group_gone(time.monotonic() + 5)
            for t in self._readers:
                t.join(timeout=5)
            result = self._snapshot(rc)
            if not gone:
                self.kill()
                pytest.fail("processes of the job were left after the launcher ended\n"
                            + result.describe(), pytrace=False)
            return result
        finally:
            self.close()

    def close(self):
        """Kills whatever is left of the job and removes its files."""
        if self.proc.poll() is None or group_alive(self.pgid):
            self.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self._wait_group_gone(time.monotonic() + 5)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        self._remove_files()

    def _remove_files(self):
        try:
            os.unlink(self.path)
            os.rmdir(self._dir)
        except OSError:
            pass


def start_job(n, source, timeout=60, args=(), plain=False, hpxrun=None, python=None):
    """Starts ``source`` as a job of ``n`` localities (with the launcher
    ``hpxrun`` if given, running the script with ``python``, by default this
    interpreter; else ``python -m hpxpy.run``); returns a :class:`Job`."""
    return Job(n, source, timeout=timeout, args=args, plain=plain, hpxrun=hpxrun,
               python=python)


def run_job(n, source, timeout=60, args=(), plain=False):
    """Runs ``source`` as a job of ``n`` localities (``plain=True``, n == 1:
    as ``python script.py``) and returns its :class:`JobResult`."""
    job = start_job(n, source, timeout=timeout, args=args, plain=plain)
    return job.finish()


@pytest.fixture(name="run_job")
def run_job_fixture():
    """``run_job(n, source, timeout=60, args=(), plain=False)``; every job
    started through it is ended when the test ends."""
    jobs = []

    def run(n, source, timeout=60, args=(), plain=False):
        job = start_job(n, source, timeout=timeout, args=args, plain=plain)
        jobs.append(job)
        return job.finish()

    yield run
    for job in jobs:
        job.close()


@pytest.fixture(name="start_job")
def start_job_fixture():
    """``start_job(n, source, timeout=60, args=(), plain=False)`` -> Job;
    every job is killed and cleaned up when the test ends."""
    jobs = []

    def start(n, source, timeout=60, args=(), plain=False):
        job = start_job(n, source, timeout=timeout, args=args, plain=plain)
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        job.close()

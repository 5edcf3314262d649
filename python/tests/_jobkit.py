"""Checking helpers for the job scripts the tests run (imported by the
scripts, not by pytest). A failed check prints a ``FAIL`` line and the
script goes on (so that every locality keeps making the same collective
calls); ``done(topic)`` prints the final ``DONE <topic> checks=K fails=F``
line the tests look for on every locality.

Every check compares hpxpy's answer with NumPy's (or Python's) computed in
the same script."""

import sys
import traceback

import numpy as np

_checks = 0
_fails = 0


def _fail(name, detail):
    global _fails
    _fails += 1
    print(f"FAIL {name}: {detail}", flush=True)


def _short(x):
    s = repr(x)
    return s if len(s) < 400 else s[:400] + "..."


def check(name, got, expected, rtol=1e-12, atol=0.0, dtype=False, exact=None):
    """``got`` equals ``expected``: same shape and values (exactly for
    integer and boolean expectations, else within rtol/atol, NaN equal to
    NaN); with ``dtype=True`` also the same dtype."""
    global _checks
    _checks += 1
    try:
        if got is None or expected is None:
            if got is not expected:
                _fail(name, f"got {_short(got)}, expected {_short(expected)}")
            return
        g = np.asarray(got)
        e = np.asarray(expected)
        if g.shape != e.shape:
            _fail(name, f"shape {g.shape} != {e.shape}: got {_short(got)}, expected {_short(expected)}")
            return
        if dtype and g.dtype != e.dtype:
            _fail(name, f"dtype {g.dtype} != {e.dtype}: got {_short(got)}")
            return
        if exact is None:
            exact = e.dtype.kind in "biu" and g.dtype.kind in "biu"
        if exact:
            ok = np.array_equal(g, e)
        else:
            ok = np.allclose(g.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol,
                             equal_nan=True)
        if not ok:
            bad = ""
            if g.ndim and g.size:
                with np.errstate(all="ignore"):
                    diff = np.flatnonzero(~np.isclose(g.astype(np.float64).reshape(-1),
                                                      e.astype(np.float64).reshape(-1),
                                                      rtol=rtol, atol=atol, equal_nan=True)
                                          if not exact else g.reshape(-1) != e.reshape(-1))
                if diff.size:
                    i = diff[0]
                    bad = (f" ({diff.size} differ; first at flat {i}: "
                           f"{g.reshape(-1)[i]!r} != {e.reshape(-1)[i]!r})")
            _fail(name, f"got {_short(got)}, expected {_short(expected)}{bad}")
    except Exception as ex:  # noqa: BLE001 - report, go on
        _fail(name, f"comparison raised {type(ex).__name__}: {ex}")


def truth(name, cond, detail=""):
    """``cond`` holds."""
    global _checks
    _checks += 1
    if not cond:
        _fail(name, detail or "is false")


def equal(name, got, expected):
    """``got == expected`` for plain Python values (lists, tuples, str,
    type objects...)."""
    global _checks
    _checks += 1
    try:
        ok = got == expected
        if isinstance(ok, np.ndarray):
            ok = bool(ok.all())
        if not ok:
            _fail(name, f"got {_short(got)}, expected {_short(expected)}")
    except Exception as ex:  # noqa: BLE001
        _fail(name, f"comparison raised {type(ex).__name__}: {ex}")


def raises(name, classes, fn, *, match=None, also=()):
    """``fn()`` raises an instance of ``classes`` (every class in
    ``also`` too, e.g. ValueError) with a non-empty message (containing
    ``match``). Returns the exception (None if it was not raised)."""
    global _checks
    _checks += 1
    try:
        value = fn()
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        if not isinstance(e, classes):
            _fail(name, f"raised {type(e).__module__}.{type(e).__name__}: {e} "
                        f"(expected {classes})")
            return e
        for c in also:
            if not isinstance(e, c):
                _fail(name, f"{type(e).__name__} is not a {c.__name__}")
        if not str(e).strip():
            _fail(name, f"{type(e).__name__} without a message")
        elif match is not None and match.lower() not in str(e).lower():
            _fail(name, f"message {str(e)!r} lacks {match!r}")
        return e
    _fail(name, f"did not raise (returned {_short(value)})")
    return None


def guarded(name, fn):
    """Runs ``fn()``; an exception is a failed check (reported, not raised:
    use it only for calls that cannot leave localities out of step)."""
    global _checks
    _checks += 1
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        _fail(name, f"raised {type(e).__name__}: {e}")
        traceback.print_exc()
        return None


def done(topic):
    """The last line of a script: every check ran."""
    print(f"DONE {topic} checks={_checks} fails={_fails}", flush=True)


def expected_localities():
    """The locality count the test asked for (the script's first argument)."""
    return int(sys.argv[1])

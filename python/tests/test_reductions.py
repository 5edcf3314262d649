"""Reductions (whole-array, 2-d along an axis), scans, and empty arrays,
compared with NumPy in real jobs of 1 to 4 localities."""

import textwrap

import pytest

REDUCTIONS = r"""
import math
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, truth, raises, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())

LAYOUTS = [("block", {"distribution": "block"}), ("cyclic", {"distribution": "cyclic"}),
           ("chunks", {"chunks": 1000}), ("block_cyclic", {"distribution": "block_cyclic",
                                                           "chunks": 3}),
           ("local", {}), ("num_partitions", {"num_partitions": 7})]


def values(dt, N, seed):
    rng = np.random.default_rng(seed)
    if dt == "bool":
        return rng.random(N) < 0.3
    if dt.startswith("float"):
        return rng.uniform(-100, 100, N).astype(dt)
    if dt.startswith("int"):
        return rng.integers(-1000, 1000, N).astype(dt)
    return rng.integers(0, 200, N).astype(dt)


def with_ties(dt, N):
    # Smallest and largest values occur several times, across partitions:
    # argmin/argmax give the first.
    x = values(dt, N, 3)
    if N > 4 and dt != "bool":
        lo, hi = x.min(), x.max()
        x[N // 3] = x[N - 2] = lo
        x[N // 2] = x[N - 1] = hi
    return x


def fsum_as(x, dt):
    return np.dtype(dt).type(math.fsum(x.astype(np.float64)))


for N in (10001, 7, 1):
    for k, dt in enumerate(hpx.DTYPES):
        x = with_ties(dt, N)
        # Each dtype with block and cyclic, and two more layouts in turn.
        for lname, kw in (LAYOUTS[0], LAYOUTS[1], LAYOUTS[2 + k % 4]):
            tag = f"N={N} {dt} {lname}"
            a = hpx.from_numpy(x, **kw)
            if dt.startswith("float"):
                # Sums are exact, correctly rounded: compare with fsum.
                check(tag + " sum", a.sum(), fsum_as(x, dt), rtol=1e-6 if dt == "float32" else 1e-15,
                      dtype=True)
                check(tag + " mean", a.mean(), np.dtype(dt).type(math.fsum(x.astype(np.float64)) / N),
                      rtol=1e-6 if dt == "float32" else 1e-13, dtype=True)
            else:
                check(tag + " sum", a.sum(), np.sum(x), dtype=True)
                check(tag + " mean", a.mean(), np.mean(x), rtol=1e-13, dtype=True)
            check(tag + " hpx.sum", hpx.sum(a), np.sum(x), rtol=1e-6)
            check(tag + " min", a.min(), np.min(x), dtype=True)
            check(tag + " max", a.max(), np.max(x), dtype=True)
            check(tag + " hpx.min/max", (hpx.min(a), hpx.max(a)), (x.min(), x.max()))
            equal(tag + " argmin", a.argmin(), int(np.argmin(x)))
            equal(tag + " argmax", a.argmax(), int(np.argmax(x)))
            equal(tag + " hpx.argmin/argmax", (hpx.argmin(a), hpx.argmax(a)),
                  (int(np.argmin(x)), int(np.argmax(x))))
            check(tag + " any", a.any(), np.any(x), dtype=True)
            check(tag + " all", a.all(), np.all(x), dtype=True)
            check(tag + " hpx.any/all", (hpx.any(a), hpx.all(a)), (np.any(x), np.all(x)))
            equal(tag + " count_nonzero", a.count_nonzero(), int(np.count_nonzero(x)))
            equal(tag + " hpx.count_nonzero", hpx.count_nonzero(a), int(np.count_nonzero(x)))
            if dt.startswith("float"):
                check(tag + " hpx.mean", hpx.mean(a), np.mean(x), rtol=1e-5)
            # cumsum: integers in 64 bits, as NumPy.
            want = np.cumsum(x)
            got = a.cumsum()
            truth(tag + " cumsum is an array", isinstance(got, hpx.DistributedArray))
            check(tag + " cumsum", got.to_numpy(), want,
                  rtol=1e-4 if dt == "float32" else 1e-10, atol=1e-3, dtype=True)
            equal(tag + " cumsum keeps the layout", got.partition_sizes, a.partition_sizes)
            check(tag + " hpx.cumsum", hpx.cumsum(a).to_numpy(), want,
                  rtol=1e-4 if dt == "float32" else 1e-10, atol=1e-3)
        # Products: mostly ones, a few twos and minus ones (no overflow).
        p = np.ones(N, dt)
        if dt != "bool":
            p[:: max(1, N // 9)] = 2
            if dt[0] in "if":
                p[1:: max(1, N // 5)] = -1
        if dt in ("int32", "uint32", "uint8", "bool"):
            continue  # NumPy multiplies these in 64 bits: see test_prod_of_small_integers
        a = hpx.from_numpy(p, distribution="cyclic")
        check(f"N={N} {dt} prod", a.prod(), np.prod(p), dtype=True)
        check(f"N={N} {dt} hpx.prod", hpx.prod(hpx.from_numpy(p, chunks=2)), np.prod(p),
              dtype=True)

# Reductions of masks and expressions.
x = values("float64", 10001, 5)
a = hpx.from_numpy(x, distribution="block_cyclic", chunks=13)
check("(a > 0).sum()", (a > 0).sum(), (x > 0).sum(), dtype=True)
check("(a > 0).mean()", (a > 0).mean(), (x > 0).mean())
check("sqrt(a*a).max()", hpx.sqrt(a * a).max(), np.sqrt(x * x).max())
check("(a*2+1).sum()", (a * 2 + 1).sum(), math.fsum(x * 2 + 1), rtol=1e-14)

# Sums are exact, where NumPy's are not.
tricky = np.array([1e16, 1.0, -1e16, 1.0] * 50 + [3.0])
t = hpx.from_numpy(tricky, distribution="cyclic")
check("exact sum", t.sum(), math.fsum(tricky), rtol=0)

# Empty arrays: identities where NumPy has them, errors where it has none.
for kw in ({}, {"distribution": "block"}, {"chunks": 3}):
    e = hpx.zeros(0, **kw)
    ei = hpx.zeros(0, dtype="int32", **kw)
    check(f"empty {kw} sum", e.sum(), 0.0, dtype=True)
    check(f"empty {kw} int sum", ei.sum(), np.int64(0), dtype=True)
    check(f"empty {kw} prod", e.prod(), 1.0)
    truth(f"empty {kw} mean is nan", np.isnan(e.mean()))
    check(f"empty {kw} any/all", (e.any(), e.all()), (False, True))
    equal(f"empty {kw} count_nonzero", e.count_nonzero(), 0)
    for what in ("min", "max", "argmin", "argmax"):
        raises(f"empty {kw} {what}", (hpx.HPXValueError,), getattr(e, what), also=(ValueError,))
    check(f"empty {kw} cumsum", e.cumsum().to_numpy(), np.zeros(0))

# 2-d: along each axis, in every 2-d layout.
for R, C in ((7, 5), (6, 4), (1, 3)):
    for dt in ("float64", "int32", "uint8", "float32", "bool"):
        x = values(dt, R * C, 9).reshape(R, C)
        for lname, kw in (("local", {}), ("block", {"distribution": "block"}),
                          ("rows", {"chunks": (2, -1)}), ("tiles", {"chunks": (2, 2)}),
                          ("grid", {"distribution": "grid"}),
                          ("cyclic rows", {"distribution": "cyclic"})):
            tag = f"{R}x{C} {dt} {lname}"
            a = hpx.from_numpy(x, **kw)
            for axis in (0, 1, -1):
                # (bool: the dtype is checked by test_bool_sum_along_axis_dtype)
                check(f"{tag} sum(axis={axis})", a.sum(axis=axis), x.sum(axis=axis),
                      rtol=1e-5 if dt == "float32" else 1e-12,
                      dtype=dt not in ("float32", "bool"))
                check(f"{tag} mean(axis={axis})", a.mean(axis=axis), x.mean(axis=axis),
                      rtol=1e-5 if dt == "float32" else 1e-12, dtype=dt != "float32")
                check(f"{tag} min(axis={axis})", a.min(axis=axis), x.min(axis=axis), dtype=True)
                check(f"{tag} max(axis={axis})", a.max(axis=axis), x.max(axis=axis), dtype=True)
                check(f"{tag} hpx.sum(axis={axis})", hpx.sum(a, axis=axis), x.sum(axis=axis),
                      rtol=1e-5)
            check(f"{tag} sum()", a.sum(), x.sum(), rtol=1e-5)
            check(f"{tag} min()", a.min(), x.min())
            equal(f"{tag} argmax()", a.argmax(), int(np.argmax(x)))
x = values("int64", 12, 1).reshape(3, 4)
a = hpx.from_numpy(x, chunks=(1, 2))
check("prod(axis=0)", a.prod(axis=0), x.prod(axis=0))
raises("sum(axis=2) of a 2-d array", (hpx.HPXIndexError,), lambda: a.sum(axis=2),
       also=(IndexError,))
check("sum(axis=0) of a 1-d array is the sum", hpx.arange(5, distribution="block").sum(axis=0),
      np.arange(5).sum(axis=0), dtype=True)
done("reductions")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_reductions_scans_axes(run_job, n):
    run_job(n, REDUCTIONS, args=(n,), timeout=180).assert_done("reductions")


ANY_RANK = r"""
import itertools
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, truth, raises, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())


def values(dt, shape, seed):
    rng = np.random.default_rng(seed)
    N = int(np.prod(shape))
    if dt == "bool":
        return (rng.random(N) < 0.3).reshape(shape)
    if dt.startswith("float"):
        return rng.uniform(-4, 4, N).astype(dt).reshape(shape)
    return rng.integers(-9, 10, N).astype(dt).reshape(shape)


def axis_sets(ndim):
    # None, every single axis (and its negative), every pair, all axes.
    yield None
    for k in range(ndim):
        yield k
        yield k - ndim
    for pair in itertools.combinations(range(ndim), 2):
        yield pair
    yield tuple(range(ndim))[::-1]


LAYOUTS = [("local", {}), ("block", {"distribution": "block"}),
           ("cyclic", {"distribution": "cyclic"}), ("chunks", {"chunks": 2}),
           ("partitions", {"num_partitions": 5})]
for shape in ((7,), (5, 4), (3, 4, 5), (2, 3, 1, 4), (4, 0, 3)):
    layouts = LAYOUTS + ([("tiles", {"chunks": (2, 3)}), ("grid", {"distribution": "grid"})]
                         if len(shape) == 2 else [])
    for dt in ("float64", "int32", "bool", "float32"):
        x = values(dt, shape, len(shape))
        # Every layout for two dtypes, the block layout for the others.
        for lname, kw in layouts if dt in ("float64", "int32") else layouts[1:2]:
            a = hpx.from_numpy(x, **kw)
            for i, axis in enumerate(axis_sets(len(shape))):
                keepdims = i % 2 == 1
                tag = f"{shape} {dt} {lname} axis={axis} keepdims={keepdims}"
                low = dt == "float32"
                rtol = 1e-5 if low else 1e-12
                for what in ("sum", "mean", "min", "max", "any", "all", "count_nonzero"):
                    want_error = None
                    try:
                        with np.errstate(all="ignore"):
                            if what == "count_nonzero":
                                want = np.count_nonzero(x, axis=axis, keepdims=keepdims)
                            else:
                                want = getattr(np, what)(x, axis=axis, keepdims=keepdims)
                    except ValueError as e:
                        want_error = e
                    if want_error is not None:
                        raises(f"{tag} {what} of nothing", (hpx.HPXValueError,),
                               lambda: getattr(a, what)(axis=axis, keepdims=keepdims),
                               also=(ValueError,))
                        continue
                    with np.errstate(all="ignore"):
                        got = getattr(a, what)(axis=axis, keepdims=keepdims)
                    check(f"{tag} {what}", got, want, rtol=rtol, dtype=True)
                    if lname == "block":
                        free = getattr(hpx, what)(a, axis=axis, keepdims=keepdims)
                        check(f"{tag} hpx.{what}", free, want, rtol=rtol)
                if dt != "bool":
                    with np.errstate(all="ignore"):
                        check(f"{tag} var", a.var(axis=axis, keepdims=keepdims),
                              x.var(axis=axis, keepdims=keepdims), rtol=1e-4 if low else 1e-9,
                              dtype=True)
                        check(f"{tag} std ddof=1", a.std(axis=axis, ddof=1, keepdims=keepdims),
                              x.std(axis=axis, ddof=1, keepdims=keepdims),
                              rtol=1e-4 if low else 1e-9)
                if dt == "float64" and isinstance(axis, tuple):
                    check(f"{tag} prod", a.prod(axis=axis, keepdims=keepdims),
                          x.prod(axis=axis, keepdims=keepdims), rtol=1e-12, dtype=True)
            for k in range(-len(shape), len(shape)):
                for what in ("argmin", "argmax"):
                    tag = f"{shape} {dt} {lname} {what}(axis={k})"
                    if x.shape[k] == 0 or (x.size == 0 and k is None):
                        raises(tag, (hpx.HPXValueError,), lambda: getattr(a, what)(axis=k),
                               also=(ValueError,))
                        continue
                    check(tag, getattr(a, what)(axis=k), getattr(np, what)(x, axis=k), dtype=True)
                    check(f"{tag} keepdims", getattr(a, what)(axis=k, keepdims=True),
                          getattr(np, what)(x, axis=k, keepdims=True), dtype=True)

# NaN: min, max and their arguments as NumPy's (the first NaN wins).
x = np.arange(60.0).reshape(3, 4, 5) % 7
x[1, 2, 3] = np.nan
x[2, 0, 0] = np.nan
x[2, 3, 1] = np.nan
a = hpx.from_numpy(x, distribution="cyclic")
for axis in (0, 1, 2, (0, 2), None):
    check(f"nan max axis={axis}", a.max(axis=axis), x.max(axis=axis))
    check(f"nan min axis={axis} keepdims", a.min(axis=axis, keepdims=True),
          x.min(axis=axis, keepdims=True))
for k in (0, 1, 2):
    check(f"nan argmax axis={k}", a.argmax(axis=k), x.argmax(axis=k), dtype=True)
    check(f"nan argmin axis={k}", a.argmin(axis=k), x.argmin(axis=k), dtype=True)
# Ties: the first index wins.
t = np.zeros((4, 6), dtype="int64")
t[:, 2] = 5
t[1, 4] = 5
tt = hpx.from_numpy(t, chunks=(1, 2))
check("ties argmax axis=1", tt.argmax(axis=1), t.argmax(axis=1), dtype=True)
check("ties argmin axis=0", tt.argmin(axis=0), t.argmin(axis=0), dtype=True)
# Bad axes are NumPy's errors.
a = hpx.from_numpy(np.ones((2, 3, 4)), distribution="block")
raises("axis 3 of 3-d", (hpx.HPXIndexError,), lambda: a.sum(axis=3), also=(IndexError,))
raises("repeated axis", (hpx.HPXValueError,), lambda: a.sum(axis=(1, -2)), also=(ValueError,))
raises("argmax over two axes", (TypeError, ValueError), lambda: a.argmax(axis=(0, 1)))
done("any rank")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_reductions_of_any_rank_over_any_axes_as_numpy(run_job, n):
    run_job(n, ANY_RANK, args=(n,), timeout=400).assert_done("any rank")


SCANS = r"""
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, raises, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())
rng = np.random.default_rng(3)
for shape in ((7,), (5, 4), (3, 4, 5), (4, 0, 3), (2, 1, 3)):
    for dt in ("int32", "float64", "bool", "uint8"):
        if dt == "bool":
            x = rng.random(shape) < 0.5
        elif dt == "float64":
            x = rng.uniform(-2, 2, shape)
        else:
            x = rng.integers(1 if dt == "uint8" else -3, 4, shape).astype(dt)
        layouts = [("local", {}), ("block", {"distribution": "block"}),
                   ("cyclic", {"distribution": "cyclic"}), ("chunks", {"chunks": 2}),
                   ("partitions", {"num_partitions": 5})]
        if len(shape) == 2:
            layouts.append(("tiles", {"chunks": (2, 3)}))
        for lname, kw in layouts if dt in ("int32", "float64") else layouts[1:3]:
            a = hpx.from_numpy(x, **kw)
            for axis in range(-len(shape), len(shape)):
                tag = f"{shape} {dt} {lname} axis={axis}"
                check(f"{tag} cumsum", a.cumsum(axis=axis), np.cumsum(x, axis=axis), dtype=True)
                check(f"{tag} cumprod", a.cumprod(axis=axis), np.cumprod(x, axis=axis),
                      dtype=True, rtol=1e-12)
            check(f"{shape} {dt} {lname} hpx.cumsum(axis=0)", hpx.cumsum(a, axis=0),
                  np.cumsum(x, axis=0), dtype=True)
            check(f"{shape} {dt} {lname} cumsum() is flat", a.cumsum(), np.cumsum(x), dtype=True)
a = hpx.from_numpy(np.ones((2, 3)), distribution="block")
raises("cumsum(axis=2) of 2-d", (hpx.HPXIndexError,), lambda: a.cumsum(axis=2),
       also=(IndexError,))
raises("cumsum(axis=(0, 1))", (TypeError,), lambda: a.cumsum(axis=(0, 1)))
done("scans")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_scans_along_an_axis_as_numpy(run_job, n):
    run_job(n, SCANS, args=(n,), timeout=300).assert_done("scans")


# --- cases NumPy users rely on (each once a bug) ---------------------------------



BUG_PRELUDE = """
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, done
"""


def test_prod_of_small_integers(run_job):
    run_job(2, BUG_PRELUDE + textwrap.dedent(r"""
    for dt in ("uint8", "int32", "uint32", "bool"):
        p = np.ones(31, dt)
        if dt != "bool":
            p[::3] = 2          # 2**11 = 2048
        a = hpx.from_numpy(p, distribution="cyclic")
        check(f"{dt} prod", a.prod(), np.prod(p), dtype=True)
        check(f"{dt} hpx.prod", hpx.prod(a), np.prod(p), dtype=True)
    done("bug")
    """)).assert_done("bug")


def test_bool_sum_along_axis_dtype(run_job):
    run_job(2, BUG_PRELUDE + textwrap.dedent(r"""
    x = np.arange(35).reshape(7, 5) % 3 == 0
    a = hpx.from_numpy(x, distribution="block")
    check("bool sum()", a.sum(), x.sum(), dtype=True)
    check("bool sum(axis=0)", a.sum(axis=0), x.sum(axis=0), dtype=True)
    check("bool sum(axis=1)", a.sum(axis=1), x.sum(axis=1), dtype=True)
    done("bug")
    """)).assert_done("bug")


def test_min_max_with_nan(run_job):
    run_job(2, BUG_PRELUDE + textwrap.dedent(r"""
    x = np.array([1.0, np.nan, 3.0, -1.0, np.nan, 2.0])
    a = hpx.from_numpy(x, distribution="cyclic")
    check("min", a.min(), np.min(x))
    check("max", a.max(), np.max(x))
    check("hpx.max", hpx.max(a), np.max(x))
    m = hpx.from_numpy(x.reshape(2, 3), distribution="block")
    check("max(axis=0)", m.max(axis=0), x.reshape(2, 3).max(axis=0))
    check("min(axis=1)", m.min(axis=1), x.reshape(2, 3).min(axis=1))
    done("bug")
    """)).assert_done("bug")


def test_cumsum_of_2d_is_flat(run_job):
    run_job(2, BUG_PRELUDE + textwrap.dedent(r"""
    x = np.arange(35.0).reshape(7, 5)
    a = hpx.from_numpy(x, chunks=(2, 2))
    got = a.cumsum()
    equal("cumsum shape", got.shape, np.cumsum(x).shape)
    check("cumsum values", got.to_numpy(), np.cumsum(x))
    equal("cumprod shape", a.cumprod().shape, np.cumprod(x).shape)
    done("bug")
    """)).assert_done("bug")

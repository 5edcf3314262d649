"""Element-wise operators and functions, dtypes and type promotion, mixed
layouts, where/astype, indexing and assignment, compared with NumPy in real
jobs of 1 to 4 localities."""

import textwrap

import pytest

OPS_PRELUDE = r"""
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, truth, raises, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())
DA = hpx.DistributedArray
HELD = set(hpx.DTYPES)


def data(dt, N, seed, nonzero=False):
    rng = np.random.default_rng(seed)       # the same on every locality
    if dt == "bool":
        return rng.random(N) < 0.5 if not nonzero else np.ones(N, bool)
    if dt.startswith("float"):
        v = rng.uniform(-10, 10, N)
        if nonzero:
            v = np.where(np.abs(v) < 0.5, 0.75, v)
        return v.astype(dt)
    if dt.startswith("int"):
        v = rng.integers(-50, 51, N)
        if nonzero:
            v = np.where(v == 0, 3, v)
        return v.astype(dt)
    v = rng.integers(0, 101, N)
    if nonzero:
        v = np.where(v == 0, 7, v)
    return v.astype(dt)


def compare(tag, got, want, rtol=None, dtype=True):
    # got: what hpxpy returned (a DistributedArray), want: NumPy's result.
    want = np.asarray(want)
    if not isinstance(got, DA):
        truth(f"{tag} gives a DistributedArray", False, f"got {type(got)}")
        got = np.asarray(got)
    else:
        got = got.to_numpy()
    low = got.dtype == np.float32 or want.dtype == np.float32 or want.dtype == np.float16
    if rtol is None:
        rtol = 1e-3 if want.dtype == np.float16 else (2e-6 if low else 1e-12)
    check(tag, got, want, rtol=rtol, atol=1e-30 if rtol < 1e-6 else 1e-6,
          dtype=dtype and want.dtype.name in HELD)


def both(tag, fn, xs, layouts, rtol=None):
    # fn(module, *arrays) on NumPy arrays and on hpxpy arrays of the same
    # values in the given layouts (keywords, or arrays already made).
    with np.errstate(all="ignore"):
        try:
            want = fn(np, *xs)
        except Exception as e:  # NumPy refuses: hpxpy should as well
            want = e
    arrays = [kw if isinstance(kw, DA) else hpx.from_numpy(x, **kw)
              for x, kw in zip(xs, layouts)]
    try:
        got = fn(hpx, *arrays)
    except Exception as e:  # noqa: BLE001
        if isinstance(want, Exception):
            truth(f"{tag} refused like NumPy", isinstance(e, type(want)) or
                  isinstance(e, (TypeError, ValueError)), repr(e))
        else:
            truth(f"{tag} raised {type(e).__name__}: {e}", False)
        return
    if isinstance(want, Exception):
        truth(f"{tag}: NumPy raises {want!r} but hpxpy gave a result", False)
        return
    if want.dtype == np.float16:
        # NumPy computes small integers in float16, which hpxpy does not
        # hold (it picks a wider float): compare the values with the same
        # computation in float64.
        with np.errstate(all="ignore"):
            want = np.asarray(fn(np, *[x.astype(np.float64) for x in xs]))
        compare(tag, got, want, 2e-6, dtype=False)
        truth(f"{tag} gives floats", got.dtype.kind == "f", repr(got.dtype))
        return
    compare(tag, got, want, rtol)
"""

OPS = OPS_PRELUDE + r"""
LAYOUTS = [
    ("block+block", {"distribution": "block"}, {"distribution": "block"}),
    ("block+cyclic", {"distribution": "block"}, {"distribution": "cyclic"}),
    ("chunks+block_cyclic", {"chunks": 3}, {"distribution": "block_cyclic", "chunks": 2}),
    ("local+num_partitions", {}, {"num_partitions": 3}),
]
N = 11

BINARY = {
    "a+b": lambda m, a, b: a + b,
    "a-b": lambda m, a, b: a - b,
    "a*b": lambda m, a, b: a * b,
    "a/b": lambda m, a, b: a / b,
    "a**2": lambda m, a, b: a ** 2,
    "power(a,2)": lambda m, a, b: m.power(a, 2),
    "minimum": lambda m, a, b: m.minimum(a, b),
    "maximum": lambda m, a, b: m.maximum(a, b),
    "a==b": lambda m, a, b: a == b,
    "a!=b": lambda m, a, b: a != b,
    "a<b": lambda m, a, b: a < b,
    "a<=b": lambda m, a, b: a <= b,
    "a>b": lambda m, a, b: a > b,
    "a>=b": lambda m, a, b: a >= b,
    "where(a>b,a,b)": lambda m, a, b: m.where(a > b, a, b),
    "a+3": lambda m, a, b: a + 3,
    "3+a": lambda m, a, b: 3 + a,
    "a-2": lambda m, a, b: a - 2,
    "100-a": lambda m, a, b: 100 - a,
    "a*2": lambda m, a, b: a * 2,
    "2*a": lambda m, a, b: 2 * a,
    "a*2.5": lambda m, a, b: a * 2.5,
    "a/4": lambda m, a, b: a / 4,
    "60/b": lambda m, a, b: 60 / b,
    "a>5": lambda m, a, b: a > 5,
    "5>=a": lambda m, a, b: 5 >= a,
    "a==7": lambda m, a, b: a == 7,
    "a<2.5": lambda m, a, b: a < 2.5,
    "minimum(a,4)": lambda m, a, b: m.minimum(a, 4),
    "maximum(3,b)": lambda m, a, b: m.maximum(3, b),
    "where(a>0,a,b*0)": lambda m, a, b: m.where(a > 0, a, b * 0),
}
INTEGER_ONLY = {
    "a//b": lambda m, a, b: a // b,
    "a%b": lambda m, a, b: a % b,
    "a//4": lambda m, a, b: a // 4,
    "100//b": lambda m, a, b: 100 // b,
    "a%7": lambda m, a, b: a % 7,
}
UNARY = {
    "-a": lambda m, a, b: -a,
    "negative": lambda m, a, b: m.negative(a),
    "abs(a)": lambda m, a, b: abs(a),
    "hpx.abs": lambda m, a, b: m.abs(a),
    "+a": lambda m, a, b: +a,
    "sqrt(abs)": lambda m, a, b: m.sqrt(abs(a)),
    "exp": lambda m, a, b: m.exp(a),
    "log(abs(b))": lambda m, a, b: m.log(abs(b)),
    "sin": lambda m, a, b: m.sin(a),
    "cos": lambda m, a, b: m.cos(a),
}

SCALAR_OPS = {k for k in BINARY if "b" not in k.replace("abs", "")}
for k, dt in enumerate(hpx.DTYPES):
    x = data(dt, N, 1)
    y = data(dt, N, 2, nonzero=True)
    # Every operation with a block and a cyclic array; the operations on
    # two arrays also with one more pair of layouts (a different one for
    # each dtype).
    for j, (lname, ka, kb) in enumerate((LAYOUTS[1], LAYOUTS[2 + k % 2] if k % 3 else LAYOUTS[0])):
        pair = (hpx.from_numpy(x, **ka), hpx.from_numpy(y, **kb))
        for name, fn in BINARY.items():
            if dt == "bool" and name in ("a-b", "100-a", "a-2", "a**2", "power(a,2)"):
                continue
            if j and name in SCALAR_OPS:
                continue
            both(f"{dt} {lname} {name}", fn, (x, y), pair)
        if dt not in ("bool", "float32", "float64"):
            for name, fn in INTEGER_ONLY.items():
                if not j or name in ("a//b", "a%b"):
                    both(f"{dt} {lname} {name}", fn, (x, y), pair)
        if dt != "bool" and not j:
            for name, fn in UNARY.items():
                both(f"{dt} {lname} {name}", fn, (x, y), pair)

# Float remainders follow NumPy (the sign of the divisor).
for dt in ("float64", "float32"):
    x = data(dt, N, 3)
    y = data(dt, N, 4, nonzero=True)
    both(f"{dt} a % b", lambda m, a, b: a % b, (x, y), LAYOUTS[1][1:])
    both(f"{dt} a % 3", lambda m, a, b: a % 3, (x, y), LAYOUTS[1][1:])

# Booleans: logic operators and what NumPy does with + and *.
p = data("bool", 13, 5)
q = data("bool", 13, 6)
for lname, ka, kb in LAYOUTS:
    for name, fn in {
        "p&q": lambda m, a, b: a & b,
        "p|q": lambda m, a, b: a | b,
        "p^q": lambda m, a, b: a ^ b,
        "~p": lambda m, a, b: ~a,
        "p&True": lambda m, a, b: a & True,
        "False|q": lambda m, a, b: False | b,
        "p+q": lambda m, a, b: a + b,
        "p*q": lambda m, a, b: a * b,
        "~(p&q)|p": lambda m, a, b: ~(a & b) | a,
        "where(p,q,p&~p)": lambda m, a, b: m.where(a, b, a & ~a),
        "abs(p)": lambda m, a, b: abs(a),
        "p==q": lambda m, a, b: a == b,
    }.items():
        both(f"bool {lname} {name}", fn, (p, q), (ka, kb))

# Masks from comparisons combine with & | ~ and select with where.
x = data("float64", 10001, 7)
y = data("float64", 10001, 8)
for lname, ka, kb in LAYOUTS:
    both(f"10001 {lname} masks", lambda m, a, b: ((a > 0) & ~(b < -5)) | (a < -9), (x, y), (ka, kb))
    both(f"10001 {lname} where", lambda m, a, b: m.where((a > b) | (b > 9), a * 2, b - 1),
         (x, y), (ka, kb))
    both(f"10001 {lname} expression", lambda m, a, b: m.sqrt(a * a + b * b) / (1 + m.abs(b)),
         (x, y), (ka, kb))

# Mixed dtypes promote as NumPy does.
MIXED = [("int32", "float32"), ("int64", "uint64"), ("uint8", "int32"), ("bool", "int64"),
         ("float32", "float64"), ("uint32", "int32"), ("uint8", "float32"), ("bool", "float32"),
         ("int32", "int64"), ("uint8", "uint64")]
for da, db in MIXED:
    x = data(da, N, 9)
    y = data(db, N, 10, nonzero=True)
    for name in ("a+b", "a*b", "a/b", "a<b", "maximum", "where(a>b,a,b)"):
        both(f"{da}+{db} {name}", BINARY[name], (x, y), LAYOUTS[1][1:])
    both(f"{db}+{da} b-a", lambda m, a, b: b * 1 - a * 1, (x, y), LAYOUTS[2][1:])
    both(f"{da} with {db} scalar", lambda m, a, b: a + b.dtype.type(1), (x, y),
         LAYOUTS[0][1:])

# astype to every dtype (values every type holds; floats truncate).
src = {
    "float64": np.array([0.0, 1.9, 2.5, 100.2, 255.0, 7.7, 0.4]),
    "float32": np.array([0.0, 1.9, 2.5, 100.2, 255.0, 7.7, 0.4], np.float32),
    "int64": np.array([0, 1, 2, 100, 255, 7, 300], np.int64),
    "int32": np.array([0, -1, 2, 100, 255, -7, 70000], np.int32),
    "uint64": np.array([0, 1, 2, 100, 255, 7, 2**40], np.uint64),
    "uint32": np.array([0, 1, 2, 100, 255, 7, 2**31], np.uint32),
    "uint8": np.array([0, 1, 2, 100, 255, 7, 128], np.uint8),
    "bool": np.array([True, False, True, True, False, True, False]),
}
for s, x in src.items():
    a = hpx.from_numpy(x, distribution="cyclic")
    for t in hpx.DTYPES:
        # Negative floats into unsigned integers: not defined (NumPy neither).
        xs = np.abs(x) if s.startswith("float") and t.startswith("u") else x
        both(f"{s}.astype({t})", lambda m, a: a.astype(t), (xs,),
             (a if xs is x else {"distribution": "cyclic"},))
    both(f"{s}.astype(np.dtype)", lambda m, a: a.astype(np.dtype("float32")), (x,),
         ({"distribution": "block"},))
    both(f"{s}.copy()", lambda m, a: a.copy(), (x,), ({"chunks": 2},))

# 2-d arrays: element-wise between any two layouts of the same shape.
m = data("float64", 35, 13).reshape(7, 5)
k = data("int32", 35, 14, nonzero=True).reshape(7, 5)
L2 = [{}, {"distribution": "block"}, {"chunks": (3, -1)}, {"chunks": (2, 2)},
      {"distribution": "grid"}, {"distribution": "cyclic"}]
for i, la in enumerate(L2):
    lb = L2[(i + 3) % len(L2)]
    tag = f"2-d {la} with {lb}"
    both(f"{tag} a+b", lambda m_, a, b: a + b, (m, k), (la, lb))
    both(f"{tag} a*b-1", lambda m_, a, b: a * b - 1, (m, k), (la, lb))
    both(f"{tag} a>b", lambda m_, a, b: a > b, (m, k), (la, lb))
    both(f"{tag} where", lambda m_, a, b: m_.where(a > 0, a, b), (m, k), (la, lb))
    both(f"{tag} sqrt(abs)", lambda m_, a, b: m_.sqrt(abs(a)), (m, k), (la, lb))
    both(f"{tag} b // 3", lambda m_, a, b: b // 3, (m, k), (la, lb))
    both(f"{tag} astype", lambda m_, a, b: b.astype("float32"), (m, k), (la, lb))

# where() with the mask, x and y in three different layouts.
x = data("float64", 101, 15)
y = data("float64", 101, 16)
both("where, three layouts", lambda m_, c, a, b: m_.where(c > 0, a, b), (y, x, y),
     ({"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": 9}))

# NaN: comparisons, sums, arg-reductions and scans follow NumPy.
nan = np.array([1.0, np.nan, 3.0, -1.0, np.nan, 2.0, 0.0])
for kw in ({"distribution": "cyclic"}, {"distribution": "block"}):
    a = hpx.from_numpy(nan, **kw)
    check(f"NaN {kw} comparisons", ((a > 0).to_numpy(), (a == a).to_numpy(), (a != a).to_numpy()),
          (nan > 0, nan == nan, nan != nan))
    check(f"NaN {kw} sum/mean", (a.sum(), a.mean()), (np.nan, np.nan))
    equal(f"NaN {kw} argmin/argmax", (a.argmin(), a.argmax()),
          (int(np.argmin(nan)), int(np.argmax(nan))))
    check(f"NaN {kw} cumsum", a.cumsum().to_numpy(), np.cumsum(nan))
    check(f"NaN {kw} minimum/maximum", (hpx.minimum(a, 2.0).to_numpy(),
                                         hpx.maximum(a, 2.0).to_numpy()),
          (np.minimum(nan, 2.0), np.maximum(nan, 2.0)))
    check(f"NaN {kw} any/all/count_nonzero", (a.any(), a.all(), a.count_nonzero()),
          (True, False, 6))

# In-place operators rebind to a new array, as for any Python object
# without __iadd__; iteration reads element by element.
a = hpx.arange(6, dtype="int64", distribution="block")
b = a
a += 10
a *= 2
check("a += 10; a *= 2", a.to_numpy(), (np.arange(6) + 10) * 2, dtype=True)
check("the old array is unchanged", b.to_numpy(), np.arange(6))
equal("iteration", [int(v) for v in hpx.arange(5, distribution="cyclic")], [0, 1, 2, 3, 4])

# Integer overflow wraps as in NumPy.
big = np.array([250, 3, 255, 128, 1], np.uint8)
both("uint8 wraps +", lambda m, a: a + a, (big,), ({"distribution": "block"},))
both("uint8 wraps *", lambda m, a: a * 3, (big,), ({"distribution": "block"},))
both("uint8 -a wraps", lambda m, a: -a, (big,), ({"distribution": "cyclic"},))
i32 = np.array([2**31 - 1, -2**31, 5], np.int32)
both("int32 wraps +", lambda m, a: a + 1, (i32,), ({"distribution": "block"},))

done("ops")
"""

INDEXING = OPS_PRELUDE + r"""
# Reads are not collective: each locality may read anything.
for kw in ({}, {"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": 4},
           {"distribution": "block_cyclic", "chunks": 3}, {"num_partitions": 5}):
    tag = str(kw)
    x = np.arange(23, dtype=np.int64) * 3 - 10
    a = hpx.from_numpy(x, **kw)
    for i in (0, 1, 5, 22, -1, -23, np.int64(7)):
        check(f"{tag} a[{i}]", a[i], x[i], dtype=True)
    for sl in (slice(2, 9), slice(None, 5), slice(20, None), slice(5, 5), slice(-4, -1),
               slice(0, 100), slice(None, None, 2), slice(10, 2, -1), slice(3, 18, 4)):
        check(f"{tag} a[{sl}]", a[sl], x[sl], dtype=True)
    check(f"{tag} fancy a[[0, 3, 22]]", a[[0, 3, 22]], x[[0, 3, 22]])
    check(f"{tag} mask a[x > 0]", a[x > 0], x[x > 0])
    # Assignment is collective: every locality makes the same one.
    a[4] = 1000
    x[4] = 1000
    a[-2] = -7
    x[-2] = -7
    a[np.int64(9)] = 5.0
    x[9] = 5
    a[10:14] = 42
    x[10:14] = 42
    a[0:3] = np.array([9, 8, 7])
    x[0:3] = [9, 8, 7]
    a[15:] = np.arange(8)
    x[15:] = np.arange(8)
    check(f"{tag} after assignments", a.to_numpy(), x, dtype=True)
    check(f"{tag} element after assignment", a[4], 1000)
    hpx.barrier()
    a.fill(3)
    x[:] = 3
    check(f"{tag} fill", a.to_numpy(), x, dtype=True)
    b = a.copy()
    a.fill(1)
    check(f"{tag} copy is a copy", b.to_numpy(), np.full(23, 3), dtype=True)
    equal(f"{tag} copy keeps the layout", (b.partition_sizes, b.localities),
          (a.partition_sizes, a.localities))
    # Other ways in and out.
    equal(f"{tag} tolist", a.tolist(), [1] * 23)
    equal(f"{tag} len", len(a), 23)
    truth(f"{tag} repr", "DistributedArray" in repr(a) and "23" in repr(a), repr(a))
    equal(f"{tag} bool of one element", bool(hpx.from_numpy(np.array([2]), **kw)), True)
    equal(f"{tag} bool of one zero", bool(hpx.zeros(1, **kw)), False)
    raises(f"{tag} bool of many", ValueError, lambda: bool(a))

# 2-d reads and element assignment.
m = np.arange(35, dtype=np.float64).reshape(7, 5)
for kw in ({}, {"distribution": "block"}, {"chunks": (3, -1)}, {"chunks": (2, 2)},
           {"distribution": "grid"}):
    a = hpx.from_numpy(m, **kw)
    check(f"2-d {kw} a[2, 3]", a[2, 3], m[2, 3], dtype=True)
    check(f"2-d {kw} a[-1, -1]", a[-1, -1], m[-1, -1])
    check(f"2-d {kw} a[1:3, 2:]", a[1:3, 2:], m[1:3, 2:])
    check(f"2-d {kw} a[:, 0]", a[:, 0], m[:, 0])
    a[6, 4] = -1.5
    a[0, 0] = 99
    want = m.copy()
    want[6, 4] = -1.5
    want[0, 0] = 99
    check(f"2-d {kw} after assignment", a.to_numpy(), want)

# redistribute: a copy in another layout, same values.
x = np.arange(101, dtype=np.float32) / 7
a = hpx.from_numpy(x, distribution="block")
for kw, parts in (({"distribution": "cyclic"}, n), ({"chunks": 10}, 11),
                  ({"num_partitions": 6}, 6), ({"distribution": "local"}, 1),
                  ({"distribution": "block", "localities": [n - 1]}, 1),
                  ({"distribution": "block_cyclic", "chunks": 7}, n)):
    r = a.redistribute(**kw)
    check(f"redistribute {kw}", r.to_numpy(), x, dtype=True)
    equal(f"redistribute {kw} partitions", r.num_partitions, parts)
    if "localities" in kw:
        equal(f"redistribute {kw} placed", r.localities, kw["localities"])
check("redistribute leaves the original", a.to_numpy(), x)
flags = hpx.from_numpy(x > 3, distribution="cyclic").redistribute(chunks=17)
check("redistribute bool", flags.to_numpy(), x > 3, dtype=True)

# Reads by one locality only: not collective, nothing waits for the others.
x = np.arange(50, dtype=np.float64)
a = hpx.from_numpy(x, distribution="cyclic")
if me == n - 1:
    for _ in range(3):
        check("lone to_numpy", hpx.to_numpy(a), x)
        check("lone a[7]", a[7], x[7])
        check("lone a[3:9]", a[3:9], x[3:9])
        check("lone np.asarray", np.asarray(a, dtype=np.float32), x.astype(np.float32),
              dtype=True)
equal("collectives after lone reads", hpx.all_reduce(1), n)

# Layout names and small API pieces.
for kw, word in (({"distribution": "block"}, "Block"), ({"distribution": "cyclic"}, "Cyclic"),
                 ({}, "Local"), ({"chunks": 3}, "Chunks"), ({"num_partitions": 2}, "Partitions"),
                 ({"distribution": hpx.distribution.block_cyclic, "chunks": 2}, "BlockCyclic"),
                 ({"distribution": hpx.distribution.local}, "Local")):
    d = hpx.zeros(10, **kw).distribution
    truth(f"distribution name {kw}", isinstance(d, str) and word in d, repr(d))
d = hpx.zeros((4, 4), distribution=hpx.distribution.grid).distribution
truth("grid distribution name", "Grid" in d, d)
hpx.init()
equal("init() is harmless", hpx.get_num_localities(), n)
truth("version", isinstance(hpx.__version__, str) and hpx.__version__)
truth("__all__ names exist", all(hasattr(hpx, name) for name in hpx.__all__))

# Statistics methods.
v = data("float64", 1001, 11)
a = hpx.from_numpy(v, distribution="cyclic")
check("var", a.var(), v.var())
check("std", a.std(), v.std())
iv = data("int32", 11, 12)
ia = hpx.from_numpy(iv, chunks=4)
check("int var", ia.var(), iv.var())
check("cumprod", hpx.from_numpy(iv[:9] % 4 + 1, chunks=4).cumprod().to_numpy(),
      np.cumprod(iv[:9] % 4 + 1), dtype=True)
check("float cumprod", hpx.from_numpy(np.linspace(0.5, 1.5, 13), distribution="block")
      .cumprod().to_numpy(), np.cumprod(np.linspace(0.5, 1.5, 13)))
done("indexing")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_operators_functions_dtypes(run_job, n):
    run_job(n, OPS, args=(n,), timeout=180).assert_done("ops")


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_indexing_assignment_redistribute(run_job, n):
    run_job(n, INDEXING, args=(n,)).assert_done("indexing")


# --- cases NumPy users rely on (each once a bug) ---------------------------------



def test_where_with_python_scalar_keeps_dtype(run_job):
    run_job(2, OPS_PRELUDE + textwrap.dedent(r"""
    x = np.array([-1.5, 2.0, 3.0, -4.0], np.float32)
    a = hpx.from_numpy(x, distribution="block")
    check("float32 where(a>0, a, 0)", hpx.where(a > 0, a, 0).to_numpy(),
          np.where(x > 0, x, 0), dtype=True)
    i = np.array([-1, 2, 3, -4], np.int32)
    b = hpx.from_numpy(i, distribution="cyclic")
    check("int32 where(b>0, 1, b)", hpx.where(b > 0, 1, b).to_numpy(),
          np.where(i > 0, 1, i), dtype=True)
    u = np.array([2**63 + 1, 5, 2**64 - 1, 0], np.uint64)
    c = hpx.from_numpy(u, distribution="block")
    check("uint64 where(c>5, c, 0) exact", hpx.where(c > 5, c, 0).to_numpy(),
          np.where(u > 5, u, 0), dtype=True, exact=True)
    done("bug")
    """), args=(2,)).assert_done("bug")


def test_where_bool_arrays_with_bool_scalar(run_job):
    run_job(2, OPS_PRELUDE + textwrap.dedent(r"""
    p = np.array([True, False, True, False, True])
    q = np.array([True, True, False, False, True])
    a = hpx.from_numpy(p, distribution="block")
    b = hpx.from_numpy(q, distribution="block")
    got = None
    try:
        got = hpx.where(a, b, False).to_numpy()
    except Exception as e:
        print("FAIL where(p, q, False) raised", type(e).__name__, e)
    check("where(p, q, False)", got, np.where(p, q, False), dtype=True)
    done("bug")
    """), args=(2,)).assert_done("bug")


def test_row_of_a_2d_array(run_job):
    run_job(2, OPS_PRELUDE + textwrap.dedent(r"""
    from _jobkit import guarded
    x = np.arange(35.0).reshape(7, 5)
    m = hpx.from_numpy(x, chunks=(2, -1))
    for i in (1, -1):
        check(f"m[{i}]", guarded(f"m[{i}] raises no error", lambda: m[i]), x[i])

    def set_row():
        m[1] = 0.0

    guarded("m[1] = 0 raises no error", set_row)
    x[1] = 0.0
    check("m[1] = 0", m.to_numpy(), x)
    done("bug")
    """), args=(2,)).assert_done("bug")


# --- lazy, fused expressions: NumPy's eager results ------------------------------

LAZY = OPS_PRELUDE + textwrap.dedent(r"""
x = data("float64", 20011, 5)
y = data("float64", 20011, 6)
for lay in ({"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": 7}):
    a = hpx.from_numpy(x, **lay)
    b = hpx.from_numpy(y, distribution="block")
    c = a * 2.0 + b
    truth(f"{lay} a * 2 + b is held, not run", c._core.pending)
    equal(f"{lay} shape and dtype known unevaluated", (c.shape, c.dtype), ((20011,), np.float64))
    check(f"{lay} (a*2+b).sum() exact", np.float64(c.sum()), np.float64(np.sum(x * 2.0 + y)), rtol=1e-15)
    check(f"{lay} sqrt(a*a+b*b).max()", hpx.sqrt(a * a + b * b).max(), np.sqrt(x * x + y * y).max())
    check(f"{lay} where(a > 0, a, 0.0)", hpx.where(a > 0, a, 0.0).to_numpy(), np.where(x > 0, x, 0.0))
    check(f"{lay} mean of an expression", (a - b).mean(), np.mean(x - y), rtol=1e-14)
    equal(f"{lay} count_nonzero of a mask", int((a > b).count_nonzero()), int(np.count_nonzero(x > y)))
    # What an expression reads is what the array held when it was built.
    d = a.copy()
    e = a + 1.0
    a.fill(3.0)
    a[0] = 7.0
    check(f"{lay} a copy made before fill keeps the old values", d.to_numpy(), x)
    check(f"{lay} a + 1 built before fill keeps the old values", e.to_numpy(), x + 1.0)
    check(f"{lay} a after fill", a.to_numpy(), np.where(np.arange(x.size) == 0, 7.0, 3.0))
    # A read on one locality alone of an expression all hold.
    f = b * 3.0
    if me == 0:
        check(f"{lay} to_numpy on locality 0 only", f.to_numpy(), y * 3.0)
    if n > 1:
        equal(f"{lay} the expression is still held on every locality", f._core.pending, True)
    check(f"{lay} then reduced collectively", f.sum(), np.sum(y * 3.0), rtol=1e-14)
    hpx.evaluate(f)
    truth(f"{lay} evaluate() makes it an array", not f._core.pending)
i = hpx.from_numpy(np.arange(10, dtype=np.int64), distribution="block")
z = hpx.zeros(10, dtype="int64", distribution="block")
raises("integer division by zero raises at its line", (Exception,), lambda: i // z)
k = i
for _ in range(100):
    k = k + 1
check("a long chain of additions", k.to_numpy(), np.arange(10) + 100)
nan = hpx.from_numpy(np.array([1.0, np.nan, 3.0]), distribution="block")
truth("max with a NaN is NaN", np.isnan(nan.max()))
truth("min with a NaN is NaN", np.isnan((nan + 1.0).min()))
done("lazy")
""")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_lazy_expressions_give_numpys_eager_results(run_job, n):
    run_job(n, LAZY, args=(n,), timeout=180).assert_done("lazy")


UFUNCS = OPS_PRELUDE + r"""
SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.5, 1.5, 2.5, -2.5, 0.9, -0.9, 1e-10]
LAYOUTS = [({"distribution": "block"}, {"distribution": "cyclic"}),
           ({"chunks": 3}, {"num_partitions": 4})]
UNARY = {
    name: (lambda name: lambda m, a, b: getattr(m, name)(a))(name)
    for name in ("cbrt", "exp2", "expm1", "log2", "log10", "log1p", "tan", "arcsin",
                 "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh",
                 "arctanh", "absolute", "positive", "sign", "floor", "ceil", "trunc",
                 "rint", "square", "fabs", "isnan", "isfinite", "isinf", "signbit",
                 "logical_not", "round", "around")
}
UNARY.update({
    "round(a,1)": lambda m, a, b: m.round(a, 1),
    "round(a,-1)": lambda m, a, b: m.round(a, -1),
    "a.round(2)": lambda m, a, b: a.round(2),
    "clip(a,-3,4)": lambda m, a, b: m.clip(a, -3, 4),
    "a.clip(None,2)": lambda m, a, b: a.clip(None, 2),
    "a.clip(1)": lambda m, a, b: a.clip(1),
    "zeros_like": lambda m, a, b: m.zeros_like(a),
    "ones_like(float32)": lambda m, a, b: m.ones_like(a, dtype="float32"),
    "full_like(a,7)": lambda m, a, b: m.full_like(a, 7),
    "floor(a)*2+sign(b)": lambda m, a, b: m.floor(a) * 2 + m.sign(b),
})
BINARY = {
    "fmod(a,b)": lambda m, a, b: m.fmod(a, b),
    "fmod(a,3)": lambda m, a, b: m.fmod(a, 3),
    "arctan2(a,b)": lambda m, a, b: m.arctan2(a, b),
    "arctan2(a,2.0)": lambda m, a, b: m.arctan2(a, 2.0),
    "arctan2(1.5,b)": lambda m, a, b: m.arctan2(1.5, b),
    "hypot(a,b)": lambda m, a, b: m.hypot(a, b),
    "copysign(a,b)": lambda m, a, b: m.copysign(a, b),
    "copysign(3,b)": lambda m, a, b: m.copysign(3, b),
    "logical_and(a,b)": lambda m, a, b: m.logical_and(a, b),
    "logical_or(a,0)": lambda m, a, b: m.logical_or(a, 0),
    "logical_xor(a,b)": lambda m, a, b: m.logical_xor(a, b),
    "clip(a,b,None)": lambda m, a, b: m.clip(a, b, None),
}
for k, dt in enumerate(hpx.DTYPES):
    x = data(dt, 13, 11 + k)
    y = data(dt, 13, 31 + k, nonzero=True)
    if dt.startswith("float"):
        x = np.concatenate([x, np.array(SPECIAL, dtype=dt)])
        y = np.concatenate([y, np.array(SPECIAL[::-1], dtype=dt)])
        y[y == 0] = 1.25    # a divisor: fmod by zero is NaN here, an error for integers
    else:
        x, y = np.concatenate([x, x[:11]]), np.concatenate([y, y[:11]])
    for ka, kb in LAYOUTS[k % 2:] + LAYOUTS[:k % 2]:
        for name, fn in UNARY.items():
            if dt == "bool" and name not in ("isnan", "isfinite", "isinf", "logical_not",
                                             "zeros_like", "full_like(a,7)"):
                continue
            both(f"{dt} {name}", fn, (x, y), (ka, kb))
        for name, fn in BINARY.items():
            if dt == "bool" and not name.startswith("logical"):
                continue
            both(f"{dt} {name}", fn, (x, y), (ka, kb))
        break

# Empty arrays, and functions of an expression fused with a reduction.
e = np.zeros(0)
both("empty floor", lambda m, a: m.floor(a), (e,), ({"distribution": "block"},))
both("empty isnan", lambda m, a: m.isnan(a), (e,), ({"distribution": "block"},))
v = data("float64", 1001, 5)
a = hpx.from_numpy(v, distribution="block")
check("tanh(a).sum()", hpx.tanh(a).sum(), np.tanh(v).sum(), rtol=1e-12)
check("count_nonzero(isfinite(log(a)))", hpx.count_nonzero(hpx.isfinite(hpx.log(a))),
      np.count_nonzero(np.isfinite(np.log(v))) if True else None)
with np.errstate(all="ignore"):
    check("round(a*1e3)", hpx.round(a * 1e3).to_numpy(), np.round(v * 1e3), rtol=0)
raises("fmod of integers by zero", hpx.HPXValueError,
       lambda: hpx.fmod(hpx.from_numpy(np.arange(5), distribution="block"), 0).to_numpy())
raises("reciprocal of integers", hpx.DTypeError,
       lambda: hpx.reciprocal(hpx.from_numpy(np.arange(1, 5), distribution="block")))
raises("clip without bounds", hpx.HPXValueError, lambda: a.clip())

# Matrices made from row and column numbers, in several layouts.
for lay in ({}, {"distribution": "cyclic"}, {"chunks": (2, 3)}, {"distribution": "block"}):
    compare(f"eye(5,7,k=2) {lay}", hpx.eye(5, 7, k=2, **lay), np.eye(5, 7, k=2))
    compare(f"identity(4,int32) {lay}", hpx.identity(4, dtype="int32", **lay),
            np.identity(4, dtype="int32"))
    compare(f"tri(6,4,k=-1) {lay}", hpx.tri(6, 4, k=-1, **lay), np.tri(6, 4, k=-1))
    m = data("float64", 6 * 7, 9).reshape(6, 7)
    b = data("bool", 6 * 7, 10).reshape(6, 7)
    dm, db = hpx.from_numpy(m, **lay), hpx.from_numpy(b, **lay)
    for k in (-7, -2, 0, 1, 6, 9):
        compare(f"tril(m,{k}) {lay}", hpx.tril(dm, k), np.tril(m, k))
        compare(f"triu(m,{k}) {lay}", hpx.triu(dm, k), np.triu(m, k))
        compare(f"diag(m,{k}) {lay}", hpx.diag(dm, k), np.diag(m, k))
    compare(f"tril(bool) {lay}", hpx.tril(db), np.tril(b))
    compare(f"diag(bool) {lay}", hpx.diag(db, 1), np.diag(b, 1))
for k in (-2, 0, 3):
    v = data("int32", 5, 11)
    compare(f"diag(v,{k})", hpx.diag(hpx.from_numpy(v, distribution="block"), k), np.diag(v, k))
compare("eye(0)", hpx.eye(0), np.eye(0))
raises("tril of a 1-d array", hpx.HPXValueError, lambda: hpx.tril(hpx.from_numpy(np.ones(3))))
done("ufuncs")
"""


@pytest.mark.parametrize("n", [1, 2, 3])
def test_numpys_element_wise_functions(run_job, n):
    run_job(n, UFUNCS, args=(n,), timeout=180).assert_done("ufuncs")


BROADCASTING = OPS_PRELUDE + r"""
LAYOUTS_2D = [{"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": 2},
              {"chunks": (2, 3)}, {"distribution": "grid"}, {}]
CASES = [
    # (shape of a, shape of b) as the issue lists them, and more.
    ((3, 4), (4,)), ((3, 4), (1,)), ((1, 4), (3, 4)), ((2, 3, 1), (2, 1, 4)),
    ((7, 5), (7, 1)), ((5,), (4, 1)), ((0, 4), (4,)), ((13, 6), (1, 6)),
    ((2, 3, 4), (3, 4)), ((2, 3, 4), (2, 1, 1)),
]
OPS = {
    "a+b": lambda m, a, b: a + b,
    "a-b": lambda m, a, b: a - b,
    "b*a": lambda m, a, b: b * a,
    "a/b": lambda m, a, b: a / b,
    "a>b": lambda m, a, b: a > b,
    "a==b": lambda m, a, b: a == b,
    "maximum": lambda m, a, b: m.maximum(a, b),
    "where(a>b,a,b)": lambda m, a, b: m.where(a > b, a, b),
    "arctan2": lambda m, a, b: m.arctan2(a, b),
    "(a-b).sum()": lambda m, a, b: (a - b).sum(),
}
for k, (sa, sb) in enumerate(CASES):
    x = data("float64", int(np.prod(sa)), 40 + k).reshape(sa)
    y = data("float64", int(np.prod(sb)), 60 + k, nonzero=True).reshape(sb)
    for j, (la, lb) in enumerate([(LAYOUTS_2D[k % 6], LAYOUTS_2D[(k + 1) % 6]),
                                  (LAYOUTS_2D[(k + 3) % 6], LAYOUTS_2D[(k + 2) % 6])]):
        def fits(shape, lay):
            return len(shape) == 2 or not (isinstance(lay.get("chunks"), tuple) or
                                           lay.get("distribution") == "grid")
        la = la if fits(sa, la) else {"distribution": "block"}
        lb = lb if fits(sb, lb) else {"distribution": "cyclic"}
        for name, fn in OPS.items():
            if name == "(a-b).sum()":
                got = fn(hpx, hpx.from_numpy(x, **la), hpx.from_numpy(y, **lb))
                check(f"{sa}{sb} {la} {lb} {name}", got, fn(np, x, y), rtol=1e-12)
                continue
            both(f"{sa}{sb} {la} {lb} {name}", fn, (x, y), (la, lb))
        # One operand a NumPy array (or a list), on either side.
        a = hpx.from_numpy(x, **la)
        with np.errstate(all="ignore"):
            compare(f"{sa}{sb} {la} a-ndarray", a - y, x - y)
            compare(f"{sa}{sb} {la} ndarray-a", y - a, y - x)
            compare(f"{sa}{sb} {la} a<ndarray", a < y, x < y)
            compare(f"{sa}{sb} {la} where(ndarray>0,a,0)", hpx.where(y > 0, a, 0.0),
                    np.where(y > 0, x, 0.0))

# The NumPy idioms: centring columns and rows, a list, integers with floats.
x = data("float64", 1001 * 7, 3).reshape(1001, 7)
i = data("int32", 1001 * 7, 4).reshape(1001, 7)
for lay in LAYOUTS_2D:
    a = hpx.from_numpy(x, **lay)
    compare(f"{lay} a - a.mean(axis=0)", a - a.mean(axis=0), x - x.mean(axis=0))
    compare(f"{lay} a / a.sum(axis=1)[:, None]", a / a.sum(axis=1)[:, None],
            x / x.sum(axis=1)[:, None])
    compare(f"{lay} a * [1..7]", a * list(range(1, 8)), x * np.arange(1, 8))
    ia = hpx.from_numpy(i, **lay)
    compare(f"{lay} int32 + float32 row", ia + np.ones(7, "float32"), i + np.ones(7, "float32"))
    compare(f"{lay} int32 // row", ia // np.arange(1, 8, dtype="int32"),
            i // np.arange(1, 8, dtype="int32"))
    compare(f"{lay} broadcast_to", hpx.broadcast_to(np.arange(7.0), (5, 7)),
            np.broadcast_to(np.arange(7.0), (5, 7)))
raises("shapes that do not broadcast", ValueError,
       lambda: hpx.from_numpy(x) + np.ones(6))
raises("shapes that do not broadcast (arrays)", ValueError,
       lambda: hpx.from_numpy(x) * hpx.from_numpy(np.ones((1001, 2))))
raises("integer // by a zero row", hpx.HPXValueError,
       lambda: (hpx.from_numpy(i) // np.zeros(7, "int32")).to_numpy())
raises("broadcast_to a smaller shape", ValueError, lambda: hpx.broadcast_to(np.ones(7), (3,)))
done("broadcasting")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_broadcasting_as_numpy(run_job, n):
    run_job(n, BROADCASTING, args=(n,), timeout=240).assert_done("broadcasting")


RESHAPE = OPS_PRELUDE + r"""
x = np.arange(60.0)
for lay in ({"distribution": "block"}, {"chunks": 10}, {"chunks": 7}, {"distribution": "cyclic"},
            {}, {"num_partitions": 6}):
    a = hpx.from_numpy(x, **lay)
    for shape in ((12, 5), (-1, 4), (3, 4, 5), (60,), (2, -1, 2, 3)):
        compare(f"{lay} reshape{shape}", a.reshape(shape), x.reshape(shape))
    compare(f"{lay} reshape(6, 10)", a.reshape(6, 10), x.reshape(6, 10))
    m = a.reshape(12, 5)
    compare(f"{lay} ravel", m.ravel(), x)
    compare(f"{lay} hpx.ravel", hpx.ravel(m), x)
    compare(f"{lay} flatten", m.flatten(), x)
    truth(f"{lay} flatten copies", not m.flatten().same_array_memory(m))
    compare(f"{lay} expand_dims", hpx.expand_dims(m, (0, -1)), np.expand_dims(x.reshape(12, 5), (0, -1)))
    compare(f"{lay} squeeze", hpx.squeeze(hpx.expand_dims(m, 1)), x.reshape(12, 5))
    compare(f"{lay} squeeze(axis)", hpx.expand_dims(m, 0).squeeze(0), x.reshape(12, 5))
    # A view shares memory (a write through it is seen), as NumPy's; a copy
    # does not. Which one is made depends on the layout and is reported.
    view = m.same_array_memory(a)
    m[1, 0] = -7.0
    equal(f"{lay} write through reshape", a[5] == -7.0, view)
    a[5] = 5.0
    compare(f"{lay} reshape of an expression", (a * 2).reshape(5, 12), (x * 2).reshape(5, 12))
    raises(f"{lay} reshape to 61", ValueError, lambda: a.reshape(61))
    raises(f"{lay} two unknowns", ValueError, lambda: a.reshape(-1, -1))
    raises(f"{lay} squeeze a long axis", ValueError, lambda: m.squeeze(0))
# Views are made where each partition holds whole rows of the new shape.
equal("block view", hpx.from_numpy(x, chunks=10).reshape(6, 10)
      .same_array_memory(hpx.from_numpy(x, chunks=10)), False)  # two arrays
a = hpx.from_numpy(x, chunks=10)
truth("chunks of whole rows make a view", a.reshape(6, 10).same_array_memory(a))
truth("cyclic makes a copy", not hpx.from_numpy(x, distribution="cyclic").reshape(6, 10)
      .same_array_memory(a))
compare("empty reshape", hpx.from_numpy(np.zeros(0), distribution="block").reshape(0, 3),
        np.zeros((0, 3)))
compare("2-d tiles reshape", hpx.from_numpy(x.reshape(6, 10), chunks=(2, 3)).reshape(10, 6),
        x.reshape(10, 6))
# The transpose, in every 2-d layout, uneven and empty.
for shape in ((6, 10), (7, 3), (1, 5), (0, 4), (13, 1)):
    m = data("int32", int(np.prod(shape)), 12).reshape(shape)
    for lay in ({}, {"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": (2, 3)},
                {"distribution": "grid"}, {"chunks": 4}):
        dm = hpx.from_numpy(m, **lay)
        compare(f"{shape} {lay} .T", dm.T, m.T)
        compare(f"{shape} {lay} transpose()", hpx.transpose(dm), m.T)
        compare(f"{shape} {lay} swapaxes", dm.swapaxes(0, 1), np.swapaxes(m, 0, 1))
        compare(f"{shape} {lay} .T.T", dm.T.T, m)
        compare(f"{shape} {lay} .T + 1", dm.T + 1, m.T + 1)
compare("1-d .T", hpx.from_numpy(x).T, x.T)
m = hpx.from_numpy(x.reshape(6, 10))
compare("transpose((1, 0))", m.transpose((1, 0)), x.reshape(6, 10).transpose((1, 0)))
compare("transpose(0, 1)", m.transpose(0, 1), x.reshape(6, 10))
raises("transpose with a repeated axis", ValueError, lambda: m.transpose(0, 0))
raises("transpose with an axis too many", ValueError, lambda: m.transpose(1, 0, 2))
# Permutations of any rank, in every layout, uneven and empty.
for shape in ((3, 4, 5), (2, 1, 3, 2), (4, 0, 2)):
    t = data("int32", int(np.prod(shape)), 5).reshape(shape)
    nd = len(shape)
    for lay in ({}, {"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": 2}):
        dt = hpx.from_numpy(t, **lay)
        tag = f"{shape} {lay}"
        compare(f"{tag} .T", dt.T, t.T)
        compare(f"{tag} transpose(axes)", dt.transpose((1, 0) + tuple(range(2, nd))),
                t.transpose((1, 0) + tuple(range(2, nd))))
        compare(f"{tag} transpose(*axes)", dt.transpose(*range(nd)[::-1]), t.transpose())
        compare(f"{tag} hpx.transpose(axes)", hpx.transpose(dt, (2, 0, 1) + tuple(range(3, nd))),
                np.transpose(t, (2, 0, 1) + tuple(range(3, nd))))
        compare(f"{tag} swapaxes(0, -1)", dt.swapaxes(0, -1), t.swapaxes(0, -1))
        compare(f"{tag} moveaxis(0, -1)", hpx.moveaxis(dt, 0, -1), np.moveaxis(t, 0, -1))
        compare(f"{tag} moveaxis([0, 1], [-1, 0])", dt.moveaxis([0, 1], [-1, 0]),
                np.moveaxis(t, [0, 1], [-1, 0]))
        compare(f"{tag} .T + 1", dt.T + 1, t.T + 1)
t3 = hpx.from_numpy(x.reshape(3, 4, 5), distribution="block")
raises("transpose with a repeated axis (3-d)", ValueError, lambda: t3.transpose(0, 0, 1))
raises("moveaxis with a repeated axis", ValueError, lambda: t3.moveaxis([0, 0], [1, 2]))
raises("moveaxis out of range", IndexError, lambda: t3.moveaxis(3, 0))
done("reshape")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_reshape_views_and_copies(run_job, n):
    run_job(n, RESHAPE, args=(n,), timeout=180).assert_done("reshape")


MATMUL = OPS_PRELUDE + r"""
rng = np.random.default_rng(4)
for (m, k, q) in ((7, 5, 3), (1, 4, 6), (5, 1, 5), (0, 3, 2), (4, 0, 3), (9, 8, 0)):
    A, B = rng.standard_normal((m, k)), rng.standard_normal((k, q))
    v, w = rng.standard_normal(k), rng.standard_normal(m)
    for lay in ({}, {"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": (2, 2)},
                {"distribution": "grid"}, {"chunks": 3}):
        tag = f"{m}x{k} @ {k}x{q} {lay}"
        a, b = hpx.from_numpy(A, **lay), hpx.from_numpy(B, **lay)
        compare(f"{tag} a @ b", a @ b, A @ B)
        compare(f"{tag} a @ B (NumPy)", a @ B, A @ B)
        compare(f"{tag} A (NumPy) @ b", A @ b, A @ B)
        compare(f"{tag} a @ v", a @ v, A @ v)
        compare(f"{tag} w @ a", w @ a, w @ A)
        compare(f"{tag} hpx.matmul", hpx.matmul(a, b), np.matmul(A, B))
        compare(f"{tag} hpx.dot", hpx.dot(a, b), np.dot(A, B))
        compare(f"{tag} a.dot", a.dot(B), A.dot(B))
        compare(f"{tag} tensordot 1", hpx.tensordot(a, b, 1), np.tensordot(A, B, 1))
        compare(f"{tag} tensordot ([0], [0])", hpx.tensordot(a, a, ([0], [0])),
                np.tensordot(A, A, ([0], [0])))
        check(f"{tag} tensordot 2", hpx.tensordot(a, a, 2), np.tensordot(A, A, 2), rtol=1e-9)
        check(f"{tag} vdot", hpx.vdot(a, a), np.vdot(A, A), rtol=1e-9)
    x = hpx.from_numpy(v, distribution="block")
    check(f"{k} x @ x", x @ x, v @ v, rtol=1e-9)
    compare(f"{k} outer", hpx.outer(x, w), np.outer(v, w))
    compare(f"{k} outer NumPy first", hpx.outer(w, x), np.outer(w, v))
# Integers wrap as NumPy's; dtypes promote as NumPy's.
I = rng.integers(-9, 9, (6, 4)).astype("int32")
J = rng.integers(-9, 9, (4, 5)).astype("int32")
compare("int32 @ int32", hpx.from_numpy(I, distribution="block") @ hpx.from_numpy(J), I @ J)
compare("int32 @ float64", hpx.from_numpy(I) @ J.astype("float64"), I @ J.astype("float64"))
big = np.full((3, 3), 2**62, dtype="int64")
compare("int64 wraps", hpx.from_numpy(big) @ hpx.from_numpy(big), big @ big)
compare("float32", hpx.from_numpy(I.astype("float32")) @ J.astype("float32"),
        I.astype("float32") @ J.astype("float32"))
# Bad shapes and types are NumPy's errors.
a = hpx.from_numpy(np.ones((3, 4)), distribution="block")
raises("core dimensions differ", ValueError, lambda: a @ np.ones((3, 2)))
raises("3-d", ValueError, lambda: hpx.from_numpy(np.ones((2, 2, 2))) @ np.ones((2, 2)))
raises("bool", (hpx.DTypeError, TypeError), lambda: hpx.from_numpy(np.ones((2, 2), bool)) @ np.ones((2, 2), bool))
done("matmul")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_matmul_dot_and_friends_as_numpy(run_job, n):
    run_job(n, MATMUL, args=(n,), timeout=240).assert_done("matmul")


MESHGRID = OPS_PRELUDE + r"""
x, y, z = np.arange(4.0), np.linspace(-1, 1, 3), np.array([2, 5], dtype="int32")
for indexing in ("xy", "ij"):
    for inputs in ((x, y), (x, y, z), (x,)):
        dist = [hpx.from_numpy(v, distribution="block") for v in inputs]
        want = np.meshgrid(*inputs, indexing=indexing)
        got = hpx.meshgrid(*dist, indexing=indexing)
        equal(f"{indexing} {len(inputs)} count", len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            compare(f"{indexing} {len(inputs)} grid {i}", g, w)
        sparse = hpx.meshgrid(*inputs, indexing=indexing, sparse=True)
        for i, (g, w) in enumerate(zip(sparse, np.meshgrid(*inputs, indexing=indexing,
                                                            sparse=True))):
            compare(f"{indexing} {len(inputs)} sparse {i}", g, w)
X, Y = hpx.meshgrid(x, y)
compare("a function of the grid", hpx.sqrt(X * X + Y * Y), np.sqrt(np.add.outer(y * 0, x) ** 2
        + np.add.outer(y, x * 0) ** 2))
raises("bad indexing", ValueError, lambda: hpx.meshgrid(x, y, indexing="yx"))
done("meshgrid")
"""


@pytest.mark.parametrize("n", [1, 3])
def test_meshgrid_as_numpy(run_job, n):
    run_job(n, MESHGRID, args=(n,), timeout=120).assert_done("meshgrid")

"""Creation functions with every layout, uneven and empty sizes, the
attributes of the arrays, and the zero-copy local partitions, in real jobs
of 1 to 4 (and 5) localities."""

import pytest

LAYOUT_HELPERS = r"""
import math
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, truth, guarded, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())
equal("locality id in range", 0 <= me < n, True)


def balanced(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def layouts_1d(N):
    # (name, keywords, expected partition sizes, their localities,
    #  round robin?, the owner of each element)
    everyone = list(range(n))
    some = sorted({n - 1, 0}, reverse=True)        # [n-1, 0] (or [0])
    k = 1000 if N > 100 else 3
    out = []

    def boxes(sizes, locs):
        owner = np.repeat(np.array(locs, dtype=np.int64), sizes) if sizes else np.zeros(0, np.int64)
        return owner

    for name, kw in [("none", {}), ("local", {"distribution": "local"}),
                     ("local on n-1", {"distribution": "local", "localities": [n - 1]})]:
        locs = kw.get("localities", [0])
        out.append((name, kw, [N], locs, False, np.full(N, locs[0], dtype=np.int64)))
    for name, kw, L in [("block", {"distribution": "block"}, everyone),
                        ("block enum", {"distribution": hpx.distribution.block}, everyone),
                        ("block on some", {"distribution": "block", "localities": some}, some)]:
        sizes = balanced(N, len(L))
        out.append((name, kw, sizes, L, False, boxes(sizes, L)))
    for name, kw, L in [("cyclic", {"distribution": "cyclic"}, everyone),
                        ("cyclic enum", {"distribution": hpx.distribution.cyclic}, everyone),
                        ("cyclic on some", {"distribution": "cyclic", "localities": some}, some)]:
        sizes = [len(range(i, N, len(L))) for i in range(len(L))]
        owner = np.array(L, dtype=np.int64)[np.arange(N) % len(L)]
        out.append((name, kw, sizes, L, True, owner))
    default_chunk = max(1, N // (4 * n))
    for name, kw, c in [("block_cyclic", {"distribution": "block_cyclic"}, default_chunk),
                        ("block_cyclic chunks", {"distribution": "block_cyclic", "chunks": k}, k),
                        ("cyclic chunks", {"distribution": "cyclic", "chunks": k}, k),
                        ("block_cyclic enum", {"distribution": hpx.distribution.block_cyclic,
                                               "chunks": 2}, 2)]:
        owner = (np.arange(N) // c) % n
        sizes = [int((owner == i).sum()) for i in range(n)]
        out.append((name, kw, sizes, everyone, True, owner))
    for name, kw, L in [("chunks", {"chunks": k}, everyone),
                        ("chunks on some", {"chunks": k, "localities": some}, some),
                        ("block chunks", {"distribution": "block", "chunks": k}, everyone)]:
        p = max(1, math.ceil(N / k))
        sizes = [min(k, N - i * k) for i in range(p)] if N else [0]
        locs = [L[i % len(L)] for i in range(p)]
        out.append((name, kw, sizes, locs, False, boxes(sizes, locs)))
    for name, kw, L in [("num_partitions", {"num_partitions": 5}, everyone),
                        ("num_partitions on some", {"num_partitions": 3, "localities": some}, some)]:
        p = kw["num_partitions"]
        sizes = balanced(N, p)
        locs = [L[i % len(L)] for i in range(p)]
        out.append((name, kw, sizes, locs, False, boxes(sizes, locs)))
    return out


def check_layout(tag, a, shape, sizes, locs, owner, roundrobin, expected):
    # Attributes.
    equal(f"{tag} shape", a.shape, tuple(shape))
    equal(f"{tag} ndim", a.ndim, len(shape))
    equal(f"{tag} size", a.size, int(np.prod(shape, dtype=np.int64)))
    equal(f"{tag} len", len(a), shape[0])
    equal(f"{tag} dtype", a.dtype, expected.dtype)
    if sizes is not None:
        equal(f"{tag} num_partitions", a.num_partitions, len(sizes))
        equal(f"{tag} partition_sizes", a.partition_sizes, list(sizes))
        equal(f"{tag} localities", a.localities, list(locs))
    equal(f"{tag} partition_sizes add up", sum(a.partition_sizes), a.size)
    equal(f"{tag} one locality per partition", len(a.localities), a.num_partitions)
    holders = {l for l, s in zip(a.localities, a.partition_sizes) if s > 0}
    equal(f"{tag} is_distributed", a.is_distributed, len(holders) > 1)
    equal(f"{tag} is_view", a.is_view(), False)
    # Values, read on every locality.
    check(f"{tag} to_numpy", a.to_numpy(), expected, dtype=True)
    check(f"{tag} np.asarray", np.asarray(a), expected, dtype=True)
    # This locality's partitions: zero-copy views of its own elements.
    views = a.local_partitions()
    mine = [s for l, s in zip(a.localities, a.partition_sizes) if l == me]
    equal(f"{tag} number of local views", len(views), len(mine))
    equal(f"{tag} local view sizes", [v.size for v in views], mine)
    offsets = a.local_offsets()
    equal(f"{tag} one offset per view", len(offsets), len(views))
    lp = a.local_partition
    if len(views) == 0:
        truth(f"{tag} local_partition empty", isinstance(lp, np.ndarray) and lp.size == 0,
              repr(lp))
    elif len(views) == 1:
        truth(f"{tag} local_partition is the view", isinstance(lp, np.ndarray)
              and lp.shape == views[0].shape
              and (lp.size == 0 or np.shares_memory(lp, views[0])), repr(type(lp)))
    else:
        truth(f"{tag} local_partition lists the views", isinstance(lp, list)
              and len(lp) == len(views), repr(type(lp)))
    for v in views:
        truth(f"{tag} view writable", v.flags.writeable)
        equal(f"{tag} view dtype", v.dtype, expected.dtype)
    if roundrobin is True and owner is not None:
        got = np.concatenate([v.reshape(-1) for v in views]) if views else np.zeros(0, expected.dtype)
        rows = expected[owner == me]
        check(f"{tag} round-robin views hold this locality's rows", got, rows.reshape(-1))
    # A view with an offset is the box of the array that starts there
    # (round-robin partitions have none, unless they are one box, as with
    # one locality).
    for v, o in zip(views, offsets):
        if v.size == 0:
            continue
        if roundrobin is not True:
            truth(f"{tag} box view has an offset", o is not None, repr(o))
        if o is None:
            continue
        box = tuple(slice(s, s + e) for s, e in zip(o, v.shape))
        if v.ndim == expected.ndim:
            check(f"{tag} view at {o}", v, expected[box])
        else:
            check(f"{tag} view at {o} (flat)", v.reshape(-1),
                  expected[box[:v.ndim]].reshape(-1))
    return views


def check_writes(tag, a, owner, expected):
    # Every locality writes into its own partitions (zero-copy); after a
    # barrier every locality sees every write.
    hpx.barrier()  # every locality is done reading the values made
    views = a.local_partitions()
    for v in views:
        v[...] = -(me + 1)
    hpx.barrier()
    if owner is not None:
        want = -(owner + 1)
        if want.ndim < expected.ndim:
            want = np.broadcast_to(want[:, None], expected.shape)
        check(f"{tag} writes into local partitions seen everywhere", a.to_numpy(),
              want.astype(expected.dtype))
    total = sum(-(l + 1) * s for l, s in zip(a.localities, a.partition_sizes))
    check(f"{tag} writes seen by sum()", a.sum(), float(total))
    hpx.barrier()
"""

CREATION_1D = LAYOUT_HELPERS + r"""
for N in (10001, 7, 1, 0):
    for name, kw, sizes, locs, rr, owner in layouts_1d(N):
        tag = f"N={N} {name}"
        f64 = np.arange(N, dtype=np.float64)
        a = hpx.arange(N, dtype="float64", **kw)
        check_layout(tag + " arange", a, (N,), sizes, locs, owner, rr, f64)
        check_writes(tag + " arange", a, owner, f64)
        x = (np.arange(N) * 7 % 13 - 6).astype(np.int64)
        c = hpx.from_numpy(x, **kw)
        check_layout(tag + " from_numpy", c, (N,), sizes, locs, owner, rr, x)
        check(tag + " zeros", hpx.zeros(N, **kw).to_numpy(), np.zeros(N), dtype=True)
        check(tag + " linspace", hpx.linspace(-1.0, 2.0, N, **kw).to_numpy(),
              np.linspace(-1.0, 2.0, N), dtype=True)
        if N != 7 or "enum" in name:
            continue
        # Every creation function, with every layout, at one uneven size.
        b = hpx.zeros((N,), dtype="int32", **kw)
        check_layout(tag + " zeros int32", b, (N,), sizes, locs, owner, rr, np.zeros(N, np.int32))
        check(tag + " ones", hpx.ones(N, **kw).to_numpy(), np.ones(N), dtype=True)
        check(tag + " ones uint8", hpx.ones(N, dtype=np.uint8, **kw).to_numpy(),
              np.ones(N, np.uint8), dtype=True)
        check(tag + " full", hpx.full(N, 7.25, **kw).to_numpy(), np.full(N, 7.25), dtype=True)
        check(tag + " full int", hpx.full((N,), 3, dtype="int64", **kw).to_numpy(),
              np.full(N, 3, np.int64), dtype=True)
        e = hpx.empty(N, dtype="float32", **kw)
        equal(tag + " empty shape", e.shape, (N,))
        equal(tag + " empty dtype", e.dtype, np.dtype(np.float32))
        equal(tag + " empty partitions", e.partition_sizes, sizes)
        check(tag + " arange(1, N+1, 3)", hpx.arange(1, N + 1, 3, **kw).to_numpy(),
              np.arange(1, N + 1, 3), dtype=True)
        check(tag + " arange float step", hpx.arange(0.5, N / 2 + 0.5, 0.5, **kw).to_numpy(),
              np.arange(0.5, N / 2 + 0.5, 0.5), dtype=True)
        check(tag + " arange descending", hpx.arange(N, 0, -1, dtype="int32", **kw).to_numpy(),
              np.arange(N, 0, -1, dtype=np.int32), dtype=True)
        check(tag + " linspace float32", hpx.linspace(0, 1, N, dtype="float32", **kw).to_numpy(),
              np.linspace(0, 1, N, dtype=np.float32), rtol=1e-6, dtype=True)
        check(tag + " array([...])", hpx.array(x.tolist(), **kw).to_numpy(),
              np.array(x.tolist()), dtype=True)
        xb = x > 0
        check_layout(tag + " from_numpy bool", hpx.from_numpy(xb, **kw), (N,), sizes, locs,
                     owner, rr, xb)

# Empty arrays of every kind.
for kw in ({}, {"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": 4}):
    for make in (lambda: hpx.zeros(0, **kw), lambda: hpx.arange(0, **kw),
                 lambda: hpx.from_numpy(np.zeros(0, np.int32), **kw),
                 lambda: hpx.linspace(0, 1, 0, **kw), lambda: hpx.full((0,), 2.0, **kw)):
        z = make()
        equal(f"empty {kw} size", (z.size, z.shape, len(z)), (0, (0,), 0))
        check(f"empty {kw} to_numpy", z.to_numpy(), np.zeros(0, z.dtype))
        equal(f"empty {kw} tolist", z.tolist(), [])
    z2 = hpx.zeros((0, 3), **kw)
    check(f"empty 2-d {kw}", z2.to_numpy(), np.zeros((0, 3)), dtype=True)

done("creation")
"""

CREATION_DTYPES = LAYOUT_HELPERS + r"""
values = {
    "float64": np.linspace(-3.5, 1e6, 11),
    "float32": np.linspace(-3.5, 1e3, 11).astype(np.float32),
    "int64": np.array([-2**62, -5, 0, 1, 2**40, 7, -1, 3, 9, 2**62, 11], np.int64),
    "int32": np.array([-2**31, -5, 0, 1, 2**30, 7, -1, 3, 9, 2**31 - 1, 11], np.int32),
    "uint64": np.array([0, 1, 2**63, 2**64 - 1, 5, 6, 7, 8, 9, 10, 11], np.uint64),
    "uint32": np.array([0, 1, 2**31, 2**32 - 1, 5, 6, 7, 8, 9, 10, 11], np.uint32),
    "uint8": np.array([0, 1, 127, 128, 255, 6, 7, 8, 9, 10, 11], np.uint8),
    "bool": np.array([True, False, True, True, False, False, True, False, True, True, False]),
}
equal("DTYPES", tuple(hpx.DTYPES), tuple(values))
for dt, x in values.items():
    for name, kw in [("local", {}), ("block", {"distribution": "block"}),
                     ("cyclic", {"distribution": "cyclic"}), ("chunks", {"chunks": 4}),
                     ("block_cyclic", {"distribution": "block_cyclic", "chunks": 2})]:
        tag = f"{dt} {name}"
        a = hpx.from_numpy(x, **kw)
        equal(tag + " dtype", a.dtype, x.dtype)
        check(tag + " from_numpy round trip", a.to_numpy(), x, dtype=True, exact=True)
        check(tag + " tolist", np.array(a.tolist(), dtype=x.dtype), x, exact=True)
        for i in (0, 3, -1, len(x) - 2):
            check(f"{tag} a[{i}]", a[i], x[i], exact=True)
            equal(f"{tag} a[{i}] type", type(a[i]), type(x[i]) if dt != "bool" else bool)
        check(tag + " zeros", hpx.zeros(len(x), dtype=dt, **kw).to_numpy(),
              np.zeros(len(x), dt), dtype=True)
        check(tag + " ones", hpx.ones(len(x), dtype=np.dtype(dt), **kw).to_numpy(),
              np.ones(len(x), dt), dtype=True)
        check(tag + " full", hpx.full(len(x), x[2], dtype=dt, **kw).to_numpy(),
              np.full(len(x), x[2], dt), dtype=True, exact=True)
        if dt != "bool":
            check(tag + " arange", hpx.arange(0, 20, 2, dtype=dt, **kw).to_numpy(),
                  np.arange(0, 20, 2, dtype=dt), dtype=True)
    # full() takes its dtype from the value when none is given.
    check(f"{dt} full infers dtype", hpx.full(5, x[1], distribution="block").to_numpy(),
          np.full(5, x[1]), dtype=True, exact=True)

# arange's default dtype follows NumPy (int64 for ints, float64 for floats).
check("arange ints default", hpx.arange(10, distribution="block").to_numpy(),
      np.arange(10), dtype=True)
check("arange floats default", hpx.arange(0.0, 5.0, 0.25, distribution="cyclic").to_numpy(),
      np.arange(0.0, 5.0, 0.25), dtype=True)
check("linspace default num=50", hpx.linspace(0, 1, distribution="block").to_numpy(),
      np.linspace(0, 1), dtype=True)
check("array alias", hpx.array([[1, 2], [3, 4]]).to_numpy(), np.array([[1, 2], [3, 4]]),
      dtype=True)
done("dtypes")
"""

CREATION_2D = LAYOUT_HELPERS + r"""
def layouts_2d(R, C):
    everyone = list(range(n))
    out = [("local", {}, [R * C], [0], np.zeros(R, np.int64), False)]
    sizes = balanced(R, n)
    out.append(("block", {"distribution": "block"}, [s * C for s in sizes], everyone,
                np.repeat(np.arange(n), sizes), False))
    for r in (2, 3):
        p = max(1, math.ceil(R / r))
        rs = [min(r, R - i * r) for i in range(p)] if R else [0]
        locs = [i % n for i in range(p)]
        out.append((f"chunks=({r},-1)", {"chunks": (r, -1)}, [s * C for s in rs], locs,
                    np.repeat(np.array(locs), rs) if R else np.zeros(0, np.int64), False))
        out.append((f"block chunks=({r},None)", {"distribution": "block", "chunks": (r, None)},
                    [s * C for s in rs], locs,
                    np.repeat(np.array(locs), rs) if R else np.zeros(0, np.int64), False))
    # Row round robin: each partition holds its rows, flattened.
    out.append(("cyclic", {"distribution": "cyclic"},
                [len(range(i, R, n)) * C for i in range(n)], everyone, np.arange(R) % n, True))
    # Tiles go block-cyclically over a grid of localities (pr x pc, as
    # square as n allows, or grid=): tile (ti, tj) lives on locality
    # (ti % pr) * pc + tj % pc.
    pr = max(d for d in range(1, n + 1) if n % d == 0 and d * d <= n)
    for r, c, g in ((2, 2, None), (3, 4, None), (1, 1, None), (2, 2, (n, 1)), (3, 2, (1, n))):
        gr, gc = g if g else (pr, n // pr)
        rt, ct = max(1, math.ceil(R / r)), max(1, math.ceil(C / c))
        sizes, locs = [], []
        owner = np.zeros((R, C), np.int64)
        for ti in range(rt):
            for tj in range(ct):
                loc = (ti % gr) * gc + tj % gc
                if c >= C:
                    loc = ti % n    # a tile as wide as the array: row chunks
                h = max(0, min(r, R - ti * r))
                w = max(0, min(c, C - tj * c))
                sizes.append(h * w)
                locs.append(loc)
                owner[ti * r: ti * r + h, tj * c: tj * c + w] = loc
        kw = {"chunks": (r, c)}
        if g:
            kw["grid"] = g
        out.append((f"tiles=({r},{c}) grid={g}", kw, sizes, locs, owner, False))
    # One tile per locality of the grid, rows and columns split evenly.
    for g in (None, (1, n), (n, 1)):
        gr, gc = g if g else (pr, n // pr)
        rs, cs = balanced(R, gr), balanced(C, gc)
        sizes = [h * w for h in rs for w in cs]
        owner = np.repeat(np.repeat(np.arange(n).reshape(gr, gc), rs, axis=0), cs, axis=1)
        kw = {"distribution": "grid"}
        if g:
            kw["grid"] = g
        out.append((f"grid={g}", kw, sizes, list(range(n)), owner, False))
    return out


for R, C in ((7, 5), (6, 4), (1, 3), (0, 3)):
    x = (np.arange(R * C, dtype=np.float64).reshape(R, C) * 1.5 - 4)
    for name, kw, sizes, locs, owner, rr in layouts_2d(R, C):
        tag = f"{R}x{C} {name}"
        a = hpx.from_numpy(x, **kw)
        check_layout(tag + " from_numpy", a, (R, C), sizes, locs, owner, rr, x)
        z = hpx.zeros((R, C), dtype="int32", **kw)
        check_layout(tag + " zeros", z, (R, C), sizes, locs, owner, rr, np.zeros((R, C), np.int32))
        check(tag + " ones", hpx.ones((R, C), **kw).to_numpy(), np.ones((R, C)), dtype=True)
        check(tag + " full", hpx.full((R, C), 2.5, **kw).to_numpy(), np.full((R, C), 2.5),
              dtype=True)
        for i, j in ((0, 0), (R - 1, C - 1), (R // 2, 1), (-1, -2)):
            if R:
                check(f"{tag} a[{i},{j}]", a[i, j], x[i, j])
        if R:
            check(tag + " a[:, 1] (a column)", a[:, 1], x[:, 1])
        check_writes(tag + " from_numpy", a, owner, x)

# 3-d arrays are cut along axis 0.
x3 = np.arange(4 * 3 * 2, dtype=np.int64).reshape(4, 3, 2)
a3 = hpx.from_numpy(x3, distribution="block")
check("3-d to_numpy", a3.to_numpy(), x3, dtype=True)
equal("3-d ndim", a3.ndim, 3)
check("3-d element", a3[3, 2, 1], x3[3, 2, 1])
check("3-d chunks=(1, -1, -1)", hpx.from_numpy(x3, chunks=(1, -1, -1)).to_numpy(), x3)
done("creation-2d")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_creation_1d_every_layout(run_job, n):
    run_job(n, CREATION_1D, args=(n,), timeout=120).assert_done("creation")


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_creation_every_dtype(run_job, n):
    run_job(n, CREATION_DTYPES, args=(n,)).assert_done("dtypes")


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_creation_2d_rows_tiles_grid(run_job, n):
    run_job(n, CREATION_2D, args=(n,), timeout=120).assert_done("creation-2d")

"""hpxpy.random: the same seed gives the same values for any number of
localities and any layout; values follow the asked distribution."""

import pytest

RANDOM = r"""
import hashlib
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, truth, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())

LAYOUTS = [{}, {"distribution": "block"}, {"distribution": "cyclic"}, {"chunks": 777},
           {"distribution": "block_cyclic", "chunks": 5}, {"num_partitions": 3},
           {"distribution": "block", "localities": [n - 1]}]
N = 10001
digest = hashlib.sha256()


def same_everywhere(tag, make):
    # The values do not depend on the layout; returns them.
    ref = make(**LAYOUTS[0]).to_numpy()
    for kw in LAYOUTS[1:]:
        check(f"{tag} with {kw}", make(**kw).to_numpy(), ref, exact=True, dtype=True)
    digest.update(tag.encode())
    digest.update(ref.tobytes())
    return ref


u = same_everywhere("uniform", lambda **kw: hpx.random.uniform(-2.0, 3.0, size=N, seed=7, **kw))
equal("uniform dtype", u.dtype, np.dtype(np.float64))
truth("uniform in [low, high)", u.min() >= -2.0 and u.max() < 3.0, f"{u.min()} {u.max()}")
check("uniform mean", u.mean(), 0.5, atol=0.05)
check("uniform spread", u.std(), 5 / np.sqrt(12), atol=0.05)
truth("uniform values differ", len(np.unique(u)) > N * 0.99)

r = same_everywhere("random", lambda **kw: hpx.random.random(N, seed=3, **kw))
truth("random in [0, 1)", r.min() >= 0.0 and r.max() < 1.0)
check("random mean", r.mean(), 0.5, atol=0.02)

g = same_everywhere("normal", lambda **kw: hpx.random.normal(10.0, 2.0, size=(N,), seed=11, **kw))
check("normal mean", g.mean(), 10.0, atol=0.1)
check("normal std", g.std(), 2.0, atol=0.1)
check("normal within 3 sigma", np.mean(np.abs(g - 10) < 6), 0.9973, atol=0.003)

i = same_everywhere("integers", lambda **kw: hpx.random.integers(-5, 17, size=N, seed=5, **kw))
equal("integers dtype", i.dtype, np.dtype(np.int64))
truth("integers in [low, high)", i.min() == -5 and i.max() == 16, f"{i.min()} {i.max()}")
check("integers cover the range", len(np.unique(i)), 22)
i32 = same_everywhere("integers int32",
                      lambda **kw: hpx.random.integers(0, 1000, size=N, seed=5, dtype="int32", **kw))
equal("integers int32 dtype", i32.dtype, np.dtype(np.int32))
u8 = same_everywhere("integers uint8",
                     lambda **kw: hpx.random.integers(0, 256, size=N, seed=1, dtype="uint8", **kw))
truth("uint8 covers 0..255", u8.min() == 0 and u8.max() == 255)
f32 = same_everywhere("uniform float32",
                      lambda **kw: hpx.random.uniform(0, 1, size=N, seed=2, dtype="float32", **kw))
equal("float32 dtype", f32.dtype, np.dtype(np.float32))
truth("float32 in [0, 1)", f32.min() >= 0 and f32.max() < 1)

# Another seed gives other values; the same seed the same ones again.
other = hpx.random.uniform(-2.0, 3.0, size=N, seed=8, distribution="block").to_numpy()
truth("another seed, other values", np.mean(other == u) < 0.01)
again = hpx.random.uniform(-2.0, 3.0, size=N, seed=7, distribution="cyclic").to_numpy()
check("the same seed again", again, u, exact=True)
# 2-d random arrays do not depend on the layout either.
m = hpx.random.uniform(-2.0, 3.0, size=(N // 7, 7), seed=7, chunks=(100, -1))
equal("2-d random shape", m.shape, (N // 7, 7))
m2 = hpx.random.uniform(-2.0, 3.0, size=(N // 7, 7), seed=7).to_numpy()
check("2-d random independent of layout", m.to_numpy(), m2, exact=True)
digest.update(m2.tobytes())
# Reductions of random arrays agree with NumPy on the gathered values.
a = hpx.random.normal(size=N, seed=4, distribution="cyclic")
x = a.to_numpy()
check("random sum", a.sum(), np.sum(x), rtol=1e-12)
equal("random argmax", a.argmax(), int(np.argmax(x)))
print("DIGEST", digest.hexdigest())
done("random")
"""


@pytest.fixture(scope="module")
def plain_digest():
    """The values' digest from a plain run (one process, no launcher)."""
    from conftest import run_job

    result = run_job(1, RANDOM, args=(1,), plain=True)
    result.assert_done("random")
    (d,) = result.marker_values(0, "DIGEST")
    return d


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_random_same_values_any_locality_count(run_job, plain_digest, n):
    result = run_job(n, RANDOM, args=(n,)).assert_done("random")
    for i in range(n):
        assert result.marker_values(i, "DIGEST") == [plain_digest], result.describe()

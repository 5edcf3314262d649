"""Errors inside a running job: each raises the right hpxpy exception class
(also the matching built-in one) with a message, on every locality, and the
job goes on and ends normally."""

import pytest

ERRORS = r"""
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, truth, raises, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())
V, I, L, D = hpx.HPXValueError, hpx.HPXIndexError, hpx.LocalityIndexError, hpx.DTypeError

# The classes themselves.
for cls, base in ((V, ValueError), (I, IndexError), (L, IndexError), (D, TypeError),
                  (hpx.LocalityLostError, hpx.HPXError), (hpx.JobAbortedError, hpx.HPXError),
                  (hpx.CollectiveMismatchError, hpx.HPXError), (hpx.HPXError, RuntimeError)):
    truth(f"{cls.__name__} is a {base.__name__}", issubclass(cls, base))
    truth(f"{cls.__name__} is an HPXError", issubclass(cls, hpx.HPXError))

a = hpx.arange(10, dtype="float64", distribution="block")
b = hpx.arange(11, dtype="float64", distribution="cyclic")
m = hpx.zeros((3, 4), chunks=(1, -1))

# --- mismatched shapes ----------------------------------------------------------
raises("a + b, shapes 10 and 11", V, lambda: a + b, also=(ValueError,))
raises("a * b", V, lambda: a * b)
raises("a < b", V, lambda: a < b)
raises("minimum(a, b)", V, lambda: hpx.minimum(a, b))
raises("where(a > 0, a, b)", V, lambda: hpx.where(a > 0, a, b))
raises("(3, 4) + (12,)", V, lambda: m + hpx.zeros(12, distribution="block"))
raises("(3, 4) + (4, 3)", V, lambda: m + hpx.zeros((4, 3)))

# --- unsupported dtypes -----------------------------------------------------------
for dt in ("int16", "int8", "float16", "complex128", np.complex64, "uint16", "not a dtype"):
    raises(f"zeros dtype={dt}", D, lambda: hpx.zeros(5, dtype=dt), also=(TypeError,))
raises("from_numpy complex", D, lambda: hpx.from_numpy(np.zeros(3, complex)), also=(TypeError,))
raises("from_numpy int16", D, lambda: hpx.from_numpy(np.arange(3, dtype=np.int16),
                                                     distribution="block"))
raises("from_numpy strings", D, lambda: hpx.from_numpy(np.array(["a", "b"])))
raises("full with a complex value", D, lambda: hpx.full(3, 1j))
raises("arange float16", D, lambda: hpx.arange(4, dtype="float16"))
raises("astype int8", D, lambda: a.astype("int8"))
raises("random dtype int16", D, lambda: hpx.random.integers(0, 5, size=4, dtype="int16"))
raises("all_reduce of a complex array", D, lambda: hpx.all_reduce(np.ones(2, complex)))
raises("all_reduce of an int16 array", D, lambda: hpx.all_reduce(np.ones(2, np.int16)))

# --- operations a dtype does not take --------------------------------------------------
ints = hpx.arange(10, distribution="block")
flags = ints > 4
raises("float // float", D, lambda: a // a, also=(TypeError,))
raises("int // 2.5", D, lambda: ints // 2.5)
raises("bool - bool", D, lambda: flags - flags)
raises("-bool", D, lambda: -flags)
raises("~int", D, lambda: ~ints)
raises("int & int", D, lambda: ints & ints)
raises("int | bool", D, lambda: ints | flags)
# NumPy arrays combine with DistributedArrays by broadcasting, as in NumPy;
# shapes that do not broadcast are a ValueError.
raises("a + NumPy array of another length", hpx.HPXValueError, lambda: a + np.ones(9))
raises("where with a NumPy condition of another length", hpx.HPXValueError,
       lambda: hpx.where(np.ones(3, bool), a, a))
raises("DistributedArray()", TypeError, lambda: hpx.DistributedArray())

# --- indices out of range --------------------------------------------------------------
raises("a[10] of 10", I, lambda: a[10], also=(IndexError,))
raises("a[-11] of 10", I, lambda: a[-11], also=(IndexError,))
raises("b[100]", I, lambda: b[100])
raises("m[3, 0] of (3, 4)", I, lambda: m[3, 0])
raises("m[0, 4] of (3, 4)", I, lambda: m[0, 4])
raises("m[0, -5]", I, lambda: m[0, -5])
raises("empty[0]", I, lambda: hpx.zeros(0, distribution="block")[0])


def set_out_of_range():
    a[10] = 1.0


raises("a[10] = 1", I, set_out_of_range)
raises("a[1, 2] of a 1-d array", V, lambda: a[1, 2], also=(ValueError,))
raises("m.sum(axis=2)", I, lambda: m.sum(axis=2), also=(IndexError,))
raises("m.mean(axis=-3)", I, lambda: m.mean(axis=-3))
raises("a.sum(axis=1) of 1-d", I, lambda: a.sum(axis=1), also=(IndexError,))
raises("a.sum(axis=(0, 0))", V, lambda: a.sum(axis=(0, 0)), also=(ValueError,))


def strided_assignment():
    a[::2] = 1.0


raises("a[::2] = 1", V, strided_assignment)

# --- localities and roots that are not in the job ----------------------------------
for root in (n, n + 3, -1):
    raises(f"broadcast root={root}", L, lambda: hpx.broadcast(me, root=root), also=(IndexError,))
    raises(f"reduce root={root}", L, lambda: hpx.reduce(me, root=root))
    raises(f"reduce array root={root}", L, lambda: hpx.reduce(np.ones(3), root=root))
    raises(f"gather root={root}", L, lambda: hpx.gather(me, root=root))
    raises(f"scatter root={root}", L,
           lambda: hpx.scatter(list(range(n)) if me == 0 else None, root=root))
    raises(f"zeros localities=[{root}]", L,
           lambda: hpx.zeros(10, distribution="block", localities=[0, root]), also=(IndexError,))
raises("zeros localities=[]", L, lambda: hpx.zeros(10, localities=[]))
raises("gather of a DistributedArray root=n", L, lambda: hpx.gather(a, root=n))
raises("redistribute localities=[n]", L, lambda: a.redistribute(distribution="block",
                                                             localities=[n]))
c = hpx.Communicator()
raises("Communicator broadcast root=size", L, lambda: c.broadcast(1, root=c.size))

# --- bad arguments -----------------------------------------------------------------------
raises("unknown distribution", V, lambda: hpx.zeros(10, distribution="diagonal"),
       also=(ValueError,))
raises("chunks and num_partitions", V, lambda: hpx.zeros(10, chunks=2, num_partitions=2))
raises("chunks=0", V, lambda: hpx.zeros(10, chunks=0))
raises("num_partitions=0", V, lambda: hpx.zeros(10, num_partitions=0))
raises("chunks for a local array", V, lambda: hpx.zeros(10, distribution="local", chunks=2))
raises("negative shape", V, lambda: hpx.zeros((3, -1)))
raises("0-d array", V, lambda: hpx.zeros(()))
raises("arange step 0", V, lambda: hpx.arange(0, 10, 0))
raises("chunks tuple too short", V, lambda: hpx.zeros((4, 4), chunks=(2,)))
raises("tiles with cyclic", V, lambda: hpx.zeros((4, 4), chunks=(2, 2), distribution="cyclic"))
raises("3-d tiles", V, lambda: hpx.zeros((4, 4, 4), chunks=(2, 2, 2)))
raises("all_reduce op median", V, lambda: hpx.all_reduce(me, op="median"), also=(ValueError,))
raises("bitwise all_reduce of floats", (V, D), lambda: hpx.all_reduce(1.5, op="bitwise_or"))
raises("reduce of a DistributedArray", V, lambda: hpx.reduce(a))
raises("inclusive_scan of a DistributedArray", V, lambda: hpx.inclusive_scan(a))
raises("all_reduce(DistributedArray, bitwise_or)", V,
       lambda: hpx.all_reduce(ints, op="bitwise_or"))
raises("all_to_all with too few values", V, lambda: hpx.all_to_all([1] * (n + 1)))
raises("min of an empty array", V, lambda: hpx.zeros(0, distribution="cyclic").min())
raises("a sub-group without a name", V, lambda: hpx.Communicator(None, [0]))
raises("a sub-group without members", V, lambda: hpx.Communicator("nobody", []))
raises("a sub-group listing a locality twice", V,
       lambda: hpx.Communicator("twice", [0] + list(range(n))))
if n > 1:
    # Only members make a sub-group: locality 0 makes a group of itself, the
    # others are refused.
    if me == 0:
        g = hpx.Communicator("only0", [0])
        equal("a group of locality 0 alone", g.all_reduce(5), 5)
    else:
        raises("making a group one is not a member of", V,
               lambda: hpx.Communicator("only0", [0]))

# --- the job still works after all these -----------------------------------------------
check("still computing", (a * 2).sum(), 90.0)
equal("still collective", hpx.all_reduce(1), n)
hpx.barrier()
done("errors")
"""

MISMATCH = r"""
import numpy as np
import hpxpy as hpx
from _jobkit import check, equal, truth, raises, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())
C = hpx.CollectiveMismatchError

# Locality 0 waits in a barrier, the others in an all_reduce: every one
# learns of the mismatch (no hang), with a message naming both calls.
e = raises("barrier vs all_reduce", C,
           lambda: hpx.barrier() if me == 0 else hpx.all_reduce(1), also=(hpx.HPXError,))
truth("the message names the calls", e is not None and "barrier" in str(e)
      and "all_reduce" in str(e), str(e))
equal("collectives work after a mismatch", hpx.all_reduce(me), sum(range(n)))

# The same collective with different operations.
raises("all_reduce sum vs max", C,
       lambda: hpx.all_reduce(me, op="sum" if me % 2 else "max"))
equal("and again", hpx.all_gather(me), list(range(n)))

# broadcast vs gather.
raises("broadcast vs gather", C,
       lambda: hpx.broadcast(1, root=0) if me == n - 1 else hpx.gather(1, root=0))
# The same collective with different roots, sizes or element types.
raises("broadcast with different roots", C, lambda: hpx.broadcast(me, root=me))
raises("all_reduce of arrays of different sizes", C, lambda: hpx.all_reduce(np.ones(me + 1)))
raises("all_reduce int here, float there", C,
       lambda: hpx.all_reduce(1 if me == 0 else 1.5))
raises("all_reduce int32 here, int64 there", C,
       lambda: hpx.all_reduce(np.ones(2, np.int32 if me else np.int64)))
# Array creation is collective too: different shapes are a mismatch.
raises("zeros of different shapes", C, lambda: hpx.zeros(10 + me, distribution="block"))
raises("arange here, zeros there", C,
       lambda: hpx.arange(10, dtype="float64", distribution="block") if me
       else hpx.zeros(10, distribution="block"))
# A sub-group: the mismatch stays in it, the world goes on.
evens = list(range(0, n, 2))
if me in evens and len(evens) > 1:
    g = hpx.Communicator("evens", evens)
    raises("mismatch in a sub-group", C, lambda: g.barrier() if g.rank == 0 else g.all_gather(1))
    equal("the sub-group after its mismatch", g.all_reduce(1), len(evens))
equal("the world after all that", hpx.all_reduce(me), sum(range(n)))
hpx.barrier()
done("mismatch")
"""

AFTER_FINALIZE = r"""
import hpxpy as hpx
from _jobkit import equal, raises, done, expected_localities

me, n = hpx.get_locality_id(), hpx.get_num_localities()
equal("number of localities", n, expected_localities())
equal("works before", hpx.all_reduce(1), n)
hpx.finalize()
raises("zeros after finalize", hpx.JobAbortedError, lambda: hpx.zeros(3))
raises("barrier after finalize", hpx.JobAbortedError, lambda: hpx.barrier())
done("finalize")
"""


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_errors_raise_right_class_and_job_goes_on(run_job, n):
    run_job(n, ERRORS, args=(n,)).assert_done("errors")


@pytest.mark.parametrize("n", [2, 3, 4])
def test_collective_mismatch(run_job, n):
    run_job(n, MISMATCH, args=(n,), timeout=60).assert_done("mismatch")


@pytest.mark.parametrize("n", [1, 3])
def test_calls_after_finalize(run_job, n):
    run_job(n, AFTER_FINALIZE, args=(n,)).assert_done("finalize")

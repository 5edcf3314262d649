"""HPXPy: distributed NumPy-style arrays and collectives over N processes,
on the hpx-rs runtime.

Run plainly (``python3 script.py``) a script is one locality. Run as
``hpxrun -l 4 python3 script.py`` (or ``python -m hpxpy.run -l 4
script.py``) it is 4 processes, each running the whole script (SPMD, as
with MPI): every call that makes or changes a distributed array, and every
collective, is made by every locality in the same order, and they share
one array. The job ends when every script has finished; it fails, on
every locality, as soon as one raises.

    import hpxpy as hpx
    a = hpx.zeros((10000,), chunks=1000)       # 10 partitions of 1000
    b = hpx.arange(10000, dtype="float64", distribution="block")
    c = a + 2.0 * b                            # runs where the data lives
    print(hpx.get_locality_id(), c.sum(), c.to_numpy()[:4])
"""

import atexit
import builtins
import json
import os
import pickle
import signal
import sys
import threading

import numpy as np

from . import _core
from ._array import (
    DTYPES,
    DistributedArray,
    _broadcast_shape,
    _create,
    _dtype_name,
    _matmul,
    _is_scalar,
    _operand,
    _promote,
    _spread,
    broadcast_to,
    distribution,
    from_numpy_view,
)
from ._errors import (
    CollectiveMismatchError,
    DTypeError,
    HPXError,
    HPXIndexError,
    HPXValueError,
    JobAbortedError,
    LocalityIndexError,
    LocalityLostError,
)

__version__ = "0.1.0"

def _quiet_interrupt(_signum, _frame):
    """In a job of several localities Ctrl-C stops the whole job: the
    runtime aborts it in order, and the call waiting here raises
    JobAbortedError (a script computing outside hpxpy is ended by the
    runtime after 3 s). A KeyboardInterrupt on top would only garble the
    report."""


# A member of a job of several localities joins it now (each must). Its
# Python-level SIGINT handler is set first: the runtime's handler, set at
# start, runs before it.
if _core._configure() > 1:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _quiet_interrupt)
    _core._join()

_failure = None
_consequence = False
_previous_hook = sys.excepthook


def _excepthook(kind, value, tb):
    global _failure, _consequence
    _failure = f"{kind.__name__}: {value}"
    # Failing because another locality failed first: not the cause.
    _consequence = isinstance(value, (JobAbortedError, LocalityLostError)) and not (
        f"locality {_core.get_locality_id()}: received SIG" in str(value)
    )
    _previous_hook(kind, value, tb)


sys.excepthook = _excepthook


def _exit_now(code):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _at_exit():
    try:
        _core._finish(_failure)
    except HPXError as e:
        if _failure is None:
            # Another locality failed, or the job was stopped: say why and
            # end with hpx's "ended because of another" code.
            print(f"Error: {e}", file=sys.stderr)
            _exit_now(3 if isinstance(e, (JobAbortedError, LocalityLostError)) else 1)
    if _consequence:
        # hpxrun reports the first failure that is not "ended because of
        # another" (exit code 3) as the job's cause.
        _exit_now(3)


atexit.register(_at_exit)


# --- the job ---------------------------------------------------------------

get_locality_id = _core.get_locality_id
get_num_localities = _core.get_num_localities


def counters():
    """This locality's counters as a dict (the Rust runtime's
    ``hpx::counters()``): parcels and bytes sent and received per peer and
    per parcelport, actions by name (calls, runs, total and longest time),
    tasks, time waiting per collective operation, AGAS lookups and cache
    hits, bytes held in array partitions. ``hpxrun --counters`` prints the
    whole job's table at its end."""
    return json.loads(_core._counters_json())


def init(**_ignored):
    """Starts the runtime if it has not started (it starts by itself;
    kept for HPXPy's ``hpx.init()``)."""
    _core.get_num_localities()


def finalize():
    """Ends this locality's part of the job now, as at exit: waits until
    every locality has ended its part (a locality still in a collective
    fails with CollectiveMismatchError); hpxpy calls fail afterwards."""
    _core._finish(None)


# --- creation --------------------------------------------------------------


def zeros(shape, dtype="float64", distribution=None, chunks=None, num_partitions=None,
          localities=None, grid=None):
    """An array of zeros. ``distribution``: None or ``'local'`` (one
    partition on locality 0), ``'block'``, ``'cyclic'``, ``'block_cyclic'``,
    ``'grid'`` (2-d); ``chunks=k`` makes partitions of k rows placed round
    robin (``chunks=(r, c)`` makes 2-d tiles); ``num_partitions=p`` makes p;
    ``localities=[..]`` places them on those localities."""
    return _create("fill", (0,), shape, dtype, distribution, chunks, num_partitions, localities, grid)


def ones(shape, dtype="float64", distribution=None, chunks=None, num_partitions=None,
         localities=None, grid=None):
    """An array of ones (see :func:`zeros` for the layout keywords)."""
    return _create("fill", (1,), shape, dtype, distribution, chunks, num_partitions, localities, grid)


def full(shape, fill_value, dtype=None, distribution=None, chunks=None, num_partitions=None,
         localities=None, grid=None):
    """An array of ``fill_value`` (see :func:`zeros` for the layout keywords)."""
    dtype = dtype if dtype is not None else np.asarray(fill_value).dtype
    return _create("fill", (fill_value,), shape, dtype, distribution, chunks, num_partitions,
                   localities, grid)


def empty(shape, dtype="float64", distribution=None, chunks=None, num_partitions=None,
          localities=None, grid=None):
    """An array whose values are not to be relied on (zeros here)."""
    return zeros(shape, dtype, distribution, chunks, num_partitions, localities, grid)


def reshape(x, shape, order="C"):
    """``x`` in ``shape`` (see :meth:`DistributedArray.reshape`)."""
    if not isinstance(x, DistributedArray):
        return np.reshape(x, shape, order=order)
    return x.reshape(shape, order=order)


def transpose(x, axes=None):
    """The transpose of ``x`` (see :meth:`DistributedArray.transpose`)."""
    if not isinstance(x, DistributedArray):
        return np.transpose(x, axes)
    return x.transpose() if axes is None else x.transpose(axes)


def moveaxis(x, source, destination):
    """NumPy's ``moveaxis`` (see :meth:`DistributedArray.moveaxis`)."""
    if not isinstance(x, DistributedArray):
        return np.moveaxis(x, source, destination)
    return x.moveaxis(source, destination)


def swapaxes(x, axis1, axis2):
    """``x`` with two axes swapped (2-d arrays: the transpose)."""
    if not isinstance(x, DistributedArray):
        return np.swapaxes(x, axis1, axis2)
    return x.swapaxes(axis1, axis2)


def meshgrid(*xi, indexing="xy", sparse=False, copy=True):
    """NumPy's ``meshgrid``: coordinate arrays from 1-d coordinate vectors
    (DistributedArrays or NumPy), as new block-distributed arrays
    (collective). ``indexing="xy"`` (default) swaps the first two axes of
    the result, ``"ij"`` does not. Each array is built by broadcasting its
    vector on the owners (nothing gathered but the vectors); ``sparse=True``
    gives each vector shaped to broadcast against the others instead.
    ``copy`` is accepted for NumPy's signature: the results are always new
    arrays."""
    if indexing not in ("xy", "ij"):
        raise HPXValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    vectors = [x.to_numpy().ravel() if isinstance(x, DistributedArray) else np.ravel(x)
               for x in xi]
    n = len(vectors)
    shapes = []
    for i, v in enumerate(vectors):
        shape = [1] * n
        shape[i] = v.size
        if indexing == "xy" and n > 1:
            shape[0], shape[1] = shape[1], shape[0]
        shapes.append(tuple(shape))
    if sparse:
        return tuple(from_numpy(v.reshape(s), distribution="block")
                     for v, s in zip(vectors, shapes))
    full = tuple(builtins.max(k) for k in zip(*shapes)) if shapes else ()
    return tuple(broadcast_to(v.reshape(s), full) for v, s in zip(vectors, shapes))


def matmul(x1, x2):
    """NumPy's ``matmul`` (``x1 @ x2``) for 1-d and 2-d arrays, one or both
    distributed (see :meth:`DistributedArray.__matmul__`)."""
    return _matmul(x1, x2)


def dot(a, b):
    """NumPy's ``dot``: ``a @ b`` for 1-d and 2-d arrays, ``a * b`` where one
    is a scalar."""
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return a * b
    return _matmul(a, b)


def vdot(a, b):
    """NumPy's ``vdot``: the inner product of the flattened arrays."""
    flat = [x.ravel() if isinstance(x, DistributedArray) else np.ravel(x) for x in (a, b)]
    if flat[0].size != flat[1].size:
        raise HPXValueError(f"vdot: vectors of {flat[0].size} and {flat[1].size} elements")
    return _matmul(flat[0], flat[1])


def outer(a, b):
    """NumPy's ``outer``: ``a.ravel()[:, None] * b.ravel()[None, :]``, a new
    array whose rows lie with ``a``'s elements where ``a`` is distributed."""
    if isinstance(a, DistributedArray):
        right = b.to_numpy() if isinstance(b, DistributedArray) else np.asarray(b)
        return a.ravel().reshape(-1, 1) * right.reshape(1, -1)
    if isinstance(b, DistributedArray):
        return b.ravel().reshape(1, -1) * np.ravel(a).reshape(-1, 1)
    return np.outer(a, b)


def tensordot(a, b, axes=2):
    """NumPy's ``tensordot`` for 1-d and 2-d arrays: ``axes`` an int (the
    last ``axes`` axes of ``a`` with the first of ``b``) or a pair of axis
    lists of equal length."""
    nda, ndb = np.ndim(a), np.ndim(b)
    if isinstance(axes, (int, np.integer)):
        axes = int(axes)
        if not 0 <= axes <= builtins.min(nda, ndb):
            raise HPXValueError(f"tensordot: axes={axes} for arrays of {nda} and {ndb} dimensions")
        left = list(range(nda - axes, nda))
        right = list(range(axes))
    else:
        left, right = ([axes[0]] if np.ndim(axes[0]) == 0 else list(axes[0]),
                       [axes[1]] if np.ndim(axes[1]) == 0 else list(axes[1]))
        left, right = [int(a_) % nda for a_ in left], [int(b_) % ndb for b_ in right]
    if len(left) != len(right):
        raise HPXValueError("tensordot: the axis lists differ in length")
    if nda > 2 or ndb > 2:
        raise HPXValueError("tensordot: 1-d and 2-d arrays only")
    if not left:
        return outer(a, b)
    if len(left) == 2:
        # Both axes of two matrices: sum of the element-wise product.
        bb = b if left == right else transpose(b)
        return (a * bb).sum() if isinstance(a, DistributedArray) else (bb * a).sum()
    aa = a if nda == 1 or left[0] == nda - 1 else transpose(a)
    bb = b if ndb == 1 or right[0] == 0 else transpose(b)
    return _matmul(aa, bb)


def ravel(x):
    """``x`` as a 1-d array, row-major (a view where the layout allows it)."""
    return x.ravel() if isinstance(x, DistributedArray) else np.ravel(x)


def squeeze(x, axis=None):
    """``x`` without its axes of length one (``axis``: only those)."""
    return x.squeeze(axis) if isinstance(x, DistributedArray) else np.squeeze(x, axis)


def expand_dims(x, axis):
    """``x`` with axes of length one inserted at ``axis`` (an int or a
    tuple), a view where the layout allows it."""
    if not isinstance(x, DistributedArray):
        return np.expand_dims(x, axis)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    ndim = x.ndim + len(axes)
    at = sorted(a % ndim if -ndim <= a < ndim else _bad_axis(a, ndim) for a in axes)
    if len(set(at)) != len(at):
        raise HPXValueError("repeated axis")
    shape = list(x.shape)
    for a in at:
        shape.insert(a, 1)
    return x.reshape(tuple(shape))


def _bad_axis(axis, ndim):
    raise HPXIndexError(f"axis {axis} is out of bounds for array of dimension {ndim}")


def _band(n, m, k, keep, dtype, layout):
    """An ``n`` x ``m`` array of ``dtype``: 1 where ``keep(rows + k, cols)``
    holds, else 0 (row and column numbers broadcast over it)."""
    m = n if m is None else m
    base = zeros((n, m), dtype, **layout)
    rows = _spread(base, np.arange(n, dtype=np.int64)[:, None] + k, "int64")
    cols = _spread(base, np.arange(m, dtype=np.int64), "int64")
    return where(keep(rows, cols), base + 1, base)


def eye(N, M=None, k=0, dtype="float64", **layout):
    """Ones on the ``k``-th diagonal of an ``N`` x ``M`` array, zeros
    elsewhere (layout keywords as :func:`zeros`)."""
    return _band(N, M, k, lambda r, c: c == r, dtype, layout)


def identity(n, dtype="float64", **layout):
    """The ``n`` x ``n`` identity matrix."""
    return eye(n, dtype=dtype, **layout)


def tri(N, M=None, k=0, dtype="float64", **layout):
    """Ones at and below the ``k``-th diagonal of an ``N`` x ``M`` array."""
    return _band(N, M, k, lambda r, c: c <= r, dtype, layout)


def _triangle(x, k, keep):
    if not isinstance(x, DistributedArray):
        raise DTypeError("takes a DistributedArray")
    if x.ndim != 2:
        raise HPXValueError(f"a 2-d array is needed, not {x.ndim}-d")
    n, m = x.shape
    rows = _spread(x, np.arange(n, dtype=np.int64)[:, None] + k, "int64")
    cols = _spread(x, np.arange(m, dtype=np.int64), "int64")
    return where(keep(rows, cols), x, False if x.dtype == np.bool_ else 0)


def tril(x, k=0):
    """``x`` with the elements above the ``k``-th diagonal zero."""
    if not isinstance(x, DistributedArray):
        return np.tril(x, k)
    return _triangle(x, k, lambda r, c: c <= r)


def triu(x, k=0):
    """``x`` with the elements below the ``k``-th diagonal zero."""
    if not isinstance(x, DistributedArray):
        return np.triu(x, k)
    return _triangle(x, k, lambda r, c: c >= r)


def diag(v, k=0):
    """For a 1-d ``v``: a square array with ``v`` on the ``k``-th diagonal
    (block rows). For a 2-d ``v``: its ``k``-th diagonal, a new 1-d array
    (each row's element picked on its owner, the row sums gathered)."""
    if not isinstance(v, DistributedArray):
        return np.diag(v, k)
    if v.ndim == 1:
        n = v.shape[0] + builtins.abs(k)
        base = zeros((n, n), v.dtype, distribution="block")
        values = np.zeros(n, dtype=np.uint8 if v.dtype == np.bool_ else v.dtype)
        at = builtins.max(-k, 0)
        values[at:at + v.shape[0]] = v.to_numpy()
        on_row = _spread(base, values[:, None], _dtype_name(v.dtype))
        rows = _spread(base, np.arange(n, dtype=np.int64)[:, None] + k, "int64")
        cols = _spread(base, np.arange(n, dtype=np.int64), "int64")
        return where(cols == rows, on_row, base)
    if v.ndim != 2:
        raise HPXValueError(f"diag takes a 1-d or 2-d array, not {v.ndim}-d")
    n, m = v.shape
    first, last = builtins.max(-k, 0), builtins.min(n, m - k)
    picked = _triangle(v, k, lambda r, c: c == r)
    sums = picked.astype("uint8").sum(axis=1) if v.dtype == np.bool_ else picked.sum(axis=1)
    out = sums[first:builtins.max(last, first)].astype(v.dtype)
    return from_numpy(out)


def arange(start, stop=None, step=1, dtype=None, distribution=None, chunks=None,
           num_partitions=None, localities=None):
    """``start, start + step, ...`` below ``stop``, like ``numpy.arange``;
    computed where each element lives."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = np.result_type(np.asarray(start), np.asarray(stop), np.asarray(step))
        dtype = "int64" if np.dtype(dtype).kind in "iub" else "float64"
    if step == 0:
        raise HPXValueError("arange needs a non-zero step")
    if np.dtype(dtype).kind in "iub" and all(
        isinstance(v, (int, np.integer)) for v in (start, stop, step)
    ):
        n = len(range(int(start), int(stop), int(step)))
    else:
        n = builtins.max(0, int(np.ceil((stop - start) / step)))
    return _create("arange", (start, stop, step), (n,), dtype, distribution, chunks,
                   num_partitions, localities, None)


def linspace(start, stop, num=50, dtype="float64", distribution=None, chunks=None,
             num_partitions=None, localities=None):
    """``num`` evenly spaced values from ``start`` to ``stop`` (included)."""
    return _create("linspace", (float(start), float(stop), int(num)), (int(num),), dtype,
                   distribution, chunks, num_partitions, localities, None)


def from_numpy(data, distribution=None, chunks=None, num_partitions=None, localities=None,
               grid=None, copy=True):
    """A distributed array holding ``data`` (any array-like). In a job of
    several localities every locality passes the same data and each keeps
    only its share. ``copy=False`` instead makes a local array that shares
    memory with ``data`` (``is_view()`` is True)."""
    if not copy:
        if not isinstance(data, np.ndarray):
            raise HPXValueError("copy=False needs a NumPy array to share memory with")
        if distribution not in (None, "local") or chunks or num_partitions:
            raise HPXValueError("copy=False makes a local view: it cannot be distributed")
        _dtype_name(data.dtype)
        return from_numpy_view(data)
    data = np.asarray(data)
    name = _dtype_name(data.dtype)
    flat = np.ascontiguousarray(data, dtype=np.uint8 if name == "bool" else name).reshape(-1)
    return _create("data", (flat,), data.shape, name, distribution, chunks, num_partitions,
                   localities, grid)


array = from_numpy


def _random(source, args, size, dtype, layout):
    unknown = set(layout) - {"distribution", "chunks", "num_partitions", "localities"}
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
    shape = 1 if size is None else size
    a = _create(source, args, shape, dtype, layout.get("distribution"), layout.get("chunks"),
                layout.get("num_partitions"), layout.get("localities"), None)
    # NumPy gives one number when no size is given.
    return a[0] if size is None else a


class random:
    """Random arrays from a counter-based generator: the same seed gives the
    same values whatever the layout and the number of localities. Layout
    keywords as for :func:`zeros`; without ``size`` one number."""

    @staticmethod
    def uniform(low=0.0, high=1.0, size=None, seed=0, dtype="float64", **layout):
        """Uniform values in ``[low, high)``."""
        return _random("uniform", (int(seed), float(low), float(high)), size, dtype, layout)

    @staticmethod
    def random(size=None, seed=0, **layout):
        """Uniform float64 values in ``[0, 1)``."""
        return random.uniform(0.0, 1.0, size, seed, **layout)

    @staticmethod
    def normal(loc=0.0, scale=1.0, size=None, seed=0, dtype="float64", **layout):
        """Normally distributed values."""
        return _random("normal", (int(seed), float(loc), float(scale)), size, dtype, layout)

    @staticmethod
    def integers(low, high, size=None, seed=0, dtype="int64", **layout):
        """Integers uniform in ``[low, high)``."""
        return _random("integers", (int(seed), int(low), int(high)), size, dtype, layout)


# --- functions ---------------------------------------------------------------


def _unary(name):
    def f(x):
        if isinstance(x, DistributedArray):
            # -x and abs(x) check their operand as the operators do.
            if name == "neg":
                return -x
            return builtins.abs(x) if name == "abs" else x._unary(name)
        return getattr(np, {"neg": "negative", "abs": "abs"}.get(name, name))(x)

    f.__name__ = name
    f.__doc__ = f"Element-wise {name}, on the owners of the data (floats for integer input)."
    return f


sqrt = _unary("sqrt")
cbrt = _unary("cbrt")
exp = _unary("exp")
exp2 = _unary("exp2")
expm1 = _unary("expm1")
log = _unary("log")
log2 = _unary("log2")
log10 = _unary("log10")
log1p = _unary("log1p")
sin = _unary("sin")
cos = _unary("cos")
tan = _unary("tan")
arcsin = _unary("arcsin")
arccos = _unary("arccos")
arctan = _unary("arctan")
sinh = _unary("sinh")
cosh = _unary("cosh")
tanh = _unary("tanh")
arcsinh = _unary("arcsinh")
arccosh = _unary("arccosh")
arctanh = _unary("arctanh")
abs = _unary("abs")
absolute = abs
negative = _unary("neg")
sign = _unary("sign")
floor = _unary("floor")
ceil = _unary("ceil")
trunc = _unary("trunc")
_rint = _unary("rint")


def rint(x):
    """Element-wise rounding to the nearest integer, halves to even, as
    floats (integers become float64, as NumPy's)."""
    if isinstance(x, DistributedArray) and x.dtype.kind != "f":
        x = x.astype("float64")
    return _rint(x)


def positive(x):
    """Element-wise ``+x`` (a copy, as NumPy's)."""
    return +x if isinstance(x, DistributedArray) else np.positive(x)


def square(x):
    """Element-wise ``x * x``, in ``x``'s type."""
    return x * x if isinstance(x, DistributedArray) else np.square(x)


def fabs(x):
    """Element-wise absolute value as floats (integers become float64)."""
    if isinstance(x, DistributedArray):
        return builtins.abs(x if x.dtype.kind == "f" else x.astype("float64"))
    return np.fabs(x)


def reciprocal(x):
    """Element-wise ``1 / x`` for floating-point arrays."""
    if isinstance(x, DistributedArray):
        if x.dtype.kind != "f":
            raise DTypeError("reciprocal is supported for floating-point arrays; use 1 / x")
        return 1.0 / x
    return np.reciprocal(x)


def round(x, decimals=0):
    """Element-wise rounding to ``decimals`` places, halves to even, as
    NumPy's ``round``: floats as ``rint(x * 10**d) / 10**d``; integers are
    kept for ``decimals >= 0`` and rounded to tens, hundreds, ... below."""
    if not isinstance(x, DistributedArray):
        return np.round(x, decimals)
    return x.round(decimals)


around = round


def clip(x, a_min=None, a_max=None):
    """``x`` limited to ``[a_min, a_max]`` element by element (either bound
    may be None; NaN stays NaN)."""
    if not isinstance(x, DistributedArray):
        return np.clip(x, a_min, a_max)
    return x.clip(a_min, a_max)


def isnan(x):
    """A boolean array: where ``x`` is NaN."""
    if not isinstance(x, DistributedArray):
        return np.isnan(x)
    return x != x


def isfinite(x):
    """A boolean array: where ``x`` is neither infinite nor NaN."""
    if not isinstance(x, DistributedArray):
        return np.isfinite(x)
    # x - x is 0 for finite values, NaN for infinities and NaN.
    return (x - x) == 0 if x.dtype.kind == "f" else x == x


def isinf(x):
    """A boolean array: where ``x`` is positive or negative infinity."""
    if not isinstance(x, DistributedArray):
        return np.isinf(x)
    return builtins.abs(x) == float("inf") if x.dtype.kind == "f" else x != x


def signbit(x):
    """A boolean array: where the sign bit of ``x`` is set (-0.0 included)."""
    if not isinstance(x, DistributedArray):
        return np.signbit(x)
    if x.dtype.kind == "f":
        return x._binary("copysign", 1.0, True) < 0
    return x < 0


def _binary(name, as_float=False):
    def f(x, y):
        if isinstance(x, DistributedArray):
            return x._binary(name, y, dtype=x._float_dtype(y) if as_float else None)
        if isinstance(y, DistributedArray):
            return y._binary(name, x, True, dtype=y._float_dtype(x) if as_float else None)
        return getattr(np, name)(x, y)

    f.__name__ = name
    f.__doc__ = (f"Element-wise {name} of two arrays, or an array and a scalar"
                 + (", as floats." if as_float else "."))
    return f


minimum = _binary("minimum")
maximum = _binary("maximum")
fmod = _binary("fmod")
arctan2 = _binary("arctan2", as_float=True)
hypot = _binary("hypot", as_float=True)
copysign = _binary("copysign", as_float=True)


def _truth(x):
    """``x`` as a boolean array (non-zero is true), or a Python bool."""
    if isinstance(x, DistributedArray):
        return x if x.dtype == np.bool_ else x != 0
    return bool(x)


def _logical(name, op):
    def f(x, y):
        if not isinstance(x, DistributedArray) and not isinstance(y, DistributedArray):
            return getattr(np, name)(x, y)
        a, b = _truth(x), _truth(y)
        if not isinstance(a, DistributedArray):
            a, b = b, a
        return op(a, b)

    f.__name__ = name
    f.__doc__ = f"Element-wise {name} (non-zero is true), a boolean array."
    return f


logical_and = _logical("logical_and", lambda a, b: a & b)
logical_or = _logical("logical_or", lambda a, b: a | b)
logical_xor = _logical("logical_xor", lambda a, b: a ^ b)


def logical_not(x):
    """Element-wise ``not x`` (non-zero is true), a boolean array."""
    if not isinstance(x, DistributedArray):
        return np.logical_not(x)
    return ~_truth(x)


def full_like(x, fill_value, dtype=None):
    """An array of ``fill_value`` with ``x``'s shape and layout, of
    ``dtype`` (``x``'s if None)."""
    name = _dtype_name(dtype if dtype is not None else x.dtype)
    value = bool(fill_value) if name == "bool" else fill_value
    return DistributedArray._wrap(x._core.full_like(name, value), name == "bool")


def zeros_like(x, dtype=None):
    """Zeros with ``x``'s shape and layout (see :func:`full_like`)."""
    return full_like(x, 0, dtype)


def ones_like(x, dtype=None):
    """Ones with ``x``'s shape and layout (see :func:`full_like`)."""
    return full_like(x, 1, dtype)


def empty_like(x, dtype=None):
    """An array with ``x``'s shape and layout whose values are not to be
    relied on (zeros here)."""
    return full_like(x, 0, dtype)


def power(x, y):
    """Element-wise ``x ** y``."""
    return x ** y


def where(condition, x, y):
    """``x`` where ``condition`` holds, else ``y``: DistributedArrays,
    NumPy arrays and scalars broadcast together by NumPy's rules (scalars
    take the arrays' dtype)."""
    if not builtins.any(isinstance(v, DistributedArray) for v in (condition, x, y)):
        return np.where(condition, x, y)
    if not isinstance(condition, DistributedArray):
        condition = np.asarray(condition)
    if _any_view(condition, x, y):
        # Views of NumPy arrays are local: NumPy does it.
        local = [(v._view if v.is_view() else v.to_numpy()) if isinstance(v, DistributedArray) else v
                 for v in (condition, x, y)]
        return from_numpy_view(np.where(*local))
    x, y = _operand(x), _operand(y)
    shape = _broadcast_shape(*[v.shape for v in (condition, x, y)
                               if isinstance(v, (DistributedArray, np.ndarray))])
    if builtins.any(isinstance(v, np.ndarray) or (isinstance(v, DistributedArray) and v.shape != shape)
                    for v in (condition, x, y)):
        # Broadcast: the operands of other shapes travel whole to the owners
        # of one of the full shape (or of a new block array of it).
        full = next((v for v in (condition, x, y)
                     if isinstance(v, DistributedArray) and v.shape == shape), None)
        first = next(v for v in (condition, x, y) if isinstance(v, DistributedArray))
        base = full if full is not None else broadcast_to(first, shape)

        def fit(v):
            if _is_scalar(v) or (isinstance(v, DistributedArray) and v.shape == shape):
                return v
            return _spread(base, v, _dtype_name(v.dtype))

        condition, x, y = fit(condition), fit(x), fit(y)
    # Python scalars are "weak" (NumPy's rule): they take the arrays' dtype.
    name = _promote(*[v.dtype if isinstance(v, DistributedArray) else v for v in (x, y)])

    def arr(v):
        if isinstance(v, DistributedArray):
            return v._cast(name)
        value = bool(v) if name == "bool" else v
        return DistributedArray._wrap(condition._core.full_like(name, value), name == "bool")

    mask = condition if condition.dtype == np.bool_ else condition.astype("bool")
    a, b = arr(x), arr(y)
    return DistributedArray._wrap(_core.select(mask._core, a._core, b._core), name == "bool")


def evaluate(*arrays):
    """Runs the element-wise expressions ``arrays`` now (collective in a
    job of several localities). Expressions such as ``a * 2.0 + b`` are
    otherwise run, fused into one pass, when their value is first needed:
    a reduction, ``to_numpy``, indexing, an assignment or a collective.
    Returns its argument (or the tuple of them)."""
    for a in arrays:
        if isinstance(a, DistributedArray) and a._core is not None:
            a._core.evaluate()
    return arrays[0] if len(arrays) == 1 else arrays


def _any_view(*values):
    """Whether any of ``values`` is a view of a NumPy array."""
    return builtins.any(isinstance(v, DistributedArray) and v.is_view() for v in values)


def _reduction(name):
    def f(x, axis=None, keepdims=False, **kwargs):
        if isinstance(x, DistributedArray):
            return getattr(x, name)(axis=axis, keepdims=keepdims, **kwargs)
        return getattr(np, name)(x, axis=axis, keepdims=keepdims, **kwargs)

    f.__name__ = name
    f.__doc__ = (
        f"NumPy's ``{name}``: over every element, an axis or a tuple of axes "
        f"(``keepdims`` keeps them with length one); see ``DistributedArray.{name}``."
    )
    return f


sum = _reduction("sum")
prod = _reduction("prod")
mean = _reduction("mean")
var = _reduction("var")
std = _reduction("std")
min = _reduction("min")
max = _reduction("max")
amin = min
amax = max
any = _reduction("any")
all = _reduction("all")


def _arg_reduction(name):
    def f(x, axis=None, keepdims=False):
        if isinstance(x, DistributedArray):
            return getattr(x, name)(axis=axis, keepdims=keepdims)
        return getattr(np, name)(x, axis=axis, keepdims=keepdims)

    f.__name__ = name
    f.__doc__ = (
        f"NumPy's ``{name}``: the index of the first extreme element, flat "
        f"(``axis=None``) or along ``axis``."
    )
    return f


argmin = _arg_reduction("argmin")
argmax = _arg_reduction("argmax")


def count_nonzero(x, axis=None, keepdims=False):
    """The number of non-zero elements, in all or over ``axis``."""
    if isinstance(x, DistributedArray):
        return x.count_nonzero(axis=axis, keepdims=keepdims)
    return np.count_nonzero(x, axis=axis, keepdims=keepdims)


def cumsum(x, axis=None):
    """Running sums, flat (``axis=None``) or along ``axis``, in a new array."""
    if isinstance(x, DistributedArray):
        return x.cumsum(axis=axis)
    return np.cumsum(x, axis=axis)


def cumprod(x, axis=None):
    """Running products, flat (``axis=None``) or along ``axis``, in a new array."""
    if isinstance(x, DistributedArray):
        return x.cumprod(axis=axis)
    return np.cumprod(x, axis=axis)


def to_numpy(x):
    """``x.to_numpy()``."""
    return x.to_numpy()


def for_each(array, fn):
    """Runs ``fn(view)`` on every partition of ``array``, on the locality
    that holds it, with a writable zero-copy NumPy view of the partition.
    Collective: every locality calls it and runs ``fn`` on its own
    partitions; it returns, on every locality, the list of ``fn``'s results
    for all partitions in partition order (each must be picklable)."""
    views = array.local_partitions()
    mine = [fn(v) for v in views]
    if array.is_view():
        return mine
    here = get_locality_id()
    order = [p for p, loc in enumerate(array.localities) if loc == here]
    everyone = all_gather(list(zip(order, mine)))
    out = [None] * array.num_partitions
    for pairs in everyone:
        for p, r in pairs:
            out[p] = r
    return out


# --- collectives ---------------------------------------------------------------


class Communicator:
    """A group of localities running collectives together. ``Communicator()``
    is the whole job; ``Communicator(name, localities)`` makes a sub-group
    (called by every member, with the same name and list)."""

    def __init__(self, name=None, localities=None):
        if name is not None and localities is None:
            raise HPXValueError(
                f"Communicator({name!r}) needs its localities; Communicator() is the whole job"
            )
        self._comm = _core.Comm(name, None if localities is None else [int(x) for x in localities])

    @property
    def rank(self):
        """This locality's rank in the group."""
        return self._comm.rank

    @property
    def size(self):
        """The number of members."""
        return self._comm.size

    @property
    def localities(self):
        """The members' locality numbers, by rank."""
        return list(self._comm.members)

    def barrier(self):
        """Waits until every member has called it."""
        self._comm.barrier()

    def _root(self, root):
        if isinstance(root, (bool, np.bool_)) or not isinstance(root, (int, np.integer)):
            raise LocalityIndexError(f"a root is a rank (an int), not {root!r}")
        if not 0 <= int(root) < self.size:
            raise LocalityIndexError(
                f"root {root} is not a member: ranks are 0..{self.size - 1}"
            )
        return int(root)

    def all_reduce(self, value, op="sum", out=None):
        """See :func:`hpxpy.all_reduce`."""
        return _reduce_value(self._comm, value, op, "all", 0, out)

    def reduce(self, value, op="sum", root=0, out=None):
        """See :func:`hpxpy.reduce`."""
        return _reduce_value(self._comm, value, op, "root", self._root(root), out)

    def inclusive_scan(self, value, op="sum", out=None):
        """See :func:`hpxpy.inclusive_scan`."""
        return _reduce_value(self._comm, value, op, "inclusive", 0, out)

    def exclusive_scan(self, value, op="sum", out=None):
        """See :func:`hpxpy.exclusive_scan`."""
        return _reduce_value(self._comm, value, op, "exclusive", 0, out)

    def broadcast(self, value=None, root=0):
        """See :func:`hpxpy.broadcast`."""
        root = self._root(root)
        data = _dumps(_shared_or(value)) if self.rank == root else None
        got = pickle.loads(self._comm.broadcast(data, root))
        if isinstance(got, _SharedArray):
            # Every member gets the root's array (a handle; no data moves).
            core = self._comm.broadcast_array(value._core if self.rank == root else None, root)
            if self.rank == root or (_is_shared(value) and value._core.same_array(core)):
                return value  # this member already holds the root's array
            return DistributedArray._wrap(core, got.is_bool)
        return got

    def gather(self, value, root=0):
        """See :func:`hpxpy.gather`."""
        root = self._root(root)
        got = self._comm.gather(_dumps(_shared_or(value)), root)
        if got is None:
            return None
        if _is_shared(value):
            return value.to_numpy()
        return [pickle.loads(b) for b in got]

    def all_gather(self, value):
        """See :func:`hpxpy.all_gather`."""
        return [pickle.loads(b) for b in self._comm.all_gather(_dumps(value))]

    def scatter(self, values=None, root=0):
        """See :func:`hpxpy.scatter`."""
        root = self._root(root)
        items = None
        if self.rank == root and _is_shared(values):
            items = [_dumps(_shared_or(values))] * self.size
        elif self.rank == root:
            if values is None:
                raise HPXValueError("scatter: the root passes the values")
            if isinstance(values, np.ndarray):
                items = np.array_split(values, self.size)
            else:
                items = list(values)
            if len(items) != self.size:
                raise HPXValueError(
                    f"scatter: {len(items)} values for {self.size} members (one each)"
                )
            items = [_dumps(v) for v in items]
        got = pickle.loads(self._comm.scatter(items, root))
        if isinstance(got, _SharedArray):
            # Each member gets a copy of its own elements of the root's array.
            core = self._comm.broadcast_array(values._core if self.rank == root else None, root)
            views = DistributedArray._wrap(core, got.is_bool).local_partitions()
            if not views:
                return np.empty(0, dtype=bool if got.is_bool else core.dtype)
            return np.concatenate([v.reshape(-1) for v in views])
        return got

    def all_to_all(self, values):
        """See :func:`hpxpy.all_to_all`."""
        values = list(values)
        if len(values) != self.size:
            raise HPXValueError(f"all_to_all: {len(values)} values for {self.size} members")
        return [pickle.loads(b) for b in self._comm.all_to_all([_dumps(v) for v in values])]


class _SharedArray:
    """What a collective sends in place of a DistributedArray (the array
    itself follows as a handle)."""

    def __init__(self, is_bool):
        self.is_bool = is_bool


def _is_shared(value):
    return isinstance(value, DistributedArray) and not value.is_view()


def _shared_or(value):
    return _SharedArray(value._bool) if _is_shared(value) else value


def _dumps(value):
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


_world = None


def _comm(comm):
    global _world
    if comm is not None:
        return comm
    if _world is None:
        _world = Communicator()
    return _world


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _reduce_value(comm, value, op, kind, root, out=None):
    if out is not None and not isinstance(value, np.ndarray):
        raise HPXValueError("out= is for reductions of NumPy arrays")
    if isinstance(value, DistributedArray) and not value.is_view():
        if comm.size != get_num_localities():
            raise HPXValueError(
                "a DistributedArray belongs to the whole job: reduce it with all_reduce over "
                "all localities (or its methods), not within a sub-group"
            )
        if kind != "all":
            raise HPXValueError("a DistributedArray reduces with all_reduce (or its methods)")
        what = {"sum": "sum", "prod": "prod", "min": "min", "max": "max"}.get(op)
        if what is None:
            raise HPXValueError(f"all_reduce of a DistributedArray takes sum, prod, min or max, not {op!r}")
        return value._reduce(what)
    number = type(value)
    if number is float or (number is int and _INT64_MIN <= value <= _INT64_MAX):
        # A plain number skips NumPy: the same call as an array of one.
        reduce_number = comm.reduce_float if number is float else comm.reduce_int
        out = reduce_number(value, op, kind, int(root))
        if out is None and kind == "exclusive" and op in ("sum", "prod"):
            out = 0 if op == "sum" else 1
        return None if out is None else number(out)
    scalar = not isinstance(value, np.ndarray)
    python_type = type(value) if isinstance(value, (bool, int, float)) else None
    a = np.asarray(value)
    if a.dtype == np.bool_:
        a = a.astype(np.int64)
    elif python_type is int:
        a = a.astype(np.int64)
    name = _dtype_name(a.dtype)
    flat = np.ascontiguousarray(a).reshape(-1)
    if out is not None:
        if (not isinstance(out, np.ndarray) or out.shape != a.shape or out.dtype != a.dtype
                or not out.flags.c_contiguous or not out.flags.writeable):
            raise HPXValueError(
                f"out must be a writable C-contiguous {name} array of shape {a.shape}"
            )
        got = comm.reduce_array(flat, name, op, kind, int(root), out.reshape(-1))
        if got is None and kind == "exclusive" and op in ("sum", "prod"):
            out[...] = 0 if op == "sum" else 1
        return None if got is None and kind == "root" else out
    out = comm.reduce_array(flat, name, op, kind, int(root))
    if out is None:
        if kind == "exclusive" and op in ("sum", "prod"):
            out = np.full(flat.shape, 0 if op == "sum" else 1, dtype=name)
        else:
            return None
    out = out.reshape(a.shape)
    if scalar:
        item = out.reshape(())[()]
        return python_type(item) if python_type in (int, float) else item
    return out


def barrier(comm=None):
    """Waits until every locality (or member of ``comm``) has called it."""
    _comm(comm).barrier()


def all_reduce(value, op="sum", comm=None, out=None):
    """Combines ``value`` over all localities with ``op`` (``'sum'``,
    ``'prod'``, ``'min'``, ``'max'``; ``'bitwise_and'``, ``'bitwise_or'``,
    ``'bitwise_xor'`` for integers) and returns the result everywhere.
    Python numbers and NumPy arrays combine element by element; a
    DistributedArray, already shared by all, reduces all its elements.
    ``out`` (NumPy arrays only: a writable C-contiguous array of the same
    shape and dtype) receives a copy of the result and is returned, as
    mpi4py's ``Allreduce(sendbuf, recvbuf)`` (no faster: the reduction
    still works in a vector of its own)."""
    return _comm(comm).all_reduce(value, op, out)


def reduce(value, op="sum", root=0, comm=None, out=None):
    """As :func:`all_reduce` for numbers and NumPy arrays, but only ``root``
    gets the result (None elsewhere; ``out``, if given, is written on the
    root only); a DistributedArray reduces with all_reduce or its methods."""
    return _comm(comm).reduce(value, op, root, out)


def inclusive_scan(value, op="sum", comm=None, out=None):
    """Locality i gets ``value`` of localities 0..i combined (into ``out``
    as :func:`all_reduce`)."""
    return _comm(comm).inclusive_scan(value, op, out)


def exclusive_scan(value, op="sum", comm=None, out=None):
    """Locality i gets ``value`` of localities 0..i-1 combined (locality 0:
    zero for sum, one for prod, None otherwise; into ``out`` as
    :func:`all_reduce`)."""
    return _comm(comm).exclusive_scan(value, op, out)


def broadcast(value=None, root=0, comm=None):
    """The root's ``value`` (any picklable object; NumPy arrays travel as raw
    buffers) on every locality: an equal object, as mpi4py's ``bcast``. A
    DistributedArray is already shared, so no data moves: a locality that
    passed the same array gets its own ``value`` back (``same is a``); one
    that passed anything else (or None) gets a new handle to the root's
    array."""
    return _comm(comm).broadcast(value, root)


def gather(value, root=0, comm=None):
    """The list of every locality's ``value`` on ``root``, None elsewhere.
    For a DistributedArray, the root gets all its elements (to_numpy())."""
    return _comm(comm).gather(value, root)


def all_gather(value, comm=None):
    """The list of every locality's ``value``, on every locality."""
    return _comm(comm).all_gather(value)


def scatter(values=None, root=0, comm=None):
    """Locality i gets item i of the root's ``values`` (a sequence of one
    item per locality, or a NumPy array split along axis 0 as
    ``numpy.array_split`` does). For a DistributedArray, each locality gets
    a copy of its own elements."""
    return _comm(comm).scatter(values, root)


def all_to_all(values, comm=None):
    """Locality j gets item j of every locality's list, in locality order."""
    return _comm(comm).all_to_all(values)


__all__ = [
    "DTYPES",
    "evaluate",
    "DistributedArray",
    "Communicator",
    "distribution",
    "random",
    "get_locality_id",
    "get_num_localities",
    "counters",
    "init",
    "finalize",
    "zeros",
    "ones",
    "full",
    "empty",
    "arange",
    "linspace",
    "from_numpy",
    "array",
    "sqrt",
    "cbrt",
    "exp",
    "exp2",
    "expm1",
    "log",
    "log2",
    "log10",
    "log1p",
    "sin",
    "cos",
    "tan",
    "arcsin",
    "arccos",
    "arctan",
    "sinh",
    "cosh",
    "tanh",
    "arcsinh",
    "arccosh",
    "arctanh",
    "abs",
    "absolute",
    "negative",
    "positive",
    "sign",
    "floor",
    "ceil",
    "trunc",
    "rint",
    "round",
    "around",
    "square",
    "fabs",
    "reciprocal",
    "clip",
    "isnan",
    "isfinite",
    "isinf",
    "signbit",
    "minimum",
    "maximum",
    "fmod",
    "arctan2",
    "hypot",
    "copysign",
    "logical_and",
    "logical_or",
    "logical_xor",
    "logical_not",
    "broadcast_to",
    "reshape",
    "transpose",
    "swapaxes",
    "moveaxis",
    "ravel",
    "squeeze",
    "expand_dims",
    "eye",
    "identity",
    "tri",
    "tril",
    "triu",
    "diag",
    "full_like",
    "zeros_like",
    "ones_like",
    "empty_like",
    "power",
    "where",
    "matmul",
    "meshgrid",
    "dot",
    "vdot",
    "outer",
    "tensordot",
    "sum",
    "prod",
    "mean",
    "var",
    "std",
    "amin",
    "amax",
    "min",
    "max",
    "argmin",
    "argmax",
    "any",
    "all",
    "count_nonzero",
    "cumsum",
    "cumprod",
    "to_numpy",
    "for_each",
    "barrier",
    "all_reduce",
    "reduce",
    "inclusive_scan",
    "exclusive_scan",
    "broadcast",
    "gather",
    "all_gather",
    "scatter",
    "all_to_all",
    "HPXError",
    "LocalityLostError",
    "JobAbortedError",
    "CollectiveMismatchError",
    "HPXValueError",
    "HPXIndexError",
    "LocalityIndexError",
    "DTypeError",
]

"""DistributedArray: a NumPy-style array whose partitions live on the
localities of the job. Operations run on the owners of the data (in the
hpx runtime, with the GIL released); in a job of several localities every
call that makes or changes an array is collective, like an MPI call:
every locality makes it, in the same order, and gets the same array."""

import builtins
import enum
import operator

import numpy as np

from . import _core
from ._errors import DTypeError, HPXIndexError, HPXValueError, LocalityIndexError

#: The element types hpxpy arrays hold.
DTYPES = ("float64", "float32", "int64", "int32", "uint64", "uint32", "uint8", "bool")


class distribution(str, enum.Enum):
    """How an array's elements are spread (``distribution=``)."""

    #: One partition on one locality (also ``None``).
    local = "local"
    #: One contiguous block of rows per locality.
    block = "block"
    #: Rows round robin, one partition per locality.
    cyclic = "cyclic"
    #: Chunks of rows round robin (``chunks=`` sets the chunk).
    block_cyclic = "block_cyclic"
    #: 2-d tiles, one per locality of a locality grid.
    grid = "grid"


_DISTRIBUTIONS = tuple(d.value for d in distribution)


def _dtype_name(dtype):
    """The supported dtype name of ``dtype`` (anything np.dtype takes)."""
    try:
        name = np.dtype(dtype).name
    except TypeError as e:
        raise DTypeError(f"not a dtype: {dtype!r}") from e
    if name not in DTYPES:
        raise DTypeError(
            f"hpxpy arrays hold {', '.join(DTYPES)}, not {name}"
        )
    return name


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise HPXValueError(f"negative dimension in shape {shape}")
    return shape


def _layout(shape, distribution, chunks, num_partitions, localities, grid=None):
    """(kind, params, over, grid) for _core from the creation keywords."""
    if distribution is not None and not isinstance(distribution, str):
        distribution = getattr(distribution, "value", distribution)
    if distribution is not None and distribution not in _DISTRIBUTIONS:
        raise HPXValueError(
            f"unknown distribution {distribution!r} (one of {', '.join(_DISTRIBUTIONS)})"
        )
    over = None if localities is None else [int(x) for x in localities]
    if over is not None:
        n = _core.get_num_localities()
        bad = [x for x in over if not 0 <= x < n]
        if bad or not over:
            raise LocalityIndexError(
                f"localities={list(localities)}: the job has localities 0..{n - 1}"
                if bad
                else "localities= needs at least one locality"
            )
    grid = None if grid is None else (int(grid[0]), int(grid[1]))
    if chunks is not None and num_partitions is not None:
        raise HPXValueError("give chunks= or num_partitions=, not both")
    rows = shape[0] if shape else 1
    if chunks is not None:
        if isinstance(chunks, (tuple, list)):
            if len(chunks) != len(shape):
                raise HPXValueError(f"chunks {tuple(chunks)} do not match shape {shape}")
            sizes = [s if c in (-1, None) else int(c) for c, s in zip(chunks, shape)]
            if len(shape) == 2 and sizes[1] < shape[1]:
                if distribution not in (None, "block", "block_cyclic"):
                    raise HPXValueError(f"chunks={tuple(chunks)} make tiles, not {distribution}")
                return "tiles", [max(sizes[0], 1), max(sizes[1], 1)], over, grid
            if any(c < s for c, s in zip(sizes[1:], shape[1:])):
                raise HPXValueError("arrays of 3 or more axes are cut along axis 0 only")
            chunks = sizes[0] if sizes else 1
        chunks = int(chunks)
        if chunks <= 0:
            raise HPXValueError(f"chunks must be positive, not {chunks}")
        if distribution in ("cyclic", "block_cyclic"):
            return "block_cyclic", [chunks], over, grid
        if distribution == "local":
            raise HPXValueError("a local array has one partition: chunks= does not apply")
        return "chunks", [chunks], over, grid
    if num_partitions is not None:
        p = int(num_partitions)
        if p <= 0:
            raise HPXValueError(f"num_partitions must be positive, not {p}")
        return "partitions", [p], over, grid
    if distribution is None or distribution == "local":
        return "local", [], over, grid
    if distribution == "block_cyclic":
        n = len(over) if over else _core.get_num_localities()
        # Without chunks=: blocks small enough that every locality gets
        # several, large enough to move in bulk.
        return "block_cyclic", [max(1, rows // (4 * max(n, 1)))], over, grid
    return distribution, [], over, grid


def _create(source, args, shape, dtype, distribution, chunks, num_partitions, localities, grid):
    shape = _shape(shape)
    name = _dtype_name(dtype)
    kind, params, over, grid = _layout(shape, distribution, chunks, num_partitions, localities, grid)
    if name == "bool" and source == "fill":
        args = (bool(args[0]),)
    core = _core.create(name, list(shape), kind, params, over, grid, source, tuple(args))
    return DistributedArray._wrap(core, name == "bool")


def _promote(*dtypes):
    try:
        result = np.result_type(*dtypes)
    except TypeError as e:
        raise DTypeError(str(e)) from e
    return _dtype_name(result)


def _is_scalar(x):
    return isinstance(x, (bool, int, float, np.number, np.bool_))


def _out_of_range(value, name):
    """-1 or 1 if the integer ``value`` lies below or above the integer
    dtype ``name``, else 0 (NumPy 2 refuses such Python integers)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return 0
    if np.dtype(name).kind not in "iu":
        return 0
    info = np.iinfo(name)
    return -1 if int(value) < info.min else 1 if int(value) > info.max else 0


def _element(value, dtype):
    """``value`` checked for an element of ``dtype`` (bool: 0 or 1)."""
    if dtype == np.bool_:
        return bool(value)
    if _out_of_range(value, dtype.name):
        raise OverflowError(f"Python integer {value} out of bounds for {dtype.name}")
    return value


class DistributedArray:
    """An array whose partitions live on the localities of the job.

    Made by :func:`hpxpy.zeros` and the other creation functions; behaves
    like a NumPy array for arithmetic (``a + b``, ``a * 2.0``, ``a > b``),
    reductions (``a.sum()``, ``a.mean(axis=0)``) and indexing, with the
    work done where the data lives. ``to_numpy()`` gathers it.
    """

    __array_priority__ = 100

    def __init__(self, *args, **kwargs):
        raise TypeError("make arrays with hpxpy.zeros, ones, full, arange, from_numpy, ...")

    @classmethod
    def _wrap(cls, core, is_bool=False, view=None):
        self = object.__new__(cls)
        self._core = core
        self._bool = is_bool
        self._view = view
        return self

    # --- what it is -------------------------------------------------

    @property
    def shape(self):
        """The shape (a tuple)."""
        return self._view.shape if self._view is not None else tuple(self._core.shape)

    @property
    def dtype(self):
        """The element type (a NumPy dtype)."""
        if self._view is not None:
            return self._view.dtype
        return np.dtype(bool) if self._bool else np.dtype(self._core.dtype)

    @property
    def size(self):
        """The number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self):
        """The number of axes."""
        return len(self.shape)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    @property
    def is_distributed(self):
        """Whether the partitions are on more than one locality."""
        return False if self._view is not None else self._core.is_distributed

    @property
    def num_partitions(self):
        """The number of partitions."""
        return 1 if self._view is not None else self._core.num_partitions

    @property
    def partition_sizes(self):
        """The number of elements of each partition, in order."""
        return [self.size] if self._view is not None else list(self._core.partition_sizes)

    @property
    def localities(self):
        """The locality of each partition, in order."""
        if self._view is not None:
            return [_core.get_locality_id()]
        return list(self._core.localities)

    @property
    def distribution(self):
        """The layout, as the runtime spells it (``Block``, ``Chunks(1000)``, ...)."""
        return "Local (a view of a NumPy array)" if self._view is not None else self._core.distribution

    def is_view(self):
        """Whether this array shares memory with a NumPy array
        (``from_numpy(x, copy=False)``)."""
        return self._view is not None

    def local_partitions(self):
        """Writable, zero-copy NumPy views of the partitions this locality
        holds, in partition order (each shaped as its box of the array; a
        round-robin partition is 1-d)."""
        if self._view is not None:
            return [self._view]
        return [self._as_bool(v) for v, _ in self._core.local_views()]

    @property
    def local_partition(self):
        """This locality's data as a writable, zero-copy NumPy view: the
        view of its one partition; an empty array if it holds none; a list
        of views if it holds several (``chunks=`` with more chunks than
        localities)."""
        views = self.local_partitions()
        if not views:
            return np.empty((0,), dtype=self.dtype)
        return views[0] if len(views) == 1 else views

    def local_offsets(self):
        """For each of this locality's partitions, the index of its first
        element along each axis (None for round-robin partitions)."""
        if self._view is not None:
            return [tuple(0 for _ in self.shape)]
        return [None if o is None else tuple(o) for _, o in self._core.local_views()]

    def _as_bool(self, a):
        return a.view(np.bool_) if self._bool else a

    # --- data in and out ---------------------------------------------

    def to_numpy(self):
        """Every element, gathered into a new NumPy array (not collective:
        any locality may call it)."""
        if self._view is not None:
            return self._view.copy()
        return self._as_bool(self._core.to_numpy())

    def __array__(self, dtype=None, copy=None):
        a = self.to_numpy()
        return a if dtype is None else a.astype(dtype)

    def tolist(self):
        """The elements as nested Python lists."""
        return self.to_numpy().tolist()

    def reshape(self, *shape, order="C"):
        """The same elements, row-major, in ``shape`` (one axis may be -1;
        collective): a view sharing this array's partitions (writes through
        either are seen by both) where every partition holds whole rows of
        the new shape in a contiguous layout (block, chunks, explicit), else
        a copy in the block distribution."""
        if order != "C":
            raise HPXValueError("reshape supports order='C' only")
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = _resolve_shape(tuple(operator.index(k) for k in shape), self.size)
        if self._view is not None:
            return from_numpy_view(self._view.reshape(shape))
        return DistributedArray._wrap(self._core.reshape(list(shape)), self._bool)

    @property
    def T(self):
        """The transpose (see :meth:`transpose`)."""
        return self.transpose()

    def transpose(self, *axes):
        """The array with its axes reversed, or in the order ``axes`` (axis
        ``i`` of the result is axis ``axes[i]``): a new array in block rows,
        each owner sending every other owner its elements in one message
        (NumPy gives a view; collective). A 1-d array, or ``axes`` in their
        own order, gives this array itself."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = () if axes[0] is None else tuple(axes[0])
        order = list(range(self.ndim))[::-1]
        if axes:
            if len(axes) != self.ndim:
                raise HPXValueError(f"axes {axes} do not match an array of {self.ndim} dimensions")
            order = _axes(axes, self.ndim)
            if sorted(order) != list(range(self.ndim)):
                raise HPXValueError(f"repeated axis in transpose: {axes}")
        if self._view is not None:
            return from_numpy_view(self._view.transpose(order))
        if order == list(range(self.ndim)):
            return self
        if self.ndim == 2:
            return DistributedArray._wrap(self._core.transpose(), self._bool)
        return DistributedArray._wrap(self._core.permute_axes(order), self._bool)

    def swapaxes(self, axis1, axis2):
        """Axes ``axis1`` and ``axis2`` swapped (see :meth:`transpose`)."""
        a, b = _axes((axis1, axis2), self.ndim)
        order = list(range(self.ndim))
        order[a], order[b] = order[b], order[a]
        return self.transpose(order)

    def moveaxis(self, source, destination):
        """NumPy's ``moveaxis``: the axes ``source`` moved to the places
        ``destination`` (ints or sequences of the same length), the others
        in their order (see :meth:`transpose`)."""
        src = _axes(source, self.ndim)
        dst = _axes(destination, self.ndim)
        if len(src) != len(dst):
            raise HPXValueError("`source` and `destination` arguments must have the same number "
                                "of elements")
        if len(set(src)) != len(src) or len(set(dst)) != len(dst):
            raise HPXValueError(f"repeated axis in moveaxis: {source} -> {destination}")
        order = [a for a in range(self.ndim) if a not in src]
        for d, s_ in sorted(zip(dst, src)):
            order.insert(d, s_)
        return self.transpose(order)

    def ravel(self):
        """The elements as a 1-d array, row-major (a view where
        :meth:`reshape` makes one)."""
        return self.reshape(-1)

    def flatten(self):
        """The elements as a new 1-d array, row-major (always a copy)."""
        flat = self.reshape(-1)
        return flat.copy() if flat.same_array_memory(self) else flat

    def squeeze(self, axis=None):
        """Without the axes of length one (``axis``: only those)."""
        axes = range(self.ndim) if axis is None else _axes(axis, self.ndim)
        for a in axes:
            if axis is not None and self.shape[a] != 1:
                raise HPXValueError("cannot select an axis to squeeze out which has size not "
                                    "equal to one")
        keep = [k for a, k in enumerate(self.shape) if not (a in axes and k == 1)]
        return self.reshape(tuple(keep) if keep else (1,)) if keep != list(self.shape) else self

    def same_array_memory(self, other):
        """Whether ``other`` shares this array's partitions (a view of it, or
        it itself)."""
        return (isinstance(other, DistributedArray) and self._view is None
                and other._view is None and self._core.shares_partitions(other._core))

    def copy(self):
        """A copy in the same layout."""
        return self.astype(self.dtype)

    def astype(self, dtype):
        """A copy with elements converted to ``dtype`` (integers wrap,
        floats saturate into integers)."""
        name = _dtype_name(dtype)
        if self._view is not None:
            return from_numpy_view(self._view.astype(name))
        if name == "bool":
            return self._compare("ne", 0)
        return DistributedArray._wrap(self._core.astype(name))

    def fill(self, value):
        """Sets every element to ``value`` (collective)."""
        if self._view is not None:
            self._view.fill(value)
        else:
            self._core.fill(_element(value, self.dtype))

    def redistribute(self, distribution=None, chunks=None, num_partitions=None, localities=None):
        """A copy in another layout, moved owner to owner in bulk (collective)."""
        if self._view is not None:
            raise HPXValueError("a view of a NumPy array is local; use from_numpy(..) to distribute it")
        kind, params, over, grid = _layout(
            self.shape, distribution, chunks, num_partitions, localities
        )
        return DistributedArray._wrap(self._core.redistribute(kind, params, over, grid), self._bool)

    def __repr__(self):
        where = "view" if self._view is not None else f"{self.num_partitions} partitions"
        return f"DistributedArray(shape={self.shape}, dtype={self.dtype}, {where})"

    def __bool__(self):
        if self.size != 1:
            raise ValueError(
                "the truth value of an array with more than one element is ambiguous; "
                "use a.any() or a.all()"
            )
        return bool(self.to_numpy().reshape(()))

    # --- indexing ------------------------------------------------------

    def _index(self, key):
        """A tuple of non-negative ints for one element, or None."""
        if isinstance(key, (int, np.integer)):
            key = (key,)
        if not isinstance(key, tuple) or not all(isinstance(k, (int, np.integer)) for k in key):
            return None
        if len(key) != self.ndim:
            raise HPXValueError(f"{len(key)} indices for an array of {self.ndim} axes")
        out = []
        for axis, (k, n) in enumerate(zip(key, self.shape)):
            k = int(k)
            if k < -n or k >= n:
                raise HPXIndexError(f"index {k} is out of range for axis {axis} with size {n}")
            out.append(k + n if k < 0 else k)
        return out

    def _rows(self, key):
        """The flat range of the sub-array ``a[i]`` (``a[i, j]`` ...) for
        fewer integer indices than axes, or None."""
        if isinstance(key, (int, np.integer)):
            key = (key,)
        if (
            not isinstance(key, tuple)
            or not 0 < len(key) < self.ndim
            or not all(isinstance(k, (int, np.integer)) for k in key)
        ):
            return None
        first = self._index(tuple(key) + (0,) * (self.ndim - len(key)))
        inner = self.shape[len(key):]
        count = int(np.prod(inner, dtype=np.int64))
        start = int(np.ravel_multi_index(first, self.shape)) if self.size else 0
        return start, count, inner

    def __getitem__(self, key):
        if self._view is not None:
            return self._view[key]
        rows = self._rows(key)
        if rows is not None:
            start, count, inner = rows
            return self._as_bool(self._core.get_range(start, start + count)).reshape(inner)
        index = self._index(key)
        if index is not None:
            value = self._core.get(index)
            return bool(value) if self._bool else self.dtype.type(value)
        if self.ndim == 1 and isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step == 1:
                return self._as_bool(self._core.get_range(start, max(start, stop)))
        # Anything else (fancy indexing, strided or n-d slices): read it all.
        return self.to_numpy()[key]

    def __setitem__(self, key, value):
        if self._view is not None:
            self._view[key] = value
            return
        rows = self._rows(key)
        if rows is not None:
            start, count, inner = rows
            self._core.set_range(start, self._elements(value, inner).reshape(-1))
            return
        index = self._index(key)
        if index is not None:
            self._core.set(index, _element(value, self.dtype))
            return
        if self.ndim == 1 and isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            if step == 1:
                n = max(0, stop - start)
                self._core.set_range(start, self._elements(value, (n,)))
                return
        raise HPXValueError(
            "assignment takes one element (a[i] or a[i, j]) or a contiguous 1-d slice"
        )

    def _elements(self, value, shape):
        """``value`` broadcast to ``shape`` as contiguous stored elements."""
        data = np.broadcast_to(np.asarray(value), shape)
        if self._bool:
            data = data.astype(bool)
        return np.ascontiguousarray(data, dtype=self._core.dtype)

    # --- element-wise math ------------------------------------------

    def _binary(self, op, other, reverse=False, dtype=None):
        other = _operand(other)
        if self._view is not None or (isinstance(other, DistributedArray) and other._view is not None):
            return _local_binary(op, self, other, reverse)
        if _broadcasts(self, other):
            return self._broadcast(other, reverse, dtype, lambda a, b, name: a._binary(op, b, dtype=name))
        if isinstance(other, DistributedArray):
            name = dtype or _promote(self.dtype, other.dtype)
            a, b = self._cast(name), other._cast(name)
            if reverse:
                a, b = b, a
            return a._finish_binary(name, lambda core: core.binary(op, b._core))
        if _is_scalar(other):
            name = dtype or _promote(self.dtype, other)
            if _out_of_range(other, name):
                raise OverflowError(f"Python integer {other} out of bounds for {name}")
            a = self._cast(name)
            return a._finish_binary(name, lambda core: core.binary_scalar(op, other, reverse))
        return NotImplemented

    def _broadcast(self, other, reverse, dtype, combine):
        """``combine(a, b, dtype)`` of this array and ``other`` (a
        DistributedArray or NumPy array) of another shape, broadcast to one
        by NumPy's rules: the operand of the smaller shape travels whole to
        the owners of the larger (``other`` is then read by every
        locality), as broadcast values of an expression in its layout."""
        shape = _broadcast_shape(self.shape, other.shape)
        if isinstance(other, DistributedArray) and other.shape == shape and self.shape != shape:
            return other._broadcast(self, not reverse, dtype, combine)
        name = dtype or _promote(self.dtype, other.dtype)
        base = self if self.shape == shape else broadcast_to(self, shape)
        a = base._cast(name)
        b = _spread(a, other, name)
        if reverse:
            a, b = b, a
        return combine(a, b, name)

    def __matmul__(self, other):
        """``a @ b`` (NumPy's ``matmul``) for 1-d and 2-d arrays, the other
        a DistributedArray or NumPy array (collective): a new array whose
        rows lie with ``a``'s rows. Where ``a``'s partitions are whole rows
        (block, chunks) they are used in place, else ``a`` is first
        redistributed in block rows; ``b`` is read once and sent whole to
        every owner of rows, which multiplies with a blocked kernel
        (the ``gemm`` crate for floats). Two 1-d arrays give their inner
        product."""
        return _matmul(self, other)

    def __rmatmul__(self, other):
        return _matmul(other, self)

    def dot(self, other):
        """NumPy's ``a.dot(b)``: ``a @ b`` for 1-d and 2-d arrays, ``a * b``
        for a scalar."""
        if np.ndim(other) == 0 and not isinstance(other, DistributedArray):
            return self * other
        return _matmul(self, other)

    def _cast(self, name):
        if name == "bool":
            return self
        return self if self.dtype.name == name else self.astype(name)

    def _finish_binary(self, name, run):
        if name == "bool":
            # Booleans compute as 0/1 bytes; NumPy's bool + bool is "or".
            return DistributedArray._wrap(run(self._core), False)._compare("ne", 0)
        return DistributedArray._wrap(run(self._core))

    def _compare(self, op, other):
        other = _operand(other)
        if self._view is not None or (isinstance(other, DistributedArray) and other._view is not None):
            return _local_binary(op, self, other, False)
        if _broadcasts(self, other):
            return self._broadcast(other, False, None, lambda a, b, _name: a._compare(op, b))
        if isinstance(other, DistributedArray):
            name = _promote(self.dtype, other.dtype)
            a, b = self._cast(name), other._cast(name)
            return DistributedArray._wrap(a._core.compare(op, b._core), True)
        if _is_scalar(other):
            name = _promote(self.dtype, other)
            side = _out_of_range(other, name)
            if side:
                # NumPy compares the true values: the answer is the same for
                # every element (all true: x == x; all false: x != x).
                truth = {"eq": False, "ne": True, "lt": side > 0, "le": side > 0,
                         "gt": side < 0, "ge": side < 0}[op]
                return self._compare("eq" if truth else "ne", self)
            return DistributedArray._wrap(self._cast(name)._core.compare_scalar(op, other, False), True)
        return NotImplemented

    def _float_dtype(self, other=None):
        name = _promote(self.dtype, other.dtype if isinstance(other, DistributedArray) else other)
        return name if name in ("float32", "float64") else "float64"

    def __add__(self, o):
        return self._binary("add", o)

    def __radd__(self, o):
        return self._binary("add", o, True)

    def __sub__(self, o):
        return self._no_bool("-", o)._binary("sub", o)

    def __rsub__(self, o):
        return self._no_bool("-", o)._binary("sub", o, True)

    def __mul__(self, o):
        return self._binary("mul", o)

    def __rmul__(self, o):
        return self._binary("mul", o, True)

    def __truediv__(self, o):
        return self._binary("div", o, dtype=self._float_dtype(o))

    def __rtruediv__(self, o):
        return self._binary("div", o, True, dtype=self._float_dtype(o))

    def __floordiv__(self, o):
        return self._ints("//", o)._binary("div", o)

    def __rfloordiv__(self, o):
        return self._ints("//", o)._binary("div", o, True)

    def __mod__(self, o):
        return self._binary("rem", o)

    def __rmod__(self, o):
        return self._binary("rem", o, True)

    def __pow__(self, o):
        return self._binary("pow", o)

    def __rpow__(self, o):
        return self._binary("pow", o, True)

    def __neg__(self):
        self._no_bool("-")
        return self._unary("neg")

    def __pos__(self):
        return self.copy()

    def __abs__(self):
        return self._unary("abs")

    def round(self, decimals=0):
        """Rounded to ``decimals`` places, halves to even (NumPy's
        ``round``): floats as ``rint(x * 10**d) / 10**d`` (``rint(x / 10**-d)
        * 10**-d`` for negative ``d``); integers are kept for ``d >= 0``."""
        decimals = operator.index(decimals)
        if self.dtype.kind != "f":
            if decimals >= 0:
                return self.copy()
            scale = 10 ** -decimals
            as_float = self._cast("float64")
            return (as_float / scale)._unary("rint")._binary("mul", float(scale)).astype(self.dtype)
        if decimals == 0:
            return self._unary("rint")
        if decimals > 0:
            scale = 10.0 ** decimals
            return (self * scale)._unary("rint") / scale
        scale = 10.0 ** -decimals
        return (self / scale)._unary("rint") * scale

    def clip(self, min=None, max=None):
        """Limited to ``[min, max]`` element by element (either may be None,
        not both; NaN stays NaN)."""
        if min is None and max is None:
            raise HPXValueError("clip needs min or max")
        # A Python integer bound beyond the dtype's range bounds nothing
        # (NumPy's clip): every element is already on its side.
        name = self.dtype.name
        out = self
        if min is not None and not (_is_scalar(min) and _out_of_range(min, name) < 0):
            out = out._binary("maximum", min)
        if max is not None and not (_is_scalar(max) and _out_of_range(max, name) > 0):
            out = out._binary("minimum", max)
        return out.copy() if out is self else out

    def __and__(self, o):
        return self._logical("&", "minimum", o)

    __rand__ = __and__

    def __or__(self, o):
        return self._logical("|", "maximum", o)

    __ror__ = __or__

    def __xor__(self, o):
        self._logical("^", None, o)
        return self._compare("ne", o)

    __rxor__ = __xor__

    def __invert__(self):
        if not self._bool:
            raise DTypeError("~ is defined here for boolean arrays only")
        return self._compare("eq", 0)

    def __eq__(self, o):
        return self._compare("eq", o)

    def __ne__(self, o):
        return self._compare("ne", o)

    def __lt__(self, o):
        return self._compare("lt", o)

    def __le__(self, o):
        return self._compare("le", o)

    def __gt__(self, o):
        return self._compare("gt", o)

    def __ge__(self, o):
        return self._compare("ge", o)

    __hash__ = None

    def _no_bool(self, what, other=None):
        other_bool = isinstance(other, (bool, np.bool_)) or (
            isinstance(other, DistributedArray) and other.dtype == np.bool_
        )
        if self.dtype == np.bool_ and (other is None or other_bool):
            raise DTypeError(f"{what} of booleans is not supported (NumPy neither); use ^ or ~")
        return self

    def _ints(self, what, other):
        other_kind = other.dtype.kind if isinstance(other, DistributedArray) else np.asarray(other).dtype.kind
        if self.dtype.kind == "f" or other_kind == "f":
            raise DTypeError(f"{what} is supported for integer arrays; use / for floats")
        return self

    def _logical(self, what, op, other):
        other_bool = isinstance(other, (bool, np.bool_)) or (
            isinstance(other, DistributedArray) and other.dtype == np.bool_
        )
        if self.dtype != np.bool_ or not other_bool:
            raise DTypeError(f"{what} is defined here for boolean arrays only")
        return self._binary(op, other) if op else self

    def _unary(self, op):
        if self._view is not None:
            return from_numpy_view(getattr(np, "negative" if op == "neg" else op)(self._view))
        a = self.astype("uint8") if self._bool and op != "abs" else self
        return DistributedArray._wrap(a._core.unary(op), self._bool and op == "abs")

    # --- reductions --------------------------------------------------

    def _wide(self):
        """This array with small integers widened to 64 bits (NumPy sums and
        multiplies them in int64 or uint64)."""
        kind, size = self.dtype.kind, self.dtype.itemsize
        if kind == "b" or (kind == "i" and size < 8):
            return self.astype("int64")
        if kind == "u" and size < 8:
            return self.astype("uint64")
        return self

    def _reduce(self, what, axis=None, keepdims=False):
        """The reduction ``what`` over ``axis`` (None: every axis; an int or
        a tuple of axes), with NumPy's result dtypes; ``keepdims`` keeps the
        reduced axes with length one."""
        if self._view is not None:
            return getattr(np, what)(self._view, axis=axis, keepdims=keepdims)
        axes = None if axis is None else _axes(axis, self.ndim)
        if axes is not None and len(set(axes)) != len(axes):
            raise HPXValueError(f"duplicate value in 'axis': {axis}")
        if axes is not None and len(axes) == self.ndim:
            axes = None
        if what == "prod":
            wide = self._wide()
            if wide is not self:
                return wide._reduce(what, axis, keepdims)
        if axes is None:
            value = self._reduce_all(what)
            if keepdims:
                return np.full((1,) * self.ndim, value, dtype=np.asarray(value).dtype)
            return value
        kept = tuple(n for i, n in enumerate(self.shape) if i not in axes)
        shape = tuple(1 if i in axes else n for i, n in enumerate(self.shape)) if keepdims else kept
        if what in ("min", "max") and self.dtype.kind == "f":
            out = self._nan_extreme(what, axes)
        else:
            out = self._core.reduce_axes(what, list(axes))
            if what in ("min", "max"):
                out = out.astype(self.dtype)
            elif what == "mean" and self.dtype == np.float32:
                out = out.astype(np.float32)
            elif self._bool and what == "sum":
                out = out.astype(np.int64)
        return out.reshape(shape)

    def _reduce_all(self, what):
        """The reduction ``what`` of every element, as a NumPy scalar."""
        value = self._core.reduce(what)
        if what in ("any", "all"):
            return np.bool_(value)
        if what in ("argmin", "argmax", "count_nonzero"):
            return np.int64(value)
        if what == "mean":
            return np.float32(value) if self.dtype == np.float32 else np.float64(value)
        if what in ("min", "max"):
            return self.dtype.type(value)
        kind = self.dtype.kind
        if kind == "f":
            return self.dtype.type(value)
        if what == "sum":
            return np.uint64(value) if kind == "u" else np.int64(value)
        return self.dtype.type(value)

    def _nan_extreme(self, what, axes):
        """min or max of floats over ``axes`` (flat) as NumPy gives them:
        NaN where any element is NaN."""
        values = self._core.reduce_axes(what, list(axes)).astype(self.dtype)
        nans = (self != self).astype("uint8")._core.reduce_axes("max", list(axes))
        return np.where(nans > 0, np.nan, values).astype(self.dtype)

    def _nonzero(self):
        """Whether each element is non-zero, as a bool array (NaN counts)."""
        return self if self._bool else self != 0

    def _flat_get(self, index):
        """The element at flat ``index`` (not collective)."""
        return self._core.get(list(np.unravel_index(int(index), self.shape)))

    def sum(self, axis=None, dtype=None, keepdims=False):
        """The sum (integers in 64 bits; floats exactly, correctly rounded,
        whatever the layout; over some axes in partition order, not
        exactly). ``axis``: None (all), an axis or a tuple of axes."""
        return _as(self._reduce("sum", axis, keepdims), dtype)

    def prod(self, axis=None, dtype=None, keepdims=False):
        """The product."""
        return _as(self._reduce("prod", axis, keepdims), dtype)

    def min(self, axis=None, keepdims=False):
        """The smallest element (NaN if any is NaN, as NumPy's)."""
        return self._reduce("min", axis, keepdims)

    def max(self, axis=None, keepdims=False):
        """The largest element (NaN if any is NaN, as NumPy's)."""
        return self._reduce("max", axis, keepdims)

    def mean(self, axis=None, dtype=None, keepdims=False):
        """The mean (float64; float32 for float32 arrays)."""
        return _as(self._reduce("mean", axis, keepdims), dtype)

    def var(self, axis=None, dtype=None, ddof=0, keepdims=False):
        """The variance, ``sum((x - mean)**2) / (n - ddof)`` over ``axis``
        (ddof=0: the population's, as NumPy's default)."""
        if self._view is not None:
            return np.var(self._view, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)
        n = 1
        for a in set(range(self.ndim) if axis is None else _axes(axis, self.ndim)):
            n *= self.shape[a]
        wide = self.astype("float64")
        centred = wide - (wide.mean() if axis is None else wide.mean(axis=axis, keepdims=True))
        squares = np.asarray((centred * centred).sum(axis=axis, keepdims=keepdims))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = squares / np.float64(builtins.max(n - ddof, 0))
        if dtype is None and self.dtype == np.float32:
            dtype = np.float32
        return _as(out[()], dtype)

    def std(self, axis=None, dtype=None, ddof=0, keepdims=False):
        """The standard deviation: the square root of :meth:`var`."""
        return np.sqrt(self.var(axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims))

    def _arg(self, what, axis, keepdims):
        if self._view is not None:
            return getattr(np, what)(self._view, axis=axis, keepdims=keepdims)
        if axis is None:
            value = self._reduce_all(what)
            return np.full((1,) * self.ndim, value) if keepdims else value
        (k,) = _axes(operator.index(axis), self.ndim)
        n = self.shape[k]
        if n == 0:
            raise HPXValueError(f"attempt to get {what} of an empty sequence")
        extreme = self._reduce("min" if what == "argmin" else "max", k, keepdims=True)
        # The first element equal to the extreme along the axis; where the
        # extreme is NaN, the first NaN (the only elements unequal to
        # themselves are on those lines).
        hit = self == extreme
        if self.dtype.kind == "f":
            hit = hit | (self != self)
        coords = np.arange(n, dtype=np.int64).reshape([n if i == k else 1 for i in range(self.ndim)])
        from . import where

        return where(hit, coords, np.int64(n))._reduce("min", k, keepdims)

    def argmin(self, axis=None, keepdims=False):
        """The index of the first smallest element: flat (``axis=None``) or
        along ``axis``."""
        return self._arg("argmin", axis, keepdims)

    def argmax(self, axis=None, keepdims=False):
        """The index of the first largest element: flat (``axis=None``) or
        along ``axis``."""
        return self._arg("argmax", axis, keepdims)

    def any(self, axis=None, keepdims=False):
        """Whether any element is non-zero (over ``axis``)."""
        if self._view is not None:
            return np.any(self._view, axis=axis, keepdims=keepdims)
        if axis is None:
            value = self._reduce_all("any")
            return np.full((1,) * self.ndim, value) if keepdims else value
        return self.count_nonzero(axis=axis, keepdims=keepdims) > 0

    def all(self, axis=None, keepdims=False):
        """Whether every element is non-zero (over ``axis``; true where
        there are none)."""
        if self._view is not None:
            return np.all(self._view, axis=axis, keepdims=keepdims)
        if axis is None:
            value = self._reduce_all("all")
            return np.full((1,) * self.ndim, value) if keepdims else value
        n = 1
        for a in set(_axes(axis, self.ndim)):
            n *= self.shape[a]
        return self.count_nonzero(axis=axis, keepdims=keepdims) == n

    def count_nonzero(self, axis=None, keepdims=False):
        """The number of non-zero elements (over ``axis``)."""
        if self._view is not None:
            return np.count_nonzero(self._view, axis=axis, keepdims=keepdims)
        if axis is None and not keepdims:
            return int(self._reduce_all("count_nonzero"))
        counts = self._nonzero().astype("uint8")._reduce("sum", axis, keepdims)
        return np.asarray(counts).astype(np.int64)[()]

    def _scanned(self, op, axis=None):
        if self._view is not None:
            scan = np.cumsum if op == "sum" else np.cumprod
            return from_numpy_view(scan(self._view, axis=axis))
        if axis is not None:
            (axis,) = _axes(operator.index(axis), self.ndim)
        elif self.ndim != 1:
            # NumPy's flat scan of an n-d array is a 1-d array: scanned here
            # and made a 1-d array in blocks (the layout of n-d arrays is
            # along axis 0, which a flat result does not have).
            flat = self.to_numpy().reshape(-1)
            scanned = np.cumsum(flat) if op == "sum" else np.cumprod(flat)
            from . import from_numpy

            return from_numpy(scanned, distribution="block")
        name = self.dtype.name
        if name == "bool" or self.dtype.kind in "iu":
            name = "uint64" if self.dtype.kind == "u" else "int64"
        out = self.astype(name) if name != self.dtype.name else self.copy()
        if axis is None:
            out._core.scan(op)
        else:
            out._core.scan_axis(op, axis)
        return out

    def cumsum(self, axis=None):
        """Running sums (integers in 64 bits), in a new array: flat
        (``axis=None``, a 1-d array) or along ``axis``, in the same shape."""
        return self._scanned("sum", axis)

    def cumprod(self, axis=None):
        """Running products (integers in 64 bits), in a new array: flat
        (``axis=None``) or along ``axis``."""
        return self._scanned("prod", axis)


_NUMPY_BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "rem": operator.mod,
    "pow": operator.pow,
    "minimum": np.minimum,
    "maximum": np.maximum,
    "arctan2": np.arctan2,
    "hypot": np.hypot,
    "copysign": np.copysign,
    "fmod": np.fmod,
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


# --- linear algebra ------------------------------------------------------


def _local(x):
    """``x`` as NumPy where it is not distributed (a view's array)."""
    if isinstance(x, DistributedArray):
        return x._view if x._view is not None else x
    return np.asarray(x)


def _matmul(x, y):
    """NumPy's ``matmul`` for 1-d and 2-d operands, one or both
    distributed: the product's rows lie with the left operand's (see
    :meth:`DistributedArray.__matmul__`)."""
    x, y = _local(x), _local(y)
    xd, yd = isinstance(x, DistributedArray), isinstance(y, DistributedArray)
    if not xd and not yd:
        return from_numpy_view(np.matmul(x, y))
    if x.ndim == 0 or y.ndim == 0:
        raise HPXValueError("matmul: an operand has no dimensions (use * for scalars)")
    if x.ndim > 2 or y.ndim > 2:
        raise HPXValueError(
            f"matmul of a {x.ndim}-d and a {y.ndim}-d array: 1-d and 2-d operands only"
        )
    k = x.shape[-1]
    if y.shape[0] != k:
        raise HPXValueError(
            f"matmul: the operands' core dimensions differ ({k} and {y.shape[0]}): shapes "
            f"{x.shape} and {y.shape}"
        )
    name = _promote(x.dtype, y.dtype)
    if name == "bool":
        raise DTypeError("matmul of boolean arrays is not supported; use astype('int64')")
    if x.ndim == 1 and y.ndim == 1:
        both = (x if xd else y)._cast(name)
        other = y if xd else x
        return (both * (other._cast(name) if isinstance(other, DistributedArray)
                        else np.asarray(other, dtype=name))).sum().astype(name)
    X = x if x.ndim == 2 else x.reshape(1, k)
    Y = y if y.ndim == 2 else y.reshape(k, 1)
    if isinstance(X, DistributedArray):
        X = X._cast(name)
        if isinstance(Y, DistributedArray):
            core = X._core.matmul(Y._cast(name)._core)
        else:
            Y = np.ascontiguousarray(Y, dtype=name)
            core = X._core.matmul_values(Y, Y.shape[1])
        out = DistributedArray._wrap(core, False)
    else:
        # A NumPy left operand: (Y.T @ X.T).T, the rows with Y's.
        out = _matmul(Y.T, np.ascontiguousarray(X.T, dtype=name)).T
    if x.ndim == 1:
        return out.reshape(out.shape[1])
    if y.ndim == 1:
        return out.reshape(out.shape[0])
    return out


def _as(value, dtype):
    """``value`` (a NumPy scalar or array) in ``dtype``, if one is given."""
    return value if dtype is None else np.asarray(value).astype(dtype)[()]


def from_numpy_view(x):
    """A local array sharing memory with the NumPy array ``x``."""
    return DistributedArray._wrap(None, False, x)


def _resolve_shape(shape, size):
    """``shape`` with its -1 (if any) worked out for ``size`` elements, as
    NumPy's ``reshape`` does."""
    unknown = [i for i, k in enumerate(shape) if k == -1]
    if len(unknown) > 1 or builtins.any(k < -1 for k in shape):
        raise HPXValueError(f"can only specify one unknown dimension: {shape}")
    known = 1
    for k in shape:
        if k != -1:
            known *= k
    if unknown:
        if known == 0 or size % known:
            raise HPXValueError(f"cannot reshape array of size {size} into shape {shape}")
        shape = shape[:unknown[0]] + (size // known,) + shape[unknown[0] + 1:]
    elif known != size:
        raise HPXValueError(f"cannot reshape array of size {size} into shape {shape}")
    return shape


def _axes(axis, ndim):
    """``axis`` (an int or a tuple) as non-negative axes of an ``ndim``-d
    array."""
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise HPXIndexError(f"axis {a} is out of bounds for array of dimension {ndim}")
        out.append(a % ndim)
    return out


def _operand(other):
    """A second operand as the operations take it: a 0-d NumPy array as
    its scalar, lists and tuples as NumPy arrays."""
    if isinstance(other, (list, tuple)):
        other = np.asarray(other)
    if isinstance(other, np.ndarray) and other.ndim == 0:
        return other[()]
    return other


def _broadcasts(a, other):
    """Whether ``a`` and ``other`` combine by broadcasting: ``other`` a
    NumPy array, or a DistributedArray of another shape."""
    return isinstance(other, np.ndarray) or (
        isinstance(other, DistributedArray) and other.shape != a.shape)


def _broadcast_shape(*shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise HPXValueError(
            "operands could not be broadcast together with shapes "
            + " ".join(str(tuple(s)) for s in shapes)
        ) from None


def _spread(base, values, name):
    """An expression of ``base``'s shape and layout whose value is
    ``values`` (a NumPy or DistributedArray, read whole here) broadcast to
    it, as dtype ``name``."""
    if isinstance(values, DistributedArray):
        values = values.to_numpy()
    data = np.ascontiguousarray(values, dtype=np.uint8 if name == "bool" else name)
    return DistributedArray._wrap(base._core.broadcast_values(data, name), name == "bool")


def broadcast_to(x, shape):
    """``x`` (a DistributedArray, NumPy array or scalar) broadcast to
    ``shape`` by NumPy's rules, as a new distributed array of that shape in
    the block distribution (collective; NumPy gives a read-only view)."""
    shape = tuple(int(k) for k in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    values = x if isinstance(x, DistributedArray) else np.asarray(x)
    if isinstance(values, DistributedArray) and values.shape == shape:
        return values.copy()
    if _broadcast_shape(values.shape, shape) != shape:
        raise HPXValueError(f"cannot broadcast an array of shape {values.shape} to {shape}")
    name = _dtype_name(values.dtype)
    base = _create("fill", (0,), shape, name, "block", None, None, None, None)
    return _spread(base, values, name)


def _local_binary(op, a, b, reverse):
    """An operation with a view of a NumPy array: local, in NumPy."""
    x = a._view if a._view is not None else a.to_numpy()
    if isinstance(b, DistributedArray):
        y = b._view if b._view is not None else b.to_numpy()
    else:
        y = b
    if reverse:
        x, y = y, x
    return from_numpy_view(np.asarray(_NUMPY_BINARY[op](x, y)))

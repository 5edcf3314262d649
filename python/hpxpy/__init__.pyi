"""HPXPy: distributed NumPy-style arrays and collectives over N processes,
on the hpx-rs runtime.

Type stubs for editors and type checkers; the code is in ``__init__.py``,
``_array.py`` and ``_errors.py``. SPMD rule: every call that makes or
changes a DistributedArray, and every collective, is made by every
locality (every member of a Communicator) in the same order; reads
(``to_numpy()``, indexing, ``local_partition``) are not collective.
"""

import enum
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

_T = TypeVar("_T")

_Scalar = bool | int | float | np.number[Any] | np.bool_
_Shape = int | Sequence[int]
_Chunks = int | Sequence[int | None]
_Localities = Sequence[int] | None
_DistributionName = Literal["local", "block", "cyclic", "block_cyclic", "grid"]
_Op = Literal["sum", "prod", "min", "max", "bitwise_and", "bitwise_or", "bitwise_xor"]
_Operand = DistributedArray | _Scalar
_Axis = int | tuple[int, ...] | None

__version__: str

#: The element types hpxpy arrays hold.
DTYPES: tuple[str, ...]

# --- errors ---------------------------------------------------------------------

class HPXError(RuntimeError):
    """An error of the hpx runtime; the message is the runtime's."""

class LocalityLostError(HPXError):
    """A locality of the job died or stopped answering."""

class JobAbortedError(HPXError):
    """The job was stopped: another locality failed, or it was interrupted."""

class CollectiveMismatchError(HPXError):
    """Localities made different collective calls at the same point."""

class HPXValueError(HPXError, ValueError):
    """A bad argument: mismatched shapes or layouts, an unknown operation."""

class HPXIndexError(HPXError, IndexError):
    """An index out of range."""

class LocalityIndexError(HPXError, IndexError):
    """A locality number (a root, a placement) that is not in the job."""

class DTypeError(HPXError, TypeError):
    """An element type that hpxpy arrays do not hold, or that an operation does not take."""

# --- layouts ---------------------------------------------------------------------

class distribution(str, enum.Enum):
    """How an array's elements are spread (``distribution=``); equal to its string."""

    def __new__(cls, value: str) -> distribution:
        """The member of that name: ``distribution('block')``."""

    local = "local"
    """One partition on one locality (locality 0 unless ``localities=``); also ``None``."""
    block = "block"
    """One contiguous block of rows per locality."""
    cyclic = "cyclic"
    """Rows round robin, one partition per locality."""
    block_cyclic = "block_cyclic"
    """Chunks of rows round robin (``chunks=`` sets the chunk)."""
    grid = "grid"
    """2-d tiles, one per locality of a locality grid."""

_Distribution = _DistributionName | distribution | None

# --- the array -------------------------------------------------------------------

class DistributedArray:
    """An array whose partitions live on the localities of the job (make it with zeros, from_numpy, ...)."""

    __array_priority__: ClassVar[int]
    __hash__: ClassVar[None]  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Not for use (raises TypeError): make arrays with zeros, ones, full, arange, from_numpy, ..."""

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape (a tuple)."""
    @property
    def dtype(self) -> np.dtype[Any]:
        """The element type (a NumPy dtype)."""
    @property
    def size(self) -> int:
        """The number of elements."""
    @property
    def ndim(self) -> int:
        """The number of axes."""
    @property
    def is_distributed(self) -> bool:
        """Whether the partitions are on more than one locality."""
    @property
    def num_partitions(self) -> int:
        """The number of partitions."""
    @property
    def partition_sizes(self) -> list[int]:
        """The number of elements of each partition, in partition order."""
    @property
    def localities(self) -> list[int]:
        """The locality of each partition, in partition order."""
    @property
    def distribution(self) -> str:
        """The layout as the runtime spells it (``Block``, ``Chunks(1000)``, ...)."""
    @property
    def local_partition(self) -> NDArray[Any] | list[NDArray[Any]]:
        """This locality's data as a writable zero-copy view (empty if none; a list if several partitions)."""
    def is_view(self) -> bool:
        """Whether this array shares memory with a NumPy array (``from_numpy(x, copy=False)``)."""
    def local_partitions(self) -> list[NDArray[Any]]:
        """Writable zero-copy NumPy views of the partitions this locality holds, in partition order."""
    def local_offsets(self) -> list[tuple[int, ...] | None]:
        """For each local partition, the index of its first element per axis (None if round robin)."""
    def to_numpy(self) -> NDArray[Any]:
        """Every element, gathered into a new NumPy array (not collective)."""
    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> NDArray[Any]:
        """``np.asarray(a)``: the same as ``to_numpy()``."""
    def tolist(self) -> list[Any]:
        """The elements as nested Python lists (not collective)."""
    def copy(self) -> DistributedArray:
        """A copy in the same layout (collective)."""
    def astype(self, dtype: DTypeLike) -> DistributedArray:
        """A copy with elements converted to ``dtype`` (collective)."""
    def reshape(self, *shape: int | Sequence[int], order: str = "C") -> DistributedArray:
        """The same elements in ``shape`` (one axis may be -1; collective): a view sharing the
        partitions where each holds whole rows of the new shape, else a block copy."""
    @property
    def T(self) -> DistributedArray:
        """The axes reversed (a new array in block rows; collective)."""
    def transpose(self, *axes: int | Sequence[int]) -> DistributedArray:
        """The axes reversed or in the order ``axes`` (a new array in block rows; collective)."""
    def swapaxes(self, axis1: int, axis2: int) -> DistributedArray:
        """Two axes swapped."""
    def moveaxis(self, source: int | Sequence[int],
                 destination: int | Sequence[int]) -> DistributedArray:
        """Axes moved to new places, the others in their order."""
    def ravel(self) -> DistributedArray:
        """The elements as a 1-d array (a view where the layout allows it)."""
    def flatten(self) -> DistributedArray:
        """The elements as a new 1-d array (a copy)."""
    def squeeze(self, axis: int | Sequence[int] | None = None) -> DistributedArray:
        """Without the axes of length one (``axis``: only those)."""
    def same_array_memory(self, other: DistributedArray) -> bool:
        """Whether ``other`` shares this array's partitions (itself or a view of it)."""
    def round(self, decimals: int = 0) -> DistributedArray:
        """Rounded to ``decimals`` places, halves to even (NumPy's ``round``)."""
    def clip(self, min: _Scalar | DistributedArray | None = None,
             max: _Scalar | DistributedArray | None = None) -> DistributedArray:
        """Limited to ``[min, max]`` element by element (either may be None)."""
    def fill(self, value: _Scalar) -> None:
        """Sets every element to ``value`` (collective)."""
    def redistribute(
        self,
        distribution: _Distribution = None,
        chunks: _Chunks | None = None,
        num_partitions: int | None = None,
        localities: _Localities = None,
    ) -> DistributedArray:
        """A copy in another layout, moved owner to owner in bulk (collective)."""
    def __len__(self) -> int:
        """The length of axis 0."""
    def __bool__(self) -> bool:
        """The truth of a one-element array (others raise ValueError)."""
    @overload
    def __getitem__(self, key: int | tuple[int, ...]) -> Any:
        """One element (not collective)."""
    @overload
    def __getitem__(self, key: slice | Any) -> NDArray[Any]:
        """A NumPy copy of the selected elements (not collective)."""
    def __setitem__(self, key: int | tuple[int, ...] | slice, value: ArrayLike) -> None:
        """Sets one element or a contiguous 1-d slice (collective)."""

    # Reductions. ``axis``: None (every element: one NumPy scalar), an axis or
    # a tuple of axes (a NumPy array of the other axes); ``keepdims`` keeps the
    # reduced axes with length one (always a NumPy array).
    def sum(self, axis: _Axis = None, dtype: Any = None, keepdims: bool = False) -> Any:
        """The sum (integers in 64 bits; floats correctly rounded over every element)."""
    def prod(self, axis: _Axis = None, dtype: Any = None, keepdims: bool = False) -> Any:
        """The product."""
    def min(self, axis: _Axis = None, keepdims: bool = False) -> Any:
        """The smallest element (NaN if any is NaN)."""
    def max(self, axis: _Axis = None, keepdims: bool = False) -> Any:
        """The largest element (NaN if any is NaN)."""
    def mean(self, axis: _Axis = None, dtype: Any = None, keepdims: bool = False) -> Any:
        """The mean (float64; float32 for float32 arrays)."""
    def var(self, axis: _Axis = None, dtype: Any = None, ddof: int = 0,
            keepdims: bool = False) -> Any:
        """The variance, ``sum((x - mean)**2) / (n - ddof)``."""
    def std(self, axis: _Axis = None, dtype: Any = None, ddof: int = 0,
            keepdims: bool = False) -> Any:
        """The standard deviation."""
    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Any:
        """The index of the first smallest element: flat, or along ``axis``."""
    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Any:
        """The index of the first largest element: flat, or along ``axis``."""
    def any(self, axis: _Axis = None, keepdims: bool = False) -> Any:
        """Whether any element is non-zero."""
    def all(self, axis: _Axis = None, keepdims: bool = False) -> Any:
        """Whether every element is non-zero."""
    def count_nonzero(self, axis: _Axis = None, keepdims: bool = False) -> Any:
        """The number of non-zero elements."""
    def __matmul__(self, other: DistributedArray | ArrayLike) -> Any:
        """``a @ b`` for 1-d and 2-d arrays (collective): rows with ``a``'s."""
    def __rmatmul__(self, other: ArrayLike) -> Any:
        """``x @ a`` for a NumPy ``x``."""
    def dot(self, other: DistributedArray | ArrayLike | _Scalar) -> Any:
        """NumPy's ``a.dot(b)``."""
    def cumsum(self, axis: int | None = None) -> DistributedArray:
        """Running sums (integers in 64 bits): flat, or along ``axis`` (collective)."""
    def cumprod(self, axis: int | None = None) -> DistributedArray:
        """Running products (integers in 64 bits): flat, or along ``axis`` (collective)."""

    # Element-wise math (collective; runs where the data lives): with another
    # DistributedArray of the same shape and layout, or a scalar.
    def __add__(self, other: _Operand) -> DistributedArray:
        """``a + b``."""
    def __radd__(self, other: _Scalar) -> DistributedArray:
        """``2 + a``."""
    def __sub__(self, other: _Operand) -> DistributedArray:
        """``a - b``."""
    def __rsub__(self, other: _Scalar) -> DistributedArray:
        """``2 - a``."""
    def __mul__(self, other: _Operand) -> DistributedArray:
        """``a * b``."""
    def __rmul__(self, other: _Scalar) -> DistributedArray:
        """``2 * a``."""
    def __truediv__(self, other: _Operand) -> DistributedArray:
        """``a / b`` (floats)."""
    def __rtruediv__(self, other: _Scalar) -> DistributedArray:
        """``2 / a`` (floats)."""
    def __floordiv__(self, other: _Operand) -> DistributedArray:
        """``a // b`` (integer arrays)."""
    def __rfloordiv__(self, other: _Scalar) -> DistributedArray:
        """``2 // a`` (integer arrays)."""
    def __mod__(self, other: _Operand) -> DistributedArray:
        """``a % b``."""
    def __rmod__(self, other: _Scalar) -> DistributedArray:
        """``2 % a``."""
    def __pow__(self, other: _Operand) -> DistributedArray:
        """``a ** b``."""
    def __rpow__(self, other: _Scalar) -> DistributedArray:
        """``2 ** a``."""
    def __neg__(self) -> DistributedArray:
        """``-a``."""
    def __pos__(self) -> DistributedArray:
        """``+a`` (a copy)."""
    def __abs__(self) -> DistributedArray:
        """``abs(a)``."""
    def __and__(self, other: DistributedArray | bool) -> DistributedArray:
        """``a & b`` (boolean arrays)."""
    def __rand__(self, other: bool) -> DistributedArray:
        """``True & a`` (boolean arrays)."""
    def __or__(self, other: DistributedArray | bool) -> DistributedArray:
        """``a | b`` (boolean arrays)."""
    def __ror__(self, other: bool) -> DistributedArray:
        """``True | a`` (boolean arrays)."""
    def __xor__(self, other: DistributedArray | bool) -> DistributedArray:
        """``a ^ b`` (boolean arrays)."""
    def __rxor__(self, other: bool) -> DistributedArray:
        """``True ^ a`` (boolean arrays)."""
    def __invert__(self) -> DistributedArray:
        """``~a`` (boolean arrays)."""
    def __eq__(self, other: _Operand) -> DistributedArray:  # type: ignore[override]
        """``a == b``, a boolean array."""
    def __ne__(self, other: _Operand) -> DistributedArray:  # type: ignore[override]
        """``a != b``, a boolean array."""
    def __lt__(self, other: _Operand) -> DistributedArray:
        """``a < b``, a boolean array."""
    def __le__(self, other: _Operand) -> DistributedArray:
        """``a <= b``, a boolean array."""
    def __gt__(self, other: _Operand) -> DistributedArray:
        """``a > b``, a boolean array."""
    def __ge__(self, other: _Operand) -> DistributedArray:
        """``a >= b``, a boolean array."""

# --- the job -----------------------------------------------------------------------

def get_locality_id() -> int:
    """This locality's number (0 .. number of localities - 1)."""

def get_num_localities() -> int:
    """The number of localities of the job (1 when run plainly)."""

def counters() -> dict[str, Any]:
    """This locality's counters as a dict: traffic per peer and parcelport, actions by name, tasks, collective waits, AGAS lookups, partition bytes."""

def init(**_ignored: Any) -> None:
    """Starts the runtime if it has not started (it starts by itself)."""

def finalize() -> None:
    """Ends this locality's part of the job now, as at exit: waits for every locality to end its part."""

# --- creation (collective) -------------------------------------------------------

def zeros(
    shape: _Shape,
    dtype: DTypeLike = "float64",
    distribution: _Distribution = None,
    chunks: _Chunks | None = None,
    num_partitions: int | None = None,
    localities: _Localities = None,
    grid: tuple[int, int] | None = None,
) -> DistributedArray:
    """An array of zeros; ``distribution``/``chunks``/``num_partitions``/``localities``/``grid`` set the layout."""

def ones(
    shape: _Shape,
    dtype: DTypeLike = "float64",
    distribution: _Distribution = None,
    chunks: _Chunks | None = None,
    num_partitions: int | None = None,
    localities: _Localities = None,
    grid: tuple[int, int] | None = None,
) -> DistributedArray:
    """An array of ones (layout keywords as for zeros)."""

def full(
    shape: _Shape,
    fill_value: _Scalar,
    dtype: DTypeLike | None = None,
    distribution: _Distribution = None,
    chunks: _Chunks | None = None,
    num_partitions: int | None = None,
    localities: _Localities = None,
    grid: tuple[int, int] | None = None,
) -> DistributedArray:
    """An array of ``fill_value`` (dtype from the value unless given)."""

def empty(
    shape: _Shape,
    dtype: DTypeLike = "float64",
    distribution: _Distribution = None,
    chunks: _Chunks | None = None,
    num_partitions: int | None = None,
    localities: _Localities = None,
    grid: tuple[int, int] | None = None,
) -> DistributedArray:
    """An array whose values are not to be relied on (zeros here)."""

def arange(
    start: int | float,
    stop: int | float | None = None,
    step: int | float = 1,
    dtype: DTypeLike | None = None,
    distribution: _Distribution = None,
    chunks: _Chunks | None = None,
    num_partitions: int | None = None,
    localities: _Localities = None,
) -> DistributedArray:
    """``start, start + step, ...`` below ``stop``, like numpy.arange (int64 or float64)."""

def linspace(
    start: float,
    stop: float,
    num: int = 50,
    dtype: DTypeLike = "float64",
    distribution: _Distribution = None,
    chunks: _Chunks | None = None,
    num_partitions: int | None = None,
    localities: _Localities = None,
) -> DistributedArray:
    """``num`` evenly spaced values from ``start`` to ``stop`` (included)."""

def from_numpy(
    data: ArrayLike,
    distribution: _Distribution = None,
    chunks: _Chunks | None = None,
    num_partitions: int | None = None,
    localities: _Localities = None,
    grid: tuple[int, int] | None = None,
    copy: bool = True,
) -> DistributedArray:
    """An array holding ``data`` (same data on every locality; each keeps its share); ``copy=False``: a local view."""

def array(
    data: ArrayLike,
    distribution: _Distribution = None,
    chunks: _Chunks | None = None,
    num_partitions: int | None = None,
    localities: _Localities = None,
    grid: tuple[int, int] | None = None,
    copy: bool = True,
) -> DistributedArray:
    """The same as from_numpy."""

class random:
    """Random arrays: the same seed gives the same values whatever the layout and locality count."""

    @staticmethod
    def uniform(
        low: float = 0.0,
        high: float = 1.0,
        size: _Shape | None = None,
        seed: int = 0,
        dtype: DTypeLike = "float64",
        *,
        distribution: _Distribution = None,
        chunks: _Chunks | None = None,
        num_partitions: int | None = None,
        localities: _Localities = None,
    ) -> DistributedArray:
        """Uniform values in ``[low, high)``."""
    @staticmethod
    def random(
        size: _Shape | None = None,
        seed: int = 0,
        *,
        distribution: _Distribution = None,
        chunks: _Chunks | None = None,
        num_partitions: int | None = None,
        localities: _Localities = None,
    ) -> DistributedArray:
        """Uniform float64 values in ``[0, 1)``."""
    @staticmethod
    def normal(
        loc: float = 0.0,
        scale: float = 1.0,
        size: _Shape | None = None,
        seed: int = 0,
        dtype: DTypeLike = "float64",
        *,
        distribution: _Distribution = None,
        chunks: _Chunks | None = None,
        num_partitions: int | None = None,
        localities: _Localities = None,
    ) -> DistributedArray:
        """Normally distributed values."""
    @staticmethod
    def integers(
        low: int,
        high: int,
        size: _Shape | None = None,
        seed: int = 0,
        dtype: DTypeLike = "int64",
        *,
        distribution: _Distribution = None,
        chunks: _Chunks | None = None,
        num_partitions: int | None = None,
        localities: _Localities = None,
    ) -> DistributedArray:
        """Integers uniform in ``[low, high)``."""

# --- functions (on DistributedArrays collective; other inputs go to NumPy) ------

@overload
def sqrt(x: DistributedArray) -> DistributedArray:
    """Element-wise square root (floats for integer input)."""
@overload
def sqrt(x: ArrayLike) -> Any: ...
@overload
def exp(x: DistributedArray) -> DistributedArray:
    """Element-wise exponential (floats for integer input)."""
@overload
def exp(x: ArrayLike) -> Any: ...
@overload
def log(x: DistributedArray) -> DistributedArray:
    """Element-wise natural logarithm (floats for integer input)."""
@overload
def log(x: ArrayLike) -> Any: ...
@overload
def sin(x: DistributedArray) -> DistributedArray:
    """Element-wise sine (floats for integer input)."""
@overload
def sin(x: ArrayLike) -> Any: ...
@overload
def cos(x: DistributedArray) -> DistributedArray:
    """Element-wise cosine (floats for integer input)."""
@overload
def cos(x: ArrayLike) -> Any: ...
@overload
def abs(x: DistributedArray) -> DistributedArray:
    """Element-wise absolute value (keeps the dtype)."""
@overload
def abs(x: ArrayLike) -> Any: ...
@overload
def negative(x: DistributedArray) -> DistributedArray:
    """Element-wise ``-x``."""
@overload
def negative(x: ArrayLike) -> Any: ...
@overload
def minimum(x: DistributedArray, y: _Operand) -> DistributedArray:
    """Element-wise minimum of two arrays, or an array and a scalar."""
@overload
def minimum(x: _Scalar, y: DistributedArray) -> DistributedArray: ...
@overload
def minimum(x: ArrayLike, y: ArrayLike) -> Any: ...
@overload
def maximum(x: DistributedArray, y: _Operand) -> DistributedArray:
    """Element-wise maximum of two arrays, or an array and a scalar."""
@overload
def maximum(x: _Scalar, y: DistributedArray) -> DistributedArray: ...
@overload
def maximum(x: ArrayLike, y: ArrayLike) -> Any: ...
@overload
def cbrt(x: DistributedArray) -> DistributedArray:
    """Element-wise cube root (floats for integer input)."""
@overload
def cbrt(x: ArrayLike) -> Any: ...
@overload
def exp2(x: DistributedArray) -> DistributedArray:
    """Element-wise ``2 ** x`` (floats for integer input)."""
@overload
def exp2(x: ArrayLike) -> Any: ...
@overload
def expm1(x: DistributedArray) -> DistributedArray:
    """Element-wise ``exp(x) - 1``, exact near 0 (floats for integer input)."""
@overload
def expm1(x: ArrayLike) -> Any: ...
@overload
def log2(x: DistributedArray) -> DistributedArray:
    """Element-wise base-2 logarithm (floats for integer input)."""
@overload
def log2(x: ArrayLike) -> Any: ...
@overload
def log10(x: DistributedArray) -> DistributedArray:
    """Element-wise base-10 logarithm (floats for integer input)."""
@overload
def log10(x: ArrayLike) -> Any: ...
@overload
def log1p(x: DistributedArray) -> DistributedArray:
    """Element-wise ``log(1 + x)``, exact near 0 (floats for integer input)."""
@overload
def log1p(x: ArrayLike) -> Any: ...
@overload
def tan(x: DistributedArray) -> DistributedArray:
    """Element-wise tangent (floats for integer input)."""
@overload
def tan(x: ArrayLike) -> Any: ...
@overload
def arcsin(x: DistributedArray) -> DistributedArray:
    """Element-wise inverse sine (floats for integer input)."""
@overload
def arcsin(x: ArrayLike) -> Any: ...
@overload
def arccos(x: DistributedArray) -> DistributedArray:
    """Element-wise inverse cosine (floats for integer input)."""
@overload
def arccos(x: ArrayLike) -> Any: ...
@overload
def arctan(x: DistributedArray) -> DistributedArray:
    """Element-wise inverse tangent (floats for integer input)."""
@overload
def arctan(x: ArrayLike) -> Any: ...
@overload
def sinh(x: DistributedArray) -> DistributedArray:
    """Element-wise hyperbolic sine (floats for integer input)."""
@overload
def sinh(x: ArrayLike) -> Any: ...
@overload
def cosh(x: DistributedArray) -> DistributedArray:
    """Element-wise hyperbolic cosine (floats for integer input)."""
@overload
def cosh(x: ArrayLike) -> Any: ...
@overload
def tanh(x: DistributedArray) -> DistributedArray:
    """Element-wise hyperbolic tangent (floats for integer input)."""
@overload
def tanh(x: ArrayLike) -> Any: ...
@overload
def arcsinh(x: DistributedArray) -> DistributedArray:
    """Element-wise inverse hyperbolic sine (floats for integer input)."""
@overload
def arcsinh(x: ArrayLike) -> Any: ...
@overload
def arccosh(x: DistributedArray) -> DistributedArray:
    """Element-wise inverse hyperbolic cosine (floats for integer input)."""
@overload
def arccosh(x: ArrayLike) -> Any: ...
@overload
def arctanh(x: DistributedArray) -> DistributedArray:
    """Element-wise inverse hyperbolic tangent (floats for integer input)."""
@overload
def arctanh(x: ArrayLike) -> Any: ...
@overload
def absolute(x: DistributedArray) -> DistributedArray:
    """Element-wise absolute value (keeps the dtype)."""
@overload
def absolute(x: ArrayLike) -> Any: ...
@overload
def positive(x: DistributedArray) -> DistributedArray:
    """Element-wise ``+x`` (a copy)."""
@overload
def positive(x: ArrayLike) -> Any: ...
@overload
def sign(x: DistributedArray) -> DistributedArray:
    """Element-wise -1, 0 or 1 by sign, NaN kept (keeps the dtype)."""
@overload
def sign(x: ArrayLike) -> Any: ...
@overload
def floor(x: DistributedArray) -> DistributedArray:
    """Element-wise floor (integers are kept)."""
@overload
def floor(x: ArrayLike) -> Any: ...
@overload
def ceil(x: DistributedArray) -> DistributedArray:
    """Element-wise ceiling (integers are kept)."""
@overload
def ceil(x: ArrayLike) -> Any: ...
@overload
def trunc(x: DistributedArray) -> DistributedArray:
    """Element-wise rounding toward zero (integers are kept)."""
@overload
def trunc(x: ArrayLike) -> Any: ...
@overload
def rint(x: DistributedArray) -> DistributedArray:
    """Element-wise rounding to the nearest integer, halves to even (integers are kept)."""
@overload
def rint(x: ArrayLike) -> Any: ...
@overload
def square(x: DistributedArray) -> DistributedArray:
    """Element-wise ``x * x`` (keeps the dtype)."""
@overload
def square(x: ArrayLike) -> Any: ...
@overload
def fabs(x: DistributedArray) -> DistributedArray:
    """Element-wise absolute value as floats."""
@overload
def fabs(x: ArrayLike) -> Any: ...
@overload
def reciprocal(x: DistributedArray) -> DistributedArray:
    """Element-wise ``1 / x`` of a floating-point array."""
@overload
def reciprocal(x: ArrayLike) -> Any: ...
@overload
def isnan(x: DistributedArray) -> DistributedArray:
    """Where ``x`` is NaN (a boolean array)."""
@overload
def isnan(x: ArrayLike) -> Any: ...
@overload
def isfinite(x: DistributedArray) -> DistributedArray:
    """Where ``x`` is finite (a boolean array)."""
@overload
def isfinite(x: ArrayLike) -> Any: ...
@overload
def isinf(x: DistributedArray) -> DistributedArray:
    """Where ``x`` is infinite (a boolean array)."""
@overload
def isinf(x: ArrayLike) -> Any: ...
@overload
def signbit(x: DistributedArray) -> DistributedArray:
    """Where the sign bit of ``x`` is set (a boolean array)."""
@overload
def signbit(x: ArrayLike) -> Any: ...
@overload
def logical_not(x: DistributedArray) -> DistributedArray:
    """Element-wise ``not x``, non-zero being true (a boolean array)."""
@overload
def logical_not(x: ArrayLike) -> Any: ...
@overload
def fmod(x: DistributedArray, y: _Operand) -> DistributedArray:
    """Element-wise remainder with the sign of the dividend (C's ``fmod``)."""
@overload
def fmod(x: _Scalar, y: DistributedArray) -> DistributedArray: ...
@overload
def fmod(x: ArrayLike, y: ArrayLike) -> Any: ...
@overload
def arctan2(x: DistributedArray, y: _Operand) -> DistributedArray:
    """Element-wise angle of the point ``(x2, x1)`` for ``arctan2(x1, x2)``, as floats."""
@overload
def arctan2(x: _Scalar, y: DistributedArray) -> DistributedArray: ...
@overload
def arctan2(x: ArrayLike, y: ArrayLike) -> Any: ...
@overload
def hypot(x: DistributedArray, y: _Operand) -> DistributedArray:
    """Element-wise ``sqrt(x*x + y*y)``, as floats."""
@overload
def hypot(x: _Scalar, y: DistributedArray) -> DistributedArray: ...
@overload
def hypot(x: ArrayLike, y: ArrayLike) -> Any: ...
@overload
def copysign(x: DistributedArray, y: _Operand) -> DistributedArray:
    """Element-wise ``x`` with the sign of ``y``, as floats."""
@overload
def copysign(x: _Scalar, y: DistributedArray) -> DistributedArray: ...
@overload
def copysign(x: ArrayLike, y: ArrayLike) -> Any: ...
@overload
def logical_and(x: DistributedArray, y: _Operand) -> DistributedArray:
    """Element-wise ``x and y``, non-zero being true (a boolean array)."""
@overload
def logical_and(x: _Scalar, y: DistributedArray) -> DistributedArray: ...
@overload
def logical_and(x: ArrayLike, y: ArrayLike) -> Any: ...
@overload
def logical_or(x: DistributedArray, y: _Operand) -> DistributedArray:
    """Element-wise ``x or y``, non-zero being true (a boolean array)."""
@overload
def logical_or(x: _Scalar, y: DistributedArray) -> DistributedArray: ...
@overload
def logical_or(x: ArrayLike, y: ArrayLike) -> Any: ...
@overload
def logical_xor(x: DistributedArray, y: _Operand) -> DistributedArray:
    """Element-wise ``x xor y``, non-zero being true (a boolean array)."""
@overload
def logical_xor(x: _Scalar, y: DistributedArray) -> DistributedArray: ...
@overload
def logical_xor(x: ArrayLike, y: ArrayLike) -> Any: ...
@overload
def round(x: DistributedArray, decimals: int = 0) -> DistributedArray:
    """Element-wise rounding to ``decimals`` places, halves to even (NumPy's ``round``)."""
@overload
def round(x: ArrayLike, decimals: int = 0) -> Any: ...
around = round
@overload
def clip(x: DistributedArray, a_min: _Scalar | DistributedArray | None = None,
         a_max: _Scalar | DistributedArray | None = None) -> DistributedArray:
    """``x`` limited to ``[a_min, a_max]`` (either may be None)."""
@overload
def clip(x: ArrayLike, a_min: Any = None, a_max: Any = None) -> Any: ...
def full_like(x: DistributedArray, fill_value: _Scalar, dtype: DTypeLike | None = None) -> DistributedArray:
    """An array of ``fill_value`` with ``x``'s shape and layout."""
def zeros_like(x: DistributedArray, dtype: DTypeLike | None = None) -> DistributedArray:
    """Zeros with ``x``'s shape and layout."""
def ones_like(x: DistributedArray, dtype: DTypeLike | None = None) -> DistributedArray:
    """Ones with ``x``'s shape and layout."""
def empty_like(x: DistributedArray, dtype: DTypeLike | None = None) -> DistributedArray:
    """An array with ``x``'s shape and layout (zeros here)."""
def reshape(x: DistributedArray, shape: int | Sequence[int], order: str = "C") -> DistributedArray:
    """``x`` in ``shape`` (see :meth:`DistributedArray.reshape`)."""
def transpose(x: DistributedArray, axes: Sequence[int] | None = None) -> DistributedArray:
    """``x`` with its axes reversed or in the order ``axes`` (a new array in block rows)."""
def swapaxes(x: DistributedArray, axis1: int, axis2: int) -> DistributedArray:
    """``x`` with two axes swapped."""
def moveaxis(x: DistributedArray, source: int | Sequence[int],
             destination: int | Sequence[int]) -> DistributedArray:
    """NumPy's ``moveaxis``."""
def ravel(x: DistributedArray) -> DistributedArray:
    """``x`` as a 1-d array."""
def squeeze(x: DistributedArray, axis: int | Sequence[int] | None = None) -> DistributedArray:
    """``x`` without its axes of length one."""
def expand_dims(x: DistributedArray, axis: int | Sequence[int]) -> DistributedArray:
    """``x`` with axes of length one inserted at ``axis``."""
def eye(N: int, M: int | None = None, k: int = 0, dtype: DTypeLike = "float64",
        **layout: Any) -> DistributedArray:
    """Ones on the ``k``-th diagonal of an ``N`` x ``M`` array, zeros elsewhere (collective)."""
def identity(n: int, dtype: DTypeLike = "float64", **layout: Any) -> DistributedArray:
    """The ``n`` x ``n`` identity matrix (collective)."""
def tri(N: int, M: int | None = None, k: int = 0, dtype: DTypeLike = "float64",
        **layout: Any) -> DistributedArray:
    """Ones at and below the ``k``-th diagonal of an ``N`` x ``M`` array (collective)."""
@overload
def tril(x: DistributedArray, k: int = 0) -> DistributedArray:
    """``x`` with the elements above the ``k``-th diagonal zero."""
@overload
def tril(x: ArrayLike, k: int = 0) -> Any: ...
@overload
def triu(x: DistributedArray, k: int = 0) -> DistributedArray:
    """``x`` with the elements below the ``k``-th diagonal zero."""
@overload
def triu(x: ArrayLike, k: int = 0) -> Any: ...
@overload
def diag(v: DistributedArray, k: int = 0) -> DistributedArray:
    """A square array with the 1-d ``v`` on its ``k``-th diagonal, or the ``k``-th diagonal of a 2-d ``v``."""
@overload
def diag(v: ArrayLike, k: int = 0) -> Any: ...
def power(x: _Operand, y: _Operand) -> DistributedArray:
    """Element-wise ``x ** y``."""
def evaluate(*arrays: DistributedArray) -> Any:
    """Runs the element-wise expressions ``arrays`` now (collective); they
    otherwise run, fused into one pass, when their value is first needed."""
def where(condition: DistributedArray | ArrayLike, x: _Operand | ArrayLike,
          y: _Operand | ArrayLike) -> DistributedArray:
    """``x`` where ``condition`` holds, else ``y``, broadcast together by NumPy's rules."""
def broadcast_to(x: DistributedArray | ArrayLike, shape: int | Sequence[int]) -> DistributedArray:
    """``x`` broadcast to ``shape`` by NumPy's rules: a new block-distributed array (collective)."""
def sum(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """The sum, over every element, an axis or a tuple of axes."""
def prod(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """The product, over every element, an axis or a tuple of axes."""
def mean(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """The mean, over every element, an axis or a tuple of axes."""
def min(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """The smallest element, over every element, an axis or a tuple of axes."""
def max(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """The largest element, over every element, an axis or a tuple of axes."""
def amin(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """The smallest element, over every element, an axis or a tuple of axes."""
def amax(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """The largest element, over every element, an axis or a tuple of axes."""
def any(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """Whether any element is non-zero, over every element, an axis or a tuple of axes."""
def all(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """Whether every element is non-zero, over every element, an axis or a tuple of axes."""
def count_nonzero(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False) -> Any:
    """The number of non-zero elements, over every element, an axis or a tuple of axes."""
def var(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False,
        ddof: int = 0) -> Any:
    """The variance, over every element, an axis or a tuple of axes."""
def std(x: DistributedArray | ArrayLike, axis: _Axis = None, keepdims: bool = False,
        ddof: int = 0) -> Any:
    """The standard deviation, over every element, an axis or a tuple of axes."""
def argmin(x: DistributedArray | ArrayLike, axis: int | None = None,
        keepdims: bool = False) -> Any:
    """The index of the first smallest element: flat, or along ``axis``."""
def argmax(x: DistributedArray | ArrayLike, axis: int | None = None,
        keepdims: bool = False) -> Any:
    """The index of the first largest element: flat, or along ``axis``."""
def cumsum(x: DistributedArray | ArrayLike, axis: int | None = None) -> Any:
    """Running sums, flat or along ``axis`` (collective)."""
def cumprod(x: DistributedArray | ArrayLike, axis: int | None = None) -> Any:
    """Running products, flat or along ``axis`` (collective)."""
def meshgrid(*xi: DistributedArray | ArrayLike, indexing: str = "xy", sparse: bool = False,
             copy: bool = True) -> tuple[DistributedArray, ...]:
    """NumPy's ``meshgrid``: new block-distributed coordinate arrays (collective)."""
def matmul(x1: DistributedArray | ArrayLike, x2: DistributedArray | ArrayLike) -> Any:
    """``x1 @ x2`` for 1-d and 2-d arrays (collective): the product's rows lie with ``x1``'s."""
def dot(a: DistributedArray | ArrayLike, b: DistributedArray | ArrayLike) -> Any:
    """NumPy's ``dot``: ``a @ b`` for 1-d and 2-d arrays, ``a * b`` with a scalar."""
def vdot(a: DistributedArray | ArrayLike, b: DistributedArray | ArrayLike) -> Any:
    """The inner product of the flattened arrays."""
def outer(a: DistributedArray | ArrayLike, b: DistributedArray | ArrayLike) -> Any:
    """``a.ravel()[:, None] * b.ravel()[None, :]``."""
def tensordot(a: DistributedArray | ArrayLike, b: DistributedArray | ArrayLike,
              axes: int | tuple[Any, Any] = 2) -> Any:
    """NumPy's ``tensordot`` for 1-d and 2-d arrays."""
def to_numpy(x: DistributedArray) -> NDArray[Any]:
    """``x.to_numpy()``: every element in a new NumPy array (not collective)."""
def for_each(array: DistributedArray, fn: Callable[[NDArray[Any]], _T]) -> list[_T]:
    """Runs ``fn(view)`` on each partition where it lives; every locality gets all results in partition order (collective)."""

# --- collectives ----------------------------------------------------------------------

class Communicator:
    """A group of localities running collectives together: the whole job, or a named sub-group."""

    def __init__(self, name: str | None = None, localities: Sequence[int] | None = None) -> None:
        """The whole job, or the sub-group ``localities`` called ``name`` (made by every member alone)."""
    @property
    def rank(self) -> int:
        """This locality's rank in the group."""
    @property
    def size(self) -> int:
        """The number of members."""
    @property
    def localities(self) -> list[int]:
        """The members' locality numbers, by rank."""
    def barrier(self) -> None:
        """Waits until every member has called it."""
    def all_reduce(self, value: Any, op: _Op = "sum", out: NDArray[Any] | None = None) -> Any:
        """Like hpxpy.all_reduce, over the members."""
    def reduce(self, value: Any, op: _Op = "sum", root: int = 0, out: NDArray[Any] | None = None) -> Any:
        """Like hpxpy.reduce, over the members (``root`` is a rank)."""
    def inclusive_scan(self, value: Any, op: _Op = "sum", out: NDArray[Any] | None = None) -> Any:
        """Like hpxpy.inclusive_scan, over the members by rank."""
    def exclusive_scan(self, value: Any, op: _Op = "sum", out: NDArray[Any] | None = None) -> Any:
        """Like hpxpy.exclusive_scan, over the members by rank."""
    def broadcast(self, value: _T | None = None, root: int = 0) -> _T:
        """Like hpxpy.broadcast, over the members (``root`` is a rank)."""
    def gather(self, value: Any, root: int = 0) -> Any:
        """Like hpxpy.gather, over the members (``root`` is a rank)."""
    def all_gather(self, value: _T) -> list[_T]:
        """Like hpxpy.all_gather, over the members."""
    def scatter(self, values: Any = None, root: int = 0) -> Any:
        """Like hpxpy.scatter, over the members (``root`` is a rank)."""
    def all_to_all(self, values: Sequence[_T]) -> list[_T]:
        """Like hpxpy.all_to_all, over the members."""

def barrier(comm: Communicator | None = None) -> None:
    """Waits until every locality (or member of ``comm``) has called it."""

@overload
def all_reduce(value: DistributedArray, op: _Op = "sum", comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> Any:
    """Combines ``value`` over all localities with ``op``; the result everywhere (a DistributedArray: all its elements)."""
@overload
def all_reduce(value: NDArray[Any], op: _Op = "sum", comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> NDArray[Any]: ...
@overload
def all_reduce(value: bool, op: _Op = "sum", comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> np.int64: ...  # type: ignore[overload-overlap]
@overload
def all_reduce(value: int, op: _Op = "sum", comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> int: ...
@overload
def all_reduce(value: float, op: _Op = "sum", comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> float: ...
@overload
def all_reduce(value: Any, op: _Op = "sum", comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> Any: ...
@overload
def reduce(value: NDArray[Any], op: _Op = "sum", root: int = 0, comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> NDArray[Any] | None:
    """As all_reduce, but only ``root`` gets the result (None elsewhere)."""
@overload
def reduce(value: bool, op: _Op = "sum", root: int = 0, comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> np.int64 | None: ...  # type: ignore[overload-overlap]
@overload
def reduce(value: int, op: _Op = "sum", root: int = 0, comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> int | None: ...
@overload
def reduce(value: float, op: _Op = "sum", root: int = 0, comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> float | None: ...
@overload
def reduce(value: Any, op: _Op = "sum", root: int = 0, comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> Any: ...
def inclusive_scan(value: Any, op: _Op = "sum", comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> Any:
    """Locality i gets ``value`` of localities 0..i combined."""
def exclusive_scan(value: Any, op: _Op = "sum", comm: Communicator | None = None,
        out: NDArray[Any] | None = None) -> Any:
    """Locality i gets ``value`` of localities 0..i-1 combined (locality 0: 0 for sum, 1 for prod, else None)."""
def broadcast(value: _T | None = None, root: int = 0, comm: Communicator | None = None) -> _T:
    """The root's ``value`` (any picklable object) on every locality; a DistributedArray: the same array, no data moved (a locality that passed it gets its own object back, others a new handle)."""
@overload
def gather(value: DistributedArray, root: int = 0, comm: Communicator | None = None) -> NDArray[Any] | None:  # type: ignore[overload-overlap]
    """The list of every locality's ``value`` on ``root``, None elsewhere (a DistributedArray: its elements)."""
@overload
def gather(value: _T, root: int = 0, comm: Communicator | None = None) -> list[_T] | None: ...
def all_gather(value: _T, comm: Communicator | None = None) -> list[_T]:
    """The list of every locality's ``value``, on every locality."""
@overload
def scatter(values: DistributedArray, root: int = 0, comm: Communicator | None = None) -> NDArray[Any]:
    """Locality i gets item i of the root's ``values`` (a DistributedArray: a copy of its own elements)."""
@overload
def scatter(values: Sequence[_T], root: int = 0, comm: Communicator | None = None) -> _T: ...
@overload
def scatter(values: NDArray[Any] | None = None, root: int = 0, comm: Communicator | None = None) -> Any: ...
def all_to_all(values: Sequence[_T], comm: Communicator | None = None) -> list[_T]:
    """Locality j gets item j of every locality's list, in locality order."""

__all__ = [
    "DTYPES",
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
    "exp",
    "log",
    "sin",
    "cos",
    "abs",
    "negative",
    "minimum",
    "maximum",
    "power",
    "where",
    "sum",
    "prod",
    "mean",
    "min",
    "max",
    "argmin",
    "argmax",
    "any",
    "all",
    "count_nonzero",
    "cumsum",
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

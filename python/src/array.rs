//! Distributed arrays for Python: creation, NumPy interop, element-wise
//! math and reductions, all run by the hpx containers on the owners of the
//! data. In a job of several localities every call that makes or changes
//! an array is collective (each locality makes the same call and gets the
//! same array); reads (`to_numpy`, indexing, views) are not.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use numpy::ndarray::{ArrayViewMutD, IxDyn};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use serde::{Deserialize, Serialize};

use hpx::{
    BinaryOp, CompareOp, Distribution, GlobalId, LayoutSpec, LocalityId, Numeric, ReduceOp, UnaryOp,
};

use crate::dtype::{numpy_name, scalar, with_array, with_dtype, Dt};
use crate::errors::{raise, to_py, Failure};
use crate::job::{block, block_failing, once, spmd};
use hpx::AnyVector;

/// Steps past which an expression is evaluated as it is built (so that a
/// loop that keeps building on one expression does not grow it without
/// bound).
const EAGER_FROM: usize = 64;

/// What an [`Array`] holds: an array, or an expression of arrays not yet
/// evaluated.
#[derive(Clone)]
enum State {
    Ready(AnyVector),
    Pending(hpx::AnyExpr),
}

/// A distributed array (the Python class `hpxpy.DistributedArray` wraps
/// one), or an element-wise expression of such arrays that runs, fused into
/// one pass over each partition, when its value is needed: a reduction, a
/// read (`to_numpy`, indexing), a write, local views, or a collective.
///
/// In a job of several localities an expression is evaluated collectively
/// (every locality at the same call, as array-making calls are) when it
/// becomes an array; a read that only some localities make (`to_numpy` on
/// locality 0, say) evaluates it for the reader alone and keeps nothing,
/// so every locality still holds the same expression afterwards.
#[pyclass(frozen, module = "hpxpy._core", name = "Array")]
pub(crate) struct Array {
    /// None only once dropped.
    state: Shared,
}

/// An [`Array`]'s state, shared with [`READERS`].
type Shared = Arc<Mutex<Option<State>>>;

/// Expressions not yet evaluated, under the identity (first partition) of
/// each array they read, in the order they were built: an array about to
/// change runs them first, so that they see it as it was when they were
/// built, as NumPy's eager operations would. The order is the script's, the
/// same on every locality, so the collective evaluations match.
static READERS: Mutex<Vec<(GlobalId, Reader)>> = Mutex::new(Vec::new());

/// An entry of [`READERS`]: the state of an expression, while it lives.
type Reader = Weak<Mutex<Option<State>>>;

impl Array {
    /// A Python object for `inner`.
    pub(crate) fn new(inner: AnyVector) -> Array {
        Array::of(State::Ready(inner))
    }

    fn of(state: State) -> Array {
        Array {
            state: Arc::new(Mutex::new(Some(state))),
        }
    }

    /// A Python object for the expression `e`: evaluated now (collectively)
    /// if it has grown large, else held and listed in [`READERS`].
    fn lazy(py: Python<'_>, e: hpx::AnyExpr) -> PyResult<Array> {
        if e.steps() > EAGER_FROM {
            return Ok(Array::new(evaluate(py, e)?));
        }
        let arrays = e.arrays();
        let array = Array::of(State::Pending(e));
        let mut readers = READERS.lock();
        // Entries of expressions dropped or evaluated since go.
        readers.retain(|(_, r)| {
            r.upgrade()
                .is_some_and(|cell| matches!(&*cell.lock(), Some(State::Pending(_))))
        });
        for id in arrays {
            readers.push((id, Arc::downgrade(&array.state)));
        }
        Ok(array)
    }

    /// The expression whose value this is.
    fn expr(&self) -> PyResult<hpx::AnyExpr> {
        Ok(match current(&self.state)? {
            State::Ready(a) => hpx::AnyExpr::of_any(&a),
            State::Pending(e) => e,
        })
    }

    /// The array, evaluated first if it is an expression: collectively in
    /// a job of several localities (every locality makes this call).
    pub(crate) fn ready(&self, py: Python<'_>) -> PyResult<AnyVector> {
        force(py, &self.state)
    }

    /// The array, about to change: the expressions that read it run first
    /// (collectively, in the order they were built).
    fn writable(&self, py: Python<'_>) -> PyResult<AnyVector> {
        let array = self.ready(py)?;
        let Some(id) = array.partition_ids().first().copied() else {
            return Ok(array);
        };
        let readers: Vec<Shared> = READERS
            .lock()
            .iter()
            .filter(|(k, _)| *k == id)
            .filter_map(|(_, r)| r.upgrade())
            .collect();
        let mut outcome = Ok(());
        for reader in readers {
            if outcome.is_ok() {
                outcome = force(py, &reader).map(drop);
            }
            // The last holder of a dropped expression: its handles go back
            // from the runtime.
            if let Ok(state) = Arc::try_unwrap(reader) {
                crate::job::release(state.into_inner());
            }
        }
        outcome.map(|()| array)
    }

    /// The array to read from (not collective): an expression is evaluated
    /// for this locality alone and kept only in a job of one locality.
    pub(crate) fn readable(&self, py: Python<'_>) -> PyResult<AnyVector> {
        let e = match current(&self.state)? {
            State::Ready(a) => return Ok(a),
            State::Pending(e) => e,
        };
        if !spmd() {
            return self.ready(py);
        }
        with_dtype!(numpy_name(e.dtype()), T => {
            let array = block(py, async move { e.evaluate::<T>().await })?;
            Ok(T::wrap(array))
        })
    }

    /// The result of a binary operation `op` built as `e`: evaluated at
    /// once when it may fail on some values ([`may_fail`]).
    fn finish_binary(&self, py: Python<'_>, op: BinaryOp, e: hpx::AnyExpr) -> PyResult<Array> {
        if may_fail(op, numpy_name(e.dtype())) {
            return Ok(Array::new(evaluate(py, e)?));
        }
        Array::lazy(py, e)
    }

    /// The layout of the array (or of the expression's value).
    fn layout(&self) -> PyResult<hpx::Layout> {
        Ok(match current(&self.state)? {
            State::Ready(a) => a.layout().clone(),
            State::Pending(e) => e.layout().clone(),
        })
    }
}

impl Drop for Array {
    fn drop(&mut self) {
        // The handles' credit goes back to the owners from the runtime.
        crate::job::release(self.state.lock().take());
    }
}

/// What `cell` holds now (a handle or an expression: cheap clones).
fn current(cell: &Shared) -> PyResult<State> {
    cell.lock()
        .clone()
        .ok_or_else(|| raise("HPXError", "the array was dropped"))
}

/// The array in `cell`, evaluated (collectively in a job of several) and
/// kept if it is an expression.
fn force(py: Python<'_>, cell: &Shared) -> PyResult<AnyVector> {
    let e = match current(cell)? {
        State::Ready(a) => return Ok(a),
        State::Pending(e) => e,
    };
    let array = evaluate(py, e)?;
    let previous = cell.lock().replace(State::Ready(array.clone()));
    crate::job::release(previous);
    Ok(array)
}

/// Evaluates `e` into a new array, collectively in a job of several.
fn evaluate(py: Python<'_>, e: hpx::AnyExpr) -> PyResult<AnyVector> {
    with_dtype!(numpy_name(e.dtype()), T => {
        block_failing(py, shared_array(async move { Ok(T::wrap(e.evaluate::<T>().await?)) }))
    })
}

/// A NumPy view of a local partition and the index of its first element
/// along each axis (None for round-robin partitions).
type LocalView<'py> = (Bound<'py, PyAny>, Option<Vec<usize>>);

/// A reduction's value as it travels from locality 0 to the others.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Value {
    Int(i128),
    Float(f64),
    Bool(bool),
    Empty,
}

impl Value {
    fn of<T: Numeric>(v: T) -> Value {
        if T::IS_FLOAT {
            Value::Float(v.to_f64())
        } else {
            Value::Int(v.cast::<i128>())
        }
    }

    fn into_python(self, py: Python<'_>, what: &str) -> PyResult<Py<PyAny>> {
        use pyo3::IntoPyObjectExt;
        match self {
            Value::Int(v) => v.into_py_any(py),
            Value::Float(v) => v.into_py_any(py),
            Value::Bool(v) => v.into_py_any(py),
            Value::Empty => Err(raise(
                "HPXValueError",
                format!("{what} of an empty array (it has no identity)"),
            )),
        }
    }
}

/// `work`, an array-making operation, done once for the job (see
/// [`once`]); every locality then holds the new array.
async fn shared_array<F>(work: F) -> Result<AnyVector, Failure>
where
    F: std::future::Future<Output = hpx::Result<AnyVector>> + Send,
{
    let array = once(work).await?;
    if spmd() {
        if hpx::get_locality_id() != 0 {
            array.keep_alive().await?;
        }
        // Locality 0 keeps its handle until every other holds its own.
        hpx::barrier().await?;
    }
    Ok(array)
}

fn binary_op(name: &str) -> PyResult<BinaryOp> {
    Ok(match name {
        "add" => BinaryOp::Add,
        "sub" => BinaryOp::Sub,
        "mul" => BinaryOp::Mul,
        "div" => BinaryOp::Div,
        "rem" => BinaryOp::Rem,
        "pow" => BinaryOp::Pow,
        "minimum" => BinaryOp::Minimum,
        "maximum" => BinaryOp::Maximum,
        "arctan2" => BinaryOp::Arctan2,
        "hypot" => BinaryOp::Hypot,
        "copysign" => BinaryOp::Copysign,
        "fmod" => BinaryOp::Fmod,
        other => return Err(raise("HPXValueError", format!("no operation {other:?}"))),
    })
}

fn compare_op(name: &str) -> PyResult<CompareOp> {
    Ok(match name {
        "eq" => CompareOp::Eq,
        "ne" => CompareOp::Ne,
        "lt" => CompareOp::Lt,
        "le" => CompareOp::Le,
        "gt" => CompareOp::Gt,
        "ge" => CompareOp::Ge,
        other => return Err(raise("HPXValueError", format!("no comparison {other:?}"))),
    })
}

fn unary_op(name: &str) -> PyResult<UnaryOp> {
    UnaryOp::from_name(name).ok_or_else(|| raise("HPXValueError", format!("no function {name:?}")))
}

/// A reduction by name: `sum prod min max` and the bitwise ones.
pub(crate) fn reduce_op(name: &str) -> PyResult<ReduceOp> {
    Ok(match name {
        "sum" => ReduceOp::Sum,
        "prod" => ReduceOp::Prod,
        "min" => ReduceOp::Min,
        "max" => ReduceOp::Max,
        "band" | "bitand" | "bitwise_and" => ReduceOp::BitAnd,
        "bor" | "bitor" | "bitwise_or" => ReduceOp::BitOr,
        "bxor" | "bitxor" | "bitwise_xor" => ReduceOp::BitXor,
        other => {
            return Err(raise(
                "HPXValueError",
                format!(
                    "no reduction {other:?} (sum, prod, min, max, bitwise_and, bitwise_or, \
                     bitwise_xor)"
                ),
            ))
        }
    })
}

/// The layout a creation call asks for.
fn distribution(kind: &str, params: &[usize]) -> PyResult<Distribution> {
    let one = |what: &str| {
        params.first().copied().ok_or_else(|| {
            raise(
                "HPXValueError",
                format!("distribution {what:?} needs a size"),
            )
        })
    };
    Ok(match kind {
        "block" => Distribution::Block,
        "cyclic" => Distribution::Cyclic,
        "local" => Distribution::Local,
        "grid" => Distribution::Grid,
        "block_cyclic" => Distribution::BlockCyclic(one(kind)?),
        "chunks" => Distribution::Chunks(one(kind)?),
        "partitions" => Distribution::Partitions(one(kind)?),
        "tiles" => match params {
            [rows, cols] => Distribution::Tiles {
                rows: *rows,
                cols: *cols,
            },
            _ => {
                return Err(raise(
                    "HPXValueError",
                    "tiles need (rows, columns) per tile",
                ))
            }
        },
        other => {
            return Err(raise(
                "HPXValueError",
                format!(
                    "unknown distribution {other:?} (block, cyclic, block_cyclic, local, \
                     chunks, partitions, grid, tiles)"
                ),
            ))
        }
    })
}

fn localities(over: Option<Vec<u32>>) -> Option<Vec<LocalityId>> {
    over.map(|v| v.into_iter().map(LocalityId).collect())
}

/// Makes a new array of `dtype` and `shape` from `source` (`fill`, `data`,
/// `arange`, `linspace`, `uniform`, `normal`, `integers`) with the
/// arguments `args`, distributed as `kind` with `params`, over the
/// localities `over` (all if None), on a locality grid `grid`.
#[pyfunction]
#[pyo3(signature = (dtype, shape, kind, params, over, grid, source, args))]
#[allow(clippy::too_many_arguments)]
fn create(
    py: Python<'_>,
    dtype: &str,
    shape: Vec<usize>,
    kind: &str,
    params: Vec<usize>,
    over: Option<Vec<u32>>,
    grid: Option<(usize, usize)>,
    source: &str,
    args: &Bound<'_, PyTuple>,
) -> PyResult<Array> {
    let dist = distribution(kind, &params)?;
    with_dtype!(dtype, T => {
        let arg = |i: usize| args.get_item(i);
        let builder = match source {
            "fill" => hpx::full::<T>(shape.clone(), scalar::<T>(&arg(0)?)?),
            "data" => {
                let data: PyReadonlyArrayDyn<'_, T> = arg(0)?.extract()?;
                let values = data
                    .as_slice()
                    .map_err(|e| raise("HPXValueError", e.to_string()))?
                    .to_vec();
                hpx::array(values)
            }
            "arange" => hpx::arange::<T>(
                scalar::<T>(&arg(0)?)?,
                scalar::<T>(&arg(1)?)?,
                scalar::<T>(&arg(2)?)?,
            )
            .map_err(crate::errors::to_py)?,
            "linspace" => {
                hpx::linspace::<T>(arg(0)?.extract()?, arg(1)?.extract()?, arg(2)?.extract()?)
            }
            "uniform" => hpx::random::uniform::<T>(
                shape.clone(),
                arg(0)?.extract()?,
                arg(1)?.extract()?,
                arg(2)?.extract()?,
            ),
            "normal" => hpx::random::normal::<T>(
                shape.clone(),
                arg(0)?.extract()?,
                arg(1)?.extract()?,
                arg(2)?.extract()?,
            ),
            "integers" => hpx::random::integers::<T>(
                shape.clone(),
                arg(0)?.extract()?,
                arg(1)?.extract()?,
                arg(2)?.extract()?,
            ),
            other => return Err(raise("HPXValueError", format!("no source {other:?}"))),
        };
        let mut builder = builder.shape(shape).distribution(dist);
        if let Some(over) = localities(over) {
            builder = builder.on(&over);
        }
        if let Some((rows, cols)) = grid {
            builder = builder.grid(rows, cols);
        }
        let array = block(py, async move {
            // Every locality makes the same call: one array results.
            if spmd() {
                builder = builder.collective();
            }
            builder.await
        })?;
        Ok(Array::new(T::wrap(array)))
    })
}

/// `mask ? a : b`, element-wise (an expression: see [`Array`]).
#[pyfunction]
fn select(py: Python<'_>, mask: &Array, a: &Array, b: &Array) -> PyResult<Array> {
    let e = hpx::AnyExpr::select(&mask.expr()?, &a.expr()?, &b.expr()?).map_err(to_py)?;
    Array::lazy(py, e)
}

/// Whether `op` on elements of the NumPy type `dtype` can fail on some
/// values (an integer division, remainder or power): then it runs at once,
/// so that its error comes from the line that asked for it.
fn may_fail(op: BinaryOp, dtype: &str) -> bool {
    matches!(
        op,
        BinaryOp::Div | BinaryOp::Rem | BinaryOp::Pow | BinaryOp::Fmod
    ) && !dtype.starts_with("float")
}

#[pymethods]
impl Array {
    /// The shape (row-major).
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.layout()?.shape())
    }

    /// Whether `other` is a handle to the same distributed array (the same
    /// partitions, element type and shape), wherever each handle was made;
    /// an expression not yet evaluated is no array.
    fn same_array(&self, other: &Array) -> bool {
        let key = |a: &Array| match &*a.state.lock() {
            Some(State::Ready(any)) => {
                Some((any.dtype(), any.shape().to_vec(), any.partition_ids()))
            }
            _ => None,
        };
        matches!((key(self), key(other)), (Some(x), Some(y)) if x == y)
    }

    /// Whether `other` holds the same partitions (the same array, or a view
    /// of it in another shape); an expression not yet evaluated holds none.
    fn shares_partitions(&self, other: &Array) -> bool {
        let key = |a: &Array| match &*a.state.lock() {
            Some(State::Ready(any)) => Some(any.partition_ids()),
            _ => None,
        };
        matches!((key(self), key(other)), (Some(x), Some(y)) if x == y && !x.is_empty())
    }

    /// The NumPy name of the element type.
    #[getter]
    fn dtype(&self) -> PyResult<&'static str> {
        Ok(numpy_name(self.expr()?.dtype()))
    }

    /// The number of partitions.
    #[getter]
    fn num_partitions(&self) -> PyResult<usize> {
        Ok(self.layout()?.num_partitions())
    }

    /// The number of elements of each partition.
    #[getter]
    fn partition_sizes(&self) -> PyResult<Vec<usize>> {
        Ok(self.layout()?.partition_sizes().to_vec())
    }

    /// The locality of each partition.
    #[getter]
    fn localities(&self) -> PyResult<Vec<u32>> {
        Ok(self.layout()?.localities().iter().map(|l| l.0).collect())
    }

    /// Whether the partitions are on more than one locality.
    #[getter]
    fn is_distributed(&self) -> PyResult<bool> {
        let layout = self.layout()?;
        let mut holders = layout
            .localities()
            .iter()
            .zip(layout.partition_sizes())
            .filter(|(_, size)| **size > 0)
            .map(|(l, _)| *l);
        Ok(match holders.next() {
            Some(first) => holders.any(|l| l != first),
            None => false,
        })
    }

    /// The distribution, as the Rust API spells it.
    #[getter]
    fn distribution(&self) -> PyResult<String> {
        Ok(format!("{:?}", self.layout()?.distribution()))
    }

    /// Whether this is an expression not yet evaluated.
    #[getter]
    fn pending(&self) -> bool {
        matches!(&*self.state.lock(), Some(State::Pending(_)))
    }

    /// Evaluates the expression now (collective in a job of several; no-op
    /// for an array).
    fn evaluate(&self, py: Python<'_>) -> PyResult<()> {
        self.ready(py).map(drop)
    }

    /// Every element, in a new NumPy array of this shape (gathered from
    /// the owners in bulk; not collective).
    fn to_numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        with_array!(&self.readable(py)?, a, T => {
            let out = empty::<T>(py, a.shape())?;
            read_into(py, a.clone(), 0, &out)?;
            Ok(out.into_any())
        })
    }

    /// Zero-copy, writable NumPy views of this locality's partitions, each
    /// with the index of its first element along each axis (None for
    /// round-robin partitions, which are not boxes of the array). A view
    /// keeps the array alive. An expression is evaluated first, which is
    /// collective in a job of several localities.
    fn local_views<'py>(slf: &Bound<'py, Self>, py: Python<'py>) -> PyResult<Vec<LocalView<'py>>> {
        let me = slf.get();
        with_array!(&me.writable(py)?, a, T => {
            let array = a.clone();
            // The partitions' memory is allocated once and never moves while
            // the array exists; the views keep the array (this object) alive.
            let (parts, pointers) = block(py, async move {
                let parts = array.local_partitions();
                let mut out = Vec::with_capacity(parts.len());
                for p in &parts {
                    let mut view = p.view_mut().await?;
                    out.push(view.as_mut_ptr() as usize);
                }
                Ok((parts, out))
            })?;
            let mut views = Vec::with_capacity(parts.len());
            for (p, ptr) in parts.iter().zip(pointers) {
                let (start, shape) = match p.global_box() {
                    Some((start, extent)) if extent.iter().product::<usize>() == p.len() => {
                        (Some(start), extent)
                    }
                    Some((start, _)) => (Some(start), vec![p.len()]),
                    None => (None, vec![p.len()]),
                };
                // SAFETY: `ptr` points at `p.len()` elements of `T`, the
                // partition's storage, which lives (unmoved) as long as the
                // array does, and the NumPy array holds `slf`, whose state
                // is now this array for good (an array is never replaced).
                // Writes through the view are not synchronised with the
                // runtime's reads of the partition (another locality's
                // `to_numpy`, say) until the next collective: such a read
                // may see part of them (documented; plain numbers, no
                // invariant to break).
                let view = unsafe {
                    let data = ArrayViewMutD::<T>::from_shape_ptr(IxDyn(&shape), ptr as *mut T);
                    PyArrayDyn::<T>::borrow_from_array(&data, slf.clone().into_any())
                };
                views.push((view.into_any(), start));
            }
            Ok(views)
        })
    }

    /// `self op other` element-wise (same dtype): an expression.
    fn binary(&self, py: Python<'_>, op: &str, other: &Array) -> PyResult<Array> {
        let op = binary_op(op)?;
        let e = self.expr()?.binary(op, &other.expr()?).map_err(to_py)?;
        self.finish_binary(py, op, e)
    }

    /// `self op scalar` (or `scalar op self` with `first`): an expression.
    fn binary_scalar(
        &self,
        py: Python<'_>,
        op: &str,
        value: &Bound<'_, PyAny>,
        first: bool,
    ) -> PyResult<Array> {
        let op = binary_op(op)?;
        let a = self.expr()?;
        let e = with_dtype!(numpy_name(a.dtype()), T => {
            a.binary_scalar(op, scalar::<T>(value)?, first).map_err(to_py)?
        });
        self.finish_binary(py, op, e)
    }

    /// An expression of this shape and layout whose every element is
    /// `value` as `dtype`.
    fn full_like(&self, py: Python<'_>, dtype: &str, value: &Bound<'_, PyAny>) -> PyResult<Array> {
        let e = with_dtype!(dtype, T => {
            self.expr()?.full_like(scalar::<T>(value)?).map_err(to_py)?
        });
        Array::lazy(py, e)
    }

    /// An expression of this shape and layout whose value is the NumPy
    /// array `values` (C-contiguous, of `dtype`) broadcast to it by
    /// NumPy's rules.
    fn broadcast_values(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        dtype: &str,
    ) -> PyResult<Array> {
        let e = with_dtype!(dtype, T => {
            let data: PyReadonlyArrayDyn<'_, T> = values.extract()?;
            let shape = data.as_array().shape().to_vec();
            let slice = data
                .as_slice()
                .map_err(|e| raise("HPXValueError", e.to_string()))?;
            self.expr()?.broadcast_values(slice, &shape).map_err(to_py)?
        });
        Array::lazy(py, e)
    }

    /// A function of every element: `neg abs sign` and the roundings keep
    /// the dtype; the others give floats (float32 stays float32). An
    /// expression.
    fn unary(&self, py: Python<'_>, op: &str) -> PyResult<Array> {
        let op = unary_op(op)?;
        let e = self.expr()?.unary(op).map_err(to_py)?;
        Array::lazy(py, e)
    }

    /// The comparison `self op other`, as a mask of 0/1 (uint8).
    fn compare(&self, py: Python<'_>, op: &str, other: &Array) -> PyResult<Array> {
        let op = compare_op(op)?;
        let e = self.expr()?.compare(op, &other.expr()?).map_err(to_py)?;
        Array::lazy(py, e)
    }

    /// The comparison `self op scalar` (or `scalar op self` with `first`).
    fn compare_scalar(
        &self,
        py: Python<'_>,
        op: &str,
        value: &Bound<'_, PyAny>,
        first: bool,
    ) -> PyResult<Array> {
        let op = compare_op(op)?;
        let a = self.expr()?;
        let e = with_dtype!(numpy_name(a.dtype()), T => {
            a.compare_scalar(op, scalar::<T>(value)?, first).map_err(to_py)?
        });
        Array::lazy(py, e)
    }

    /// A copy with every element converted to `dtype` (as NumPy's
    /// `astype`; the same dtype makes a copy): an expression.
    fn astype(&self, py: Python<'_>, dtype: &str) -> PyResult<Array> {
        let e = with_dtype!(dtype, U => {
            self.expr()?.cast(<U as hpx::Element>::NAME).map_err(to_py)?
        });
        Array::lazy(py, e)
    }

    /// A reduction of every element to one number: `sum prod min max mean
    /// argmin argmax any all count_nonzero`. Sums, means, extremes and
    /// counts of an expression run fused with it; min and max are NaN if
    /// any element is (NumPy's).
    fn reduce(&self, py: Python<'_>, what: &str) -> PyResult<Py<PyAny>> {
        let name = what.to_owned();
        let fused = matches!(
            what,
            "sum" | "mean" | "min" | "max" | "any" | "all" | "count_nonzero"
        );
        let value = if fused {
            let e = self.expr()?;
            let len: usize = e.shape().iter().product();
            with_dtype!(numpy_name(e.dtype()), T => {
                let e = e.typed::<T>().map_err(to_py)?;
                block_failing(py, once(async move {
                    Ok(match name.as_str() {
                        "sum" => Value::of(e.sum().await?),
                        "mean" if len == 0 => Value::Float(f64::NAN),
                        "mean" => Value::of(e.mean().await?),
                        "min" => e.min().await?.map_or(Value::Empty, Value::of),
                        "max" => e.max().await?.map_or(Value::Empty, Value::of),
                        "any" => Value::Bool(e.count_nonzero().await? > 0),
                        "all" => Value::Bool(e.count_nonzero().await? == len as u64),
                        _ => Value::of(e.count_nonzero().await?),
                    })
                }))?
            })
        } else {
            with_array!(&self.ready(py)?, a, _T => {
                let a = a.clone();
                block_failing(py, once(async move {
                    Ok(match name.as_str() {
                        "prod" => Value::of(a.prod().await?),
                        "argmin" => a.argmin().await?.map_or(Value::Empty, Value::of),
                        "argmax" => a.argmax().await?.map_or(Value::Empty, Value::of),
                        other => {
                            return Err(hpx::Error::BadArgument(format!("no reduction {other:?}")))
                        }
                    })
                }))?
            })
        };
        value.into_python(py, what)
    }

    /// A reduction (`sum prod min max mean`) over `axes` (any set of the
    /// array's axes), as a flat NumPy array of the remaining axes, row-major
    /// (sums in 64 bits for integers, means in float64).
    fn reduce_axes<'py>(
        &self,
        py: Python<'py>,
        what: &str,
        axes: Vec<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = what.to_owned();
        with_array!(&self.ready(py)?, a, T => {
            let a = a.clone();
            if name == "mean" {
                let means = block_failing(py, once(async move { a.mean_axes(&axes).await }))?;
                return Ok(PyArray1::from_vec(py, means).into_any());
            }
            let op = reduce_op(&name)?;
            let values: Vec<<T as Numeric>::Sum> =
                block_failing(py, once(async move { a.reduce_axes(&axes, op).await }))?;
            Ok(PyArray1::from_vec(py, values).into_any())
        })
    }

    /// The element at `index` (one index per axis; not collective).
    fn get(&self, py: Python<'_>, index: Vec<usize>) -> PyResult<Py<PyAny>> {
        with_array!(&self.readable(py)?, a, _T => {
            let a = a.clone();
            let v = block(py, async move { a.get_at(&index).await })?;
            Value::of(v).into_python(py, "get")
        })
    }

    /// Sets the element at `index` (collective in a job of several).
    fn set(&self, py: Python<'_>, index: Vec<usize>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        with_array!(&self.writable(py)?, a, T => {
            let (a, v) = (a.clone(), scalar::<T>(value)?);
            block_failing(py, once(async move { a.set_at(&index, v).await }))
        })
    }

    /// The flat elements `start..stop`, as a 1-d NumPy array (not
    /// collective).
    fn get_range<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        stop: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        with_array!(&self.readable(py)?, a, T => {
            if start > stop || stop > a.len() {
                return Err(raise(
                    "HPXIndexError",
                    format!("range {start}..{stop} is out of range for {} elements", a.len()),
                ));
            }
            let out = empty::<T>(py, &[stop - start])?;
            read_into(py, a.clone(), start, &out)?;
            Ok(out.into_any())
        })
    }

    /// Writes `values` (a contiguous NumPy array of this dtype) at the flat
    /// elements from `start` on (collective in a job of several).
    fn set_range(&self, py: Python<'_>, start: usize, values: &Bound<'_, PyAny>) -> PyResult<()> {
        with_array!(&self.writable(py)?, a, T => {
            let data: PyReadonlyArrayDyn<'_, T> = values.extract()?;
            let values = data
                .as_slice()
                .map_err(|e| raise("HPXValueError", e.to_string()))?
                .to_vec();
            let a = a.clone();
            block_failing(py, once(async move { a.set_range(start, &values).await }))
        })
    }

    /// Sets every element to `value` (collective in a job of several).
    fn fill(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        with_array!(&self.writable(py)?, a, T => {
            let (a, v) = (a.clone(), scalar::<T>(value)?);
            block_failing(py, once(async move { a.fill(v).await }))
        })
    }

    /// Scans in place: every element becomes the combination (`op`) of it
    /// and all before it, in flat order.
    fn scan(&self, py: Python<'_>, op: &str) -> PyResult<()> {
        let op = reduce_op(op)?;
        with_array!(&self.writable(py)?, a, _T => {
            let a = a.clone();
            block_failing(py, once(async move { a.inclusive_scan(op).await }))
        })
    }

    /// Scans in place along `axis`: every element becomes the combination
    /// (`op`) of it and the elements before it along that axis.
    fn scan_axis(&self, py: Python<'_>, op: &str, axis: usize) -> PyResult<()> {
        let op = reduce_op(op)?;
        with_array!(&self.writable(py)?, a, _T => {
            let a = a.clone();
            block_failing(py, once(async move { a.inclusive_scan_axis(axis, op).await }))
        })
    }

    /// The array with the shape `shape` (collective in a job of several):
    /// a view sharing its partitions where the layout allows it, else a
    /// copy in the block distribution.
    fn reshape(&self, py: Python<'_>, shape: Vec<usize>) -> PyResult<Array> {
        let a = self.ready(py)?;
        let inner = block_failing(py, shared_array(async move { a.reshape(shape).await }))?;
        Ok(Array::new(inner))
    }

    /// The array with its axes in the order `axes` (NumPy's
    /// `transpose(axes)`), a new array in block rows (collective in a job of
    /// several).
    fn permute_axes(&self, py: Python<'_>, axes: Vec<usize>) -> PyResult<Array> {
        with_array!(&self.ready(py)?, a, T => {
            let a = a.clone();
            let inner = block_failing(py, shared_array(async move {
                Ok(AnyVector::from(a.permute_axes(&axes).await?))
            }))?;
            Ok(Array::new(inner))
        })
    }

    /// `self @ other` for 2-d arrays of the same dtype, a new array whose
    /// rows lie with this array's (collective in a job of several).
    fn matmul(&self, py: Python<'_>, other: &Array) -> PyResult<Array> {
        let (a, b) = (self.ready(py)?, other.ready(py)?);
        let inner = with_dtype!(numpy_name(a.dtype()), T => {
            let a = a.typed::<T>().map_err(to_py)?;
            let b = b.typed::<T>().map_err(to_py)?;
            block_failing(py, shared_array(async move {
                Ok(AnyVector::from(a.matmul(&b).await?))
            }))?
        });
        Ok(Array::new(inner))
    }

    /// `self @ values` for a 2-d array and a contiguous NumPy array of this
    /// dtype holding `k` × `n` values (collective in a job of several).
    fn matmul_values(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        n: usize,
    ) -> PyResult<Array> {
        with_array!(&self.ready(py)?, a, T => {
            let data: PyReadonlyArrayDyn<'_, T> = values.extract()?;
            let b = data
                .as_slice()
                .map_err(|e| raise("HPXValueError", e.to_string()))?
                .to_vec();
            let a = a.clone();
            let inner = block_failing(py, shared_array(async move {
                Ok(AnyVector::from(a.matmul_values(b, n).await?))
            }))?;
            Ok(Array::new(inner))
        })
    }

    /// The transpose of a 2-d array, a new array in block rows (a 1-d
    /// array: itself; collective in a job of several).
    fn transpose(&self, py: Python<'_>) -> PyResult<Array> {
        let a = self.ready(py)?;
        let inner = block_failing(py, shared_array(async move { a.transpose().await }))?;
        Ok(Array::new(inner))
    }

    /// A copy in another layout (collective in a job of several).
    #[pyo3(signature = (kind, params, over, grid))]
    fn redistribute(
        &self,
        py: Python<'_>,
        kind: &str,
        params: Vec<usize>,
        over: Option<Vec<u32>>,
        grid: Option<(usize, usize)>,
    ) -> PyResult<Array> {
        let distribution = distribution(kind, &params)?;
        let over = localities(over);
        let inner = with_array!(&self.ready(py)?, a, T => {
            let a = a.clone();
            block_failing(py, shared_array(async move {
                // Locality 0 does the work: "local" means locality 0.
                let over = over.unwrap_or_else(|| match distribution {
                    Distribution::Local => vec![LocalityId(0)],
                    _ => hpx::find_all_localities(),
                });
                let spec = LayoutSpec { shape: a.shape().to_vec(), distribution, over, grid };
                Ok(T::wrap(a.redistribute(spec).await?))
            }))?
        });
        Ok(Array::new(inner))
    }

    fn __repr__(&self) -> PyResult<String> {
        let layout = self.layout()?;
        Ok(format!(
            "hpxpy._core.Array({}{}, shape={:?}, {} partitions)",
            if self.pending() { "expression of " } else { "" },
            self.dtype()?,
            layout.shape(),
            layout.num_partitions()
        ))
    }
}

/// A new C-contiguous NumPy array of `shape`, from NumPy's allocator (so
/// that too little memory is a `MemoryError`).
fn empty<'py, T: Dt>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let numpy = py.import("numpy")?;
    let dtype = numpy::dtype::<T>(py);
    let shape = PyTuple::new(py, shape)?;
    Ok(numpy
        .getattr("empty")?
        .call1((shape, dtype))?
        .downcast_into::<PyArrayDyn<T>>()?)
}

/// Fills `out` (a new array, not yet shared) with the flat elements of
/// `array` from `start` on, from their owners, with the GIL released.
fn read_into<T: Dt>(
    py: Python<'_>,
    array: hpx::PartitionedVector<T>,
    start: usize,
    out: &Bound<'_, PyArrayDyn<T>>,
) -> PyResult<()> {
    let len = numpy::PyUntypedArrayMethods::len(out);
    let at = out.data() as usize;
    block(py, async move {
        // SAFETY: `out` is a new C-contiguous array of `len` elements, held
        // by the caller and seen by no one else until this returns; the
        // wait only writes into it.
        let dest = unsafe { std::slice::from_raw_parts_mut(at as *mut T, len) };
        array.get_range_into(start, dest).await
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Array>()?;
    m.add_function(wrap_pyfunction!(create, m)?)?;
    m.add_function(wrap_pyfunction!(select, m)?)?;
    Ok(())
}

//! Distributed arrays for Python: creation, NumPy interop, element-wise
//! math and reductions, all run by the hpx containers on the owners of the
//! data. In a job of several localities every call that makes or changes
//! an array is collective (each locality makes the same call and gets the
//! same array); reads (`to_numpy`, indexing, views) are not.

use std::mem::ManuallyDrop;

use numpy::ndarray::{ArrayViewMutD, IxDyn};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use serde::{Deserialize, Serialize};

use hpx::{BinaryOp, CompareOp, Distribution, LayoutSpec, LocalityId, Numeric, ReduceOp, UnaryOp};

use crate::dtype::{scalar, with_array, with_dtype, AnyArray, Dt};
use crate::errors::{raise, Failure};
use crate::job::{block, block_failing, once, spmd};

/// A distributed array (the Python class `hpxpy.DistributedArray` wraps
/// one).
#[pyclass(frozen, module = "hpxpy._core", name = "Array")]
pub(crate) struct Array {
    /// Taken only by `drop`.
    inner: ManuallyDrop<AnyArray>,
}

impl Array {
    /// A Python object for `inner`.
    pub(crate) fn new(inner: AnyArray) -> Array {
        Array {
            inner: ManuallyDrop::new(inner),
        }
    }
}

impl Array {
    /// The array.
    pub(crate) fn any(&self) -> &AnyArray {
        &self.inner
    }
}

impl Drop for Array {
    fn drop(&mut self) {
        // SAFETY: `inner` is not used after this, the only place it is taken.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        // The handle's credit goes back to the owners from the runtime.
        crate::job::release(inner);
    }
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
async fn shared_array<F>(work: F) -> Result<AnyArray, Failure>
where
    F: std::future::Future<Output = hpx::Result<AnyArray>> + Send,
{
    let array = once(work).await?;
    if spmd() {
        if hpx::get_locality_id() != 0 {
            with_array!(&array, a, _T => a.keep_alive().await?);
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
    Ok(match name {
        "neg" => UnaryOp::Neg,
        "abs" => UnaryOp::Abs,
        "sqrt" => UnaryOp::Sqrt,
        "exp" => UnaryOp::Exp,
        "log" => UnaryOp::Log,
        "sin" => UnaryOp::Sin,
        "cos" => UnaryOp::Cos,
        other => return Err(raise("HPXValueError", format!("no function {other:?}"))),
    })
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

/// `mask ? a : b`, element-wise (a collective call in a job of several).
#[pyfunction]
fn select(py: Python<'_>, mask: &Array, a: &Array, b: &Array) -> PyResult<Array> {
    let mask = mask.inner.typed::<u8>()?;
    let inner = with_array!(&*a.inner, x, T => {
        let (x, y) = (x.clone(), b.inner.typed::<T>()?);
        block_failing(py, shared_array(async move {
            Ok(T::wrap(hpx::select(&mask, &x, &y).await?))
        }))?
    });
    Ok(Array::new(inner))
}

#[pymethods]
impl Array {
    /// The shape (row-major).
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        with_array!(&*self.inner, a, _T => PyTuple::new(py, a.shape()))
    }

    /// Whether `other` is a handle to the same distributed array (the same
    /// partitions, element type and shape), wherever each handle was made.
    fn same_array(&self, other: &Array) -> bool {
        let key =
            |any: &AnyArray| with_array!(any, a, _T => (a.shape().to_vec(), a.partition_ids()));
        self.inner.dtype() == other.inner.dtype() && key(&self.inner) == key(&other.inner)
    }

    /// The NumPy name of the element type.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.dtype()
    }

    /// The number of partitions.
    #[getter]
    fn num_partitions(&self) -> usize {
        with_array!(&*self.inner, a, _T => a.num_partitions())
    }

    /// The number of elements of each partition.
    #[getter]
    fn partition_sizes(&self) -> Vec<usize> {
        with_array!(&*self.inner, a, _T => a.partition_sizes())
    }

    /// The locality of each partition.
    #[getter]
    fn localities(&self) -> Vec<u32> {
        with_array!(&*self.inner, a, _T => a.localities().into_iter().map(|l| l.0).collect())
    }

    /// Whether the partitions are on more than one locality.
    #[getter]
    fn is_distributed(&self) -> bool {
        with_array!(&*self.inner, a, _T => a.is_distributed())
    }

    /// The distribution, as the Rust API spells it.
    #[getter]
    fn distribution(&self) -> String {
        with_array!(&*self.inner, a, _T => format!("{:?}", a.distribution()))
    }

    /// Every element, in a new NumPy array of this shape (gathered from
    /// the owners in bulk; not collective).
    fn to_numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        with_array!(&*self.inner, a, T => {
            let out = empty::<T>(py, a.shape())?;
            read_into(py, a.clone(), 0, &out)?;
            Ok(out.into_any())
        })
    }

    /// Zero-copy, writable NumPy views of this locality's partitions, each
    /// with the index of its first element along each axis (None for
    /// round-robin partitions, which are not boxes of the array). A view
    /// keeps the array alive.
    fn local_views<'py>(slf: &Bound<'py, Self>, py: Python<'py>) -> PyResult<Vec<LocalView<'py>>> {
        let me = slf.get();
        with_array!(&*me.inner, a, T => {
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
                // array does, and the NumPy array holds `slf`, a handle of
                // the array. Writes through the view are not synchronised
                // with the runtime's reads of the partition (another
                // locality's `to_numpy`, say) until the next collective:
                // such a read may see part of them (documented; plain
                // numbers, no invariant to break).
                let view = unsafe {
                    let data = ArrayViewMutD::<T>::from_shape_ptr(IxDyn(&shape), ptr as *mut T);
                    PyArrayDyn::<T>::borrow_from_array(&data, slf.clone().into_any())
                };
                views.push((view.into_any(), start));
            }
            Ok(views)
        })
    }

    /// `self op other` element-wise (same dtype; collective in a job of
    /// several).
    fn binary(&self, py: Python<'_>, op: &str, other: &Array) -> PyResult<Array> {
        let op = binary_op(op)?;
        let inner = with_array!(&*self.inner, a, T => {
            let (a, b) = (a.clone(), other.inner.typed::<T>()?);
            block_failing(py, shared_array(async move { Ok(T::wrap(a.binary(op, &b).await?)) }))?
        });
        Ok(Array::new(inner))
    }

    /// `self op scalar` (or `scalar op self` with `first`).
    fn binary_scalar(
        &self,
        py: Python<'_>,
        op: &str,
        value: &Bound<'_, PyAny>,
        first: bool,
    ) -> PyResult<Array> {
        let op = binary_op(op)?;
        let inner = with_array!(&*self.inner, a, T => {
            let (a, s) = (a.clone(), scalar::<T>(value)?);
            block_failing(py, shared_array(async move {
                Ok(T::wrap(a.binary_scalar(op, s, first).await?))
            }))?
        });
        Ok(Array::new(inner))
    }

    /// A function of every element: `neg abs` keep the dtype; `sqrt exp log
    /// sin cos` give floats (float32 stays float32).
    fn unary(&self, py: Python<'_>, op: &str) -> PyResult<Array> {
        let op = unary_op(op)?;
        let inner = with_array!(&*self.inner, a, T => {
            let a = a.clone();
            block_failing(py, shared_array(async move {
                Ok(if op.is_float_valued() {
                    <T as Numeric>::Float::wrap(a.unary_float(op).await?)
                } else {
                    T::wrap(a.unary(op).await?)
                })
            }))?
        });
        Ok(Array::new(inner))
    }

    /// The comparison `self op other`, as a mask of 0/1 (uint8).
    fn compare(&self, py: Python<'_>, op: &str, other: &Array) -> PyResult<Array> {
        let op = compare_op(op)?;
        let inner = with_array!(&*self.inner, a, T => {
            let (a, b) = (a.clone(), other.inner.typed::<T>()?);
            block_failing(py, shared_array(async move {
                Ok(AnyArray::U8(a.compare(op, &b).await?))
            }))?
        });
        Ok(Array::new(inner))
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
        let inner = with_array!(&*self.inner, a, T => {
            let (a, s) = (a.clone(), scalar::<T>(value)?);
            block_failing(py, shared_array(async move {
                Ok(AnyArray::U8(a.compare_scalar(op, s, first).await?))
            }))?
        });
        Ok(Array::new(inner))
    }

    /// A copy with every element converted to `dtype` (as NumPy's
    /// `astype`; the same dtype makes a copy).
    fn astype(&self, py: Python<'_>, dtype: &str) -> PyResult<Array> {
        let inner = with_dtype!(dtype, U => {
            with_array!(&*self.inner, a, _T => {
                let a = a.clone();
                block_failing(py, shared_array(async move {
                    Ok(U::wrap(a.astype::<U>().await?))
                }))?
            })
        });
        Ok(Array::new(inner))
    }

    /// A reduction of every element to one number: `sum prod min max mean
    /// argmin argmax any all count_nonzero`.
    fn reduce(&self, py: Python<'_>, what: &str) -> PyResult<Py<PyAny>> {
        let name = what.to_owned();
        let value = with_array!(&*self.inner, a, _T => {
            let a = a.clone();
            block_failing(py, once(async move {
                Ok(match name.as_str() {
                    "sum" => Value::of(a.sum().await?),
                    "prod" => Value::of(a.prod().await?),
                    "mean" if a.is_empty() => Value::Float(f64::NAN),
                    "mean" => Value::of(a.mean().await?),
                    "min" => a.min().await?.map_or(Value::Empty, Value::of),
                    "max" => a.max().await?.map_or(Value::Empty, Value::of),
                    "argmin" => a.argmin().await?.map_or(Value::Empty, Value::of),
                    "argmax" => a.argmax().await?.map_or(Value::Empty, Value::of),
                    "any" => Value::Bool(a.any().await?),
                    "all" => Value::Bool(a.all().await?),
                    "count_nonzero" => Value::of(a.count_nonzero().await?),
                    other => {
                        return Err(hpx::Error::BadArgument(format!("no reduction {other:?}")))
                    }
                })
            }))?
        });
        value.into_python(py, what)
    }

    /// A reduction (`sum prod min max mean`) along `axis` of a 2-d array,
    /// as a NumPy array (sums in 64 bits for integers, means in float64).
    fn reduce_axis<'py>(
        &self,
        py: Python<'py>,
        what: &str,
        axis: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let name = what.to_owned();
        with_array!(&*self.inner, a, T => {
            let a = a.clone();
            if name == "mean" {
                let means = block_failing(py, once(async move { a.mean_axis(axis).await }))?;
                return Ok(PyArray1::from_vec(py, means).into_any());
            }
            let op = reduce_op(&name)?;
            let values: Vec<<T as Numeric>::Sum> =
                block_failing(py, once(async move { a.reduce_axis(axis, op).await }))?;
            Ok(PyArray1::from_vec(py, values).into_any())
        })
    }

    /// The element at `index` (one index per axis; not collective).
    fn get(&self, py: Python<'_>, index: Vec<usize>) -> PyResult<Py<PyAny>> {
        with_array!(&*self.inner, a, _T => {
            let a = a.clone();
            let v = block(py, async move { a.get_at(&index).await })?;
            Value::of(v).into_python(py, "get")
        })
    }

    /// Sets the element at `index` (collective in a job of several).
    fn set(&self, py: Python<'_>, index: Vec<usize>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        with_array!(&*self.inner, a, T => {
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
        with_array!(&*self.inner, a, T => {
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
        with_array!(&*self.inner, a, T => {
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
        with_array!(&*self.inner, a, T => {
            let (a, v) = (a.clone(), scalar::<T>(value)?);
            block_failing(py, once(async move { a.fill(v).await }))
        })
    }

    /// Scans in place: every element becomes the combination (`op`) of it
    /// and all before it, in flat order.
    fn scan(&self, py: Python<'_>, op: &str) -> PyResult<()> {
        let op = reduce_op(op)?;
        with_array!(&*self.inner, a, _T => {
            let a = a.clone();
            block_failing(py, once(async move { a.inclusive_scan(op).await }))
        })
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
        let inner = with_array!(&*self.inner, a, T => {
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

    fn __repr__(&self) -> String {
        with_array!(&*self.inner, a, _T => format!(
            "hpxpy._core.Array({}, shape={:?}, {} partitions)",
            self.inner.dtype(),
            a.shape(),
            a.num_partitions()
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

//! Collectives for Python values over all localities or a sub-group
//! ([`Comm`]). Numbers and NumPy arrays travel as raw buffers and reduce
//! element by element; any other value travels as bytes (the Python layer
//! pickles it).

use numpy::{PyArray1, PyReadonlyArrayDyn, PyReadwriteArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use hpx::{Communicator, LocalityId, PodVec};

use crate::array::{reduce_op, Array};
use crate::dtype::with_dtype;
use crate::errors::raise;
use crate::job::block;
use hpx::AnyVector;

/// A group of localities that run collectives together: the whole job
/// (`Comm()`), or the members of a named sub-group (made by every member
/// with the same name and member list).
#[pyclass(frozen, module = "hpxpy._core", name = "Comm")]
pub(crate) struct Comm {
    inner: Communicator,
}

/// The elements of a contiguous NumPy array of `T`, copied out.
fn values<T: numpy::Element + Copy>(array: &Bound<'_, PyAny>) -> PyResult<Vec<T>> {
    let data: PyReadonlyArrayDyn<'_, T> = array.extract()?;
    Ok(data
        .as_slice()
        .map_err(|e| raise("HPXValueError", e.to_string()))?
        .to_vec())
}

fn bytes_of(b: &Bound<'_, PyBytes>) -> PodVec<u8> {
    PodVec(b.as_bytes().to_vec())
}

fn to_bytes<'py>(py: Python<'py>, b: PodVec<u8>) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &b.0)
}

#[pymethods]
impl Comm {
    /// The whole job (`members` None), or a new group of the given
    /// localities called `name` (every member calls this; others must not).
    #[new]
    #[pyo3(signature = (name=None, members=None))]
    fn new(py: Python<'_>, name: Option<String>, members: Option<Vec<u32>>) -> PyResult<Comm> {
        let inner = match (name, members) {
            (_, None) => block(py, async { Communicator::world() })?,
            (Some(name), Some(members)) => {
                let members: Vec<LocalityId> = members.into_iter().map(LocalityId).collect();
                block(py, async move { Communicator::new(&name, &members).await })?
            }
            (None, Some(_)) => {
                return Err(raise("HPXValueError", "a sub-group needs a name"));
            }
        };
        Ok(Comm { inner })
    }

    /// This locality's rank in the group.
    #[getter]
    fn rank(&self) -> u32 {
        self.inner.rank()
    }

    /// The number of members.
    #[getter]
    fn size(&self) -> u32 {
        self.inner.size()
    }

    /// The members' locality numbers, by rank.
    #[getter]
    fn members(&self) -> Vec<u32> {
        self.inner.members().iter().map(|l| l.0).collect()
    }

    /// Waits until every member has called it.
    fn barrier(&self, py: Python<'_>) -> PyResult<()> {
        let c = self.inner.clone();
        block(py, async move { c.barrier().await })
    }

    /// Element-wise reduction of a 1-d contiguous NumPy array of `dtype`
    /// over the members; `kind` is `all` (everyone gets it), `root` (the
    /// member `root` gets it, the others None), `inclusive` or `exclusive`
    /// (scans; the first member's exclusive scan is None).
    ///
    /// With `out` (a writable contiguous array of `dtype` and as many
    /// elements), the result is copied there and `out` returned, as MPI's
    /// receive buffer.
    #[pyo3(signature = (array, dtype, op, kind, root, out=None))]
    #[allow(clippy::too_many_arguments)]
    fn reduce_array<'py>(
        &self,
        py: Python<'py>,
        array: &Bound<'py, PyAny>,
        dtype: &str,
        op: &str,
        kind: &str,
        root: u32,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        with_dtype!(dtype, T => {
            let v: Vec<T> = values(array)?;
            let Some(reduced) = self.reduce_vec(py, v, op, kind, root)? else {
                return Ok(None);
            };
            let Some(out) = out else {
                return Ok(Some(PyArray1::from_vec(py, reduced).into_any()));
            };
            {
                let mut target: PyReadwriteArrayDyn<'_, T> = out.extract()?;
                let target = target
                    .as_slice_mut()
                    .map_err(|e| raise("HPXValueError", e.to_string()))?;
                if target.len() != reduced.len() {
                    return Err(raise(
                        "HPXValueError",
                        format!(
                            "out has {} elements, the result {}",
                            target.len(),
                            reduced.len()
                        ),
                    ));
                }
                target.copy_from_slice(&reduced);
            }
            Ok(Some(out.clone()))
        })
    }

    /// [`reduce_array`](Self::reduce_array) of one Python `float`, without
    /// a NumPy array on the way: the same call as a float64 array of one
    /// element (localities may mix the two).
    fn reduce_float(
        &self,
        py: Python<'_>,
        value: f64,
        op: &str,
        kind: &str,
        root: u32,
    ) -> PyResult<Option<f64>> {
        let out = self.reduce_vec(py, vec![value], op, kind, root)?;
        Ok(out.and_then(|v| v.first().copied()))
    }

    /// [`reduce_array`](Self::reduce_array) of one Python `int` that fits
    /// an int64: the same call as an int64 array of one element.
    fn reduce_int(
        &self,
        py: Python<'_>,
        value: i64,
        op: &str,
        kind: &str,
        root: u32,
    ) -> PyResult<Option<i64>> {
        let out = self.reduce_vec(py, vec![value], op, kind, root)?;
        Ok(out.and_then(|v| v.first().copied()))
    }

    /// The root's distributed array, on every member (a handle each, kept
    /// alive before the root may drop its own).
    #[pyo3(signature = (array, root))]
    fn broadcast_array(
        &self,
        py: Python<'_>,
        array: Option<PyRef<'_, Array>>,
        root: u32,
    ) -> PyResult<Array> {
        let c = self.inner.clone();
        let value = array.map(|a| a.readable(py)).transpose()?;
        let got = block(py, async move {
            let got: AnyVector = c.broadcast(value, root).await?;
            if c.rank() != root {
                got.keep_alive().await?;
            }
            c.barrier().await?;
            Ok(got)
        })?;
        Ok(Array::new(got))
    }

    /// The root's bytes, on every member.
    #[pyo3(signature = (data, root))]
    fn broadcast<'py>(
        &self,
        py: Python<'py>,
        data: Option<Bound<'py, PyBytes>>,
        root: u32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.inner.clone();
        let data = data.map(|d| bytes_of(&d));
        let got = block(py, async move { c.broadcast(data, root).await })?;
        Ok(to_bytes(py, got))
    }

    /// Every member's bytes, by rank, on the root (None elsewhere).
    fn gather<'py>(
        &self,
        py: Python<'py>,
        data: Bound<'py, PyBytes>,
        root: u32,
    ) -> PyResult<Option<Vec<Bound<'py, PyBytes>>>> {
        let c = self.inner.clone();
        let data = bytes_of(&data);
        let got = block(py, async move { c.gather(data, root).await })?;
        Ok(got.map(|all| all.into_iter().map(|b| to_bytes(py, b)).collect()))
    }

    /// Every member's bytes, by rank, on every member.
    fn all_gather<'py>(
        &self,
        py: Python<'py>,
        data: Bound<'py, PyBytes>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let c = self.inner.clone();
        let data = bytes_of(&data);
        let got = block(py, async move { c.all_gather(data).await })?;
        Ok(got.into_iter().map(|b| to_bytes(py, b)).collect())
    }

    /// Member `i` gets the root's `data[i]` (one item per member; None on
    /// the others).
    #[pyo3(signature = (data, root))]
    fn scatter<'py>(
        &self,
        py: Python<'py>,
        data: Option<Vec<Bound<'py, PyBytes>>>,
        root: u32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.inner.clone();
        let data = data.map(|all| all.iter().map(bytes_of).collect::<Vec<_>>());
        let got = block(py, async move { c.scatter(data, root).await })?;
        Ok(to_bytes(py, got))
    }

    /// Member `j` gets item `i` of member `i`'s list at position `i`.
    fn all_to_all<'py>(
        &self,
        py: Python<'py>,
        data: Vec<Bound<'py, PyBytes>>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let c = self.inner.clone();
        let data: Vec<PodVec<u8>> = data.iter().map(bytes_of).collect();
        let got = block(py, async move { c.all_to_all(data).await })?;
        Ok(got.into_iter().map(|b| to_bytes(py, b)).collect())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Comm>()?;
    Ok(())
}

impl Comm {
    /// Element-wise reduction of `v` over the members, as `kind` says (see
    /// [`Comm::reduce_array`]).
    fn reduce_vec<T>(
        &self,
        py: Python<'_>,
        v: Vec<T>,
        op: &str,
        kind: &str,
        root: u32,
    ) -> PyResult<Option<Vec<T>>>
    where
        Vec<T>: hpx::Reducible + Send + 'static,
    {
        let op = reduce_op(op)?;
        let kind = kind.to_owned();
        let c = self.inner.clone();
        block(py, async move {
            match kind.as_str() {
                "all" => c.all_reduce(v, op).await.map(Some),
                "root" => c.reduce(v, op, root).await,
                "inclusive" => c.inclusive_scan(v, op).await.map(Some),
                "exclusive" => c.exclusive_scan(v, op).await,
                other => Err(hpx::Error::BadArgument(format!(
                    "no reduction kind {other}"
                ))),
            }
        })
    }
}

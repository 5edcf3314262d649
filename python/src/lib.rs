//! `hpxpy._core`: the native part of HPXPy, the Python front of hpx-rs.
//!
//! The Python package (`hpxpy/`) parses arguments, promotes dtypes and
//! gives NumPy's operators; this module holds the job (one locality per
//! Python process), the distributed arrays and the collectives. Data
//! crosses between Python and Rust as whole buffers; the GIL is released
//! whenever the runtime waits or works.

mod array;
mod collectives;
mod dtype;
mod errors;
mod job;

use pyo3::prelude::*;

/// The module `hpxpy._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    job::register(m)?;
    array::register(m)?;
    collectives::register(m)?;
    Ok(())
}

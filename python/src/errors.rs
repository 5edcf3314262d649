//! hpx errors as Python exceptions. The exception classes live in
//! `hpxpy/_errors.py` (plain Python, so that they can also derive from
//! `ValueError` or `IndexError`); this module picks the class for an error.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use serde::{Deserialize, Serialize};

use hpx::Error;

/// An error as it travels between localities and into Python: the name of
/// its class in `hpxpy._errors` and its message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Failure {
    class: String,
    message: String,
}

impl Failure {
    /// A failure of the given class (a name in `hpxpy._errors`).
    pub(crate) fn new(class: &str, message: impl Into<String>) -> Failure {
        Failure {
            class: class.to_owned(),
            message: message.into(),
        }
    }

    /// The Python exception.
    pub(crate) fn into_py(self) -> PyErr {
        Python::attach(|py| {
            let class = py
                .import("hpxpy._errors")
                .and_then(|m| m.getattr(self.class.as_str()));
            match class {
                Ok(class) => match class.call1((self.message.clone(),)) {
                    Ok(exc) => PyErr::from_value(exc),
                    Err(e) => e,
                },
                Err(_) => PyRuntimeError::new_err(self.message),
            }
        })
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let class = match &e {
            Error::LocalityLost { .. } => "LocalityLostError",
            Error::Aborted(_) | Error::MainFailed(_) => "JobAbortedError",
            Error::CollectiveMismatch(_) => "CollectiveMismatchError",
            Error::NoSuchLocality(_) => "LocalityIndexError",
            Error::BadArgument(m) if is_index_error(m) => "HPXIndexError",
            Error::BadArgument(_) => "HPXValueError",
            Error::Remote { message, .. } if is_index_error(message) => "HPXIndexError",
            Error::Remote { message, .. } if message.starts_with("bad argument") => "HPXValueError",
            _ => "HPXError",
        };
        Failure::new(class, e.to_string())
    }
}

fn is_index_error(message: &str) -> bool {
    message.contains("out of range") || message.contains("out of bounds")
}

/// An hpx error as a Python exception.
pub(crate) fn to_py(e: Error) -> PyErr {
    Failure::from(e).into_py()
}

/// A Python exception of class `class` (a name in `hpxpy._errors`).
pub(crate) fn raise(class: &str, message: impl Into<String>) -> PyErr {
    Failure::new(class, message).into_py()
}

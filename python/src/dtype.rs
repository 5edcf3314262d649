//! The element types HPXPy arrays hold (NumPy's `float64 float32 int64
//! int32 uint64 uint32 uint8`; `bool` is `uint8` marked by the Python
//! layer), the typed array inside an `hpx::AnyVector`, and Python scalars.

use numpy::Element as NpElement;
use pyo3::prelude::*;

use hpx::{AnyVector, Numeric, PartitionedVector};

/// An element type both NumPy and hpx arrays hold.
pub(crate) trait Dt: Numeric + NpElement {
    /// Wraps an array of this type.
    fn wrap(array: PartitionedVector<Self>) -> AnyVector {
        AnyVector::new(array)
    }
}

impl Dt for f64 {}
impl Dt for f32 {}
impl Dt for i64 {}
impl Dt for i32 {}
impl Dt for u64 {}
impl Dt for u32 {}
impl Dt for u8 {}

/// The NumPy name of a Rust element type that hpxpy arrays hold (another
/// type keeps its Rust name).
pub(crate) fn numpy_name(rust: &'static str) -> &'static str {
    match rust {
        "f64" => "float64",
        "f32" => "float32",
        "i64" => "int64",
        "i32" => "int32",
        "u64" => "uint64",
        "u32" => "uint32",
        "u8" => "uint8",
        // Not one of hpxpy's: its Rust name, which `with_dtype!` refuses.
        other => other,
    }
}

/// Runs `$body` with `$a` bound to the typed array inside `$any` (an
/// `&AnyVector`) and `$t` to its element type; in a function that returns
/// a `PyResult`.
macro_rules! with_array {
    ($any:expr, $a:ident, $t:ident => $body:expr) => {{
        let any: &hpx::AnyVector = $any;
        $crate::dtype::with_dtype!($crate::dtype::numpy_name(any.dtype()), $t => {
            let typed = any.typed::<$t>().map_err($crate::errors::to_py)?;
            let $a = &typed;
            $body
        })
    }};
}
pub(crate) use with_array;

/// Runs `$body` with `$t` the element type named `$name` (a NumPy dtype
/// name), or returns a `DTypeError`.
macro_rules! with_dtype {
    ($name:expr, $t:ident => $body:expr) => {
        match $name {
            "float64" => {
                type $t = f64;
                $body
            }
            "float32" => {
                type $t = f32;
                $body
            }
            "int64" => {
                type $t = i64;
                $body
            }
            "int32" => {
                type $t = i32;
                $body
            }
            "uint64" => {
                type $t = u64;
                $body
            }
            "uint32" => {
                type $t = u32;
                $body
            }
            "uint8" | "bool" => {
                type $t = u8;
                $body
            }
            other => {
                return Err($crate::errors::raise(
                    "DTypeError",
                    format!(
                        "hpxpy arrays hold float64, float32, int64, int32, uint64, uint32, \
                         uint8 or bool, not {other}"
                    ),
                ))
            }
        }
    };
}
pub(crate) use with_dtype;

/// A Python number as `T` (floats for float types; integers wrap into
/// integer types as NumPy's `astype` does).
pub(crate) fn scalar<T: Numeric>(value: &Bound<'_, PyAny>) -> PyResult<T> {
    if T::IS_FLOAT {
        return Ok(T::from_f64(value.extract::<f64>()?));
    }
    if let Ok(v) = value.extract::<i64>() {
        return Ok(v.cast::<T>());
    }
    if let Ok(v) = value.extract::<u64>() {
        return Ok(v.cast::<T>());
    }
    let v: f64 = value.extract()?;
    Ok(T::from_f64(v))
}

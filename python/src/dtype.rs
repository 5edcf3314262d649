//! The element types HPXPy arrays hold (NumPy's `float64 float32 int64
//! int32 uint64 uint32 uint8`; `bool` is `uint8` marked by the Python
//! layer), a distributed array of any of them, and Python scalars.

use numpy::Element as NpElement;
use pyo3::prelude::*;
use serde::{Deserialize, Serialize};

use hpx::{Numeric, PartitionedVector};

/// An element type both NumPy and hpx arrays hold.
pub(crate) trait Dt: Numeric + NpElement {
    /// Wraps an array of this type.
    fn wrap(array: PartitionedVector<Self>) -> AnyArray;
}

/// A distributed array of one of the supported element types.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum AnyArray {
    F64(PartitionedVector<f64>),
    F32(PartitionedVector<f32>),
    I64(PartitionedVector<i64>),
    I32(PartitionedVector<i32>),
    U64(PartitionedVector<u64>),
    U32(PartitionedVector<u32>),
    U8(PartitionedVector<u8>),
}

macro_rules! dts {
    ($($t:ty => $v:ident),*) => {$(
        impl Dt for $t {
            fn wrap(array: PartitionedVector<$t>) -> AnyArray {
                AnyArray::$v(array)
            }
        }
    )*};
}
dts!(f64 => F64, f32 => F32, i64 => I64, i32 => I32, u64 => U64, u32 => U32, u8 => U8);

/// Runs `$body` with `$a` bound to the typed array inside `$any` and `$t`
/// to its element type.
macro_rules! with_array {
    ($any:expr, $a:ident, $t:ident => $body:expr) => {
        match $any {
            $crate::dtype::AnyArray::F64($a) => {
                type $t = f64;
                $body
            }
            $crate::dtype::AnyArray::F32($a) => {
                type $t = f32;
                $body
            }
            $crate::dtype::AnyArray::I64($a) => {
                type $t = i64;
                $body
            }
            $crate::dtype::AnyArray::I32($a) => {
                type $t = i32;
                $body
            }
            $crate::dtype::AnyArray::U64($a) => {
                type $t = u64;
                $body
            }
            $crate::dtype::AnyArray::U32($a) => {
                type $t = u32;
                $body
            }
            $crate::dtype::AnyArray::U8($a) => {
                type $t = u8;
                $body
            }
        }
    };
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

impl AnyArray {
    /// The NumPy name of the element type.
    pub(crate) fn dtype(&self) -> &'static str {
        match self {
            AnyArray::F64(_) => "float64",
            AnyArray::F32(_) => "float32",
            AnyArray::I64(_) => "int64",
            AnyArray::I32(_) => "int32",
            AnyArray::U64(_) => "uint64",
            AnyArray::U32(_) => "uint32",
            AnyArray::U8(_) => "uint8",
        }
    }
}

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

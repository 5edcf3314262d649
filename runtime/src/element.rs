//! The numbers that travel in bulk and the built-in reductions over them:
//! [`Element`] (every primitive integer and floating-point type) and
//! [`ReduceOp`]. The one home of "bytes to numbers" and of the reductions
//! that collectives and distributed arrays share.

use std::fmt::Debug;

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A built-in reduction operation, applied element by element.
///
/// Integer sums and products wrap around on overflow (as in C and MPI).
/// `Min` and `Max` of floating-point numbers ignore a NaN when the other
/// operand is a number (`f64::min`, `f64::max`). The bitwise operations are
/// defined for integers only: using them on floating-point values is an
/// [`Error::BadArgument`] on every participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReduceOp {
    /// `a + b`.
    Sum,
    /// `a * b`.
    Prod,
    /// The smaller value.
    Min,
    /// The larger value.
    Max,
    /// `a & b` (integers only).
    BitAnd,
    /// `a | b` (integers only).
    BitOr,
    /// `a ^ b` (integers only).
    BitXor,
}

impl ReduceOp {
    /// The operation's name, as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Prod => "prod",
            ReduceOp::Min => "min",
            ReduceOp::Max => "max",
            ReduceOp::BitAnd => "bit_and",
            ReduceOp::BitOr => "bit_or",
            ReduceOp::BitXor => "bit_xor",
        }
    }

    /// Whether the operation is one of the bitwise ones.
    pub fn is_bitwise(self) -> bool {
        matches!(self, ReduceOp::BitAnd | ReduceOp::BitOr | ReduceOp::BitXor)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A number that the built-in [`ReduceOp`]s combine: every primitive integer
/// and floating-point type.
pub trait Element: Pod + Debug + PartialEq + Send + Sync + sealed::Sealed {
    /// The type's name.
    const NAME: &'static str;

    /// Combines `acc` with `other` element by element: `acc[i] = other[i] ⊕
    /// acc[i]` when `other_is_lower`, `acc[i] ⊕ other[i]` otherwise. Extra
    /// elements of the longer slice are left alone. An operation that
    /// [`Element::supports`] refuses leaves `acc` unchanged.
    fn combine_slices(op: ReduceOp, acc: &mut [Self], other: &[Self], other_is_lower: bool);

    /// Whether `op` is defined for this type.
    fn supports(op: ReduceOp) -> bool;
}

/// Applies `f(lower, upper)` element-wise into `acc`.
#[inline]
fn zip_apply<E: Copy>(acc: &mut [E], other: &[E], other_is_lower: bool, f: impl Fn(E, E) -> E) {
    if other_is_lower {
        for (a, b) in acc.iter_mut().zip(other) {
            *a = f(*b, *a);
        }
    } else {
        for (a, b) in acc.iter_mut().zip(other) {
            *a = f(*a, *b);
        }
    }
}

macro_rules! integer_elements {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const NAME: &'static str = stringify!($t);

            fn combine_slices(op: ReduceOp, acc: &mut [Self], other: &[Self], other_is_lower: bool) {
                match op {
                    ReduceOp::Sum => zip_apply(acc, other, other_is_lower, <$t>::wrapping_add),
                    ReduceOp::Prod => zip_apply(acc, other, other_is_lower, <$t>::wrapping_mul),
                    ReduceOp::Min => zip_apply(acc, other, other_is_lower, std::cmp::min),
                    ReduceOp::Max => zip_apply(acc, other, other_is_lower, std::cmp::max),
                    ReduceOp::BitAnd => zip_apply(acc, other, other_is_lower, |a, b| a & b),
                    ReduceOp::BitOr => zip_apply(acc, other, other_is_lower, |a, b| a | b),
                    ReduceOp::BitXor => zip_apply(acc, other, other_is_lower, |a, b| a ^ b),
                }
            }

            fn supports(_: ReduceOp) -> bool {
                true
            }
        }
    )*};
}

macro_rules! float_elements {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const NAME: &'static str = stringify!($t);

            fn combine_slices(op: ReduceOp, acc: &mut [Self], other: &[Self], other_is_lower: bool) {
                match op {
                    ReduceOp::Sum => zip_apply(acc, other, other_is_lower, |a, b| a + b),
                    ReduceOp::Prod => zip_apply(acc, other, other_is_lower, |a, b| a * b),
                    ReduceOp::Min => zip_apply(acc, other, other_is_lower, <$t>::min),
                    ReduceOp::Max => zip_apply(acc, other, other_is_lower, <$t>::max),
                    // Refused by `supports` before any value is combined.
                    ReduceOp::BitAnd | ReduceOp::BitOr | ReduceOp::BitXor => {}
                }
            }

            fn supports(op: ReduceOp) -> bool {
                !op.is_bitwise()
            }
        }
    )*};
}

integer_elements!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);
float_elements!(f32, f64);

/// One number from its raw bytes (any alignment).
pub fn element_from_bytes<E: Element>(bytes: &[u8]) -> Result<E> {
    bytemuck::try_pod_read_unaligned(bytes).map_err(|_| {
        Error::Codec(format!(
            "{} bytes are not one {} ({} bytes)",
            bytes.len(),
            E::NAME,
            std::mem::size_of::<E>()
        ))
    })
}

/// Numbers from raw little-endian bytes, copied to aligned memory.
pub fn elements_from_bytes<E: Element>(bytes: &[u8]) -> Result<Vec<E>> {
    let size = std::mem::size_of::<E>();
    if size == 0 || bytes.len() % size != 0 {
        return Err(Error::Codec(format!(
            "{} bytes are not a whole number of {}",
            bytes.len(),
            E::NAME
        )));
    }
    Ok(bytemuck::pod_collect_to_vec(bytes))
}

//! Reduction operations: the built-in [`ReduceOp`]s on numbers and vectors of
//! numbers, and user-defined [`CustomOp`]s on any serde type.
//!
//! Every reduction combines values in a fixed order, `lower ⊕ upper`, where
//! `lower` holds the contributions of lower ranks: an operation only has to
//! be associative, not commutative, and floating-point results do not depend
//! on timing.

use std::marker::PhantomData;

use futures::future::BoxFuture;
use hpx_runtime::{codec, Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use hpx_runtime::element::elements_from_bytes;
pub use hpx_runtime::element::{Element, ReduceOp};

use crate::algorithms::{large, shared};
use crate::host::HostCall;
use crate::payload::Payload;
use crate::round::Round;
use hpx_runtime::hash::fnv1a_parts as fnv1a;

/// A value the built-in [`ReduceOp`]s reduce: a number ([`Element`]),
/// combined as a whole, or a `Vec` or array of numbers, combined element by
/// element (all participants must pass the same length).
pub trait Reducible: Clone + Send + Sync + 'static {
    /// The numbers inside.
    type Element: Element;

    /// The numbers, in order.
    fn elements(&self) -> &[Self::Element];

    /// The numbers, mutable.
    fn elements_mut(&mut self) -> &mut [Self::Element];

    /// Takes the numbers out as a vector.
    fn into_elements(self) -> Vec<Self::Element>;

    /// Rebuilds a value from its numbers; `None` if the count does not fit.
    fn from_elements(elements: Vec<Self::Element>) -> Option<Self>;
}

macro_rules! scalar_reducible {
    ($($t:ty),*) => {$(
        impl Reducible for $t {
            type Element = $t;

            fn elements(&self) -> &[$t] {
                std::slice::from_ref(self)
            }

            fn elements_mut(&mut self) -> &mut [$t] {
                std::slice::from_mut(self)
            }

            fn into_elements(self) -> Vec<$t> {
                vec![self]
            }

            fn from_elements(elements: Vec<$t>) -> Option<$t> {
                match elements.as_slice() {
                    [x] => Some(*x),
                    _ => None,
                }
            }
        }
    )*};
}

scalar_reducible!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

impl<E: Element> Reducible for Vec<E> {
    type Element = E;

    fn elements(&self) -> &[E] {
        self
    }

    fn elements_mut(&mut self) -> &mut [E] {
        self
    }

    fn into_elements(self) -> Vec<E> {
        self
    }

    fn from_elements(elements: Vec<E>) -> Option<Vec<E>> {
        Some(elements)
    }
}

impl<E: Element, const N: usize> Reducible for [E; N] {
    type Element = E;

    fn elements(&self) -> &[E] {
        self
    }

    fn elements_mut(&mut self) -> &mut [E] {
        self
    }

    fn into_elements(self) -> Vec<E> {
        self.to_vec()
    }

    fn from_elements(elements: Vec<E>) -> Option<[E; N]> {
        elements.try_into().ok()
    }
}

/// A user-defined reduction on any serde type.
///
/// Implementing the trait registers the operation: every locality runs the
/// same binary, so all of them know it, and it is named on the wire by a
/// hash of [`CustomOp::NAME`] (participants passing different operations get
/// a mismatch error). Pass a value of the implementing type where a
/// [`ReduceOp`] would go.
///
/// `combine(lower, upper)` receives the contribution of lower ranks first.
/// It must be associative; it need not be commutative. Custom values travel
/// whole at every step of the algorithms (no element-wise splitting).
///
/// ```
/// use hpx_collectives::CustomOp;
///
/// /// The largest value and the rank that holds it (MPI's MAXLOC).
/// #[derive(Clone, Copy)]
/// struct MaxLoc;
///
/// impl CustomOp for MaxLoc {
///     type Value = (f64, u32);
///     const NAME: &'static str = "example::MaxLoc";
///     fn combine(lower: (f64, u32), upper: (f64, u32)) -> (f64, u32) {
///         if upper.0 > lower.0 { upper } else { lower }
///     }
/// }
/// assert_eq!(MaxLoc::combine((1.0, 0), (2.0, 1)), (2.0, 1));
/// ```
pub trait CustomOp: Send + Sync + 'static {
    /// The values combined.
    type Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// A name unique among the custom operations of the program.
    const NAME: &'static str;

    /// `lower ⊕ upper`.
    fn combine(lower: Self::Value, upper: Self::Value) -> Self::Value;
}

/// What the reducing collectives accept as their operation on values of `T`:
/// a [`ReduceOp`] (for [`Reducible`] `T`) or a [`CustomOp`] (for its
/// `Value`).
pub trait ReduceOperation<T>: Send + 'static {
    /// How the collectives combine values of `T` with this operation.
    fn into_reduction(self) -> Reduction<T>;
}

/// How a reducing collective combines values of `T`; made by
/// [`ReduceOperation::into_reduction`].
pub struct Reduction<T>(pub(crate) Box<dyn Combine<T>>);

impl<T> std::fmt::Debug for Reduction<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reduction(..)")
    }
}

impl<T: Reducible> ReduceOperation<T> for ReduceOp {
    fn into_reduction(self) -> Reduction<T> {
        Reduction(Box::new(Builtin::<T> {
            op: self,
            values: PhantomData,
        }))
    }
}

impl<C: CustomOp> ReduceOperation<C::Value> for C {
    fn into_reduction(self) -> Reduction<C::Value> {
        Reduction(Box::new(Custom::<C>(PhantomData)))
    }
}

/// The work of a reduction that the algorithms need, for one value type.
pub(crate) trait Combine<T>: Send + Sync {
    /// The operation's id on the wire.
    fn wire_id(&self) -> u64;
    /// The operation's name.
    fn name(&self) -> &'static str;
    /// The value's length that every participant must agree on (0 if none).
    fn len(&self, value: &T) -> u64;
    /// Whether the operation is defined for `T`.
    fn check(&self) -> Result<()>;
    /// The bytes that carry `value`.
    fn encode(&self, value: &T) -> Result<Payload>;
    /// A value from its bytes.
    fn decode(&self, payload: Payload) -> Result<T>;
    /// `lower ⊕ upper`.
    fn combine(&self, lower: T, upper: T) -> Result<T>;
    /// `all_reduce` (`root` = `None`) or `reduce` to `root` through the
    /// members' shared region, where they all share this host.
    fn reduce_shared<'a, 'h: 'a>(
        &'a self,
        round: &'a Round,
        host: &'a mut HostCall<'h>,
        value: T,
        root: Option<u32>,
    ) -> BoxFuture<'a, Result<Option<T>>>;
    /// The bandwidth-optimal all-reduce for large values, or the value back
    /// if it is small or not splittable.
    fn all_reduce_large<'a>(
        &'a self,
        round: &'a Round,
        value: T,
    ) -> std::result::Result<BoxFuture<'a, Result<T>>, T>;
}

/// A [`ReduceOp`] on a [`Reducible`] type.
struct Builtin<T> {
    op: ReduceOp,
    values: PhantomData<fn(T) -> T>,
}

impl<T: Reducible> Combine<T> for Builtin<T> {
    fn wire_id(&self) -> u64 {
        fnv1a(&[b"builtin:", self.op.name().as_bytes()])
    }

    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn len(&self, value: &T) -> u64 {
        value.elements().len() as u64
    }

    fn check(&self) -> Result<()> {
        if T::Element::supports(self.op) {
            Ok(())
        } else {
            Err(Error::BadArgument(format!(
                "the reduction {} is not defined for {}",
                self.op.name(),
                T::Element::NAME
            )))
        }
    }

    fn encode(&self, value: &T) -> Result<Payload> {
        Ok(Payload::single(
            bytemuck::cast_slice::<_, u8>(value.elements()).to_vec(),
        ))
    }

    fn decode(&self, payload: Payload) -> Result<T> {
        let bytes = payload.into_single()?;
        let elements = elements_from_bytes::<T::Element>(&bytes)?;
        let count = elements.len();
        T::from_elements(elements).ok_or_else(|| {
            Error::Codec(format!(
                "{count} elements of {} do not make a {}",
                T::Element::NAME,
                std::any::type_name::<T>()
            ))
        })
    }

    fn combine(&self, mut lower: T, upper: T) -> Result<T> {
        let (acc, other) = (lower.elements_mut(), upper.elements());
        if acc.len() != other.len() {
            return Err(Error::BadArgument(format!(
                "cannot combine {} with {} elements",
                acc.len(),
                other.len()
            )));
        }
        T::Element::combine_slices(self.op, acc, other, false);
        Ok(lower)
    }

    fn reduce_shared<'a, 'h: 'a>(
        &'a self,
        round: &'a Round,
        host: &'a mut HostCall<'h>,
        value: T,
        root: Option<u32>,
    ) -> BoxFuture<'a, Result<Option<T>>> {
        let op = self.op;
        Box::pin(async move {
            let reduced =
                shared::reduce_elements(round, host, op, value.into_elements(), root).await?;
            reduced
                .map(|v| {
                    T::from_elements(v).ok_or_else(|| {
                        Error::BadArgument("the reduced vector changed its length".into())
                    })
                })
                .transpose()
        })
    }

    fn all_reduce_large<'a>(
        &'a self,
        round: &'a Round,
        value: T,
    ) -> std::result::Result<BoxFuture<'a, Result<T>>, T> {
        if !large::worth_it::<T::Element>(value.elements().len(), round.size()) {
            return Err(value);
        }
        let op = self.op;
        Ok(Box::pin(async move {
            let reduced = large::all_reduce(round, op, value.into_elements()).await?;
            T::from_elements(reduced)
                .ok_or_else(|| Error::BadArgument("the reduced vector changed its length".into()))
        }))
    }
}

/// A [`CustomOp`].
struct Custom<C>(PhantomData<fn(C) -> C>);

impl<C: CustomOp> Combine<C::Value> for Custom<C> {
    fn wire_id(&self) -> u64 {
        fnv1a(&[b"custom:", C::NAME.as_bytes()])
    }

    fn name(&self) -> &'static str {
        C::NAME
    }

    fn len(&self, _: &C::Value) -> u64 {
        0
    }

    fn check(&self) -> Result<()> {
        Ok(())
    }

    fn encode(&self, value: &C::Value) -> Result<Payload> {
        Ok(Payload::single(codec::encode_to_vec(value)?))
    }

    fn decode(&self, payload: Payload) -> Result<C::Value> {
        codec::decode(&payload.into_single()?)
    }

    fn combine(&self, lower: C::Value, upper: C::Value) -> Result<C::Value> {
        Ok(C::combine(lower, upper))
    }

    fn reduce_shared<'a, 'h: 'a>(
        &'a self,
        round: &'a Round,
        host: &'a mut HostCall<'h>,
        value: C::Value,
        root: Option<u32>,
    ) -> BoxFuture<'a, Result<Option<C::Value>>> {
        Box::pin(shared::reduce_encoded(round, host, self, value, root))
    }

    fn all_reduce_large<'a>(
        &'a self,
        _: &'a Round,
        value: C::Value,
    ) -> std::result::Result<BoxFuture<'a, Result<C::Value>>, C::Value> {
        Err(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reduce<T: Reducible>(op: ReduceOp, a: T, b: T) -> T {
        let r: Reduction<T> = op.into_reduction();
        r.0.combine(a, b).expect("combine")
    }

    #[test]
    fn builtin_ops_on_integers_and_floats() {
        assert_eq!(reduce(ReduceOp::Sum, 3i32, 4), 7);
        assert_eq!(reduce(ReduceOp::Sum, i32::MAX, 1), i32::MIN);
        assert_eq!(reduce(ReduceOp::Prod, 3u8, 100), 44);
        assert_eq!(reduce(ReduceOp::Min, -3i64, 4), -3);
        assert_eq!(reduce(ReduceOp::Max, vec![1u16, 9], vec![5, 2]), vec![5, 9]);
        assert_eq!(reduce(ReduceOp::BitAnd, 0b1100u8, 0b1010), 0b1000);
        assert_eq!(reduce(ReduceOp::BitOr, [0b1100u32], [0b1010]), [0b1110]);
        assert_eq!(reduce(ReduceOp::BitXor, 0b1100u128, 0b1010), 0b0110);
        assert_eq!(reduce(ReduceOp::Max, f64::NAN, 1.0), 1.0);
        assert_eq!(
            reduce(ReduceOp::Sum, vec![0.5f32, 1.0], vec![0.25, 2.0]),
            [0.75, 3.0]
        );
    }

    #[test]
    fn bitwise_on_floats_is_refused() {
        let r: Reduction<f64> = ReduceOp::BitXor.into_reduction();
        assert!(matches!(r.0.check(), Err(Error::BadArgument(_))));
        let r: Reduction<Vec<u8>> = ReduceOp::BitXor.into_reduction();
        assert!(r.0.check().is_ok());
    }

    #[test]
    fn order_is_lower_then_upper() {
        let mut acc = [10i32, 20];
        i32::combine_slices(ReduceOp::Sum, &mut acc, &[1, 2], true);
        assert_eq!(acc, [11, 22]);
        struct Concat;
        impl CustomOp for Concat {
            type Value = String;
            const NAME: &'static str = "test::Concat";
            fn combine(lower: String, upper: String) -> String {
                lower + &upper
            }
        }
        let r: Reduction<String> = Concat.into_reduction();
        assert_eq!(r.0.combine("a".into(), "b".into()).unwrap(), "ab");
    }

    #[test]
    fn values_round_trip_and_bad_bytes_are_errors() {
        let r: Reduction<Vec<f64>> = ReduceOp::Sum.into_reduction();
        let v = vec![1.5, -2.0, 3.25];
        let back = r.0.decode(r.0.encode(&v).unwrap()).unwrap();
        assert_eq!(back, v);
        assert!(r.0.decode(Payload::single(vec![1, 2, 3])).is_err());
        let s: Reduction<u32> = ReduceOp::Sum.into_reduction();
        assert!(s.0.decode(Payload::single(vec![0; 8])).is_err());
        assert!(s.0.decode(Payload::empty()).is_err());
        let a: Reduction<[u16; 3]> = ReduceOp::Sum.into_reduction();
        assert!(a.0.decode(Payload::single(vec![0; 4])).is_err());
        assert_eq!(
            a.0.decode(Payload::single(vec![1, 0, 2, 0, 3, 0])).unwrap(),
            [1, 2, 3]
        );
    }

    #[test]
    fn combining_different_lengths_is_an_error() {
        let r: Reduction<Vec<i32>> = ReduceOp::Sum.into_reduction();
        assert!(r.0.combine(vec![1, 2], vec![1]).is_err());
    }
}

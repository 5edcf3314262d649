//! Element-wise math and reductions of distributed arrays, run on the
//! partitions' owners: the element-wise operations and sums go through the
//! one engine (`lazy.rs`, `expr.rs`) and make a new array in the first
//! operand's layout (an operand in another layout is redistributed first,
//! in bulk, owner to owner); products, extremes with their index and axis
//! reductions are here.

use std::future::Future;
use std::pin::Pin;

use hpx_runtime::element::{element_from_bytes, ReduceOp};
use hpx_runtime::{Error, Result};

use crate::axes::Fold;
use crate::data::combine;
use crate::lazy::Expr;
use crate::math::{BinaryOp, CompareOp, Numeric, UnaryOp};
use crate::partition;
use crate::vector::PartitionedVector;

/// A distributed array that is being computed (`(&a + &b).await?`).
pub type ArrayFuture<T> = Pin<Box<dyn Future<Output = Result<PartitionedVector<T>>> + Send>>;

impl<T: Numeric> PartitionedVector<T> {
    /// `self op other`, element-wise, into a new array (same shape; `other`
    /// is redistributed to this array's layout if needed). The operators
    /// (`&a + &b`) build the same lazily, as an [`Expr`].
    pub async fn binary(
        &self,
        op: BinaryOp,
        other: &PartitionedVector<T>,
    ) -> Result<PartitionedVector<T>> {
        Expr::from(self).binary(op, other).evaluate().await
    }

    /// `self op scalar` (or `scalar op self` with `scalar_first`), element-wise.
    pub async fn binary_scalar(
        &self,
        op: BinaryOp,
        scalar: T,
        scalar_first: bool,
    ) -> Result<PartitionedVector<T>> {
        Expr::from(self)
            .binary_scalar(op, scalar, scalar_first)
            .evaluate()
            .await
    }

    /// A function that keeps the element type (`Neg`, `Abs`, `Sign`, the
    /// roundings; NumPy wraps integers), of every element.
    pub async fn unary(&self, op: UnaryOp) -> Result<PartitionedVector<T>> {
        Expr::from(self).unary(op).evaluate().await
    }

    /// A function of every element in `T::Float` (f64 for integers, like
    /// NumPy): the float-valued ones (`Sqrt`, `Exp`, `Tan`, ...), and the
    /// others on the values as floats.
    pub async fn unary_float(&self, op: UnaryOp) -> Result<PartitionedVector<T::Float>> {
        Expr::from(self).unary_float(op).evaluate().await
    }

    /// The element-wise comparison `self op other`, as a mask of 0/1 (u8).
    pub async fn compare(
        &self,
        op: CompareOp,
        other: &PartitionedVector<T>,
    ) -> Result<PartitionedVector<u8>> {
        Expr::from(self).compare(op, other).evaluate().await
    }

    /// The element-wise comparison `self op scalar` (or `scalar op self`).
    pub async fn compare_scalar(
        &self,
        op: CompareOp,
        scalar: T,
        scalar_first: bool,
    ) -> Result<PartitionedVector<u8>> {
        Expr::from(self)
            .compare_scalar(op, scalar, scalar_first)
            .evaluate()
            .await
    }

    /// Every element converted to `U` (as Rust's `as`: integers wrap,
    /// floats saturate when converted to integers).
    pub async fn astype<U: Numeric>(&self) -> Result<PartitionedVector<U>> {
        Expr::from(self).astype::<U>().evaluate().await
    }

    /// The sum of all elements: integers accumulate in 64 bits (NumPy's
    /// rule: `u8` sums are `u64`); floats are summed exactly and rounded
    /// once, so the result is the correctly rounded sum and has the same
    /// bits for any number of localities, any layout and any chunking.
    pub async fn sum(&self) -> Result<T::Sum> {
        Expr::from(self).sum().await
    }

    /// The mean of all elements, in `T::Float` (NaN for an empty array);
    /// for floats the correctly rounded sum divided by the count, so the
    /// same bits for any layout.
    pub async fn mean(&self) -> Result<T::Float> {
        Expr::from(self).mean().await
    }

    /// The product of all elements, in the element type (1 for an empty array).
    pub async fn prod(&self) -> Result<T> {
        Ok(self.reduce(ReduceOp::Prod).await?.unwrap_or_else(T::one))
    }

    async fn arg_extreme(&self, largest: bool) -> Result<Option<usize>> {
        let partials = self
            .on_all(partition::part_arg_extreme, |_| largest)
            .await?;
        let mut best: Option<(usize, T, bool)> = None;
        for (p, found) in partials.into_iter().enumerate() {
            let Some((local, bytes)) = found else {
                continue;
            };
            let local = usize::try_from(local)
                .map_err(|_| Error::Codec("an extreme outside its partition".into()))?;
            let index = self.layout().global(p, local)?;
            let value = element_from_bytes::<T>(&bytes)?;
            #[allow(clippy::eq_op)]
            let nan = value != value;
            let better = match best {
                None => true,
                Some((at, b, b_nan)) => match (nan, b_nan) {
                    (true, true) => index < at,
                    (true, false) => true,
                    (false, true) => false,
                    _ if value == b => index < at,
                    _ if largest => value > b,
                    _ => value < b,
                },
            };
            if better {
                best = Some((index, value, nan));
            }
        }
        Ok(best.map(|(i, _, _)| i))
    }

    /// The flat index of the first largest element (the first NaN if any,
    /// as NumPy); None for an empty array.
    pub async fn argmax(&self) -> Result<Option<usize>> {
        self.arg_extreme(true).await
    }

    /// The flat index of the first smallest element (the first NaN if any).
    pub async fn argmin(&self) -> Result<Option<usize>> {
        self.arg_extreme(false).await
    }

    /// The number of elements that are not zero.
    pub async fn count_nonzero(&self) -> Result<u64> {
        Expr::from(self).count_nonzero().await
    }

    /// Whether any element is not zero.
    pub async fn any(&self) -> Result<bool> {
        Ok(self.count_nonzero().await? > 0)
    }

    /// Whether every element is not zero (true for an empty array).
    pub async fn all(&self) -> Result<bool> {
        Ok(self.count_nonzero().await? == self.len() as u64)
    }

    /// Reduces the array over `axes` (any of its axes, in any order, none
    /// twice; all of them or none allowed) with `op`, in the wide type of
    /// sums: the result is the array without those axes, row-major (one
    /// element when every axis is reduced). Each owner reduces its elements
    /// per output element and the partial results combine in partition
    /// order (for floats this is not the exact sum: the bitwise guarantee
    /// is [`sum`](Self::sum)'s). An output element without elements is the
    /// identity of `op` (sums, products, bitwise or and xor); for other
    /// operations it is an error, as NumPy's reduction of nothing.
    pub async fn reduce_axes(&self, axes: &[usize], op: ReduceOp) -> Result<Vec<T::Sum>> {
        let (slots, partials) = self.axis_partials(axes, op).await?;
        let shape = self.shape();
        let mut out: Vec<Option<T::Sum>> = vec![None; slots];
        for (slot, v) in partials.into_iter().flatten() {
            out[slot] = Some(match out[slot] {
                Some(acc) => combine(op, acc, v),
                None => v,
            });
        }
        out.into_iter()
            .enumerate()
            .map(|(slot, v)| match (v, op) {
                (Some(v), _) => Ok(v),
                (None, ReduceOp::Sum | ReduceOp::BitOr | ReduceOp::BitXor) => {
                    Ok(<T::Sum as Numeric>::zero())
                }
                (None, ReduceOp::Prod) => Ok(<T::Sum as Numeric>::one()),
                (None, _) => Err(Error::BadArgument(format!(
                    "{} over axes {axes:?} of shape {shape:?}: output element {slot} has no \
                     elements (a reduction of nothing has no identity)",
                    op.name()
                ))),
            })
            .collect()
    }

    /// Each partition's partial results of a reduction with `op` over
    /// `axes` (see [`crate::axes`]), in partition order: (output slot,
    /// partial) pairs, slots checked; and the number of slots.
    pub(crate) async fn axis_partials(
        &self,
        axes: &[usize],
        op: ReduceOp,
    ) -> Result<(usize, Vec<Vec<(usize, T::Sum)>>)> {
        let shape = self.shape();
        let fold = Fold::new(shape, axes)?;
        if !T::supports(op) {
            return Err(Error::BadArgument(format!(
                "{} is not defined for {}",
                op.name(),
                T::NAME
            )));
        }
        let slots = usize::try_from(fold.slots())
            .map_err(|_| Error::BadArgument(format!("shape {shape:?} is too large")))?;
        let layout = self.layout().clone();
        let wire: Vec<u64> = axes.iter().map(|&a| a as u64).collect();
        let partials = self
            .on_all(partition::part_fold, |p| {
                (layout.clone(), p as u64, wire.clone(), op)
            })
            .await?;
        let decoded = partials
            .into_iter()
            .map(|(keys, values)| {
                let values = hpx_runtime::element::elements_from_bytes::<T::Sum>(&values)?;
                if keys.len() != values.len() {
                    return Err(Error::Codec("axis partials of different lengths".into()));
                }
                keys.0
                    .into_iter()
                    .zip(values)
                    .map(|(k, v)| {
                        usize::try_from(k)
                            .ok()
                            .filter(|&slot| slot < slots)
                            .map(|slot| (slot, v))
                            .ok_or_else(|| Error::Codec(format!("axis partial for slot {k}")))
                    })
                    .collect()
            })
            .collect::<Result<Vec<Vec<_>>>>()?;
        Ok((slots, decoded))
    }

    /// [`reduce_axes`](Self::reduce_axes) over one axis.
    pub async fn reduce_axis(&self, axis: usize, op: ReduceOp) -> Result<Vec<T::Sum>> {
        self.reduce_axes(&[axis], op).await
    }

    /// Sums along `axis`.
    pub async fn sum_axis(&self, axis: usize) -> Result<Vec<T::Sum>> {
        self.reduce_axis(axis, ReduceOp::Sum).await
    }

    /// Means over `axes` (see [`reduce_axes`](Self::reduce_axes)), as f64.
    pub async fn mean_axes(&self, axes: &[usize]) -> Result<Vec<f64>> {
        let sums = self.reduce_axes(axes, ReduceOp::Sum).await?;
        let shape = self.shape();
        let count: usize = axes.iter().filter_map(|&a| shape.get(a)).product();
        let count = count as f64;
        Ok(sums.into_iter().map(|s| s.to_f64() / count).collect())
    }

    /// Means along `axis`, as f64.
    pub async fn mean_axis(&self, axis: usize) -> Result<Vec<f64>> {
        self.mean_axes(&[axis]).await
    }
}

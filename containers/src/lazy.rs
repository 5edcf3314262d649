//! Lazy element-wise expressions of distributed arrays: `&a * 2.0 + &b`
//! builds an [`Expr`] and runs nothing; awaiting it, or a reduction of it
//! (`(&a * 2.0 + &b).sum()`), runs the whole expression in one pass over
//! each partition on its owner (the engine of `expr.rs`), with no
//! temporary array. [`AnyExpr`] is the same with the element type known
//! at run time (what hpxpy builds).
//!
//! Types and shapes are checked as the expression is built: [`AnyExpr`]'s
//! builders return the error; [`Expr`]'s operators keep it and return it
//! from the evaluation. Operands in other layouts than the first array's
//! are redistributed to it once, when the expression runs.

use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::ops::{Add, Div, Mul, Neg, Rem, Sub};

use futures::future::join_all;
use hpx_runtime::element::element_from_bytes;
use hpx_runtime::{async_at, Error, GlobalId, PodVec, Result};

use crate::erased::AnyVector;
use crate::expr::{self, Reduction, Step, MAX_STEPS};
use crate::layout::Layout;
use crate::math::{BinaryOp, CompareOp, Numeric, UnaryOp};
use crate::ops::ArrayFuture;
use crate::partition;
use crate::vector::{remote_first, PartitionedVector};

/// An element-wise expression of distributed arrays whose element type is
/// known at run time: the dtype-erased form of [`Expr`].
///
/// Built from arrays ([`AnyExpr::of`]) by the builders below, which check
/// element types and shapes at once; nothing runs until
/// [`evaluate`](AnyExpr::evaluate) or a reduction of [`typed`](AnyExpr::typed).
#[derive(Clone)]
pub struct AnyExpr {
    leaves: Vec<AnyVector>,
    steps: Vec<Step>,
    types: Vec<&'static str>,
    shape: Vec<usize>,
}

impl fmt::Debug for AnyExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyExpr")
            .field("dtype", &self.dtype())
            .field("shape", &self.shape)
            .field("arrays", &self.leaves.len())
            .field("steps", &self.steps)
            .finish()
    }
}

impl AnyExpr {
    /// The expression whose value is the array `a`.
    pub fn of<T: Numeric>(a: &PartitionedVector<T>) -> AnyExpr {
        AnyExpr::of_any(&AnyVector::new(a.clone()))
    }

    /// The expression whose value is the array `a`.
    pub fn of_any(a: &AnyVector) -> AnyExpr {
        AnyExpr {
            leaves: vec![a.clone()],
            steps: vec![Step::Input(0)],
            types: vec![a.dtype()],
            shape: a.shape().to_vec(),
        }
    }

    /// The element type of the value (Rust's name: `f64`, `u8`, ...).
    pub fn dtype(&self) -> &'static str {
        self.types[self.types.len() - 1]
    }

    /// The shape of the value.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The layout the value will have: the first array's.
    pub fn layout(&self) -> &Layout {
        self.leaves[0].layout()
    }

    /// The number of steps (arrays read, constants and operations).
    pub fn steps(&self) -> usize {
        self.steps.len()
    }

    /// The first partition of each array the expression reads: the
    /// arrays' identities, for a caller that must run the expression
    /// before one of them changes.
    pub fn arrays(&self) -> Vec<GlobalId> {
        self.leaves
            .iter()
            .filter_map(|l| l.partition_ids().first().copied())
            .collect()
    }

    /// Whether the expression is one array, nothing computed.
    pub fn is_array(&self) -> bool {
        self.steps.len() == 1
    }

    /// `self` with `step` (whose operands are indices into the result)
    /// appended, its type checked.
    fn push(mut self, step: Step) -> Result<AnyExpr> {
        if self.steps.len() >= MAX_STEPS {
            return Err(Error::BadArgument(format!(
                "an expression of more than {MAX_STEPS} steps: evaluate a part of it first"
            )));
        }
        self.steps.push(step);
        let inputs: Vec<&'static str> = self.leaves.iter().map(|l| l.dtype()).collect();
        self.types = expr::types(&self.steps, &inputs)?;
        Ok(self)
    }

    /// Index of the value's step.
    fn root(&self) -> u32 {
        (self.steps.len() - 1) as u32
    }

    /// The steps of `self` then those of `other` (same shape), sharing the
    /// arrays both read; returns the joined steps and `other`'s root in it.
    fn join(&self, other: &AnyExpr, what: &str) -> Result<(AnyExpr, u32)> {
        if self.shape != other.shape {
            return Err(Error::BadArgument(format!(
                "{what} of arrays of shapes {:?} and {:?}",
                self.shape, other.shape
            )));
        }
        let mut out = self.clone();
        let mut leaf_of = Vec::with_capacity(other.leaves.len());
        for leaf in &other.leaves {
            let ids = leaf.partition_ids();
            let found = out
                .leaves
                .iter()
                .position(|l| l.dtype() == leaf.dtype() && l.partition_ids() == ids);
            leaf_of.push(match found {
                Some(i) => i as u32,
                None => {
                    out.leaves.push(leaf.clone());
                    (out.leaves.len() - 1) as u32
                }
            });
        }
        let base = out.steps.len() as u32;
        if out.steps.len() + other.steps.len() > MAX_STEPS {
            return Err(Error::BadArgument(format!(
                "an expression of more than {MAX_STEPS} steps: evaluate a part of it first"
            )));
        }
        for step in &other.steps {
            let at = |j: &u32| base + j;
            out.steps.push(match step {
                Step::Input(k) => Step::Input(leaf_of[*k as usize]),
                Step::Scalar(d, v) => Step::Scalar(d.clone(), v.clone()),
                Step::Unary(op, a) => Step::Unary(*op, at(a)),
                Step::Binary(op, a, b) => Step::Binary(*op, at(a), at(b)),
                Step::Compare(op, a, b) => Step::Compare(*op, at(a), at(b)),
                Step::Select(m, a, b) => Step::Select(at(m), at(a), at(b)),
                Step::Cast(a, d) => Step::Cast(at(a), d.clone()),
                Step::Spread(d, v, shape, at) => {
                    Step::Spread(d.clone(), v.clone(), shape.clone(), at.clone())
                }
            });
        }
        out.types.extend_from_slice(&other.types);
        let root = out.root();
        Ok((out, root))
    }

    /// `self` and a constant appended; returns the constant's step.
    fn with_scalar<T: Numeric>(&self, s: T) -> Result<(AnyExpr, u32)> {
        let bytes = PodVec(bytemuck::bytes_of(&s).to_vec());
        let out = self.clone().push(Step::Scalar(T::NAME.to_owned(), bytes))?;
        let root = out.root();
        Ok((out, root))
    }

    /// An expression of this one's shape and layout whose value is
    /// `values` (row-major, of `shape`) broadcast to it by NumPy's rules: a
    /// row of the last axis's length, a column (`shape` `[n, 1]`), one
    /// value. The values travel with the expression to every owner. An
    /// error if `shape` does not broadcast to this shape, or does not hold
    /// `values.len()` elements.
    pub fn broadcast_values<T: Numeric>(&self, values: &[T], shape: &[usize]) -> Result<AnyExpr> {
        let count = shape.iter().try_fold(1usize, |n, &k| n.checked_mul(k));
        if count != Some(values.len()) {
            return Err(Error::BadArgument(format!(
                "{} values for the shape {shape:?}",
                values.len()
            )));
        }
        let fits = shape.len() <= self.shape.len()
            && shape
                .iter()
                .rev()
                .zip(self.shape.iter().rev())
                .all(|(&k, &n)| k == 1 || k == n);
        if !fits {
            return Err(Error::BadArgument(format!(
                "values of shape {shape:?} do not broadcast to the shape {:?}",
                self.shape
            )));
        }
        let bytes = PodVec(bytemuck::cast_slice(values).to_vec());
        let shape = shape.iter().map(|&k| k as u64).collect();
        self.clone()
            .push(Step::Spread(T::NAME.to_owned(), bytes, shape, Vec::new()))
    }

    /// The program for partition `p` of the value's `layout`, and the
    /// layout and index its owner needs to place broadcast values (None
    /// without any). A partition that is a box of the value is sent only
    /// the box of each broadcast operand it reads.
    fn program(&self, layout: &Layout, p: usize) -> (Vec<Step>, Option<(Layout, u64)>) {
        if !self.steps.iter().any(|s| matches!(s, Step::Spread(..))) {
            return (self.steps.clone(), None);
        }
        let boxed = layout.partition_box(p);
        let steps = self
            .steps
            .iter()
            .map(|step| match (step, &boxed) {
                (Step::Spread(d, bytes, shape, at), Some((offset, extent))) if at.is_empty() => {
                    cut(d, bytes, shape, offset, extent).unwrap_or_else(|| step.clone())
                }
                _ => step.clone(),
            })
            .collect();
        (steps, Some((layout.clone(), p as u64)))
    }

    /// An expression of this one's shape and layout whose every element is
    /// `s` (the arrays it reads give only the shape and layout).
    pub fn full_like<T: Numeric>(&self, s: T) -> Result<AnyExpr> {
        Ok(self.with_scalar(s)?.0)
    }

    /// `op` of every element: `Neg`, `Abs`, `Sign` and the roundings keep
    /// the element type (NumPy wraps integers), the other functions give
    /// the type's float (`f32` stays `f32`, the others give `f64`).
    pub fn unary(&self, op: UnaryOp) -> Result<AnyExpr> {
        let a = self.root();
        self.clone().push(Step::Unary(op, a))
    }

    /// `step(self, other)` appended to both joined (same shape).
    fn pair(
        &self,
        other: &AnyExpr,
        what: &str,
        step: impl FnOnce(u32, u32) -> Step,
    ) -> Result<AnyExpr> {
        let a = self.root();
        let (joined, b) = self.join(other, what)?;
        joined.push(step(a, b))
    }

    /// `step(self, s)` (or `step(s, self)` with `scalar_first`) appended.
    fn pair_scalar<T: Numeric>(
        &self,
        s: T,
        scalar_first: bool,
        step: impl FnOnce(u32, u32) -> Step,
    ) -> Result<AnyExpr> {
        let a = self.root();
        let (out, s) = self.with_scalar(s)?;
        let (x, y) = if scalar_first { (s, a) } else { (a, s) };
        out.push(step(x, y))
    }

    /// `self op other`, element by element (same element type and shape).
    pub fn binary(&self, op: BinaryOp, other: &AnyExpr) -> Result<AnyExpr> {
        self.pair(other, op.name(), |a, b| Step::Binary(op, a, b))
    }

    /// `self op s` (or `s op self` with `scalar_first`); `T` must be the
    /// element type.
    pub fn binary_scalar<T: Numeric>(
        &self,
        op: BinaryOp,
        s: T,
        scalar_first: bool,
    ) -> Result<AnyExpr> {
        self.pair_scalar(s, scalar_first, |a, b| Step::Binary(op, a, b))
    }

    /// The comparison `self op other` as a mask of 0/1 `u8`.
    pub fn compare(&self, op: CompareOp, other: &AnyExpr) -> Result<AnyExpr> {
        self.pair(other, op.name(), |a, b| Step::Compare(op, a, b))
    }

    /// The comparison `self op s` (or `s op self`) as a mask of 0/1 `u8`.
    pub fn compare_scalar<T: Numeric>(
        &self,
        op: CompareOp,
        s: T,
        scalar_first: bool,
    ) -> Result<AnyExpr> {
        self.pair_scalar(s, scalar_first, |a, b| Step::Compare(op, a, b))
    }

    /// `mask ? a : b`, element by element (`mask` of `u8`; `a` and `b` of
    /// one element type; one shape).
    pub fn select(mask: &AnyExpr, a: &AnyExpr, b: &AnyExpr) -> Result<AnyExpr> {
        let m = mask.root();
        let (joined, x) = mask.join(a, "where")?;
        let (joined, y) = joined.join(b, "where")?;
        joined.push(Step::Select(m, x, y))
    }

    /// Every element converted to the element type named `dtype` (Rust's
    /// name; as Rust's `as`: integers wrap, floats saturate into integers).
    pub fn cast(&self, dtype: &str) -> Result<AnyExpr> {
        let a = self.root();
        self.clone()
            .push(Step::Cast(a, expr::known(dtype)?.to_owned()))
    }

    /// The typed expression (`T` must be the element type).
    pub fn typed<T: Numeric>(self) -> Result<Expr<T>> {
        if self.dtype() != T::NAME {
            return Err(Error::BadArgument(format!(
                "an expression of {} is not one of {}",
                self.dtype(),
                T::NAME
            )));
        }
        Ok(Expr::new(Ok(self)))
    }

    /// The arrays, each in the first one's layout.
    async fn aligned(&self) -> Result<Vec<AnyVector>> {
        let target = self.leaves[0].layout();
        let moves = self.leaves.iter().map(|l| l.aligned_to(target));
        join_all(moves).await.into_iter().collect()
    }

    fn explain(&self, e: Error) -> Error {
        self.leaves.iter().fold(e, |e, l| l.explain(e))
    }

    /// For each partition of the value: its owner and the partitions the
    /// expression reads there.
    async fn inputs(&self) -> Result<(Vec<AnyVector>, Vec<Vec<GlobalId>>)> {
        let leaves = self.aligned().await?;
        let ids: Vec<Vec<GlobalId>> = leaves.iter().map(|l| l.partition_ids()).collect();
        let n = leaves[0].layout().num_partitions();
        let per_part = (0..n).map(|p| ids.iter().map(|v| v[p]).collect()).collect();
        Ok((leaves, per_part))
    }

    /// Runs the expression: a new array in the first array's layout (`T`
    /// must be the element type).
    pub async fn evaluate<T: Numeric>(&self) -> Result<PartitionedVector<T>> {
        if self.dtype() != T::NAME {
            return Err(Error::BadArgument(format!(
                "an expression of {} evaluated as {}",
                self.dtype(),
                T::NAME
            )));
        }
        let (leaves, inputs) = self.inputs().await?;
        let layout = leaves[0].layout();
        let calls = remote_first(
            inputs.len(),
            |p| inputs[p][0].owner(),
            |p| {
                let (steps, place) = self.program(layout, p);
                async_at(
                    inputs[p][0].owner(),
                    partition::part_eval,
                    (inputs[p].clone(), steps, place),
                )
            },
        );
        let mut parts = Vec::with_capacity(inputs.len());
        for r in join_all(calls).await {
            parts.push(r.map_err(|e| self.explain(e))?);
        }
        PartitionedVector::assemble(T::NAME, leaves[0].layout().clone(), parts)
    }

    /// Every partition's partial reduction `r` of the value, run on the
    /// owners.
    async fn partials(&self, r: Reduction) -> Result<Vec<Option<PodVec<u8>>>> {
        // The arrays (redistributed copies among them) live until the
        // calls are done.
        let (leaves, inputs) = self.inputs().await?;
        let layout = leaves[0].layout();
        let calls = remote_first(
            inputs.len(),
            |p| inputs[p][0].owner(),
            |p| {
                let (steps, place) = self.program(layout, p);
                async_at(
                    inputs[p][0].owner(),
                    partition::part_eval_reduce,
                    (inputs[p].clone(), steps, r, place),
                )
            },
        );
        join_all(calls)
            .await
            .into_iter()
            .map(|r| r.map_err(|e| self.explain(e)))
            .collect()
    }
}

/// The box `offset`/`extent` (of the value's shape) of broadcast values of
/// element type `dtype` and shape `shape`, as a [`Step::Spread`] that
/// starts there: along an axis the values are broadcast over (1 long) all
/// of it, along the others the box's part. None if the values are not
/// what their step says (the whole values are sent then, and checked
/// where they arrive).
pub(crate) fn cut(
    dtype: &str,
    bytes: &PodVec<u8>,
    shape: &[u64],
    offset: &[usize],
    extent: &[usize],
) -> Option<Step> {
    let count = shape
        .iter()
        .try_fold(1usize, |n, &k| n.checked_mul(usize::try_from(k).ok()?))?;
    let size = bytes.0.len().checked_div(count)?;
    let ndim = offset.len();
    let pad = ndim.checked_sub(shape.len())?;
    // The values' shape with the value's rank, and the part of each axis
    // kept.
    let full: Vec<usize> = (0..ndim)
        .map(|d| if d < pad { 1 } else { shape[d - pad] as usize })
        .collect();
    let keep: Vec<(usize, usize)> = (0..ndim)
        .map(|d| {
            if full[d] == 1 {
                (0, 1)
            } else {
                (offset[d], extent[d])
            }
        })
        .collect();
    if keep.iter().zip(&full).any(|(&(at, n), &k)| at + n > k) {
        return None;
    }
    let kept: usize = keep.iter().map(|&(_, n)| n).product();
    let mut out = Vec::with_capacity(kept * size);
    if kept > 0 {
        // Row-major walk over the kept box, copying runs of the last axis.
        let inner = keep.last().map_or(1, |&(_, n)| n) * size;
        let rows: usize = keep[..ndim.saturating_sub(1)]
            .iter()
            .map(|&(_, n)| n)
            .product();
        let mut at: Vec<usize> = keep.iter().map(|&(a, _)| a).collect();
        for _ in 0..rows {
            let flat = (0..ndim).fold(0, |flat, d| flat * full[d] + at[d]);
            out.extend_from_slice(bytes.0.get(flat * size..flat * size + inner)?);
            for d in (0..ndim.saturating_sub(1)).rev() {
                at[d] += 1;
                if at[d] < keep[d].0 + keep[d].1 {
                    break;
                }
                at[d] = keep[d].0;
            }
        }
    }
    let origin = keep
        .iter()
        .zip(&full)
        .map(|(&(at, _), &k)| if k == 1 { 0 } else { at as u64 })
        .collect();
    let cut_shape = keep.iter().map(|&(_, n)| n as u64).collect();
    Some(Step::Spread(
        dtype.to_owned(),
        PodVec(out),
        cut_shape,
        origin,
    ))
}

/// An element-wise expression of distributed arrays with values of type
/// `T`, built by the operators (`&a * 2.0 + &b`) and run when it is
/// awaited (a new array) or reduced (`.sum()`, `.max()`, ...), in one pass
/// over each partition on its owner, with no temporary array.
///
/// ```no_run
/// # async fn demo() -> hpx_runtime::Result<()> {
/// use hpx_containers::{ones, Expr};
/// let a = ones::<f64>(1000).await?;
/// let b = ones::<f64>(1000).await?;
/// let total = (&a * 2.0 + &b).sum().await?; // one pass, nothing stored
/// let c = (&a * 2.0 + &b).await?; // a new array
/// let norm = (Expr::from(&a) * &a + &b).sqrt().max().await?;
/// # let _ = (total, c, norm); Ok(()) }
/// ```
///
/// An error found while building (different shapes, say) is returned by
/// the evaluation.
pub struct Expr<T> {
    inner: std::result::Result<AnyExpr, String>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Expr<T> {
    fn clone(&self) -> Self {
        Expr {
            inner: self.inner.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Expr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Ok(e) => e.fmt(f),
            Err(e) => f.debug_tuple("Expr").field(e).finish(),
        }
    }
}

impl<T: Numeric> From<&PartitionedVector<T>> for Expr<T> {
    fn from(a: &PartitionedVector<T>) -> Expr<T> {
        Expr::new(Ok(AnyExpr::of(a)))
    }
}

impl<T: Numeric> From<PartitionedVector<T>> for Expr<T> {
    fn from(a: PartitionedVector<T>) -> Expr<T> {
        Expr::from(&a)
    }
}

impl<T: Numeric> Expr<T> {
    fn new(inner: Result<AnyExpr>) -> Expr<T> {
        Expr {
            inner: inner.map_err(|e| match e {
                Error::BadArgument(m) => m,
                other => other.to_string(),
            }),
            _type: PhantomData,
        }
    }

    /// The dtype-erased expression, or the error found while building.
    pub fn into_any(self) -> Result<AnyExpr> {
        self.inner.map_err(Error::BadArgument)
    }

    fn any(&self) -> Result<&AnyExpr> {
        self.inner
            .as_ref()
            .map_err(|e| Error::BadArgument(e.clone()))
    }

    fn then<U: Numeric>(self, f: impl FnOnce(AnyExpr) -> Result<AnyExpr>) -> Expr<U> {
        Expr::new(self.into_any().and_then(f))
    }

    /// `self op other`, element by element.
    pub fn binary(self, op: BinaryOp, other: impl Into<Expr<T>>) -> Expr<T> {
        let other = other.into();
        self.then(|a| a.binary(op, other.any()?))
    }

    /// `self op s` (or `s op self` with `scalar_first`).
    pub fn binary_scalar(self, op: BinaryOp, s: T, scalar_first: bool) -> Expr<T> {
        self.then(|a| a.binary_scalar(op, s, scalar_first))
    }

    /// A function that keeps the element type (`Neg`, `Abs`, `Sign`,
    /// `Floor`, `Ceil`, `Trunc`, `Rint`; NumPy wraps integers, roundings
    /// keep them); a float-valued function is an error: use
    /// [`unary_float`](Self::unary_float).
    pub fn unary(self, op: UnaryOp) -> Expr<T> {
        self.then(|a| {
            if op.is_float_valued() {
                return Err(Error::BadArgument(format!(
                    "{} gives floats: use unary_float",
                    op.name()
                )));
            }
            a.unary(op)
        })
    }

    /// A function of every element in `T::Float` (f64 for integers, like
    /// NumPy): the float-valued ones (`Sqrt`, `Exp`, `Log`, `Sin`, `Tan`,
    /// `Arctanh`, ... see [`UnaryOp`]), and the others on the values as
    /// floats.
    pub fn unary_float(self, op: UnaryOp) -> Expr<T::Float> {
        self.then(|a| {
            if op.is_float_valued() {
                a.unary(op)
            } else {
                a.cast(<T::Float as hpx_runtime::element::Element>::NAME)?
                    .unary(op)
            }
        })
    }

    /// An expression of this one's shape and layout whose value is
    /// `values` (row-major, of `shape`) broadcast to it by NumPy's rules
    /// (see [`AnyExpr::broadcast_values`]): `&m - Expr::from(&m)
    /// .broadcast_values(&column_means, &[cols])` centres the columns of a
    /// matrix.
    pub fn broadcast_values(self, values: &[T], shape: &[usize]) -> Expr<T> {
        self.then(|a| a.broadcast_values(values, shape))
    }

    /// The square root of every element (NaN for negative numbers).
    pub fn sqrt(self) -> Expr<T::Float> {
        self.unary_float(UnaryOp::Sqrt)
    }

    /// `|x|` of every element.
    pub fn abs(self) -> Expr<T> {
        self.unary(UnaryOp::Abs)
    }

    /// The comparison `self op other` as a mask of 0/1 (`u8`).
    pub fn compare(self, op: CompareOp, other: impl Into<Expr<T>>) -> Expr<u8> {
        let other = other.into();
        self.then(|a| a.compare(op, other.any()?))
    }

    /// The comparison `self op s` (or `s op self`) as a mask of 0/1.
    pub fn compare_scalar(self, op: CompareOp, s: T, scalar_first: bool) -> Expr<u8> {
        self.then(|a| a.compare_scalar(op, s, scalar_first))
    }

    /// Every element converted to `U` (as Rust's `as`).
    pub fn astype<U: Numeric>(self) -> Expr<U> {
        self.then(|a| a.cast(U::NAME))
    }

    /// Runs the expression into a new array (the first array's layout).
    pub async fn evaluate(&self) -> Result<PartitionedVector<T>> {
        self.any()?.evaluate::<T>().await
    }

    async fn reduce(&self, r: Reduction) -> Result<Option<Vec<u8>>> {
        let partials = self.any()?.partials(r).await?;
        expr::merge_partials::<T>(r, &partials)
    }

    /// The sum of the values: integers in `T::Sum` (NumPy's rule), floats
    /// exactly, rounded once: the same bits for any layout and any number
    /// of localities.
    pub async fn sum(&self) -> Result<T::Sum> {
        let bytes = self.reduce(Reduction::Sum).await?.unwrap_or_default();
        element_from_bytes::<T::Sum>(&bytes)
    }

    /// The mean of the values in `T::Float` (NaN when there are none); for
    /// floats the exact sum over the count, rounded once to f64.
    pub async fn mean(&self) -> Result<T::Float> {
        let any = self.any()?;
        let n: usize = any.shape().iter().product();
        let partials = any.partials(Reduction::Sum).await?;
        let total = if T::IS_FLOAT {
            expr::exact_total(&partials)?.to_f64()
        } else {
            // In 128 bits, which does not wrap for any realistic array.
            expr::int_total(&partials)? as f64
        };
        Ok(<T::Float as Numeric>::from_f64(total / n as f64))
    }

    /// The smallest value, NaN if any is NaN (NumPy's `min`); None when
    /// there are no values.
    pub async fn min(&self) -> Result<Option<T>> {
        self.reduce(Reduction::Min)
            .await?
            .map(|b| element_from_bytes::<T>(&b))
            .transpose()
    }

    /// The largest value, NaN if any is NaN (NumPy's `max`); None when
    /// there are no values.
    pub async fn max(&self) -> Result<Option<T>> {
        self.reduce(Reduction::Max)
            .await?
            .map(|b| element_from_bytes::<T>(&b))
            .transpose()
    }

    /// The number of values that are not zero (NaN counts).
    pub async fn count_nonzero(&self) -> Result<u64> {
        let bytes = self
            .reduce(Reduction::CountNonzero)
            .await?
            .unwrap_or_default();
        element_from_bytes::<u64>(&bytes)
    }
}

impl<T: Numeric> IntoFuture for Expr<T> {
    type Output = Result<PartitionedVector<T>>;
    type IntoFuture = ArrayFuture<T>;

    fn into_future(self) -> ArrayFuture<T> {
        Box::pin(async move { self.evaluate().await })
    }
}

/// `mask ? a : b`, element by element (one shape; `b` and `mask` are
/// redistributed to `a`'s layout if needed when it runs).
pub fn select<T: Numeric>(
    mask: impl Into<Expr<u8>>,
    a: impl Into<Expr<T>>,
    b: impl Into<Expr<T>>,
) -> Expr<T> {
    let (mask, a, b) = (mask.into(), a.into(), b.into());
    Expr::new((|| AnyExpr::select(mask.any()?, a.any()?, b.any()?))())
}

macro_rules! operators {
    ($($trait:ident $method:ident $op:ident),*) => {$(
        impl<T: Numeric> $trait<Expr<T>> for Expr<T> {
            type Output = Expr<T>;
            fn $method(self, other: Expr<T>) -> Expr<T> {
                self.binary(BinaryOp::$op, other)
            }
        }

        impl<T: Numeric> $trait<&PartitionedVector<T>> for Expr<T> {
            type Output = Expr<T>;
            fn $method(self, other: &PartitionedVector<T>) -> Expr<T> {
                self.binary(BinaryOp::$op, other)
            }
        }

        impl<T: Numeric> $trait<T> for Expr<T> {
            type Output = Expr<T>;
            fn $method(self, s: T) -> Expr<T> {
                self.binary_scalar(BinaryOp::$op, s, false)
            }
        }

        impl<T: Numeric> $trait<Expr<T>> for &PartitionedVector<T> {
            type Output = Expr<T>;
            fn $method(self, other: Expr<T>) -> Expr<T> {
                Expr::from(self).binary(BinaryOp::$op, other)
            }
        }

        impl<T: Numeric> $trait<&PartitionedVector<T>> for &PartitionedVector<T> {
            type Output = Expr<T>;
            fn $method(self, other: &PartitionedVector<T>) -> Expr<T> {
                Expr::from(self).binary(BinaryOp::$op, other)
            }
        }

        impl<T: Numeric> $trait<T> for &PartitionedVector<T> {
            type Output = Expr<T>;
            fn $method(self, s: T) -> Expr<T> {
                Expr::from(self).binary_scalar(BinaryOp::$op, s, false)
            }
        }
    )*};
}

operators!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div, Rem rem Rem);

/// `s op array` for a constant on the left (`1.0 - &a`), for each element
/// type.
macro_rules! scalar_first {
    ($($t:ty),*) => {$(
        scalar_first!(@ops $t: Add add Add, Sub sub Sub, Mul mul Mul, Div div Div, Rem rem Rem);
    )*};
    (@ops $t:ty: $($trait:ident $method:ident $op:ident),*) => {$(
        impl $trait<Expr<$t>> for $t {
            type Output = Expr<$t>;
            fn $method(self, e: Expr<$t>) -> Expr<$t> {
                e.binary_scalar(BinaryOp::$op, self, true)
            }
        }

        impl $trait<&PartitionedVector<$t>> for $t {
            type Output = Expr<$t>;
            fn $method(self, a: &PartitionedVector<$t>) -> Expr<$t> {
                Expr::from(a).binary_scalar(BinaryOp::$op, self, true)
            }
        }
    )*};
}

scalar_first!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

impl<T: Numeric> Neg for Expr<T> {
    type Output = Expr<T>;
    fn neg(self) -> Expr<T> {
        self.unary(UnaryOp::Neg)
    }
}

impl<T: Numeric> Neg for &PartitionedVector<T> {
    type Output = Expr<T>;
    fn neg(self) -> Expr<T> {
        Expr::from(self).unary(UnaryOp::Neg)
    }
}

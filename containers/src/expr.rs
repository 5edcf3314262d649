//! The element-wise engine: one program per expression, run on a partition
//! in one pass.
//!
//! A [`Step`] list is an expression over the partitions of some arrays
//! (`a * 2.0 + b` is `Input(0)`, `Scalar(2.0)`, `Binary(Mul, 0, 1)`,
//! `Input(1)`, `Binary(Add, 2, 3)`): each step refers to earlier ones, the
//! last is the value. A [`Plan`] checks the steps against the input
//! partitions (element types, references, lengths: the steps arrive from
//! the network) and runs them over chunks that fit the core's L2 cache: each
//! step's chunk lives in a register that stays in cache, inputs are read
//! in place, and the last step writes straight into the new partition or
//! feeds a reduction. No temporary array is made, whatever the expression.
//!
//! The kernels are `math.rs`'s, so a fused expression computes exactly what
//! the same operations one by one would (the same bits).

use std::ops::Range;

use hpx_runtime::element::{element_from_bytes, Element};
use hpx_runtime::{Error, PodVec, Result};
use serde::{Deserialize, Serialize};

use crate::data::{self, by_dtype, ErasedVec};
use crate::exact::ExactSum;
use crate::layout::Layout;
use crate::math::{self, BinaryOp, CompareOp, Numeric, UnaryOp};

/// Bytes of registers a run aims for: the registers of a chunk stay in
/// the core's L2 cache. Measured on this project's machine (10^7 `f64`,
/// `(a * 2 + b)` reduced): chunks of 1024 elements took 20 ms, of 16384
/// 15.8 ms, of 65536 14.2 ms, of 262144 (past L2) 17 ms.
const REGISTER_BYTES: usize = 1 << 20;

/// The fewest and the most elements per chunk.
const CHUNK_MIN: usize = 1024;
const CHUNK_MAX: usize = 1 << 16;

/// Steps a program may have (it may arrive from another process).
pub(crate) const MAX_STEPS: usize = 256;

/// Elements from which a partition's work is split over the worker threads
/// of its locality (each piece is a run of whole chunks; reductions merge
/// exactly or in an order-free way, so the split changes no bit).
const PARALLEL: usize = 1 << 20;

/// The element types, by name.
const DTYPES: [&str; 14] = [
    "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize", "f32",
    "f64",
];

/// One step of an expression; operands are indices of earlier steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Step {
    /// The input partition of this index.
    Input(u32),
    /// A constant of the named element type, as raw bytes.
    Scalar(String, PodVec<u8>),
    /// A function of one operand (`Neg`, `Abs`, `Sign` and the roundings
    /// keep the type; the others give the type's float).
    Unary(UnaryOp, u32),
    /// Two operands of one type.
    Binary(BinaryOp, u32, u32),
    /// A comparison of two operands of one type: a mask of 0/1 `u8`.
    Compare(CompareOp, u32, u32),
    /// `mask ? a : b` (the mask is `u8`; `a` and `b` of one type).
    Select(u32, u32, u32),
    /// The operand converted to the named type (Rust's `as`).
    Cast(u32, String),
    /// Values of the named type and shape, given with the program and
    /// broadcast over the value's shape by NumPy's rules (a row of a
    /// matrix's width, a column, one value): each element reads the value
    /// at its own position. The last field, empty or one index per axis of
    /// the value, is where the values start along each axis they are not
    /// broadcast over: a partition is sent only the box of values it reads.
    Spread(String, PodVec<u8>, Vec<u64>, Vec<u64>),
}

/// A reduction that ends a program instead of a new partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Reduction {
    /// The sum: exact for floats, 128-bit wrapping for integers.
    Sum,
    /// The smallest value (NaN if any value is NaN, as NumPy's `min`).
    Min,
    /// The largest value (NaN if any value is NaN, as NumPy's `max`).
    Max,
    /// The number of values that are not zero (NaN counts).
    CountNonzero,
}

/// The element type named `name`, as a static name.
pub(crate) fn known(name: &str) -> Result<&'static str> {
    DTYPES
        .iter()
        .find(|&&d| d == name)
        .copied()
        .ok_or_else(|| Error::BadArgument(format!("no element type {name:?}")))
}

fn float_name<T: Numeric>() -> Result<&'static str> {
    Ok(<T::Float as Element>::NAME)
}

fn size_of_type<T: Numeric>() -> Result<usize> {
    Ok(std::mem::size_of::<T>())
}

/// Bytes of one element of the type named `name`.
fn size_of(name: &str) -> Result<usize> {
    by_dtype!(name, size_of_type)
}

/// The element type of each step of `steps`, given the element types of
/// the inputs; an error names the first step that is not well formed.
pub(crate) fn types(steps: &[Step], inputs: &[&'static str]) -> Result<Vec<&'static str>> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(Error::BadArgument(format!(
            "an expression of {} steps (1 to {MAX_STEPS})",
            steps.len()
        )));
    }
    let mut out: Vec<&'static str> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let at = |j: &u32| {
            out.get(*j as usize).copied().ok_or_else(|| {
                Error::BadArgument(format!("step {i} refers to step {j}, not an earlier one"))
            })
        };
        let same = |a: &u32, b: &u32, what: &str| -> Result<&'static str> {
            let (x, y) = (at(a)?, at(b)?);
            if x == y {
                Ok(x)
            } else {
                Err(Error::BadArgument(format!(
                    "{what} of {x} with {y}: convert one with astype first"
                )))
            }
        };
        let t = match step {
            Step::Input(k) => inputs.get(*k as usize).copied().ok_or_else(|| {
                Error::BadArgument(format!("step {i} reads input {k} of {}", inputs.len()))
            })?,
            Step::Scalar(d, bytes) => {
                let d = known(d)?;
                if bytes.0.len() != size_of(d)? {
                    return Err(Error::BadArgument(format!(
                        "a {d} constant of {} bytes",
                        bytes.0.len()
                    )));
                }
                d
            }
            Step::Unary(op, a) if op.is_float_valued() => by_dtype!(at(a)?, float_name)?,
            Step::Unary(_, a) => at(a)?,
            Step::Binary(op, a, b) => {
                let t = same(a, b, op.name())?;
                if op.is_float_only() && !matches!(t, "f32" | "f64") {
                    return Err(Error::BadArgument(format!(
                        "{} of {t}: convert to a floating-point type first",
                        op.name()
                    )));
                }
                t
            }
            Step::Compare(op, a, b) => {
                same(a, b, op.name())?;
                "u8"
            }
            Step::Select(m, a, b) => {
                let mask = at(m)?;
                if mask != "u8" {
                    return Err(Error::BadArgument(format!(
                        "where with a mask of {mask} (masks are u8)"
                    )));
                }
                same(a, b, "where")?
            }
            Step::Cast(a, d) => {
                at(a)?;
                known(d)?
            }
            Step::Spread(d, bytes, shape, _) => {
                let d = known(d)?;
                let count = shape
                    .iter()
                    .try_fold(1u64, |n, &k| n.checked_mul(k))
                    .and_then(|n| usize::try_from(n).ok())
                    .and_then(|n| n.checked_mul(size_of(d).ok()?));
                if count != Some(bytes.0.len()) {
                    return Err(Error::BadArgument(format!(
                        "{} bytes of {d} values for the shape {shape:?}",
                        bytes.0.len()
                    )));
                }
                d
            }
        };
        out.push(t);
    }
    Ok(out)
}

/// An operand's chunk: the elements, or one value for all of them.
enum Opd<'a, T> {
    Slice(&'a [T]),
    Scalar(T),
}

impl<T: Numeric> Opd<'_, T> {
    /// The `n` values as a slice (a constant is repeated).
    fn expand(&self, n: usize) -> std::borrow::Cow<'_, [T]> {
        match self {
            Opd::Slice(x) => std::borrow::Cow::Borrowed(x),
            Opd::Scalar(s) => std::borrow::Cow::Owned(vec![*s; n]),
        }
    }
}

fn typed<T: Numeric>(bytes: &[u8]) -> Result<&[T]> {
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| Error::BadArgument(format!("{} elements from bytes: {e}", T::NAME)))
}

fn typed_mut<T: Numeric>(bytes: &mut [u8]) -> Result<&mut [T]> {
    bytemuck::try_cast_slice_mut(bytes)
        .map_err(|e| Error::BadArgument(format!("{} elements from bytes: {e}", T::NAME)))
}

/// A checked program over its input partitions (all of one length).
pub(crate) struct Plan<'a> {
    steps: &'a [Step],
    types: Vec<&'static str>,
    inputs: Vec<&'a dyn ErasedVec>,
    len: usize,
    /// Elements per chunk (see [`REGISTER_BYTES`]).
    chunk: usize,
    /// The layout of the value and the partition computed, for the
    /// positions of its elements (only programs with a [`Step::Spread`]).
    place: Option<(&'a Layout, usize)>,
    /// Each [`Step::Spread`]'s values and strides (by step).
    spreads: Vec<Option<Spread>>,
}

/// A [`Step::Spread`] ready to read: its values on an aligned buffer, and
/// per axis of the value's shape the step between its values (0 along an
/// axis it is broadcast over).
struct Spread {
    values: Vec<Line>,
    count: usize,
    strides: Vec<usize>,
    origin: Vec<usize>,
}

impl Spread {
    /// `shape` broadcast to `to` (NumPy's rules), starting at `origin`
    /// (empty: at 0) along the axes it is not broadcast over, or an error.
    fn new(bytes: &[u8], shape: &[u64], origin: &[u64], to: &[usize]) -> Result<Spread> {
        let bad = || {
            Error::BadArgument(format!(
                "values of shape {shape:?} at {origin:?} do not broadcast to the shape {to:?}"
            ))
        };
        if shape.len() > to.len() || !(origin.is_empty() || origin.len() == to.len()) {
            return Err(bad());
        }
        let pad = to.len() - shape.len();
        let mut strides = vec![0; to.len()];
        let mut start = vec![0; to.len()];
        let mut step = 1usize;
        for d in (0..to.len()).rev() {
            let k = if d >= pad {
                usize::try_from(shape[d - pad]).map_err(|_| bad())?
            } else {
                1
            };
            let at = match origin.get(d) {
                Some(&o) => usize::try_from(o).map_err(|_| bad())?,
                None => 0,
            };
            // Along an axis it is not broadcast over, the values cover
            // `at..at + k` of the value's extent.
            let broadcast = k == 1 && at == 0 && to[d] != 1;
            let fits = if origin.is_empty() {
                k == 1 || k == to[d]
            } else {
                broadcast || at.checked_add(k).is_some_and(|end| end <= to[d])
            };
            if !fits {
                return Err(bad());
            }
            if !broadcast {
                strides[d] = step;
                start[d] = at;
                step = step.checked_mul(k).ok_or_else(bad)?;
            }
        }
        let mut values = vec![Line([0; 64]); bytes.len().div_ceil(64)];
        bytemuck::cast_slice_mut::<Line, u8>(&mut values)[..bytes.len()].copy_from_slice(bytes);
        Ok(Spread {
            values,
            count: step,
            strides,
            origin: start,
        })
    }
}

/// A cache line of a register: registers start on a line, so that the
/// kernels' vector stores (64 bytes with AVX-512) never straddle two.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

// SAFETY: 64 bytes with no padding (the alignment equals the size); every
// bit pattern is a valid `[u8; 64]`, and all zeros too.
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above; `Line` is `Copy` and `'static`.
unsafe impl bytemuck::Pod for Line {}

/// The registers of one run: a chunk of each computed step.
struct Frame<'p, 'a> {
    plan: &'p Plan<'a>,
    regs: Vec<Vec<Line>>,
}

impl<'a> Plan<'a> {
    /// Checks `steps` against `inputs`, computed as partition `place.1` of
    /// the layout `place.0` (which programs with a [`Step::Spread`] need).
    pub(crate) fn new(
        steps: &'a [Step],
        inputs: Vec<&'a dyn ErasedVec>,
        place: Option<(&'a Layout, usize)>,
    ) -> Result<Plan<'a>> {
        let names: Vec<&'static str> = inputs.iter().map(|i| i.dtype()).collect();
        let types = types(steps, &names)?;
        let len = inputs
            .first()
            .map(|i| i.len())
            .ok_or_else(|| Error::BadArgument("an expression without an array operand".into()))?;
        if let Some(other) = inputs.iter().find(|i| i.len() != len) {
            return Err(Error::BadArgument(format!(
                "expression operands of {len} and {} elements",
                other.len()
            )));
        }
        let mut per_element = 0;
        for (step, t) in steps.iter().zip(&types) {
            if !matches!(step, Step::Input(_) | Step::Scalar(..)) {
                per_element += size_of(t)?;
            }
        }
        let chunk = (REGISTER_BYTES / per_element.max(1)).clamp(CHUNK_MIN, CHUNK_MAX) / CHUNK_MIN
            * CHUNK_MIN;
        let mut spreads = Vec::with_capacity(steps.len());
        for step in steps {
            spreads.push(match step {
                Step::Spread(_, bytes, shape, origin) => {
                    let (layout, p) = place.ok_or_else(|| {
                        Error::BadArgument("broadcast values without the value's layout".into())
                    })?;
                    if layout.partition_sizes().get(p) != Some(&len) {
                        return Err(Error::BadArgument(format!(
                            "partition {p} of the layout does not hold {len} elements"
                        )));
                    }
                    Some(Spread::new(&bytes.0, shape, origin, layout.shape())?)
                }
                _ => None,
            });
        }
        Ok(Plan {
            steps,
            types,
            inputs,
            len,
            chunk,
            place,
            spreads,
        })
    }

    fn last(&self) -> usize {
        self.steps.len() - 1
    }

    /// The element type of the value.
    pub(crate) fn result_type(&self) -> &'static str {
        self.types[self.last()]
    }

    /// A new partition holding the value at every element.
    pub(crate) fn evaluate(&self) -> Result<Box<dyn ErasedVec>> {
        let mut out = data::zeros(self.result_type(), self.len)?;
        let size = size_of(self.result_type())?;
        let pieces = self.pieces();
        let mut outs = Vec::with_capacity(pieces.len());
        let mut rest = out.bytes_mut();
        for r in &pieces {
            let (piece, after) = rest.split_at_mut(r.len() * size);
            outs.push(piece);
            rest = after;
        }
        let work: Vec<_> = pieces.into_iter().zip(outs).collect();
        parallel(work, |(range, out)| {
            self.run(range, Some(out), |_, _| Ok(()))
        })?;
        Ok(out)
    }

    /// The partial reduction of the value (see [`Acc::finish`]).
    pub(crate) fn reduce(&self, r: Reduction) -> Result<Option<Vec<u8>>> {
        by_dtype!(self.result_type(), reduce_typed, self, r)
    }

    /// The ranges the work is split into, one per worker thread.
    fn pieces(&self) -> Vec<Range<usize>> {
        let threads = worker_threads();
        if threads == 1 || self.len < PARALLEL {
            return std::iter::once(0..self.len).collect();
        }
        let per = self.len.div_ceil(threads).div_ceil(self.chunk) * self.chunk;
        (0..self.len)
            .step_by(per)
            .map(|s| s..(s + per).min(self.len))
            .collect()
    }

    /// Runs the steps over `range`, chunk by chunk: the value goes into
    /// `store` (the bytes of `range` of the output) or, chunk by chunk, to
    /// `feed`.
    fn run(
        &self,
        range: Range<usize>,
        mut store: Option<&mut [u8]>,
        mut feed: impl FnMut(&Frame<'_, 'a>, Range<usize>) -> Result<()>,
    ) -> Result<()> {
        let last = self.last();
        let stored = store.is_some();
        let regs = (0..self.steps.len())
            .map(|i| {
                let leaf = matches!(self.steps[i], Step::Input(_) | Step::Scalar(..));
                if leaf || (stored && i == last) {
                    Ok(Vec::new())
                } else {
                    let bytes = self.chunk * size_of(self.types[i])?;
                    Ok(vec![Line([0; 64]); bytes.div_ceil(64)])
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let mut frame = Frame { plan: self, regs };
        let mut start = range.start;
        while start < range.end {
            let end = (start + self.chunk).min(range.end);
            for i in 0..=last {
                let leaf = matches!(self.steps[i], Step::Input(_) | Step::Scalar(..));
                let into_store = stored && i == last;
                if leaf && !into_store {
                    continue;
                }
                let size = size_of(self.types[i])?;
                let mut reg = std::mem::take(&mut frame.regs[i]);
                let out: &mut [u8] = match store.as_deref_mut() {
                    Some(s) if into_store => s
                        .get_mut((start - range.start) * size..(end - range.start) * size)
                        .ok_or_else(|| {
                            Error::BadArgument("output shorter than its range".into())
                        })?,
                    _ => bytemuck::cast_slice_mut::<Line, u8>(&mut reg)
                        .get_mut(..(end - start) * size)
                        .ok_or_else(|| Error::BadArgument("a register too short".into()))?,
                };
                let result = if leaf {
                    frame.copy_leaf(i, start..end, out)
                } else {
                    by_dtype!(self.operand_type(i), dispatch, &frame, i, start..end, out)
                };
                frame.regs[i] = reg;
                result?;
            }
            if !stored {
                feed(&frame, start..end)?;
            }
            start = end;
        }
        Ok(())
    }

    /// The element type of step `i`'s first operand (the one its kernel is
    /// chosen by).
    fn operand_type(&self, i: usize) -> &'static str {
        let first = match &self.steps[i] {
            Step::Unary(_, a)
            | Step::Binary(_, a, _)
            | Step::Compare(_, a, _)
            | Step::Select(_, a, _)
            | Step::Cast(a, _) => *a as usize,
            Step::Input(_) | Step::Scalar(..) | Step::Spread(..) => i,
        };
        self.types[first]
    }
}

impl Frame<'_, '_> {
    /// The broadcast values of step `i` at the elements `r` of the
    /// partition into `out`: run by run of consecutive elements, the
    /// position in the values follows the element's position in the value.
    fn spread<T: Numeric>(&self, i: usize, r: Range<usize>, out: &mut [T]) -> Result<()> {
        let missing = || Error::BadArgument(format!("step {i} has no broadcast values"));
        let spread = self
            .plan
            .spreads
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(missing)?;
        let (layout, p) = self.plan.place.ok_or_else(missing)?;
        let bytes: &[u8] = bytemuck::cast_slice(&spread.values);
        let values: &[T] = typed(
            bytes
                .get(..spread.count * std::mem::size_of::<T>())
                .ok_or_else(missing)?,
        )?;
        let shape = layout.shape();
        let strides = &spread.strides;
        let mut at = vec![0usize; shape.len()];
        let (mut local, mut o) = (r.start, 0);
        while local < r.end {
            let global = layout.global(p, local)?;
            let (_, run) = layout.locate_run(global)?;
            let n = run.min(r.end - local);
            // The element's position, and where the values hold it.
            let outside = || Error::BadArgument(format!("element {global} is outside the values"));
            let mut rest = global;
            let mut index = 0usize;
            for d in (0..shape.len()).rev() {
                at[d] = rest % shape[d].max(1);
                rest /= shape[d].max(1);
                let from = at[d].checked_sub(spread.origin[d]).ok_or_else(outside)?;
                index += from * strides[d];
            }
            // Along the last axis, a segment at a time: a copy of the
            // values (a row), or one value repeated (a column).
            let last = shape.len() - 1;
            let mut done = 0;
            while done < n {
                let seg = (shape[last] - at[last]).min(n - done);
                let into = &mut out[o + done..o + done + seg];
                match strides[last] {
                    0 => into.fill(*values.get(index).ok_or_else(outside)?),
                    1 => into.copy_from_slice(values.get(index..index + seg).ok_or_else(outside)?),
                    step => {
                        for (k, slot) in into.iter_mut().enumerate() {
                            *slot = *values.get(index + k * step).ok_or_else(outside)?;
                        }
                    }
                }
                done += seg;
                at[last] += seg;
                index = index.wrapping_add(seg.wrapping_mul(strides[last]));
                // The next position, carrying into the axes before the last
                // (wrapping: a run stays inside the values' box, and the
                // position after its last element is not read).
                let mut d = last;
                while at[d] == shape[d] && d > 0 {
                    index = index.wrapping_sub(strides[d].wrapping_mul(at[d]));
                    at[d] = 0;
                    d -= 1;
                    at[d] += 1;
                    index = index.wrapping_add(strides[d]);
                }
            }
            local += n;
            o += n;
        }
        Ok(())
    }

    /// Step `j`'s values over `r` as `T` (its type, checked by the plan).
    fn operand<T: Numeric>(&self, j: u32, r: &Range<usize>) -> Result<Opd<'_, T>> {
        let j = j as usize;
        match self.plan.steps.get(j) {
            Some(Step::Input(k)) => {
                let input = self
                    .plan
                    .inputs
                    .get(*k as usize)
                    .ok_or_else(|| Error::BadArgument(format!("no input {k}")))?;
                Ok(Opd::Slice(typed(input.bytes(r.start, r.end)?)?))
            }
            Some(Step::Scalar(_, bytes)) => Ok(Opd::Scalar(element_from_bytes::<T>(bytes)?)),
            Some(_) => {
                let bytes: &[u8] = bytemuck::cast_slice(&self.regs[j]);
                let n = r.len() * std::mem::size_of::<T>();
                let bytes = bytes
                    .get(..n)
                    .ok_or_else(|| Error::BadArgument(format!("step {j} has no register")))?;
                Ok(Opd::Slice(typed(bytes)?))
            }
            None => Err(Error::BadArgument(format!("no step {j}"))),
        }
    }

    /// Copies the input or constant of step `i` over `r` into `out`.
    fn copy_leaf(&self, i: usize, r: Range<usize>, out: &mut [u8]) -> Result<()> {
        match &self.plan.steps[i] {
            Step::Input(k) => {
                let input = self
                    .plan
                    .inputs
                    .get(*k as usize)
                    .ok_or_else(|| Error::BadArgument(format!("no input {k}")))?;
                out.copy_from_slice(input.bytes(r.start, r.end)?);
            }
            Step::Scalar(_, bytes) => {
                for o in out.chunks_exact_mut(bytes.0.len().max(1)) {
                    o.copy_from_slice(&bytes.0);
                }
            }
            _ => return Err(Error::BadArgument(format!("step {i} is not a leaf"))),
        }
        Ok(())
    }
}

/// [`compute`] compiled for the widest vector instructions this CPU has
/// (the kernels are plain loops: the same results, more lanes at a time).
fn dispatch<T: Numeric>(
    f: &Frame<'_, '_>,
    i: usize,
    r: Range<usize>,
    out: &mut [u8],
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            // SAFETY: the CPU has these features, checked just above.
            return unsafe { compute_avx512::<T>(f, i, r, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { compute_avx2::<T>(f, i, r, out) };
        }
    }
    compute::<T>(f, i, r, out)
}

/// [`compute`] compiled with the target features `$features`: the same
/// plain loops, more lanes at a time.
macro_rules! compute_with {
    ($name:ident, $features:literal) => {
        #[doc = concat!("[`compute`] with ", $features, ".")]
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name<T: Numeric>(
            f: &Frame<'_, '_>,
            i: usize,
            r: Range<usize>,
            out: &mut [u8],
        ) -> Result<()> {
            compute::<T>(f, i, r, out)
        }
    };
}

compute_with!(compute_avx512, "avx512f,avx512bw,avx512vl,avx512dq,avx2");
compute_with!(compute_avx2, "avx2");

/// Computes step `i` over `r` into `out`; `T` is its first operand's type.
#[inline(always)]
fn compute<T: Numeric>(f: &Frame<'_, '_>, i: usize, r: Range<usize>, out: &mut [u8]) -> Result<()> {
    let n = r.len();
    match &f.plan.steps[i] {
        Step::Unary(op, a) => {
            let a = f.operand::<T>(*a, &r)?;
            let a = a.expand(n);
            if op.is_float_valued() {
                math::unary_float(*op, &a, typed_mut::<T::Float>(out)?)
            } else {
                math::unary(*op, &a, typed_mut::<T>(out)?)
            }
        }
        Step::Binary(op, a, b) => {
            let out = typed_mut::<T>(out)?;
            match (f.operand::<T>(*a, &r)?, f.operand::<T>(*b, &r)?) {
                (Opd::Slice(x), Opd::Slice(y)) => math::binary(*op, x, y, out),
                (Opd::Slice(x), Opd::Scalar(s)) => math::binary_scalar(*op, x, s, false, out),
                (Opd::Scalar(s), Opd::Slice(y)) => math::binary_scalar(*op, y, s, true, out),
                (x, Opd::Scalar(s)) => math::binary_scalar(*op, &x.expand(n), s, false, out),
            }
        }
        Step::Compare(op, a, b) => {
            let out = typed_mut::<u8>(out)?;
            match (f.operand::<T>(*a, &r)?, f.operand::<T>(*b, &r)?) {
                (Opd::Slice(x), Opd::Slice(y)) => math::compare(*op, x, y, out),
                (Opd::Slice(x), Opd::Scalar(s)) => math::compare_scalar(*op, x, s, false, out),
                (Opd::Scalar(s), Opd::Slice(y)) => math::compare_scalar(*op, y, s, true, out),
                (x, Opd::Scalar(s)) => math::compare_scalar(*op, &x.expand(n), s, false, out),
            }
        }
        Step::Select(m, a, b) => {
            let mask = f.operand::<u8>(*m, &r)?;
            let (a, b) = (f.operand::<T>(*a, &r)?, f.operand::<T>(*b, &r)?);
            math::select(
                &mask.expand(n),
                &a.expand(n),
                &b.expand(n),
                typed_mut::<T>(out)?,
            )
        }
        Step::Cast(a, to) => {
            let a = f.operand::<T>(*a, &r)?;
            cast_into(&a.expand(n), to, out)
        }
        Step::Spread(..) => f.spread::<T>(i, r, typed_mut::<T>(out)?),
        Step::Input(_) | Step::Scalar(..) => Err(Error::BadArgument(format!(
            "step {i} has nothing to compute"
        ))),
    }
}

/// `out` (bytes of the type named `to`) = each of `src` converted.
fn cast_into<T: Numeric>(src: &[T], to: &str, out: &mut [u8]) -> Result<()> {
    macro_rules! to {
        ($($name:literal => $u:ty),*) => {
            match to {
                $($name => math::cast_slice(src, typed_mut::<$u>(out)?),)*
                other => return Err(Error::BadArgument(format!("no element type {other}"))),
            }
        };
    }
    to!("i8" => i8, "i16" => i16, "i32" => i32, "i64" => i64, "i128" => i128,
        "isize" => isize, "u8" => u8, "u16" => u16, "u32" => u32, "u64" => u64,
        "u128" => u128, "usize" => usize, "f32" => f32, "f64" => f64);
    Ok(())
}

/// The number of worker threads of the runtime this thread works for (1
/// outside one): how many pieces a large computation is split into.
pub(crate) fn worker_threads() -> usize {
    tokio::runtime::Handle::try_current()
        .map(|h| h.metrics().num_workers())
        .unwrap_or(1)
        .max(1)
}

/// Runs `work` on each item, the first on this thread and the others on
/// threads of their own; the first error wins.
pub(crate) fn parallel<I: Send, R: Send>(
    items: Vec<I>,
    work: impl Fn(I) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let mut items = items.into_iter();
    let Some(first) = items.next() else {
        return Ok(Vec::new());
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = items
            .map(|item| {
                let work = &work;
                scope.spawn(move || work(item))
            })
            .collect();
        let mut out = vec![work(first)?];
        for other in others {
            match other.join() {
                Ok(r) => out.push(r?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(out)
    })
}

fn reduce_typed<R: Numeric>(plan: &Plan<'_>, r: Reduction) -> Result<Option<Vec<u8>>> {
    let accs = parallel(plan.pieces(), |range| {
        let mut acc = Acc::<R>::new(r);
        let last = plan.last() as u32;
        plan.run(range, None, |frame, chunk| {
            let n = chunk.len();
            acc.add(&frame.operand::<R>(last, &chunk)?.expand(n));
            Ok(())
        })?;
        Ok(acc)
    })?;
    let mut accs = accs.into_iter();
    let mut total = accs.next().unwrap_or_else(|| Acc::new(r));
    for other in accs {
        total.merge(other);
    }
    Ok(total.finish())
}

/// A running reduction of values of type `R`.
enum Acc<R> {
    /// The exact sum and the magnitude of the last block added.
    Exact(ExactSum, i32),
    Int([i128; 8]),
    Extreme {
        largest: bool,
        best: Option<R>,
    },
    Count(u64),
}

/// The extreme of `acc` and `x`: NaN wins, as in NumPy's `min` and `max`.
#[inline(always)]
#[allow(clippy::eq_op)]
fn pick<R: Numeric>(acc: R, x: R, largest: bool) -> R {
    if acc != acc {
        acc
    } else if x != x || (largest && x > acc) || (!largest && x < acc) {
        x
    } else {
        acc
    }
}

/// The largest (`LARGEST`) or smallest of `xs`, NaN if any is NaN; None
/// for no values. Eight lanes that compare and select without branches
/// (NaNs are only noted on the way), then the lanes in order.
#[allow(clippy::eq_op)]
fn extreme<R: Numeric, const LARGEST: bool>(xs: &[R]) -> Option<R> {
    let (&first, rest) = xs.split_first()?;
    let mut lanes = [first; 8];
    let mut nan = [false; 8];
    let mut chunks = rest.chunks_exact(8);
    for chunk in &mut chunks {
        for ((l, n), &x) in lanes.iter_mut().zip(&mut nan).zip(chunk) {
            *n |= x != x;
            let better = if LARGEST { x > *l } else { x < *l };
            *l = if better { x } else { *l };
        }
    }
    let mut m = first;
    for x in lanes.into_iter().chain(chunks.remainder().iter().copied()) {
        m = pick(m, x, LARGEST);
    }
    if nan.iter().any(|&n| n) {
        // A NaN of the lanes: the first one any lane saw.
        return rest.iter().copied().find(|&x| x != x);
    }
    Some(m)
}

impl<R: Numeric> Acc<R> {
    fn new(r: Reduction) -> Acc<R> {
        match r {
            Reduction::Sum if R::IS_FLOAT => Acc::Exact(ExactSum::new(), 0),
            Reduction::Sum => Acc::Int([0; 8]),
            Reduction::Min | Reduction::Max => Acc::Extreme {
                largest: r == Reduction::Max,
                best: None,
            },
            Reduction::CountNonzero => Acc::Count(0),
        }
    }

    fn add(&mut self, xs: &[R]) {
        match self {
            Acc::Exact(acc, top) => match R::NAME {
                "f64" => acc.add_f64_run(bytemuck::cast_slice(xs), top),
                _ => acc.add_f32_run(bytemuck::cast_slice(xs), top),
            },
            Acc::Int(lanes) => {
                for chunk in xs.chunks(8) {
                    for (l, x) in lanes.iter_mut().zip(chunk) {
                        *l = l.wrapping_add(x.cast::<i128>());
                    }
                }
            }
            Acc::Extreme { largest, best } => {
                let Some(m) = (if *largest {
                    extreme::<R, true>(xs)
                } else {
                    extreme::<R, false>(xs)
                }) else {
                    return;
                };
                *best = Some(best.map_or(m, |b| pick(b, m, *largest)));
            }
            Acc::Count(n) => {
                let zero = R::zero();
                *n += xs.iter().filter(|&&x| x != zero).count() as u64;
            }
        }
    }

    fn merge(&mut self, other: Acc<R>) {
        match (self, other) {
            (Acc::Exact(a, _), Acc::Exact(b, _)) => a.merge(&b),
            (Acc::Int(a), Acc::Int(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x = x.wrapping_add(y);
                }
            }
            (Acc::Extreme { largest, best }, Acc::Extreme { best: other, .. }) => {
                *best = match (*best, other) {
                    (Some(a), Some(b)) => Some(pick(a, b, *largest)),
                    (a, b) => a.or(b),
                };
            }
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            _ => {}
        }
    }

    /// The partial result as bytes: an exact sum's bytes (floats), the
    /// 128-bit sum (integers), the extreme (None when there were no
    /// values), the count as a `u64`.
    fn finish(self) -> Option<Vec<u8>> {
        match self {
            Acc::Exact(acc, _) => Some(acc.to_bytes()),
            Acc::Int(lanes) => {
                let total = lanes.into_iter().fold(0i128, i128::wrapping_add);
                Some(total.to_ne_bytes().to_vec())
            }
            Acc::Extreme { best, .. } => best.map(|v| bytemuck::bytes_of(&v).to_vec()),
            Acc::Count(n) => Some(n.to_ne_bytes().to_vec()),
        }
    }
}

/// Merges the partial results of [`Plan::reduce`] of values of type `T`
/// into the reduction's value: the sum in `T::Sum`, the extreme in `T`
/// (None when there were no values), the count in `u64`; each as raw bytes
/// of its type.
pub(crate) fn merge_partials<T: Numeric>(
    r: Reduction,
    partials: &[Option<PodVec<u8>>],
) -> Result<Option<Vec<u8>>> {
    let present = partials.iter().flatten();
    match r {
        Reduction::Sum if T::IS_FLOAT => {
            let total = exact_total(partials)?;
            Ok(Some(if T::NAME == "f32" {
                total.to_f32().to_ne_bytes().to_vec()
            } else {
                total.to_f64().to_ne_bytes().to_vec()
            }))
        }
        Reduction::Sum => {
            let total = int_total(partials)?.cast::<T::Sum>();
            Ok(Some(bytemuck::bytes_of(&total).to_vec()))
        }
        Reduction::Min | Reduction::Max => {
            let mut best: Option<T> = None;
            for p in present {
                let v = element_from_bytes::<T>(p)?;
                best = Some(best.map_or(v, |b| pick(b, v, r == Reduction::Max)));
            }
            Ok(best.map(|v| bytemuck::bytes_of(&v).to_vec()))
        }
        Reduction::CountNonzero => {
            let mut n = 0u64;
            for p in present {
                n = n.wrapping_add(element_from_bytes::<u64>(p)?);
            }
            Ok(Some(n.to_ne_bytes().to_vec()))
        }
    }
}

/// The exact sum of all values of a float program's partials, unrounded
/// (a mean divides it by the count).
pub(crate) fn exact_total(partials: &[Option<PodVec<u8>>]) -> Result<ExactSum> {
    let mut total = ExactSum::new();
    for p in partials.iter().flatten() {
        total.merge(&ExactSum::from_bytes(p)?);
    }
    Ok(total)
}

/// The 128-bit wrapping total of an integer program's sum partials.
pub(crate) fn int_total(partials: &[Option<PodVec<u8>>]) -> Result<i128> {
    let mut total = 0i128;
    for p in partials.iter().flatten() {
        total = total.wrapping_add(element_from_bytes::<i128>(p)?);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(v: f64) -> Step {
        Step::Scalar("f64".into(), PodVec(v.to_ne_bytes().to_vec()))
    }

    /// Values broadcast over 1-, 2- and 3-d shapes in every kind of
    /// layout give, partition by partition, what NumPy's broadcasting gives.
    #[test]
    fn broadcast_values_follow_each_elements_position() {
        use crate::layout::{Distribution, LayoutSpec};
        use hpx_runtime::LocalityId;
        let cases: Vec<(Vec<usize>, Vec<u64>)> = vec![
            (vec![7, 5], vec![5]),
            (vec![7, 5], vec![7, 1]),
            (vec![7, 5], vec![1]),
            (vec![7, 5], vec![1, 5]),
            (vec![3, 4, 5], vec![4, 1]),
            (vec![3, 4, 5], vec![3, 1, 5]),
            (vec![9], vec![9]),
            (vec![7, 5], vec![7, 5]),
            (vec![3000, 70], vec![70]),
            (vec![3000, 70], vec![3000, 1]),
            (vec![0, 4], vec![4]),
            (vec![2, 0], vec![2, 1]),
        ];
        for (shape, spread) in cases {
            let mut dists = vec![
                Distribution::Block,
                Distribution::Cyclic,
                Distribution::BlockCyclic(2),
                Distribution::Chunks(3),
            ];
            if shape.len() == 2 {
                dists.push(Distribution::Tiles { rows: 2, cols: 3 });
            }
            let count: u64 = spread.iter().product();
            let values: Vec<f64> = (0..count).map(|v| v as f64 + 0.5).collect();
            // What each element reads: its position, broadcast.
            let want = |g: usize| -> f64 {
                let mut rest = g;
                let mut index = 0usize;
                let mut step = 1usize;
                let pad = shape.len() - spread.len();
                for d in (0..shape.len()).rev() {
                    let at = rest % shape[d];
                    rest /= shape[d];
                    let k = if d >= pad {
                        spread[d - pad] as usize
                    } else {
                        1
                    };
                    if k != 1 {
                        index += at * step;
                        step *= k;
                    }
                }
                values[index]
            };
            for dist in dists {
                let layout = Layout::from_spec(LayoutSpec {
                    shape: shape.clone(),
                    distribution: dist.clone(),
                    over: (0..3).map(LocalityId).collect(),
                    grid: None,
                })
                .unwrap();
                let steps = vec![
                    Step::Input(0),
                    Step::Spread(
                        "f64".into(),
                        PodVec(bytemuck::cast_slice(&values).to_vec()),
                        spread.clone(),
                        vec![],
                    ),
                    Step::Binary(BinaryOp::Add, 0, 1),
                ];
                for p in 0..layout.num_partitions() {
                    let len = layout.partition_sizes()[p];
                    let a: Vec<f64> = (0..len)
                        .map(|l| layout.global(p, l).unwrap() as f64)
                        .collect();
                    // The whole values, and (for a partition that is a box)
                    // only the box of them it reads.
                    let mut programs = vec![steps.clone()];
                    if let Some((offset, extent)) = layout.partition_box(p) {
                        let mut cut = steps.clone();
                        if let Step::Spread(d, bytes, shape, _) = &steps[1] {
                            cut[1] = crate::lazy::cut(d, bytes, shape, &offset, &extent).unwrap();
                        }
                        programs.push(cut);
                    }
                    for program in &programs {
                        let plan =
                            Plan::new(program, vec![&a as &dyn ErasedVec], Some((&layout, p)))
                                .unwrap();
                        let out = plan.evaluate().unwrap();
                        let got: &[f64] = typed(out.bytes(0, len).unwrap()).unwrap();
                        for (l, v) in got.iter().enumerate() {
                            let g = layout.global(p, l).unwrap();
                            assert_eq!(
                                *v,
                                g as f64 + want(g),
                                "{shape:?} {spread:?} {dist:?} at {g} ({:?})",
                                program[1]
                            );
                        }
                    }
                }
            }
        }
    }

    /// Broadcast values that do not fit are refused.
    #[test]
    fn broadcast_values_are_checked() {
        use crate::layout::Distribution;
        use hpx_runtime::LocalityId;
        let layout = Layout::new(6, Distribution::Block, 2, LocalityId(0)).unwrap();
        let a = vec![0.0f64; 3];
        let spread = |bytes: usize, shape: Vec<u64>| {
            vec![
                Step::Input(0),
                Step::Spread("f64".into(), PodVec(vec![0; bytes]), shape, vec![]),
                Step::Binary(BinaryOp::Add, 0, 1),
            ]
        };
        for (steps, why) in [
            (spread(16, vec![2]), "a row of 2 over 6"),
            (spread(8, vec![2]), "too few bytes"),
            (spread(48, vec![6, 1]), "more axes than 1 can broadcast"),
            (spread(8, vec![u64::MAX, 2]), "an overflowing shape"),
        ] {
            assert!(
                Plan::new(&steps, vec![&a as &dyn ErasedVec], Some((&layout, 0))).is_err(),
                "{why}"
            );
        }
        let fine = spread(8, vec![1]);
        assert!(
            Plan::new(&fine, vec![&a as &dyn ErasedVec], None).is_err(),
            "no layout"
        );
        assert!(
            Plan::new(&fine, vec![&a as &dyn ErasedVec], Some((&layout, 1))).is_ok(),
            "one value"
        );
        assert!(
            Plan::new(&fine, vec![&a as &dyn ErasedVec, &a], Some((&layout, 5))).is_err(),
            "no partition 5"
        );
    }

    /// `a * 2 + b` over chunk boundaries, against the plain loop, stored
    /// and reduced.
    #[test]
    fn a_program_computes_what_the_operations_compute_one_by_one() {
        let n = 3 * CHUNK_MAX + 17;
        let a: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 7.0).collect();
        let b: Vec<f64> = (0..n).map(|i| (i % 13) as f64).collect();
        let steps = vec![
            Step::Input(0),
            scalar(2.0),
            Step::Binary(BinaryOp::Mul, 0, 1),
            Step::Input(1),
            Step::Binary(BinaryOp::Add, 2, 3),
        ];
        let plan = Plan::new(&steps, vec![&a as &dyn ErasedVec, &b], None).unwrap();
        let out = plan.evaluate().unwrap();
        let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * 2.0 + y).collect();
        assert_eq!(
            out.bytes(0, n).unwrap(),
            bytemuck::cast_slice::<f64, u8>(&want)
        );
        let sum = plan.reduce(Reduction::Sum).unwrap().unwrap();
        let mut exact = ExactSum::new();
        exact.add_f64(&want);
        assert_eq!(ExactSum::from_bytes(&sum).unwrap().to_f64(), exact.to_f64());
        let max = plan.reduce(Reduction::Max).unwrap().unwrap();
        let top = want.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(element_from_bytes::<f64>(&max).unwrap(), top);
        let masked = vec![
            Step::Input(0),
            scalar(0.0),
            Step::Compare(CompareOp::Gt, 0, 1),
            Step::Select(2, 0, 1),
            Step::Cast(3, "i32".into()),
        ];
        let plan = Plan::new(&masked, vec![&a as &dyn ErasedVec], None).unwrap();
        let out = plan.evaluate().unwrap();
        let want: Vec<i32> = a
            .iter()
            .map(|&x| if x > 0.0 { x as i32 } else { 0 })
            .collect();
        assert_eq!(
            out.bytes(0, n).unwrap(),
            bytemuck::cast_slice::<i32, u8>(&want)
        );
        let count = plan.reduce(Reduction::CountNonzero).unwrap().unwrap();
        let nonzero = want.iter().filter(|&&v| v != 0).count() as u64;
        assert_eq!(element_from_bytes::<u64>(&count).unwrap(), nonzero);
    }

    /// Programs from the network that are not well formed are errors,
    /// never panics.
    #[test]
    fn malformed_programs_are_errors() {
        let a = vec![1.0f64; 10];
        let short = vec![1.0f64; 9];
        let ints = vec![1i64; 10];
        let bad: Vec<(Vec<Step>, Vec<&dyn ErasedVec>)> = vec![
            (vec![], vec![&a]),
            (vec![Step::Input(1)], vec![&a]),
            (vec![Step::Input(0), Step::Unary(UnaryOp::Neg, 1)], vec![&a]),
            (
                vec![Step::Input(0), Step::Binary(BinaryOp::Add, 0, 5)],
                vec![&a],
            ),
            (
                vec![
                    Step::Input(0),
                    Step::Input(1),
                    Step::Binary(BinaryOp::Add, 0, 1),
                ],
                vec![&a, &ints],
            ),
            (vec![Step::Input(0), Step::Select(0, 0, 0)], vec![&a]),
            (vec![Step::Input(0), Step::Cast(0, "f16".into())], vec![&a]),
            (
                vec![
                    Step::Input(0),
                    Step::Scalar("f64".into(), PodVec(vec![1, 2])),
                ],
                vec![&a],
            ),
            (vec![Step::Input(0), Step::Input(1)], vec![&a, &short]),
            (vec![scalar(1.0)], vec![]),
            (vec![Step::Input(0); MAX_STEPS + 1], vec![&a]),
        ];
        for (steps, inputs) in bad {
            assert!(Plan::new(&steps, inputs, None).is_err(), "{steps:?}");
        }
        let zero = vec![0i64; 10];
        let steps = vec![
            Step::Input(0),
            Step::Input(1),
            Step::Binary(BinaryOp::Div, 0, 1),
        ];
        let plan = Plan::new(&steps, vec![&ints as &dyn ErasedVec, &zero], None).unwrap();
        assert!(plan.evaluate().is_err(), "integer division by zero");
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// `(a * 2 + b)` of 10^7 `f64` summed, its max, and stored, beside a
    /// plain loop: `cargo test --release -p hpx-containers --lib
    /// expr::speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn fused_against_a_plain_loop() {
        let n = 10_000_000;
        let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let b = vec![1.0f64; n];
        let steps = vec![
            Step::Input(0),
            Step::Scalar("f64".into(), PodVec(2.0f64.to_ne_bytes().to_vec())),
            Step::Binary(BinaryOp::Mul, 0, 1),
            Step::Input(1),
            Step::Binary(BinaryOp::Add, 2, 3),
        ];
        let plan = Plan::new(&steps, vec![&a as &dyn ErasedVec, &b], None).unwrap();
        let time = |f: &mut dyn FnMut()| {
            let t = std::time::Instant::now();
            f();
            t.elapsed()
        };
        for _ in 0..3 {
            let sum = time(&mut || assert!(plan.reduce(Reduction::Sum).unwrap().is_some()));
            let max = time(&mut || assert!(plan.reduce(Reduction::Max).unwrap().is_some()));
            let stored = time(&mut || drop(plan.evaluate().unwrap()));
            let plain_sum = time(&mut || {
                std::hint::black_box(a.iter().zip(&b).map(|(x, y)| x * 2.0 + y).sum::<f64>());
            });
            let plain_stored = time(&mut || {
                let v: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * 2.0 + y).collect();
                drop(std::hint::black_box(v));
            });
            println!(
                "fused: sum {sum:?}, max {max:?}, stored {stored:?}; plain loop: sum \
                 {plain_sum:?}, collect {plain_stored:?}"
            );
        }
    }
}

//! Partition data with its element type erased, so one set of actions serves
//! every element type; typed views come back by downcasting.

use std::any::Any;

use hpx_runtime::element::{element_from_bytes, elements_from_bytes, Element, ReduceOp};
use hpx_runtime::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::axes::{self, Fold};
use crate::expr;
use crate::math::Numeric;

/// Elements handled per step of a reduction: the lanes combine element-wise
/// (which vectorizes), then the lanes are combined in order.
const LANES: usize = 64;

/// A partition's elements, whatever their type.
pub(crate) trait ErasedVec: Any + Send + Sync {
    /// The element type's name.
    fn dtype(&self) -> &'static str;
    /// Number of elements.
    fn len(&self) -> usize;
    /// Bytes of the elements.
    fn byte_len(&self) -> usize;
    /// For downcasting to `Vec<T>`.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting to `Vec<T>`.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The raw bytes of elements `start..end`, where they lie.
    fn bytes(&self, start: usize, end: usize) -> Result<&[u8]>;
    /// The raw bytes of every element, to overwrite.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Overwrites elements from `start` with raw bytes.
    fn write(&mut self, start: usize, bytes: &[u8]) -> Result<()>;
    /// Sets every element to the value in `bytes`.
    fn fill(&mut self, value: &[u8]) -> Result<()>;
    /// Reduces all elements (None if there are none), as raw bytes.
    fn reduce(&self, op: ReduceOp) -> Result<Option<Vec<u8>>>;
    /// Replaces the elements by their running `op` (inclusive or exclusive),
    /// starting from `carry` (the combination of all earlier elements), and
    /// returns the combination including this partition.
    fn scan(
        &mut self,
        op: ReduceOp,
        inclusive: bool,
        carry: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>>;
    /// Copies the elements of a partition of the same type and length.
    fn copy_from(&mut self, other: &dyn ErasedVec) -> Result<()>;
    /// The `op`-combination of each run of `chunk` elements (the last may
    /// be shorter), as raw bytes, one element per run.
    fn chunk_totals(&self, op: ReduceOp, chunk: usize) -> Result<Vec<u8>>;
    /// Scans each run of `chunk` elements in place, starting from its carry
    /// in `carries` (raw bytes, one element per run); the first run starts
    /// from nothing when `first_without_carry`.
    fn scan_chunks(
        &mut self,
        op: ReduceOp,
        inclusive: bool,
        chunk: usize,
        carries: &[u8],
        first_without_carry: bool,
    ) -> Result<()>;
    /// The elements of `spans`, in order, as raw bytes.
    fn read_spans(&self, spans: &[Span]) -> Result<Vec<u8>>;
    /// Writes raw bytes to the elements of `spans`, in order.
    fn write_spans(&mut self, spans: &[Span], bytes: &[u8]) -> Result<()>;
    /// The first extreme element (largest with `largest`, else smallest;
    /// NaN counts as the extreme, as NumPy's argmax), as (local index, raw value).
    fn arg_extreme(&self, largest: bool) -> Option<(u64, Vec<u8>)>;
    /// A reduction with `op` folded by `fold` over the runs of this
    /// partition (global index, local index, length): (slot, raw partial)
    /// pairs, slots ascending, in the wide sum type.
    fn fold_partials(
        &self,
        runs: &[(u64, u64, u64)],
        fold: &Fold,
        op: ReduceOp,
    ) -> Result<(Vec<u64>, Vec<u8>)>;
    /// Scans this partition along the one axis `fold` reduces, in place:
    /// its runs (global index, local index, length; in flat order, apart)
    /// in flat order, each line from its carry (`slots` and their raw
    /// `carries`, this element type).
    fn scan_axis(
        &mut self,
        runs: &[(u64, u64, u64)],
        fold: &Fold,
        op: ReduceOp,
        slots: &[u64],
        carries: &[u8],
    ) -> Result<()>;
    /// Makes this partition rows of a matrix product: `rows` holds the
    /// same rows of the left operand (`k` columns, this element type),
    /// `b` the whole right operand (`k` × `n`, raw row-major bytes).
    fn matmul_rows(&mut self, rows: &dyn ErasedVec, b: &[u8], k: usize, n: usize) -> Result<()>;
}

/// Elements `start + j * stride .. start + j * stride + len` for `j` in
/// `0..count`: a strided run of a partition, so that regular exchanges
/// (block to cyclic and back) describe a whole partition in a few spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Span {
    start: u64,
    len: u64,
    stride: u64,
    count: u64,
}

impl Span {
    /// Elements covered.
    fn elements(&self) -> Option<u64> {
        self.len.checked_mul(self.count)
    }

    /// Checks the span lies inside a partition of `size` elements.
    fn check(&self, size: usize) -> Result<()> {
        let end = self
            .count
            .checked_sub(1)
            .and_then(|c| c.checked_mul(self.stride))
            .and_then(|o| o.checked_add(self.start))
            .and_then(|o| o.checked_add(self.len));
        // Every repetition holds at least one element and none overlap, so
        // a valid span never covers more elements than the partition holds.
        match end {
            Some(end)
                if self.len > 0
                    && end <= size as u64
                    && (self.count <= 1 || self.stride >= self.len) =>
            {
                Ok(())
            }
            _ => Err(Error::BadArgument(format!(
                "span {self:?} is out of bounds of a partition of {size} elements"
            ))),
        }
    }

    /// The element ranges, in order.
    fn ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        (0..self.count).map(move |j| {
            let at = (self.start + j * self.stride) as usize;
            at..at + self.len as usize
        })
    }
}

/// Adds the run `start..start + len` to a list of spans, folding it into
/// the last span when it continues it.
pub(crate) fn push_span(spans: &mut Vec<Span>, start: usize, len: usize) {
    let (start, len) = (start as u64, len as u64);
    if let Some(last) = spans.last_mut() {
        if last.count == 1 && start == last.start + last.len {
            last.len += len;
            return;
        }
        if last.len == len {
            if last.count == 1 && start >= last.start + last.len {
                last.stride = start - last.start;
                last.count = 2;
                return;
            }
            if last.count > 1 && start == last.start + last.stride * last.count {
                last.count += 1;
                return;
            }
        }
    }
    spans.push(Span {
        start,
        len,
        stride: len,
        count: 1,
    });
}

/// Checks spans against a partition of `size` elements and returns the
/// number of elements they cover.
fn span_elements(spans: &[Span], size: usize) -> Result<usize> {
    let mut total = 0u64;
    for span in spans {
        span.check(size)?;
        total = span
            .elements()
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| Error::BadArgument("spans cover too many elements".into()))?;
    }
    usize::try_from(total).map_err(|_| Error::BadArgument("spans cover too many elements".into()))
}

pub(crate) fn combine<T: Element>(op: ReduceOp, a: T, b: T) -> T {
    let mut acc = [a];
    T::combine_slices(op, &mut acc, &[b], false);
    acc[0]
}

/// Scans `xs` in place from `carry` (the combination of everything before
/// it) and returns the combination including `xs`. The first element of an
/// exclusive scan without a carry keeps its value: it has nothing before it
/// (the caller seeds the identity it wants there).
fn scan_slice<T: Element>(
    op: ReduceOp,
    inclusive: bool,
    carry: Option<T>,
    xs: &mut [T],
) -> Option<T> {
    let mut acc = carry;
    for x in xs.iter_mut() {
        let next = match acc {
            Some(a) => combine(op, a, *x),
            None => *x,
        };
        if inclusive {
            *x = next;
        } else if let Some(a) = acc {
            *x = a;
        }
        acc = Some(next);
    }
    acc
}

/// Reduces a slice in a fixed order: `LANES` running lanes, then the lanes in order.
pub(crate) fn reduce_slice<T: Element>(op: ReduceOp, data: &[T]) -> Option<T> {
    let (first, rest) = data.split_at(data.len().min(LANES));
    let mut lanes: Vec<T> = first.to_vec();
    let mut chunks = rest.chunks_exact(LANES);
    for chunk in &mut chunks {
        T::combine_slices(op, &mut lanes, chunk, false);
    }
    T::combine_slices(
        op,
        &mut lanes[..chunks.remainder().len()],
        chunks.remainder(),
        false,
    );
    let mut lanes = lanes.into_iter();
    let first = lanes.next()?;
    Some(lanes.fold(first, |a, b| combine(op, a, b)))
}

fn check_op<T: Element>(op: ReduceOp) -> Result<()> {
    if T::supports(op) {
        Ok(())
    } else {
        Err(Error::BadArgument(format!(
            "{} is not defined for {}",
            op.name(),
            T::NAME
        )))
    }
}

fn range_error(start: usize, end: usize, len: usize) -> Error {
    Error::BadArgument(format!(
        "range {start}..{end} is out of bounds of a partition of {len} elements"
    ))
}

impl<T: Numeric> ErasedVec for Vec<T> {
    fn dtype(&self) -> &'static str {
        T::NAME
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn byte_len(&self) -> usize {
        std::mem::size_of_val(self.as_slice())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn bytes(&self, start: usize, end: usize) -> Result<&[u8]> {
        let slice = self
            .get(start..end)
            .ok_or_else(|| range_error(start, end, self.len()))?;
        Ok(bytemuck::cast_slice(slice))
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(self.as_mut_slice())
    }

    fn write(&mut self, start: usize, bytes: &[u8]) -> Result<()> {
        let values = elements_from_bytes::<T>(bytes)?;
        let len = self.len();
        let end = start.saturating_add(values.len());
        self.get_mut(start..end)
            .ok_or_else(|| range_error(start, end, len))?
            .copy_from_slice(&values);
        Ok(())
    }

    fn fill(&mut self, value: &[u8]) -> Result<()> {
        let value = element_from_bytes::<T>(value)?;
        self.as_mut_slice().fill(value);
        Ok(())
    }

    fn reduce(&self, op: ReduceOp) -> Result<Option<Vec<u8>>> {
        check_op::<T>(op)?;
        Ok(reduce_slice(op, self).map(|v| bytemuck::bytes_of(&v).to_vec()))
    }

    fn scan(
        &mut self,
        op: ReduceOp,
        inclusive: bool,
        carry: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        check_op::<T>(op)?;
        let carry: Option<T> = carry.map(element_from_bytes::<T>).transpose()?;
        Ok(scan_slice(op, inclusive, carry, self).map(|a| bytemuck::bytes_of(&a).to_vec()))
    }

    fn chunk_totals(&self, op: ReduceOp, chunk: usize) -> Result<Vec<u8>> {
        check_op::<T>(op)?;
        if chunk == 0 {
            return Err(Error::BadArgument("chunks of no element".into()));
        }
        let totals: Vec<T> = self
            .chunks(chunk)
            .filter_map(|c| reduce_slice(op, c))
            .collect();
        Ok(bytemuck::cast_slice(&totals).to_vec())
    }

    fn scan_chunks(
        &mut self,
        op: ReduceOp,
        inclusive: bool,
        chunk: usize,
        carries: &[u8],
        first_without_carry: bool,
    ) -> Result<()> {
        check_op::<T>(op)?;
        if chunk == 0 {
            return Err(Error::BadArgument("chunks of no element".into()));
        }
        let carries = elements_from_bytes::<T>(carries)?;
        if carries.len() != self.len().div_ceil(chunk) {
            return Err(Error::BadArgument(format!(
                "{} carries for {} chunks",
                carries.len(),
                self.len().div_ceil(chunk)
            )));
        }
        for (j, (xs, carry)) in self.chunks_mut(chunk).zip(carries).enumerate() {
            let carry = (j > 0 || !first_without_carry).then_some(carry);
            scan_slice(op, inclusive, carry, xs);
        }
        Ok(())
    }

    fn copy_from(&mut self, other: &dyn ErasedVec) -> Result<()> {
        let other = other.as_any().downcast_ref::<Vec<T>>().ok_or_else(|| {
            Error::BadArgument(format!("copy of {} into {}", other.dtype(), T::NAME))
        })?;
        if other.len() != self.len() {
            return Err(Error::BadArgument(format!(
                "copy between partitions of {} and {} elements",
                other.len(),
                self.len()
            )));
        }
        self.copy_from_slice(other);
        Ok(())
    }

    fn read_spans(&self, spans: &[Span]) -> Result<Vec<u8>> {
        let n = span_elements(spans, self.len())?;
        let mut out: Vec<T> = Vec::with_capacity(n);
        for span in spans {
            for r in span.ranges() {
                out.extend_from_slice(&self[r]);
            }
        }
        Ok(bytemuck::cast_slice(&out).to_vec())
    }

    fn write_spans(&mut self, spans: &[Span], bytes: &[u8]) -> Result<()> {
        let n = span_elements(spans, self.len())?;
        let values = elements_from_bytes::<T>(bytes)?;
        if values.len() != n {
            return Err(Error::BadArgument(format!(
                "{} values for spans of {n} elements",
                values.len()
            )));
        }
        let mut from = 0;
        for span in spans {
            for r in span.ranges() {
                let k = r.len();
                self[r].copy_from_slice(&values[from..from + k]);
                from += k;
            }
        }
        Ok(())
    }

    fn arg_extreme(&self, largest: bool) -> Option<(u64, Vec<u8>)> {
        let mut best: Option<(usize, T)> = None;
        for (i, &x) in self.iter().enumerate() {
            #[allow(clippy::eq_op)]
            let is_nan = x != x;
            if is_nan {
                return Some((i as u64, bytemuck::bytes_of(&x).to_vec()));
            }
            let better = match best {
                None => true,
                Some((_, b)) => {
                    if largest {
                        x > b
                    } else {
                        x < b
                    }
                }
            };
            if better {
                best = Some((i, x));
            }
        }
        best.map(|(i, x)| (i as u64, bytemuck::bytes_of(&x).to_vec()))
    }

    fn scan_axis(
        &mut self,
        runs: &[(u64, u64, u64)],
        fold: &Fold,
        op: ReduceOp,
        slots: &[u64],
        carries: &[u8],
    ) -> Result<()> {
        check_op::<T>(op)?;
        let carries = elements_from_bytes::<T>(carries)?;
        if carries.len() != slots.len() {
            return Err(Error::Codec(format!(
                "{} carries for {} lines",
                carries.len(),
                slots.len()
            )));
        }
        let carries: Vec<(u64, T)> = slots.iter().copied().zip(carries).collect();
        let mut parts: Vec<(u64, &mut [T])> = Vec::with_capacity(runs.len());
        let mut rest: &mut [T] = self.as_mut_slice();
        let mut at = 0usize;
        for &(global, local, len) in runs {
            let (local, len) = (to_usize(local)?, to_usize(len)?);
            let skip = local
                .checked_sub(at)
                .filter(|s| s.saturating_add(len) <= rest.len())
                .ok_or_else(|| Error::BadArgument("scan runs out of order".into()))?;
            let (run, after) = std::mem::take(&mut rest)[skip..].split_at_mut(len);
            parts.push((global, run));
            rest = after;
            at = local + len;
        }
        axes::scan_lines::<T>(&mut parts, fold, op, &carries);
        Ok(())
    }

    fn matmul_rows(&mut self, rows: &dyn ErasedVec, b: &[u8], k: usize, n: usize) -> Result<()> {
        let a = rows.as_any().downcast_ref::<Vec<T>>().ok_or_else(|| {
            Error::BadArgument(format!("matmul of {} rows into {}", rows.dtype(), T::NAME))
        })?;
        // In place where the bytes are aligned (a call on this locality),
        // else copied out.
        let copied;
        let b: &[T] = match bytemuck::try_cast_slice(b) {
            Ok(b) => b,
            Err(_) => {
                copied = elements_from_bytes::<T>(b)?;
                &copied
            }
        };
        let m = a.len().checked_div(k).unwrap_or(self.len() / n.max(1));
        let fits = k.checked_mul(n) == Some(b.len())
            && m.checked_mul(k) == Some(a.len())
            && m.checked_mul(n) == Some(self.len());
        if !fits {
            return Err(Error::BadArgument(format!(
                "matmul of {} elements in rows of {k} by a {k} x {n} operand of {} elements into \
                 {} elements",
                a.len(),
                b.len(),
                self.len()
            )));
        }
        if m == 0 || n == 0 || k == 0 {
            self.as_mut_slice().fill(T::zero());
            return Ok(());
        }
        // Rows in one piece per worker thread (blocks of whole rows).
        let per = m.div_ceil(expr::worker_threads()).max(1);
        let pieces: Vec<(&[T], &mut [T])> =
            a.chunks(per * k).zip(self.chunks_mut(per * n)).collect();
        expr::parallel(pieces, |(a, c)| {
            T::matmul_kernel(c.len() / n, k, n, a, b, c);
            Ok(())
        })?;
        Ok(())
    }

    fn fold_partials(
        &self,
        runs: &[(u64, u64, u64)],
        fold: &Fold,
        op: ReduceOp,
    ) -> Result<(Vec<u64>, Vec<u8>)> {
        if runs.iter().all(|r| r.2 == 0) {
            return Ok((Vec::new(), Vec::new()));
        }
        check_op::<T>(op)?;
        let mut parts = Vec::with_capacity(runs.len());
        for &(global, local, len) in runs {
            let (local, len) = (to_usize(local)?, to_usize(len)?);
            let values = self
                .get(local..local.saturating_add(len))
                .ok_or_else(|| range_error(local, local.saturating_add(len), self.len()))?;
            parts.push((global, values));
        }
        let (keys, values) = axes::partials::<T>(&parts, fold, op);
        Ok((keys, bytemuck::cast_slice(&values).to_vec()))
    }
}

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::BadArgument(format!("{v} does not fit in usize")))
}

/// The element types an array can hold, by name.
macro_rules! by_dtype {
    ($name:expr, $f:ident $(, $arg:expr)*) => {
        match $name {
            "i8" => $f::<i8>($($arg),*),
            "i16" => $f::<i16>($($arg),*),
            "i32" => $f::<i32>($($arg),*),
            "i64" => $f::<i64>($($arg),*),
            "i128" => $f::<i128>($($arg),*),
            "isize" => $f::<isize>($($arg),*),
            "u8" => $f::<u8>($($arg),*),
            "u16" => $f::<u16>($($arg),*),
            "u32" => $f::<u32>($($arg),*),
            "u64" => $f::<u64>($($arg),*),
            "u128" => $f::<u128>($($arg),*),
            "usize" => $f::<usize>($($arg),*),
            "f32" => $f::<f32>($($arg),*),
            "f64" => $f::<f64>($($arg),*),
            other => Err(Error::BadArgument(format!("no element type {other}"))),
        }
    };
}

pub(crate) use by_dtype;

fn zeros_of<T: Numeric>(len: usize) -> Result<Box<dyn ErasedVec>> {
    // Zeroed memory from the allocator: large partitions get fresh pages,
    // untouched until written (by a generator, say, in one pass), as NumPy's
    // `zeros` does. A request for more memory than there is is an error,
    // not an abort.
    let v: Vec<T> = hpx_runtime::memory::try_fresh(len).ok_or_else(|| {
        Error::BadArgument(format!(
            "cannot allocate a partition of {len} {} elements",
            T::NAME
        ))
    })?;
    Ok(Box::new(v))
}

fn from_bytes_of<T: Numeric>(bytes: &[u8]) -> Result<Box<dyn ErasedVec>> {
    Ok(Box::new(elements_from_bytes::<T>(bytes)?))
}

/// `len` zeros of the element type named `dtype`.
pub(crate) fn zeros(dtype: &str, len: usize) -> Result<Box<dyn ErasedVec>> {
    by_dtype!(dtype, zeros_of, len)
}

/// Elements of the type named `dtype` from raw bytes.
pub(crate) fn from_bytes(dtype: &str, bytes: &[u8]) -> Result<Box<dyn ErasedVec>> {
    by_dtype!(dtype, from_bytes_of, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_match_a_serial_fold_for_integers() {
        let v: Vec<i64> = (0..1000).map(|i| i * 7 - 300).collect();
        assert_eq!(reduce_slice(ReduceOp::Sum, &v), Some(v.iter().sum()));
        assert_eq!(reduce_slice(ReduceOp::Max, &v), v.iter().max().copied());
        assert_eq!(reduce_slice(ReduceOp::Min, &v[..3]), Some(-300));
        assert_eq!(reduce_slice::<i64>(ReduceOp::Sum, &[]), None);
    }

    #[test]
    fn scans_in_place() {
        let mut v = vec![1u32, 2, 3, 4];
        let total = v
            .scan(ReduceOp::Sum, true, Some(&10u32.to_ne_bytes()))
            .unwrap();
        assert_eq!(v, [11, 13, 16, 20]);
        assert_eq!(total, Some(20u32.to_ne_bytes().to_vec()));
        let mut v = vec![1u32, 2, 3, 4];
        v.scan(ReduceOp::Sum, false, Some(&10u32.to_ne_bytes()))
            .unwrap();
        assert_eq!(v, [10, 11, 13, 16]);
    }

    #[test]
    fn spans_fold_runs_and_bad_spans_are_errors() {
        let mut spans = Vec::new();
        for start in [3, 4, 10, 12, 14, 16] {
            push_span(&mut spans, start, 1);
        }
        let v: Vec<u32> = (0..20).collect();
        let bytes = v.read_spans(&spans).unwrap();
        assert_eq!(
            elements_from_bytes::<u32>(&bytes).unwrap(),
            [3, 4, 10, 12, 14, 16]
        );
        let mut w = vec![0u32; 20];
        w.write_spans(&spans, &bytes).unwrap();
        assert_eq!(w[12], 12);
        let empty = Span {
            start: 0,
            len: 0,
            stride: 0,
            count: u64::MAX,
        };
        assert!(w.write_spans(&[empty], &[]).is_err());
        let overlapping = Span {
            start: 0,
            len: 4,
            stride: 2,
            count: 3,
        };
        assert!(v.read_spans(&[overlapping]).is_err());
        let past_the_end = Span {
            start: 15,
            len: 2,
            stride: 3,
            count: 3,
        };
        assert!(v.read_spans(&[past_the_end]).is_err());
        let overflowing = Span {
            start: u64::MAX,
            len: 1,
            stride: u64::MAX,
            count: 2,
        };
        assert!(v.read_spans(&[overflowing]).is_err());
    }

    #[test]
    fn bad_bytes_and_ranges_are_errors() {
        let mut v = vec![0f64; 4];
        assert!(v.write(3, &[0u8; 16]).is_err());
        assert!(v.write(usize::MAX, &[0u8; 8]).is_err());
        assert!(v.fill(&[0u8; 3]).is_err());
        assert!(v.bytes(2, 9).is_err());
        assert!(v.reduce(ReduceOp::BitAnd).is_err());
        assert!(zeros("bool", 3).is_err());
        assert!(from_bytes("u16", &[1, 2, 3]).is_err());
    }
}

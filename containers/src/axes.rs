//! Reductions over some axes of an array of any rank: which output element
//! (slot) each element of the array combines into ([`Fold`]), and one
//! partition's partial results ([`partials`]).
//!
//! The output is the array without the reduced axes, row-major. Adjacent
//! axes that are both reduced or both kept act as one, and axes of length
//! one do not matter, so a fold is a short list of groups, outermost first.
//! The elements of one line of the innermost group go to one slot (the
//! innermost group is reduced) or to consecutive slots (it is kept): a
//! partition is folded a line segment at a time, with one slot computation
//! per segment.

use hpx_runtime::element::{Element, ReduceOp};
use hpx_runtime::{Error, Result};

use crate::data::{combine, reduce_slice};
use crate::math::Numeric;

/// How the flat indices of an array map to the slots of a reduction over
/// some of its axes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fold {
    /// Groups of adjacent axes, outermost first: (length, reduced). Never
    /// empty; no group has length one unless it is the only one.
    groups: Vec<(u64, bool)>,
    /// The number of slots: the product of the kept lengths.
    slots: u64,
}

impl Fold {
    /// The reduction of an array of `shape` over `axes` (each in range,
    /// none twice).
    pub(crate) fn new(shape: &[usize], axes: &[usize]) -> Result<Fold> {
        let mut reduced = vec![false; shape.len()];
        for &a in axes {
            match reduced.get_mut(a) {
                Some(r) if !*r => *r = true,
                Some(_) => {
                    return Err(Error::BadArgument(format!(
                        "axis {a} is repeated in the axes {axes:?}"
                    )))
                }
                None => {
                    return Err(Error::BadArgument(format!(
                        "axis {a} is out of range for an array of shape {shape:?}"
                    )))
                }
            }
        }
        let mut groups: Vec<(u64, bool)> = Vec::new();
        let mut slots: u64 = 1;
        for (&len, &r) in shape.iter().zip(&reduced) {
            let len = len as u64;
            if !r {
                slots = slots
                    .checked_mul(len)
                    .ok_or_else(|| Error::BadArgument(format!("shape {shape:?} is too large")))?;
            }
            if len == 1 {
                continue;
            }
            match groups.last_mut() {
                Some((l, lr)) if *lr == r => {
                    *l = l.checked_mul(len).ok_or_else(|| {
                        Error::BadArgument(format!("shape {shape:?} is too large"))
                    })?;
                }
                _ => groups.push((len, r)),
            }
        }
        if groups.is_empty() {
            groups.push((1, true));
        }
        Ok(Fold { groups, slots })
    }

    /// The number of output elements.
    pub(crate) fn slots(&self) -> u64 {
        self.slots
    }

    /// The length of the innermost group and whether it is reduced.
    fn inner(&self) -> (u64, bool) {
        self.groups.last().copied().unwrap_or((1, true))
    }

    /// The slot of the first element of line `line` of the innermost group.
    fn line_slot(&self, mut line: u64) -> u64 {
        let (len, reduced) = self.inner();
        let mut mult = if reduced { 1 } else { len };
        let mut slot = 0;
        for &(len, reduced) in self.groups.iter().rev().skip(1) {
            let i = line % len;
            line /= len;
            if !reduced {
                slot += i * mult;
                mult *= len;
            }
        }
        slot
    }

    /// Calls `f(slot, values)` for each line segment of the run of `values`
    /// starting at flat index `global`: every value of the segment goes to
    /// `slot` (innermost group reduced) or the `j`-th to `slot + j` (kept).
    fn segments<T>(&self, global: u64, values: &[T], mut f: impl FnMut(u64, &[T])) {
        self.spans(global, values.len(), |slot, at, n| {
            f(slot, &values[at..at + n]);
        });
    }

    /// [`segments`](Self::segments) as (slot, offset in the run, length).
    fn spans(&self, global: u64, len: usize, mut f: impl FnMut(u64, usize, usize)) {
        let (line, reduced) = self.inner();
        let mut g = global;
        let mut done = 0;
        while done < len {
            let at = g % line;
            let n = ((line - at) as usize).min(len - done);
            let base = self.line_slot(g / line);
            f(if reduced { base } else { base + at }, done, n);
            done += n;
            g += n as u64;
        }
    }

    /// The slots that the runs `(first flat index, length)` touch, as
    /// (first, count), where one accumulator per slot of that range is not
    /// much larger than the elements (a block of rows); `None` where the
    /// slots are too far apart (round robin) or there are no elements.
    fn dense_range(
        &self,
        runs: impl Iterator<Item = (u64, usize)> + Clone,
    ) -> Option<(u64, usize)> {
        let total: usize = runs.clone().map(|(_, n)| n).sum();
        let inner_reduced = self.inner_reduced();
        let (mut lo, mut hi) = (u64::MAX, 0);
        for (global, len) in runs {
            self.spans(global, len, |slot, _, n| {
                lo = lo.min(slot);
                hi = hi.max(if inner_reduced {
                    slot
                } else {
                    slot + n as u64 - 1
                });
            });
        }
        let span = hi.checked_sub(lo)? + 1;
        (span <= 2 * total as u64 + 64).then_some((lo, span as usize))
    }

    /// Whether the innermost group is reduced.
    fn inner_reduced(&self) -> bool {
        self.inner().1
    }
}

/// A partition's partial results of a reduction with `op` folded by
/// `fold`, from its runs `(first flat index, values)`: (slot, partial)
/// pairs, slots ascending, in the wide type of sums. Each slot combines
/// its elements in the order of the runs.
pub(crate) fn partials<T: Numeric>(
    parts: &[(u64, &[T])],
    fold: &Fold,
    op: ReduceOp,
) -> (Vec<u64>, Vec<T::Sum>) {
    let total: usize = parts.iter().map(|(_, v)| v.len()).sum();
    if total == 0 {
        return (Vec::new(), Vec::new());
    }
    match fold.dense_range(parts.iter().map(|(g, v)| (*g, v.len()))) {
        Some((lo, span)) => dense::<T>(parts, fold, op, lo, span),
        None => sparse::<T>(parts, fold, op),
    }
}

/// [`partials`] into one accumulator per slot of `lo..lo + span`.
fn dense<T: Numeric>(
    parts: &[(u64, &[T])],
    fold: &Fold,
    op: ReduceOp,
    lo: u64,
    span: usize,
) -> (Vec<u64>, Vec<T::Sum>) {
    let mut acc: Vec<T::Sum> = vec![T::Sum::zero(); span];
    let mut seen = vec![false; span];
    let mut wide: Vec<T::Sum> = Vec::new();
    let inner_reduced = fold.inner_reduced();
    for &(global, values) in parts {
        fold.segments(global, values, |slot, seg| {
            wide.clear();
            wide.extend(seg.iter().map(|x| x.widen()));
            let at = (slot - lo) as usize;
            if inner_reduced {
                if let Some(v) = reduce_slice(op, &wide) {
                    acc[at] = if seen[at] { combine(op, acc[at], v) } else { v };
                    seen[at] = true;
                }
                return;
            }
            let (acc, seen) = (&mut acc[at..at + seg.len()], &mut seen[at..at + seg.len()]);
            if seen.iter().all(|s| *s) {
                T::Sum::combine_slices(op, acc, &wide, false);
            } else {
                for ((a, s), x) in acc.iter_mut().zip(seen.iter_mut()).zip(&wide) {
                    *a = if *s { combine(op, *a, *x) } else { *x };
                    *s = true;
                }
            }
        });
    }
    (0..span)
        .filter(|i| seen[*i])
        .map(|i| (lo + i as u64, acc[i]))
        .unzip()
}

/// [`partials`] as pieces (slot, order seen, partial), merged by slot.
fn sparse<T: Numeric>(parts: &[(u64, &[T])], fold: &Fold, op: ReduceOp) -> (Vec<u64>, Vec<T::Sum>) {
    let mut pieces: Vec<(u64, usize, T::Sum)> = Vec::new();
    let inner_reduced = fold.inner_reduced();
    for &(global, values) in parts {
        fold.segments(global, values, |slot, seg| {
            if inner_reduced {
                let wide: Vec<T::Sum> = seg.iter().map(|x| x.widen()).collect();
                if let Some(v) = reduce_slice(op, &wide) {
                    pieces.push((slot, pieces.len(), v));
                }
            } else {
                for (j, x) in seg.iter().enumerate() {
                    pieces.push((slot + j as u64, pieces.len(), x.widen()));
                }
            }
        });
    }
    // Pieces of one slot merge in the order they came.
    pieces.sort_by_key(|&(slot, order, _)| (slot, order));
    let mut merged: Vec<(u64, T::Sum)> = Vec::with_capacity(pieces.len());
    for (slot, _, v) in pieces {
        match merged.last_mut() {
            Some((last, acc)) if *last == slot => *acc = combine(op, *acc, v),
            _ => merged.push((slot, v)),
        }
    }
    merged.into_iter().unzip()
}

/// Scans a partition's runs `(first flat index, values)` along the axis
/// that `fold` reduces (a fold over one axis: its slots are the lines
/// along it), in place, in flat order: each line starts from its carry
/// (`carries`: (slot, value), any order), else from its first element.
pub(crate) fn scan_lines<T: Numeric>(
    parts: &mut [(u64, &mut [T])],
    fold: &Fold,
    op: ReduceOp,
    carries: &[(u64, T)],
) {
    let inner_reduced = fold.inner_reduced();
    let mut acc = match fold.dense_range(parts.iter().map(|(g, v)| (*g, v.len()))) {
        Some((lo, span)) => Running::Dense(lo, vec![None; span]),
        None => Running::Sparse(std::collections::HashMap::new()),
    };
    for &(slot, c) in carries {
        acc.set(slot, c);
    }
    for (global, values) in parts.iter_mut() {
        fold.spans(*global, values.len(), |slot, at, n| {
            let seg = &mut values[at..at + n];
            if inner_reduced {
                let mut carry = acc.get(slot);
                for x in seg.iter_mut() {
                    let v = carry.map_or(*x, |c| combine(op, c, *x));
                    *x = v;
                    carry = Some(v);
                }
                if let Some(c) = carry {
                    acc.set(slot, c);
                }
            } else {
                for (j, x) in seg.iter_mut().enumerate() {
                    let key = slot + j as u64;
                    let v = acc.get(key).map_or(*x, |c| combine(op, c, *x));
                    *x = v;
                    acc.set(key, v);
                }
            }
        });
    }
}

/// The running value of each line of a scan: dense over the slots a
/// partition touches, or a map where they are far apart.
enum Running<T> {
    Dense(u64, Vec<Option<T>>),
    Sparse(std::collections::HashMap<u64, T>),
}

impl<T: Copy> Running<T> {
    fn get(&self, slot: u64) -> Option<T> {
        match self {
            Running::Dense(lo, v) => slot
                .checked_sub(*lo)
                .and_then(|i| v.get(i as usize).copied().flatten()),
            Running::Sparse(m) => m.get(&slot).copied(),
        }
    }

    /// Sets the running value of `slot` (a carry for a slot this partition
    /// does not touch is dropped).
    fn set(&mut self, slot: u64, value: T) {
        match self {
            Running::Dense(lo, v) => {
                if let Some(x) = slot.checked_sub(*lo).and_then(|i| v.get_mut(i as usize)) {
                    *x = Some(value);
                }
            }
            Running::Sparse(m) => {
                m.insert(slot, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reduction of `data` (of `shape`) over `axes` computed the plain
    /// way: every element's coordinates, its slot, summed in index order.
    fn reference(data: &[i64], shape: &[usize], axes: &[usize]) -> Vec<i64> {
        let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
        let slots: usize = kept.iter().map(|&a| shape[a]).product();
        let mut out = vec![0; slots];
        for (g, x) in data.iter().enumerate() {
            let mut rest = g;
            let mut coords = vec![0; shape.len()];
            for a in (0..shape.len()).rev() {
                coords[a] = rest % shape[a];
                rest /= shape[a];
            }
            let slot = kept.iter().fold(0, |s, &a| s * shape[a] + coords[a]);
            out[slot] += x;
        }
        out
    }

    fn folded(parts: &[(u64, &[i64])], fold: &Fold) -> Vec<i64> {
        let mut out = vec![0; fold.slots() as usize];
        let (slots, values) = partials::<i64>(parts, fold, ReduceOp::Sum);
        assert!(slots.windows(2).all(|w| w[0] < w[1]), "slots ascend");
        for (s, v) in slots.into_iter().zip(values) {
            out[s as usize] += v;
        }
        out
    }

    #[test]
    fn every_axis_set_of_every_shape_matches_the_plain_sum() {
        let shapes: [&[usize]; 7] = [
            &[7],
            &[3, 5],
            &[2, 3, 4],
            &[4, 1, 3],
            &[2, 3, 1, 5],
            &[0, 3],
            &[3, 2, 2, 3],
        ];
        for shape in shapes {
            let n: usize = shape.iter().product();
            let data: Vec<i64> = (0..n as i64).map(|i| i * i % 97 - 40).collect();
            for mask in 0..(1u32 << shape.len()) {
                let axes: Vec<usize> = (0..shape.len()).filter(|a| mask >> a & 1 == 1).collect();
                let fold = Fold::new(shape, &axes).unwrap();
                let want = reference(&data, shape, &axes);
                assert_eq!(fold.slots() as usize, want.len(), "{shape:?} {axes:?}");
                // Whole, in uneven runs, and in runs taken round robin.
                let whole = [(0u64, &data[..])];
                assert_eq!(folded(&whole, &fold), want, "{shape:?} {axes:?} whole");
                for cut in [1, 2, 5] {
                    let runs: Vec<(u64, &[i64])> = data
                        .chunks(cut)
                        .enumerate()
                        .map(|(i, c)| ((i * cut) as u64, c))
                        .collect();
                    assert_eq!(folded(&runs, &fold), want, "{shape:?} {axes:?} cut {cut}");
                    let (even, odd): (Vec<_>, Vec<_>) =
                        runs.iter().enumerate().partition(|(i, _)| i % 2 == 0);
                    let even: Vec<(u64, &[i64])> = even.into_iter().map(|(_, r)| *r).collect();
                    let odd: Vec<(u64, &[i64])> = odd.into_iter().map(|(_, r)| *r).collect();
                    let mut both = folded(&even, &fold);
                    for (b, o) in both.iter_mut().zip(folded(&odd, &fold)) {
                        *b += o;
                    }
                    assert_eq!(both, want, "{shape:?} {axes:?} round robin {cut}");
                }
            }
        }
    }

    #[test]
    fn lines_scan_along_any_axis_from_their_carries() {
        let shape = [3usize, 4, 5];
        let data: Vec<i64> = (0..60).map(|i| i * 7 % 11 - 5).collect();
        for axis in 0..3 {
            let fold = Fold::new(&shape, &[axis]).unwrap();
            // The reference: a running sum along the axis.
            let stride: usize = shape[axis + 1..].iter().product();
            let mut want = data.clone();
            for g in 0..60 {
                if g / stride % shape[axis] > 0 {
                    want[g] += want[g - stride];
                }
            }
            // Two halves: the second starts from the first's line totals.
            let mut got = data.clone();
            let (first, second) = got.split_at_mut(23);
            scan_lines::<i64>(&mut [(0, first)], &fold, ReduceOp::Sum, &[]);
            let (slots, totals) = partials::<i64>(&[(0, &data[..23])], &fold, ReduceOp::Sum);
            let carries: Vec<(u64, i64)> = slots.into_iter().zip(totals).collect();
            scan_lines::<i64>(&mut [(23, second)], &fold, ReduceOp::Sum, &carries);
            assert_eq!(got, want, "axis {axis}");
        }
    }

    #[test]
    fn bad_axes_are_errors() {
        assert!(Fold::new(&[2, 3], &[2]).is_err());
        assert!(Fold::new(&[2, 3], &[1, 1]).is_err());
        assert_eq!(Fold::new(&[2, 3], &[]).unwrap().slots(), 6);
        assert_eq!(Fold::new(&[2, 3], &[0, 1]).unwrap().slots(), 1);
    }
}

//! `all_reduce` of large vectors: reduce-scatter by recursive halving, then
//! all-gather by recursive doubling (Rabenseifner's algorithm), over the
//! folded tree.
//!
//! The vector is cut into `p` blocks. In step `k` of the reduce-scatter a
//! rank and its partner (virtual ranks differing in bit `k`) split their
//! current range of blocks in two; each sends the half the other keeps and
//! combines the half it keeps, lower ranks' half first. After `log2 p` steps
//! each rank holds one fully reduced block, combined along the same
//! canonical tree as every other algorithm (see [`crate::tree`]); the
//! all-gather retraces the steps backwards. Each rank sends and receives
//! about `2 (p-1)/p` times the vector instead of `log2 p` times. A non-power
//! of two `n` first folds pairs of ranks, as in [`super::doubling`].
//!
//! Every part of the vector is sent straight from the vector (no copy before
//! the one into the parcel), and received parts are combined in place.

use std::ops::Range;
use std::sync::Arc;

use hpx_runtime::{Error, Result};

use super::tag;
use crate::payload::{ByteSource, Chunk, Payload};
use crate::round::Round;
use crate::tree::{block_range, Shape};
use hpx_runtime::element::{Element, ReduceOp};

/// Vectors of at least this many bytes take this algorithm.
pub(crate) const LARGE_BYTES: usize = 64 << 10;

/// Whether a vector of `len` elements of `E` over `n` ranks takes this algorithm.
pub(crate) fn worth_it<E>(len: usize, n: u32) -> bool {
    n > 1 && len.saturating_mul(std::mem::size_of::<E>()) >= LARGE_BYTES
}

/// Sends `range` (in elements) of `acc` to rank `to`, without copying it
/// first, and returns the vector.
fn send_part<E: Element>(
    round: &Round,
    to: u32,
    tag: u32,
    acc: Vec<E>,
    range: Range<usize>,
) -> Result<Vec<E>> {
    let size = std::mem::size_of::<E>();
    let shared = Arc::new(acc);
    let source: Arc<dyn ByteSource> = shared.clone();
    let chunk = Chunk::view(source, range.start * size..range.end * size);
    round.send(to, tag, Payload::from_chunks(vec![chunk]))?;
    // The parcel holds a copy: the vector is ours again.
    Ok(Arc::try_unwrap(shared).unwrap_or_else(|shared| shared.as_ref().clone()))
}

/// Checks that `bytes` hold exactly `count` elements of `E`.
fn check_len<E: Element>(bytes: &[u8], count: usize) -> Result<()> {
    if bytes.len() == count * std::mem::size_of::<E>() {
        Ok(())
    } else {
        Err(Error::Codec(format!(
            "a part of a reduced vector has {} bytes where {count} elements of {} were expected",
            bytes.len(),
            E::NAME
        )))
    }
}

/// Combines received elements into `acc`.
fn combine_bytes<E: Element>(
    op: ReduceOp,
    acc: &mut [E],
    bytes: &[u8],
    received_is_lower: bool,
) -> Result<()> {
    check_len::<E>(bytes, acc.len())?;
    match bytemuck::try_cast_slice::<u8, E>(bytes) {
        Ok(other) => E::combine_slices(op, acc, other, received_is_lower),
        Err(_) => {
            let other: Vec<E> = bytemuck::pod_collect_to_vec(bytes);
            E::combine_slices(op, acc, &other, received_is_lower);
        }
    }
    Ok(())
}

/// Copies received elements into `acc`.
fn copy_bytes<E: Element>(acc: &mut [E], bytes: &[u8]) -> Result<()> {
    check_len::<E>(bytes, acc.len())?;
    bytemuck::cast_slice_mut::<E, u8>(acc).copy_from_slice(bytes);
    Ok(())
}

/// Rabenseifner's all-reduce of `acc`.
pub(crate) async fn all_reduce<E: Element>(
    round: &Round,
    op: ReduceOp,
    mut acc: Vec<E>,
) -> Result<Vec<E>> {
    let shape = Shape::new(round.size());
    let me = round.rank();
    let len = acc.len();
    let folded = me < 2 * shape.r;
    let Some(v) = shape.virtual_of(me) else {
        acc = send_part(round, me + 1, tag::FOLD, acc, 0..len)?;
        let result = round.recv(me + 1, tag::UNFOLD).await?.into_single()?;
        copy_bytes(&mut acc, &result)?;
        return Ok(acc);
    };
    if folded {
        let lower = round.recv(me - 1, tag::FOLD).await?.into_single()?;
        combine_bytes(op, &mut acc, &lower, true)?;
    }
    let elements = |blocks: &Range<u32>| {
        block_range(len, shape.p, blocks.start).start..block_range(len, shape.p, blocks.end).start
    };
    let mut blocks = 0..shape.p;
    let mut history = Vec::with_capacity(shape.levels as usize);
    for k in 0..shape.levels {
        let pv = v ^ (1 << k);
        let peer = shape.acting(pv);
        let mid = (blocks.start + blocks.end) / 2;
        let (keep, give) = if v & (1 << k) == 0 {
            (blocks.start..mid, mid..blocks.end)
        } else {
            (mid..blocks.end, blocks.start..mid)
        };
        acc = send_part(round, peer, tag::HALVING + k, acc, elements(&give))?;
        let got = round.recv(peer, tag::HALVING + k).await?.into_single()?;
        combine_bytes(op, &mut acc[elements(&keep)], &got, pv < v)?;
        history.push(blocks);
        blocks = keep;
    }
    for k in (0..shape.levels).rev() {
        let peer = shape.acting(v ^ (1 << k));
        let whole = history.pop().unwrap_or(0..shape.p);
        acc = send_part(round, peer, tag::GATHERING + k, acc, elements(&blocks))?;
        let got = round.recv(peer, tag::GATHERING + k).await?.into_single()?;
        let theirs = if blocks.start == whole.start {
            blocks.end..whole.end
        } else {
            whole.start..blocks.start
        };
        copy_bytes(&mut acc[elements(&theirs)], &got)?;
        blocks = whole;
    }
    if folded {
        acc = send_part(round, me - 1, tag::UNFOLD, acc, 0..len)?;
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_bytes_combine_in_place_aligned_or_not() {
        let mut acc = vec![1.0f64, 2.0];
        let bytes: Vec<u8> = bytemuck::cast_slice(&[0.5f64, 0.25]).to_vec();
        combine_bytes(ReduceOp::Sum, &mut acc, &bytes, true).unwrap();
        assert_eq!(acc, [1.5, 2.25]);
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        combine_bytes(ReduceOp::Max, &mut acc, &shifted[1..], false).unwrap();
        assert_eq!(acc, [1.5, 2.25]);
        assert!(combine_bytes(ReduceOp::Sum, &mut acc, &bytes[1..], false).is_err());
        copy_bytes(&mut acc, &bytes).unwrap();
        assert_eq!(acc, [0.5, 0.25]);
        assert!(copy_bytes(&mut acc, &[]).is_err());
    }

    #[test]
    fn large_means_bytes() {
        assert!(!worth_it::<f64>(1 << 20, 1));
        assert!(worth_it::<f64>(LARGE_BYTES / 8, 2));
        assert!(!worth_it::<f64>(LARGE_BYTES / 8 - 1, 8));
    }
}

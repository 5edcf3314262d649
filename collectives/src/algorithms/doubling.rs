//! `all_reduce` of small values: recursive doubling over the folded tree.
//!
//! With `p` the largest power of two `≤ n`, the even rank of each of the
//! first `n - p` pairs hands its value to its odd neighbour and waits; the
//! `p` remaining ranks exchange and combine their partial results with the
//! rank whose virtual rank differs in bit `k`, for `k = 0 .. log2 p`; then
//! the odd ranks hand the result back. Latency: `log2 p` exchanges, plus two
//! messages when `n` is not a power of two. Every rank combines in the
//! canonical order (see [`crate::tree`]), so all get the same bits.

use hpx_runtime::Result;

use super::tag;
use crate::op::Combine;
use crate::round::Round;
use crate::tree::Shape;

/// Recursive doubling of `value`.
pub(crate) async fn all_reduce<T: Send>(
    round: &Round,
    combine: &dyn Combine<T>,
    value: T,
) -> Result<T> {
    let shape = Shape::new(round.size());
    let me = round.rank();
    let folded = me < 2 * shape.r;
    let Some(v) = shape.virtual_of(me) else {
        round.send(me + 1, tag::FOLD, combine.encode(&value)?)?;
        return combine.decode(round.recv(me + 1, tag::UNFOLD).await?);
    };
    let mut acc = value;
    if folded {
        let lower = combine.decode(round.recv(me - 1, tag::FOLD).await?)?;
        acc = combine.combine(lower, acc)?;
    }
    for k in 0..shape.levels {
        let pv = v ^ (1 << k);
        let peer = shape.acting(pv);
        round.send(peer, tag::DOUBLING + k, combine.encode(&acc)?)?;
        let other = combine.decode(round.recv(peer, tag::DOUBLING + k).await?)?;
        acc = if pv < v {
            combine.combine(other, acc)?
        } else {
            combine.combine(acc, other)?
        };
    }
    if folded {
        round.send(me - 1, tag::UNFOLD, combine.encode(&acc)?)?;
    }
    Ok(acc)
}

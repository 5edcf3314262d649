//! Inclusive and exclusive scans: the recursive doubling of Hillis and
//! Steele. In step `k` rank `i` sends its partial result (covering ranks
//! `i - 2^k + 1 ..= i`) to rank `i + 2^k` and combines the one of rank
//! `i - 2^k` in front of its own: `⌈log2 n⌉` steps. The exclusive result is
//! kept alongside (MPICH's algorithm); rank 0 has none.

use hpx_runtime::Result;

use super::tag;
use crate::op::Combine;
use crate::round::Round;

/// The inclusive result and, if `exclusive`, the exclusive one.
pub(crate) async fn scan<T: Clone + Send>(
    round: &Round,
    combine: &dyn Combine<T>,
    value: T,
    exclusive: bool,
) -> Result<(T, Option<T>)> {
    let n = round.size();
    let me = round.rank();
    let mut partial = value;
    let mut before: Option<T> = None;
    let mut distance = 1u32;
    let mut step = 0u32;
    while distance < n {
        if me + distance < n {
            round.send(me + distance, tag::SCAN + step, combine.encode(&partial)?)?;
        }
        if me >= distance {
            let lower = combine.decode(round.recv(me - distance, tag::SCAN + step).await?)?;
            if exclusive {
                before = Some(match before {
                    None => lower.clone(),
                    Some(b) => combine.combine(lower.clone(), b)?,
                });
            }
            partial = combine.combine(lower, partial)?;
        }
        distance = distance.saturating_mul(2);
        step += 1;
    }
    Ok((partial, before))
}

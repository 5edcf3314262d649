//! The dissemination agreement (Hensgen, Finkel and Manber): in round `k`
//! each rank sends to rank `+2^k` and waits for rank `-2^k` (modulo the
//! size), so after `⌈log2 n⌉` rounds every rank has heard, through a chain
//! of messages, from every other.
//!
//! It is the barrier; it also runs alongside the operations in which some
//! participants would otherwise finish without hearing from all others
//! (the rooted ones and the scans). Since the mailbox compares the
//! signature of every message with its own, a participant that completes
//! the agreement knows that every other one called the same operation with
//! the same arguments; otherwise the call fails everywhere.

use hpx_runtime::Result;

use super::tag;
use crate::payload::Payload;
use crate::round::Round;
use crate::tree::dissemination;

/// Runs the agreement rounds of this call.
pub(crate) async fn agree(round: &Round) -> Result<()> {
    for (k, (to, from)) in (0u32..).zip(dissemination(round.size(), round.rank())) {
        round.send(to, tag::AGREE + k, Payload::empty())?;
        round.recv(from, tag::AGREE + k).await?;
    }
    Ok(())
}

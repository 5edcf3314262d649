//! Collectives of a communicator whose members all share this host: one
//! region of shared memory per communicator, where each member writes its
//! contribution in place and the others poll for it, as MPI's shared-memory
//! collectives do; no message, no hand-over between threads.
//!
//! # The region
//!
//! One *area* per member (its rank's), each written by that member only:
//!
//! - the *announce* word: `(gen + 1) << 8 | kind` of the call the member is
//!   in, stored when it enters any call (see [`HostSegment::announce`]);
//! - two *slots*, used by calls of even and odd generation: the caller's
//!   [`Signature`], the length of its contribution (or [`LARGE`] when it
//!   does not fit) and the contribution's bytes, published by storing
//!   `gen + 1` into the slot's sequence word last (release).
//!
//! A member reads the others' slots of call `gen` once they are published
//! (acquire). Before it writes its own slot for `gen`, every member must
//! be done reading the slot's previous use, call `gen - 2`: a member that
//! has announced `gen - 1` is, so the writer waits for every announce to
//! reach `gen - 1` (at once, almost always).
//!
//! # Agreement and failures
//!
//! Every member compares every other's signature with its own, so a
//! mismatch fails every member with [`Error::CollectiveMismatch`]. A member
//! that is in call `gen` with an operation that does not use the region
//! (its announce word says which), or that went past `gen` without
//! publishing a slot for it, made another call: a mismatch too, and the
//! call's failure reaches it through the mailbox like any other. A waiting
//! member also stops for the runtime's loss signal and for a failure that
//! another member reported.
//!
//! # Waiting
//!
//! A member waiting for the others polls: it spins (giving the thread away
//! at every turn when the host has more localities than cores, so that the
//! member it waits for can run), and after [`SPIN`] it sleeps between polls,
//! a tenth of the time waited so far (at most 20 ms): a member that waits
//! seconds for a slow one costs a few milliseconds of CPU.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use hpx_runtime::{Error, LocalityId, Result, SharedRegion};

use crate::signature::{Kind, Signature};

/// Bytes of a member's announce word's cache line.
const ANNOUNCE: usize = 64;
/// Bytes of a slot: its header and the contribution inline.
const SLOT: usize = 512;
/// Bytes of a slot's header.
const SLOT_HEADER: usize = 64;
/// The largest contribution that travels inline.
pub(crate) const INLINE: usize = SLOT - SLOT_HEADER;
/// Bytes of one member's area.
const AREA: usize = ANNOUNCE + 2 * SLOT;
/// A slot's length word for a contribution too large for the slot.
const LARGE: u64 = u64::MAX;

// Offsets inside a slot.
const S_SEQ: usize = 0;
const S_OP: usize = 8;
const S_TY: usize = 16;
const S_LEN: usize = 24;
const S_ROOT: usize = 32;
const S_KIND: usize = 36;
const S_DATA_LEN: usize = 40;

/// How long a waiting member polls without sleeping.
const SPIN: Duration = Duration::from_millis(2);
/// The shortest and the longest sleep between polls after that: a tenth
/// of the time waited so far, so a long wait costs next to no CPU and ends
/// at most about a tenth late.
const NAP_MIN: Duration = Duration::from_micros(500);
const NAP_MAX: Duration = Duration::from_millis(20);
/// Polls between two looks at the clock and the loss signal.
const LOOK_EVERY: u32 = 64;
/// Polls between two turns given to the worker's other tasks.
const TASK_YIELD_EVERY: u32 = 16;

/// The shared region of one communicator, as seen by one member.
pub(crate) struct HostSegment {
    region: SharedRegion,
    rank: u32,
    n: u32,
    /// More localities on this host than cores: spinning gives the core away.
    crowded: bool,
}

impl std::fmt::Debug for HostSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSegment")
            .field("rank", &self.rank)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

/// What the members of one call contributed, by rank, or that one did not
/// fit its slot (every member then takes the message path).
pub(crate) enum Contributions {
    /// Every member's bytes, by rank.
    Inline(Vec<Vec<u8>>),
    /// Some member's contribution is larger than [`INLINE`].
    TooLarge,
}

/// Why a member of a call is not where this one is (the part of a
/// mismatch error that names it).
fn kind_code(kind: Kind) -> u64 {
    kind as u64 + 1
}

fn kind_of(code: u64) -> Option<Kind> {
    const KINDS: [Kind; 11] = [
        Kind::Create,
        Kind::Barrier,
        Kind::AllReduce,
        Kind::Reduce,
        Kind::Broadcast,
        Kind::Gather,
        Kind::Scatter,
        Kind::AllGather,
        Kind::AllToAll,
        Kind::InclusiveScan,
        Kind::ExclusiveScan,
    ];
    KINDS.iter().copied().find(|k| kind_code(*k) == code)
}

impl HostSegment {
    /// The segment of the communicator `key` of `members`, in which this
    /// locality has `rank`; `None` where some member is on another host
    /// (or shared memory is off), or for a communicator of one.
    pub(crate) fn open(
        key: &str,
        members: &[LocalityId],
        rank: u32,
    ) -> Result<Option<HostSegment>> {
        let n = members.len();
        if n < 2 {
            return Ok(None);
        }
        let Some(region) = hpx_runtime::shared_region(key, n * AREA, members)? else {
            return Ok(None);
        };
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        Ok(Some(HostSegment {
            region,
            rank,
            n: n as u32,
            crowded: n > cores,
        }))
    }

    fn area(&self, rank: u32) -> usize {
        rank as usize * AREA
    }

    fn slot(&self, rank: u32, gen: u64) -> usize {
        self.area(rank) + ANNOUNCE + (gen % 2) as usize * SLOT
    }

    /// Says that this member is in call `gen`, of `kind`: every call on the
    /// communicator does, whether it uses the region or not.
    pub(crate) fn announce(&self, gen: u64, kind: Kind) {
        let word = ((gen + 1) << 8) | kind_code(kind);
        self.region
            .u64_at(self.area(self.rank))
            .store(word, Ordering::Release);
    }

    /// The call that member `rank` announced last: its generation plus one
    /// (0 before its first) and its kind.
    fn announced(&self, rank: u32) -> (u64, u64) {
        let word = self.region.u64_at(self.area(rank)).load(Ordering::Acquire);
        (word >> 8, word & 0xff)
    }

    /// Call `gen` of every member: writes this member's `data` (with `sig`;
    /// `None` or more than [`INLINE`] bytes: too large) into its slot, waits
    /// for every other member's, and returns them all, by rank. `call` names
    /// the call in errors; `failed` makes a future that resolves if another
    /// member reports the call failed (made only if the wait is not over at
    /// once).
    pub(crate) async fn exchange<F>(
        &self,
        call: &CallInfo<'_>,
        data: Option<&[u8]>,
        failed: impl FnOnce() -> Result<F>,
    ) -> Result<Contributions>
    where
        F: std::future::Future<Output = Error> + Unpin,
    {
        let gen = call.gen;
        let mut waiter = Waiter::new(self, call.members.clone(), failed);
        if gen >= 2 {
            // Everyone is done reading this slot's previous use (call gen - 2).
            waiter
                .until(|| Ok((0..self.n).all(|r| self.announced(r).0 >= gen)))
                .await?;
        }
        self.publish(gen, call.sig, data);
        waiter
            .until(|| {
                for r in 0..self.n {
                    if !self.arrived(call, r)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
            .await?;
        let mut all = Vec::with_capacity(self.n as usize);
        for r in 0..self.n {
            let slot = self.slot(r, gen);
            let len = self
                .region
                .u64_at(slot + S_DATA_LEN)
                .load(Ordering::Relaxed);
            if len == LARGE {
                return Ok(Contributions::TooLarge);
            }
            let len = usize::try_from(len).ok().filter(|l| *l <= INLINE).ok_or_else(|| {
                Error::Codec(format!(
                    "rank {r} of communicator {:?} wrote a contribution of {len} bytes into its {INLINE}-byte slot",
                    call.comm_name
                ))
            })?;
            let mut bytes = vec![0; len];
            self.region.read(slot + SLOT_HEADER, &mut bytes);
            all.push(bytes);
        }
        Ok(Contributions::Inline(all))
    }

    /// Writes this member's slot for call `gen` and publishes it.
    fn publish(&self, gen: u64, sig: Signature, data: Option<&[u8]>) {
        let slot = self.slot(self.rank, gen);
        let r = &self.region;
        r.u64_at(slot + S_OP).store(sig.op, Ordering::Relaxed);
        r.u64_at(slot + S_TY).store(sig.ty, Ordering::Relaxed);
        r.u64_at(slot + S_LEN).store(sig.len, Ordering::Relaxed);
        r.u32_at(slot + S_ROOT).store(sig.root, Ordering::Relaxed);
        r.u32_at(slot + S_KIND)
            .store(kind_code(sig.kind) as u32, Ordering::Relaxed);
        match data.filter(|d| d.len() <= INLINE) {
            Some(data) => {
                r.u64_at(slot + S_DATA_LEN)
                    .store(data.len() as u64, Ordering::Relaxed);
                r.write(slot + SLOT_HEADER, data);
            }
            None => r.u64_at(slot + S_DATA_LEN).store(LARGE, Ordering::Relaxed),
        }
        r.u64_at(slot + S_SEQ).store(gen + 1, Ordering::Release);
    }

    /// Whether member `rank` published its slot for the call; an error if
    /// it made another call.
    fn arrived(&self, call: &CallInfo<'_>, rank: u32) -> Result<bool> {
        let gen = call.gen;
        // The announce first: a member that announced past `gen` had
        // published its slot for `gen` before, if it made this call.
        let (announced, kind) = self.announced(rank);
        let slot = self.slot(rank, gen);
        let r = &self.region;
        if r.u64_at(slot + S_SEQ).load(Ordering::Acquire) == gen + 1 {
            let theirs = Signature {
                kind: kind_of(u64::from(r.u32_at(slot + S_KIND).load(Ordering::Relaxed)))
                    .unwrap_or(Kind::Create),
                op: r.u64_at(slot + S_OP).load(Ordering::Relaxed),
                root: r.u32_at(slot + S_ROOT).load(Ordering::Relaxed),
                ty: r.u64_at(slot + S_TY).load(Ordering::Relaxed),
                len: r.u64_at(slot + S_LEN).load(Ordering::Relaxed),
            };
            return if theirs == call.sig {
                Ok(true)
            } else {
                Err(call.mismatch(rank, &call.describe_theirs(&theirs)))
            };
        }
        if announced == gen + 1 && kind != kind_code(call.sig.kind) {
            let what = kind_of(kind).map_or("an unknown operation", Kind::name);
            return Err(call.mismatch(rank, what));
        }
        if announced > gen + 1 {
            return Err(call.mismatch(rank, "another operation"));
        }
        Ok(false)
    }
}

/// The call a member is in, as [`HostSegment::exchange`] needs it.
pub(crate) struct CallInfo<'a> {
    pub(crate) gen: u64,
    pub(crate) sig: Signature,
    pub(crate) members: Arc<[LocalityId]>,
    pub(crate) here: LocalityId,
    pub(crate) comm_name: &'a str,
    pub(crate) type_name: &'a str,
    pub(crate) op_name: &'a str,
}

impl CallInfo<'_> {
    fn describe_theirs(&self, theirs: &Signature) -> String {
        theirs.describe(
            (theirs.ty == self.sig.ty).then_some(self.type_name),
            (theirs.op == self.sig.op).then_some(self.op_name),
        )
    }

    fn mismatch(&self, rank: u32, theirs: &str) -> Error {
        let locality = self.members.get(rank as usize).map_or(u32::MAX, |l| l.0);
        let mine = self.sig.describe(Some(self.type_name), Some(self.op_name));
        Error::CollectiveMismatch(format!(
            "on communicator {:?} (call {}): rank {rank} (locality {locality}) called {theirs}, \
             but locality {} called {mine}",
            self.comm_name, self.gen, self.here
        ))
    }
}

/// Polls a condition of the region until it holds, the call fails
/// elsewhere, or a member is lost. The loss signal and the mailbox are
/// only asked once the wait is not over at once (most are).
struct Waiter<'a, G, F> {
    seg: &'a HostSegment,
    members: Arc<[LocalityId]>,
    lost: Option<std::pin::Pin<Box<dyn std::future::Future<Output = Error> + Send>>>,
    make_failed: Option<G>,
    failed: Option<F>,
}

impl<'a, G, F> Waiter<'a, G, F>
where
    G: FnOnce() -> Result<F>,
    F: std::future::Future<Output = Error> + Unpin,
{
    fn new(seg: &'a HostSegment, members: Arc<[LocalityId]>, make_failed: G) -> Self {
        Waiter {
            seg,
            members,
            lost: None,
            make_failed: Some(make_failed),
            failed: None,
        }
    }

    /// The failure of the call or the loss of a member, if either came.
    fn look(&mut self) -> Result<()> {
        if let Some(make) = self.make_failed.take() {
            self.failed = Some(make()?);
        }
        let members = &self.members;
        let lost = self
            .lost
            .get_or_insert_with(|| Box::pin(hpx_runtime::first_lost(members.clone())));
        if let Some(error) = lost.now_or_never() {
            return Err(error);
        }
        match self.failed.as_mut().and_then(FutureExt::now_or_never) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Returns once `ready` says so (or fails as it does).
    async fn until(&mut self, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
        let mut started = None;
        let mut polls = 0u32;
        loop {
            if ready()? {
                return Ok(());
            }
            polls = polls.wrapping_add(1);
            if polls % LOOK_EVERY != 0 {
                if self.seg.crowded {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                if polls % TASK_YIELD_EVERY == 0 {
                    tokio::task::yield_now().await;
                }
                continue;
            }
            self.look()?;
            let waited = started.get_or_insert_with(Instant::now).elapsed();
            if waited < SPIN {
                tokio::task::yield_now().await;
                continue;
            }
            let (Some(lost), Some(failed)) = (self.lost.as_mut(), self.failed.as_mut()) else {
                continue;
            };
            tokio::select! {
                biased;
                error = lost => return Err(error),
                error = failed => return Err(error),
                () = tokio::time::sleep((waited / 10).clamp(NAP_MIN, NAP_MAX)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_codes() {
        for kind in [
            Kind::Create,
            Kind::Barrier,
            Kind::AllReduce,
            Kind::ExclusiveScan,
        ] {
            assert_eq!(kind_of(kind_code(kind)), Some(kind));
            assert!(kind_code(kind) < 0x100, "fits the announce word's low byte");
        }
        assert_eq!(kind_of(0), None);
        assert_eq!(kind_of(200), None);
    }

    const _: () = assert!(AREA % 64 == 0, "areas start on cache lines");
    const _: () = assert!(S_DATA_LEN + 8 <= SLOT_HEADER, "the header fits");
    const _: () = assert!(INLINE >= 64, "room for small values");
}

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
//! that is in call `gen` with an operation that does not use the slots (its
//! announce word says which) made another call: a mismatch too, and the
//! call's failure reaches it through the mailbox like any other. A member
//! that went past `gen` without a slot for it failed the call, and told
//! every member so. A waiting member also stops for the runtime's loss
//! signal and for a failure that another member reported.
//!
//! # Bulk
//!
//! A contribution larger than a slot goes through a *bulk region* of the
//! communicator (one per size class: a power of two of at least 64 KiB,
//! made when first needed and kept): one input area per member and one
//! result area. Each member copies its bytes into its input area and says
//! so through its *phase* word (`(gen + 1) << 8 | step`, beside its announce
//! word); the readers copy from there once the phase is reached. A call
//! that uses the bulk region follows an exchange of slots, which every
//! member passes only once all have entered the call, so all are done with
//! the bulk region's previous use.
//!
//! # Waiting
//!
//! A member waiting for the others polls: it spins (giving the thread away
//! at every turn when the host has more localities than cores, so that the
//! member it waits for can run), and after [`SPIN`] it sleeps between polls,
//! a tenth of the time waited so far (at most 20 ms): a member that waits
//! seconds for a slow one costs a few milliseconds of CPU.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use hpx_runtime::{Error, LocalityId, Result, SharedRegion};
use parking_lot::Mutex;

use crate::signature::{Kind, Signature};

/// Bytes of a member's announce and phase words' cache line.
const ANNOUNCE: usize = 64;
/// The phase word's offset in it.
const A_PHASE: usize = 8;
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
const S_BULK_LEN: usize = 48;

/// The smallest size class of a bulk region's areas.
const BULK_MIN: usize = 64 << 10;
/// The largest bulk region (all its areas); a call that needs more goes
/// through messages.
const BULK_MAX: usize = 512 << 20;

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
    /// The region's key (bulk regions add their size class).
    key: String,
    members: Arc<[LocalityId]>,
    /// The bulk regions made so far, by size class.
    bulk: Mutex<Vec<(usize, Arc<SharedRegion>)>>,
}

impl std::fmt::Debug for HostSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSegment")
            .field("rank", &self.rank)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

/// What a member offers to an exchange.
#[derive(Clone, Copy)]
pub(crate) enum Offer<'d> {
    /// These bytes: inline if they fit a slot, else only their length.
    Bytes(&'d [u8]),
    /// Only a length: the bytes will go through the bulk region.
    Large(usize),
}

/// What the members of one call contributed.
pub(crate) enum Contributions<'a> {
    /// Every member's bytes: all fit their slots.
    Inline(Inline<'a>),
    /// The byte length of every member's contribution, by rank: some did
    /// not fit, and they travel through the bulk region (or messages).
    Large(Vec<usize>),
}

/// The members' inline contributions to a call, read in place in their
/// slots (a slot is written again only two calls later, once this member
/// has entered the next call).
pub(crate) struct Inline<'a> {
    seg: &'a HostSegment,
    gen: u64,
    lens: Vec<usize>,
}

impl Inline<'_> {
    /// Member `rank`'s bytes (empty for a rank outside the communicator).
    pub(crate) fn bytes(&self, rank: u32) -> &[u8] {
        let Some(len) = self.lens.get(rank as usize) else {
            return &[];
        };
        let at = self.seg.slot(rank, self.gen) + SLOT_HEADER;
        // SAFETY: the member published these bytes for this call (release,
        // loaded with acquire by the exchange), and rewrites its slot only
        // for call gen + 2, after this member entered call gen + 1, which it
        // does only after this call, the only user of `self`, ended.
        unsafe { self.seg.region.bytes(at, *len) }
    }

    /// The number of members.
    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }
}

/// A kind's code in announce words and slots.
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
            key: key.to_owned(),
            members: members.into(),
            bulk: Mutex::new(Vec::new()),
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

    /// Call `gen` of every member: writes this member's `data` (with the
    /// call's signature) into its slot, or only its length if it is larger
    /// than [`INLINE`], waits for every other member's, and returns them
    /// all. `call` names the call in errors.
    pub(crate) async fn exchange(
        &self,
        call: &CallInfo<'_>,
        waiter: &mut Waiter<'_>,
        data: Offer<'_>,
    ) -> Result<Contributions<'_>> {
        let gen = call.gen;
        if gen >= 2 {
            // Everyone is done reading this slot's previous use (call gen - 2).
            waiter
                .until(self, || Ok((0..self.n).all(|r| self.announced(r).0 >= gen)))
                .await?;
        }
        self.publish(gen, call.sig, data);
        waiter.until(self, || self.all_arrived(call)).await?;
        let mut lens = Vec::with_capacity(self.n as usize);
        let mut large = false;
        for r in 0..self.n {
            let slot = self.slot(r, gen);
            let len = self
                .region
                .u64_at(slot + S_DATA_LEN)
                .load(Ordering::Relaxed);
            let len = if len == LARGE {
                large = true;
                self.region
                    .u64_at(slot + S_BULK_LEN)
                    .load(Ordering::Relaxed)
            } else if len <= INLINE as u64 {
                len
            } else {
                return Err(Error::Codec(format!(
                    "rank {r} of communicator {:?} wrote a contribution of {len} bytes into its \
                     {INLINE}-byte slot",
                    call.comm_name
                )));
            };
            lens.push(
                usize::try_from(len)
                    .map_err(|_| Error::Codec(format!("rank {r} contributes {len} bytes")))?,
            );
        }
        if large {
            return Ok(Contributions::Large(lens));
        }
        Ok(Contributions::Inline(Inline {
            seg: self,
            gen,
            lens,
        }))
    }

    /// Writes this member's slot for call `gen` and publishes it.
    fn publish(&self, gen: u64, sig: Signature, data: Offer<'_>) {
        let slot = self.slot(self.rank, gen);
        let r = &self.region;
        r.u64_at(slot + S_OP).store(sig.op, Ordering::Relaxed);
        r.u64_at(slot + S_TY).store(sig.ty, Ordering::Relaxed);
        r.u64_at(slot + S_LEN).store(sig.len, Ordering::Relaxed);
        r.u32_at(slot + S_ROOT).store(sig.root, Ordering::Relaxed);
        r.u32_at(slot + S_KIND)
            .store(kind_code(sig.kind) as u32, Ordering::Relaxed);
        match data {
            Offer::Bytes(data) if data.len() <= INLINE => {
                r.u64_at(slot + S_DATA_LEN)
                    .store(data.len() as u64, Ordering::Relaxed);
                r.write(slot + SLOT_HEADER, data);
            }
            Offer::Bytes(data) => self.publish_large(slot, data.len()),
            Offer::Large(len) => self.publish_large(slot, len),
        }
        r.u64_at(slot + S_SEQ).store(gen + 1, Ordering::Release);
    }

    /// The bulk region whose areas hold `largest` bytes, made on first use;
    /// `None` if it would be larger than [`BULK_MAX`] (the call then goes
    /// through messages). Every member asks for the same `largest` in a
    /// call (all know every contribution's length), so all use one region.
    pub(crate) fn bulk(&self, largest: usize) -> Result<Option<Bulk<'_>>> {
        let Some(area) = bulk_area(largest, self.n) else {
            return Ok(None);
        };
        let mut made = self.bulk.lock();
        let region = match made.iter().find(|(a, _)| *a == area) {
            Some((_, region)) => region.clone(),
            None => {
                let key = format!("{}-bulk-{area:x}", self.key);
                let len = area * (self.n as usize + 1);
                let Some(region) = hpx_runtime::shared_region(&key, len, &self.members)? else {
                    return Ok(None);
                };
                let region = Arc::new(region);
                made.push((area, region.clone()));
                region
            }
        };
        Ok(Some(Bulk {
            seg: self,
            region,
            area,
        }))
    }

    /// Says that this member reached `step` of call `gen`.
    pub(crate) fn reach(&self, gen: u64, step: u8) {
        self.region
            .u64_at(self.area(self.rank) + A_PHASE)
            .store(((gen + 1) << 8) | u64::from(step), Ordering::Release);
    }

    /// Whether member `rank` reached `step` of call `gen`.
    fn reached(&self, rank: u32, gen: u64, step: u8) -> bool {
        let phase = self
            .region
            .u64_at(self.area(rank) + A_PHASE)
            .load(Ordering::Acquire);
        phase >= ((gen + 1) << 8) | u64::from(step)
    }

    /// Waits until every member of `ranks` reached `step` of call `gen`.
    pub(crate) async fn wait_for(
        &self,
        waiter: &mut Waiter<'_>,
        ranks: std::ops::Range<u32>,
        gen: u64,
        step: u8,
    ) -> Result<()> {
        waiter
            .until(self, || {
                Ok(ranks.clone().all(|r| self.reached(r, gen, step)))
            })
            .await
    }

    /// The number of members.
    pub(crate) fn size(&self) -> u32 {
        self.n
    }

    /// This member's rank.
    pub(crate) fn rank(&self) -> u32 {
        self.rank
    }

    fn publish_large(&self, slot: usize, len: usize) {
        let r = &self.region;
        r.u64_at(slot + S_DATA_LEN).store(LARGE, Ordering::Relaxed);
        r.u64_at(slot + S_BULK_LEN)
            .store(len as u64, Ordering::Relaxed);
    }

    /// Where member `rank` is in the call.
    fn arrived(&self, call: &CallInfo<'_>, rank: u32) -> Arrival {
        let gen = call.gen;
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
                Arrival::Here
            } else {
                Arrival::Mismatch(call.mismatch(rank, &call.describe_theirs(&theirs)))
            };
        }
        if announced == gen + 1 && kind != kind_code(call.sig.kind) {
            let what = kind_of(kind).map_or("an unknown operation", Kind::name);
            return Arrival::Elsewhere(call.mismatch(rank, what));
        }
        // Not yet here, or past this call without a slot for it: it failed
        // the call (which every member hears of through the mailbox).
        Arrival::Waiting
    }

    /// Whether every member published its slot for the call; the most
    /// telling mismatch if some made another call.
    fn all_arrived(&self, call: &CallInfo<'_>) -> Result<bool> {
        let mut all = true;
        let mut elsewhere = None;
        for rank in 0..self.n {
            match self.arrived(call, rank) {
                Arrival::Here => {}
                // Names both calls in full: the best error there is.
                Arrival::Mismatch(error) => return Err(error),
                Arrival::Elsewhere(error) => {
                    elsewhere.get_or_insert(error);
                }
                Arrival::Waiting => all = false,
            }
        }
        match elsewhere {
            Some(error) => Err(error),
            None => Ok(all),
        }
    }
}

/// Where a member is in a call (see [`HostSegment::arrived`]).
enum Arrival {
    /// It published its slot, with this call's signature.
    Here,
    /// It published its slot with another signature.
    Mismatch(Error),
    /// It is in another operation that does not use the slots.
    Elsewhere(Error),
    /// Not here yet (or gone past after failing the call).
    Waiting,
}

/// One call of this member in the shared region: what it needs to wait
/// and to name itself in errors.
pub(crate) struct HostCall<'a> {
    seg: &'a HostSegment,
    call: CallInfo<'a>,
    waiter: Waiter<'a>,
}

impl<'a> HostCall<'a> {
    /// The call `call` of segment `seg`, waiting with `waiter`.
    pub(crate) fn new(seg: &'a HostSegment, call: CallInfo<'a>, waiter: Waiter<'a>) -> Self {
        HostCall { seg, call, waiter }
    }

    /// The segment.
    pub(crate) fn seg(&self) -> &'a HostSegment {
        self.seg
    }

    /// See [`HostSegment::exchange`].
    pub(crate) async fn exchange(&mut self, data: Offer<'_>) -> Result<Contributions<'a>> {
        self.seg.exchange(&self.call, &mut self.waiter, data).await
    }

    /// Says that this member reached `step` of the call.
    pub(crate) fn reach(&self, step: u8) {
        self.seg.reach(self.call.gen, step);
    }

    /// Waits until the members `ranks` reached `step` of the call.
    pub(crate) async fn wait_for(&mut self, ranks: std::ops::Range<u32>, step: u8) -> Result<()> {
        let gen = self.call.gen;
        self.seg.wait_for(&mut self.waiter, ranks, gen, step).await
    }
}

/// The call a member is in, as [`HostSegment::exchange`] needs it.
pub(crate) struct CallInfo<'a> {
    pub(crate) gen: u64,
    pub(crate) sig: Signature,
    pub(crate) members: &'a Arc<[LocalityId]>,
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

/// The size class of the areas of a bulk region for contributions of up to
/// `largest` bytes from `n` members, or `None` where the region (an area
/// per member and a result area) would exceed [`BULK_MAX`].
fn bulk_area(largest: usize, n: u32) -> Option<usize> {
    largest
        .max(BULK_MIN)
        .checked_next_power_of_two()
        .filter(|a| a.saturating_mul(n as usize + 1) <= BULK_MAX)
}

/// A bulk region of the communicator: an input area per member, then one
/// result area, `area` bytes each.
pub(crate) struct Bulk<'a> {
    seg: &'a HostSegment,
    region: Arc<SharedRegion>,
    area: usize,
}

impl Bulk<'_> {
    fn input(&self, rank: u32) -> usize {
        rank as usize * self.area
    }

    fn result(&self) -> usize {
        self.seg.n as usize * self.area
    }

    /// Copies `bytes` into this member's input area at `offset`.
    pub(crate) fn write_input(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.check(offset, bytes.len())?;
        self.region.write(self.input(self.seg.rank) + offset, bytes);
        Ok(())
    }

    /// Lets `fill` write the first `len` bytes of this member's input area
    /// in place (encoding there saves a copy).
    pub(crate) fn fill_input(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        self.check(0, len)?;
        // SAFETY: this member's input area is its own to write between the
        // exchange that opened this call (every member is done with the
        // area's previous use) and the phase at which it says it wrote it;
        // nobody reads it before that phase.
        fill(unsafe { self.region.bytes_mut(self.input(self.seg.rank), len) })
    }

    /// Copies member `rank`'s input bytes at `offset` into `out`.
    pub(crate) fn read_input(&self, rank: u32, offset: usize, out: &mut [u8]) -> Result<()> {
        self.check(offset, out.len())?;
        self.region.read(self.input(rank) + offset, out);
        Ok(())
    }

    /// `f` of the first `len` bytes of member `rank`'s input area, in place
    /// (decoding from there saves a copy). Call only once `rank` reached the
    /// step at which it wrote them, and before this call's end.
    pub(crate) fn with_input<R>(
        &self,
        rank: u32,
        len: usize,
        f: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        self.check(0, len)?;
        // SAFETY: the writer wrote these bytes before the phase this member
        // waited for (release/acquire), and writes them again only in a
        // later call, which it enters only after every member ended this
        // one (the exchange that opens each call), so after `f` returned.
        f(unsafe { self.region.bytes(self.input(rank), len) })
    }

    /// Copies `bytes` into the result area at `offset`.
    pub(crate) fn write_result(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.check(offset, bytes.len())?;
        self.region.write(self.result() + offset, bytes);
        Ok(())
    }

    /// Copies the result area's bytes at `offset` into `out`.
    pub(crate) fn read_result(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        self.check(offset, out.len())?;
        self.region.read(self.result() + offset, out);
        Ok(())
    }

    fn check(&self, offset: usize, len: usize) -> Result<()> {
        if offset.checked_add(len).is_some_and(|end| end <= self.area) {
            Ok(())
        } else {
            Err(Error::Codec(format!(
                "{len} bytes at {offset} do not fit a bulk area of {} bytes",
                self.area
            )))
        }
    }
}

/// A future that resolves with the error that ends a wait.
pub(crate) type Failure = Pin<Box<dyn Future<Output = Error> + Send>>;

/// Where a call learns that it failed elsewhere.
pub(crate) trait FailureSource: Sync {
    /// The future that resolves if the call fails elsewhere, or the
    /// failure, if it is known already.
    fn failure(&self) -> Result<Failure>;
}

/// Polls a condition of the region until it holds, the call fails
/// elsewhere, or a member is lost. The loss signal and the mailbox are
/// only asked once a wait is not over at once (most are).
pub(crate) struct Waiter<'a> {
    members: &'a Arc<[LocalityId]>,
    lost: Option<Failure>,
    source: Option<&'a dyn FailureSource>,
    failed: Option<Failure>,
}

impl<'a> Waiter<'a> {
    /// A waiter for a call of `members`; `source` makes the future of the
    /// call's failure elsewhere, once a wait is not over at once.
    pub(crate) fn new(members: &'a Arc<[LocalityId]>, source: &'a dyn FailureSource) -> Self {
        Waiter {
            members,
            lost: None,
            source: Some(source),
            failed: None,
        }
    }

    /// The failure of the call or the loss of a member, if either came.
    fn look(&mut self) -> Result<()> {
        if let Some(source) = self.source.take() {
            self.failed = Some(source.failure()?);
        }
        let members = self.members;
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

    /// Returns once `ready` says so (or fails as it does); `seg` says how
    /// crowded the host is.
    async fn until(
        &mut self,
        seg: &HostSegment,
        mut ready: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let mut started = None;
        let mut polls = 0u32;
        loop {
            if ready()? {
                return Ok(());
            }
            polls = polls.wrapping_add(1);
            if polls % LOOK_EVERY != 0 {
                if seg.crowded {
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
            // Boxed: a nap is rare and slow, and the timer would otherwise
            // grow every collective's future (moved on each call).
            let nap = Box::pin(tokio::time::sleep((waited / 10).clamp(NAP_MIN, NAP_MAX)));
            tokio::select! {
                biased;
                error = lost => return Err(error),
                error = failed => return Err(error),
                () = nap => {}
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

    #[test]
    fn bulk_areas_are_size_classes_within_the_budget() {
        assert_eq!(bulk_area(0, 2), Some(BULK_MIN));
        assert_eq!(bulk_area(BULK_MIN + 1, 2), Some(2 * BULK_MIN));
        assert_eq!(bulk_area(8 << 20, 4), Some(8 << 20));
        assert_eq!(
            bulk_area(8 << 20, 63),
            Some(8 << 20),
            "64 areas of 8 MiB fit"
        );
        assert_eq!(bulk_area(8 << 20, 64), None, "65 do not: messages");
        assert_eq!(bulk_area(usize::MAX, 2), None);
    }

    const _: () = assert!(AREA % 64 == 0, "areas start on cache lines");
    const _: () = assert!(S_BULK_LEN + 8 <= SLOT_HEADER, "the header fits");
    const _: () = assert!(A_PHASE + 8 <= ANNOUNCE, "the phase word fits");
    const _: () = assert!(INLINE >= 64, "room for small values");
}

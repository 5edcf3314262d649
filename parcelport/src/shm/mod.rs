//! The shared-memory parcelport: parcels between localities of one host
//! through rings in shared memory, without sockets, encryption or packets.
//!
//! **Finding each other.** Before the network bootstrap every locality
//! creates its *inbox* (`hpx-<job>-in-<id>` in the shared directory, mode
//! 0600, the job tag derived from the secret): its process id, its state,
//! a doorbell and one slot per locality. After the bootstrap, when every
//! inbox exists, each locality opens the inboxes it finds: their owners
//! share this host's memory (same `/dev/shm`), the others do not, whatever
//! their addresses say. The last of them to open an inbox unlinks it.
//!
//! **Rings.** The first parcel from `s` to `r` creates the ring
//! `hpx-<job>-ring-<s>-<r>` (see [`ring`]), announces it in `r`'s inbox
//! slot `s` and rings `r`'s doorbell; `r` maps it and unlinks it. A sender
//! writes small parcels straight into the ring from the calling thread.
//! Parcels too large for the ring, or sent while the ring is full, queue
//! behind a drainer thread that keeps their order; large payloads go into
//! bulk segments that the receiver maps and reads in place, and that the
//! sender reuses once the receiver is done ([`bulk`]).
//!
//! **Wake-ups.** The runtime's worker, while it spins after activity,
//! polls the rings itself ([`Parcelport::progress`]): a parcel that arrives
//! then is handled on that worker without any hand-over between threads.
//! Otherwise one receiver thread per locality takes the parcels, and sleeps
//! on its doorbell (a futex) when there are none. Senders ring the doorbell
//! only while the receiver sleeps and no worker polls, so a polling
//! receiver costs its senders nothing.
//!
//! **Ends.** A peer's process that ends is seen at once through its pidfd:
//! lost, unless it had closed in order. An abort writes its reason into the
//! inbox and rings every peer, who read what it wrote before and then
//! report the locality lost with that reason; a loss heard another way
//! ([`ShmParcelport::lost_elsewhere`]) waits for that reading too. Files are
//! unlinked as soon as both sides hold them (a ring that a running peer
//! has not opened yet is left to that peer), and the job's files are
//! removed at the end by whoever ends (or the launcher).

mod bulk;
mod region;
mod ring;

pub use region::SharedRegion;

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{Semaphore, TryAcquireError};

use crate::parcel::{FLAG_SHARED, FLAG_UNMETERED};
use crate::shared::job_tag;
use crate::{Credit, LocalityId, Parcel, ParcelHandler, Parcelport, TransportError, MIN_CHARGE};
use ring::{futex_wait, futex_wake, Ring, Segment};

/// "hpx-inbx": an inbox's first word.
const INBOX_MAGIC: u64 = u64::from_le_bytes(*b"hpx-inbx");
const I_MAGIC: usize = 0;
const I_N: usize = 8;
const I_PID: usize = 12;
/// [`RUNNING`] while the owner runs, then [`CLOSED`] or [`ABORTED`].
const I_STATE: usize = 16;
const I_OPENED: usize = 20;
const I_REASON_LEN: usize = 24;
const I_SLEEPING: usize = 64;
const I_BELL: usize = 128;
/// How many threads of the owner poll its rings now (see `Inner::awake`).
const I_AWAKE: usize = 132;
const I_REASON: usize = 192;
/// Longest abort reason kept in an inbox.
const REASON_MAX: usize = 256;
const I_SLOTS: usize = I_REASON + REASON_MAX;

/// An inbox's owner runs.
const RUNNING: u32 = 0;
/// An inbox's owner closed in order: its end is not a loss.
const CLOSED: u32 = 1;
/// An inbox's owner aborted; the reason is in the inbox.
const ABORTED: u32 = 2;

/// Ring bytes per host: each ring gets this divided by the localities of
/// the host (within [`ring::MIN_RING`] and [`ring::MAX_RING`]), so that
/// rings between all pairs of 128 localities take at most 512 MiB.
const RING_BYTES_PER_HOST: usize = 4 << 20;
/// Parcels taken from one ring before the receiver looks at the next.
const TURN: usize = 64;
/// How long a flush waits for the peers to read what was sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the receiver looks at the rings when nothing rings the
/// doorbell: while a parcel waits for incoming budget (returning budget
/// rings nothing), or while a worker claims to poll (it may be computing).
const LOOK_AGAIN: Duration = Duration::from_millis(1);

fn inbox_len(n: u32) -> usize {
    (I_SLOTS + 4 * n as usize + 7) & !7
}

/// Settings of a shared-memory parcelport.
#[derive(Clone, Debug)]
pub struct ShmConfig {
    /// The shared-memory directory (a tmpfs: `/dev/shm`). Every locality
    /// of the job on one host must use the same.
    pub dir: PathBuf,
    /// The job secret (only a tag derived from it names the files).
    pub secret: Vec<u8>,
    /// This locality.
    pub locality: LocalityId,
    /// Localities in the job.
    pub num_localities: u32,
    /// Largest accepted parcel payload.
    pub max_payload: usize,
    /// Bytes of received parcels that may be in the handler's hands at once.
    pub incoming_budget: usize,
}

/// This locality's inbox, made before the network bootstrap: the first
/// half of [`ShmParcelport`]'s start.
#[derive(Debug)]
pub struct ShmInbox {
    cfg: ShmConfig,
    job: String,
    path: PathBuf,
    /// Taken by [`ShmInbox::start`]; while here, dropping removes the file.
    inbox: Option<Segment>,
}

impl Drop for ShmInbox {
    fn drop(&mut self) {
        // Never started (the bootstrap failed): nobody else will open it.
        if self.inbox.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl ShmInbox {
    /// Creates this locality's inbox in `cfg.dir`. Call it before the
    /// localities of the job can learn of each other (before the network
    /// bootstrap), so that every inbox exists once any locality starts.
    pub fn create(cfg: ShmConfig) -> Result<ShmInbox, TransportError> {
        if cfg.locality.0 >= cfg.num_localities {
            return Err(TransportError::NoSuchLocality(cfg.locality));
        }
        let job = job_tag(&cfg.secret);
        let path = inbox_path(&cfg.dir, &job, cfg.locality);
        let inbox = Segment::create(&path, inbox_len(cfg.num_localities))?;
        inbox
            .u32_at(I_N)
            .store(cfg.num_localities, Ordering::Relaxed);
        inbox
            .u32_at(I_PID)
            .store(std::process::id(), Ordering::Relaxed);
        inbox.u64_at(I_MAGIC).store(INBOX_MAGIC, Ordering::Release);
        Ok(ShmInbox {
            cfg,
            job,
            path,
            inbox: Some(inbox),
        })
    }

    /// Finds the localities on this host (every inbox of the job must
    /// exist by now) and starts receiving from them. `None` if this
    /// locality is alone on its host. Runs on the runtime whose blocking
    /// threads will receive.
    pub fn start(mut self) -> Result<Option<Arc<ShmParcelport>>, TransportError> {
        let (cfg, job, path) = (self.cfg.clone(), self.job.clone(), self.path.clone());
        let n = cfg.num_localities;
        let mut found = Vec::new();
        for l in (0..n).map(LocalityId).filter(|l| *l != cfg.locality) {
            let theirs = inbox_path(&cfg.dir, &job, l);
            match Segment::open(&theirs, inbox_len(n), inbox_len(n)) {
                Ok(seg)
                    if seg.u64_at(I_MAGIC).load(Ordering::Acquire) == INBOX_MAGIC
                        && seg.u32_at(I_N).load(Ordering::Relaxed) == n =>
                {
                    found.push((l, theirs, seg));
                }
                Ok(_) => {
                    return Err(TransportError::Protocol(format!(
                        "{} is not an inbox of this job",
                        theirs.display()
                    )))
                }
                // Not on this host (or it failed to make one): the network.
                Err(_) => {}
            }
        }
        // Everyone who opens an inbox counts itself; the last one unlinks it.
        let openers = found.len() as u32;
        for (_, theirs, seg) in &found {
            if seg.u32_at(I_OPENED).fetch_add(1, Ordering::AcqRel) + 1 == openers {
                let _ = std::fs::remove_file(theirs);
            }
        }
        if found.is_empty() {
            return Ok(None);
        }
        let local = found.len() + 1;
        let budget_total = cfg
            .incoming_budget
            .clamp(MIN_CHARGE, Semaphore::MAX_PERMITS);
        let found_ids: Vec<LocalityId> = found.iter().map(|(l, _, _)| *l).collect();
        let mut peers: Vec<Option<Peer>> = (0..n).map(|_| None).collect();
        let mut pidfds = Vec::new();
        for (l, _, seg) in found {
            let pid = seg.u32_at(I_PID).load(Ordering::Relaxed);
            match pidfd_open(pid) {
                Ok(fd) => pidfds.push((l, fd)),
                Err(e) => tracing::debug!(%l, pid, %e, "no pidfd: heartbeats watch it"),
            }
            peers[l.index()] = Some(Peer {
                inbox: seg,
                pid,
                out: Mutex::new(Out::default()),
                bulk_out: Mutex::new(bulk::Outgoing::default()),
                lost: OnceLock::new(),
            });
        }
        let ring_capacity = (RING_BYTES_PER_HOST / local).clamp(ring::MIN_RING, ring::MAX_RING);
        let stop_fd = eventfd()?;
        let Some(inbox) = self.inbox.take() else {
            return Err(TransportError::Shutdown);
        };
        let inner = Arc::new(Inner {
            here: cfg.locality,
            n,
            dir: cfg.dir.clone(),
            job: job.clone(),
            kept_bytes: AtomicUsize::new(0),
            bulk_in: Mutex::new(bulk::Incoming::default()),
            inbox,
            inbox_path: path,
            peers,
            ring_capacity,
            handler: OnceLock::new(),
            budget: Arc::new(Semaphore::new(budget_total)),
            budget_total,
            max_payload: cfg.max_payload,
            closing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            local: found_ids,
            rx: Mutex::new(Receiving::new(n as usize)),
            lost_elsewhere: Mutex::new(Vec::new()),
            heard_lost: AtomicBool::new(false),
            stop_fd,
            runtime: tokio::runtime::Handle::current(),
        });
        let receiver = inner.clone();
        inner.runtime.spawn_blocking(move || receiver.receive());
        let watcher = inner.clone();
        inner
            .runtime
            .spawn_blocking(move || watcher.watch_processes(pidfds));
        Ok(Some(Arc::new(ShmParcelport { inner })))
    }
}

fn inbox_path(dir: &Path, job: &str, l: LocalityId) -> PathBuf {
    dir.join(format!("hpx-{job}-in-{}", l.0))
}

fn ring_path(dir: &Path, job: &str, from: LocalityId, to: LocalityId) -> PathBuf {
    dir.join(format!("hpx-{job}-ring-{}-{}", from.0, to.0))
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned to us and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: eventfd(2) returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned to us and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Rings the doorbell of `inbox` if its owner's receiver sleeps and none of
/// its threads polls (`always`: in any case).
fn ring_bell(inbox: &Segment, always: bool) {
    fence(Ordering::SeqCst);
    if always
        || (inbox.u32_at(I_SLEEPING).load(Ordering::Relaxed) != 0
            && inbox.u32_at(I_AWAKE).load(Ordering::Relaxed) == 0)
    {
        inbox.u32_at(I_BELL).fetch_add(1, Ordering::Release);
        futex_wake(inbox.u32_at(I_BELL), 1);
    }
}

/// The receiving end of the rings into this locality, by sender.
struct Receiving {
    rings: Vec<Option<Ring>>,
    /// A parcel that waits for incoming budget.
    parked: Vec<Option<Parcel>>,
    /// The sender's abort was reported.
    aborted_seen: Vec<bool>,
    /// Its ring failed: nothing more is read from it.
    dead: Vec<bool>,
}

impl Receiving {
    fn new(n: usize) -> Receiving {
        Receiving {
            rings: (0..n).map(|_| None).collect(),
            parked: (0..n).map(|_| None).collect(),
            aborted_seen: vec![false; n],
            dead: vec![false; n],
        }
    }
}

/// What is on its way to one peer.
#[derive(Default)]
struct Out {
    ring: Option<Arc<Ring>>,
    /// Parcels waiting for the drainer, in order.
    backlog: VecDeque<Parcel>,
    /// A drainer thread owns the ring's writing end: senders queue.
    draining: bool,
}

struct Peer {
    inbox: Segment,
    pid: u32,
    out: Mutex<Out>,
    /// Bulk segments to it (only the drainer writes them).
    bulk_out: Mutex<bulk::Outgoing>,
    lost: OnceLock<String>,
}

impl Peer {
    /// Its state and, if it aborted, why.
    fn state(&self) -> (u32, String) {
        let state = self.inbox.u32_at(I_STATE).load(Ordering::Acquire);
        if state != ABORTED {
            return (state, String::new());
        }
        let len =
            (self.inbox.u32_at(I_REASON_LEN).load(Ordering::Relaxed) as usize).min(REASON_MAX);
        let mut reason = vec![0u8; len];
        for (i, b) in reason.iter_mut().enumerate() {
            // Bytes of the reason, read as the words they lie in.
            let word = self
                .inbox
                .u32_at(I_REASON + (i & !3))
                .load(Ordering::Relaxed);
            *b = word.to_le_bytes()[i & 3];
        }
        (state, String::from_utf8_lossy(&reason).into_owned())
    }
}

struct Inner {
    here: LocalityId,
    n: u32,
    dir: PathBuf,
    job: String,
    /// Bytes of bulk segments kept for reuse (see [`bulk`]).
    kept_bytes: AtomicUsize,
    /// The bulk segments mapped from senders.
    bulk_in: Mutex<bulk::Incoming>,
    inbox: Segment,
    inbox_path: PathBuf,
    /// The localities on this host, by id.
    peers: Vec<Option<Peer>>,
    ring_capacity: usize,
    handler: OnceLock<Arc<dyn ParcelHandler>>,
    budget: Arc<Semaphore>,
    budget_total: usize,
    max_payload: usize,
    /// No new parcels are accepted.
    closing: AtomicBool,
    /// The threads end.
    stopping: AtomicBool,
    /// The localities of this host but this one.
    local: Vec<LocalityId>,
    /// The receiving end, for the receiver thread or a polling worker.
    rx: Mutex<Receiving>,
    /// Peers found lost another way, declared lost by the next pass once
    /// their rings are read ([`ShmParcelport::lost_elsewhere`]).
    lost_elsewhere: Mutex<Vec<(LocalityId, String)>>,
    /// Whether `lost_elsewhere` may hold any.
    heard_lost: AtomicBool,
    /// Written to stop the process watcher.
    stop_fd: OwnedFd,
    runtime: tokio::runtime::Handle,
}

/// A parcelport over shared memory between the localities of one host
/// (see the module's documentation). It reaches only those: the runtime
/// pairs it with a network parcelport for the others.
pub struct ShmParcelport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ShmParcelport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmParcelport")
            .field("here", &self.inner.here)
            .field("peers", &self.peers())
            .finish_non_exhaustive()
    }
}

impl ShmParcelport {
    /// Whether parcels to `dest` go through shared memory.
    pub fn reaches(&self, dest: LocalityId) -> bool {
        self.inner
            .peers
            .get(dest.index())
            .is_some_and(Option::is_some)
    }

    /// The localities reached through shared memory.
    pub fn peers(&self) -> Vec<LocalityId> {
        (0..self.inner.n)
            .map(LocalityId)
            .filter(|l| self.reaches(*l))
            .collect()
    }

    /// `s` was found lost another way (its network connection closed, the
    /// heartbeats): it is declared lost here once what it wrote to this
    /// locality before it went has been read, so that its last parcels (such
    /// as the abort it sent) are heard before its end, whichever way the
    /// news came first.
    pub fn lost_elsewhere(&self, s: LocalityId, reason: String) {
        self.inner.lost_elsewhere.lock().push((s, reason));
        self.inner.heard_lost.store(true, Ordering::SeqCst);
        ring_bell(&self.inner.inbox, true);
    }
}

impl Drop for ShmParcelport {
    fn drop(&mut self) {
        self.inner.stop();
    }
}

impl Parcelport for ShmParcelport {
    fn here(&self) -> LocalityId {
        self.inner.here
    }

    fn num_localities(&self) -> u32 {
        self.inner.n
    }

    fn attach(&self, handler: Arc<dyn ParcelHandler>) {
        if self.inner.handler.set(handler).is_ok() {
            ring_bell(&self.inner.inbox, true);
        }
    }

    fn send(&self, parcel: Parcel) -> Result<(), TransportError> {
        self.inner.send(parcel)
    }

    fn flush_and_close(&self) -> futures::future::BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            inner.closing.store(true, Ordering::SeqCst);
            let flushing = inner.clone();
            let _ = tokio::task::spawn_blocking(move || flushing.flush()).await;
            inner.inbox.u32_at(I_STATE).store(CLOSED, Ordering::Release);
            inner.stop();
        })
    }

    fn abort(&self, reason: &str) {
        let inner = &self.inner;
        inner.closing.store(true, Ordering::SeqCst);
        let bytes = &reason.as_bytes()[..reason.len().min(REASON_MAX)];
        for (i, chunk) in bytes.chunks(4).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            inner
                .inbox
                .u32_at(I_REASON + 4 * i)
                .store(u32::from_le_bytes(word), Ordering::Relaxed);
        }
        inner
            .inbox
            .u32_at(I_REASON_LEN)
            .store(bytes.len() as u32, Ordering::Relaxed);
        inner
            .inbox
            .u32_at(I_STATE)
            .store(ABORTED, Ordering::Release);
        for peer in inner.peers.iter().flatten() {
            ring_bell(&peer.inbox, true);
        }
        inner.stop();
    }

    fn declare_lost(&self, locality: LocalityId, reason: String) {
        self.inner.peer_lost(locality, reason);
    }

    fn route(&self, dest: LocalityId) -> &'static str {
        if dest == self.inner.here {
            "self"
        } else {
            "shm"
        }
    }

    fn progress(&self) -> bool {
        self.inner.progress()
    }

    fn payload_buffer(&self, dest: LocalityId, capacity: usize) -> Option<crate::PayloadBuffer> {
        let inner = &self.inner;
        if dest == inner.here || inner.closing.load(Ordering::Relaxed) {
            return None;
        }
        let peer = inner.peer(dest).ok()?;
        if peer.lost.get().is_some() {
            return None;
        }
        let place = bulk::Place {
            dir: &inner.dir,
            job: &inner.job,
            here: inner.here,
            kept_bytes: &inner.kept_bytes,
        };
        let lent = peer.bulk_out.lock().lend(&place, dest, capacity)?;
        Some(crate::PayloadBuffer::new(lent))
    }

    fn shared_region(
        &self,
        key: &str,
        len: usize,
        members: &[LocalityId],
    ) -> Option<Result<SharedRegion, TransportError>> {
        let here = self.inner.here;
        if !members.iter().all(|m| *m == here || self.reaches(*m)) {
            return None;
        }
        let n = u32::try_from(members.len()).unwrap_or(u32::MAX);
        Some(
            SharedRegion::open(&self.inner.dir, &self.inner.job, key, len, n)
                .map_err(TransportError::Io),
        )
    }

    fn awake(&self, on: bool) {
        self.inner.awake(on);
    }
}

impl Inner {
    fn peer(&self, dest: LocalityId) -> Result<&Peer, TransportError> {
        self.peers
            .get(dest.index())
            .and_then(Option::as_ref)
            .ok_or(TransportError::NoSuchLocality(dest))
    }

    fn send(self: &Arc<Self>, parcel: Parcel) -> Result<(), TransportError> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(TransportError::Shutdown);
        }
        if parcel.payload.len() > self.max_payload {
            return Err(TransportError::Protocol(format!(
                "parcel of {} bytes exceeds the limit of {}",
                parcel.payload.len(),
                self.max_payload
            )));
        }
        let dest = parcel.header.dest;
        if dest == self.here {
            let handler = self
                .handler
                .get()
                .cloned()
                .ok_or(TransportError::Shutdown)?;
            self.runtime
                .spawn(async move { handler.on_parcel(parcel, Credit::unmetered()) });
            return Ok(());
        }
        let peer = self.peer(dest)?;
        if let Some(reason) = peer.lost.get() {
            return Err(TransportError::PeerLost {
                locality: dest,
                reason: reason.clone(),
            });
        }
        let mut out = peer.out.lock();
        let ring = match &out.ring {
            Some(ring) => ring.clone(),
            None => {
                let ring = Arc::new(self.make_ring(dest, peer)?);
                out.ring = Some(ring.clone());
                ring
            }
        };
        if !out.draining
            && parcel.payload.len() <= ring.max_inline()
            && ring.try_write(&parcel.header, &parcel.payload)?
        {
            drop(out);
            ring_bell(&peer.inbox, false);
            return Ok(());
        }
        out.backlog.push_back(parcel);
        if !out.draining {
            out.draining = true;
            let inner = self.clone();
            self.runtime.spawn_blocking(move || inner.drain(dest));
        }
        Ok(())
    }

    /// Creates the ring to `dest` and announces it in its inbox.
    fn make_ring(&self, dest: LocalityId, peer: &Peer) -> Result<Ring, TransportError> {
        let ring = Ring::create(
            &ring_path(&self.dir, &self.job, self.here, dest),
            self.ring_capacity,
        )?;
        peer.inbox
            .u32_at(I_SLOTS + 4 * self.here.index())
            .store(1, Ordering::Release);
        Ok(ring)
    }

    /// Writes the backlog to `dest` in order, waiting for room as needed;
    /// large payloads go into bulk segments.
    fn drain(self: Arc<Self>, dest: LocalityId) {
        let Ok(peer) = self.peer(dest) else { return };
        loop {
            let (parcel, ring) = {
                let mut out = peer.out.lock();
                match (out.backlog.pop_front(), out.ring.clone()) {
                    (Some(p), Some(ring)) if peer.lost.get().is_none() => (p, ring),
                    _ => {
                        out.backlog.clear();
                        out.draining = false;
                        return;
                    }
                }
            };
            let (mut header, mut payload) = (parcel.header, parcel.payload);
            if payload.len() > ring.max_inline() {
                let place = bulk::Place {
                    dir: &self.dir,
                    job: &self.job,
                    here: self.here,
                    kept_bytes: &self.kept_bytes,
                };
                let put = peer.bulk_out.lock().put(&place, dest, &payload);
                match put {
                    Ok(note) => {
                        payload = note;
                        header.flags |= FLAG_SHARED;
                    }
                    Err(e) => {
                        self.peer_lost(
                            dest,
                            format!(
                                "a payload of {} bytes could not be written: {e}",
                                payload.len()
                            ),
                        );
                        continue;
                    }
                }
            }
            loop {
                if peer.lost.get().is_some() || self.stopping.load(Ordering::Relaxed) {
                    break;
                }
                match ring.try_write(&header, &payload) {
                    Ok(true) => {
                        ring_bell(&peer.inbox, false);
                        break;
                    }
                    Ok(false) => ring.wait_for_space(
                        || {
                            ring.has_room(payload.len())
                                || peer.lost.get().is_some()
                                || self.stopping.load(Ordering::Relaxed)
                        },
                        FLUSH_TIMEOUT,
                    ),
                    Err(e) => {
                        tracing::error!(%e, "dropping unencodable parcel");
                        break;
                    }
                }
            }
        }
    }

    /// Waits (at most [`FLUSH_TIMEOUT`]) until the peers have read
    /// everything sent to them.
    fn flush(&self) {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        for peer in self.peers.iter().flatten() {
            loop {
                let (ring, busy) = {
                    let out = peer.out.lock();
                    (out.ring.clone(), out.draining)
                };
                let Some(ring) = ring else { break };
                let done = || !peer.out.lock().draining && ring.is_drained();
                let left = deadline.saturating_duration_since(Instant::now());
                if (!busy && ring.is_drained()) || peer.lost.get().is_some() || left.is_zero() {
                    break;
                }
                ring.wait_for_space(|| done() || peer.lost.get().is_some(), left);
            }
        }
    }

    /// Ends the threads, wakes every waiter and removes the files this
    /// locality made or was sent that are still there. Only those: the
    /// others may still be talking (an abort reaches them through shared
    /// memory too); the launcher removes what a killed locality left.
    fn stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        ring_bell(&self.inbox, true);
        let one = 1u64.to_ne_bytes();
        // SAFETY: write(2) of 8 bytes to our own eventfd.
        unsafe { libc::write(self.stop_fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        for peer in self.peers.iter().flatten() {
            if let Some(ring) = &peer.out.lock().ring {
                ring.wake_producer();
            }
        }
        let _ = std::fs::remove_file(&self.inbox_path);
        for l in (0..self.n).map(LocalityId) {
            // A ring to a peer that still runs and has not opened it yet is
            // left to that peer: it may hold this locality's last parcels
            // (its abort), which the peer reads before it declares this
            // locality lost, and it unlinks the ring as it opens it (or
            // removes it as it stops itself).
            let unread = self
                .peer(l)
                .is_ok_and(|p| p.lost.get().is_none() && p.state().0 == RUNNING);
            if !unread {
                let _ = std::fs::remove_file(ring_path(&self.dir, &self.job, self.here, l));
            }
            let _ = std::fs::remove_file(ring_path(&self.dir, &self.job, l, self.here));
        }
        for peer in self.peers.iter().flatten() {
            peer.bulk_out.lock().release(&self.kept_bytes);
        }
        // Bulk segments this locality made that nobody mapped.
        let prefix = bulk::bulk_prefix(&self.job, self.here);
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// What reading from `s` failed with: its abort if it aborted (it
    /// removed its files as it went), nothing if it closed in order, else a
    /// broken protocol.
    fn read_failed(&self, s: LocalityId, e: &TransportError) {
        let Ok(peer) = self.peer(s) else { return };
        match peer.state() {
            (CLOSED, _) => {}
            (ABORTED, reason) => self.peer_lost(s, format!("it aborted: {reason}")),
            _ => {
                tracing::error!(peer = %s, %e, "protocol violation");
                self.peer_lost(s, format!("protocol violation: {e}"));
            }
        }
    }

    fn peer_lost(&self, locality: LocalityId, reason: String) {
        let Ok(peer) = self.peer(locality) else {
            return;
        };
        if self.closing.load(Ordering::SeqCst) || peer.lost.set(reason.clone()).is_err() {
            return;
        }
        tracing::warn!(%locality, %reason, "locality lost");
        self.bulk_in.lock().forget(locality);
        peer.bulk_out.lock().release(&self.kept_bytes);
        if let Some(ring) = &peer.out.lock().ring {
            ring.wake_producer();
        }
        if let Some(handler) = self.handler.get() {
            handler.on_peer_lost(locality, &reason);
        }
    }

    /// The receiver thread: takes parcels from every ring into this
    /// locality, and sleeps on the doorbell when there are none (the
    /// runtime's spinning worker polls meanwhile, see [`Inner::progress`]).
    fn receive(self: Arc<Self>) {
        while !self.stopping.load(Ordering::Relaxed) {
            let Some(handler) = self.handler.get().cloned() else {
                self.sleep(|| self.handler.get().is_some(), false);
                continue;
            };
            if self.pass(&mut self.rx.lock(), &handler) {
                continue;
            }
            let waiting_for_budget = self.rx.lock().parked.iter().any(Option::is_some);
            // While a worker claims to poll, senders do not ring: should that
            // worker compute instead of polling, the sleep is short.
            self.sleep(|| self.has_work(&self.rx.lock()), waiting_for_budget);
        }
    }

    /// One pass over the rings of the host's localities: takes what they
    /// hold and hands it to `handler`. Whether anything came.
    fn pass(&self, rx: &mut Receiving, handler: &Arc<dyn ParcelHandler>) -> bool {
        let mut busy = false;
        if self.heard_lost.swap(false, Ordering::SeqCst) {
            let heard = std::mem::take(&mut *self.lost_elsewhere.lock());
            for (s, reason) in heard {
                if self.peer(s).is_ok_and(|p| p.lost.get().is_none()) {
                    self.read_all(s, rx, handler);
                    self.peer_lost(s, reason);
                }
            }
        }
        for &s in &self.local {
            let i = s.index();
            let Ok(peer) = self.peer(s) else { continue };
            if peer.lost.get().is_some() || rx.dead[i] {
                continue;
            }
            let (state, reason) = peer.state();
            if state == ABORTED && !rx.aborted_seen[i] {
                rx.aborted_seen[i] = true;
                // What it wrote before it aborted is read first (its last
                // parcels may say why the job ends): its parcels and its
                // end arrive in the order it sent them. It writes no more.
                self.read_all(s, rx, handler);
                self.peer_lost(s, format!("it aborted: {reason}"));
                continue;
            }
            if rx.rings[i].is_none() {
                match self.open_ring(s) {
                    Ok(ring) => rx.rings[i] = ring,
                    Err(e) => {
                        self.read_failed(s, &e);
                        rx.dead[i] = true;
                        continue;
                    }
                }
            }
            let Some(ring) = &rx.rings[i] else {
                continue;
            };
            match self.take(s, ring, &mut rx.parked[i], handler) {
                Ok(took) => busy |= took,
                Err(e) => {
                    self.read_failed(s, &e);
                    rx.dead[i] = true;
                }
            }
        }
        busy
    }

    /// Takes everything the ring of `s` holds (opening it if it was
    /// announced and never read) before `s` is declared lost; a parcel that
    /// waits for budget, and what follows it, is not heard.
    fn read_all(&self, s: LocalityId, rx: &mut Receiving, handler: &Arc<dyn ParcelHandler>) {
        let i = s.index();
        if rx.dead[i] {
            return;
        }
        if rx.rings[i].is_none() {
            rx.rings[i] = self.open_ring(s).ok().flatten();
        }
        if let Some(ring) = &rx.rings[i] {
            while let Ok(true) = self.take(s, ring, &mut rx.parked[i], handler) {}
        }
    }

    /// Whether a pass would find something: a parcel, a new ring, an abort,
    /// a peer found lost elsewhere.
    fn has_work(&self, rx: &Receiving) -> bool {
        self.heard_lost.load(Ordering::SeqCst)
            || self.local.iter().any(|s| {
                let i = s.index();
                let Ok(peer) = self.peer(*s) else {
                    return false;
                };
                peer.lost.get().is_none()
                    && !rx.dead[i]
                    && (rx.rings[i].as_ref().map_or_else(
                        || self.inbox.u32_at(I_SLOTS + 4 * i).load(Ordering::Acquire) != 0,
                        Ring::has_data,
                    ) || (peer.inbox.u32_at(I_STATE).load(Ordering::Acquire) == ABORTED
                        && !rx.aborted_seen[i]))
            })
    }

    /// A pass on the calling thread, unless another runs one now.
    fn progress(&self) -> bool {
        let Some(handler) = self.handler.get() else {
            return false;
        };
        match self.rx.try_lock() {
            Some(mut rx) => self.pass(&mut rx, handler),
            None => false,
        }
    }

    /// Someone on this locality polls the rings ([`Inner::progress`]) from
    /// now on (`true`) or no longer (`false`): while one does, senders need
    /// not ring the doorbell. At the end, what arrived meanwhile wakes the
    /// receiver thread.
    fn awake(&self, on: bool) {
        let awake = self.inbox.u32_at(I_AWAKE);
        if on {
            awake.fetch_add(1, Ordering::SeqCst);
            // A receiver asleep without a time limit would hear no more
            // doorbells: wake it to take a short sleep instead.
            fence(Ordering::SeqCst);
            if self.inbox.u32_at(I_SLEEPING).load(Ordering::SeqCst) != 0 {
                ring_bell(&self.inbox, true);
            }
            return;
        }
        awake.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let pending = self.rx.try_lock().map_or(true, |rx| self.has_work(&rx));
        if pending {
            ring_bell(&self.inbox, true);
        }
    }

    /// Sleeps on the doorbell unless `ready` (or a stop) holds once the
    /// senders are sure to ring it.
    /// A worker that starts to poll meanwhile rings it too (see
    /// [`Inner::awake`]): while one claims to poll, the sleep is
    /// [`LOOK_AGAIN`] at most, and so it is with `budget` (a parcel waits for
    /// budget).
    fn sleep(&self, ready: impl Fn() -> bool, budget: bool) {
        let sleeping = self.inbox.u32_at(I_SLEEPING);
        let bell = self.inbox.u32_at(I_BELL);
        let seq = bell.load(Ordering::Acquire);
        sleeping.store(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let polled = self.inbox.u32_at(I_AWAKE).load(Ordering::SeqCst) != 0;
        if !ready() && !self.stopping.load(Ordering::SeqCst) {
            futex_wait(bell, seq, (budget || polled).then_some(LOOK_AGAIN));
        }
        sleeping.store(0, Ordering::Relaxed);
    }

    /// Maps the ring from `s` once its sender has announced it.
    fn open_ring(&self, s: LocalityId) -> Result<Option<Ring>, TransportError> {
        if self
            .inbox
            .u32_at(I_SLOTS + 4 * s.index())
            .load(Ordering::Acquire)
            == 0
        {
            return Ok(None);
        }
        let path = ring_path(&self.dir, &self.job, s, self.here);
        let ring = Ring::open(&path)?;
        // Both sides hold it now.
        let _ = std::fs::remove_file(&path);
        Ok(Some(ring))
    }

    /// Takes up to [`TURN`] parcels from the ring of `s`; whether any came.
    fn take(
        &self,
        s: LocalityId,
        ring: &Ring,
        parked: &mut Option<Parcel>,
        handler: &Arc<dyn ParcelHandler>,
    ) -> Result<bool, TransportError> {
        let mut took = false;
        for _ in 0..TURN {
            let parcel = match parked.take() {
                Some(p) => p,
                None => match ring.read(self.max_payload)? {
                    Some(p) => self.check(s, p)?,
                    None => break,
                },
            };
            let credit = if parcel.header.flags & FLAG_UNMETERED != 0 {
                Credit::unmetered()
            } else {
                let charge = parcel.payload.len().clamp(MIN_CHARGE, self.budget_total);
                // Bounded by budget_total, which fits a semaphore's permits.
                let charge = u32::try_from(charge).unwrap_or(u32::MAX);
                match self.budget.clone().try_acquire_many_owned(charge) {
                    Ok(permit) => Credit::metered(permit),
                    Err(TryAcquireError::NoPermits) => {
                        *parked = Some(parcel);
                        break;
                    }
                    Err(TryAcquireError::Closed) => return Ok(took),
                }
            };
            took = true;
            handler.on_parcel(parcel, credit);
        }
        Ok(took)
    }

    /// Checks a parcel from `s` and reads its payload if it lies apart.
    fn check(&self, s: LocalityId, mut parcel: Parcel) -> Result<Parcel, TransportError> {
        if parcel.header.source != s || parcel.header.dest != self.here {
            return Err(TransportError::Protocol(format!(
                "parcel from {} to {} in the ring of locality {s}",
                parcel.header.source, parcel.header.dest
            )));
        }
        if parcel.header.flags & FLAG_SHARED != 0 {
            parcel.payload = self.bulk_in.lock().take(
                &self.dir,
                &self.job,
                s,
                self.here,
                &parcel.payload,
                self.max_payload,
            )?;
            parcel.header.flags &= !FLAG_SHARED;
        }
        Ok(parcel)
    }

    /// The process watcher: a peer whose process ends without closing in
    /// order is lost at once.
    fn watch_processes(self: Arc<Self>, mut pidfds: Vec<(LocalityId, OwnedFd)>) {
        loop {
            let mut polled: Vec<libc::pollfd> = std::iter::once(self.stop_fd.as_raw_fd())
                .chain(pidfds.iter().map(|(_, fd)| fd.as_raw_fd()))
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: poll(2) on descriptors we own, for as long as they live.
            let ready =
                unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, -1) };
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            if ready < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!(e = %std::io::Error::last_os_error(), "process watch ends");
                return;
            }
            let ended: Vec<usize> = polled
                .iter()
                .skip(1)
                .enumerate()
                .filter(|(_, p)| p.revents != 0)
                .map(|(i, _)| i)
                .collect();
            for i in ended.into_iter().rev() {
                let (l, _) = pidfds.remove(i);
                let Ok(peer) = self.peer(l) else { continue };
                match peer.state() {
                    (CLOSED, _) => {}
                    (ABORTED, reason) => self.peer_lost(l, format!("it aborted: {reason}")),
                    _ => self.peer_lost(l, format!("its process (pid {}) ended", peer.pid)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inboxes_hold_their_slots() {
        assert!(inbox_len(1) >= I_SLOTS + 4);
        assert!(inbox_len(128) >= I_SLOTS + 4 * 128);
        assert_eq!(inbox_len(3) % 8, 0);
        assert_eq!(I_REASON % 4, 0);
    }
}

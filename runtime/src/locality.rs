//! One locality of a running job: everything a run has (ids, transport,
//! pending requests, work counters, the end-of-job state, AGAS tables,
//! extensions of the layers above) in one object, [`Locality`].
//!
//! Parcels arrive where the transport reads them ([`Locality::on_parcel`]).
//! Replies, control parcels and direct actions are handled right there;
//! every other call goes to a queue that drainer tasks on the worker threads
//! empty (one drainer per worker at most), so a long computation never
//! delays the parcels behind it.

use std::any::{Any, TypeId};
use rustc_hash::FxHashMap as HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Context;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_queue::SegQueue;
use futures::future::BoxFuture;
use hpx_parcelport::parcel::FLAG_UNMETERED;
use hpx_parcelport::{Credit, LocalityId, Parcel, ParcelHandler, ParcelHeader, Parcelport};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

use crate::action::{run_caught, ActionEntry, Registry};
use crate::codec::{self, Minted};
use crate::counters::cells::Cells;
use crate::termination::{Command, Event, Termination};
use crate::trace::{self, Tracer};
use crate::warm::Warmth;
use crate::work::Work;
use crate::{Error, Result};

/// Parcel kinds used by the runtime.
pub(crate) mod kind {
    /// Run an action and answer.
    pub(crate) const REQUEST: u8 = 1;
    /// Run an action, no answer.
    pub(crate) const POST: u8 = 2;
    /// An action's result.
    pub(crate) const REPLY: u8 = 3;
    /// An action's failure.
    pub(crate) const FAILURE: u8 = 4;
    /// Runtime control traffic.
    pub(crate) const CONTROL: u8 = 5;
}

/// The runtime's own messages (end of job).
#[derive(Serialize, Deserialize, Debug)]
enum Control {
    MainDone {
        failure: Option<String>,
    },
    Query {
        wave: u64,
    },
    Report {
        wave: u64,
        sent: u64,
        done: u64,
    },
    Shutdown,
    Abort {
        reason: String,
        culprit: Option<LocalityId>,
    },
    Failed {
        reason: String,
    },
    /// A locality found another one lost (to the root, which may not see
    /// it yet: a peer of the same host notices at once).
    Lost {
        locality: LocalityId,
        reason: String,
    },
    /// The root's clock (Unix nanoseconds) when it sent this, to measure
    /// the offset of the receiver's clock (while tracing).
    ClockPing {
        t0: i64,
    },
    /// The answer to a [`Control::ClockPing`]: its `t0`, and the answering
    /// locality's clock when it answered.
    ClockPong {
        t0: i64,
        t1: i64,
    },
}

/// How long the root waits for the clock offsets of a traced job.
const CLOCK_LIMIT: Duration = Duration::from_secs(2);

/// How long an aborting locality tries to deliver what it queued (the
/// root's abort notices, say) before it closes its connections anyway.
const ABORT_FLUSH: std::time::Duration = std::time::Duration::from_millis(300);

/// Where the job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Running.
    Running,
    /// Ended normally.
    Shutdown,
    /// Ended with an error.
    Aborted(String),
}

/// Calls a drainer runs before it lets the worker's other tasks run.
const DRAIN_BATCH: u32 = 64;

/// A received request or post, waiting to run.
#[derive(Debug)]
struct Call {
    header: ParcelHeader,
    payload: Bytes,
    credit: Credit,
    /// The action called (its registry index and entry), if this binary
    /// has it: looked up once, on arrival.
    action: Option<(usize, &'static ActionEntry)>,
}

/// A request waiting for its answer.
struct Pending {
    dest: LocalityId,
    action: &'static str,
    reply: oneshot::Sender<Result<Bytes>>,
}

/// Extensions of the layers above, by type.
type Extensions = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// Everything one locality of a running job holds.
pub(crate) struct Locality {
    here: LocalityId,
    n: u32,
    port: Arc<dyn Parcelport>,
    args: Vec<String>,
    /// The worker threads: actions and user tasks run there.
    workers: Handle,
    next_request: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    /// Received calls of plain (not direct) actions, waiting to run.
    calls: SegQueue<Call>,
    /// Tasks draining `calls` now.
    drainers: AtomicUsize,
    /// At most this many drainers: one per worker thread.
    max_drainers: usize,
    work: Work,
    warmth: Arc<Warmth>,
    phase: watch::Sender<Phase>,
    /// The end-of-job state machine (used on the root only).
    termination: Mutex<Termination>,
    /// Whose failure aborted the job (set before the abort is published).
    culprit: std::sync::OnceLock<LocalityId>,
    /// For each locality, why it was lost, once it is: the one loss signal.
    lost: watch::Sender<Vec<Option<String>>>,
    /// Registers credit minted for component handles with their owners.
    register_minted: RegisterMinted,
    extensions: RwLock<Extensions>,
    /// Performance counters.
    counters: Arc<Cells>,
    /// The timeline, while tracing.
    tracer: Option<Arc<Tracer>>,
}

/// How a locality registers credit minted for component handles (given by
/// the layer that owns components, so this one needs not know them).
pub(crate) type RegisterMinted = fn(Minted) -> BoxFuture<'static, Result<()>>;

impl std::fmt::Debug for Locality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locality")
            .field("here", &self.here)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

/// Hands what the transport receives to the locality.
struct Dispatcher(Weak<Locality>);

impl ParcelHandler for Dispatcher {
    fn on_parcel(&self, parcel: Parcel, credit: Credit) {
        if let Some(locality) = self.0.upgrade() {
            locality.on_parcel(parcel, credit);
        }
    }

    fn on_peer_lost(&self, locality: LocalityId, reason: &str) {
        if let Some(this) = self.0.upgrade() {
            this.on_peer_lost(locality, reason);
        }
    }
}

impl Locality {
    /// A locality of a job that has joined it over `port`. It receives
    /// nothing until [`Locality::start_receiving`].
    pub(crate) fn new(
        port: Arc<dyn Parcelport>,
        args: Vec<String>,
        workers: Handle,
        warmth: Arc<Warmth>,
        register_minted: RegisterMinted,
        tracing: bool,
    ) -> Arc<Locality> {
        let n = port.num_localities();
        let routes = (0..n).map(|l| port.route(LocalityId(l))).collect();
        let counters = Arc::new(Cells::new(port.here(), routes));
        let tracer = tracing.then(|| Arc::new(Tracer::new(port.here(), n)));
        let (phase, _) = watch::channel(Phase::Running);
        let (lost, _) = watch::channel(vec![None; n as usize]);
        let max_drainers = workers.metrics().num_workers().max(1);
        Arc::new(Locality {
            here: port.here(),
            n,
            port,
            args,
            workers,
            next_request: AtomicU64::new(1),
            pending: Mutex::new(HashMap::default()),
            calls: SegQueue::new(),
            drainers: AtomicUsize::new(0),
            max_drainers,
            work: Work::default(),
            warmth,
            phase,
            termination: Mutex::new(Termination::new(n)),
            culprit: std::sync::OnceLock::new(),
            lost,
            register_minted,
            extensions: RwLock::new(HashMap::default()),
            counters,
            tracer,
        })
    }

    /// This locality's counters.
    pub(crate) fn counters(&self) -> &Arc<Cells> {
        &self.counters
    }

    /// This locality's timeline, while tracing.
    pub(crate) fn tracer(&self) -> Option<&Arc<Tracer>> {
        self.tracer.as_ref()
    }

    /// Action `name` (registry index `index`) ran here from `started` until
    /// now, and `waited` on the way or not.
    pub(crate) fn action_ran(
        &self,
        index: usize,
        name: &'static str,
        started: Instant,
        waited: bool,
    ) {
        self.counters.ran(index, started.elapsed());
        match &self.tracer {
            Some(tracer) if waited => tracer.span("action", name, started),
            Some(tracer) => tracer.slice("action", name, started),
            None => {}
        }
    }

    /// A sequence number for a post or control parcel: one of its own while
    /// tracing (its flow id), 0 otherwise.
    fn trace_seq(&self) -> u64 {
        match self.tracer {
            Some(_) => self.next_request.fetch_add(1, Ordering::Relaxed),
            None => 0,
        }
    }

    /// On the root of a traced job: measures every locality's clock offset
    /// (rounds of pings; the best round trip wins), for the trace's merge.
    /// Waits at most [`CLOCK_LIMIT`].
    pub(crate) async fn measure_clocks(&self) {
        let Some(tracer) = &self.tracer else {
            return;
        };
        if !self.here.is_root() || self.n == 1 {
            return;
        }
        for i in 1..self.n {
            self.control(
                LocalityId(i),
                &Control::ClockPing {
                    t0: tracer.now_ns(),
                },
            );
        }
        tracer.clocks_measured(CLOCK_LIMIT).await;
    }

    /// Starts handling what arrives. Call it once the locality's threads
    /// can find it: received actions run at once.
    pub(crate) fn start_receiving(self: &Arc<Self>) {
        self.port.attach(Arc::new(Dispatcher(Arc::downgrade(self))));
    }

    /// This locality.
    pub(crate) fn here(&self) -> LocalityId {
        self.here
    }

    /// Number of localities.
    pub(crate) fn num_localities(&self) -> u32 {
        self.n
    }

    /// Registers credit minted for component handles with their owners;
    /// resolves once they have it.
    pub(crate) fn register_minted(&self, minted: Minted) -> BoxFuture<'static, Result<()>> {
        if minted.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        (self.register_minted)(minted)
    }

    /// Program arguments without `--hpx:` flags.
    pub(crate) fn args(&self) -> &[String] {
        &self.args
    }

    /// Listen addresses of all localities (empty for a one-locality job).
    pub(crate) fn addresses(&self) -> Vec<std::net::SocketAddr> {
        self.port.addresses()
    }

    /// The region of shared memory `key` for `members` of this host (see
    /// [`crate::shared_region`]).
    pub(crate) fn shared_region(
        &self,
        key: &str,
        len: usize,
        members: &[LocalityId],
    ) -> Option<std::result::Result<hpx_parcelport::SharedRegion, hpx_parcelport::TransportError>>
    {
        self.port.shared_region(key, len, members)
    }

    /// The extension of type `T`, made with `init` on first use.
    pub(crate) fn extension<T: Send + Sync + 'static>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let key = TypeId::of::<T>();
        if let Some(found) = self.extension_of::<T>(key) {
            return found;
        }
        // Made outside the lock: `init` may use the runtime.
        let made: Arc<dyn Any + Send + Sync> = Arc::new(init());
        let stored = self.extensions.write().entry(key).or_insert(made).clone();
        match stored.downcast::<T>() {
            Ok(t) => t,
            Err(_) => unreachable!("extensions are stored under their own type id"),
        }
    }

    fn extension_of<T: Send + Sync + 'static>(&self, key: TypeId) -> Option<Arc<T>> {
        let found = self.extensions.read().get(&key).cloned()?;
        found.downcast::<T>().ok()
    }

    /// Runs `work` on the workers as counted work (it keeps the job from ending).
    pub(crate) fn spawn_counted<F>(self: &Arc<Self>, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.work.begin();
        self.counters.spawned();
        let this = self.clone();
        self.workers.spawn(async move {
            let out = work.await;
            this.work.end();
            out
        })
    }

    /// Runs `work` on the workers, uncounted.
    pub(crate) fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.counters.spawned();
        self.workers.spawn(work)
    }

    fn header(&self, kind: u8, dest: LocalityId, tag: u64, seq: u64) -> ParcelHeader {
        let flags = if kind == kind::REQUEST || kind == kind::POST {
            0
        } else {
            FLAG_UNMETERED
        };
        ParcelHeader {
            kind,
            flags,
            source: self.here,
            dest,
            tag,
            seq,
        }
    }

    /// Sends a parcel (`name`: its action, or what it is, for the trace).
    ///
    /// Once the job has been aborted the transport closes; a send that
    /// fails then reports the abort's reason, not the closed transport.
    fn send(&self, header: ParcelHeader, payload: Bytes, name: &'static str) -> Result<()> {
        self.warmth.touch();
        let started = self.tracer.as_ref().map(|_| Instant::now());
        let parcel = Parcel { header, payload };
        let bytes = parcel.wire_len();
        let sent = self.port.send(parcel).map_err(|e| match self.aborted() {
            Some(reason) => Error::Aborted(reason),
            None => Error::from(e),
        });
        if sent.is_ok() {
            self.counters.sent(header.dest, bytes);
            if let (Some(tracer), Some(started)) = (&self.tracer, started) {
                tracer.sent(
                    name,
                    trace::flow_of(&header, is_reply(header.kind)),
                    started,
                );
            }
        }
        sent
    }

    /// Sends a request for action `id` to `dest`; the receiver gets the
    /// encoded result or the error.
    pub(crate) fn request(
        &self,
        dest: LocalityId,
        id: u64,
        action: &'static str,
        args: Bytes,
    ) -> oneshot::Receiver<Result<Bytes>> {
        let (tx, rx) = oneshot::channel();
        let seq = self.next_request.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().insert(
            seq,
            Pending {
                dest,
                action,
                reply: tx,
            },
        );
        // A loss or an abort that was published before the request was
        // filed would never fail it: check after filing.
        if let Some(reason) = self.lost_reason(dest) {
            self.complete(
                seq,
                Err(Error::LocalityLost {
                    locality: dest,
                    reason,
                }),
            );
            return rx;
        }
        if let Some(reason) = self.aborted() {
            self.complete(seq, Err(Error::Aborted(reason)));
            return rx;
        }
        match self.send(self.header(kind::REQUEST, dest, id, seq), args, action) {
            Ok(()) => {
                self.work.sent_one();
                self.counters
                    .call_sent(Registry::global().find(id).map(|(i, _)| i));
            }
            Err(e) => self.complete(seq, Err(e)),
        }
        rx
    }

    /// Sends a fire-and-forget call of action `id` to `dest`.
    pub(crate) fn post(&self, dest: LocalityId, id: u64, args: Bytes) -> Result<()> {
        let found = Registry::global().find(id);
        let name = found.map_or("unknown action", |(_, e)| e.name);
        self.send(
            self.header(kind::POST, dest, id, self.trace_seq()),
            args,
            name,
        )?;
        self.work.sent_one();
        self.counters.call_sent(found.map(|(i, _)| i));
        Ok(())
    }

    fn on_parcel(self: Arc<Self>, parcel: Parcel, credit: Credit) {
        self.warmth.touch();
        self.counters
            .received(parcel.header.source, parcel.wire_len());
        let traced = self.tracer.clone().map(|tracer| {
            let header = &parcel.header;
            let name = match header.kind {
                kind::REQUEST | kind::POST => Registry::global()
                    .get(header.tag)
                    .map_or("unknown action", |e| e.name),
                kind::REPLY => "reply",
                kind::FAILURE => "failure",
                _ => "control",
            };
            let started = Instant::now();
            if let Some(flow) = trace::flow_of(header, is_reply(header.kind)) {
                tracer.arrived(flow, started);
            }
            (tracer, name, started)
        });
        self.handle(parcel, credit);
        if let Some((tracer, name, started)) = traced {
            tracer.slice("receive", name, started);
        }
    }

    fn handle(self: Arc<Self>, parcel: Parcel, credit: Credit) {
        let Parcel { header, payload } = parcel;
        match header.kind {
            kind::REQUEST | kind::POST => self.on_call(header, payload, credit),
            kind::REPLY => self.complete(header.seq, Ok(payload)),
            kind::FAILURE => {
                let error = match codec::decode::<Error>(&payload) {
                    Ok(Error::UnknownAction { locality, id, .. }) => Error::UnknownAction {
                        locality,
                        id,
                        action: self
                            .pending
                            .lock()
                            .get(&header.seq)
                            .map_or("?", |p| p.action)
                            .to_owned(),
                    },
                    Ok(e) => e,
                    Err(e) => e,
                };
                self.complete(header.seq, Err(error));
            }
            kind::CONTROL => match codec::decode::<Control>(&payload) {
                Ok(control) => self.on_control(header.source, control),
                Err(e) => tracing::warn!(from = %header.source, %e, "undecodable control parcel"),
            },
            other => tracing::warn!(from = %header.source, kind = other, "parcel of unknown kind"),
        }
    }

    /// A request or post arrived: runs the action (inline first if it is
    /// direct, on a task of its own otherwise) and answers a request.
    fn on_call(self: Arc<Self>, header: ParcelHeader, payload: Bytes, credit: Credit) {
        self.work.begin();
        let found = Registry::global().find(header.tag);
        if let Some((index, _)) = found {
            self.counters.call_received(index);
        }
        let call = Call {
            header,
            payload,
            credit,
            action: found,
        };
        if found.is_some_and(|(_, e)| e.direct) {
            let workers = self.workers.clone();
            let counters = self.counters.clone();
            if run_inline_or_spawn(&workers, self.run_call(call)) {
                counters.spawned();
            }
        } else {
            self.calls.push(call);
            self.ensure_drainer();
        }
    }

    /// Starts a drainer of the call queue unless as many run as there are
    /// workers.
    fn ensure_drainer(self: &Arc<Self>) {
        let mut running = self.drainers.load(Ordering::SeqCst);
        while running < self.max_drainers {
            match self.drainers.compare_exchange(
                running,
                running + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    self.counters.spawned();
                    self.workers.spawn(self.clone().drain());
                    return;
                }
                Err(now) => running = now,
            }
        }
    }

    /// Runs queued calls, each polled first right here and moved to a task
    /// of its own if it must wait: a burst of calls costs few tasks, and a
    /// call that computes for long holds up only this drainer, while the
    /// others (one per worker) go on with the queue.
    async fn drain(self: Arc<Self>) {
        let mut ran = 0u32;
        loop {
            while let Some(call) = self.calls.pop() {
                if run_inline_or_spawn(&self.workers, self.clone().run_call(call)) {
                    self.counters.spawned();
                }
                ran = ran.wrapping_add(1);
                if ran % DRAIN_BATCH == 0 {
                    // Let the worker's other tasks run between batches.
                    tokio::task::yield_now().await;
                }
            }
            self.drainers.fetch_sub(1, Ordering::SeqCst);
            // A call queued after the last pop, by a sender that saw this
            // drainer still counted, must not be left behind.
            if self.calls.is_empty() {
                return;
            }
            let running = self.drainers.load(Ordering::SeqCst);
            if running >= self.max_drainers
                || self
                    .drainers
                    .compare_exchange(running, running + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
            {
                return;
            }
        }
    }

    /// Runs one received call and answers a request.
    async fn run_call(self: Arc<Self>, call: Call) {
        let Call {
            header,
            payload,
            credit,
            action,
        } = call;
        let here = self.here;
        let outcome = match action {
            None => Err(Error::UnknownAction {
                locality: here,
                id: header.tag,
                action: String::new(),
            }),
            Some((index, entry)) => {
                let started = Instant::now();
                let (outcome, waited) = trace::watched(run_caught(
                    here,
                    entry.name,
                    (entry.handler)(here, &payload),
                ))
                .await;
                self.action_ran(index, entry.name, started, waited);
                outcome
            }
        };
        drop(payload);
        let outcome = match outcome {
            // Handles in a reply keep their objects alive at the caller:
            // the owners learn of the credit before the reply leaves.
            Ok((bytes, minted)) if header.kind == kind::REQUEST => {
                self.register_minted(minted).await.map(|()| bytes)
            }
            Ok((bytes, _)) => Ok(bytes),
            Err(e) => Err(e),
        };
        if header.kind == kind::REQUEST {
            self.reply(header, outcome);
        } else if let Err(e) = outcome {
            tracing::error!(from = %header.source, %e, "posted action failed");
        }
        drop(credit);
        self.work.finished_one();
        self.work.end();
    }

    fn reply(&self, request: ParcelHeader, outcome: Result<Bytes>) {
        let (kind, payload) = match outcome {
            Ok(bytes) => (kind::REPLY, bytes),
            Err(error) => match codec::encode(&error) {
                Ok(bytes) => (kind::FAILURE, bytes),
                Err(e) => {
                    tracing::error!(%e, "cannot encode a failure");
                    return;
                }
            },
        };
        let header = self.header(kind, request.source, request.tag, request.seq);
        let name = if kind == kind::REPLY {
            "reply"
        } else {
            "failure"
        };
        if let Err(e) = self.send(header, payload, name) {
            tracing::debug!(%e, to = %request.source, "reply not sent");
        }
    }

    fn complete(&self, seq: u64, result: Result<Bytes>) {
        let pending = self.pending.lock().remove(&seq);
        if let Some(p) = pending {
            let _ = p.reply.send(result);
        }
    }

    /// The transport lost `locality`: fail what waits on it, publish the
    /// loss, and end the job.
    fn on_peer_lost(self: Arc<Self>, locality: LocalityId, reason: &str) {
        if self.lost_reason(locality).is_some() {
            return;
        }
        // Once the job is aborted, peers close their connections as they
        // end: a loss noticed now is a consequence, and what waits gets the
        // abort's reason (requests were failed with it already).
        if self.aborted().is_some() {
            return;
        }
        // Requests to the lost locality fail with the loss itself.
        let failed: Vec<Pending> = {
            let mut pending = self.pending.lock();
            let seqs: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.dest == locality)
                .map(|(s, _)| *s)
                .collect();
            seqs.iter().filter_map(|s| pending.remove(s)).collect()
        };
        // Any loss ends the job at once, here and (through the root)
        // everywhere: whoever waits on the lost locality would wait forever.
        // The job is aborted before the loss is published, so that code
        // that sees the loss also sees the abort.
        if self.here.is_root() {
            self.root_event(Event::Lost {
                locality,
                reason: reason.to_owned(),
            });
        } else {
            if !locality.is_root() {
                self.control(
                    LocalityId::ROOT,
                    &Control::Lost {
                        locality,
                        reason: reason.to_owned(),
                    },
                );
            }
            self.abort_with(
                format!("locality {locality} was lost: {reason}"),
                Some(locality),
            );
        }
        self.lost
            .send_if_modified(|lost| match lost.get_mut(locality.index()) {
                Some(slot @ None) => {
                    *slot = Some(reason.to_owned());
                    true
                }
                _ => false,
            });
        for p in failed {
            let _ = p.reply.send(Err(Error::LocalityLost {
                locality,
                reason: reason.to_owned(),
            }));
        }
    }

    /// The abort's reason, once the job is aborted.
    fn aborted(&self) -> Option<String> {
        match &*self.phase.borrow() {
            Phase::Aborted(reason) => Some(reason.clone()),
            _ => None,
        }
    }

    fn lost_reason(&self, locality: LocalityId) -> Option<String> {
        self.lost.borrow().get(locality.index()).cloned().flatten()
    }

    /// Resolves with [`Error::LocalityLost`] for the first of `localities`
    /// found lost, or with [`Error::Aborted`] when the job is aborted; never
    /// while they all live and the job runs.
    pub(crate) fn first_lost(
        &self,
        localities: Arc<[LocalityId]>,
    ) -> impl Future<Output = Error> + Send + 'static {
        let mut rx = self.lost.subscribe();
        let mut phase = self.phase.subscribe();
        let aborted = async move {
            match phase
                .wait_for(|p| matches!(p, Phase::Aborted(_)))
                .await
                .map(|p| p.clone())
            {
                Ok(Phase::Aborted(reason)) => Error::Aborted(reason),
                _ => std::future::pending().await,
            }
        };
        let lost = async move {
            let found = match rx
                .wait_for(|lost| {
                    localities
                        .iter()
                        .any(|l| lost.get(l.index()).is_some_and(Option::is_some))
                })
                .await
            {
                Ok(lost) => localities.iter().find_map(|l| {
                    lost.get(l.index())
                        .cloned()
                        .flatten()
                        .map(|reason| Error::LocalityLost {
                            locality: *l,
                            reason,
                        })
                }),
                Err(_) => None,
            };
            match found {
                Some(error) => error,
                // The runtime ended: nothing more will be lost.
                None => std::future::pending().await,
            }
        };
        async move {
            tokio::select! {
                biased;
                error = lost => error,
                error = aborted => error,
            }
        }
    }

    /// Aborts the job here, `culprit` being the locality that caused it.
    fn abort_with(&self, reason: String, culprit: Option<LocalityId>) {
        if let Some(culprit) = culprit {
            let _ = self.culprit.set(culprit);
        }
        self.set_phase(Phase::Aborted(reason));
    }

    /// The locality whose failure or loss aborted the job, if known.
    pub(crate) fn culprit(&self) -> Option<LocalityId> {
        self.culprit.get().copied()
    }

    /// Ends the job here (only the first end counts). An abort fails every
    /// request still waiting for a reply with the reason.
    fn set_phase(&self, phase: Phase) {
        let aborted = match &phase {
            Phase::Aborted(reason) => Some(reason.clone()),
            _ => None,
        };
        let changed = self.phase.send_if_modified(|p| {
            if *p == Phase::Running {
                *p = phase;
                true
            } else {
                false
            }
        });
        if let (true, Some(reason)) = (changed, aborted) {
            let failed: Vec<Pending> = self.pending.lock().drain().map(|(_, p)| p).collect();
            for p in failed {
                let _ = p.reply.send(Err(Error::Aborted(reason.clone())));
            }
        }
    }

    fn control(&self, dest: LocalityId, control: &Control) {
        let sent = codec::encode(control).and_then(|payload| {
            let header = self.header(kind::CONTROL, dest, 0, self.trace_seq());
            self.send(header, payload, "control")
        });
        if let Err(e) = sent {
            tracing::debug!(%e, to = %dest, "control parcel not sent");
        }
    }

    fn on_control(self: Arc<Self>, from: LocalityId, control: Control) {
        match control {
            Control::MainDone { failure } if self.here.is_root() => {
                self.root_event(Event::MainDone { from, failure });
            }
            Control::Report { wave, sent, done } if self.here.is_root() => {
                self.root_event(Event::Report {
                    from,
                    wave,
                    sent,
                    done,
                });
            }
            Control::Query { wave } if from.is_root() => {
                let this = self.clone();
                self.workers.spawn(async move {
                    this.work.idle().await;
                    let (sent, done) = this.work.totals();
                    let report = Control::Report { wave, sent, done };
                    if this.here.is_root() {
                        this.on_control(LocalityId::ROOT, report);
                    } else {
                        this.control(LocalityId::ROOT, &report);
                    }
                });
            }
            Control::Failed { reason } if self.here.is_root() => {
                self.root_event(Event::Failed { from, reason });
            }
            Control::Lost { locality, reason } if self.here.is_root() && locality != self.here => {
                self.declare_lost(locality, format!("{reason} (seen by locality {from})"));
            }
            Control::Shutdown if from.is_root() => self.set_phase(Phase::Shutdown),
            Control::Abort { reason, culprit } if from.is_root() => {
                self.abort_with(reason, culprit);
            }
            Control::ClockPing { t0 } if from.is_root() => {
                let t1 = self
                    .tracer
                    .as_ref()
                    .map_or_else(trace::unix_now_ns, |t| t.now_ns());
                self.control(from, &Control::ClockPong { t0, t1 });
            }
            Control::ClockPong { t0, t1 } if self.here.is_root() => {
                if let Some(tracer) = &self.tracer {
                    if tracer.clock_sample(from, t0, t1, tracer.now_ns()) {
                        let t0 = tracer.now_ns();
                        self.control(from, &Control::ClockPing { t0 });
                    }
                }
            }
            other => tracing::warn!(%from, ?other, "unexpected control parcel"),
        }
    }

    /// Feeds the root's end-of-job state machine and carries out what it says.
    fn root_event(self: &Arc<Self>, event: Event) {
        let command = self.termination.lock().on(event);
        match command {
            None => {}
            Some(Command::Query { wave }) => {
                for i in 1..self.n {
                    self.control(LocalityId(i), &Control::Query { wave });
                }
                self.clone()
                    .on_control(LocalityId::ROOT, Control::Query { wave });
            }
            Some(Command::Shutdown) => {
                for i in 1..self.n {
                    self.control(LocalityId(i), &Control::Shutdown);
                }
                self.set_phase(Phase::Shutdown);
            }
            Some(Command::Abort { reason, culprit }) => {
                // Sent before this locality ends: once it has, it may close
                // its connections before anything more goes out.
                for i in 1..self.n {
                    self.control(
                        LocalityId(i),
                        &Control::Abort {
                            reason: reason.clone(),
                            culprit,
                        },
                    );
                }
                self.abort_with(reason, culprit);
            }
        }
    }

    /// Tells the root that this locality's main returned.
    pub(crate) fn main_done(self: &Arc<Self>, failure: Option<String>) {
        let done = Control::MainDone { failure };
        if self.here.is_root() {
            self.clone().on_control(LocalityId::ROOT, done);
        } else {
            self.control(LocalityId::ROOT, &done);
        }
    }

    /// Waits for the end of the job.
    pub(crate) async fn until_end(&self) -> Phase {
        let mut rx = self.phase.subscribe();
        let phase = match rx.wait_for(|p| *p != Phase::Running).await {
            Ok(p) => p.clone(),
            Err(_) => Phase::Aborted("the runtime was dropped".into()),
        };
        phase
    }

    /// Sends what is queued and closes the transport.
    ///
    /// After an abort what is queued gets [`ABORT_FLUSH`] to go out, then
    /// the connections are closed with the reason, so that every peer sees
    /// this locality go and why, even one that did not hear the abort.
    pub(crate) async fn close(&self) {
        let phase = self.phase.borrow().clone();
        match phase {
            Phase::Aborted(reason) => {
                let _ = tokio::time::timeout(ABORT_FLUSH, self.port.flush_and_close()).await;
                self.port.abort(&reason);
            }
            _ => self.port.flush_and_close().await,
        }
    }

    /// Ends the job from here (a stop signal, the launcher gone): the root
    /// is told and tells everyone; this locality ends at once.
    pub(crate) fn abort(self: &Arc<Self>, reason: String) {
        if self.here.is_root() {
            self.root_event(Event::Failed {
                from: self.here,
                reason,
            });
        } else {
            self.control(
                LocalityId::ROOT,
                &Control::Failed {
                    reason: reason.clone(),
                },
            );
            self.abort_with(format!("locality {}: {reason}", self.here), Some(self.here));
        }
    }

    /// Closes the transport at once (and removes its files): the process
    /// is about to exit without ending the job in order.
    pub(crate) fn abort_transport(&self, reason: &str) {
        self.port.abort(reason);
    }

    /// The launcher saw `locality` end with a failure.
    pub(crate) fn declare_lost(&self, locality: LocalityId, reason: String) {
        self.port.declare_lost(locality, reason);
    }
}

/// Polls `work` once right here and hands it to a task of its own on
/// `workers` only if it is not finished: a direct action that completes in
/// its first poll costs no task and no hand-off between threads. Moving a
/// pending future to a new task is sound: the task polls it again, which
/// registers the task's waker. Returns whether it spawned a task.
fn run_inline_or_spawn(workers: &Handle, work: impl Future<Output = ()> + Send + 'static) -> bool {
    let mut work = Box::pin(work);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let pending = work.as_mut().poll(&mut cx).is_pending();
    if pending {
        workers.spawn(work);
    }
    pending
}

/// Whether parcels of `kind` answer a request (their flow is the request's).
fn is_reply(kind: u8) -> bool {
    kind == kind::REPLY || kind == kind::FAILURE
}

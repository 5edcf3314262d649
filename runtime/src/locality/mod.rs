//! One locality of a running job: everything a run has (ids, transport,
//! pending requests, work counters, the end-of-job state, AGAS tables,
//! extensions of the layers above) in one object, [`Locality`].
//!
//! Parcels arrive where the transport reads them ([`Locality::on_parcel`]).
//! Replies, control parcels and direct actions are handled right there;
//! every other call goes to a queue that drainer tasks on the worker threads
//! empty (one drainer per worker at most), so a long computation never
//! delays the parcels behind it.
//!
//! One concern a module, bottom to top (each imports only those above it):
//!
//! - [`parcels`]: the kinds of the runtime's parcels, their headers, sending
//!   one, and handing each received parcel to the concern it is for;
//! - [`requests`]: calls sent from here, and the requests waiting for their
//!   answers (sequence numbers, replies, failing them on a loss or an abort);
//! - [`calls`]: calls received here: their queue and its drainers, direct
//!   actions, running an action and answering it;
//! - [`control`]: the runtime's own messages between localities (end of the
//!   job, clock offsets of a traced job);
//! - [`lifecycle`]: where the job stands (running, shut down, aborted),
//!   losses of peers and, on the root, the end-of-job protocol: a state
//!   machine without I/O, and the glue that carries out its steps.
//!
//! This file holds the object itself, its construction and its small
//! accessors.

mod calls;
mod control;
mod lifecycle;
mod parcels;
mod requests;

use rustc_hash::FxHashMap as HashMap;
use std::any::{Any, TypeId};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use hpx_parcelport::{LocalityId, Parcelport};
use parking_lot::{Mutex, RwLock};
use tokio::runtime::Handle;
use tokio::sync::watch;

use self::calls::{Call, CallQueue};
use self::lifecycle::Lifecycle;
use self::requests::Requests;
use crate::codec::Minted;
use crate::counters::cells::Cells;
use crate::trace::Tracer;
use crate::warm::Warmth;
use crate::work::Work;
use crate::Result;

pub(crate) use self::lifecycle::Phase;

/// Extensions of the layers above, by type.
type Extensions = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// Everything one locality of a running job holds.
pub(crate) struct Locality {
    /// This locality.
    here: LocalityId,
    /// Number of localities in the job.
    n: u32,
    /// The transport to the other localities.
    port: Arc<dyn Parcelport>,
    /// Program arguments without `--hpx:` flags.
    args: Vec<String>,
    /// The worker threads: actions and user tasks run there.
    workers: Handle,
    /// Requests sent from here waiting for their answers, and the sequence
    /// numbers of what is sent.
    requests: Requests,
    /// Received calls of plain (not direct) actions, waiting to run, and
    /// the drainers running them (one per worker thread at most).
    calls: CallQueue<Call>,
    /// Received work running here, calls sent and finished (for the end
    /// of the job).
    work: Work,
    /// Keeps a worker spinning for a while after activity (`warm.rs`).
    warmth: Arc<Warmth>,
    /// Where the job stands, as decided: the phase, the culprit, the losses
    /// and (on the root) the end-of-job protocol.
    lifecycle: Mutex<Lifecycle>,
    /// Where the job stands, as published (what `lifecycle` decided), for
    /// those who wait for the end.
    phase: watch::Sender<Phase>,
    /// For each locality, why it was lost, once it is: the one loss signal.
    lost: watch::Sender<Vec<Option<String>>>,
    /// Registers credit minted for component handles with their owners.
    register_minted: RegisterMinted,
    /// Per-locality state of the layers above (AGAS tables, collectives).
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

/// When a run of an action began: on the counters' clock, and on the
/// trace's while tracing.
#[derive(Debug)]
pub(crate) struct ActionStart {
    ticks: u64,
    traced: Option<Instant>,
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
        let here = port.here();
        let n = port.num_localities();
        let routes = (0..n).map(|l| port.route(LocalityId(l))).collect();
        let counters = Arc::new(Cells::new(here, routes));
        let tracer = tracing.then(|| Arc::new(Tracer::new(here, n)));
        let (phase, _) = watch::channel(Phase::Running);
        let (lost, _) = watch::channel(vec![None; n as usize]);
        let max_drainers = workers.metrics().num_workers().max(1);
        Arc::new(Locality {
            here,
            n,
            port,
            args,
            workers,
            requests: Requests::new(),
            calls: CallQueue::new(max_drainers),
            work: Work::default(),
            warmth,
            lifecycle: Mutex::new(Lifecycle::new(here, n)),
            phase,
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

    /// The start of a run of an action here, for [`Locality::action_ran`].
    pub(crate) fn action_start(&self) -> ActionStart {
        ActionStart {
            ticks: self.counters.ticks(),
            traced: self.tracer.as_ref().map(|_| Instant::now()),
        }
    }

    /// Action `name` (registry index `index`) ran here from `start` until
    /// now, and `waited` on the way or not.
    pub(crate) fn action_ran(
        &self,
        index: usize,
        name: &'static str,
        start: ActionStart,
        waited: bool,
    ) {
        self.counters.ran(index, start.ticks);
        match (&self.tracer, start.traced) {
            (Some(tracer), Some(started)) if waited => tracer.span("action", name, started),
            (Some(tracer), Some(started)) => tracer.slice("action", name, started),
            _ => {}
        }
    }

    /// What keeps this locality's transport polled.
    pub(crate) fn warmth(&self) -> &Warmth {
        &self.warmth
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

    /// Memory the transport lends for a payload of up to `capacity` bytes
    /// to `dest` (see [`hpx_parcelport::Parcelport::payload_buffer`]).
    pub(crate) fn payload_buffer(
        &self,
        dest: LocalityId,
        capacity: usize,
    ) -> Option<hpx_parcelport::PayloadBuffer> {
        self.port.payload_buffer(dest, capacity)
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

    /// The extension of type `T` (stored under `key`), if it was made.
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
}

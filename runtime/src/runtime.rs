//! The locality's runtime: start-up, parcel dispatch, and the end of a job.
//!
//! # How a job ends
//!
//! Each locality tells the root when its main has returned (or, in root-only
//! mode, at once). When all have, the root runs termination detection in
//! waves: every locality waits until it runs no received work, then reports
//! how many calls it has sent and how many it has finished. Two waves in a
//! row with equal totals, sent equal to finished, mean nothing is in flight
//! anywhere: the root tells everyone to shut down. A failed main, or a lost
//! locality, makes the root abort the job instead, so no locality hangs.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::Context;

use bytes::Bytes;
use futures::FutureExt;
use hpx_parcelport::parcel::FLAG_UNMETERED;
use hpx_parcelport::{
    Credit, LocalityId, LoopbackParcelport, Parcel, ParcelHandler, ParcelHeader, Parcelport,
    QuicConfig, QuicParcelport,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::action::Registry;
use crate::codec;
use crate::config::{Config, ExecutionMode};
use crate::warm::{spin_window, Warmth};
use crate::work;
use crate::{Error, Result};

/// Parcel kinds used by the runtime.
pub(crate) mod kind {
    /// Run an action and answer.
    pub const REQUEST: u8 = 1;
    /// Run an action, no answer.
    pub const POST: u8 = 2;
    /// An action's result.
    pub const REPLY: u8 = 3;
    /// An action's failure.
    pub const FAILURE: u8 = 4;
    /// Runtime control traffic.
    pub const CONTROL: u8 = 5;
}

/// Bytes of received work a locality holds before it stops reading.
const INCOMING_BUDGET: usize = 256 << 20;

#[derive(Serialize, Deserialize, Debug)]
enum Control {
    MainDone { failure: Option<String> },
    Query { wave: u64 },
    Report { wave: u64, sent: u64, done: u64 },
    Shutdown,
    Abort { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Shutdown,
    Aborted(String),
}

struct Pending {
    dest: LocalityId,
    action: &'static str,
    reply: oneshot::Sender<Result<Bytes>>,
}

#[derive(Default)]
struct RootState {
    finished: Vec<bool>,
    failures: Vec<String>,
    lost: Vec<Option<String>>,
    wave: u64,
    reports: Vec<Option<(u64, u64)>>,
    previous: Option<(u64, u64)>,
}

/// The state of this locality's runtime.
pub(crate) struct Inner {
    here: LocalityId,
    n: u32,
    port: Arc<dyn Parcelport>,
    quic: Option<Arc<QuicParcelport>>,
    args: Vec<String>,
    next_request: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    sent: AtomicU64,
    done: AtomicU64,
    warmth: Arc<Warmth>,
    phase: watch::Sender<Phase>,
    root: Mutex<RootState>,
    lost: watch::Sender<Vec<Option<String>>>,
    agas: crate::agas::Tables,
}

static CURRENT: RwLock<Option<Arc<Inner>>> = RwLock::new(None);

/// This locality's id while a runtime runs ([`NOT_RUNNING`] otherwise): lets
/// a call to one's own locality skip the lock around [`CURRENT`].
static HERE: AtomicU64 = AtomicU64::new(NOT_RUNNING);
const NOT_RUNNING: u64 = u64::MAX;

/// This locality, if a runtime runs.
pub(crate) fn here() -> Option<LocalityId> {
    match HERE.load(Ordering::Acquire) {
        NOT_RUNNING => None,
        id => Some(LocalityId(id as u32)),
    }
}

/// Runs `work` here as counted work (it keeps the job from ending).
pub(crate) fn spawn_counted<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    work::begin();
    tokio::spawn(async move {
        let out = work.await;
        work::end();
        out
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The runtime of this process, if one is running.
pub(crate) fn current() -> Result<Arc<Inner>> {
    CURRENT
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or(Error::NotRunning)
}

/// Like [`current`], for functions documented to panic outside a runtime.
pub(crate) fn expect_current() -> Arc<Inner> {
    match current() {
        Ok(rt) => rt,
        Err(_) => {
            panic!("hpx: called outside a running hpx runtime (use #[hpx::main] or hpx::Runtime)")
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

struct Dispatcher(Weak<Inner>);

impl ParcelHandler for Dispatcher {
    fn on_parcel(&self, parcel: Parcel, credit: Credit) {
        if let Some(inner) = self.0.upgrade() {
            inner.on_parcel(parcel, credit);
        }
    }

    fn on_peer_lost(&self, locality: LocalityId, reason: &str) {
        if let Some(inner) = self.0.upgrade() {
            inner.on_peer_lost(locality, reason);
        }
    }
}

impl Inner {
    /// This locality.
    pub(crate) fn here(&self) -> LocalityId {
        self.here
    }

    /// Number of localities.
    pub(crate) fn num_localities(&self) -> u32 {
        self.n
    }

    /// This locality's AGAS tables.
    pub(crate) fn agas(&self) -> &crate::agas::Tables {
        &self.agas
    }

    /// Program arguments without `--hpx:` flags.
    pub(crate) fn args(&self) -> &[String] {
        &self.args
    }

    /// Listen addresses of all localities (empty for a one-locality job).
    pub(crate) fn addresses(&self) -> Vec<std::net::SocketAddr> {
        self.quic
            .as_ref()
            .map(|q| q.addresses().to_vec())
            .unwrap_or_default()
    }

    async fn start(config: Config, args: Vec<String>) -> Result<Arc<Inner>> {
        let (port, quic): (Arc<dyn Parcelport>, _) = if config.num_localities == 1 {
            (Arc::new(LoopbackParcelport::new()), None)
        } else {
            let agas = config
                .agas
                .ok_or_else(|| Error::Config("no rendezvous address (HPX_AGAS)".into()))?;
            let quic = QuicParcelport::start(QuicConfig {
                locality: config.locality,
                num_localities: config.num_localities,
                rendezvous: agas,
                bind: config.host,
                secret: config.secret.clone().unwrap_or_default(),
                startup_timeout: config.startup_timeout,
                peer_timeout: config.peer_timeout,
                max_payload: hpx_parcelport::parcel::DEFAULT_MAX_PAYLOAD,
                incoming_budget: INCOMING_BUDGET,
                shared_dir: config.shared_dir.clone(),
            })
            .await?;
            (quic.clone() as Arc<dyn Parcelport>, Some(quic))
        };
        let n = config.num_localities;
        let (window, polite) = match &quic {
            None => (std::time::Duration::ZERO, false),
            Some(q) => {
                let mine = q.listen_addr().ip();
                let colocated = q.addresses().iter().filter(|a| a.ip() == mine).count();
                spin_window(colocated * config.worker_threads(), config.spin)
            }
        };
        let (phase, _) = watch::channel(Phase::Running);
        let (lost, _) = watch::channel(vec![None; n as usize]);
        let inner = Arc::new(Inner {
            here: config.locality,
            n,
            port,
            quic,
            args,
            next_request: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            warmth: Arc::new(Warmth::new(window, polite)),
            phase,
            lost,
            agas: crate::agas::Tables::default(),
            root: Mutex::new(RootState {
                finished: vec![false; n as usize],
                lost: vec![None; n as usize],
                reports: vec![None; n as usize],
                ..RootState::default()
            }),
        });
        {
            let mut slot = CURRENT.write().unwrap_or_else(|p| p.into_inner());
            if slot.is_some() {
                return Err(Error::Config(
                    "an hpx runtime is already running in this process".into(),
                ));
            }
            *slot = Some(inner.clone());
            work::reset();
            HERE.store(u64::from(inner.here.0), Ordering::Release);
        }
        inner
            .port
            .attach(Arc::new(Dispatcher(Arc::downgrade(&inner))));
        Ok(inner)
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

    fn send(&self, header: ParcelHeader, payload: Vec<u8>) -> Result<()> {
        self.warmth.touch();
        self.port
            .send(Parcel {
                header,
                payload: Bytes::from(payload),
            })
            .map_err(Error::from)
    }

    /// Sends a request for action `id` to `dest`; the receiver gets the
    /// encoded result or the error.
    pub(crate) fn request(
        &self,
        dest: LocalityId,
        id: u64,
        action: &'static str,
        args: Vec<u8>,
    ) -> oneshot::Receiver<Result<Bytes>> {
        let (tx, rx) = oneshot::channel();
        let seq = self.next_request.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending).insert(
            seq,
            Pending {
                dest,
                action,
                reply: tx,
            },
        );
        match self.send(self.header(kind::REQUEST, dest, id, seq), args) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if let Some(p) = lock(&self.pending).remove(&seq) {
                    let _ = p.reply.send(Err(e));
                }
            }
        }
        rx
    }

    /// Sends a fire-and-forget call of action `id` to `dest`.
    pub(crate) fn post(&self, dest: LocalityId, id: u64, args: Vec<u8>) -> Result<()> {
        self.send(self.header(kind::POST, dest, id, 0), args)?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A received request or post has been handled.
    fn work_finished(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        work::end();
    }

    fn on_parcel(self: Arc<Self>, parcel: Parcel, credit: Credit) {
        self.warmth.touch();
        let Parcel { header, payload } = parcel;
        match header.kind {
            kind::REQUEST | kind::POST => {
                work::begin();
                let entry = Registry::global().get(header.tag);
                run_inline_or_spawn(async move {
                    let here = self.here;
                    let outcome = match entry {
                        None => Err(Error::UnknownAction {
                            locality: here,
                            id: header.tag,
                            action: String::new(),
                        }),
                        Some(entry) => {
                            match AssertUnwindSafe((entry.handler)(&payload))
                                .catch_unwind()
                                .await
                            {
                                Ok(result) => result,
                                Err(panic) => Err(Error::RemotePanic {
                                    locality: here,
                                    action: entry.name.to_owned(),
                                    message: panic_message(panic.as_ref()),
                                }),
                            }
                        }
                    };
                    drop(payload);
                    if header.kind == kind::REQUEST {
                        self.reply(header, outcome);
                    } else if let Err(e) = outcome {
                        tracing::error!(from = %header.source, %e, "posted action failed");
                    }
                    drop(credit);
                    self.work_finished();
                });
            }
            kind::REPLY => self.complete(header.seq, Ok(payload)),
            kind::FAILURE => {
                let error = match codec::decode::<Error>(&payload) {
                    Ok(Error::UnknownAction { locality, id, .. }) => Error::UnknownAction {
                        locality,
                        id,
                        action: lock(&self.pending)
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

    fn reply(&self, request: ParcelHeader, outcome: Result<Vec<u8>>) {
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
        if let Err(e) = self.send(header, payload) {
            tracing::debug!(%e, to = %request.source, "reply not sent");
        }
    }

    fn complete(&self, seq: u64, result: Result<Bytes>) {
        if let Some(p) = lock(&self.pending).remove(&seq) {
            let _ = p.reply.send(result);
        }
    }

    fn on_peer_lost(self: Arc<Self>, locality: LocalityId, reason: &str) {
        let failed: Vec<Pending> = {
            let mut pending = lock(&self.pending);
            let seqs: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.dest == locality)
                .map(|(s, _)| *s)
                .collect();
            seqs.iter().filter_map(|s| pending.remove(s)).collect()
        };
        for p in failed {
            let _ = p.reply.send(Err(Error::LocalityLost {
                locality,
                reason: reason.to_owned(),
            }));
        }
        self.lost.send_modify(|lost| {
            if let Some(slot) = lost.get_mut(locality.index()) {
                slot.get_or_insert_with(|| reason.to_owned());
            }
        });
        if self.here.is_root() {
            lock(&self.root).lost[locality.index()] = Some(reason.to_owned());
            self.root_step();
        } else if locality.is_root() {
            self.set_phase(Phase::Aborted(format!(
                "the root locality was lost: {reason}"
            )));
        }
    }

    /// Resolves with [`Error::LocalityLost`] once `locality` is lost.
    pub(crate) fn locality_lost(
        &self,
        locality: LocalityId,
    ) -> impl Future<Output = Error> + Send + 'static {
        let mut rx = self.lost.subscribe();
        async move {
            let reason = match rx
                .wait_for(|l| l.get(locality.index()).is_some_and(Option::is_some))
                .await
            {
                Ok(l) => l.get(locality.index()).cloned().flatten(),
                Err(_) => None,
            };
            match reason {
                Some(reason) => Error::LocalityLost { locality, reason },
                // The runtime ended: nothing more will be lost.
                None => std::future::pending().await,
            }
        }
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.send_if_modified(|p| {
            if *p == Phase::Running {
                *p = phase;
                true
            } else {
                false
            }
        });
    }

    fn control(&self, dest: LocalityId, control: &Control) {
        let sent = codec::encode(control)
            .and_then(|payload| self.send(self.header(kind::CONTROL, dest, 0, 0), payload));
        if let Err(e) = sent {
            tracing::debug!(%e, to = %dest, "control parcel not sent");
        }
    }

    fn on_control(self: Arc<Self>, from: LocalityId, control: Control) {
        match control {
            Control::MainDone { failure } if self.here.is_root() => {
                let mut root = lock(&self.root);
                root.finished[from.index()] = true;
                if let Some(f) = failure {
                    root.failures.push(format!("locality {from} failed: {f}"));
                }
                drop(root);
                self.root_step();
            }
            Control::Report { wave, sent, done } if self.here.is_root() => {
                let mut root = lock(&self.root);
                if root.wave == wave {
                    root.reports[from.index()] = Some((sent, done));
                }
                drop(root);
                self.root_step();
            }
            Control::Query { wave } if from.is_root() => {
                tokio::spawn(async move {
                    work::idle().await;
                    let done = self.done.load(Ordering::SeqCst);
                    let sent = self.sent.load(Ordering::SeqCst);
                    let report = Control::Report { wave, sent, done };
                    if self.here.is_root() {
                        self.on_control(LocalityId::ROOT, report);
                    } else {
                        self.control(LocalityId::ROOT, &report);
                    }
                });
            }
            Control::Shutdown if from.is_root() => self.set_phase(Phase::Shutdown),
            Control::Abort { reason } if from.is_root() => self.set_phase(Phase::Aborted(reason)),
            other => tracing::warn!(%from, ?other, "unexpected control parcel"),
        }
    }

    /// Advances the root's end-of-job state machine.
    fn root_step(self: &Arc<Self>) {
        if *self.phase.borrow() != Phase::Running {
            return;
        }
        let mut root = lock(&self.root);
        let all_in = root
            .finished
            .iter()
            .zip(&root.lost)
            .all(|(f, l)| *f || l.is_some());
        if !all_in {
            return;
        }
        let lost: Vec<String> = root
            .lost
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_ref().map(|r| format!("locality {i} was lost: {r}")))
            .collect();
        if !root.failures.is_empty() || !lost.is_empty() {
            let mut reasons = root.failures.clone();
            reasons.extend(lost);
            drop(root);
            self.abort_job(reasons.join("; "));
            return;
        }
        let complete = root.wave > 0 && root.reports.iter().all(Option::is_some);
        if root.wave > 0 && !complete {
            return;
        }
        if complete {
            let totals = root
                .reports
                .iter()
                .flatten()
                .fold((0u64, 0u64), |(s, d), (rs, rd)| (s + rs, d + rd));
            if totals.0 == totals.1 && root.previous == Some(totals) {
                drop(root);
                for i in 1..self.n {
                    self.control(LocalityId(i), &Control::Shutdown);
                }
                self.set_phase(Phase::Shutdown);
                return;
            }
            root.previous = Some(totals);
        }
        root.wave += 1;
        let wave = root.wave;
        root.reports.iter_mut().for_each(|r| *r = None);
        drop(root);
        for i in 1..self.n {
            self.control(LocalityId(i), &Control::Query { wave });
        }
        self.clone()
            .on_control(LocalityId::ROOT, Control::Query { wave });
    }

    fn abort_job(&self, reason: String) {
        for i in 1..self.n {
            self.control(
                LocalityId(i),
                &Control::Abort {
                    reason: reason.clone(),
                },
            );
        }
        self.set_phase(Phase::Aborted(reason));
    }

    fn main_done(self: &Arc<Self>, failure: Option<String>) {
        let done = Control::MainDone { failure };
        if self.here.is_root() {
            self.clone().on_control(LocalityId::ROOT, done);
        } else {
            self.control(LocalityId::ROOT, &done);
        }
    }

    async fn until_end(&self) -> Phase {
        let mut rx = self.phase.subscribe();
        let phase = match rx.wait_for(|p| *p != Phase::Running).await {
            Ok(p) => p.clone(),
            Err(_) => Phase::Aborted("the runtime was dropped".into()),
        };
        phase
    }

    async fn drive<T, E, F, Fut>(self: &Arc<Self>, runs_main: bool, main: F) -> Result<Option<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let outcome = if runs_main {
            let mut handle = tokio::spawn(main());
            tokio::select! {
                joined = &mut handle => Some(match joined {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => match e.try_into_panic() {
                        Ok(payload) => Err(format!("main panicked: {}", panic_message(payload.as_ref()))),
                        Err(e) => Err(format!("main was cancelled: {e}")),
                    },
                }),
                end = self.until_end() => {
                    handle.abort();
                    self.port.flush_and_close().await;
                    return Err(match end {
                        Phase::Aborted(reason) => Error::Aborted(reason),
                        _ => Error::Aborted("the job ended while main was running".into()),
                    });
                }
            }
        } else {
            None
        };
        let failure = match &outcome {
            Some(Err(msg)) => Some(msg.clone()),
            _ => None,
        };
        self.main_done(failure);
        let end = self.until_end().await;
        self.port.flush_and_close().await;
        match (outcome, end) {
            (Some(Err(msg)), _) => Err(Error::MainFailed(msg)),
            (_, Phase::Aborted(reason)) => Err(Error::Aborted(reason)),
            (outcome, _) => Ok(outcome.and_then(|r| r.ok())),
        }
    }
}

/// Polls `work` once right here and hands it to a task of its own only if
/// it is not finished: most actions complete in their first poll, and then
/// the parcel costs no task and no hand-off between threads (HPX calls such
/// actions "direct"). Moving a pending future to a new task is sound: the
/// task polls it again, which registers the task's waker.
fn run_inline_or_spawn(work: impl Future<Output = ()> + Send + 'static) {
    let mut work = Box::pin(work);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    if work.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(work);
    }
}

/// Runs a job on this locality: builds the tokio runtime, joins the job,
/// runs `main` (here or not, after `mode`), and ends the job with the others.
pub(crate) fn run_job<T, E, F, Fut>(
    config: Config,
    args: Vec<String>,
    mode: ExecutionMode,
    main: F,
) -> Result<Option<T>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HPX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let threads = config.worker_threads();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("hpx-worker")
        .enable_all()
        .build()?;
    let runs_main = mode == ExecutionMode::Spmd || config.locality.is_root();
    let result = rt.block_on(async move {
        let inner = Inner::start(config, args).await?;
        let result = inner.drive(runs_main, main).await;
        HERE.store(NOT_RUNNING, Ordering::Release);
        CURRENT.write().unwrap_or_else(|p| p.into_inner()).take();
        result
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

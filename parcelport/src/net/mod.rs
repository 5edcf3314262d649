//! What the network parcelports ([`crate::QuicParcelport`] and
//! [`crate::TcpParcelport`]) share, whatever carries their bytes: the job's
//! layout, the handler, the per-peer send queues and their coalescing, the
//! incoming budget, the delivery of received parcels, loss reporting, the
//! heartbeats, the bootstrap ([`bootstrap`]) and the admission of
//! unauthenticated connections ([`admission`]).

pub(crate) mod admission;
pub(crate) mod bootstrap;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::timeout;

use crate::batch::Batcher;
use crate::liveness::{Beacon, Watch, WatchConfig};
use crate::parcel::{ParcelDecoder, FLAG_SHARED, FLAG_UNMETERED};
use crate::{Credit, LocalityId, NetConfig, Parcel, ParcelHandler, TransportError, MIN_CHARGE};
use admission::Admission;

/// Close code: orderly shutdown.
pub(crate) const CLOSE_SHUTDOWN: u32 = 0;
/// Close code: the peer failed authentication.
pub(crate) const CLOSE_AUTH_FAILED: u32 = 1;
/// Close code: the peer broke the wire protocol.
pub(crate) const CLOSE_PROTOCOL: u32 = 2;
/// Close code: the job is being aborted.
pub(crate) const CLOSE_ABORT: u32 = 3;

/// How long an orderly close waits for peers to have what was sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What a sender task receives: parcels, and the request to flush and stop.
pub(crate) enum Outgoing {
    Parcel(Parcel),
    Flush(oneshot::Sender<()>),
}

/// One peer, seen from here.
#[derive(Default)]
struct Peer {
    /// The queue of its sender task, once something was sent to it.
    queue: Mutex<Option<mpsc::UnboundedSender<Outgoing>>>,
    /// Why it was lost, once it is.
    lost: OnceLock<String>,
}

/// Why received parcels were not all delivered.
pub(crate) enum Undelivered {
    /// The peer broke the wire protocol: drop its connection.
    Violation(String),
    /// The incoming budget is closed: stop reading.
    Stopped,
}

/// The state of a network parcelport that does not depend on its transport.
pub(crate) struct Core {
    /// This locality.
    pub(crate) here: LocalityId,
    /// Localities in the job.
    pub(crate) n: u32,
    /// The job secret.
    pub(crate) secret: Vec<u8>,
    /// Where this locality listens.
    pub(crate) listen: SocketAddr,
    /// This locality's heartbeat port (sent in joins).
    pub(crate) beat_port: u16,
    /// Every locality's listen address, once the bootstrap is done.
    addrs: OnceLock<Vec<SocketAddr>>,
    peers: Vec<Peer>,
    budget: Arc<Semaphore>,
    budget_total: usize,
    /// Largest accepted parcel payload.
    pub(crate) max_payload: usize,
    closing: AtomicBool,
    /// The gate of unauthenticated incoming connections.
    pub(crate) admission: Arc<Admission>,
    handler: OnceLock<Arc<dyn ParcelHandler>>,
    attached: watch::Sender<bool>,
    /// The heartbeat thread, once the job has started.
    watch: Mutex<Option<Watch>>,
    /// The runtime the parcelport's tasks run on (the one `start` ran on),
    /// whichever thread sends.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Core {
    /// The state of locality `cfg.locality`, listening at `listen`, with
    /// heartbeats on `beat_port`. Must be called on the parcelport's runtime.
    pub(crate) fn new(cfg: &NetConfig, listen: SocketAddr, beat_port: u16) -> Core {
        let budget_total = cfg
            .incoming_budget
            .clamp(MIN_CHARGE, Semaphore::MAX_PERMITS);
        Core {
            here: cfg.locality,
            n: cfg.num_localities,
            secret: cfg.secret.clone(),
            listen,
            beat_port,
            addrs: OnceLock::new(),
            peers: (0..cfg.num_localities).map(|_| Peer::default()).collect(),
            budget: Arc::new(Semaphore::new(budget_total)),
            budget_total,
            max_payload: cfg.max_payload,
            closing: AtomicBool::new(false),
            admission: Admission::new(cfg.num_localities),
            handler: OnceLock::new(),
            attached: watch::channel(false).0,
            watch: Mutex::new(None),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// This locality's entry in the table of addresses: where it listens and
    /// where its heartbeats go.
    pub(crate) fn entry(&self) -> (SocketAddr, SocketAddr) {
        (
            self.listen,
            SocketAddr::new(self.listen.ip(), self.beat_port),
        )
    }

    /// Records the bootstrap's table (listen and heartbeat address of every
    /// locality) and starts the heartbeats; `on_lost` is called from their
    /// thread for a peer that fell silent.
    pub(crate) fn watch_peers(
        &self,
        table: Vec<(SocketAddr, SocketAddr)>,
        beacon: Beacon,
        peer_timeout: Duration,
        on_lost: impl Fn(LocalityId, String) + Send + 'static,
    ) -> Result<(), TransportError> {
        let (addrs, beats): (Vec<SocketAddr>, Vec<SocketAddr>) = table.into_iter().unzip();
        // Only fails if already set, which bootstrap never does.
        let _ = self.addrs.set(addrs);
        let watching = WatchConfig {
            here: self.here,
            peers: beats,
            secret: self.secret.clone(),
            timeout: peer_timeout,
        };
        let watch = beacon.start(watching, on_lost)?;
        *self.watch.lock() = Some(watch);
        Ok(())
    }

    /// Every locality's listen address, indexed by locality id.
    pub(crate) fn addresses(&self) -> &[SocketAddr] {
        self.addrs.get().map(Vec::as_slice).unwrap_or(&[])
    }

    /// The listen address of `locality`, once the bootstrap is done.
    pub(crate) fn address_of(&self, locality: LocalityId) -> Result<SocketAddr, TransportError> {
        self.addresses()
            .get(locality.index())
            .copied()
            .ok_or(TransportError::NoSuchLocality(locality))
    }

    /// Sets the handler; only the first call has an effect.
    pub(crate) fn attach(&self, handler: Arc<dyn ParcelHandler>) {
        if self.handler.set(handler).is_ok() {
            self.attached.send_replace(true);
        }
    }

    /// Waits until a handler is attached; false if that can no longer happen.
    pub(crate) async fn attached(&self) -> bool {
        self.attached.subscribe().wait_for(|a| *a).await.is_ok()
    }

    /// The handler, once attached.
    pub(crate) fn handler(&self) -> Option<Arc<dyn ParcelHandler>> {
        self.handler.get().cloned()
    }

    /// Whether the parcelport is closing (orderly or aborted).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Marks the parcelport closing: no more sends, no more losses reported.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Queues `parcel`, or delivers it here. The first parcel to a peer
    /// calls `start_sender` with the receiving end of its new queue.
    pub(crate) fn send(
        &self,
        parcel: Parcel,
        start_sender: impl FnOnce(LocalityId, mpsc::UnboundedReceiver<Outgoing>),
    ) -> Result<(), TransportError> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(TransportError::Shutdown);
        }
        let dest = parcel.header.dest;
        let peer = self
            .peers
            .get(dest.index())
            .ok_or(TransportError::NoSuchLocality(dest))?;
        if parcel.payload.len() > self.max_payload {
            return Err(TransportError::Protocol(format!(
                "parcel of {} bytes exceeds the limit of {}",
                parcel.payload.len(),
                self.max_payload
            )));
        }
        if dest == self.here {
            let handler = self.handler().ok_or(TransportError::Shutdown)?;
            self.runtime
                .spawn(async move { handler.on_parcel(parcel, Credit::unmetered()) });
            return Ok(());
        }
        let lost = |reason: &str| TransportError::PeerLost {
            locality: dest,
            reason: reason.to_owned(),
        };
        if let Some(reason) = peer.lost.get() {
            return Err(lost(reason));
        }
        let mut queue = peer.queue.lock();
        let tx = queue.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            start_sender(dest, rx);
            tx
        });
        tx.send(Outgoing::Parcel(parcel))
            .map_err(|_| lost(peer.lost.get().map_or("connection closed", String::as_str)))
    }

    /// Records `locality` as lost and tells the handler, once; returns
    /// whether this call did (not while closing, nor a second time).
    pub(crate) fn peer_lost(&self, locality: LocalityId, reason: String) -> bool {
        let Some(peer) = self.peers.get(locality.index()) else {
            return false;
        };
        if self.is_closing() || peer.lost.set(reason.clone()).is_err() {
            return false;
        }
        tracing::warn!(%locality, %reason, "locality lost");
        peer.queue.lock().take();
        if let Some(handler) = self.handler.get() {
            handler.on_peer_lost(locality, &reason);
        }
        true
    }

    /// Hands the parcels complete in `decoder`, received from `peer`, to
    /// `handler`, each with its share of the incoming budget (waiting for it:
    /// this is what stops the reading while the budget is spent).
    pub(crate) async fn deliver(
        &self,
        peer: LocalityId,
        decoder: &mut ParcelDecoder,
        handler: &Arc<dyn ParcelHandler>,
    ) -> Result<(), Undelivered> {
        loop {
            let parcel = match decoder.next_parcel() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => return Err(Undelivered::Violation(e.to_string())),
            };
            if parcel.header.source != peer || parcel.header.dest != self.here {
                return Err(Undelivered::Violation(format!(
                    "parcel from {} to {} on the connection of locality {peer}",
                    parcel.header.source, parcel.header.dest
                )));
            }
            if parcel.header.flags & FLAG_SHARED != 0 {
                return Err(Undelivered::Violation(
                    "a payload in shared memory announced over the network".into(),
                ));
            }
            let credit = if parcel.header.flags & FLAG_UNMETERED != 0 {
                Credit::unmetered()
            } else {
                let charge = parcel.payload.len().clamp(MIN_CHARGE, self.budget_total);
                // Bounded by budget_total, which fits in u32 by construction of Semaphore limits.
                let charge = u32::try_from(charge).unwrap_or(u32::MAX);
                match self.budget.clone().acquire_many_owned(charge).await {
                    Ok(permit) => Credit::metered(permit),
                    Err(_) => return Err(Undelivered::Stopped),
                }
            };
            handler.on_parcel(parcel, credit);
        }
    }

    /// The sending side of the queue to `dest`, for its sender task.
    pub(crate) fn outbox(&self, rx: mpsc::UnboundedReceiver<Outgoing>) -> Outbox {
        Outbox {
            rx,
            batcher: Batcher::new(),
            flushes: Vec::new(),
        }
    }

    /// Starts closing in order: asks every sender to send what is queued and
    /// to end its stream, and waits (at most [`FLUSH_TIMEOUT`]) until peers
    /// have it.
    pub(crate) async fn flush_queues(&self) {
        self.close();
        let mut waits = Vec::new();
        for peer in &self.peers {
            if let Some(tx) = peer.queue.lock().take() {
                let (done, wait) = oneshot::channel();
                if tx.send(Outgoing::Flush(done)).is_ok() {
                    waits.push(wait);
                }
            }
        }
        let _ = timeout(FLUSH_TIMEOUT, futures::future::join_all(waits)).await;
    }

    /// Stops the heartbeats (silence from here on: a peer that missed the
    /// close notices).
    pub(crate) fn stop(&self) {
        self.watch.lock().take();
    }
}

/// What a sender task takes from its queue: parcels coalesced into writes.
pub(crate) struct Outbox {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    batcher: Batcher,
    /// Flushes asked for, answered once the peer has everything.
    flushes: Vec<oneshot::Sender<()>>,
}

impl Outbox {
    /// Waits until something is queued, then moves the chunks of the next
    /// write to `chunks`: what is queued, up to a full batch or a flush.
    /// Returns false once the queue is closed and empty.
    pub(crate) async fn next(&mut self, chunks: &mut Vec<Bytes>) -> bool {
        let Some(first) = self.rx.recv().await else {
            return false;
        };
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Outgoing::Parcel(p) => {
                    // Payload sizes were checked against max_payload in send().
                    if let Err(e) = self.batcher.push(p) {
                        tracing::error!(%e, "dropping unencodable parcel");
                    }
                }
                Outgoing::Flush(done) => self.flushes.push(done),
            }
            next = if !self.batcher.is_full() && self.flushes.is_empty() {
                self.rx.try_recv().ok()
            } else {
                None
            };
        }
        self.batcher.take_into(chunks);
        true
    }

    /// Whether a flush was asked for: after this write the sender ends its
    /// stream, waits until the peer has it, and calls [`Outbox::flushed`].
    pub(crate) fn flushing(&self) -> bool {
        !self.flushes.is_empty()
    }

    /// Answers the flushes asked for.
    pub(crate) fn flushed(&mut self) {
        for done in self.flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

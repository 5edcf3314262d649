//! The QUIC parcelport (quinn): bootstrap at the root's rendezvous,
//! authenticated direct connections between localities, one coalescing sender
//! per peer, and receivers with a bounded incoming budget.

mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, ConnectionError, Endpoint, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};

use crate::batch::Batcher;
use crate::handshake::{
    token_context, tokens_equal, Hello, LocalityTable, PeerAddress, Purpose, Role, Welcome,
    EXPORTER_LABEL, MAX_HANDSHAKE_LEN, MAX_HELLO_LEN, TOKEN_LEN,
};
use crate::liveness::{Beacon, Watch, WatchConfig};
use crate::parcel::{ParcelDecoder, FLAG_SHARED, FLAG_UNMETERED};
use crate::shared::{SharedDir, SHARED_MIN};
use crate::{
    Credit, LocalityId, NetConfig, Parcel, ParcelHandler, Parcelport, TransportError, MIN_CHARGE,
};

/// Application close code: orderly shutdown.
const CLOSE_SHUTDOWN: u32 = 0;
/// Application close code: the peer failed authentication.
const CLOSE_AUTH_FAILED: u32 = 1;
/// Application close code: the peer broke the wire protocol.
const CLOSE_PROTOCOL: u32 = 2;
/// Application close code: the job is being aborted.
const CLOSE_ABORT: u32 = 3;

/// Unauthenticated incoming connections allowed at once, besides two per
/// locality of the job.
const MAX_HANDSHAKES: usize = 64;
/// Unauthenticated incoming connections allowed at once from one address,
/// besides two per locality of the job (localities of one host share one).
const MAX_HANDSHAKES_PER_SOURCE: usize = 16;
/// Time allowed for one connection's handshake and authentication, plus
/// [`HANDSHAKE_TIME_PER_LOCALITY`] for each locality of the job: a large job
/// on few cores makes N(N-1) handshakes at start-up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// See [`HANDSHAKE_TIMEOUT`].
const HANDSHAKE_TIME_PER_LOCALITY: Duration = Duration::from_millis(100);

/// The time allowed for one handshake in a job of `n` localities.
fn handshake_timeout(n: u32) -> Duration {
    HANDSHAKE_TIMEOUT + HANDSHAKE_TIME_PER_LOCALITY * n
}

enum Outgoing {
    Parcel(Parcel),
    Flush(oneshot::Sender<()>),
}

#[derive(Default)]
struct Peer {
    queue: Mutex<Option<mpsc::UnboundedSender<Outgoing>>>,
    conn: Mutex<Option<Connection>>,
    lost: OnceLock<String>,
}

struct Join {
    hello: Hello,
    conn: Connection,
    send: SendStream,
}

struct Inner {
    here: LocalityId,
    n: u32,
    secret: Vec<u8>,
    endpoint: Endpoint,
    listen: SocketAddr,
    addrs: OnceLock<Vec<SocketAddr>>,
    peers: Vec<Peer>,
    budget: Arc<Semaphore>,
    budget_total: usize,
    max_payload: usize,
    closing: AtomicBool,
    /// Connections refused so far (failed authentication or handshake).
    rejected: AtomicU64,
    /// Incoming connections not yet authenticated, in all and per source address.
    handshaking: Mutex<Handshakes>,
    handler: OnceLock<Arc<dyn ParcelHandler>>,
    attached: watch::Sender<bool>,
    joins: Mutex<Option<mpsc::UnboundedSender<Join>>>,
    shared: Option<Arc<SharedDir>>,
    /// This locality's heartbeat port (sent in joins).
    beat_port: u16,
    /// The heartbeat thread, once the job has started.
    watch: Mutex<Option<Watch>>,
    /// The runtime the parcelport's tasks run on (the one `start` ran on),
    /// whichever thread sends.
    runtime: tokio::runtime::Handle,
}

/// A parcelport over QUIC connections between the localities of one job.
pub struct QuicParcelport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QuicParcelport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicParcelport")
            .field("here", &self.inner.here)
            .field("listen", &self.inner.listen)
            .finish_non_exhaustive()
    }
}

fn quic_err(e: impl std::fmt::Display) -> TransportError {
    TransportError::Protocol(e.to_string())
}

fn token(conn: &Connection, secret: &[u8], role: Role) -> Result<[u8; TOKEN_LEN], TransportError> {
    let mut out = [0u8; TOKEN_LEN];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, &token_context(secret, role))
        .map_err(|_| TransportError::Protocol("TLS exporter unavailable".into()))?;
    Ok(out)
}

async fn write_msg(send: &mut SendStream, msg: &[u8]) -> Result<(), TransportError> {
    let len = u32::try_from(msg.len()).map_err(quic_err)?;
    send.write_all(&len.to_le_bytes()).await.map_err(quic_err)?;
    send.write_all(msg).await.map_err(quic_err)
}

/// Reads one length-prefixed handshake message of at most `max` bytes. A
/// connection closed by the peer because we failed its authentication is
/// reported as such.
async fn read_msg(
    recv: &mut RecvStream,
    conn: &Connection,
    peer: SocketAddr,
    max: usize,
) -> Result<Vec<u8>, TransportError> {
    let closed = |e: String| match conn.close_reason() {
        Some(ConnectionError::ApplicationClosed(c))
            if c.error_code == VarInt::from_u32(CLOSE_AUTH_FAILED) =>
        {
            TransportError::Authentication(peer)
        }
        _ => TransportError::Protocol(e),
    };
    let mut len = [0u8; 4];
    recv.read_exact(&mut len)
        .await
        .map_err(|e| closed(format!("handshake with {peer}: {e}")))?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(TransportError::Protocol(format!(
            "handshake message of {len} bytes from {peer}"
        )));
    }
    let mut buf = vec![0u8; len];
    recv.read_exact(&mut buf)
        .await
        .map_err(|e| closed(format!("handshake with {peer}: {e}")))?;
    Ok(buf)
}

fn is_orderly(e: &ConnectionError) -> bool {
    match e {
        ConnectionError::LocallyClosed => true,
        ConnectionError::ApplicationClosed(c) => c.error_code == VarInt::from_u32(CLOSE_SHUTDOWN),
        _ => false,
    }
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::TimedOut => "no sign of life (connection timed out)".into(),
        ConnectionError::ApplicationClosed(c) if c.error_code == VarInt::from_u32(CLOSE_ABORT) => {
            format!("it aborted: {}", String::from_utf8_lossy(&c.reason))
        }
        other => other.to_string(),
    }
}

impl QuicParcelport {
    /// Binds the endpoint and runs the bootstrap: the root waits for every
    /// other locality at the rendezvous and sends them the table of addresses;
    /// the others join there. Parcels are delivered only after
    /// [`QuicParcelport::attach`].
    pub async fn start(cfg: NetConfig) -> Result<Arc<QuicParcelport>, TransportError> {
        if cfg.locality.0 >= cfg.num_localities {
            return Err(TransportError::NoSuchLocality(cfg.locality));
        }
        let bind = if cfg.locality.is_root() {
            cfg.rendezvous
        } else {
            SocketAddr::new(cfg.bind, 0)
        };
        let configs = tls::configs(bind)?;
        let socket = tls::bind_socket(bind)?;
        let mut endpoint = Endpoint::new(
            configs.endpoint,
            Some(configs.server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        endpoint.set_default_client_config(configs.client);
        let listen = endpoint.local_addr()?;
        let beacon = Beacon::bind(listen.ip())?;
        let (attached, _) = watch::channel(false);
        let budget_total = cfg
            .incoming_budget
            .clamp(MIN_CHARGE, Semaphore::MAX_PERMITS);
        let inner = Arc::new(Inner {
            here: cfg.locality,
            n: cfg.num_localities,
            secret: cfg.secret.clone(),
            endpoint,
            listen,
            addrs: OnceLock::new(),
            peers: (0..cfg.num_localities).map(|_| Peer::default()).collect(),
            budget: Arc::new(Semaphore::new(budget_total)),
            budget_total,
            max_payload: cfg.max_payload,
            closing: AtomicBool::new(false),
            rejected: AtomicU64::new(0),
            handshaking: Mutex::new(Handshakes::default()),
            handler: OnceLock::new(),
            attached,
            joins: Mutex::new(None),
            runtime: tokio::runtime::Handle::current(),
            beat_port: beacon.port(),
            watch: Mutex::new(None),
            shared: cfg.shared_dir.as_deref().map(|dir| {
                let job = crate::shared::job_tag(&cfg.secret);
                Arc::new(SharedDir::new(dir, &job, cfg.locality.0))
            }),
        });
        let (join_tx, join_rx) = mpsc::unbounded_channel();
        if cfg.locality.is_root() {
            *inner.joins.lock() = Some(join_tx);
        }
        tokio::spawn(accept_loop(inner.clone()));
        let deadline = Instant::now() + cfg.startup_timeout;
        let result = if cfg.locality.is_root() {
            inner
                .bootstrap_root(join_rx, deadline, cfg.startup_timeout)
                .await
        } else {
            inner.bootstrap_join(cfg.rendezvous, deadline).await
        };
        let result = result.and_then(|table| {
            let (addrs, beats): (Vec<SocketAddr>, Vec<SocketAddr>) = table.into_iter().unzip();
            // Only fails if already set, which bootstrap never does.
            let _ = inner.addrs.set(addrs);
            let watching = WatchConfig {
                here: cfg.locality,
                peers: beats,
                secret: cfg.secret.clone(),
                timeout: cfg.peer_timeout,
            };
            let weak = Arc::downgrade(&inner);
            let watch = beacon.start(watching, move |locality, reason| {
                if let Some(inner) = weak.upgrade() {
                    inner.declare_lost(locality, reason);
                }
            })?;
            *inner.watch.lock() = Some(watch);
            Ok(())
        });
        match result {
            Ok(()) => Ok(Arc::new(QuicParcelport { inner })),
            Err(e) => {
                inner.closing.store(true, Ordering::SeqCst);
                inner
                    .endpoint
                    .close(VarInt::from_u32(CLOSE_ABORT), b"bootstrap failed");
                Err(e)
            }
        }
    }

    /// Where this locality listens.
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.listen
    }

    /// Every locality's listen address, indexed by locality id.
    pub fn addresses(&self) -> &[SocketAddr] {
        self.inner.addrs.get().map(Vec::as_slice).unwrap_or(&[])
    }
}

impl Parcelport for QuicParcelport {
    fn here(&self) -> LocalityId {
        self.inner.here
    }

    fn num_localities(&self) -> u32 {
        self.inner.n
    }

    fn attach(&self, handler: Arc<dyn ParcelHandler>) {
        if self.inner.handler.set(handler).is_ok() {
            self.inner.attached.send_replace(true);
        }
    }

    fn send(&self, parcel: Parcel) -> Result<(), TransportError> {
        self.inner.send(parcel)
    }

    fn flush_and_close(&self) -> futures::future::BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.flush_and_close().await })
    }

    fn abort(&self, reason: &str) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner
            .endpoint
            .close(VarInt::from_u32(CLOSE_ABORT), reason.as_bytes());
        // Silence from here on: a peer that missed the close notices.
        self.inner.watch.lock().take();
        if let Some(shared) = &self.inner.shared {
            shared.clean_up_job();
        }
    }

    fn addresses(&self) -> Vec<SocketAddr> {
        QuicParcelport::addresses(self).to_vec()
    }

    fn declare_lost(&self, locality: LocalityId, reason: String) {
        self.inner.declare_lost(locality, reason);
    }

    fn route(&self, dest: LocalityId) -> &'static str {
        if dest == self.inner.here {
            "self"
        } else {
            "quic"
        }
    }
}

impl Inner {
    fn send(self: &Arc<Self>, parcel: Parcel) -> Result<(), TransportError> {
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
            let handler = self
                .handler
                .get()
                .cloned()
                .ok_or(TransportError::Shutdown)?;
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
            self.runtime.spawn(self.clone().sender(dest, rx));
            tx
        });
        tx.send(Outgoing::Parcel(parcel))
            .map_err(|_| lost(peer.lost.get().map_or("connection closed", String::as_str)))
    }

    /// Someone who knows better (the heartbeats, the launcher) says that
    /// `locality` is gone: close its connection and report it lost.
    fn declare_lost(&self, locality: LocalityId, reason: String) {
        if locality == self.here {
            return;
        }
        if let Some(conn) = self
            .peers
            .get(locality.index())
            .and_then(|p| p.conn.lock().take())
        {
            conn.close(VarInt::from_u32(CLOSE_ABORT), b"declared lost");
        }
        self.peer_lost(locality, reason);
    }

    fn peer_lost(&self, locality: LocalityId, reason: String) {
        let Some(peer) = self.peers.get(locality.index()) else {
            return;
        };
        if self.closing.load(Ordering::SeqCst) || peer.lost.set(reason.clone()).is_err() {
            return;
        }
        tracing::warn!(%locality, %reason, "locality lost");
        peer.queue.lock().take();
        if let Some(handler) = self.handler.get() {
            handler.on_peer_lost(locality, &reason);
        }
    }

    /// The connection used to send to `dest`: one it opened to us, or a new one.
    async fn connection_to(
        self: &Arc<Self>,
        dest: LocalityId,
    ) -> Result<Connection, TransportError> {
        let existing = self.peers[dest.index()].conn.lock().clone();
        if let Some(conn) = existing.filter(|c| c.close_reason().is_none()) {
            return Ok(conn);
        }
        let addr = self
            .addrs
            .get()
            .and_then(|a| a.get(dest.index()).copied())
            .ok_or(TransportError::NoSuchLocality(dest))?;
        let (conn, _send, _recv) = timeout(
            handshake_timeout(self.n),
            self.dial(addr, Purpose::Peer, dest),
        )
        .await
        .map_err(|_| TransportError::PeerLost {
            locality: dest,
            reason: format!("no answer from {addr}"),
        })??;
        self.register(dest, conn.clone());
        Ok(conn)
    }

    /// Opens an authenticated connection to `addr`, expecting locality `expect` there.
    async fn dial(
        &self,
        addr: SocketAddr,
        purpose: Purpose,
        expect: LocalityId,
    ) -> Result<(Connection, SendStream, RecvStream), TransportError> {
        let conn = self
            .endpoint
            .connect(addr, tls::SERVER_NAME)
            .map_err(quic_err)?
            .await
            .map_err(|e| TransportError::Protocol(format!("cannot connect to {addr}: {e}")))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(quic_err)?;
        let hello = Hello {
            purpose,
            locality: self.here,
            num_localities: self.n,
            token: token(&conn, &self.secret, Role::Dialer)?,
            listen_addr: self.listen.to_string(),
            beat_port: self.beat_port,
        };
        write_msg(&mut send, &hello.encode()?).await?;
        let welcome = Welcome::decode(&read_msg(&mut recv, &conn, addr, MAX_HELLO_LEN).await?)?;
        let expected = token(&conn, &self.secret, Role::Acceptor)?;
        if !tokens_equal(&welcome.token, &expected) {
            conn.close(
                VarInt::from_u32(CLOSE_AUTH_FAILED),
                b"authentication failed",
            );
            return Err(TransportError::Authentication(addr));
        }
        if welcome.locality != expect {
            conn.close(VarInt::from_u32(CLOSE_PROTOCOL), b"unexpected locality");
            return Err(TransportError::Protocol(format!(
                "{addr} is locality {}, expected {expect}",
                welcome.locality
            )));
        }
        tls::authenticated(&conn);
        Ok((conn, send, recv))
    }

    /// Authenticates an incoming connection and hands it to the right place.
    async fn accept(self: Arc<Self>, incoming: quinn::Incoming) -> Result<(), TransportError> {
        let addr = incoming.remote_address();
        let conn = match incoming.await {
            Ok(conn) => conn,
            Err(e) => {
                // A dialer that gave up and retried (bootstrap under load) or
                // a port scan: nothing was said, so nothing to report.
                tracing::debug!(%addr, %e, "QUIC handshake did not complete");
                return Ok(());
            }
        };
        let (mut send, mut recv) = conn.accept_bi().await.map_err(quic_err)?;
        let hello = match read_msg(&mut recv, &conn, addr, MAX_HELLO_LEN)
            .await
            .and_then(|m| Hello::decode(&m))
        {
            Ok(h) => h,
            Err(e) => {
                conn.close(VarInt::from_u32(CLOSE_PROTOCOL), b"bad handshake");
                return Err(e);
            }
        };
        let expected = token(&conn, &self.secret, Role::Dialer)?;
        if !tokens_equal(&hello.token, &expected) {
            conn.close(
                VarInt::from_u32(CLOSE_AUTH_FAILED),
                b"authentication failed",
            );
            return Err(TransportError::Authentication(addr));
        }
        if hello.num_localities != self.n
            || hello.locality.0 >= self.n
            || hello.locality == self.here
        {
            conn.close(VarInt::from_u32(CLOSE_PROTOCOL), b"wrong job layout");
            return Err(TransportError::Protocol(format!(
                "{addr} claims to be locality {} of {}, this is locality {} of {}",
                hello.locality, hello.num_localities, self.here, self.n
            )));
        }
        tls::authenticated(&conn);
        let welcome = Welcome {
            locality: self.here,
            token: token(&conn, &self.secret, Role::Acceptor)?,
        };
        write_msg(&mut send, &welcome.encode()).await?;
        match hello.purpose {
            Purpose::Peer => {
                self.register(hello.locality, conn);
                Ok(())
            }
            Purpose::Join => {
                let joins = self.joins.lock().clone();
                match joins {
                    Some(tx) => tx
                        .send(Join { hello, conn, send })
                        .map_err(|_| TransportError::Bootstrap("bootstrap is over".into())),
                    None => {
                        conn.close(VarInt::from_u32(CLOSE_PROTOCOL), b"not accepting joins");
                        Err(TransportError::Bootstrap(format!(
                            "locality {} tried to join after the bootstrap",
                            hello.locality
                        )))
                    }
                }
            }
        }
    }

    /// Counts a refused connection. A flood of outsiders must not flood the
    /// log: the 1st, 2nd, 4th, 8th, ... rejection is a warning with the
    /// count so far.
    fn rejected_connection(&self, addr: SocketAddr, reason: &str) {
        let count = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_power_of_two() {
            tracing::warn!(%addr, %reason, rejected_so_far = count, "rejected connection");
        } else {
            tracing::debug!(%addr, %reason, "rejected connection");
        }
    }

    /// Records an authenticated connection to `peer` and starts receiving on it.
    fn register(self: &Arc<Self>, peer: LocalityId, conn: Connection) {
        let slot = &self.peers[peer.index()];
        slot.conn.lock().get_or_insert_with(|| conn.clone());
        tokio::spawn(self.clone().receive(peer, conn));
    }

    async fn receive(self: Arc<Self>, peer: LocalityId, conn: Connection) {
        let mut attached = self.attached.subscribe();
        // The sender side is gone only when the parcelport is dropped.
        if attached.wait_for(|a| *a).await.is_err() {
            return;
        }
        loop {
            match conn.accept_uni().await {
                Ok(stream) => {
                    tokio::spawn(self.clone().read_stream(peer, conn.clone(), stream));
                }
                Err(e) => {
                    let slot = &self.peers[peer.index()];
                    {
                        let mut current = slot.conn.lock();
                        if current
                            .as_ref()
                            .is_some_and(|c| c.stable_id() == conn.stable_id())
                        {
                            *current = None;
                        }
                    }
                    if !is_orderly(&e) {
                        self.peer_lost(peer, describe(&e));
                    }
                    return;
                }
            }
        }
    }

    async fn read_stream(
        self: Arc<Self>,
        peer: LocalityId,
        conn: Connection,
        mut stream: RecvStream,
    ) {
        let Some(handler) = self.handler.get().cloned() else {
            return;
        };
        let mut decoder = ParcelDecoder::new(self.max_payload);
        loop {
            let chunk = match stream.read_chunk(1 << 20, true).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) | Err(_) => return,
            };
            decoder.feed(&chunk.bytes);
            loop {
                let parcel = match decoder.next_parcel() {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(e) => return self.protocol_violation(peer, &conn, e.to_string()),
                };
                if parcel.header.source != peer || parcel.header.dest != self.here {
                    let msg = format!(
                        "parcel from {} to {} on the connection of locality {peer}",
                        parcel.header.source, parcel.header.dest
                    );
                    return self.protocol_violation(peer, &conn, msg);
                }
                let mut parcel = parcel;
                if parcel.header.flags & FLAG_SHARED != 0 {
                    match self.take_shared(&parcel.payload).await {
                        Ok(payload) => {
                            parcel.payload = payload;
                            parcel.header.flags &= !FLAG_SHARED;
                        }
                        Err(e) => return self.protocol_violation(peer, &conn, e.to_string()),
                    }
                }
                let credit = if parcel.header.flags & FLAG_UNMETERED != 0 {
                    Credit::unmetered()
                } else {
                    let charge = parcel.payload.len().clamp(MIN_CHARGE, self.budget_total);
                    // Bounded by budget_total, which fits in u32 by construction of Semaphore limits.
                    let charge = u32::try_from(charge).unwrap_or(u32::MAX);
                    match self.budget.clone().acquire_many_owned(charge).await {
                        Ok(permit) => Credit::metered(permit),
                        Err(_) => return,
                    }
                };
                handler.on_parcel(parcel, credit);
            }
        }
    }

    /// Reads a payload that a locality on this host left in the shared directory.
    async fn take_shared(&self, name: &Bytes) -> Result<Bytes, TransportError> {
        let shared = self.shared.clone().ok_or_else(|| {
            TransportError::Protocol(
                "a shared payload arrived, but this locality has no shared directory".into(),
            )
        })?;
        let (name, max) = (name.clone(), self.max_payload);
        tokio::task::spawn_blocking(move || shared.take(&name, max))
            .await
            .map_err(|e| TransportError::Protocol(e.to_string()))?
    }

    /// Whether large payloads to `dest` go through the shared directory.
    fn shares_memory_with(&self, dest: LocalityId) -> bool {
        self.shared.is_some()
            && self
                .addrs
                .get()
                .and_then(|a| a.get(dest.index()))
                .is_some_and(|a| a.ip() == self.listen.ip())
    }

    fn protocol_violation(&self, peer: LocalityId, conn: &Connection, msg: String) {
        tracing::error!(%peer, %msg, "protocol violation, closing connection");
        conn.close(VarInt::from_u32(CLOSE_PROTOCOL), b"protocol violation");
        self.peer_lost(peer, format!("protocol violation: {msg}"));
    }

    async fn sender(self: Arc<Self>, dest: LocalityId, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
        let stream = match self.connection_to(dest).await {
            Ok(conn) => conn.open_uni().await.map_err(quic_err),
            Err(e) => Err(e),
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                self.peer_lost(dest, e.to_string());
                return;
            }
        };
        let shared = if self.shares_memory_with(dest) {
            self.shared.clone()
        } else {
            None
        };
        let mut batcher = Batcher::new();
        let mut chunks = Vec::new();
        let mut flushes = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(item) = next {
                match item {
                    Outgoing::Parcel(mut p) => {
                        if let Some(shared) =
                            shared.as_ref().filter(|_| p.payload.len() >= SHARED_MIN)
                        {
                            let (dir, payload) = (shared.clone(), p.payload.clone());
                            match tokio::task::spawn_blocking(move || dir.stash(&payload)).await {
                                Ok(Ok(name)) => {
                                    p.payload = Bytes::from(name.into_bytes());
                                    p.header.flags |= FLAG_SHARED;
                                }
                                // No room in the directory: QUIC carries it.
                                Ok(Err(e)) => tracing::debug!(%e, "shared payload not written"),
                                Err(e) => tracing::debug!(%e, "shared payload not written"),
                            }
                        }
                        // Payload sizes were checked against max_payload in send().
                        if let Err(e) = batcher.push(p) {
                            tracing::error!(%e, "dropping unencodable parcel");
                        }
                    }
                    Outgoing::Flush(done) => flushes.push(done),
                }
                next = if !batcher.is_full() && flushes.is_empty() {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            batcher.take_into(&mut chunks);
            if let Err(e) = stream.write_all_chunks(&mut chunks).await {
                self.peer_lost(dest, format!("sending failed: {e}"));
                return;
            }
            chunks.clear();
            if !flushes.is_empty() {
                let _ = stream.finish();
                let _ = stream.stopped().await;
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
                return;
            }
        }
    }

    async fn flush_and_close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let mut waits = Vec::new();
        for peer in &self.peers {
            if let Some(tx) = peer.queue.lock().take() {
                let (done, wait) = oneshot::channel();
                if tx.send(Outgoing::Flush(done)).is_ok() {
                    waits.push(wait);
                }
            }
        }
        let _ = timeout(Duration::from_secs(5), futures::future::join_all(waits)).await;
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
        self.watch.lock().take();
        if let Some(shared) = &self.shared {
            shared.clean_up_job();
        }
        let _ = timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }

    async fn bootstrap_root(
        self: &Arc<Self>,
        mut joins: mpsc::UnboundedReceiver<Join>,
        deadline: Instant,
        allowed: Duration,
    ) -> Result<Vec<(SocketAddr, SocketAddr)>, TransportError> {
        let mut joined: Vec<Option<(Join, (SocketAddr, SocketAddr))>> =
            (0..self.n).map(|_| None).collect();
        let mut count = 1;
        while count < self.n {
            match timeout_at(deadline, joins.recv()).await {
                Ok(Some(mut join)) => {
                    let id = join.hello.locality;
                    let outcome = if joined[id.index()].is_some() {
                        Err(format!("locality {id} joined twice"))
                    } else {
                        join.hello
                            .listen_addr
                            .parse::<SocketAddr>()
                            .map(|a| (a, SocketAddr::new(a.ip(), join.hello.beat_port)))
                            .map_err(|e| format!("locality {id} sent a bad address: {e}"))
                    };
                    match outcome {
                        Ok(addr) => {
                            joined[id.index()] = Some((join, addr));
                            count += 1;
                        }
                        Err(reason) => {
                            tracing::warn!(%reason, "rejecting join");
                            let msg = LocalityTable::Failed(reason).encode()?;
                            let _ = write_msg(&mut join.send, &msg).await;
                            let _ = join.send.finish();
                        }
                    }
                }
                Ok(None) => return Err(TransportError::Bootstrap("rendezvous closed".into())),
                Err(_) => {
                    let missing: Vec<String> = (1..self.n as usize)
                        .filter(|i| joined[*i].is_none())
                        .map(|i| i.to_string())
                        .collect();
                    let reason = format!(
                        "{} of {} localities did not arrive within {:.1?} (missing: {})",
                        missing.len(),
                        self.n,
                        allowed,
                        missing.join(", ")
                    );
                    let msg = LocalityTable::Failed(reason.clone()).encode()?;
                    for (join, _) in joined.iter_mut().flatten() {
                        let _ = write_msg(&mut join.send, &msg).await;
                        let _ = join.send.finish();
                        let _ = timeout(Duration::from_millis(500), join.send.stopped()).await;
                    }
                    return Err(TransportError::Bootstrap(reason));
                }
            }
        }
        self.joins.lock().take();
        let mut addrs = vec![(
            self.listen,
            SocketAddr::new(self.listen.ip(), self.beat_port),
        )];
        addrs.extend(joined.iter().skip(1).flatten().map(|(_, addr)| *addr));
        let table = LocalityTable::Ready(
            addrs
                .iter()
                .map(|(listen, beat)| PeerAddress {
                    listen: listen.to_string(),
                    beat_port: beat.port(),
                })
                .collect(),
        )
        .encode()?;
        for (i, slot) in joined.into_iter().enumerate() {
            if let Some((mut join, _)) = slot {
                write_msg(&mut join.send, &table).await?;
                let _ = join.send.finish();
                self.register(LocalityId(i as u32), join.conn);
            }
        }
        Ok(addrs)
    }

    async fn bootstrap_join(
        self: &Arc<Self>,
        rendezvous: SocketAddr,
        deadline: Instant,
    ) -> Result<Vec<(SocketAddr, SocketAddr)>, TransportError> {
        let mut attempt = Duration::from_millis(500);
        let (conn, _send, mut recv) = loop {
            let err = match timeout(
                attempt,
                self.dial(rendezvous, Purpose::Join, LocalityId::ROOT),
            )
            .await
            {
                Ok(Ok(c)) => break c,
                Ok(Err(e @ TransportError::Authentication(_))) => return Err(e),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {attempt:?}"),
            };
            if Instant::now() >= deadline {
                return Err(TransportError::Bootstrap(format!(
                    "cannot reach the root locality at {rendezvous}: {err}"
                )));
            }
            attempt = (attempt * 2).min(Duration::from_secs(2));
        };
        // The root answers once everyone is in, or at its own deadline.
        let grace = deadline + Duration::from_secs(5);
        let table = match timeout_at(
            grace,
            read_msg(&mut recv, &conn, rendezvous, MAX_HANDSHAKE_LEN),
        )
        .await
        {
            Ok(msg) => LocalityTable::decode(&msg?)?,
            Err(_) => {
                return Err(TransportError::Bootstrap(
                    "the root did not send the locality table in time".into(),
                ))
            }
        };
        let addrs = match table {
            LocalityTable::Ready(addrs) => addrs,
            LocalityTable::Failed(reason) => return Err(TransportError::Bootstrap(reason)),
        };
        if addrs.len() != self.n as usize {
            return Err(TransportError::Bootstrap(format!(
                "the root sent {} addresses for {} localities",
                addrs.len(),
                self.n
            )));
        }
        let addrs = addrs
            .iter()
            .map(|a| {
                a.listen
                    .parse::<SocketAddr>()
                    .map(|l| (l, SocketAddr::new(l.ip(), a.beat_port)))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TransportError::Bootstrap(format!("bad address in the table: {e}")))?;
        self.register(LocalityId::ROOT, conn);
        Ok(addrs)
    }
}

/// Unauthenticated incoming connections in progress.
#[derive(Default)]
struct Handshakes {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Counts a handshake in progress for as long as it lives.
struct Handshaking(Arc<Inner>, IpAddr);

impl Handshaking {
    /// Counts a new handshake from `source`, or says why it is refused.
    fn begin(inner: &Arc<Inner>, source: IpAddr) -> Result<Handshaking, &'static str> {
        let per_locality = 2 * inner.n as usize;
        let mut h = inner.handshaking.lock();
        if h.total >= MAX_HANDSHAKES + per_locality {
            return Err("too many handshakes at once");
        }
        let from_source = h.by_source.entry(source).or_insert(0);
        if *from_source >= MAX_HANDSHAKES_PER_SOURCE + per_locality {
            return Err("too many handshakes at once from one address");
        }
        *from_source += 1;
        h.total += 1;
        Ok(Handshaking(inner.clone(), source))
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        let mut h = self.0.handshaking.lock();
        h.total -= 1;
        if let Some(n) = h.by_source.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                h.by_source.remove(&self.1);
            }
        }
    }
}

async fn accept_loop(inner: Arc<Inner>) {
    // Unauthenticated connections cost a window each until they prove the
    // secret or time out: beyond the limits, new ones are refused (a joining
    // locality retries).
    let allowed = handshake_timeout(inner.n);
    while let Some(incoming) = inner.endpoint.accept().await {
        let addr = incoming.remote_address();
        let guard = match Handshaking::begin(&inner, addr.ip()) {
            Ok(guard) => guard,
            Err(why) => {
                incoming.refuse();
                inner.rejected_connection(addr, why);
                continue;
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let reason = match timeout(allowed, inner.clone().accept(incoming)).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the handshake timed out".to_owned(),
            };
            drop(guard);
            inner.rejected_connection(addr, &reason);
        });
    }
}

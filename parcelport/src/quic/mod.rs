//! The QUIC parcelport (quinn): bootstrap at the root's rendezvous,
//! authenticated direct connections between localities, one coalescing sender
//! per peer, and receivers with a bounded incoming budget.

mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use quinn::{Connection, ConnectionError, Endpoint, RecvStream, SendStream, VarInt};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use crate::handshake::{
    token_context, tokens_equal, Hello, Purpose, Role, Welcome, EXPORTER_LABEL, MAX_HANDSHAKE_LEN,
    MAX_HELLO_LEN, TOKEN_LEN,
};
use crate::liveness::Beacon;
use crate::net::admission::handshake_timeout;
use crate::net::bootstrap::{self, Entry, JoinRequest};
use crate::net::{
    Core, Outgoing, Undelivered, CLOSE_ABORT, CLOSE_AUTH_FAILED, CLOSE_PROTOCOL, CLOSE_SHUTDOWN,
};
use crate::parcel::ParcelDecoder;
use crate::{LocalityId, NetConfig, Parcel, ParcelHandler, Parcelport, TransportError};

struct Join {
    hello: Hello,
    conn: Connection,
    send: SendStream,
}

impl JoinRequest for Join {
    fn hello(&self) -> &Hello {
        &self.hello
    }

    async fn answer(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        write_msg(&mut self.send, msg).await?;
        let _ = self.send.finish();
        Ok(())
    }

    async fn settle(&mut self) {
        let _ = timeout(Duration::from_millis(500), self.send.stopped()).await;
    }
}

/// How long an orderly close lets the endpoint send its close frames.
const CLOSE_LINGER: Duration = Duration::from_millis(50);

struct Inner {
    core: Core,
    endpoint: Endpoint,
    /// The connection to each locality, once there is one.
    conns: Vec<Mutex<Option<Connection>>>,
    joins: Mutex<Option<mpsc::UnboundedSender<Join>>>,
}

/// A parcelport over QUIC connections between the localities of one job.
pub struct QuicParcelport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QuicParcelport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicParcelport")
            .field("here", &self.inner.core.here)
            .field("listen", &self.inner.core.listen)
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
        let inner = Arc::new(Inner {
            core: Core::new(&cfg, listen, beacon.port()),
            endpoint,
            conns: (0..cfg.num_localities).map(|_| Mutex::new(None)).collect(),
            joins: Mutex::new(None),
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
            let weak = Arc::downgrade(&inner);
            inner
                .core
                .watch_peers(table, beacon, cfg.peer_timeout, move |locality, reason| {
                    if let Some(inner) = weak.upgrade() {
                        inner.declare_lost(locality, reason);
                    }
                })
        });
        match result {
            Ok(()) => Ok(Arc::new(QuicParcelport { inner })),
            Err(e) => {
                inner.core.close();
                inner
                    .endpoint
                    .close(VarInt::from_u32(CLOSE_ABORT), b"bootstrap failed");
                Err(e)
            }
        }
    }

    /// Where this locality listens.
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.core.listen
    }

    /// Every locality's listen address, indexed by locality id.
    pub fn addresses(&self) -> &[SocketAddr] {
        self.inner.core.addresses()
    }
}

impl Parcelport for QuicParcelport {
    fn here(&self) -> LocalityId {
        self.inner.core.here
    }

    fn num_localities(&self) -> u32 {
        self.inner.core.n
    }

    fn attach(&self, handler: Arc<dyn ParcelHandler>) {
        self.inner.core.attach(handler);
    }

    fn send(&self, parcel: Parcel) -> Result<(), TransportError> {
        self.inner.send(parcel)
    }

    fn flush_and_close(&self) -> futures::future::BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        Box::pin(async move { inner.flush_and_close().await })
    }

    fn abort(&self, reason: &str) {
        self.inner.core.close();
        self.inner
            .endpoint
            .close(VarInt::from_u32(CLOSE_ABORT), reason.as_bytes());
        self.inner.core.stop();
    }

    fn addresses(&self) -> Vec<SocketAddr> {
        QuicParcelport::addresses(self).to_vec()
    }

    fn declare_lost(&self, locality: LocalityId, reason: String) {
        self.inner.declare_lost(locality, reason);
    }

    fn route(&self, dest: LocalityId) -> &'static str {
        if dest == self.inner.core.here {
            "self"
        } else {
            "quic"
        }
    }
}

impl Inner {
    fn send(self: &Arc<Self>, parcel: Parcel) -> Result<(), TransportError> {
        self.core.send(parcel, |dest, rx| {
            self.core.runtime.spawn(self.clone().sender(dest, rx));
        })
    }

    /// Someone who knows better (the heartbeats, the launcher) says that
    /// `locality` is gone: close its connection and report it lost.
    fn declare_lost(&self, locality: LocalityId, reason: String) {
        if locality == self.core.here {
            return;
        }
        if let Some(conn) = self
            .conns
            .get(locality.index())
            .and_then(|c| c.lock().take())
        {
            conn.close(VarInt::from_u32(CLOSE_ABORT), b"declared lost");
        }
        self.core.peer_lost(locality, reason);
    }

    /// The connection used to send to `dest`: one it opened to us, or a new one.
    async fn connection_to(
        self: &Arc<Self>,
        dest: LocalityId,
    ) -> Result<Connection, TransportError> {
        let existing = self.conns[dest.index()].lock().clone();
        if let Some(conn) = existing.filter(|c| c.close_reason().is_none()) {
            return Ok(conn);
        }
        let addr = self.core.address_of(dest)?;
        let (conn, _send, _recv) = timeout(
            handshake_timeout(self.core.n),
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
            .connect(addr, crate::tls::SERVER_NAME)
            .map_err(quic_err)?
            .await
            .map_err(|e| TransportError::Protocol(format!("cannot connect to {addr}: {e}")))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(quic_err)?;
        let hello = Hello {
            purpose,
            locality: self.core.here,
            num_localities: self.core.n,
            token: token(&conn, &self.core.secret, Role::Dialer)?,
            listen_addr: self.core.listen.to_string(),
            beat_port: self.core.beat_port,
        };
        write_msg(&mut send, &hello.encode()?).await?;
        let welcome = Welcome::decode(&read_msg(&mut recv, &conn, addr, MAX_HELLO_LEN).await?)?;
        let expected = token(&conn, &self.core.secret, Role::Acceptor)?;
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
        let expected = token(&conn, &self.core.secret, Role::Dialer)?;
        if !tokens_equal(&hello.token, &expected) {
            conn.close(
                VarInt::from_u32(CLOSE_AUTH_FAILED),
                b"authentication failed",
            );
            return Err(TransportError::Authentication(addr));
        }
        if hello.num_localities != self.core.n
            || hello.locality.0 >= self.core.n
            || hello.locality == self.core.here
        {
            conn.close(VarInt::from_u32(CLOSE_PROTOCOL), b"wrong job layout");
            return Err(TransportError::Protocol(format!(
                "{addr} claims to be locality {} of {}, this is locality {} of {}",
                hello.locality, hello.num_localities, self.core.here, self.core.n
            )));
        }
        tls::authenticated(&conn);
        let welcome = Welcome {
            locality: self.core.here,
            token: token(&conn, &self.core.secret, Role::Acceptor)?,
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

    /// Records an authenticated connection to `peer` and starts receiving on it.
    fn register(self: &Arc<Self>, peer: LocalityId, conn: Connection) {
        self.conns[peer.index()]
            .lock()
            .get_or_insert_with(|| conn.clone());
        tokio::spawn(self.clone().receive(peer, conn));
    }

    async fn receive(self: Arc<Self>, peer: LocalityId, conn: Connection) {
        // The sender side is gone only when the parcelport is dropped.
        if !self.core.attached().await {
            return;
        }
        loop {
            match conn.accept_uni().await {
                Ok(stream) => {
                    tokio::spawn(self.clone().read_stream(peer, conn.clone(), stream));
                }
                Err(e) => {
                    {
                        let mut current = self.conns[peer.index()].lock();
                        if current
                            .as_ref()
                            .is_some_and(|c| c.stable_id() == conn.stable_id())
                        {
                            *current = None;
                        }
                    }
                    if !is_orderly(&e) {
                        self.core.peer_lost(peer, describe(&e));
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
        let Some(handler) = self.core.handler() else {
            return;
        };
        let mut decoder = ParcelDecoder::new(self.core.max_payload);
        loop {
            let chunk = match stream.read_chunk(1 << 20, true).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) | Err(_) => return,
            };
            decoder.feed(&chunk.bytes);
            match self.core.deliver(peer, &mut decoder, &handler).await {
                Ok(()) => {}
                Err(Undelivered::Violation(msg)) => {
                    return self.protocol_violation(peer, &conn, msg)
                }
                Err(Undelivered::Stopped) => return,
            }
        }
    }

    fn protocol_violation(&self, peer: LocalityId, conn: &Connection, msg: String) {
        tracing::error!(%peer, %msg, "protocol violation, closing connection");
        conn.close(VarInt::from_u32(CLOSE_PROTOCOL), b"protocol violation");
        self.core
            .peer_lost(peer, format!("protocol violation: {msg}"));
    }

    async fn sender(self: Arc<Self>, dest: LocalityId, rx: mpsc::UnboundedReceiver<Outgoing>) {
        let stream = match self.connection_to(dest).await {
            Ok(conn) => conn.open_uni().await.map_err(quic_err),
            Err(e) => Err(e),
        };
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                self.core.peer_lost(dest, e.to_string());
                return;
            }
        };
        let mut outbox = self.core.outbox(rx);
        let mut chunks = Vec::new();
        while outbox.next(&mut chunks).await {
            if let Err(e) = stream.write_all_chunks(&mut chunks).await {
                self.core.peer_lost(dest, format!("sending failed: {e}"));
                return;
            }
            chunks.clear();
            if outbox.flushing() {
                let _ = stream.finish();
                let _ = stream.stopped().await;
                outbox.flushed();
                return;
            }
        }
    }

    async fn flush_and_close(&self) {
        self.core.flush_queues().await;
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
        self.core.stop();
        // Long enough for the close frames to leave (everything sent was
        // acknowledged above); waiting out the whole draining period (three
        // probe timeouts, up to a second on a connection that measured no
        // round trip) only delayed the end of every job.
        let _ = timeout(CLOSE_LINGER, self.endpoint.wait_idle()).await;
    }

    async fn bootstrap_root(
        self: &Arc<Self>,
        mut joins: mpsc::UnboundedReceiver<Join>,
        deadline: Instant,
        allowed: Duration,
    ) -> Result<Vec<Entry>, TransportError> {
        let gathered = bootstrap::gather(&self.core, &mut joins, deadline, allowed).await?;
        self.joins.lock().take();
        for (id, mut join) in gathered.joined {
            join.answer(&gathered.answer).await?;
            self.register(id, join.conn);
        }
        Ok(gathered.table)
    }

    async fn bootstrap_join(
        self: &Arc<Self>,
        rendezvous: SocketAddr,
        deadline: Instant,
    ) -> Result<Vec<Entry>, TransportError> {
        let (conn, _send, mut recv) = bootstrap::reach_root(rendezvous, deadline, || {
            self.dial(rendezvous, Purpose::Join, LocalityId::ROOT)
        })
        .await?;
        let table = bootstrap::receive_table(
            read_msg(&mut recv, &conn, rendezvous, MAX_HANDSHAKE_LEN),
            deadline,
            self.core.n,
        )
        .await?;
        self.register(LocalityId::ROOT, conn);
        Ok(table)
    }
}

async fn accept_loop(inner: Arc<Inner>) {
    // Unauthenticated connections cost a window each until they prove the
    // secret or time out: beyond the limits, new ones are refused (a joining
    // locality retries).
    let allowed = handshake_timeout(inner.core.n);
    while let Some(incoming) = inner.endpoint.accept().await {
        let addr = incoming.remote_address();
        let guard = match inner.core.admission.begin(addr.ip()) {
            Ok(guard) => guard,
            Err(why) => {
                incoming.refuse();
                inner.core.admission.reject(addr, why);
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
            inner.core.admission.reject(addr, &reason);
        });
    }
}

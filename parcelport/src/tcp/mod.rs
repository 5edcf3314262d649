//! The TCP parcelport: TLS 1.3 (rustls) over TCP, with the behaviour of the
//! QUIC one: bootstrap at the root's rendezvous, connections authenticated
//! with the job secret over the TLS exporter, one coalescing sender per
//! peer, receivers with a bounded incoming budget, heartbeats.
//!
//! Connections are one-way for parcels: a locality sends to a peer only on
//! the connection it dialed to it, and receives parcels only on connections
//! it accepted, so two localities that send to each other at the same time
//! open one connection each and never race for one. A joining locality's
//! connection to the root is its connection for sending to the root.
//!
//! On the wire each direction carries the records of [`record`]: the
//! handshake messages, then data records (the parcel stream, cut into
//! records of at most [`record::MAX_DATA`] bytes), then one close record.
//! The accepting side sends only its close record back. A close record with
//! [`CLOSE_SHUTDOWN`] is an orderly end: the dialer sends it after its last
//! parcel and the acceptor answers once it has delivered everything, which
//! is what an orderly close waits for; [`CLOSE_ABORT`] carries the reason of
//! an abort. A connection that ends without a close record is a loss.
//!
//! Unlike QUIC's connection close, a close record travels in order behind
//! the data already sent. An abort reaches a peer at once on the
//! connections this locality accepted from it (their direction back
//! carries nothing else), and on the one it dialed after the data record in
//! progress; if that write cannot finish (the peer's budget is spent and it
//! does not read), the connection is cut after [`link::LINGER`], and the
//! peer learns of the loss when it reads again, or from the heartbeats.

mod link;
mod record;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};
use tokio_rustls::{TlsAcceptor, TlsConnector};

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
use crate::tls::config_err;
use crate::{LocalityId, NetConfig, Parcel, ParcelHandler, Parcelport, TransportError};
use link::{Link, Tls, LINGER};
use record::Kind;

/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 64 << 10;
/// Pause after a failed accept (out of file descriptors), so it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// An authenticated join at the root's rendezvous.
struct Join {
    hello: Hello,
    stream: Tls,
    socket: socket2::Socket,
}

impl JoinRequest for Join {
    fn hello(&self) -> &Hello {
        &self.hello
    }

    async fn answer(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        write_record(&mut self.stream, &record::message(msg)?).await
    }

    async fn settle(&mut self) {
        let _ = timeout(LINGER, self.stream.shutdown()).await;
    }
}

/// How the reader of a link stopped.
enum Outcome {
    /// The peer sent a close record.
    Closed { code: u32, reason: String },
    /// The connection ended without a close record, or failed.
    Broken(String),
    /// The peer broke the wire protocol.
    Violation(String),
    /// There is no one to deliver to any more.
    Stopped,
}

struct Inner {
    core: Core,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    /// Every open link, by id.
    links: Mutex<HashMap<u64, Arc<Link>>>,
    next_link: AtomicU64,
    /// The connection this locality joined the root with, until its sender
    /// to the root takes it.
    join_link: Mutex<Option<Arc<Link>>>,
    joins: Mutex<Option<mpsc::UnboundedSender<Join>>>,
    /// How this locality ends its links, once it closes or aborts.
    ending: OnceLock<(u32, String)>,
    /// Set when this locality closes: the listener stops accepting.
    stop: watch::Sender<bool>,
}

/// A parcelport over TLS 1.3 on TCP connections between the localities of
/// one job; its guarantees are those of [`crate::QuicParcelport`].
pub struct TcpParcelport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TcpParcelport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpParcelport")
            .field("here", &self.inner.core.here)
            .field("listen", &self.inner.core.listen)
            .finish_non_exhaustive()
    }
}

/// This side's token (`role`) of the TLS session of `conn`.
fn token<C, D>(conn: &C, secret: &[u8], role: Role) -> Result<[u8; TOKEN_LEN], TransportError>
where
    C: Deref<Target = rustls::ConnectionCommon<D>>,
{
    conn.export_keying_material(
        [0u8; TOKEN_LEN],
        EXPORTER_LABEL,
        Some(&token_context(secret, role)),
    )
    .map_err(|_| TransportError::Protocol("TLS exporter unavailable".into()))
}

/// Sets up an accepted or dialed socket: no Nagle delay, and a second
/// handle to cut it with.
fn prepare(tcp: &TcpStream) -> Result<socket2::Socket, TransportError> {
    tcp.set_nodelay(true)?;
    Ok(socket2::SockRef::from(tcp).try_clone()?)
}

async fn write_record<S>(stream: &mut S, record: &[u8]) -> Result<(), TransportError>
where
    S: AsyncWrite + Unpin,
{
    stream.write_all(record).await?;
    Ok(stream.flush().await?)
}

/// Reads one handshake message of at most `max` bytes. A close record
/// instead is an error, reported as failed authentication if that is the
/// peer's reason.
async fn read_message<S>(
    stream: &mut S,
    peer: SocketAddr,
    max: usize,
) -> Result<Vec<u8>, TransportError>
where
    S: AsyncRead + Unpin,
{
    let failed = |e: io::Error| TransportError::Protocol(format!("handshake with {peer}: {e}"));
    let mut header = [0u8; record::HEADER_LEN];
    stream.read_exact(&mut header).await.map_err(failed)?;
    let (kind, len) = record::decode_header(header, max)
        .map_err(|e| TransportError::Protocol(format!("handshake with {peer}: {e}")))?;
    if kind == Kind::Data {
        return Err(TransportError::Protocol(format!(
            "parcels from {peer} before the handshake"
        )));
    }
    // Bounded by `max` or the largest close record.
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(failed)?;
    if kind == Kind::Message {
        return Ok(body);
    }
    match record::decode_close(&body) {
        (CLOSE_AUTH_FAILED, _) => Err(TransportError::Authentication(peer)),
        (_, reason) => Err(TransportError::Protocol(format!(
            "{peer} closed the connection: {reason}"
        ))),
    }
}

/// Tells the peer why the handshake ends here, and ends it.
async fn refuse<S>(stream: &mut S, code: u32, reason: &str)
where
    S: AsyncWrite + Unpin,
{
    let _ = stream.write_all(&record::close(code, reason)).await;
    let _ = stream.shutdown().await;
}

/// Why a connection that ended without a close record ended.
fn broken(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "the connection ended without a goodbye (the process ended or was killed)".into()
    } else {
        format!("the connection broke: {e}")
    }
}

/// Reads and drops whatever still arrives, until the peer ends its side.
async fn drain(reader: &mut ReadHalf<Tls>) {
    let mut buf = vec![0u8; READ_CHUNK];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

impl TcpParcelport {
    /// Binds the listener and runs the bootstrap: the root waits for every
    /// other locality at the rendezvous and sends them the table of addresses;
    /// the others join there. Parcels are delivered only after
    /// [`TcpParcelport::attach`].
    pub async fn start(cfg: NetConfig) -> Result<Arc<TcpParcelport>, TransportError> {
        if cfg.locality.0 >= cfg.num_localities {
            return Err(TransportError::NoSuchLocality(cfg.locality));
        }
        let bind = if cfg.locality.is_root() {
            cfg.rendezvous
        } else {
            SocketAddr::new(cfg.bind, 0)
        };
        let crypto = crate::tls::crypto()?;
        let listener = TcpListener::bind(bind).await.map_err(|e| {
            TransportError::Io(io::Error::new(e.kind(), format!("cannot bind {bind}: {e}")))
        })?;
        let listen = listener.local_addr()?;
        let beacon = Beacon::bind(listen.ip())?;
        let inner = Arc::new(Inner {
            core: Core::new(&cfg, listen, beacon.port()),
            acceptor: TlsAcceptor::from(Arc::new(crypto.server)),
            connector: TlsConnector::from(Arc::new(crypto.client)),
            server_name: ServerName::try_from(crate::tls::SERVER_NAME).map_err(config_err)?,
            links: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(0),
            join_link: Mutex::new(None),
            joins: Mutex::new(None),
            ending: OnceLock::new(),
            stop: watch::channel(false).0,
        });
        let (join_tx, join_rx) = mpsc::unbounded_channel();
        if cfg.locality.is_root() {
            *inner.joins.lock() = Some(join_tx);
        }
        tokio::spawn(accept_loop(inner.clone(), listener));
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
            Ok(()) => Ok(Arc::new(TcpParcelport { inner })),
            Err(e) => {
                inner.end(CLOSE_ABORT, "bootstrap failed");
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

impl Parcelport for TcpParcelport {
    fn here(&self) -> LocalityId {
        self.inner.core.here
    }

    fn route(&self, dest: LocalityId) -> &'static str {
        if dest == self.inner.core.here {
            "self"
        } else {
            "tcp"
        }
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
        self.inner.end(CLOSE_ABORT, reason);
        self.inner.core.stop();
    }

    fn addresses(&self) -> Vec<SocketAddr> {
        TcpParcelport::addresses(self).to_vec()
    }

    fn declare_lost(&self, locality: LocalityId, reason: String) {
        self.inner.declare_lost(locality, reason);
    }
}

impl Inner {
    fn send(self: &Arc<Self>, parcel: Parcel) -> Result<(), TransportError> {
        self.core.send(parcel, |dest, rx| {
            self.core.runtime.spawn(self.clone().sender(dest, rx));
        })
    }

    /// The open links to or from `peer`.
    fn links_of(&self, peer: LocalityId) -> Vec<Arc<Link>> {
        self.links
            .lock()
            .values()
            .filter(|l| l.peer == peer)
            .cloned()
            .collect()
    }

    /// Someone who knows better (the heartbeats, the launcher) says that
    /// `locality` is gone: close its connections and report it lost.
    fn declare_lost(&self, locality: LocalityId, reason: String) {
        if locality == self.core.here {
            return;
        }
        for link in self.links_of(locality) {
            self.core
                .runtime
                .spawn(async move { link.close(CLOSE_ABORT, "declared lost").await });
        }
        self.core.peer_lost(locality, reason);
    }

    /// A link found `peer` gone: report it lost, and cut its other links.
    fn lose(&self, peer: LocalityId, reason: String) {
        if self.core.peer_lost(peer, reason) {
            for link in self.links_of(peer) {
                link.cut();
            }
        }
    }

    /// Stops accepting and closes every link with `code` and `reason`
    /// (the first call decides them), without waiting.
    fn end(&self, code: u32, reason: &str) {
        let _ = self.ending.set((code, reason.to_owned()));
        self.core.close();
        self.stop.send_replace(true);
        let links: Vec<Arc<Link>> = self.links.lock().values().cloned().collect();
        for link in links {
            self.close_link(link);
        }
    }

    /// Closes `link` in the background as this locality ends.
    fn close_link(&self, link: Arc<Link>) {
        let (code, reason) = self
            .ending
            .get()
            .cloned()
            .unwrap_or((CLOSE_SHUTDOWN, "shutdown".to_owned()));
        self.core
            .runtime
            .spawn(async move { link.close(code, &reason).await });
    }

    /// Records an authenticated connection to `peer` and starts its reader.
    fn register(
        self: &Arc<Self>,
        peer: LocalityId,
        dialed: bool,
        stream: Tls,
        socket: socket2::Socket,
    ) -> Arc<Link> {
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        let (link, reader) = Link::new(id, peer, dialed, stream, socket);
        self.links.lock().insert(id, link.clone());
        // Registered while this locality ends: `end` may have missed it.
        // (Not merely while it flushes: a sender may still be dialing then.)
        if self.ending.get().is_some() {
            self.close_link(link.clone());
        }
        tokio::spawn(self.clone().read_link(link.clone(), reader));
        link
    }

    /// The link to send to `dest` on: the one this locality joined the root
    /// with, or a new one.
    async fn link_to(self: &Arc<Self>, dest: LocalityId) -> Result<Arc<Link>, TransportError> {
        if dest.is_root() {
            if let Some(link) = self.join_link.lock().take() {
                return Ok(link);
            }
        }
        let addr = self.core.address_of(dest)?;
        let (stream, socket) = timeout(
            handshake_timeout(self.core.n),
            self.dial(addr, Purpose::Peer, dest),
        )
        .await
        .map_err(|_| TransportError::PeerLost {
            locality: dest,
            reason: format!("no answer from {addr}"),
        })??;
        Ok(self.register(dest, true, stream, socket))
    }

    /// Opens an authenticated connection to `addr`, expecting locality `expect` there.
    async fn dial(
        &self,
        addr: SocketAddr,
        purpose: Purpose,
        expect: LocalityId,
    ) -> Result<(Tls, socket2::Socket), TransportError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| TransportError::Protocol(format!("cannot connect to {addr}: {e}")))?;
        let socket = prepare(&tcp)?;
        let mut tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| TransportError::Protocol(format!("TLS handshake with {addr}: {e}")))?;
        let hello = Hello {
            purpose,
            locality: self.core.here,
            num_localities: self.core.n,
            token: token(tls.get_ref().1, &self.core.secret, Role::Dialer)?,
            listen_addr: self.core.listen.to_string(),
            beat_port: self.core.beat_port,
        };
        write_record(&mut tls, &record::message(&hello.encode()?)?).await?;
        let welcome = Welcome::decode(&read_message(&mut tls, addr, MAX_HELLO_LEN).await?)?;
        let expected = token(tls.get_ref().1, &self.core.secret, Role::Acceptor)?;
        if !tokens_equal(&welcome.token, &expected) {
            refuse(&mut tls, CLOSE_AUTH_FAILED, "authentication failed").await;
            return Err(TransportError::Authentication(addr));
        }
        if welcome.locality != expect {
            refuse(&mut tls, CLOSE_PROTOCOL, "unexpected locality").await;
            return Err(TransportError::Protocol(format!(
                "{addr} is locality {}, expected {expect}",
                welcome.locality
            )));
        }
        Ok((tls.into(), socket))
    }

    /// Authenticates an incoming connection and hands it to the right place.
    async fn accept(
        self: Arc<Self>,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> Result<(), TransportError> {
        let socket = prepare(&tcp)?;
        let mut tls = match self.acceptor.accept(tcp).await {
            Ok(tls) => tls,
            Err(e) => {
                // A dialer that gave up and retried (bootstrap under load) or
                // a port scan: nothing was said, so nothing to report.
                tracing::debug!(%addr, %e, "TLS handshake did not complete");
                return Ok(());
            }
        };
        let hello = match read_message(&mut tls, addr, MAX_HELLO_LEN)
            .await
            .and_then(|m| Hello::decode(&m))
        {
            Ok(h) => h,
            Err(e) => {
                refuse(&mut tls, CLOSE_PROTOCOL, "bad handshake").await;
                return Err(e);
            }
        };
        let expected = token(tls.get_ref().1, &self.core.secret, Role::Dialer)?;
        if !tokens_equal(&hello.token, &expected) {
            refuse(&mut tls, CLOSE_AUTH_FAILED, "authentication failed").await;
            return Err(TransportError::Authentication(addr));
        }
        if hello.num_localities != self.core.n
            || hello.locality.0 >= self.core.n
            || hello.locality == self.core.here
        {
            refuse(&mut tls, CLOSE_PROTOCOL, "wrong job layout").await;
            return Err(TransportError::Protocol(format!(
                "{addr} claims to be locality {} of {}, this is locality {} of {}",
                hello.locality, hello.num_localities, self.core.here, self.core.n
            )));
        }
        let welcome = Welcome {
            locality: self.core.here,
            token: token(tls.get_ref().1, &self.core.secret, Role::Acceptor)?,
        };
        write_record(&mut tls, &record::message(&welcome.encode())?).await?;
        match hello.purpose {
            Purpose::Peer => {
                self.register(hello.locality, false, tls.into(), socket);
                Ok(())
            }
            Purpose::Join => {
                let joins = self.joins.lock().clone();
                match joins {
                    Some(tx) => tx
                        .send(Join {
                            hello,
                            stream: tls.into(),
                            socket,
                        })
                        .map_err(|_| TransportError::Bootstrap("bootstrap is over".into())),
                    None => {
                        refuse(&mut tls, CLOSE_PROTOCOL, "not accepting joins").await;
                        Err(TransportError::Bootstrap(format!(
                            "locality {} tried to join after the bootstrap",
                            hello.locality
                        )))
                    }
                }
            }
        }
    }

    /// Reads what the peer sends on `link` until it ends, then lets go of
    /// the connection.
    async fn read_link(self: Arc<Self>, link: Arc<Link>, mut reader: ReadHalf<Tls>) {
        let outcome = tokio::select! {
            biased;
            () = link.closed_here() => None,
            outcome = self.serve(&link, &mut reader) => Some(outcome),
        };
        if let Some(outcome) = outcome {
            self.conclude(&link, outcome).await;
        }
        link.set_ended();
        // Until the peer ends its side too: closing with unread bytes would
        // reset the connection, and the peer might miss our close record.
        let _ = timeout(LINGER, drain(&mut reader)).await;
        link.cut();
        self.links.lock().remove(&link.id);
        link.set_finished();
    }

    /// Reads records from `link`: on a link this locality accepted, parcels
    /// for the handler (waiting for a handler first); on either, the close
    /// record that ends it.
    async fn serve(&self, link: &Link, reader: &mut ReadHalf<Tls>) -> Outcome {
        let handler = if link.dialed {
            None
        } else if self.core.attached().await {
            self.core.handler()
        } else {
            return Outcome::Stopped;
        };
        let mut decoder = ParcelDecoder::new(self.core.max_payload);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let mut header = [0u8; record::HEADER_LEN];
            if let Err(e) = reader.read_exact(&mut header).await {
                return Outcome::Broken(broken(&e));
            }
            let (kind, len) = match record::decode_header(header, 0) {
                Ok(h) => h,
                Err(e) => return Outcome::Violation(e.to_string()),
            };
            match kind {
                Kind::Message => {
                    return Outcome::Violation("a handshake message after the handshake".into())
                }
                Kind::Close => {
                    // At most 4 + MAX_REASON bytes (decode_header).
                    let mut body = vec![0u8; len];
                    if let Err(e) = reader.read_exact(&mut body).await {
                        return Outcome::Broken(broken(&e));
                    }
                    let (code, reason) = record::decode_close(&body);
                    if !decoder.is_at_boundary() {
                        // A sender that gave up flushing (or aborted) mid-parcel.
                        tracing::debug!(peer = %link.peer, "a parcel cut short by the close is dropped");
                    }
                    return Outcome::Closed { code, reason };
                }
                Kind::Data => {
                    let Some(handler) = &handler else {
                        return Outcome::Violation(
                            "parcels on a connection this locality opened".into(),
                        );
                    };
                    let mut left = len;
                    while left > 0 {
                        let want = left.min(buf.len());
                        let got = match reader.read(&mut buf[..want]).await {
                            Ok(0) => {
                                let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                                return Outcome::Broken(broken(&eof));
                            }
                            Ok(got) => got,
                            Err(e) => return Outcome::Broken(broken(&e)),
                        };
                        left -= got;
                        decoder.feed(&buf[..got]);
                        match self.core.deliver(link.peer, &mut decoder, handler).await {
                            Ok(()) => {}
                            Err(Undelivered::Violation(msg)) => return Outcome::Violation(msg),
                            Err(Undelivered::Stopped) => return Outcome::Stopped,
                        }
                    }
                }
            }
        }
    }

    /// Acts on how the peer ended `link`.
    async fn conclude(&self, link: &Link, outcome: Outcome) {
        match outcome {
            Outcome::Closed {
                code: CLOSE_SHUTDOWN,
                ..
            } => {
                // The peer's last parcel was delivered (it dialed), or it
                // shuts down (this locality dialed): answer, and end this side.
                link.end_sending(
                    CLOSE_SHUTDOWN,
                    "shutdown",
                    format!("locality {} shut down", link.peer),
                )
                .await;
            }
            Outcome::Closed { code, reason } => {
                let reason = if code == CLOSE_ABORT {
                    format!("it aborted: {reason}")
                } else {
                    format!("it closed the connection: {reason}")
                };
                self.lose(link.peer, reason);
            }
            Outcome::Broken(reason) => {
                if !link.is_closed_here() {
                    self.lose(link.peer, reason);
                }
            }
            Outcome::Violation(msg) => {
                tracing::error!(peer = %link.peer, %msg, "protocol violation, closing connection");
                link.close(CLOSE_PROTOCOL, "protocol violation").await;
                self.lose(link.peer, format!("protocol violation: {msg}"));
            }
            Outcome::Stopped => {}
        }
    }

    async fn sender(self: Arc<Self>, dest: LocalityId, rx: mpsc::UnboundedReceiver<Outgoing>) {
        let link = match self.link_to(dest).await {
            Ok(link) => link,
            Err(e) => {
                self.core.peer_lost(dest, e.to_string());
                return;
            }
        };
        let mut outbox = self.core.outbox(rx);
        let mut chunks = Vec::new();
        while outbox.next(&mut chunks).await {
            if let Err(e) = link.send(&chunks).await {
                self.lose(dest, format!("sending failed: {e}"));
                return;
            }
            chunks.clear();
            if outbox.flushing() {
                link.goodbye().await;
                outbox.flushed();
                return;
            }
        }
    }

    async fn flush_and_close(&self) {
        self.core.flush_queues().await;
        self.end(CLOSE_SHUTDOWN, "shutdown");
        self.core.stop();
        let links: Vec<Arc<Link>> = self.links.lock().values().cloned().collect();
        let _ = timeout(
            LINGER,
            futures::future::join_all(links.iter().map(|l| l.finished())),
        )
        .await;
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
            self.register(id, false, join.stream, join.socket);
        }
        Ok(gathered.table)
    }

    async fn bootstrap_join(
        self: &Arc<Self>,
        rendezvous: SocketAddr,
        deadline: Instant,
    ) -> Result<Vec<Entry>, TransportError> {
        let (mut stream, socket) = bootstrap::reach_root(rendezvous, deadline, || {
            self.dial(rendezvous, Purpose::Join, LocalityId::ROOT)
        })
        .await?;
        let table = bootstrap::receive_table(
            read_message(&mut stream, rendezvous, MAX_HANDSHAKE_LEN),
            deadline,
            self.core.n,
        )
        .await?;
        let link = self.register(LocalityId::ROOT, true, stream, socket);
        *self.join_link.lock() = Some(link);
        Ok(table)
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    // Unauthenticated connections cost a task and a TLS session each until
    // they prove the secret or time out: beyond the limits, new ones are
    // refused (a joining locality retries).
    let allowed = handshake_timeout(inner.core.n);
    let mut stop = inner.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(%e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let guard = match inner.core.admission.begin(addr.ip()) {
            Ok(guard) => guard,
            Err(why) => {
                drop(tcp);
                inner.core.admission.reject(addr, why);
                continue;
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let reason = match timeout(allowed, inner.clone().accept(tcp, addr)).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the handshake timed out".to_owned(),
            };
            drop(guard);
            inner.core.admission.reject(addr, &reason);
        });
    }
}

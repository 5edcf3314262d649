//! One authenticated TCP connection to a peer: the sending side, shared by
//! the task that sends parcels on it and whoever closes it, and the states
//! its reader announces.

use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

use super::record::{self, Kind, MAX_DATA};
use crate::net::CLOSE_SHUTDOWN;
use crate::LocalityId;

/// A connection after the TLS handshake.
pub(super) type Tls = tokio_rustls::TlsStream<TcpStream>;

/// How long closing a link waits for a write in progress, and for the peer
/// to end its side, before cutting the connection.
pub(super) const LINGER: Duration = Duration::from_millis(500);

/// The sending side of a link.
struct Writer {
    half: WriteHalf<Tls>,
    /// Why nothing more may be sent, once a close record went out.
    closed: Option<String>,
}

/// An authenticated connection to one peer. The side that dialed it sends
/// parcels on it; the side that accepted it receives them and sends only
/// its close record back.
pub(super) struct Link {
    /// Identifies the link among this locality's links.
    pub(super) id: u64,
    /// The locality at the other end.
    pub(super) peer: LocalityId,
    /// Whether this locality dialed it (and sends parcels on it).
    pub(super) dialed: bool,
    writer: tokio::sync::Mutex<Writer>,
    /// A second handle on the socket, to cut it whatever the tasks using it do.
    socket: socket2::Socket,
    /// Set when this side closes the link: its reader stops.
    closed_here: watch::Sender<bool>,
    /// Set once the reader is done with what the peer says (a close record,
    /// the end of the connection, or this side's close).
    ended: watch::Sender<bool>,
    /// Set once the reader has let go of the connection.
    finished: watch::Sender<bool>,
}

impl Link {
    /// A link over `stream`, whose socket `socket` also refers to; returns
    /// it and the receiving side for its reader.
    pub(super) fn new(
        id: u64,
        peer: LocalityId,
        dialed: bool,
        stream: Tls,
        socket: socket2::Socket,
    ) -> (Arc<Link>, ReadHalf<Tls>) {
        let (read, write) = tokio::io::split(stream);
        let link = Link {
            id,
            peer,
            dialed,
            writer: tokio::sync::Mutex::new(Writer {
                half: write,
                closed: None,
            }),
            socket,
            closed_here: watch::channel(false).0,
            ended: watch::channel(false).0,
            finished: watch::channel(false).0,
        };
        (Arc::new(link), read)
    }

    /// Sends `chunks` of the parcel stream as data records and flushes them.
    /// Each record is written under the lock of the sending side, so a close
    /// record can come between two of them. Fails with the reason once the
    /// link is closed.
    pub(super) async fn send(&self, chunks: &[Bytes]) -> Result<(), String> {
        for chunk in chunks {
            for piece in chunk.chunks(MAX_DATA) {
                let header = record::header(Kind::Data, piece.len()).map_err(|e| e.to_string())?;
                let mut w = self.writer.lock().await;
                if let Some(why) = &w.closed {
                    return Err(why.clone());
                }
                let mut bytes = (&header[..]).chain(piece);
                w.half
                    .write_all_buf(&mut bytes)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut w = self.writer.lock().await;
        if let Some(why) = &w.closed {
            return Err(why.clone());
        }
        w.half.flush().await.map_err(|e| e.to_string())
    }

    /// Ends the sending side: a close record with `code` and `reason`, then
    /// TLS close_notify and FIN; later sends fail with `why`. Waits at most
    /// [`LINGER`] for a write in progress, then cuts the connection. Does
    /// nothing if the sending side is already closed.
    pub(super) async fn end_sending(&self, code: u32, reason: &str, why: String) {
        let ended = timeout(LINGER, async {
            let mut w = self.writer.lock().await;
            if w.closed.is_some() {
                return;
            }
            w.closed = Some(why);
            // A peer that cannot take these bytes is gone: nothing to do.
            let _ = w.half.write_all(&record::close(code, reason)).await;
            let _ = w.half.shutdown().await;
        })
        .await;
        if ended.is_err() {
            self.cut();
        }
    }

    /// Ends the parcel stream in order and waits until the peer has
    /// received and delivered all of it (its answering close) or the link
    /// ended otherwise.
    pub(super) async fn goodbye(&self) {
        self.end_sending(
            CLOSE_SHUTDOWN,
            "shutdown",
            "this locality closed the connection".into(),
        )
        .await;
        let _ = self.ended.subscribe().wait_for(|e| *e).await;
    }

    /// Closes the link from this side: the reader stops, and the peer gets
    /// a close record with `code` and `reason`.
    pub(super) async fn close(&self, code: u32, reason: &str) {
        self.closed_here.send_replace(true);
        self.end_sending(code, reason, format!("the connection was closed: {reason}"))
            .await;
    }

    /// Cuts the connection at once (both directions); tasks using it fail.
    pub(super) fn cut(&self) {
        self.closed_here.send_replace(true);
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// Whether this side closed or cut the link.
    pub(super) fn is_closed_here(&self) -> bool {
        *self.closed_here.borrow()
    }

    /// Waits until this side closes or cuts the link.
    pub(super) async fn closed_here(&self) {
        let _ = self.closed_here.subscribe().wait_for(|c| *c).await;
    }

    /// The reader is done with what the peer says.
    pub(super) fn set_ended(&self) {
        self.ended.send_replace(true);
    }

    /// The reader has let go of the connection.
    pub(super) fn set_finished(&self) {
        self.finished.send_replace(true);
    }

    /// Waits until the reader has let go of the connection.
    pub(super) async fn finished(&self) {
        let _ = self.finished.subscribe().wait_for(|f| *f).await;
    }
}

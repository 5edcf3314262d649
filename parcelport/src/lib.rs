//! Parcels and their transport for hpx-rs.
//!
//! The parcelport moves [`Parcel`]s between [`LocalityId`]s. It knows
//! framing, connections, authentication, coalescing and flow control, and
//! nothing of actions, names or arrays: the layer above gives meaning to a
//! parcel's `kind`, `tag` and `seq` and receives parcels through a
//! [`ParcelHandler`].
//!
//! Four implementations of [`Parcelport`]: [`QuicParcelport`] (quinn) and
//! [`TcpParcelport`] (TLS 1.3 over TCP, tokio-rustls) for real jobs, with the
//! same guarantees, and [`LoopbackParcelport`] for a job of one locality,
//! which opens no socket at all. What the two network ones share (bootstrap,
//! authentication, admission, coalescing, budget, loss reporting,
//! heartbeats) lives in one place; only how bytes travel differs.
//!
//! The wire protocol ([`parcel`], [`handshake`]) is plain functions over
//! bytes, tested without sockets.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod batch;
mod config;
mod error;
pub mod handshake;
mod lent;
pub mod liveness;
mod locality;
mod loopback;
mod net;
pub mod parcel;
mod port;
mod quic;
mod routed;
pub mod shared;
mod shm;
mod tcp;
mod tls;

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::OwnedSemaphorePermit;

pub use config::NetConfig;
pub use error::TransportError;
pub use lent::PayloadBuffer;
pub use locality::LocalityId;
pub use loopback::LoopbackParcelport;
pub use parcel::{Parcel, ParcelHeader};
pub use port::free_port;
pub use quic::QuicParcelport;
pub use routed::Routed;
pub use shm::{SharedRegion, ShmConfig, ShmInbox, ShmParcelport};
pub use tcp::TcpParcelport;

/// Receives what arrives from the network. Implemented by the runtime.
///
/// Both methods are called from the parcelport's tasks and must not block:
/// hand long work to a task of your own.
pub trait ParcelHandler: Send + Sync + 'static {
    /// A parcel arrived. Keep `credit` alive until the parcel's work is done:
    /// it is this parcel's share of the incoming budget, and while the budget
    /// is spent the parcelport stops reading, which throttles the senders.
    fn on_parcel(&self, parcel: Parcel, credit: Credit);

    /// A locality stopped answering or its connection broke. Called at most
    /// once per locality; later sends to it fail with
    /// [`TransportError::PeerLost`].
    fn on_peer_lost(&self, locality: LocalityId, reason: &str);
}

/// Minimum budget charged for one metered parcel, so many empty parcels are bounded too.
pub(crate) const MIN_CHARGE: usize = 64;

/// A received parcel's share of the incoming budget; dropping it returns the share.
#[derive(Debug)]
pub struct Credit {
    _share: Option<OwnedSemaphorePermit>,
}

impl Credit {
    /// A credit that holds no budget (for replies and control parcels).
    pub fn unmetered() -> Credit {
        Credit { _share: None }
    }

    fn metered(permit: OwnedSemaphorePermit) -> Credit {
        Credit {
            _share: Some(permit),
        }
    }
}

/// Moves parcels between the localities of one job.
pub trait Parcelport: Send + Sync + 'static {
    /// This locality.
    fn here(&self) -> LocalityId;

    /// Number of localities in the job.
    fn num_localities(&self) -> u32;

    /// Starts delivering received parcels to `handler`. Until then nothing is
    /// read from the network. Only the first call has an effect.
    fn attach(&self, handler: Arc<dyn ParcelHandler>);

    /// Queues a parcel for `parcel.header.dest`. Never blocks; parcels to one
    /// destination arrive in the order they were sent. A parcel to this
    /// locality is delivered to the handler without touching the network.
    fn send(&self, parcel: Parcel) -> Result<(), TransportError>;

    /// Sends everything queued, waits until peers have received it, and
    /// closes all connections in an orderly way (peers do not see a loss).
    fn flush_and_close(&self) -> BoxFuture<'static, ()>;

    /// Closes every connection at once; peers see this locality as lost with `reason`.
    fn abort(&self, reason: &str);

    /// Where each locality listens, indexed by id (empty where the
    /// transport uses no network addresses).
    fn addresses(&self) -> Vec<std::net::SocketAddr> {
        Vec::new()
    }

    /// Someone outside the transport knows that `locality` is gone (the
    /// launcher saw its process end): report it lost now, as if the
    /// transport had found out itself, and drop its connection.
    fn declare_lost(&self, locality: LocalityId, reason: String);

    /// Does transport work on the calling thread if this parcelport has
    /// some that any thread can do (shared memory: hands the parcels waiting
    /// in its rings to the handler); whether there was any. The runtime's
    /// spinning worker calls it, between `awake(true)` and `awake(false)`.
    fn progress(&self) -> bool {
        false
    }

    /// A thread of the runtime polls with [`Parcelport::progress`] from now
    /// on (`true`), or no longer (`false`); calls pair up.
    fn awake(&self, _on: bool) {}

    /// A region of memory named `key` (letters, digits, '-'), `len` bytes,
    /// shared with `members` (this locality among them) through this host's
    /// memory; `None` where some member is not on this host or the
    /// parcelport has no shared memory.
    fn shared_region(
        &self,
        _key: &str,
        _len: usize,
        _members: &[LocalityId],
    ) -> Option<Result<SharedRegion, TransportError>> {
        None
    }

    /// Memory for a payload of up to `capacity` bytes to `dest`, lent by
    /// the parcelport so that what is written there crosses to `dest`
    /// without another copy (shared memory: the bulk segment the peer
    /// maps); `None` where it has none to lend (write the payload anywhere
    /// and send it as usual).
    fn payload_buffer(&self, _dest: LocalityId, _capacity: usize) -> Option<PayloadBuffer> {
        None
    }

    /// The name of the parcelport that carries parcels to `dest`: `"self"`
    /// for this locality, else `"quic"`, `"tcp"` or `"shm"`.
    fn route(&self, dest: LocalityId) -> &'static str;
}

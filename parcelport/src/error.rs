//! Errors of the transport layer.

use std::net::SocketAddr;

use crate::LocalityId;

/// What can go wrong while moving parcels between localities.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A parcel or handshake message did not follow the wire protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer did not prove knowledge of the job secret.
    #[error("authentication failed with {0}: the peer does not hold this job's secret")]
    Authentication(SocketAddr),
    /// The connection to a locality was lost or could not be made.
    #[error("locality {locality} is unreachable: {reason}")]
    PeerLost {
        /// The locality that was lost.
        locality: LocalityId,
        /// Why it was declared lost.
        reason: String,
    },
    /// A locality id outside `0..N`.
    #[error("no locality {0} in this job")]
    NoSuchLocality(LocalityId),
    /// Bootstrap did not complete in time or failed.
    #[error("bootstrap failed: {0}")]
    Bootstrap(String),
    /// The parcelport is shutting down and accepts no more parcels.
    #[error("the parcelport is shut down")]
    Shutdown,
    /// TLS or QUIC configuration failed.
    #[error("configuration error: {0}")]
    Config(String),
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

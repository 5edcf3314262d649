//! Settings shared by the network parcelports.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::LocalityId;

/// Settings of a network parcelport (QUIC or TCP): the job, the rendezvous,
/// the secret and the limits.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// This locality's id.
    pub locality: LocalityId,
    /// Number of localities in the job.
    pub num_localities: u32,
    /// The root's rendezvous address (the root binds it).
    pub rendezvous: SocketAddr,
    /// Address to bind this locality's endpoint to (non-root localities; port 0).
    pub bind: IpAddr,
    /// The job secret every connection must prove knowledge of.
    pub secret: Vec<u8>,
    /// How long the bootstrap may take before every locality gives up.
    pub startup_timeout: Duration,
    /// Silence after which a peer is declared lost (heartbeats, see
    /// [`crate::liveness`]).
    pub peer_timeout: Duration,
    /// Largest accepted parcel payload.
    pub max_payload: usize,
    /// Bytes of received parcels that may be in the handler's hands at once;
    /// beyond it the receiver stops reading and the transport's flow control
    /// (QUIC's, or TCP's) holds the sender.
    pub incoming_budget: usize,
}

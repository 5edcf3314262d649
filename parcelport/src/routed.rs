//! One parcelport per peer: shared memory to the localities of this host,
//! the network parcelport (QUIC or TCP) to the others.

use std::sync::Arc;

use crate::{LocalityId, Parcel, ParcelHandler, Parcelport, ShmParcelport, TransportError};

/// Sends each parcel through the parcelport that serves its destination:
/// [`ShmParcelport`] for the localities it reaches, the network parcelport
/// for the rest. Parcels to one destination always take the same way, so
/// their order holds.
pub struct Routed {
    net: Arc<dyn Parcelport>,
    shm: Arc<ShmParcelport>,
}

impl std::fmt::Debug for Routed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routed")
            .field("shm", &self.shm)
            .finish_non_exhaustive()
    }
}

impl Routed {
    /// Routes over `shm` where it reaches, else over `net` (which bootstrapped
    /// the job and knows every locality).
    pub fn new(net: Arc<dyn Parcelport>, shm: Arc<ShmParcelport>) -> Routed {
        Routed { net, shm }
    }

    fn port(&self, dest: LocalityId) -> &dyn Parcelport {
        if self.shm.reaches(dest) {
            self.shm.as_ref()
        } else {
            self.net.as_ref()
        }
    }
}

/// What the network parcelport hears, on its way to the handler. A peer
/// reached through shared memory that the network finds lost (its
/// connection closed as it aborted) is declared lost by the shared-memory
/// parcelport once the parcels it wrote there are read: news over one way
/// never overtakes what the peer sent the other way.
struct FromNet {
    handler: Arc<dyn ParcelHandler>,
    shm: Arc<ShmParcelport>,
}

impl ParcelHandler for FromNet {
    fn on_parcel(&self, parcel: Parcel, credit: crate::Credit) {
        self.handler.on_parcel(parcel, credit);
    }

    fn on_peer_lost(&self, locality: LocalityId, reason: &str) {
        if self.shm.reaches(locality) {
            self.shm.lost_elsewhere(locality, reason.to_owned());
        } else {
            self.handler.on_peer_lost(locality, reason);
        }
    }
}

impl Parcelport for Routed {
    fn here(&self) -> LocalityId {
        self.net.here()
    }

    fn num_localities(&self) -> u32 {
        self.net.num_localities()
    }

    fn attach(&self, handler: Arc<dyn ParcelHandler>) {
        self.shm.attach(handler.clone());
        self.net.attach(Arc::new(FromNet {
            handler,
            shm: self.shm.clone(),
        }));
    }

    fn send(&self, parcel: Parcel) -> Result<(), TransportError> {
        self.port(parcel.header.dest).send(parcel)
    }

    fn flush_and_close(&self) -> futures::future::BoxFuture<'static, ()> {
        let (shm, net) = (self.shm.flush_and_close(), self.net.flush_and_close());
        Box::pin(async move {
            futures::future::join(shm, net).await;
        })
    }

    fn abort(&self, reason: &str) {
        self.shm.abort(reason);
        self.net.abort(reason);
    }

    fn addresses(&self) -> Vec<std::net::SocketAddr> {
        self.net.addresses()
    }

    fn declare_lost(&self, locality: LocalityId, reason: String) {
        self.shm.declare_lost(locality, reason.clone());
        self.net.declare_lost(locality, reason);
    }

    fn route(&self, dest: LocalityId) -> &'static str {
        self.port(dest).route(dest)
    }

    fn progress(&self) -> bool {
        self.shm.progress()
    }

    fn shared_region(
        &self,
        key: &str,
        len: usize,
        members: &[LocalityId],
    ) -> Option<Result<crate::SharedRegion, TransportError>> {
        self.shm.shared_region(key, len, members)
    }

    fn awake(&self, on: bool) {
        self.shm.awake(on);
    }

    fn payload_buffer(&self, dest: LocalityId, capacity: usize) -> Option<crate::PayloadBuffer> {
        self.port(dest).payload_buffer(dest, capacity)
    }
}

//! The in-process parcelport of a one-locality job: no sockets.

use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;

use crate::{Credit, LocalityId, Parcel, ParcelHandler, Parcelport, TransportError};

/// The parcelport of a job with a single locality: every parcel is delivered
/// to this process's handler on a fresh task.
#[derive(Default)]
pub struct LoopbackParcelport {
    handler: OnceLock<Arc<dyn ParcelHandler>>,
}

impl std::fmt::Debug for LoopbackParcelport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackParcelport").finish_non_exhaustive()
    }
}

impl LoopbackParcelport {
    /// A loopback parcelport for locality 0 of 1.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Parcelport for LoopbackParcelport {
    fn here(&self) -> LocalityId {
        LocalityId::ROOT
    }

    fn num_localities(&self) -> u32 {
        1
    }

    fn attach(&self, handler: Arc<dyn ParcelHandler>) {
        let _ = self.handler.set(handler);
    }

    fn send(&self, parcel: Parcel) -> Result<(), TransportError> {
        if parcel.header.dest != LocalityId::ROOT {
            return Err(TransportError::NoSuchLocality(parcel.header.dest));
        }
        let handler = self
            .handler
            .get()
            .cloned()
            .ok_or(TransportError::Shutdown)?;
        tokio::spawn(async move { handler.on_parcel(parcel, Credit::unmetered()) });
        Ok(())
    }

    fn flush_and_close(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    fn abort(&self, _reason: &str) {}

    /// A job of one locality has no other locality to lose.
    fn declare_lost(&self, _locality: LocalityId, _reason: String) {}

    fn route(&self, _dest: LocalityId) -> &'static str {
        "self"
    }
}

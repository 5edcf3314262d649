//! The collectives' state of one locality: the mailbox and the counters of
//! named communicators. It is an extension of the runtime's locality
//! ([`hpx_runtime::extension`]), made on first use and dropped with it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use hpx_runtime::{Error, LocalityId, Result};
use parking_lot::Mutex;

use crate::comm::CommInner;
use crate::mailbox::{Alarm, Envelope, Mailbox};
use crate::payload::Payload;

/// The collectives' state of one locality.
pub(crate) struct Session {
    /// This locality.
    pub(crate) here: LocalityId,
    /// Messages waiting for their receivers.
    pub(crate) mailbox: Mutex<Mailbox>,
    /// How many communicators of each name were created here.
    created: Mutex<HashMap<String, u64>>,
    /// The world communicator, made on first use.
    pub(crate) world: OnceLock<Arc<CommInner>>,
}

/// The session of the locality this thread works for.
///
/// Errors: [`Error::NotRunning`] outside a running runtime.
pub(crate) fn session() -> Result<Arc<Session>> {
    hpx_runtime::extension(|| Session {
        here: hpx_runtime::find_here(),
        mailbox: Mutex::new(Mailbox::default()),
        created: Mutex::new(HashMap::new()),
        world: OnceLock::new(),
    })
}

impl Session {
    /// How many communicators named `name` this locality created before.
    pub(crate) fn next_creation(&self, name: &str) -> u64 {
        let mut created = self.created.lock();
        let count = created.entry(name.to_owned()).or_insert(0);
        let this = *count;
        *count += 1;
        this
    }

    /// Tells the localities of `alarm` that a call failed.
    pub(crate) fn raise(&self, alarm: Alarm) {
        for locality in alarm.to {
            if locality == self.here {
                continue;
            }
            let args = (alarm.comm, alarm.gen, alarm.error.clone());
            if let Err(e) = hpx_runtime::post(locality, abandon, args) {
                tracing::debug!(%e, %locality, "could not report a failed collective");
            }
        }
    }
}

/// Files a collective message at its receiver.
#[hpx_macros::action(crate = hpx_runtime, direct)]
async fn deliver(envelope: Envelope, payload: Payload) {
    match session() {
        Ok(session) => {
            let alarm = session.mailbox.lock().deliver(envelope, payload);
            if let Some(alarm) = alarm {
                session.raise(alarm);
            }
        }
        Err(e) => tracing::warn!(%e, "collective message without a runtime"),
    }
}

/// Fails call `gen` of communicator `comm` here, because it failed elsewhere.
#[hpx_macros::action(crate = hpx_runtime, direct)]
async fn abandon(comm: u64, gen: u64, error: Error) {
    match session() {
        Ok(session) => session.mailbox.lock().fail(comm, gen, error),
        Err(e) => tracing::warn!(%e, "collective failure without a runtime"),
    }
}

/// Sends one collective message.
pub(crate) fn send(to: LocalityId, envelope: Envelope, payload: Payload) -> Result<()> {
    hpx_runtime::post(to, deliver, (envelope, payload))
}

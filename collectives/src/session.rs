//! The collectives' state of one run of the runtime: the mailbox, the world
//! communicator, the counters of named communicators, the latches homed
//! here, and a watch on lost localities. It is made on first use and made again when the runtime it
//! belongs to has ended (a process may run several jobs one after another).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use hpx_runtime::{Error, LocalityId, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::communicator::CommInner;
use crate::mailbox::{Alarm, Envelope, Mailbox};
use crate::payload::Payload;
use crate::spmd::Latches;

/// Locks a mutex, ignoring poisoning (the data stays consistent: no code
/// panics while holding these locks).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The collectives' state of one run of the runtime.
pub(crate) struct Session {
    /// This locality.
    pub here: LocalityId,
    /// Messages waiting for their receivers.
    pub mailbox: Mutex<Mailbox>,
    /// The communicator of all localities.
    pub world: Arc<CommInner>,
    /// How many communicators of each name were created here.
    created: Mutex<HashMap<String, u64>>,
    /// The distributed latches homed here.
    pub latches: Mutex<Latches>,
    /// For each locality, why it was lost, once it is.
    lost: Arc<watch::Sender<Vec<Option<Error>>>>,
    /// A task of the runtime that never ends by itself: once it has ended,
    /// the runtime has, and this session is stale.
    alive: JoinHandle<()>,
}

static SESSION: Mutex<Option<Arc<Session>>> = Mutex::new(None);

/// The session of the running runtime. Panics inside a tokio runtime that
/// is not an hpx runtime (like [`hpx_runtime::find_here`]).
pub(crate) fn session() -> Result<Arc<Session>> {
    let mut slot = lock(&SESSION);
    if let Some(s) = slot.as_ref() {
        if !s.alive.is_finished() {
            return Ok(s.clone());
        }
    }
    let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::NotRunning)?;
    let here = hpx_runtime::find_here();
    let n = hpx_runtime::get_num_localities();
    let lost = Arc::new(watch::Sender::new(vec![None; n as usize]));
    for locality in hpx_runtime::find_remote_localities() {
        let lost = lost.clone();
        handle.spawn(async move {
            let error = hpx_runtime::locality_lost(locality).await;
            lost.send_modify(|all| {
                if let Some(slot) = all.get_mut(locality.index()) {
                    *slot = Some(error);
                }
            });
        });
    }
    let alive = handle.spawn(std::future::pending());
    let session = Arc::new_cyclic(|weak: &Weak<Session>| Session {
        here,
        mailbox: Mutex::new(Mailbox::default()),
        world: Arc::new(CommInner::world(weak.clone(), here, n)),
        created: Mutex::new(HashMap::new()),
        latches: Mutex::new(Latches::new()),
        lost,
        alive,
    });
    *slot = Some(session.clone());
    Ok(session)
}

impl Session {
    /// How many communicators named `name` this locality created before.
    pub(crate) fn next_creation(&self, name: &str) -> u64 {
        let mut created = lock(&self.created);
        let count = created.entry(name.to_owned()).or_insert(0);
        let this = *count;
        *count += 1;
        this
    }

    /// Resolves with the error of the first of `members` found lost.
    pub(crate) fn member_lost(
        &self,
        members: &Arc<[LocalityId]>,
    ) -> impl Future<Output = Error> + Send + 'static {
        let mut rx = self.lost.subscribe();
        let members = members.clone();
        async move {
            let found = {
                let lost = rx
                    .wait_for(|lost| {
                        members
                            .iter()
                            .any(|m| lost.get(m.index()).is_some_and(Option::is_some))
                    })
                    .await;
                lost.ok().and_then(|lost| {
                    members
                        .iter()
                        .find_map(|m| lost.get(m.index()).cloned().flatten())
                })
            };
            match found {
                Some(error) => error,
                None => std::future::pending().await,
            }
        }
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
#[hpx_macros::action(crate = hpx_runtime)]
async fn deliver(envelope: Envelope, payload: Payload) {
    match session() {
        Ok(session) => {
            let alarm = lock(&session.mailbox).deliver(envelope, payload);
            if let Some(alarm) = alarm {
                session.raise(alarm);
            }
        }
        Err(e) => tracing::warn!(%e, "collective message without a runtime"),
    }
}

/// Fails call `gen` of communicator `comm` here, because it failed elsewhere.
#[hpx_macros::action(crate = hpx_runtime)]
async fn abandon(comm: u64, gen: u64, error: Error) {
    match session() {
        Ok(session) => lock(&session.mailbox).fail(comm, gen, error),
        Err(e) => tracing::warn!(%e, "collective failure without a runtime"),
    }
}

/// Sends one collective message.
pub(crate) fn send(to: LocalityId, envelope: Envelope, payload: Payload) -> Result<()> {
    hpx_runtime::post(to, deliver, (envelope, payload))
}

#[cfg(test)]
mod tests {
    /// The session's staleness check relies on this.
    #[test]
    fn tasks_of_an_ended_runtime_are_finished() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let task = rt.spawn(std::future::pending::<()>());
        assert!(!task.is_finished());
        drop(rt);
        assert!(task.is_finished());
    }
}

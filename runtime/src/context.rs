//! How code finds the locality it works for, the way tokio finds its
//! runtime: every thread of a locality (its workers, its network thread and
//! the thread that drives its main) has the locality's [`Slot`] entered, and
//! [`current`] reads it. Nothing is process-wide, so several localities can
//! run in one process, each on threads of its own.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use hpx_parcelport::LocalityId;

use crate::locality::Locality;
use crate::{Error, Result};

/// Where a locality's threads find it: set once the locality has joined
/// its job (the threads start before that).
pub(crate) type Slot = Arc<OnceLock<Arc<Locality>>>;

thread_local! {
    static CURRENT: RefCell<Option<Slot>> = const { RefCell::new(None) };
}

/// Makes `slot` this thread's locality until the guard is dropped.
pub(crate) fn enter(slot: Slot) -> Entered {
    let previous = CURRENT.with(|c| c.replace(Some(slot)));
    Entered { previous }
}

/// Makes `slot` this thread's locality for the rest of the thread (for
/// the threads of a locality's tokio runtimes).
pub(crate) fn set_for_thread(slot: &Slot) {
    CURRENT.with(|c| *c.borrow_mut() = Some(slot.clone()));
}

/// Forgets this thread's locality (a runtime thread that stops).
pub(crate) fn clear_for_thread() {
    CURRENT.with(|c| c.borrow_mut().take());
}

/// Restores the thread's previous locality when dropped.
#[derive(Debug)]
pub(crate) struct Entered {
    previous: Option<Slot>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // The thread may be ending: its locals may already be gone.
        let _ = CURRENT.try_with(|c| c.replace(previous));
    }
}

/// Where this thread finds its locality, if it has one.
pub(crate) fn current_slot() -> Option<Slot> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// The locality this thread works for.
pub(crate) fn current() -> Result<Arc<Locality>> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().and_then(|slot| slot.get().cloned()))
        .ok()
        .flatten()
        .ok_or(Error::NotRunning)
}

/// `f` of the locality this thread works for, without taking a reference
/// to it; `None` outside a running runtime.
pub(crate) fn with_current<R>(f: impl FnOnce(&Locality) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .and_then(|slot| slot.get().map(|l| f(l)))
        })
        .ok()
        .flatten()
}

/// Like [`current`], for functions documented to panic outside a runtime.
pub(crate) fn expect_current() -> Arc<Locality> {
    match current() {
        Ok(locality) => locality,
        Err(_) => {
            panic!("hpx: called outside a running hpx runtime (use #[hpx::main] or hpx::Runtime)")
        }
    }
}

/// This thread's locality id, if it works for one.
pub(crate) fn here() -> Option<LocalityId> {
    CURRENT
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .and_then(|slot| slot.get().map(|l| l.here()))
        })
        .ok()
        .flatten()
}

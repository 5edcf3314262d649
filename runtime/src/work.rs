//! The count of work running on this locality (received calls and local
//! calls not yet finished), which the end-of-job protocol waits on.
//!
//! It is process-wide rather than a field of the runtime so the local-call
//! path needs no reference to the runtime: one runtime runs per process,
//! and [`reset`] starts each run from zero.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

static ACTIVE: AtomicU64 = AtomicU64::new(0);
static IDLE: Notify = Notify::const_new();
static IDLE_WANTED: AtomicBool = AtomicBool::new(false);

/// Starts a run with no work counted.
pub(crate) fn reset() {
    ACTIVE.store(0, Ordering::SeqCst);
    IDLE_WANTED.store(false, Ordering::SeqCst);
}

/// A piece of work started.
pub(crate) fn begin() {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
}

/// A piece of work finished.
pub(crate) fn end() {
    if ACTIVE.fetch_sub(1, Ordering::SeqCst) == 1 && IDLE_WANTED.load(Ordering::SeqCst) {
        IDLE.notify_waiters();
    }
}

/// Waits until no work runs here.
pub(crate) async fn idle() {
    IDLE_WANTED.store(true, Ordering::SeqCst);
    loop {
        let notified = IDLE.notified();
        if ACTIVE.load(Ordering::SeqCst) == 0 {
            return;
        }
        notified.await;
    }
}

//! What a locality counts for the end-of-job protocol: the work running
//! here now (received calls and counted local tasks not yet finished), and
//! the calls it has sent to and finished for other localities.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// The work counters of one locality.
#[derive(Debug, Default)]
pub(crate) struct Work {
    active: AtomicU64,
    idle: Notify,
    idle_wanted: AtomicBool,
    sent: AtomicU64,
    done: AtomicU64,
}

impl Work {
    /// A piece of work started here.
    pub(crate) fn begin(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
    }

    /// A piece of work started with [`Work::begin`] finished.
    pub(crate) fn end(&self) {
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1
            && self.idle_wanted.load(Ordering::SeqCst)
        {
            self.idle.notify_waiters();
        }
    }

    /// A call to another locality left.
    pub(crate) fn sent_one(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A call received from another locality finished (after [`Work::end`]).
    pub(crate) fn finished_one(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls sent and received calls finished, so far. Finished calls are
    /// read first: a call that finishes between the two reads and sends
    /// another then shows up as more sent than finished, never the reverse.
    pub(crate) fn totals(&self) -> (u64, u64) {
        let done = self.done.load(Ordering::SeqCst);
        let sent = self.sent.load(Ordering::SeqCst);
        (sent, done)
    }

    /// Waits until no work runs here.
    pub(crate) async fn idle(&self) {
        self.idle_wanted.store(true, Ordering::SeqCst);
        loop {
            let notified = self.idle.notified();
            if self.active.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

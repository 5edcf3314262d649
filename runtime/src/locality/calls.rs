//! Calls received here: requests and posts, run as they arrive.
//!
//! A direct action is polled right where its parcel was read and moves to a
//! task of its own only if it must wait. Every other call goes to a queue
//! ([`CallQueue`]) that drainer tasks on the workers empty, at most one per
//! worker: each polls its calls inline and moves one that must wait to a
//! task of its own, so a long computation holds up only its drainer, never
//! the parcels behind it. A request is answered with its result (`REPLY`)
//! or its error (`FAILURE`); a post's error is only logged.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Context;

use bytes::Bytes;
use crossbeam_queue::SegQueue;
use hpx_parcelport::{Credit, ParcelHeader};
use tokio::runtime::Handle;

use super::parcels::kind;
use super::Locality;
use crate::action::{run_caught, ActionEntry, Registry};
use crate::codec;
use crate::trace;
use crate::{Error, Result};

/// Calls a drainer runs before it lets the worker's other tasks run.
const DRAIN_BATCH: u32 = 64;

/// A received request or post, waiting to run.
#[derive(Debug)]
pub(super) struct Call {
    /// The parcel's header: the caller, the action id, the request's
    /// sequence number.
    header: ParcelHeader,
    /// The encoded arguments.
    payload: Bytes,
    /// The incoming budget the parcel holds until the call is done.
    credit: Credit,
    /// The action called (its registry index and entry), if this binary
    /// has it: looked up once, on arrival.
    action: Option<(usize, &'static ActionEntry)>,
}

/// Received calls waiting to run, and the count of the drainers that run
/// them (at most one per worker thread).
pub(super) struct CallQueue<T> {
    queue: SegQueue<T>,
    /// Drainers running now.
    drainers: AtomicUsize,
    /// At most this many drainers.
    max: usize,
}

impl<T> CallQueue<T> {
    /// An empty queue, for at most `max` drainers.
    pub(super) fn new(max: usize) -> CallQueue<T> {
        CallQueue {
            queue: SegQueue::new(),
            drainers: AtomicUsize::new(0),
            max,
        }
    }

    /// Whether at most one drainer runs (the locality has one worker).
    fn single_drainer(&self) -> bool {
        self.max == 1
    }

    /// Queues a call.
    fn push(&self, call: T) {
        self.queue.push(call);
    }

    /// The oldest call queued, if any.
    fn pop(&self) -> Option<T> {
        self.queue.pop()
    }

    /// Counts one more drainer unless as many run as allowed; whether the
    /// caller must start it.
    fn start_drainer(&self) -> bool {
        let mut running = self.drainers.load(Ordering::SeqCst);
        while running < self.max {
            match self.drainers.compare_exchange(
                running,
                running + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => running = now,
            }
        }
        false
    }

    /// A drainer found the queue empty: it is no longer counted, unless a
    /// call was queued after its last pop by a sender that saw it still
    /// counted (and so started no drainer), and it may count itself again:
    /// then it must go on (true), or that call would be left behind.
    fn retire_drainer(&self) -> bool {
        self.drainers.fetch_sub(1, Ordering::SeqCst);
        if self.queue.is_empty() {
            return false;
        }
        let running = self.drainers.load(Ordering::SeqCst);
        running < self.max
            && self
                .drainers
                .compare_exchange(running, running + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }
}

impl Locality {
    /// A request or post arrived: runs the action (inline first if it is
    /// direct, from the call queue otherwise) and answers a request.
    pub(super) fn on_call(self: Arc<Self>, header: ParcelHeader, payload: Bytes, credit: Credit) {
        self.work.begin();
        let found = Registry::global().find(header.tag);
        if let Some((index, _)) = found {
            self.counters.call_received(index);
        }
        let call = Call {
            header,
            payload,
            credit,
            action: found,
        };
        if found.is_some_and(|(_, e)| e.direct) {
            self.run_now(call);
        } else {
            self.calls.push(call);
            // The spinner runs what it reads itself, once its poll is over.
            if !crate::warm::spinner_polling() {
                self.ensure_drainer();
            }
        }
    }

    /// Where the locality has a single worker thread, its spinner runs the
    /// calls it reads itself, right after its poll of the transport (which
    /// then holds no lock): a drainer task would run on the same thread
    /// anyway, after a spawn and a turn of the scheduler. Elsewhere the
    /// drainers run them, on every worker.
    pub(super) fn run_calls_on_spinner(self: &Arc<Self>) {
        if !self.calls.single_drainer() {
            return;
        }
        let this = Arc::downgrade(self);
        self.warmth.set_after_poll(Box::new(move || {
            if let Some(locality) = this.upgrade() {
                locality.drain_here();
            }
        }));
    }

    /// Runs the queued calls right here, each polled once and moved to a
    /// task of its own if it must wait.
    fn drain_here(self: &Arc<Self>) {
        while let Some(call) = self.calls.pop() {
            self.run_now(call);
        }
    }

    /// Runs `call` right here ([`run_inline_or_spawn`]): polled once, and
    /// moved to a task of its own (counted) only if it must wait.
    fn run_now(self: &Arc<Self>, call: Call) {
        if run_inline_or_spawn(&self.workers, self.clone().run_call(call)) {
            self.counters.spawned();
        }
    }

    /// Starts a drainer of the call queue unless as many run as there are
    /// workers.
    fn ensure_drainer(self: &Arc<Self>) {
        if self.calls.start_drainer() {
            self.counters.spawned();
            self.workers.spawn(self.clone().drain());
        }
    }

    /// Runs queued calls, each polled first right here and moved to a task
    /// of its own if it must wait: a burst of calls costs few tasks, and a
    /// call that computes for long holds up only this drainer, while the
    /// others (one per worker) go on with the queue.
    async fn drain(self: Arc<Self>) {
        let mut ran = 0u32;
        loop {
            while let Some(call) = self.calls.pop() {
                self.run_now(call);
                ran = ran.wrapping_add(1);
                if ran % DRAIN_BATCH == 0 {
                    // Let the worker's other tasks run between batches.
                    tokio::task::yield_now().await;
                }
            }
            if !self.calls.retire_drainer() {
                return;
            }
        }
    }

    /// Runs one received call and answers a request.
    async fn run_call(self: Arc<Self>, call: Call) {
        let Call {
            header,
            payload,
            credit,
            action,
        } = call;
        let here = self.here;
        let outcome = match action {
            None => Err(Error::UnknownAction {
                locality: here,
                id: header.tag,
                action: String::new(),
            }),
            Some((index, entry)) => {
                let started = self.action_start();
                let (outcome, waited) = trace::watched(run_caught(
                    here,
                    entry.name,
                    (entry.handler)(here, header.source, &payload),
                ))
                .await;
                self.action_ran(index, entry.name, started, waited);
                outcome
            }
        };
        drop(payload);
        let outcome = match outcome {
            // Handles in a reply keep their objects alive at the caller:
            // the owners learn of the credit before the reply leaves.
            Ok((bytes, minted)) if header.kind == kind::REQUEST => {
                self.register_minted(minted).await.map(|()| bytes)
            }
            Ok((bytes, _)) => Ok(bytes),
            Err(e) => Err(e),
        };
        if header.kind == kind::REQUEST {
            self.reply(header, outcome);
        } else if let Err(e) = outcome {
            tracing::error!(from = %header.source, %e, "posted action failed");
        }
        drop(credit);
        self.work.finished_one();
        self.work.end();
    }

    /// Answers `request` with `outcome`.
    fn reply(self: &Arc<Self>, request: ParcelHeader, outcome: Result<Bytes>) {
        let (kind, payload) = match answer(outcome) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(%e, "cannot encode a failure");
                return;
            }
        };
        let header = self.header(kind, request.source, request.tag, request.seq);
        let name = if kind == kind::REPLY {
            "reply"
        } else {
            "failure"
        };
        if let Err(e) = self.send(header, payload, name) {
            tracing::debug!(%e, to = %request.source, "reply not sent");
        }
    }
}

/// The parcel that answers a request that ended with `outcome`: its kind
/// and payload (the result as it is, or the error encoded), or why the
/// error cannot be encoded.
fn answer(outcome: Result<Bytes>) -> Result<(u8, Bytes)> {
    match outcome {
        Ok(bytes) => Ok((kind::REPLY, bytes)),
        Err(error) => codec::encode(&error).map(|bytes| (kind::FAILURE, bytes)),
    }
}

/// Polls `work` once right here and hands it to a task of its own on
/// `workers` only if it is not finished: a direct action that completes in
/// its first poll costs no task and no hand-off between threads. Moving a
/// pending future to a new task is sound: the task polls it again, which
/// registers the task's waker. Returns whether it spawned a task.
fn run_inline_or_spawn(workers: &Handle, work: impl Future<Output = ()> + Send + 'static) -> bool {
    let mut work = Box::pin(work);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    let pending = work.as_mut().poll(&mut cx).is_pending();
    if pending {
        workers.spawn(work);
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn drainers_start_up_to_the_limit() {
        let queue = CallQueue::<u32>::new(2);
        assert!(queue.start_drainer());
        assert!(queue.start_drainer());
        assert!(!queue.start_drainer(), "one drainer per worker at most");
        assert!(!queue.retire_drainer(), "nothing queued: it stops");
        assert!(queue.start_drainer(), "room again for one");
        assert!(!queue.start_drainer());
    }

    #[test]
    fn calls_come_out_in_order() {
        let queue = CallQueue::new(1);
        for i in 0..5u32 {
            queue.push(i);
        }
        let out: Vec<u32> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(out, [0, 1, 2, 3, 4]);
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn a_call_queued_as_the_last_drainer_stops_is_not_left_behind() {
        let queue = CallQueue::new(1);
        assert!(queue.start_drainer());
        // The sender saw the drainer counted and started none.
        queue.push(7u32);
        assert!(!queue.start_drainer());
        assert!(queue.retire_drainer(), "the drainer must go on");
        assert_eq!(queue.pop(), Some(7));
        assert!(!queue.retire_drainer());
        assert!(queue.start_drainer(), "no drainer counted any more");
    }

    #[test]
    fn a_stopping_drainer_goes_on_while_calls_wait() {
        let queue = CallQueue::new(2);
        assert!(queue.start_drainer());
        assert!(queue.start_drainer());
        queue.push(1u32);
        // Calls still queued as this drainer stops: it counts itself again
        // and goes on, whatever the other one does.
        assert!(queue.retire_drainer());
        assert!(!queue.start_drainer(), "two counted again");
        assert_eq!(queue.pop(), Some(1));
        assert!(!queue.retire_drainer());
        assert!(!queue.retire_drainer());
        assert!(queue.start_drainer(), "none counted any more");
    }

    #[test]
    fn a_result_is_a_reply_as_it_is() {
        let bytes = Bytes::from_static(b"result");
        assert_eq!(answer(Ok(bytes.clone())), Ok((kind::REPLY, bytes)));
    }

    #[test]
    fn an_error_is_a_failure_that_decodes_to_it() {
        let error = Error::UnknownAction {
            locality: hpx_parcelport::LocalityId(2),
            id: 0x1234,
            action: String::new(),
        };
        let (kind, payload) = answer(Err(error.clone())).expect("encodes");
        assert_eq!(kind, kind::FAILURE);
        assert_eq!(codec::decode::<Error>(&payload), Ok(error));
    }

    #[test]
    fn work_done_at_the_first_poll_costs_no_task() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let spawned = run_inline_or_spawn(rt.handle(), async move {
            flag.store(true, Ordering::SeqCst);
        });
        assert!(!spawned);
        assert!(ran.load(Ordering::SeqCst), "ran inline");
    }

    #[test]
    fn work_that_must_wait_finishes_on_a_task() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let spawned = run_inline_or_spawn(rt.handle(), async move {
            let _ = wait.await;
            let _ = done.send(());
        });
        assert!(spawned);
        let _ = go.send(());
        rt.block_on(async {
            finished.await.expect("the task finished the work");
        });
    }
}

//! A job driven from a thread that is not async: an interpreter (the Python
//! front), a C or C++ host, a plain `fn main`. The locality runs on its own
//! threads; the host hands it work and waits for the results, and says when
//! its part of the job is done.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::context::{self, Slot};
use crate::error::panic_message;
use crate::{Error, Result, Runtime};

/// This process's locality of a running job, driven from a host thread:
/// [`Runtime::start`] makes one, [`Started::block_on`] runs work on it and
/// [`Started::finish`] ends this locality's part (like an SPMD main
/// returning). Dropping it without `finish` fails the job (a host that
/// stops on an error must not leave the others waiting for it): only
/// `finish(Ok(()))` ends this locality's part with success.
#[derive(Debug)]
pub struct Started {
    workers: Handle,
    /// Where the locality's threads find it.
    slot: Slot,
    done: Option<oneshot::Sender<std::result::Result<(), String>>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Runtime {
    /// Starts this process's locality (SPMD) and returns once it has joined
    /// the job, with the handle the host thread drives it by. The job ends
    /// when every locality has finished; a failure anywhere ends it for all,
    /// and then every [`Started::block_on`] in progress or to come returns
    /// the error.
    pub fn start(self) -> Result<Started> {
        let (ready, joined) = std::sync::mpsc::channel::<(Handle, Slot)>();
        let (done, finished) = oneshot::channel::<std::result::Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name("hpx-job".into())
            .spawn(move || {
                self.run(move || async move {
                    // The host learns where to run work once the job is joined.
                    let Some(slot) = context::current_slot() else {
                        return Err("the job's main runs outside its locality".to_owned());
                    };
                    let _ = ready.send((Handle::current(), slot));
                    match finished.await {
                        Ok(outcome) => outcome,
                        Err(_) => Err("the host ended without finishing the job".to_owned()),
                    }
                })
            })?;
        match joined.recv() {
            Ok((workers, slot)) => Ok(Started {
                workers,
                slot,
                done: Some(done),
                thread: Some(thread),
            }),
            // The job ended before main ran: its thread has the reason.
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => e,
                Ok(Ok(())) => Error::MainFailed("the job ended before it started".into()),
                Err(panic) => Error::MainFailed(format!(
                    "the job's thread panicked: {}",
                    panic_message(panic.as_ref())
                )),
            }),
        }
    }
}

impl Started {
    /// Runs `work` on this locality's worker threads (where every hpx call
    /// works) and blocks the calling thread until it is done. Call it from
    /// the host thread, not from inside the runtime. If the job ends first
    /// (another locality failed, the job was stopped), the error says why.
    pub fn block_on<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let task = self.workers.spawn(work);
        match futures::executor::block_on(task) {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(Error::MainFailed(format!(
                "work panicked: {}",
                panic_message(e.into_panic().as_ref())
            ))),
            Err(_) => Err(self.ended()),
        }
    }

    /// Polls `work` right on the calling thread, as a worker would (every
    /// hpx call works in it), until it is done or `budget` has passed:
    /// `Ok(Some(output))`, or `Ok(None)` if it is not done yet (poll the
    /// same future again to go on). Work done this way costs no hand-over
    /// to a worker and no wake-up of the host when it ends: a call that is
    /// over in a microsecond takes a microsecond. The budget is for a host
    /// that must do something of its own now and then while it waits (an
    /// interpreter handling its signals); the calling thread sleeps while
    /// the work waits for something another thread does. Call it from the
    /// host thread, not from inside the runtime (it blocks the thread).
    ///
    /// Errors: the job has ended (work waiting for hpx calls gets the job's
    /// reason from them first; [`finish`](Self::finish) returns it).
    pub fn poll_for<F: Future + ?Sized>(
        &self,
        mut work: Pin<&mut F>,
        budget: Duration,
    ) -> Result<Option<F::Output>> {
        if self.thread.as_ref().map_or(true, JoinHandle::is_finished) {
            return Err(self.ended());
        }
        let Some(locality) = self.slot.get().cloned() else {
            return Err(self.ended());
        };
        let _locality = context::enter(self.slot.clone());
        let _runtime = self.workers.enter();
        let _host = locality.warmth().host_waits();
        let (signal, waker) = SIGNAL.with(Clone::clone);
        let mut cx = Context::from_waker(&waker);
        let deadline = Instant::now() + budget;
        loop {
            if let Poll::Ready(output) = work.as_mut().poll(&mut cx) {
                return Ok(Some(output));
            }
            // A wake-up that came during the poll means: poll again now.
            if !signal.woken.swap(false, Ordering::Acquire)
                && !locality.warmth().host_wait(&signal.woken, deadline)
            {
                return Ok(None);
            }
        }
    }

    /// Runs `work` on this locality's workers without waiting for it: for
    /// what a host must hand over where it cannot wait, such as dropping a
    /// handle of a distributed object in a destructor (a handle dropped
    /// outside the runtime cannot return its credit, and the object would
    /// live until the job ends).
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        drop(self.workers.spawn(work));
    }

    /// Why work could not run: the job has ended (work waiting for hpx
    /// calls gets the job's reason from them; [`finish`](Self::finish)
    /// returns it in any case).
    fn ended(&self) -> Error {
        Error::Aborted("the job has ended (finish() returns why)".into())
    }

    /// Ends this locality's part of the job with `outcome` (an `Err` fails
    /// the whole job, with its message) and waits for the job to end.
    /// Returns the job's outcome for this locality, as [`Runtime::run`] does.
    pub fn finish(mut self, outcome: std::result::Result<(), String>) -> Result<()> {
        self.end(outcome)
    }

    fn end(&mut self, outcome: std::result::Result<(), String>) -> Result<()> {
        if let Some(done) = self.done.take() {
            // The job may have ended already: then its result says why.
            let _ = done.send(outcome);
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => Err(Error::MainFailed(format!(
                "the job's thread panicked: {}",
                panic_message(panic.as_ref())
            ))),
            None => Ok(()),
        }
    }
}

thread_local! {
    /// This thread's [`Signal`] and its waker (a late wake-up of earlier
    /// work costs one needless poll at most).
    static SIGNAL: (Arc<Signal>, Waker) = {
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(false),
            thread: std::thread::current(),
        });
        (signal.clone(), Waker::from(signal))
    };
}

/// Wakes the thread that polls work in [`Started::poll_for`].
struct Signal {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        // Not finished: the host stopped on an error or a panic, and the
        // others must not wait for its part.
        let why = if std::thread::panicking() {
            "the host thread panicked"
        } else {
            "the host dropped the job without finish()"
        };
        let _ = self.end(Err(why.to_owned()));
    }
}

//! Keeping a worker thread awake between messages.
//!
//! On an idle VM a halted vCPU takes 25-30 µs to wake up when a packet
//! arrives (PERFORMANCE.md), more than the rest of a round trip. After any
//! send or receive, one task keeps yielding for a short window; a yielding
//! task makes its tokio worker poll the I/O driver without blocking, and
//! the task itself polls the parcelport ([`Parcelport::progress`]: the
//! shared-memory rings), so a reply that arrives in the window is picked up
//! at once, on this worker. The window is
//! `HPX_SPIN_US` microseconds (default 500; 0 turns spinning off). While the
//! worker threads of all localities on this host fit its cores, the spinner
//! keeps its core; with up to twice as many workers as cores it gives the
//! core away at every turn (`sched_yield`), so a runnable thread of another
//! locality goes first; beyond that there is no spinning.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hpx_parcelport::Parcelport;
use tokio::runtime::Handle;

/// Default spin window.
pub(crate) const DEFAULT_SPIN: Duration = Duration::from_micros(500);

/// Work the spinner does itself after a poll that had work.
pub(crate) type AfterPoll = Box<dyn Fn() + Send + Sync>;

thread_local! {
    /// Set while the spinner of a locality with an [`AfterPoll`] polls the
    /// parcelport on this thread.
    static SPINNER_POLLING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is a spinner's, inside its poll of the parcelport,
/// and the spinner runs its locality's [`AfterPoll`] when the poll returns.
pub(crate) fn spinner_polling() -> bool {
    SPINNER_POLLING.with(Cell::get)
}

/// Spins one task for a window after activity.
pub(crate) struct Warmth {
    window_nanos: u64,
    /// Give the core away at every turn (more threads than cores on the host).
    polite: bool,
    /// Activity since the spinner last looked.
    active: AtomicBool,
    /// Host threads driving work here ([`Warmth::host_waits`]): while any
    /// does, it polls the transport itself and the spinner stands down.
    hosts: AtomicUsize,
    spinning: AtomicBool,
    /// Where the spinning task runs.
    runtime: Handle,
    /// The transport, polled while spinning.
    port: Arc<dyn Parcelport>,
    /// Run after each poll that had work, if set.
    after_poll: OnceLock<AfterPoll>,
}

impl std::fmt::Debug for Warmth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warmth")
            .field("window_nanos", &self.window_nanos)
            .field("polite", &self.polite)
            .finish_non_exhaustive()
    }
}

impl Warmth {
    /// Spins a task of `runtime` for `window` after activity; a zero window
    /// never spins.
    pub(crate) fn new(
        window: Duration,
        polite: bool,
        runtime: Handle,
        port: Arc<dyn Parcelport>,
    ) -> Warmth {
        Warmth {
            window_nanos: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            polite,
            active: AtomicBool::new(false),
            hosts: AtomicUsize::new(0),
            spinning: AtomicBool::new(false),
            runtime,
            port,
            after_poll: OnceLock::new(),
        }
    }

    /// Makes the spinner run `work` after each of its polls that had work
    /// (once; later calls change nothing).
    pub(crate) fn set_after_poll(&self, work: AfterPoll) {
        let _ = self.after_poll.set(work);
    }

    /// Notes activity; starts the spinning task if none runs. Reads no
    /// clock: the spinner does, only once it finds no activity.
    pub(crate) fn touch(self: &Arc<Self>) {
        if self.window_nanos == 0 {
            return;
        }
        if !self.active.load(Ordering::Relaxed) {
            self.active.store(true, Ordering::SeqCst);
        }
        if self.hosts.load(Ordering::Relaxed) == 0
            && !self.spinning.load(Ordering::SeqCst)
            && self
                .spinning
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.runtime.spawn(self.clone().spin());
        }
    }

    async fn spin(self: Arc<Self>) {
        self.port.awake(true);
        let window = Duration::from_nanos(self.window_nanos);
        // Since when the spinner has seen no activity.
        let mut idle_since: Option<Instant> = None;
        loop {
            let polled = self.poll_a_while();
            if polled {
                if let Some(work) = self.after_poll.get() {
                    work();
                }
            }
            let host = self.hosts.load(Ordering::Relaxed) > 0;
            if !host && (polled || self.active.swap(false, Ordering::SeqCst)) {
                idle_since = None;
            } else if host || idle_since.get_or_insert_with(Instant::now).elapsed() > window {
                self.spinning.store(false, Ordering::SeqCst);
                // Activity that raced with the store above restarts us: a
                // `touch` either sees the spinner gone or its mark is seen.
                let again = self.active.swap(false, Ordering::SeqCst)
                    && self
                        .spinning
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok();
                if !again {
                    self.port.awake(false);
                    return;
                }
                idle_since = None;
            }
            if self.polite {
                // Any other runnable thread of this host gets the core first.
                std::thread::yield_now();
            }
            tokio::task::yield_now().await;
        }
    }
}

impl Warmth {
    /// Polls the parcelport until it had work, up to [`POLLS_PER_TURN`]
    /// times (once when polite): a parcel is seen within tens of
    /// nanoseconds, and the worker's turn to its other tasks and to the I/O
    /// driver (an `epoll_wait` each) comes every few microseconds only.
    fn poll_a_while(&self) -> bool {
        SPINNER_POLLING.with(|p| p.set(self.after_poll.get().is_some()));
        let had_work = self.poll_up_to(POLLS_PER_TURN);
        SPINNER_POLLING.with(|p| p.set(false));
        had_work
    }

    /// Polls the parcelport on the calling thread, as the spinner would in
    /// one turn, until it had work; then returns `done()`. For a task that
    /// waits for one answer: it is taken from the rings and completed right
    /// here, without a hand-over to the spinner and a wake-up. Never polls
    /// when spinning is off, once when polite.
    pub(crate) fn poll_until(&self, done: impl FnOnce() -> bool) -> bool {
        self.window_nanos > 0 && self.poll_up_to(INLINE_POLLS) && done()
    }

    /// Polls the parcelport until it had work, up to `polls` times (once
    /// when polite); whether it had work.
    fn poll_up_to(&self, polls: u32) -> bool {
        let polls = if self.polite { 1 } else { polls };
        for _ in 0..polls {
            if self.port.progress() {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }
}

impl Warmth {
    /// A host thread (not a worker) drives work of this locality from now
    /// until the guard is dropped, and waits with [`Warmth::host_wait`]:
    /// the spinner stands down meanwhile, so that the host's thread and a
    /// worker do not both burn a core polling the same transport.
    pub(crate) fn host_waits(&self) -> HostWaits<'_> {
        self.hosts.fetch_add(1, Ordering::SeqCst);
        HostWaits(self)
    }

    /// Waits on a host thread until `woken` is set or `deadline` passes;
    /// whether it was woken. If parcels went or came since the last look
    /// (an answer may be on its way), the thread first polls the transport
    /// for the spin window (politely when the host is crowded), as the
    /// spinner would, so that what arrives is handled at once; then, or
    /// at once when all was quiet, it sleeps until woken.
    pub(crate) fn host_wait(&self, woken: &AtomicBool, deadline: Instant) -> bool {
        if self.window_nanos > 0 && self.active.swap(false, Ordering::SeqCst) {
            let spin_until = deadline.min(Instant::now() + Duration::from_nanos(self.window_nanos));
            self.port.awake(true);
            let mut polls = 0u32;
            let seen = loop {
                if woken.swap(false, Ordering::Acquire) {
                    break true;
                }
                if !self.port.progress() {
                    if self.polite {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                // Parcels for others may keep coming: the window ends anyway.
                polls = polls.wrapping_add(1);
                if polls % CLOCK_EVERY == 0 && Instant::now() >= spin_until {
                    break false;
                }
            };
            self.port.awake(false);
            if seen {
                return true;
            }
        }
        loop {
            if woken.swap(false, Ordering::Acquire) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::park_timeout(left);
        }
    }
}

/// A host thread drives work: see [`Warmth::host_waits`].
pub(crate) struct HostWaits<'a>(&'a Warmth);

impl Drop for HostWaits<'_> {
    fn drop(&mut self) {
        self.0.hosts.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Polls between two reads of the clock in [`Warmth::host_wait`].
const CLOCK_EVERY: u32 = 16;

/// Polls of the parcelport between two turns given to the worker's other tasks.
const POLLS_PER_TURN: u32 = 64;

/// Polls of the parcelport by a task that waits for one answer, before it
/// leaves the wait to the spinner: a few microseconds, about a round trip
/// between two localities of one host.
const INLINE_POLLS: u32 = 256;

/// The spin window when `workers` threads of the job's localities share this
/// host, after `HPX_SPIN_US`, and whether spinning must yield the core:
/// full spinning while the workers fit the cores, polite spinning up to
/// twice as many, none beyond (spinners would only take turns).
pub(crate) fn spin_window(workers: usize, configured: Option<Duration>) -> (Duration, bool) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if workers > 2 * cores {
        return (Duration::ZERO, false);
    }
    (configured.unwrap_or(DEFAULT_SPIN), workers > cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinning_yields_when_oversubscribed() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(spin_window(cores + 1, None), (DEFAULT_SPIN, true));
        assert_eq!(spin_window(2 * cores + 1, None), (Duration::ZERO, false));
        assert_eq!(spin_window(1, None), (DEFAULT_SPIN, false));
        assert_eq!(
            spin_window(1, Some(Duration::ZERO)),
            (Duration::ZERO, false)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spinner_stops_after_the_window() {
        let warmth = Arc::new(Warmth::new(
            Duration::from_millis(2),
            false,
            Handle::current(),
            Arc::new(hpx_parcelport::LoopbackParcelport::new()),
        ));
        warmth.touch();
        assert!(warmth.spinning.load(Ordering::SeqCst));
        let start = Instant::now();
        while warmth.spinning.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "spinner never stopped"
            );
            tokio::task::yield_now().await;
        }
    }
}

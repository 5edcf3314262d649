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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hpx_parcelport::Parcelport;
use tokio::runtime::Handle;

/// Default spin window.
pub(crate) const DEFAULT_SPIN: Duration = Duration::from_micros(500);

/// Spins one task for a window after activity.
pub(crate) struct Warmth {
    window_nanos: u64,
    /// Give the core away at every turn (more threads than cores on the host).
    polite: bool,
    base: Instant,
    last_activity: AtomicU64,
    spinning: AtomicBool,
    /// Where the spinning task runs.
    runtime: Handle,
    /// The transport, polled while spinning.
    port: Arc<dyn Parcelport>,
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
            base: Instant::now(),
            last_activity: AtomicU64::new(0),
            spinning: AtomicBool::new(false),
            runtime,
            port,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Notes activity; starts the spinning task if none runs.
    pub(crate) fn touch(self: &Arc<Self>) {
        if self.window_nanos == 0 {
            return;
        }
        self.last_activity.store(self.now(), Ordering::Relaxed);
        if !self.spinning.load(Ordering::Relaxed)
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
        loop {
            if self.poll_a_while() {
                self.last_activity.store(self.now(), Ordering::Relaxed);
            }
            let last = self.last_activity.load(Ordering::Relaxed);
            if self.now().saturating_sub(last) > self.window_nanos {
                self.spinning.store(false, Ordering::Release);
                // Activity that raced with the store above restarts us.
                let again = self.last_activity.load(Ordering::Relaxed) != last
                    && self
                        .spinning
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok();
                if !again {
                    self.port.awake(false);
                    return;
                }
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
        let polls = if self.polite { 1 } else { POLLS_PER_TURN };
        for _ in 0..polls {
            if self.port.progress() {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }
}

/// Polls of the parcelport between two turns given to the worker's other tasks.
const POLLS_PER_TURN: u32 = 64;

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

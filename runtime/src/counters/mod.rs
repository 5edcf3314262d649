//! Performance counters of one locality, always on: parcels and bytes per
//! peer and per parcelport, actions run (by name), tasks spawned, time spent
//! in collectives (by operation), AGAS lookups and cache hits, bytes held in
//! array partitions.
//!
//! Counting costs a few relaxed atomic additions: each locality sizes its
//! tables when it joins the job (one cell per peer, one per registered
//! action), so the hot path takes no lock and allocates nothing.
//! [`counters`] reads them as plain data ([`Counters`]);
//! `--hpx:print-counters` (`HPX_PRINT_COUNTERS=1`) prints them when the
//! locality ends, and `hpxrun --counters` prints one table for the whole
//! job ([`table`]).
//!
//! The layers above the runtime count through [`time_wait`] (collectives)
//! and [`HeldBytes`] (array partitions).
//!
//! The parcels counted are the runtime's: calls, replies and its control
//! messages (the end of the job, clock pings), each as its header and
//! payload. What the transports add below them (handshakes, heartbeats,
//! batching, TLS) is not counted.

pub(crate) mod cells;
mod clock;
mod data;

use std::sync::Arc;
use std::time::Instant;

pub use data::{table, ActionCounters, Counters, PeerTraffic, Timing, Traffic, WaitCounters};

use crate::context;
use crate::trace::Tracer;
use crate::Result;
use cells::Cells;

/// This locality's counters now.
///
/// Errors: [`crate::Error::NotRunning`] outside a running runtime.
pub fn counters() -> Result<Counters> {
    Ok(context::current()?.counters().snapshot())
}

/// Starts timing a wait in collective `operation` (`all_reduce`, say): the
/// time until the returned guard is dropped is added to the operation's
/// counters (and is a slice of the trace when tracing is on). Outside a
/// running runtime the guard counts nothing.
pub fn time_wait(operation: &'static str) -> WaitTimer {
    let timed = context::with_current(|rt| Timed {
        started: rt.counters().ticks(),
        cells: rt.counters().clone(),
        traced: rt.tracer().map(|tracer| (tracer.clone(), Instant::now())),
    });
    WaitTimer { operation, timed }
}

/// Times a wait in a collective operation until dropped: see [`time_wait`].
#[derive(Debug)]
#[must_use = "the wait is timed until the guard is dropped"]
pub struct WaitTimer {
    operation: &'static str,
    timed: Option<Timed>,
}

/// A wait timed on a locality.
#[derive(Debug)]
struct Timed {
    /// When it began, in ticks of the counters' clock.
    started: u64,
    cells: Arc<Cells>,
    /// The timeline and the start on its clock, while tracing.
    traced: Option<(Arc<Tracer>, Instant)>,
}

impl Drop for WaitTimer {
    fn drop(&mut self) {
        if let Some(timed) = &self.timed {
            timed.cells.waited(self.operation, timed.started);
            if let Some((tracer, started)) = &timed.traced {
                tracer.span("collective", self.operation, *started);
            }
        }
    }
}

/// Bytes held in an array partition: counted in [`Counters::partition_bytes`]
/// of the locality where it was made while this lives.
#[derive(Debug)]
pub struct HeldBytes {
    bytes: i64,
    cells: Option<Arc<Cells>>,
}

impl HeldBytes {
    /// Counts `bytes` as held on this locality until the result is dropped
    /// (counts nothing outside a running runtime).
    pub fn new(bytes: usize) -> HeldBytes {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let cells = context::current().ok().map(|rt| rt.counters().clone());
        if let Some(cells) = &cells {
            cells.hold(bytes);
        }
        HeldBytes { bytes, cells }
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        if let Some(cells) = &self.cells {
            cells.hold(-self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_runtime_nothing_is_counted() {
        assert!(matches!(counters(), Err(crate::Error::NotRunning)));
        let timer = time_wait("barrier");
        let held = HeldBytes::new(64);
        assert!(timer.timed.is_none() && held.cells.is_none());
    }
}

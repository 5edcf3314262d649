//! A timeline of one locality in the Chrome trace-event format (which
//! Perfetto and Chromium's `about://tracing` open): actions as slices on the
//! track of the thread that ran them, every parcel as a flow arrow from the
//! slice that sent it to the slice that received it. What waits (a
//! collective, an action that awaited something) may go on on another
//! thread, and other work runs on its thread meanwhile: it is an async slice
//! of its locality instead (`b`/`e` events), so that the slices of each
//! thread nest.
//!
//! Tracing is on when `--hpx:trace=FILE` (`HPX_TRACE`) names a file: then
//! the locality has a `Tracer` and records events into it, and writes
//! them to the file when it ends. When it is off the runtime only checks
//! that it has no tracer. `hpxrun --trace FILE` traces every locality and
//! merges their files into one ([`merge`]), the localities' clocks aligned
//! by the offsets the root measured when the job started (a ping to each
//! locality, see `Locality::measure_clocks`).
//!
//! Each parcel's flow id is the sending locality and a sequence number that
//! its header carries anyway (a request's id; a reply has the request's) or,
//! for posts and control parcels, only while tracing (see `flow_id`).

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hpx_parcelport::{LocalityId, ParcelHeader};
use parking_lot::Mutex;
use serde_json::{json, Value};

/// The flow id of a parcel: `origin`'s sequence number `seq`, and whether
/// it answers (a reply to request `seq` of `origin`). Below 2^53, so that
/// viewers written in JavaScript read it exactly.
pub(crate) fn flow_id(origin: LocalityId, seq: u64, reply: bool) -> u64 {
    let id = (u64::from(origin.0) << 41) | ((seq & ((1 << 40) - 1)) << 1) | u64::from(reply);
    id & ((1 << 53) - 1)
}

/// A process-wide small number for the calling thread: its track.
fn thread_track() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    thread_local! {
        static TRACK: Cell<u32> = const { Cell::new(0) };
    }
    TRACK.with(|track| {
        if track.get() == 0 {
            let id = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = std::thread::current()
                .name()
                .map_or_else(|| format!("thread {id}"), |n| format!("{n} {id}"));
            thread_names().lock().insert(id, name);
            track.set(id);
        }
        track.get()
    })
}

/// The names of the threads that have a track.
fn thread_names() -> &'static Mutex<HashMap<u32, String>> {
    static NAMES: OnceLock<Mutex<HashMap<u32, String>>> = OnceLock::new();
    NAMES.get_or_init(Default::default)
}

/// Nanoseconds since the Unix epoch by this machine's clock.
pub(crate) fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// What happened.
#[derive(Debug)]
enum What {
    /// A slice of `dur` nanoseconds.
    Slice { dur: u64 },
    /// The start of a parcel's flow arrow.
    FlowStart(u64),
    /// The end of a parcel's flow arrow.
    FlowEnd(u64),
    /// The start of async slice `id`.
    Begin(u64),
    /// The end of async slice `id`.
    End(u64),
}

/// One event: `at` nanoseconds after the tracer's origin, on thread `track`.
#[derive(Debug)]
struct Event {
    at: u64,
    track: u32,
    cat: &'static str,
    name: &'static str,
    what: What,
}

/// Events a locality keeps at most (about 64 bytes each); later ones are
/// dropped and counted (`hpx.dropped_events` in its trace).
const MAX_EVENTS: usize = 1 << 22;

/// Rounds of clock pings the root sends to each locality.
pub(crate) const CLOCK_ROUNDS: u32 = 8;

/// The best clock sample of one locality: its round trip and offset.
#[derive(Clone, Copy, Debug)]
struct ClockSample {
    rtt: i64,
    offset: i64,
    rounds: u32,
}

/// The events of one locality while tracing is on.
#[derive(Debug)]
pub(crate) struct Tracer {
    here: LocalityId,
    origin: Instant,
    origin_unix_ns: i64,
    events: Mutex<Vec<Event>>,
    /// The last id of an async slice.
    spans: AtomicU64,
    /// Events dropped beyond [`MAX_EVENTS`].
    dropped: AtomicU64,
    /// On the root: each locality's clock minus the root's.
    clocks: Mutex<Vec<Option<ClockSample>>>,
    clocks_done: tokio::sync::Notify,
}

impl Tracer {
    /// A tracer of locality `here` of a job of `n`.
    pub(crate) fn new(here: LocalityId, n: u32) -> Tracer {
        let origin = Instant::now();
        Tracer {
            here,
            origin,
            origin_unix_ns: unix_now_ns(),
            events: Mutex::new(Vec::new()),
            spans: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            clocks: Mutex::new(vec![None; n as usize]),
            clocks_done: tokio::sync::Notify::new(),
        }
    }

    /// Nanoseconds since the Unix epoch by this tracer's clock.
    pub(crate) fn now_ns(&self) -> i64 {
        self.origin_unix_ns + self.since(Instant::now()) as i64
    }

    fn since(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    fn push<const N: usize>(&self, new: [Event; N]) {
        let mut events = self.events.lock();
        if events.len() + N <= MAX_EVENTS {
            events.extend(new);
        } else {
            drop(events);
            self.dropped.fetch_add(N as u64, Ordering::Relaxed);
        }
    }

    /// A slice `name` of category `cat` from `started` until now.
    pub(crate) fn slice(&self, cat: &'static str, name: &'static str, started: Instant) {
        let (at, end) = (self.since(started), self.since(Instant::now()));
        self.push([Event {
            at,
            track: thread_track(),
            cat,
            name,
            what: What::Slice {
                dur: end.saturating_sub(at),
            },
        }]);
    }

    /// An async slice `name` of category `cat` from `started` until now:
    /// for what may have waited, and gone on on other threads.
    pub(crate) fn span(&self, cat: &'static str, name: &'static str, started: Instant) {
        let id = self.spans.fetch_add(1, Ordering::Relaxed) + 1;
        let (at, end) = (self.since(started), self.since(Instant::now()));
        let track = thread_track();
        let event = |at, what| Event {
            at,
            track,
            cat,
            name,
            what,
        };
        self.push([event(at, What::Begin(id)), event(end, What::End(id))]);
    }

    /// A parcel with flow `flow` is about to leave; its send began at
    /// `started`. Recorded before it leaves (as [`Tracer::arrived`] is
    /// before the parcel is handled): over shared memory the receiver may
    /// handle it, and the job end, before the sender goes on. The send's
    /// slice follows ([`Tracer::slice`], `send`), once it is done.
    pub(crate) fn leaving(&self, flow: u64, started: Instant) {
        self.flow(What::FlowStart(flow), started);
    }

    /// A parcel arrived at `at`: the end of its flow. Recorded before the
    /// parcel is handled, so that even the parcel that ends the job has it;
    /// the slice of its handling follows ([`Tracer::slice`], `receive`).
    pub(crate) fn arrived(&self, flow: u64, at: Instant) {
        self.flow(What::FlowEnd(flow), at);
    }

    fn flow(&self, what: What, at: Instant) {
        self.push([Event {
            at: self.since(at),
            track: thread_track(),
            cat: "parcel",
            name: "parcel",
            what,
        }]);
    }

    /// The root's clock sample of `from`: it sent a ping at `t0` (root
    /// clock), `from` answered at `t1` (its clock), the answer came at `t2`.
    /// Returns whether another round should follow.
    pub(crate) fn clock_sample(&self, from: LocalityId, t0: i64, t1: i64, t2: i64) -> bool {
        let mut clocks = self.clocks.lock();
        let Some(slot) = clocks.get_mut(from.index()) else {
            return false;
        };
        // Numbers from the network: no arithmetic on them may overflow.
        let rtt = t2.saturating_sub(t0);
        let offset = t1.saturating_sub(t0.saturating_add(rtt / 2));
        let rounds = slot.map_or(0, |s| s.rounds) + 1;
        let best = match *slot {
            Some(s) if s.rtt <= rtt => ClockSample { rounds, ..s },
            _ => ClockSample {
                rtt,
                offset,
                rounds,
            },
        };
        *slot = Some(best);
        let more = rounds < CLOCK_ROUNDS;
        let all = clocks
            .iter()
            .enumerate()
            .all(|(i, s)| i == self.here.index() || s.is_some_and(|s| s.rounds >= CLOCK_ROUNDS));
        if all {
            self.clocks_done.notify_one();
        }
        more
    }

    /// Waits until every locality's clock is measured, at most `limit`.
    pub(crate) async fn clocks_measured(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.clocks_done.notified()).await;
    }

    /// The trace as a JSON document: the events (timestamps in microseconds
    /// since this tracer started, sorted), the names of the process and
    /// threads, and what [`merge`] needs (`hpx`: the locality, its clock at
    /// the start, and on the root every locality's clock offset).
    pub(crate) fn to_json(&self) -> Value {
        let pid = self.here.0;
        let mut events = std::mem::take(&mut *self.events.lock());
        // At one moment, a slice begins before the flow that binds to it.
        events.sort_by_key(|e| (e.at, !matches!(e.what, What::Slice { .. })));
        let mut tracks: Vec<u32> = events.iter().map(|e| e.track).collect();
        tracks.sort_unstable();
        tracks.dedup();
        let mut out = vec![json!({
            "ph": "M", "name": "process_name", "pid": pid, "tid": 0,
            "args": {"name": format!("locality {pid}")},
        })];
        {
            let names = thread_names().lock();
            for track in &tracks {
                let name = names.get(track).cloned().unwrap_or_default();
                out.push(json!({
                    "ph": "M", "name": "thread_name", "pid": pid, "tid": track,
                    "args": {"name": name},
                }));
            }
        }
        for e in events {
            let ts = e.at as f64 / 1e3;
            let mut v = json!({
                "pid": pid, "tid": e.track, "ts": ts, "cat": e.cat, "name": e.name,
            });
            match e.what {
                What::Slice { dur } => {
                    v["ph"] = json!("X");
                    v["dur"] = json!(dur as f64 / 1e3);
                }
                What::FlowStart(id) => {
                    v["ph"] = json!("s");
                    v["id"] = json!(id);
                }
                What::FlowEnd(id) => {
                    v["ph"] = json!("f");
                    v["bp"] = json!("e");
                    v["id"] = json!(id);
                }
                What::Begin(id) => {
                    v["ph"] = json!("b");
                    v["id"] = json!(id);
                }
                What::End(id) => {
                    v["ph"] = json!("e");
                    v["id"] = json!(id);
                }
            }
            out.push(v);
        }
        let offsets: Vec<i64> = self
            .clocks
            .lock()
            .iter()
            .map(|s| s.map_or(0, |s| s.offset))
            .collect();
        json!({
            "traceEvents": out,
            "displayTimeUnit": "ns",
            "hpx": {
                "locality": pid,
                "origin_unix_ns": self.origin_unix_ns,
                "clock_offsets_ns": offsets,
                "dropped_events": self.dropped.load(Ordering::Relaxed),
            },
        })
    }

    /// Writes the trace ([`Tracer::to_json`]) to `out`.
    pub(crate) fn write(&self, out: impl Write) -> std::io::Result<()> {
        serde_json::to_writer(out, &self.to_json()).map_err(std::io::Error::from)
    }
}

/// Merges the traces of a job's localities (as their files hold them) into
/// one: each locality's events are moved onto the root's clock (by the
/// offsets the root measured, if its trace is among them) and onto one
/// time axis starting at the job's first event.
///
/// Errors: a trace that is not the JSON a locality writes.
pub fn merge(traces: &[String]) -> Result<String, String> {
    let mut parsed = Vec::with_capacity(traces.len());
    for (i, text) in traces.iter().enumerate() {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("trace {i} is not JSON: {e}"))?;
        let hpx = &v["hpx"];
        let (Some(locality), Some(origin)) =
            (hpx["locality"].as_u64(), hpx["origin_unix_ns"].as_i64())
        else {
            return Err(format!("trace {i} was not written by an hpx-rs locality"));
        };
        parsed.push((locality, origin, v));
    }
    let offsets: Vec<i64> = parsed
        .iter()
        .find(|(l, _, _)| *l == 0)
        .and_then(|(_, _, v)| v["hpx"]["clock_offsets_ns"].as_array().cloned())
        .map(|a| a.iter().map(|o| o.as_i64().unwrap_or(0)).collect())
        .unwrap_or_default();
    // Each locality's origin on the root's clock.
    let origins: Vec<i64> = parsed
        .iter()
        .map(|(l, origin, _)| {
            let offset = usize::try_from(*l)
                .ok()
                .and_then(|l| offsets.get(l))
                .copied()
                .unwrap_or(0);
            origin.saturating_sub(offset)
        })
        .collect();
    let start = origins.iter().copied().min().unwrap_or(0);
    let mut events = Vec::new();
    for ((_, _, v), origin) in parsed.iter_mut().zip(origins) {
        let shift = origin.saturating_sub(start) as f64 / 1e3;
        if let Some(list) = v["traceEvents"].as_array_mut() {
            for mut e in list.drain(..) {
                if let Some(ts) = e["ts"].as_f64() {
                    e["ts"] = json!(ts + shift);
                }
                events.push(e);
            }
        }
    }
    serde_json::to_string(&json!({"traceEvents": events, "displayTimeUnit": "ns"}))
        .map_err(|e| e.to_string())
}

/// Runs `work`, and says whether it ever waited (returned `Pending`): then
/// it may have gone on on another thread, and its slice is an async one.
pub(crate) async fn watched<F: Future>(work: F) -> (F::Output, bool) {
    let mut work = std::pin::pin!(work);
    let mut waited = false;
    let out = std::future::poll_fn(|cx| {
        let poll = work.as_mut().poll(cx);
        waited |= poll.is_pending();
        poll
    })
    .await;
    (out, waited)
}

/// A header's flow id, if its parcel has one: requests, posts and control
/// parcels by their sender's sequence number (0: none, the sender was not
/// tracing), replies by the request's.
pub(crate) fn flow_of(header: &ParcelHeader, reply: bool) -> Option<u64> {
    if header.seq == 0 {
        return None;
    }
    Some(if reply {
        flow_id(header.dest, header.seq, true)
    } else {
        flow_id(header.source, header.seq, false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_ids_tell_sources_sequences_and_replies_apart() {
        let a = flow_id(LocalityId(1), 7, false);
        assert_ne!(a, flow_id(LocalityId(2), 7, false));
        assert_ne!(a, flow_id(LocalityId(1), 8, false));
        assert_ne!(a, flow_id(LocalityId(1), 7, true));
        assert!(flow_id(LocalityId(4095), u64::MAX, true) < 1 << 53);
    }

    #[test]
    fn clock_samples_from_the_network_never_overflow() {
        let root = Tracer::new(LocalityId(0), 2);
        for (t0, t1, t2) in [
            (i64::MIN, i64::MAX, i64::MAX),
            (i64::MAX, i64::MIN, i64::MIN),
            (0, i64::MIN, i64::MAX),
        ] {
            root.clock_sample(LocalityId(1), t0, t1, t2);
        }
        assert!(
            !root.clock_sample(LocalityId(7), 0, 0, 0),
            "no such locality"
        );
        let json = [root.to_json().to_string()];
        assert!(merge(&json).is_ok());
    }

    #[test]
    fn a_trace_is_sorted_and_merges_onto_one_axis() {
        let root = Tracer::new(LocalityId(0), 2);
        let mut other = Tracer::new(LocalityId(1), 2);
        // Locality 1's clock is 5 ms ahead of the root's.
        other.origin_unix_ns += 5_000_000;
        let started = Instant::now();
        other.slice("action", "late", started);
        other.leaving(flow_id(LocalityId(1), 1, false), started);
        other.slice("send", "m::f", started);
        root.arrived(flow_id(LocalityId(1), 1, false), started);
        root.slice("receive", "m::f", started);
        let t0 = root.now_ns();
        assert!(root.clock_sample(LocalityId(1), t0, t0 + 5_000_500, t0 + 1_000));
        let json = [root.to_json().to_string(), other.to_json().to_string()];
        let merged: Value = serde_json::from_str(&merge(&json).expect("merges")).expect("JSON");
        let events = merged["traceEvents"].as_array().expect("events");
        let ts = |ph: &str, pid: u64| {
            events
                .iter()
                .find(|e| e["ph"] == ph && e["pid"] == pid)
                .and_then(|e| e["ts"].as_f64())
                .expect("event")
        };
        // Both ends of the flow were recorded at about the same moment:
        // aligned, they are much closer than the 5 ms between the clocks.
        assert!((ts("s", 1) - ts("f", 0)).abs() < 1_000.0);
        assert!(merge(&["{}".to_owned()]).is_err());
        assert!(merge(&["not json".to_owned()]).is_err());
    }
}

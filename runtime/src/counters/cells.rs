//! The counters while a locality runs: atomics, no lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use hpx_parcelport::LocalityId;

use super::clock::{Clock, Rate};
use super::data::{ActionCounters, Counters, PeerTraffic, Timing, Traffic, WaitCounters};
use crate::action::Registry;

/// Counters of one peer, on a cache line of their own: threads sending to
/// different peers do not share one.
#[derive(Debug, Default)]
#[repr(align(64))]
struct PeerCells {
    parcels_sent: AtomicU64,
    bytes_sent: AtomicU64,
    parcels_received: AtomicU64,
    bytes_received: AtomicU64,
}

/// A [`Timing`] being counted, in ticks of the counters' [`Clock`].
#[derive(Debug, Default)]
struct TimingCells {
    count: AtomicU64,
    total_ticks: AtomicU64,
    max_ticks: AtomicU64,
}

impl TimingCells {
    fn add(&self, ticks: u64) {
        self.count.fetch_add(1, Relaxed);
        self.total_ticks.fetch_add(ticks, Relaxed);
        self.max_ticks.fetch_max(ticks, Relaxed);
    }

    fn read(&self, rate: Rate) -> Timing {
        Timing {
            count: self.count.load(Relaxed),
            total_ns: rate.nanos(self.total_ticks.load(Relaxed)),
            max_ns: rate.nanos(self.max_ticks.load(Relaxed)),
        }
    }
}

#[derive(Debug, Default)]
struct ActionCells {
    calls_sent: AtomicU64,
    calls_received: AtomicU64,
    runs: TimingCells,
}

/// Timings by name without a lock: a fixed number of slots, each taking a
/// name once; the last one takes every name that finds no other.
#[derive(Debug)]
struct Named {
    slots: Box<[(OnceLock<&'static str>, TimingCells)]>,
}

/// Names a [`Named`] tells apart.
const NAMED_SLOTS: usize = 64;

impl Named {
    fn new() -> Named {
        Named {
            slots: (0..NAMED_SLOTS).map(|_| Default::default()).collect(),
        }
    }

    fn get(&self, name: &'static str) -> &TimingCells {
        let last = self.slots.len() - 1;
        for (i, (slot, cells)) in self.slots.iter().enumerate() {
            let taken = if i == last {
                slot.get_or_init(|| "other")
            } else {
                slot.get_or_init(|| name)
            };
            if *taken == name || i == last {
                return cells;
            }
        }
        unreachable!("the last slot takes every name")
    }

    fn read(&self, rate: Rate) -> Vec<(&'static str, Timing)> {
        self.slots
            .iter()
            .filter_map(|(slot, cells)| slot.get().map(|name| (*name, cells.read(rate))))
            .filter(|(_, timing)| timing.count > 0)
            .collect()
    }
}

/// The counters of one locality while it runs (see [`Counters`] for what
/// each means).
#[derive(Debug)]
pub(crate) struct Cells {
    here: LocalityId,
    /// What timings are measured with.
    clock: Clock,
    peers: Box<[PeerCells]>,
    routes: Box<[&'static str]>,
    actions: Box<[ActionCells]>,
    tasks: AtomicU64,
    waits: Named,
    agas_lookups: AtomicU64,
    agas_hits: AtomicU64,
    held: AtomicI64,
}

impl Cells {
    /// Counters of locality `here`, whose parcels to locality `i` go over
    /// parcelport `routes[i]`.
    pub(crate) fn new(here: LocalityId, routes: Vec<&'static str>) -> Cells {
        let actions = Registry::global().entries().len();
        Cells {
            here,
            clock: Clock::new(),
            peers: routes.iter().map(|_| PeerCells::default()).collect(),
            routes: routes.into(),
            actions: (0..actions).map(|_| ActionCells::default()).collect(),
            tasks: AtomicU64::new(0),
            waits: Named::new(),
            agas_lookups: AtomicU64::new(0),
            agas_hits: AtomicU64::new(0),
            held: AtomicI64::new(0),
        }
    }

    /// A parcel of `bytes` went to `peer`.
    pub(crate) fn sent(&self, peer: LocalityId, bytes: usize) {
        if let Some(cells) = self.peers.get(peer.index()) {
            cells.parcels_sent.fetch_add(1, Relaxed);
            cells.bytes_sent.fetch_add(bytes as u64, Relaxed);
        }
    }

    /// A parcel of `bytes` counted by [`Cells::sent`] could not go to
    /// `peer` after all.
    pub(crate) fn unsent(&self, peer: LocalityId, bytes: usize) {
        if let Some(cells) = self.peers.get(peer.index()) {
            cells.parcels_sent.fetch_sub(1, Relaxed);
            cells.bytes_sent.fetch_sub(bytes as u64, Relaxed);
        }
    }

    /// A parcel of `bytes` came from `peer`.
    pub(crate) fn received(&self, peer: LocalityId, bytes: usize) {
        if let Some(cells) = self.peers.get(peer.index()) {
            cells.parcels_received.fetch_add(1, Relaxed);
            cells.bytes_received.fetch_add(bytes as u64, Relaxed);
        }
    }

    /// A call of the action of registry index `action` left for another locality.
    pub(crate) fn call_sent(&self, action: Option<usize>) {
        if let Some(cells) = action.and_then(|i| self.actions.get(i)) {
            cells.calls_sent.fetch_add(1, Relaxed);
        }
    }

    /// A call of the action of registry index `action` arrived.
    pub(crate) fn call_received(&self, action: usize) {
        if let Some(cells) = self.actions.get(action) {
            cells.calls_received.fetch_add(1, Relaxed);
        }
    }

    /// The ticks of the counters' clock now: a timing's start.
    pub(crate) fn ticks(&self) -> u64 {
        self.clock.ticks()
    }

    /// The action of registry index `action` ran here since `started`
    /// ([`Cells::ticks`]).
    pub(crate) fn ran(&self, action: usize, started: u64) {
        if let Some(cells) = self.actions.get(action) {
            cells.runs.add(self.ticks().saturating_sub(started));
        }
    }

    /// The runtime spawned a task.
    pub(crate) fn spawned(&self) {
        self.tasks.fetch_add(1, Relaxed);
    }

    /// A name was looked up in AGAS; `hit` if the cache answered.
    pub(crate) fn agas_lookup(&self, hit: bool) {
        self.agas_lookups.fetch_add(1, Relaxed);
        if hit {
            self.agas_hits.fetch_add(1, Relaxed);
        }
    }

    /// Bytes held in partitions grew by `bytes` (or shrank, if negative).
    pub(crate) fn hold(&self, bytes: i64) {
        self.held.fetch_add(bytes, Relaxed);
    }

    /// A wait in collective `operation` lasted from `started`
    /// ([`Cells::ticks`]) until now.
    pub(crate) fn waited(&self, operation: &'static str, started: u64) {
        self.waits
            .get(operation)
            .add(self.ticks().saturating_sub(started));
    }

    /// The counters as plain data.
    pub(crate) fn snapshot(&self) -> Counters {
        let rate = self.clock.rate();
        let mut peers = Vec::new();
        let mut parcelports: BTreeMap<String, Traffic> = BTreeMap::new();
        for (i, (cells, route)) in self.peers.iter().zip(self.routes.iter()).enumerate() {
            let traffic = Traffic {
                parcels_sent: cells.parcels_sent.load(Relaxed),
                bytes_sent: cells.bytes_sent.load(Relaxed),
                parcels_received: cells.parcels_received.load(Relaxed),
                bytes_received: cells.bytes_received.load(Relaxed),
            };
            if traffic == Traffic::default() {
                continue;
            }
            parcelports
                .entry((*route).to_owned())
                .or_default()
                .add(&traffic);
            peers.push(PeerTraffic {
                locality: i as u32,
                parcelport: (*route).to_owned(),
                traffic,
            });
        }
        let actions = Registry::global()
            .entries()
            .iter()
            .zip(self.actions.iter())
            .map(|(entry, cells)| ActionCounters {
                name: entry.name.to_owned(),
                calls_sent: cells.calls_sent.load(Relaxed),
                calls_received: cells.calls_received.load(Relaxed),
                runs: cells.runs.read(rate),
            })
            .filter(|a| a.calls_sent > 0 || a.calls_received > 0 || a.runs.count > 0)
            .collect();
        let mut collectives: Vec<WaitCounters> = self
            .waits
            .read(rate)
            .into_iter()
            .map(|(operation, wait)| WaitCounters {
                operation: operation.to_owned(),
                wait,
            })
            .collect();
        collectives.sort_by(|a, b| a.operation.cmp(&b.operation));
        Counters {
            locality: self.here.0,
            peers,
            parcelports,
            actions,
            tasks_spawned: self.tasks.load(Relaxed),
            collectives,
            agas_lookups: self.agas_lookups.load(Relaxed),
            agas_cache_hits: self.agas_hits.load(Relaxed),
            partition_bytes: u64::try_from(self.held.load(Relaxed)).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_slots_take_each_name_once_and_overflow_into_other() {
        let named = Named::new();
        named.get("a").add(5);
        named.get("b").add(7);
        named.get("a").add(9);
        let read = named.read(Rate::NANOSECONDS);
        assert_eq!(
            read[0],
            (
                "a",
                Timing {
                    count: 2,
                    total_ns: 14,
                    max_ns: 9
                }
            )
        );
        assert_eq!(read[1].0, "b");
        let names: Vec<&'static str> = (0..100)
            .map(|i| &*Box::leak(format!("n{i}").into_boxed_str()))
            .collect();
        for name in &names {
            named.get(name).add(1);
        }
        let read = named.read(Rate::NANOSECONDS);
        assert_eq!(read.len(), NAMED_SLOTS);
        assert_eq!(read[NAMED_SLOTS - 1].0, "other");
    }
}

//! The counters as plain data, and the table of a job's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Parcels and bytes (on the wire: header and payload) in each direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Parcels sent.
    pub parcels_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Parcels received.
    pub parcels_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

impl Traffic {
    /// Adds `other` to this.
    pub(crate) fn add(&mut self, other: &Traffic) {
        self.parcels_sent += other.parcels_sent;
        self.bytes_sent += other.bytes_sent;
        self.parcels_received += other.parcels_received;
        self.bytes_received += other.bytes_received;
    }
}

/// Traffic with one other locality.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTraffic {
    /// The other locality.
    pub locality: u32,
    /// The parcelport that reaches it (`shm`, `quic`, `tcp`).
    pub parcelport: String,
    /// Parcels and bytes exchanged with it.
    pub traffic: Traffic,
}

/// Count, total and longest duration of something timed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// How many times.
    pub count: u64,
    /// Total time, in nanoseconds.
    pub total_ns: u64,
    /// Longest time, in nanoseconds.
    pub max_ns: u64,
}

impl Timing {
    fn add(&mut self, other: &Timing) {
        self.count += other.count;
        self.total_ns += other.total_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
    }
}

/// What one action did on this locality.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCounters {
    /// The action's name.
    pub name: String,
    /// Calls of it sent from here to other localities (requests and posts).
    pub calls_sent: u64,
    /// Calls of it received here from other localities.
    pub calls_received: u64,
    /// Runs here (received calls and calls made here), with their time from
    /// start to result.
    pub runs: Timing,
}

/// Time spent in one collective operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitCounters {
    /// The operation (`all_reduce`, `barrier`, ...).
    pub operation: String,
    /// Calls and the time from entering the operation to its result.
    pub wait: Timing,
}

/// The counters of one locality, as plain data: see [`crate::counters()`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The locality counted.
    pub locality: u32,
    /// Traffic with each other locality it exchanged parcels with, by id.
    pub peers: Vec<PeerTraffic>,
    /// Traffic by parcelport (`shm`, `quic`, `tcp`).
    pub parcelports: BTreeMap<String, Traffic>,
    /// The actions that were called or run here, by name.
    pub actions: Vec<ActionCounters>,
    /// Tasks the runtime spawned on the workers (calls that waited, local
    /// calls, main, queue drainers).
    pub tasks_spawned: u64,
    /// Collective operations entered here, by operation.
    pub collectives: Vec<WaitCounters>,
    /// Names resolved through AGAS (`resolve_name`).
    pub agas_lookups: u64,
    /// Of those, the ones answered by this locality's cache.
    pub agas_cache_hits: u64,
    /// Bytes of elements held in array partitions here now.
    pub partition_bytes: u64,
}

impl Counters {
    /// Traffic with every peer together.
    pub fn traffic(&self) -> Traffic {
        let mut total = Traffic::default();
        for peer in &self.peers {
            total.add(&peer.traffic);
        }
        total
    }

    /// Traffic with locality `peer` (zero if none).
    pub fn peer(&self, peer: u32) -> Traffic {
        self.peers
            .iter()
            .find(|p| p.locality == peer)
            .map(|p| p.traffic)
            .unwrap_or_default()
    }

    /// The counters of the action named `name`, if it was called or ran here.
    pub fn action(&self, name: &str) -> Option<&ActionCounters> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// The time spent in collective `operation`, if it was entered here.
    pub fn collective(&self, operation: &str) -> Option<&Timing> {
        self.collectives
            .iter()
            .find(|c| c.operation == operation)
            .map(|c| &c.wait)
    }

    /// Runs of all actions together.
    pub fn action_runs(&self) -> Timing {
        let mut total = Timing::default();
        for action in &self.actions {
            total.add(&action.runs);
        }
        total
    }

    /// Time in all collectives together.
    pub fn collective_wait(&self) -> Timing {
        let mut total = Timing::default();
        for c in &self.collectives {
            total.add(&c.wait);
        }
        total
    }

    /// As JSON (what `hpxrun --counters` collects).
    pub fn to_json(&self) -> String {
        // Plain data of strings and numbers: it always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// From JSON written by [`Counters::to_json`].
    pub fn from_json(json: &str) -> std::result::Result<Counters, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }
}

/// Nanoseconds as milliseconds with three decimals.
fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// The counters of several localities (a whole job) as a text table: one
/// row per locality and, for more than one, a total row; then the traffic
/// by parcelport, the actions and the collectives of the whole job.
pub fn table(localities: &[Counters]) -> String {
    let mut out = String::new();
    let header = [
        "locality",
        "parcels sent",
        "bytes sent",
        "parcels recv",
        "bytes recv",
        "actions run",
        "action ms",
        "tasks",
        "collective ms",
        "agas lookups",
        "agas hits",
        "partition bytes",
    ];
    let row = |name: String, traffic: Traffic, c: &Counters| -> Vec<String> {
        let runs = c.action_runs();
        vec![
            name,
            traffic.parcels_sent.to_string(),
            traffic.bytes_sent.to_string(),
            traffic.parcels_received.to_string(),
            traffic.bytes_received.to_string(),
            runs.count.to_string(),
            ms(runs.total_ns),
            c.tasks_spawned.to_string(),
            ms(c.collective_wait().total_ns),
            c.agas_lookups.to_string(),
            c.agas_cache_hits.to_string(),
            c.partition_bytes.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = localities
        .iter()
        .map(|c| row(c.locality.to_string(), c.traffic(), c))
        .collect();
    let job = merge(localities);
    if localities.len() > 1 {
        let mut traffic = Traffic::default();
        for c in localities {
            traffic.add(&c.traffic());
        }
        rows.push(row("total".to_owned(), traffic, &job));
    }
    write_table(&mut out, &header, &rows);

    if !job.parcelports.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = job
            .parcelports
            .iter()
            .map(|(port, t)| {
                vec![
                    port.clone(),
                    t.parcels_sent.to_string(),
                    t.bytes_sent.to_string(),
                    t.parcels_received.to_string(),
                    t.bytes_received.to_string(),
                ]
            })
            .collect();
        let header = [
            "parcelport",
            "parcels sent",
            "bytes sent",
            "parcels recv",
            "bytes recv",
        ];
        write_table(&mut out, &header, &rows);
    }
    if !job.actions.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = job
            .actions
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    a.calls_sent.to_string(),
                    a.calls_received.to_string(),
                    a.runs.count.to_string(),
                    ms(a.runs.total_ns),
                    ms(a.runs.max_ns),
                ]
            })
            .collect();
        let header = ["action", "sent", "received", "runs", "total ms", "max ms"];
        write_table(&mut out, &header, &rows);
    }
    if !job.collectives.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = job
            .collectives
            .iter()
            .map(|c| {
                vec![
                    c.operation.clone(),
                    c.wait.count.to_string(),
                    ms(c.wait.total_ns),
                    ms(c.wait.max_ns),
                ]
            })
            .collect();
        let header = ["collective", "calls", "total ms", "max ms"];
        write_table(&mut out, &header, &rows);
    }
    out
}

/// The counters of several localities added up (parcelports, actions and
/// collectives by name; the peers are left out).
fn merge(localities: &[Counters]) -> Counters {
    let mut job = Counters::default();
    let mut actions: BTreeMap<String, ActionCounters> = BTreeMap::new();
    let mut collectives: BTreeMap<String, Timing> = BTreeMap::new();
    for c in localities {
        for (port, traffic) in &c.parcelports {
            job.parcelports
                .entry(port.clone())
                .or_default()
                .add(traffic);
        }
        for a in &c.actions {
            let entry = actions
                .entry(a.name.clone())
                .or_insert_with(|| ActionCounters {
                    name: a.name.clone(),
                    calls_sent: 0,
                    calls_received: 0,
                    runs: Timing::default(),
                });
            entry.calls_sent += a.calls_sent;
            entry.calls_received += a.calls_received;
            entry.runs.add(&a.runs);
        }
        for w in &c.collectives {
            collectives
                .entry(w.operation.clone())
                .or_default()
                .add(&w.wait);
        }
        job.tasks_spawned += c.tasks_spawned;
        job.agas_lookups += c.agas_lookups;
        job.agas_cache_hits += c.agas_cache_hits;
        job.partition_bytes += c.partition_bytes;
    }
    job.actions = actions.into_values().collect();
    job.collectives = collectives
        .into_iter()
        .map(|(operation, wait)| WaitCounters { operation, wait })
        .collect();
    job
}

/// Writes `rows` under `header`, columns aligned (the first to the left,
/// numbers to the right).
fn write_table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for (cell, w) in cells.zip(&widths) {
            if first {
                let _ = write!(out, "{cell:<w$}");
                first = false;
            } else {
                let _ = write!(out, "  {cell:>w$}");
            }
        }
        out.push('\n');
    };
    line(out, &mut header.iter().copied());
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(locality: u32) -> Counters {
        Counters {
            locality,
            peers: vec![PeerTraffic {
                locality: 1 - locality,
                parcelport: "shm".into(),
                traffic: Traffic {
                    parcels_sent: 3,
                    bytes_sent: 300,
                    parcels_received: 2,
                    bytes_received: 200,
                },
            }],
            parcelports: BTreeMap::from([(
                "shm".to_owned(),
                Traffic {
                    parcels_sent: 3,
                    bytes_sent: 300,
                    parcels_received: 2,
                    bytes_received: 200,
                },
            )]),
            actions: vec![ActionCounters {
                name: "m::square".into(),
                calls_sent: 1,
                calls_received: 2,
                runs: Timing {
                    count: 2,
                    total_ns: 3_000_000,
                    max_ns: 2_000_000,
                },
            }],
            tasks_spawned: 4,
            collectives: vec![WaitCounters {
                operation: "all_reduce".into(),
                wait: Timing {
                    count: 1,
                    total_ns: 500_000,
                    max_ns: 500_000,
                },
            }],
            agas_lookups: 2,
            agas_cache_hits: 1,
            partition_bytes: 800,
        }
    }

    #[test]
    fn json_round_trip() {
        let c = sample(0);
        assert_eq!(Counters::from_json(&c.to_json()), Ok(c));
        assert!(Counters::from_json("{").is_err());
    }

    #[test]
    fn table_has_a_row_per_locality_and_a_total() {
        let text = table(&[sample(0), sample(1)]);
        let rows: Vec<&str> = text.lines().collect();
        assert!(rows[0].starts_with("locality"));
        assert!(rows[1].starts_with('0'));
        assert!(rows[2].starts_with('1'));
        let total: Vec<&str> = rows[3].split_whitespace().collect();
        assert_eq!(
            total,
            ["total", "6", "600", "4", "400", "4", "6.000", "8", "1.000", "4", "2", "1600"]
        );
        assert!(text.contains("m::square"));
        assert!(text.contains("all_reduce"));
        let one = table(&[sample(0)]);
        assert!(!one.lines().any(|l| l.starts_with("total")));
    }
}

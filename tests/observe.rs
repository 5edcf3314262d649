//! Counters and traces of real 4-locality jobs, checked against what the
//! jobs did: parcels per call, bytes on both sides of each pair, time in
//! collectives, AGAS lookups, bytes in partitions; a trace whose every
//! parcel is one flow from a send to a receive.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{done, ensure, hpxrun, in_locality, launch_with, s, spmd};
use hpx::prelude::*;
use hpx::{agas, Counters};
use serde_json::Value;

/// Calls from locality 0 to locality 1.
const CALLS: u64 = 25;
/// Posts from locality 0 to locality 2.
const POSTS: u64 = 7;
/// `all_reduce`s on every locality.
const REDUCES: u64 = 3;
/// Explicit barriers on every locality.
const BARRIERS: u64 = 2;
/// Name lookups on localities 1 to 3.
const LOOKUPS: u64 = 3;

#[hpx::action]
async fn ping(x: u64) -> u64 {
    x + 1
}

#[hpx::action]
async fn note(_x: u64) {}

/// The counted part of the job: `CALLS` calls 0 → 1, `POSTS` posts 0 → 2,
/// `REDUCES` all_reduces and `BARRIERS` barriers everywhere, `LOOKUPS`
/// lookups of one name on 1..3.
async fn counted_body() -> Result<(), String> {
    let here = hpx::get_locality_id();
    if here == 0 {
        let gid = GlobalId::new(hpx::find_here(), 7);
        ensure(
            agas::register_name("observe/name", gid).await.map_err(s)?,
            "name taken",
        )?;
        for i in 0..CALLS {
            let got = hpx::async_at(LocalityId(1), ping, i).await.map_err(s)?;
            ensure(got == i + 1, "ping")?;
        }
        for i in 0..POSTS {
            hpx::post(LocalityId(2), note, i).map_err(s)?;
        }
    }
    hpx::barrier().await.map_err(s)?;
    if here != 0 {
        for _ in 0..LOOKUPS {
            let found = agas::resolve_name("observe/name").await.map_err(s)?;
            ensure(found.is_some(), "name not found")?;
        }
    }
    for _ in 0..REDUCES {
        let sum = hpx::all_reduce(u64::from(here), ReduceOp::Sum)
            .await
            .map_err(s)?;
        ensure(sum == 6, format!("sum {sum}"))?;
    }
    hpx::barrier().await.map_err(s)?;
    // Read while running: the calls to locality 1 are all in.
    let now = hpx::counters().map_err(s)?;
    if here == 1 {
        let pings = action(&now, "::ping").map(|a| a.calls_received);
        ensure(pings == Some(CALLS), format!("pings so far {pings:?}"))?;
    }
    ensure(now.locality == here, "locality")?;
    Ok(())
}

/// The action of `now` whose name ends with `suffix`.
fn action<'a>(now: &'a Counters, suffix: &str) -> Option<&'a hpx::counters::ActionCounters> {
    now.actions.iter().find(|a| a.name.ends_with(suffix))
}

/// A new, empty directory for test `test`'s files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hpx-observe-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn read_counters(dir: &Path, n: u32) -> Vec<Counters> {
    (0..n)
        .map(|l| {
            let path = dir.join(format!("c-{l}.json"));
            let text = std::fs::read_to_string(&path).expect("counters file");
            Counters::from_json(&text).expect("counters JSON")
        })
        .collect()
}

#[test]
fn counters_count_what_the_job_did() {
    const TEST: &str = "counters_count_what_the_job_did";
    if in_locality() {
        return spmd(|| async {
            counted_body().await?;
            done(TEST);
            Ok(())
        });
    }
    let dir = scratch(TEST);
    let pattern = dir.join("c-%l.json");
    let pattern = pattern.to_str().expect("UTF-8 path");
    let out = launch_with(TEST, 4, &[], &[("HPX_COUNTERS", pattern)]);
    out.assert_success().assert_all_done(TEST, 4);
    let c = read_counters(&dir, 4);

    // Exactly one parcel per call, received where it was sent.
    let pings = |l: usize| action(&c[l], "::ping");
    let sent = pings(0).expect("locality 0 called ping");
    assert_eq!((sent.calls_sent, sent.calls_received), (CALLS, 0));
    let run = pings(1).expect("locality 1 ran ping");
    assert_eq!((run.calls_sent, run.calls_received), (0, CALLS));
    assert_eq!(run.runs.count, CALLS);
    assert!(run.runs.max_ns > 0 && run.runs.max_ns <= run.runs.total_ns);
    assert!(pings(2).is_none() && pings(3).is_none());
    let notes = |l: usize| action(&c[l], "::note");
    assert_eq!(notes(0).map(|a| a.calls_sent), Some(POSTS));
    assert_eq!(
        notes(2).map(|a| (a.calls_received, a.runs.count)),
        Some((POSTS, POSTS))
    );

    for (a, ca) in c.iter().enumerate() {
        assert_eq!(ca.locality, a as u32);
        // What one side sent, the other received: parcels and bytes.
        for b in 0..4u32 {
            let there = c[b as usize].peer(a as u32);
            let here = ca.peer(b);
            assert_eq!(
                (here.parcels_sent, here.bytes_sent),
                (there.parcels_received, there.bytes_received),
                "{a} -> {b}"
            );
        }
        assert_eq!(ca.peer(a as u32), Default::default(), "{a} counted itself");
        // The parcelports' traffic is the peers' traffic.
        let mut by_port = hpx::counters::Traffic::default();
        for t in ca.parcelports.values() {
            by_port.parcels_sent += t.parcels_sent;
            by_port.bytes_sent += t.bytes_sent;
            by_port.parcels_received += t.parcels_received;
            by_port.bytes_received += t.bytes_received;
        }
        assert_eq!(by_port, ca.traffic(), "locality {a}");
        for peer in &ca.peers {
            assert!(ca.parcelports.contains_key(&peer.parcelport));
        }
        // Collectives, by operation.
        let reduce = ca.collective("all_reduce").expect("all_reduce counted");
        assert_eq!(reduce.count, REDUCES, "locality {a}");
        assert!(reduce.total_ns > 0 && reduce.max_ns <= reduce.total_ns);
        let barrier = ca.collective("barrier").expect("barrier counted");
        assert_eq!(barrier.count, BARRIERS, "locality {a}");
        assert!(ca.tasks_spawned > 0);
    }
    // Each call is a request and a reply: at least that many parcels.
    assert!(c[0].peer(1).parcels_sent >= CALLS && c[1].peer(0).parcels_sent >= CALLS);
    assert!(c[0].peer(2).parcels_sent >= POSTS);
    // The first lookup asks the name's home; the others hit the cache.
    for (l, cl) in c.iter().enumerate().skip(1) {
        assert_eq!(
            (cl.agas_lookups, cl.agas_cache_hits),
            (LOOKUPS, LOOKUPS - 1),
            "locality {l}"
        );
    }
    assert_eq!(c[0].agas_lookups, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn partition_bytes_are_the_partitions_held() {
    const TEST: &str = "partition_bytes_are_the_partitions_held";
    if in_locality() {
        return spmd(|| async {
            // Each locality makes an array of 1000 f64 over all four.
            let before = hpx::counters().map_err(s)?.partition_bytes;
            hpx::barrier().await.map_err(s)?;
            let a = hpx::zeros::<f64>(1000).await.map_err(s)?;
            let mine = a.local_partition().await.map_err(s)?.len() as u64 * 8;
            hpx::barrier().await.map_err(s)?;
            let during = hpx::counters().map_err(s)?.partition_bytes;
            ensure(
                during - before == 4 * mine,
                format!("before {before}, during {during}, one partition {mine}"),
            )?;
            let total = hpx::all_reduce(during - before, ReduceOp::Sum)
                .await
                .map_err(s)?;
            ensure(total == 4 * 8000, format!("the job holds {total}"))?;
            hpx::barrier().await.map_err(s)?;
            drop(a);
            done(TEST);
            Ok(())
        });
    }
    launch_with(TEST, 4, &[], &[])
        .assert_success()
        .assert_all_done(TEST, 4);
}

#[test]
fn hpxrun_counters_prints_one_table_of_the_job() {
    const TEST: &str = "hpxrun_counters_prints_one_table_of_the_job";
    if in_locality() {
        return spmd(|| async {
            counted_body().await?;
            done(TEST);
            Ok(())
        });
    }
    let out = launch_with(TEST, 4, &["--counters"], &[("HPX_PRINT_COUNTERS", "1")]);
    out.assert_success().assert_all_done(TEST, 4);
    // Each locality printed its own counters (--hpx:print-counters).
    for l in 0..4 {
        assert_eq!(
            out.tagged_by(l, "counters of locality"),
            [format!("{l}:")],
            "{out}"
        );
    }
    // hpxrun printed one table: a row per locality and a total.
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("counters of the job:"))
        .collect();
    assert!(lines.len() > 6, "no table: {out}");
    assert!(lines[1].starts_with("locality"), "{out}");
    let rows: Vec<Vec<&str>> = lines[2..7]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for (l, row) in rows.iter().take(4).enumerate() {
        assert_eq!(row[0], l.to_string(), "{out}");
    }
    let total = &rows[4];
    assert_eq!(total[0], "total", "{out}");
    let number = |row: &[&str], col: usize| row[col].parse::<u64>().expect("a number");
    // Every parcel sent was received; the total adds the rows up.
    assert_eq!(number(total, 1), number(total, 3), "{out}");
    assert_eq!(number(total, 2), number(total, 4), "{out}");
    for col in 1..=4 {
        let sum: u64 = rows[..4].iter().map(|r| number(r, col)).sum();
        assert_eq!(number(total, col), sum, "column {col}: {out}");
    }
    assert!(out.stdout.contains("::ping"), "{out}");
    assert!(out.stdout.contains("all_reduce"), "{out}");
}

/// The events of a trace file.
fn events(trace: &Value) -> &Vec<Value> {
    trace["traceEvents"].as_array().expect("traceEvents")
}

#[test]
fn trace_of_a_job_has_one_flow_per_parcel() {
    const TEST: &str = "trace_of_a_job_has_one_flow_per_parcel";
    if in_locality() {
        return spmd(|| async {
            counted_body().await?;
            done(TEST);
            Ok(())
        });
    }
    let dir = scratch(TEST);
    let file = dir.join("trace.json");
    let file_arg = file.to_str().expect("UTF-8 path");
    let pattern = dir.join("c-%l.json");
    let pattern = pattern.to_str().expect("UTF-8 path");
    let out = launch_with(
        TEST,
        4,
        &["--trace", file_arg],
        &[("HPX_COUNTERS", pattern)],
    );
    out.assert_success().assert_all_done(TEST, 4);
    assert!(
        out.stderr.contains("trace of 4 localities written"),
        "{out}"
    );
    let trace: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("trace file")).expect("JSON");
    let events = events(&trace);
    let counters = read_counters(&dir, 4);

    // One process per locality, named.
    let processes: BTreeSet<u64> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .filter_map(|e| e["pid"].as_u64())
        .collect();
    assert_eq!(processes, BTreeSet::from([0, 1, 2, 3]));

    // Timestamps never go back on a track.
    let mut last: BTreeMap<(u64, u64), f64> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] != "M") {
        let track = (
            e["pid"].as_u64().expect("pid"),
            e["tid"].as_u64().expect("tid"),
        );
        let ts = e["ts"].as_f64().expect("ts");
        assert!(ts >= 0.0, "{e}");
        if let Some(before) = last.insert(track, ts) {
            assert!(ts >= before, "track {track:?} goes back: {before} then {e}");
        }
    }

    // The slices of each track nest (what viewers need to draw them).
    let mut open: BTreeMap<(u64, u64), Vec<f64>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let track = (
            e["pid"].as_u64().expect("pid"),
            e["tid"].as_u64().expect("tid"),
        );
        let ts = e["ts"].as_f64().expect("ts");
        let end = ts + e["dur"].as_f64().expect("dur");
        let stack = open.entry(track).or_default();
        while stack.last().is_some_and(|parent| *parent <= ts) {
            stack.pop();
        }
        if let Some(parent) = stack.last() {
            assert!(
                end <= parent + 0.001,
                "{e} overlaps a slice ending at {parent}"
            );
        }
        stack.push(end);
    }

    // Every flow starts once and ends once, on another locality.
    let mut starts: BTreeMap<u64, &Value> = BTreeMap::new();
    let mut ends: BTreeMap<u64, &Value> = BTreeMap::new();
    for e in events {
        let id = e["id"].as_u64();
        if e["ph"] == "s" {
            assert!(
                starts.insert(id.expect("id"), e).is_none(),
                "two starts: {e}"
            );
        } else if e["ph"] == "f" {
            assert_eq!(e["bp"], "e");
            assert!(ends.insert(id.expect("id"), e).is_none(), "two ends: {e}");
        }
    }
    assert_eq!(
        starts.keys().collect::<Vec<_>>(),
        ends.keys().collect::<Vec<_>>(),
        "flows without both ends"
    );
    for (id, s) in &starts {
        let f = ends[id];
        assert_ne!(s["pid"], f["pid"], "flow {id} within one locality");
        // The clocks are aligned: no parcel arrives long before it left.
        let (sent, received) = (s["ts"].as_f64().expect("ts"), f["ts"].as_f64().expect("ts"));
        assert!(
            received + 10_000.0 >= sent,
            "flow {id}: sent {sent}, received {received}"
        );
    }
    // A flow per parcel: as many as the counters say were sent.
    let parcels: u64 = counters.iter().map(|c| c.traffic().parcels_sent).sum();
    assert_eq!(starts.len() as u64, parcels);

    // Every async slice begins once and ends once, on its locality.
    let mut spans: BTreeMap<(u64, u64), (u32, u32)> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "b" || e["ph"] == "e") {
        let key = (
            e["pid"].as_u64().expect("pid"),
            e["id"].as_u64().expect("id"),
        );
        let (begins, ends) = spans.entry(key).or_default();
        if e["ph"] == "b" {
            *begins += 1;
        } else {
            *ends += 1;
        }
    }
    assert!(spans.values().all(|n| *n == (1, 1)), "{spans:?}");

    // Actions and collectives are slices (on a thread's track, or async
    // ones of the locality for what waited) of the locality that ran them.
    let slices = |pid: u64, cat: &str, suffix: &str| {
        events
            .iter()
            .filter(|e| e["ph"] == "X" || e["ph"] == "b")
            .filter(|e| e["pid"] == pid && e["cat"] == cat)
            .filter(|e| e["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
            .count() as u64
    };
    assert_eq!(slices(1, "action", "::ping"), CALLS);
    assert_eq!(slices(0, "action", "::ping"), 0);
    assert_eq!(slices(0, "send", "::ping"), CALLS);
    assert_eq!(slices(1, "receive", "::ping"), CALLS);
    for pid in 0..4 {
        assert_eq!(slices(pid, "collective", "all_reduce"), REDUCES);
        assert_eq!(slices(pid, "collective", "barrier"), BARRIERS);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_output_paths_are_clear_errors() {
    const TEST: &str = "bad_output_paths_are_clear_errors";
    if in_locality() {
        return spmd(|| async {
            done(TEST);
            Ok(())
        });
    }
    let missing = "/nonexistent-hpx-dir/trace.json";
    let out = launch_with(TEST, 2, &[], &[("HPX_TRACE", missing)]);
    out.assert_failure();
    assert!(
        out.stderr.contains("HPX_TRACE") && out.stderr.contains("cannot create"),
        "{out}"
    );
    assert!(!out.stderr.contains("panicked"), "{out}");
    let launcher = common::output_within(
        std::process::Command::new(hpxrun())
            .args(["-l", "2", "--trace", missing, "--", "true"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
        std::time::Duration::from_secs(30),
    );
    assert_eq!(launcher.status.code(), Some(2), "{launcher}");
    assert!(
        launcher.stderr.contains("cannot write") && launcher.stderr.contains(missing),
        "{launcher}"
    );
}

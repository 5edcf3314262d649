//! Actions across real clusters of 1 to 4 localities started with hpxrun.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{done, ensure, in_locality, launch, spmd, spmd_with};
use hpx::prelude::*;
use hpx::Error;

#[hpx::action]
async fn whoami(x: u64) -> (u32, u64) {
    (hpx::get_locality_id(), x * 2)
}

#[hpx::action]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[hpx::action]
async fn no_args() -> String {
    format!("L{}", hpx::get_locality_id())
}

#[hpx::action]
async fn fails(msg: String) -> Result<u32, String> {
    Err(format!("refused: {msg}"))
}

#[hpx::action]
async fn panics(msg: String) -> u32 {
    panic!("deliberate panic: {msg}")
}

#[hpx::action]
async fn sum_bulk(v: PodVec<f64>) -> (usize, f64) {
    (v.len(), v.iter().sum())
}

#[hpx::action]
async fn echo_bulk(v: PodVec<u8>) -> PodVec<u8> {
    v
}

/// Recursive calls that hop across every locality before returning.
#[hpx::action]
async fn relay(hops: u32, trail: Vec<u32>) -> Result<Vec<u32>, Error> {
    let mut trail = trail;
    trail.push(hpx::get_locality_id());
    if hops == 0 {
        return Ok(trail);
    }
    let next = LocalityId((hpx::get_locality_id() + 1) % hpx::get_num_localities());
    hpx::async_at(next, relay, (hops - 1, trail)).await
}

static POSTED: AtomicU64 = AtomicU64::new(0);
static POSTED_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[hpx::action]
async fn record(amount: u64) {
    POSTED.fetch_add(amount, Ordering::SeqCst);
    POSTED_CHANGED.notify_waiters();
}

/// Waits (without sleeping) until this locality has recorded `total`.
#[hpx::action]
async fn recorded_at_least(total: u64) -> u64 {
    loop {
        let changed = POSTED_CHANGED.notified();
        let now = POSTED.load(Ordering::SeqCst);
        if now >= total {
            return now;
        }
        changed.await;
    }
}

/// An action this binary knows by type but never registered: every receiver
/// must answer "unknown action".
#[derive(Clone, Copy)]
struct Unregistered;

impl hpx::Action for Unregistered {
    type Args = ();
    type Output = ();
    const NAME: &'static str = "tests::Unregistered";
    const ID: u64 = hpx::__private::action_id(Self::NAME);
    async fn invoke(_: ()) -> Result<(), Error> {
        Ok(())
    }
}

#[test]
fn actions_reach_every_locality_both_ways() {
    if in_locality() {
        return spmd(|| async {
            let here = hpx::get_locality_id();
            let n = hpx::get_num_localities();
            for target in hpx::find_all_localities() {
                let x = u64::from(here * 100 + target.0);
                let got = hpx::async_at(target, whoami, x)
                    .await
                    .map_err(|e| e.to_string())?;
                ensure(
                    got == (target.0, x * 2),
                    format!("{here}->{target}: {got:?}"),
                )?;
                let sum = hpx::async_at(target, add, (-5, i64::from(target.0)))
                    .await
                    .map_err(|e| e.to_string())?;
                ensure(sum == i64::from(target.0) - 5, "add")?;
                let name = hpx::async_at(target, no_args, ())
                    .await
                    .map_err(|e| e.to_string())?;
                ensure(name == format!("L{target}"), "no_args")?;
            }
            // Many calls in flight at once, to every locality.
            let calls: Vec<_> = (0..2000u64)
                .map(|i| hpx::async_at(LocalityId((i % u64::from(n)) as u32), whoami, i))
                .collect();
            for (i, r) in futures::future::join_all(calls)
                .await
                .into_iter()
                .enumerate()
            {
                let (loc, twice) = r.map_err(|e| e.to_string())?;
                ensure(
                    loc as u64 == i as u64 % u64::from(n) && twice == 2 * i as u64,
                    "concurrent",
                )?;
            }
            let trail = hpx::async_at(LocalityId(0), relay, (2 * n, vec![]))
                .await
                .map_err(|e| e.to_string())?;
            let expected: Vec<u32> = (0..=2 * n).map(|i| i % n).collect();
            ensure(trail == expected, format!("relay {trail:?}"))?;
            println!("RESULT ok {here}");
            Ok(())
        });
    }
    for n in 1..=4 {
        let out = launch("actions_reach_every_locality_both_ways", n);
        out.assert_success();
        for l in 0..n {
            assert_eq!(out.tagged_by(l, "RESULT"), [format!("ok {l}")], "{out}");
        }
    }
}

#[test]
fn broadcast_returns_results_in_locality_order() {
    if in_locality() {
        return spmd(|| async {
            let all = hpx::broadcast_action(whoami, 21)
                .await
                .map_err(|e| e.to_string())?;
            let n = hpx::get_num_localities();
            ensure(
                all == (0..n).map(|l| (l, 42)).collect::<Vec<_>>(),
                format!("{all:?}"),
            )?;
            done("broadcast_returns_results_in_locality_order");
            Ok(())
        });
    }
    for n in [1, 3] {
        launch("broadcast_returns_results_in_locality_order", n)
            .assert_success()
            .assert_all_done("broadcast_returns_results_in_locality_order", n);
    }
}

/// An argument whose decoding panics where it arrives.
struct Poison;

impl serde::Serialize for Poison {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> serde::Deserialize<'de> for Poison {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("poisoned argument")
    }
}

#[hpx::action]
async fn takes_poison(_poison: Poison) -> u32 {
    1
}

#[test]
fn remote_errors_name_the_locality() {
    if in_locality() {
        return spmd(|| async {
            let n = hpx::get_num_localities();
            let target = LocalityId(n - 1);
            match hpx::async_at(target, fails, "x".to_owned()).await {
                Err(Error::Remote {
                    locality,
                    message,
                    action,
                }) => {
                    ensure(locality == target, "remote error locality")?;
                    ensure(message == "refused: x", message)?;
                    ensure(action.ends_with("::fails"), action)?;
                }
                other => return Err(format!("expected Remote, got {other:?}")),
            }
            match hpx::async_at(target, panics, "y".to_owned()).await {
                Err(Error::RemotePanic {
                    locality, message, ..
                }) => {
                    ensure(locality == target, "panic locality")?;
                    ensure(message.contains("deliberate panic: y"), message)?;
                }
                other => return Err(format!("expected RemotePanic, got {other:?}")),
            }
            // The locality that panicked keeps serving.
            let (loc, _) = hpx::async_at(target, whoami, 1)
                .await
                .map_err(|e| e.to_string())?;
            ensure(loc == target.0, "after panic")?;
            if target != hpx::find_here() {
                match hpx::async_at(target, Unregistered, ()).await {
                    Err(Error::UnknownAction { locality, id, .. }) => {
                        ensure(
                            locality == target && id == Unregistered::ID,
                            "unknown action fields",
                        )?;
                    }
                    other => return Err(format!("expected UnknownAction, got {other:?}")),
                }
                // A panic while decoding the arguments is an error too.
                match hpx::async_at(target, takes_poison, Poison).await {
                    Err(Error::Codec(m)) => {
                        ensure(m.contains("decoding panicked: poisoned argument"), m)?
                    }
                    other => return Err(format!("expected Codec, got {other:?}")),
                }
            }
            match hpx::async_at(LocalityId(n), whoami, 1).await {
                Err(Error::NoSuchLocality(l)) => ensure(l == LocalityId(n), "no such locality")?,
                other => return Err(format!("expected NoSuchLocality, got {other:?}")),
            }
            ensure(
                hpx::post(LocalityId(n + 5), record, 1).is_err(),
                "post to nowhere",
            )?;
            println!("RESULT errors ok");
            done("remote_errors_name_the_locality");
            Ok(())
        });
    }
    for n in [1, 2, 3] {
        let out = launch("remote_errors_name_the_locality", n);
        out.assert_success();
        out.assert_all_done("remote_errors_name_the_locality", n);
        assert_eq!(out.tagged("RESULT errors ok").len(), n as usize, "{out}");
    }
}

#[test]
fn posts_are_all_delivered() {
    if in_locality() {
        return spmd(|| async {
            let n = hpx::get_num_localities();
            let per_target = 5000u64;
            for target in hpx::find_all_localities() {
                for _ in 0..per_target {
                    hpx::post(target, record, 1).map_err(|e| e.to_string())?;
                }
            }
            // Every locality receives per_target posts from each of the n senders.
            let expected = per_target * u64::from(n);
            for target in hpx::find_all_localities() {
                let got = tokio::time::timeout(
                    Duration::from_secs(30),
                    hpx::async_at(target, recorded_at_least, expected),
                )
                .await
                .map_err(|_| format!("posts to {target} did not all arrive"))?
                .map_err(|e| e.to_string())?;
                ensure(got >= expected, "count")?;
            }
            done("posts_are_all_delivered");
            Ok(())
        });
    }
    for n in [1, 2, 4] {
        launch("posts_are_all_delivered", n)
            .assert_success()
            .assert_all_done("posts_are_all_delivered", n);
    }
}

#[test]
fn bulk_payloads_travel_intact() {
    if in_locality() {
        return spmd(|| async {
            let n = hpx::get_num_localities();
            let target = LocalityId((hpx::get_locality_id() + 1) % n);
            for len in [0usize, 1, 1000, 3 << 20] {
                let v: Vec<f64> = (0..len).map(|i| i as f64 * 0.5).collect();
                let expected: f64 = v.iter().sum();
                let (got_len, got_sum) = hpx::async_at(target, sum_bulk, PodVec(v))
                    .await
                    .map_err(|e| e.to_string())?;
                ensure(got_len == len && got_sum == expected, format!("len {len}"))?;
            }
            let bytes: Vec<u8> = (0..(20usize << 20)).map(|i| (i % 251) as u8).collect();
            let back = hpx::async_at(target, echo_bulk, PodVec(bytes.clone()))
                .await
                .map_err(|e| e.to_string())?;
            ensure(back.0 == bytes, "20 MiB echo")?;
            done("bulk_payloads_travel_intact");
            Ok(())
        });
    }
    for n in [2, 3] {
        launch("bulk_payloads_travel_intact", n)
            .assert_success()
            .assert_all_done("bulk_payloads_travel_intact", n);
    }
}

static COMPUTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static STOP_COMPUTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Computes without ever yielding to the runtime until [`stop_computing`]
/// arrives, or for at most `max_ms` milliseconds (a safety net: the test
/// fails if that ends it). Returns its spins and whether it was stopped.
#[hpx::action]
async fn compute_until_stopped(max_ms: u64) -> (u64, bool) {
    COMPUTING.store(true, Ordering::SeqCst);
    let end = std::time::Instant::now() + Duration::from_millis(max_ms);
    let mut spins = 0u64;
    let stopped = loop {
        if STOP_COMPUTING.load(Ordering::SeqCst) {
            break true;
        }
        if std::time::Instant::now() >= end {
            break false;
        }
        spins = std::hint::black_box(spins.wrapping_add(1));
    };
    COMPUTING.store(false, Ordering::SeqCst);
    (spins, stopped)
}

#[hpx::action]
async fn still_computing() -> bool {
    COMPUTING.load(Ordering::SeqCst)
}

#[hpx::action]
async fn stop_computing() {
    STOP_COMPUTING.store(true, Ordering::SeqCst);
}

#[test]
fn a_long_action_does_not_delay_other_parcels() {
    if in_locality() {
        return spmd(|| async {
            if hpx::get_locality_id() != 0 {
                done("a_long_action_does_not_delay_other_parcels");
                return Ok(());
            }
            let peer = LocalityId(1);
            // It computes until told to stop: the round trips below all
            // happen while it runs, however long they take.
            let long = hpx::async_at(peer, compute_until_stopped, 30_000);
            // Asked until it says so (not woken by it: a task it wakes is
            // queued on its own worker, which it keeps busy).
            let asked = std::time::Instant::now();
            while !hpx::async_at(peer, still_computing, ())
                .await
                .map_err(|e| e.to_string())?
            {
                ensure(
                    asked.elapsed() < Duration::from_secs(20),
                    "the long action never started",
                )?;
            }
            let mut worst = Duration::ZERO;
            for i in 0..100u64 {
                let start = std::time::Instant::now();
                let (loc, twice) = hpx::async_at(peer, whoami, i)
                    .await
                    .map_err(|e| e.to_string())?;
                worst = worst.max(start.elapsed());
                ensure(loc == 1 && twice == 2 * i, "round trip answer")?;
            }
            let overlapped = hpx::async_at(peer, still_computing, ())
                .await
                .map_err(|e| e.to_string())?;
            ensure(
                overlapped,
                "the long action ended before the round trips did",
            )?;
            hpx::async_at(peer, stop_computing, ())
                .await
                .map_err(|e| e.to_string())?;
            let (spins, stopped) = long.await.map_err(|e| e.to_string())?;
            ensure(spins > 0, "the long action ran")?;
            ensure(stopped, "the long action ran out before it was stopped")?;
            ensure(
                worst < Duration::from_millis(50),
                format!("slowest round trip {worst:?} during a long action"),
            )?;
            println!("RESULT slowest {} us", worst.as_micros());
            done("a_long_action_does_not_delay_other_parcels");
            Ok(())
        });
    }
    let out = launch("a_long_action_does_not_delay_other_parcels", 2);
    out.assert_success();
    out.assert_all_done("a_long_action_does_not_delay_other_parcels", 2);
    assert_eq!(out.tagged_by(0, "RESULT slowest").len(), 1, "{out}");
}

/// [`still_computing`], answered where its parcel is read.
#[hpx::action(direct)]
async fn still_computing_here() -> bool {
    COMPUTING.load(Ordering::SeqCst)
}

/// [`stop_computing`], answered where its parcel is read.
#[hpx::action(direct)]
async fn stop_computing_here() {
    STOP_COMPUTING.store(true, Ordering::SeqCst);
}

/// Adds one, where its parcel is read.
#[hpx::action(direct)]
async fn plus_one_here(x: u64) -> u64 {
    x + 1
}

#[test]
fn a_computing_worker_does_not_hold_up_shared_memory() {
    const TEST: &str = "a_computing_worker_does_not_hold_up_shared_memory";
    if in_locality() {
        // One worker: while it computes, only shared memory's receiver
        // thread can read parcels (and run direct actions).
        return spmd_with(1, || async {
            if hpx::get_locality_id() != 0 {
                done(TEST);
                return Ok(());
            }
            let peer = LocalityId(1);
            let long = hpx::async_at(peer, compute_until_stopped, 30_000);
            let asked = std::time::Instant::now();
            while !hpx::async_at(peer, still_computing_here, ())
                .await
                .map_err(|e| e.to_string())?
            {
                ensure(
                    asked.elapsed() < Duration::from_secs(20),
                    "the long action never started",
                )?;
            }
            let mut worst = Duration::ZERO;
            for i in 0..50u64 {
                let start = std::time::Instant::now();
                let got = hpx::async_at(peer, plus_one_here, i)
                    .await
                    .map_err(|e| e.to_string())?;
                worst = worst.max(start.elapsed());
                ensure(got == i + 1, "round trip answer")?;
            }
            hpx::async_at(peer, stop_computing_here, ())
                .await
                .map_err(|e| e.to_string())?;
            let (_, stopped) = long.await.map_err(|e| e.to_string())?;
            ensure(stopped, "the long action ran out before it was stopped")?;
            ensure(
                worst < Duration::from_millis(100),
                format!("slowest round trip {worst:?} while the only worker computed"),
            )?;
            println!("RESULT slowest {} us", worst.as_micros());
            done(TEST);
            Ok(())
        });
    }
    let parcelports = std::env::var("HPX_PARCELPORT").unwrap_or_else(|_| "shm".into());
    if !parcelports.split(',').any(|p| p.trim() == "shm") {
        // Over the network the transport runs on the workers (no core is
        // left for a network thread here): nothing reads while they compute.
        println!("SKIPPED: {TEST}: shared memory is off (HPX_PARCELPORT={parcelports})");
        return;
    }
    launch(TEST, 2).assert_success().assert_all_done(TEST, 2);
}

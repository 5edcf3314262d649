//! Whole jobs inside one test process (`hpx::run_in_process`): several
//! localities, each on threads of its own with its own state, talking over
//! QUIC on 127.0.0.1. Actions, AGAS and collectives over 1 to 5 localities,
//! without spawning a process.

use std::time::{Duration, Instant};

use hpx::prelude::*;
use hpx::{agas, Error};
use serde::{Deserialize, Serialize};

fn ensure(cond: bool, what: impl std::fmt::Display) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs `main` on `n` localities in this process (two workers each) and
/// returns what each printed as its result; fails on any error.
fn job<F, Fut>(n: u32, main: F) -> Vec<String>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<String, String>> + Send + 'static,
{
    let start = Instant::now();
    let results = hpx::run_in_process(n, 2, main);
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "the job took {:?}",
        start.elapsed()
    );
    assert_eq!(results.len(), n as usize);
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("locality {i} of {n} failed: {e}")))
        .collect()
}

#[hpx::action]
async fn whoami(x: u64) -> (u32, u64) {
    (hpx::get_locality_id(), x * 2)
}

#[hpx::action]
async fn panics(msg: String) -> u32 {
    panic!("deliberate panic: {msg}")
}

#[test]
fn each_locality_has_its_own_identity_and_actions_cross() {
    for n in [1, 2, 3, 5] {
        let out = job(n, || async {
            let here = hpx::get_locality_id();
            let n = hpx::get_num_localities();
            for target in hpx::find_all_localities() {
                let x = u64::from(here * 100 + target.0);
                let got = hpx::async_at(target, whoami, x).await.map_err(s)?;
                ensure(
                    got == (target.0, x * 2),
                    format!("{here}->{target}: {got:?}"),
                )?;
            }
            let calls: Vec<_> = (0..500u64)
                .map(|i| hpx::async_at(LocalityId((i % u64::from(n)) as u32), whoami, i))
                .collect();
            for (i, r) in futures::future::join_all(calls)
                .await
                .into_iter()
                .enumerate()
            {
                let (loc, twice) = r.map_err(s)?;
                ensure(
                    u64::from(loc) == i as u64 % u64::from(n) && twice == 2 * i as u64,
                    "concurrent calls",
                )?;
            }
            let next = LocalityId((here + 1) % n);
            match hpx::async_at(next, panics, "x".into()).await {
                Err(Error::RemotePanic { locality, .. }) if locality == next => {}
                other => return Err(format!("expected a panic of {next}, got {other:?}")),
            }
            Ok(format!("{here}/{n}"))
        });
        let expected: Vec<String> = (0..n).map(|i| format!("{i}/{n}")).collect();
        assert_eq!(out, expected);
    }
}

#[hpx::component]
#[derive(Serialize, Deserialize, Default, Debug)]
struct Tally {
    value: u64,
}

#[hpx::action]
async fn bump(tally: &mut Tally, by: u64) -> u64 {
    tally.value += by;
    tally.value
}

#[test]
fn names_and_components_stay_per_locality() {
    let n = 4;
    let out = job(n, || async {
        let me = hpx::get_locality_id();
        let n = hpx::get_num_localities();
        // Locality 0 makes one tally on the last locality and names it.
        if me == 0 {
            let tally = hpx::new_component(LocalityId(n - 1), Tally::default())
                .await
                .map_err(s)?;
            tally.register_as("in-process/tally").await.map_err(s)?;
        }
        let tally = hpx::Component::<Tally>::connect_to("in-process/tally")
            .await
            .map_err(s)?;
        ensure(tally.gid().owner() == LocalityId(n - 1), "owner")?;
        tally.call(bump, u64::from(me) + 1).await.map_err(s)?;
        // Every locality's name, registered and resolved everywhere.
        let mine = GlobalId::new(hpx::find_here(), 7);
        ensure(
            agas::register_name(&format!("in-process/loc{me}"), mine)
                .await
                .map_err(s)?,
            "name taken",
        )?;
        for l in 0..n {
            let gid = agas::wait_for_name(&format!("in-process/loc{l}"), Duration::from_secs(30))
                .await
                .map_err(s)?;
            ensure(gid.owner() == LocalityId(l), format!("loc{l} -> {gid}"))?;
        }
        hpx::barrier().await.map_err(s)?;
        let total = tally.call(bump, 0).await.map_err(s)?;
        hpx::barrier().await.map_err(s)?;
        Ok(total.to_string())
    });
    let expected = (1..=u64::from(n)).sum::<u64>().to_string();
    assert!(out.iter().all(|t| *t == expected), "{out:?}");
}

#[test]
fn collectives_over_uneven_locality_counts() {
    for n in [1, 3, 4, 5] {
        let out = job(n, || async {
            let me = hpx::get_locality_id();
            let n = hpx::get_num_localities();
            let sum = hpx::all_reduce(u64::from(me) + 1, ReduceOp::Sum)
                .await
                .map_err(s)?;
            ensure(
                sum == u64::from(n) * u64::from(n + 1) / 2,
                format!("sum {sum}"),
            )?;
            let root = n - 1;
            let word = hpx::broadcast((me == root).then(|| format!("from {root}")), root)
                .await
                .map_err(s)?;
            ensure(word == format!("from {root}"), &word)?;
            let gathered = hpx::gather(me * 10, root).await.map_err(s)?;
            match gathered {
                Some(all) if me == root => {
                    ensure(all == (0..n).map(|i| i * 10).collect::<Vec<_>>(), "gather")?
                }
                None if me != root => {}
                other => return Err(format!("gather gave {other:?}")),
            }
            let big: Vec<f64> = (0..10_000).map(|i| f64::from(i) + f64::from(me)).collect();
            let reduced = hpx::all_reduce(big, ReduceOp::Max).await.map_err(s)?;
            ensure(reduced[9_999] == 9_999.0 + f64::from(n - 1), "vector max")?;
            hpx::barrier().await.map_err(s)?;
            Ok(sum.to_string())
        });
        assert_eq!(out.len(), n as usize);
    }
}

#[test]
fn a_failing_locality_fails_every_locality_of_the_job() {
    let start = Instant::now();
    let results = hpx::run_in_process(3, 1, || async {
        if hpx::get_locality_id() == 1 {
            return Err("locality 1 gives up".to_owned());
        }
        Ok(())
    });
    assert!(start.elapsed() < Duration::from_secs(30));
    match &results[1] {
        Err(Error::MainFailed(m)) => assert!(m.contains("gives up"), "{m}"),
        other => panic!("locality 1: {other:?}"),
    }
    for i in [0, 2] {
        match &results[i] {
            Err(Error::Aborted(reason)) => {
                assert!(reason.contains("locality 1 failed"), "{reason}")
            }
            other => panic!("locality {i}: {other:?}"),
        }
    }
}

#[test]
fn a_failure_during_a_collective_ends_the_job_everywhere_fast() {
    for by_panic in [false, true] {
        let start = Instant::now();
        let results = hpx::run_in_process(4, 1, move || async move {
            hpx::barrier().await.map_err(s)?;
            if hpx::get_locality_id() == 2 {
                if by_panic {
                    panic!("locality 2 panics");
                }
                return Err("locality 2 gives up".to_owned());
            }
            // Locality 2 never joins: without the abort this waits forever.
            hpx::all_reduce(1u64, ReduceOp::Sum).await.map_err(s)?;
            Ok(())
        });
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "the job took {took:?} to end"
        );
        let cause = if by_panic { "panics" } else { "gives up" };
        for (i, r) in results.iter().enumerate() {
            match r {
                Err(Error::MainFailed(m)) if i == 2 => assert!(m.contains(cause), "{m}"),
                Err(Error::Aborted(reason)) if i != 2 => {
                    assert!(reason.contains("locality 2 failed"), "{reason}");
                    assert!(reason.contains(cause), "{reason}");
                }
                other => panic!("locality {i} (by panic: {by_panic}): {other:?}"),
            }
        }
    }
}

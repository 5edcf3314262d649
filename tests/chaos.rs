//! The chaos suite: jobs of 3 to 5 localities that run collectives, actions
//! and array operations in a loop while one locality, at a random round, is
//! killed, stopped for a moment, panics in its main, has an action panic, or
//! opens hostile (never authenticating) connections to its neighbour.
//! Every run must end by itself within its bound, with the right result: a
//! correct success after a short stop, a clean failure naming the cause
//! otherwise. The plan of each run comes from a fixed seed, so a failure
//! can be replayed; `CHAOS_SEED` picks another sequence.

mod common;

use std::time::{Duration, Instant};

use common::hostile::{attack, intruder_endpoint};
use common::{in_locality, launch_with, s, spmd, with_quic};
use hpx::{Distribution, LocalityId, ReduceOp};

const ROUNDS: u32 = 12;
const RUNS: u64 = 15;
/// Hostile connections a `Chaos::Hostile` victim opens.
const HOSTILE: usize = 30;

#[hpx::action]
async fn double(x: u64) -> u64 {
    x * 2
}

#[hpx::action]
async fn panics_here() -> u64 {
    panic!("chaos: an action panics")
}

/// What happens to the victim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chaos {
    /// SIGKILL.
    Kill,
    /// SIGSTOP for 300 ms, then SIGCONT (well within the peer timeout).
    Pause,
    /// Its main panics.
    PanicMain,
    /// Locality 0 calls an action on it that panics.
    PanicAction,
    /// It opens hostile connections to the next locality and holds them
    /// for the rest of the run (the job must not notice).
    Hostile,
}

const KINDS: [Chaos; 5] = [
    Chaos::Kill,
    Chaos::Pause,
    Chaos::PanicMain,
    Chaos::PanicAction,
    Chaos::Hostile,
];

fn strike(kind: Chaos) {
    match kind {
        Chaos::Kill => {
            // SAFETY: raising SIGKILL on ourselves.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        Chaos::Pause => {
            let me = std::process::id();
            // Someone must continue a stopped process: a shell, 300 ms on.
            let waker = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("sleep 0.3; kill -CONT {me}"))
                .spawn();
            if waker.is_ok() {
                // SAFETY: raising SIGSTOP on ourselves.
                unsafe { libc::raise(libc::SIGSTOP) };
            }
        }
        Chaos::PanicMain => panic!("chaos: main panics"),
        Chaos::PanicAction | Chaos::Hostile => {}
    }
}

/// Hostile connections held open, with their endpoint.
type Intrusion = (
    quinn::Endpoint,
    Vec<(quinn::Connection, quinn::SendStream, quinn::RecvStream)>,
);

/// Opens `HOSTILE` hostile connections to locality `target` and returns
/// them, open, once each has pushed what it could.
async fn intrude(target: u32) -> Result<Intrusion, String> {
    let addr = hpx::locality_addresses()[target as usize];
    let endpoint = intruder_endpoint();
    let attacks: Vec<_> = (0..HOSTILE)
        .map(|i| tokio::spawn(attack(endpoint.clone(), addr, i % 3)))
        .collect();
    let mut held = Vec::new();
    for a in attacks {
        held.extend(a.await.map_err(s)?);
    }
    println!(
        "CHAOS HOSTILE {} connections to locality {target}",
        held.len()
    );
    Ok((endpoint, held))
}

/// The SPMD body: `ROUNDS` rounds of work; the plan (kind, victim, round)
/// comes from `CHAOS_PLAN`.
async fn body() -> Result<(), String> {
    let plan = std::env::var("CHAOS_PLAN").map_err(s)?;
    let parts: Vec<&str> = plan.split(':').collect();
    let kind = KINDS[parts[0].parse::<usize>().map_err(s)?];
    let victim: u32 = parts[1].parse().map_err(s)?;
    let at: u32 = parts[2].parse().map_err(s)?;
    let me = hpx::get_locality_id();
    let n = hpx::get_num_localities();
    let mut intruder = None;
    for round in 0..ROUNDS {
        if round == at && me == victim {
            strike(kind);
            if kind == Chaos::Hostile {
                intruder = Some(intrude((victim + 1) % n).await?);
            }
        }
        if round == at && me == 0 && kind == Chaos::PanicAction {
            hpx::async_at(LocalityId(victim), panics_here, ())
                .await
                .map_err(s)?;
        }
        let v = hpx::all_reduce(vec![1.0f64; 512], ReduceOp::Sum)
            .await
            .map_err(s)?;
        common::ensure(v[511] == f64::from(n), "all_reduce")?;
        let next = LocalityId((me + 1) % n);
        let d = hpx::async_at(next, double, u64::from(round))
            .await
            .map_err(s)?;
        common::ensure(d == u64::from(round) * 2, "double")?;
        let a = hpx::from_vec(vec![1u64; 1000], Distribution::Block)
            .await
            .map_err(s)?;
        let sum = a.sum().await.map_err(s)?;
        common::ensure(sum == 1000, format!("array sum {sum}"))?;
    }
    hpx::barrier().await.map_err(s)?;
    if let Some((endpoint, held)) = intruder {
        drop(held);
        endpoint.close(0u32.into(), b"");
    }
    println!("CHAOS DONE {me}");
    Ok(())
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn every_chaos_run_ends_cleanly_and_none_hangs() {
    const TEST: &str = "every_chaos_run_ends_cleanly_and_none_hangs";
    if in_locality() {
        return spmd(body);
    }
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15u64);
    let mut rng = Rng(seed | 1);
    let mut tally = Vec::new();
    for run in 0..RUNS {
        let n = 3 + rng.below(3) as u32;
        // Every kind equally often, in a seeded order of victims and rounds.
        let kind_index = (run % KINDS.len() as u64) as usize;
        let kind = KINDS[kind_index];
        let victim = match kind {
            // The action panics on another locality than its caller.
            Chaos::PanicAction => 1 + rng.below(u64::from(n) - 1) as u32,
            _ => rng.below(u64::from(n)) as u32,
        };
        let at = rng.below(u64::from(ROUNDS)) as u32;
        let plan = format!("{kind_index}:{victim}:{at}");
        let start = Instant::now();
        // The hostile connections speak QUIC.
        let parcelport = match kind {
            Chaos::Hostile => with_quic(),
            _ => std::env::var("HPX_PARCELPORT").unwrap_or_else(|_| "shm,quic".into()),
        };
        let out = launch_with(
            TEST,
            n,
            &[],
            &[
                ("CHAOS_PLAN", &plan),
                ("HPX_PEER_TIMEOUT", "2"),
                ("HPX_PARCELPORT", &parcelport),
            ],
        );
        let took = start.elapsed();
        let what =
            format!("run {run} ({kind:?} of locality {victim} of {n} at round {at}, seed {seed})");
        assert_ne!(out.status.code(), Some(124), "{what} hung: {out}");
        assert!(
            took < Duration::from_secs(20),
            "{what} took {took:?}: {out}"
        );
        match kind {
            Chaos::Pause | Chaos::Hostile => {
                out.assert_success();
                assert_eq!(out.tagged("CHAOS DONE").len(), n as usize, "{what}: {out}");
                if kind == Chaos::Hostile {
                    let opened = out.tagged("CHAOS HOSTILE");
                    assert_eq!(opened.len(), 1, "{what}: {out}");
                    let count: usize = opened[0]
                        .split_whitespace()
                        .next()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    assert!(count > 0, "{what}: no hostile connection opened: {out}");
                }
            }
            Chaos::Kill => {
                out.assert_failure();
                let said = format!("hpxrun: locality {victim} killed by signal 9 (SIGKILL)");
                assert!(out.stderr.contains(&said), "{what}: {out}");
            }
            Chaos::PanicMain => {
                out.assert_failure();
                let said = format!("hpxrun: locality {victim} exited with code 1: main panicked: chaos: main panics");
                assert!(out.stderr.contains(&said), "{what}: {out}");
            }
            Chaos::PanicAction => {
                out.assert_failure();
                let said = format!("panicked on locality {victim}: chaos: an action panics");
                assert!(
                    out.stderr.contains("hpxrun: locality 0 exited with code 1"),
                    "{what}: {out}"
                );
                assert!(out.stderr.contains(&said), "{what}: {out}");
            }
        }
        tally.push(format!("{what}: {:.2} s", took.as_secs_f64()));
    }
    println!("{} runs, 0 hangs:\n{}", tally.len(), tally.join("\n"));
}

//! Latency of the collectives, each beside a baseline measured in the same
//! run.
//!
//! Run it with 2, 4 and 8 localities:
//!
//! ```text
//! cargo build --release -p hpx-bench --bin collectives_bench && cargo build --release --bin hpxrun
//! target/release/hpxrun -l 4 target/release/collectives_bench [SCALE]
//! ```
//!
//! Every locality runs every measure (SPMD). A measure repeats the
//! operation; each repetition is timed on every locality, the time of a
//! repetition is the largest of them (the operation is done when it is done
//! everywhere), and the figure printed is the median over the repetitions.
//! Small operations run back to back. The large ones run in rounds: a
//! round runs the 8 MiB baseline action and each large collective once,
//! each after a barrier, so that the baseline sees the same conditions.
//!
//! - **all_reduce 1 f64** (sum) and **barrier**, beside the round trip of an
//!   8-byte action between localities 0 and 1 (`hpx::async_at`, awaited),
//!   and beside the barrier's own message pattern sent with plain
//!   `hpx::post`s (dissemination: in round `k` each locality posts an
//!   8-byte action to locality `+2^k` and waits for the one from `-2^k`),
//!   which is what the transport alone costs;
//! - **all_reduce 2^20 f64** (8 MiB, sum), **broadcast 8 MiB** (a
//!   `PodVec<u8>` from locality 0) and **gather 2^20 f64 per locality** (a
//!   `PodVec<f64>` to locality 0), beside one action carrying the same 8 MiB
//!   from locality 0 to 1 (`PodVec<u8>` argument, awaited) and a `memcpy` of
//!   8 MiB on one core, with the bandwidth each achieves.
//!
//! `SCALE` (default 1) multiplies the repetitions. It prints a table with
//! the targets of the project (PERFORMANCE.md): all_reduce of one f64 with 4
//! localities ≤ 55 µs, barrier with 4 ≤ 43 µs, all_reduce of 8 MiB with 4
//! ≤ 19 ms.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hpx::prelude::*;
use tokio::sync::Notify;

/// Repetitions of the small operations (times SCALE).
const SMALL_REPEATS: usize = 2_000;
/// Repetitions of the large operations (times SCALE).
const LARGE_REPEATS: usize = 15;
/// Unmeasured repetitions first.
const WARM_UP: usize = 3;
/// Elements of the large vectors: 2^20 f64 = 8 MiB.
const LARGE_LEN: usize = 1 << 20;

/// Returns its 8-byte argument.
#[hpx::action]
async fn echo(x: u64) -> u64 {
    x
}

/// Returns the length of its bulk argument.
#[hpx::action]
async fn swallow(bytes: PodVec<u8>) -> u64 {
    bytes.len() as u64
}

/// Rounds of the raw dissemination pattern at most (2^32 localities).
const MAX_ROUNDS: usize = 32;

/// Tokens of each round posted to this locality by the raw dissemination
/// pattern.
static TOKENS: [AtomicU64; MAX_ROUNDS] = [const { AtomicU64::new(0) }; MAX_ROUNDS];
/// Signalled when a token arrives.
static TOKEN_ARRIVED: Notify = Notify::const_new();

/// Counts one token of round `round`.
#[hpx::action]
async fn token(round: u32) {
    if let Some(count) = TOKENS.get(round as usize) {
        count.fetch_add(1, Ordering::SeqCst);
    }
    TOKEN_ARRIVED.notify_waiters();
}

/// Waits until `count` tokens of round `round` have arrived here.
async fn tokens_reached(round: usize, count: u64) {
    loop {
        let arrived = TOKEN_ARRIVED.notified();
        if TOKENS[round].load(Ordering::SeqCst) >= count {
            return;
        }
        arrived.await;
    }
}

/// The repetition factor: the first program argument, if any.
fn scale() -> Result<usize, String> {
    match hpx::args().get(1) {
        None => Ok(1),
        Some(text) => match text.parse::<usize>() {
            Ok(s) if s > 0 => Ok(s),
            _ => Err(format!(
                "SCALE must be a positive integer, got {text:?} (usage: collectives_bench [SCALE])"
            )),
        },
    }
}

/// Times `repeats` runs of `op`, back to back, after a warm-up; returns the
/// median over the runs of the slowest locality's time (the same on every
/// locality).
async fn measure<F, Fut>(repeats: usize, mut op: F) -> Result<Duration, hpx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), hpx::Error>>,
{
    for _ in 0..WARM_UP {
        op().await?;
    }
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        op().await?;
        times.push(start.elapsed().as_nanos() as u64);
    }
    slowest_median(times).await
}

/// The median over repetitions of the slowest locality's time.
async fn slowest_median(times: Vec<u64>) -> Result<Duration, hpx::Error> {
    let slowest = hpx::all_reduce(times, ReduceOp::Max).await?;
    Ok(median(slowest))
}

/// Nanoseconds since `start`.
fn since(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// The large measures, in rounds: each round runs every one once, each
/// after a barrier, so that all see the same conditions.
struct Large {
    transfer: Vec<u64>,
    all_reduce: Vec<u64>,
    broadcast: Vec<u64>,
    gather: Vec<u64>,
}

/// Runs `rounds` rounds of the large measures (after a warm-up round).
async fn large_rounds(rounds: usize) -> Result<Large, hpx::Error> {
    let me = hpx::get_locality_id();
    let sends = me == 0 && hpx::get_num_localities() > 1;
    let bytes = LARGE_LEN * std::mem::size_of::<f64>();
    let vector: Vec<f64> = (0..LARGE_LEN).map(|i| i as f64).collect();
    let block = PodVec(vec![7u8; bytes]);
    let part = PodVec(vec![f64::from(me); LARGE_LEN]);
    let mut large = Large {
        transfer: Vec::with_capacity(rounds),
        all_reduce: Vec::with_capacity(rounds),
        broadcast: Vec::with_capacity(rounds),
        gather: Vec::with_capacity(rounds),
    };
    for round in 0..rounds + 1 {
        let keep = round > 0;
        let argument = block.clone();
        hpx::barrier().await?;
        let start = Instant::now();
        if sends {
            black_box(hpx::async_at(LocalityId(1), swallow, argument).await?);
        }
        let transfer = if sends { since(start) } else { 0 };
        let argument = vector.clone();
        hpx::barrier().await?;
        let start = Instant::now();
        black_box(hpx::all_reduce(argument, ReduceOp::Sum).await?);
        let all_reduce = since(start);
        let argument = (me == 0).then(|| block.clone());
        hpx::barrier().await?;
        let start = Instant::now();
        black_box(hpx::broadcast(argument, 0).await?);
        let broadcast = since(start);
        let argument = part.clone();
        hpx::barrier().await?;
        let start = Instant::now();
        black_box(hpx::gather(argument, 0).await?);
        let gather = since(start);
        if keep {
            large.transfer.push(transfer);
            large.all_reduce.push(all_reduce);
            large.broadcast.push(broadcast);
            large.gather.push(gather);
        }
    }
    Ok(large)
}

/// The median of some nanosecond counts.
fn median(mut nanos: Vec<u64>) -> Duration {
    nanos.sort_unstable();
    Duration::from_nanos(nanos.get(nanos.len() / 2).copied().unwrap_or(0))
}

/// Median round trip of an 8-byte action from locality 0 to 1 (zero with
/// one locality); the same value on every locality.
async fn round_trip(repeats: usize) -> Result<Duration, hpx::Error> {
    let mut nanos = Vec::new();
    if hpx::get_locality_id() == 0 && hpx::get_num_localities() > 1 {
        for i in 0..repeats + 100 {
            let start = Instant::now();
            let back = hpx::async_at(LocalityId(1), echo, i as u64).await?;
            if i >= 100 {
                nanos.push(start.elapsed().as_nanos() as u64);
            }
            black_box(back);
        }
    }
    let median = median(nanos).as_nanos() as u64;
    let median = hpx::broadcast(Some(median), 0).await?;
    Ok(Duration::from_nanos(median))
}

/// The barrier's message pattern with plain posts, timed like [`measure`].
async fn raw_dissemination(repeats: usize) -> Result<Duration, hpx::Error> {
    let n = hpx::get_num_localities();
    let me = hpx::get_locality_id();
    let distances: Vec<u32> = (0..MAX_ROUNDS as u32)
        .map(|k| 1 << k)
        .take_while(|d| *d < n)
        .collect();
    let mut times = Vec::with_capacity(repeats);
    for i in 0..repeats + WARM_UP {
        let start = Instant::now();
        for (round, d) in distances.iter().enumerate() {
            hpx::post(LocalityId((me + d) % n), token, round as u32)?;
            tokens_reached(round, i as u64 + 1).await;
        }
        if i >= WARM_UP {
            times.push(start.elapsed().as_nanos() as u64);
        }
    }
    let slowest = hpx::all_reduce(times, ReduceOp::Max).await?;
    Ok(median(slowest))
}

/// Median time to copy `bytes` bytes with `copy_from_slice` on one core.
fn memcpy(bytes: usize, repeats: usize) -> Duration {
    let source = vec![1u8; bytes];
    let mut target = vec![0u8; bytes];
    let mut nanos = Vec::with_capacity(repeats);
    for _ in 0..repeats + WARM_UP {
        let start = Instant::now();
        target.copy_from_slice(black_box(&source));
        black_box(&mut target);
        nanos.push(start.elapsed().as_nanos() as u64);
    }
    median(nanos.split_off(WARM_UP))
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn gbps(bytes: usize, d: Duration) -> String {
    if d.is_zero() {
        return "-".into();
    }
    format!("{:.2} GB/s", bytes as f64 / d.as_secs_f64() / 1e9)
}

/// The verdict on `value` against a target that applies to `localities`.
fn verdict(n: u32, localities: u32, value: Duration, target: Duration) -> String {
    if n != localities {
        return format!("(target at {localities})");
    }
    let met = if value <= target { "met" } else { "MISSED" };
    format!("≤ {} at {localities}: {met}", pretty(target))
}

fn pretty(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        micros(d)
    } else {
        millis(d)
    }
}

#[hpx::main]
async fn main() -> Result<(), hpx::Error> {
    let scale = scale().map_err(hpx::Error::BadArgument)?;
    let n = hpx::get_num_localities();
    let me = hpx::get_locality_id();
    let small = SMALL_REPEATS * scale;
    let large = LARGE_REPEATS * scale;
    let bytes = LARGE_LEN * std::mem::size_of::<f64>();

    let rtt = round_trip(small).await?;
    hpx::barrier().await?;
    let raw = raw_dissemination(small).await?;
    let one = measure(small, || async {
        black_box(hpx::all_reduce(1.5f64, ReduceOp::Sum).await?);
        Ok(())
    })
    .await?;
    let barrier = measure(small, hpx::barrier).await?;
    let times = large_rounds(large).await?;
    let transfer = slowest_median(times.transfer).await?;
    let reduce_large = slowest_median(times.all_reduce).await?;
    let bcast = slowest_median(times.broadcast).await?;
    let gathered = slowest_median(times.gather).await?;
    let copy = memcpy(bytes, large);

    if me != 0 {
        return Ok(());
    }
    println!("collectives_bench: {n} localities, median of {small} (small) / {large} (large) repetitions");
    println!("| measure | median | baselines (same run) | ratio to first baseline | target |");
    println!("|---|---:|---|---:|---|");
    let ratio = |a: Duration, b: Duration| {
        if b.is_zero() {
            "-".to_owned()
        } else {
            format!("{:.2}", a.as_secs_f64() / b.as_secs_f64())
        }
    };
    let small_baselines = format!(
        "same pattern with plain posts {}; action round trip {}",
        micros(raw),
        micros(rtt)
    );
    println!(
        "| all_reduce 1 f64 | {} | {small_baselines} | {} | {} |",
        micros(one),
        ratio(one, raw),
        verdict(n, 4, one, Duration::from_micros(55))
    );
    println!(
        "| barrier | {} | {small_baselines} | {} | {} |",
        micros(barrier),
        ratio(barrier, raw),
        verdict(n, 4, barrier, Duration::from_micros(43))
    );
    let large_baselines = format!(
        "8 MiB action 0→1 {} ({}); memcpy 8 MiB {} ({})",
        millis(transfer),
        gbps(bytes, transfer),
        millis(copy),
        gbps(bytes, copy)
    );
    println!(
        "| all_reduce 2^20 f64 (8 MiB) | {} ({}) | {large_baselines} | {} | {} |",
        millis(reduce_large),
        gbps(bytes, reduce_large),
        ratio(reduce_large, transfer),
        verdict(n, 4, reduce_large, Duration::from_millis(19))
    );
    println!(
        "| broadcast 8 MiB | {} ({}) | {large_baselines} | {} | |",
        millis(bcast),
        gbps(bytes, bcast),
        ratio(bcast, transfer)
    );
    let received = bytes * (n as usize - 1);
    println!(
        "| gather 2^20 f64 per locality | {} ({} into the root) | {large_baselines} | {} | |",
        millis(gathered),
        gbps(received, gathered),
        ratio(gathered, transfer)
    );
    Ok(())
}

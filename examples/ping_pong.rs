//! Round-trip latency of a remote action carrying 8 bytes.
//!
//! Locality 0 calls the action `pong` on locality 1 with a `u64` argument
//! (8 bytes on the wire), awaits the reply, and repeats: a warm-up, then the
//! measured iterations (10 000 unless the first program argument says
//! otherwise). It prints the median, mean, minimum and 99th percentile of the
//! round-trip times in microseconds. The other localities only serve the
//! action (the program uses `#[hpx::main(root_only)]`).
//!
//! ```text
//! cargo build --release --example ping_pong --bin hpxrun
//! target/release/hpxrun -l 2 target/release/examples/ping_pong
//! target/release/hpxrun -l 2 target/release/examples/ping_pong 50000
//! ```
//!
//! Run with one locality (`cargo run --release --example ping_pong`), it says
//! so and measures a call to its own locality instead, which uses no network.

use std::time::{Duration, Instant};

use hpx::prelude::*;

/// Iterations measured when no argument is given.
const DEFAULT_ITERATIONS: usize = 10_000;
/// Calls made before measuring, to open connections and warm caches.
const WARM_UP: usize = 1_000;

/// Returns its argument: the "pong" of the ping.
#[hpx::action]
async fn pong(x: u64) -> u64 {
    x
}

/// The number of measured iterations: the first program argument, if any.
fn iterations() -> Result<usize, String> {
    match hpx::args().get(1) {
        None => Ok(DEFAULT_ITERATIONS),
        Some(arg) => match arg.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "the iteration count must be a positive integer, got {arg:?} \
                 (usage: ping_pong [ITERATIONS])"
            )),
        },
    }
}

/// Microseconds in a duration, as a float.
fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[hpx::main(root_only)]
async fn main() -> Result<(), String> {
    let iterations = iterations()?;
    let target = if hpx::get_num_localities() >= 2 {
        LocalityId(1)
    } else {
        println!(
            "ping_pong needs 2 localities to measure a network round trip \
             (run it with `hpxrun -l 2`); measuring a call to this locality instead"
        );
        hpx::find_here()
    };

    for i in 0..WARM_UP as u64 {
        let back = hpx::async_at(target, pong, i)
            .await
            .map_err(|e| e.to_string())?;
        if back != i {
            return Err(format!("pong returned {back}, expected {i}"));
        }
    }

    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations as u64 {
        let start = Instant::now();
        let back = hpx::async_at(target, pong, i)
            .await
            .map_err(|e| e.to_string())?;
        times.push(start.elapsed());
        if back != i {
            return Err(format!("pong returned {back}, expected {i}"));
        }
    }

    times.sort_unstable();
    let total: Duration = times.iter().sum();
    let median = times[times.len() / 2];
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    println!(
        "ping_pong {} -> {target}: {iterations} round trips of 8 bytes: \
         median {:.1} µs, mean {:.1} µs, min {:.1} µs, p99 {:.1} µs",
        hpx::find_here(),
        micros(median),
        micros(total) / iterations as f64,
        micros(times[0]),
        micros(p99),
    );
    Ok(())
}

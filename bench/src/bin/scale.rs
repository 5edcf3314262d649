//! Many localities on one host: how long the job takes to start, and the
//! latency of a 1,000-iteration all_reduce loop, beside a barrier loop of
//! the same job (the collective with the least data) as its baseline.
//!
//! ```text
//! cargo build --release -p hpx-bench --bin scale && cargo build --release --bin hpxrun
//! for n in 16 64 128; do target/release/hpxrun -l $n target/release/scale [ITERATIONS]; done
//! ```
//!
//! Locality 0 prints the time from its process start to the end of the
//! first barrier (every locality joined and connected to its partners), and
//! the median and 99th percentile of `ITERATIONS` (default 1000) all_reduce
//! calls of one f64 and of as many barriers.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hpx::ReduceOp;

const DEFAULT_ITERATIONS: usize = 1000;

/// Median and 99th percentile of `samples`.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Seconds since this process started (from /proc/self/stat), if known.
fn process_age() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let start_ticks: f64 = fields.get(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    // SAFETY: sysconf(3) only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(uptime - start_ticks / hz)
}

#[hpx::main]
async fn main() -> Result<(), hpx::Error> {
    let iterations: usize = hpx::args()
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS)
        .max(1);
    hpx::barrier().await?;
    let booted = process_age();
    let mut reduce = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let start = Instant::now();
        let sum = hpx::all_reduce(i as f64, ReduceOp::Sum).await?;
        reduce.push(start.elapsed());
        let want = i as f64 * f64::from(hpx::get_num_localities());
        if sum != want {
            return Err(hpx::Error::BadArgument(format!(
                "sum {sum}, expected {want}"
            )));
        }
    }
    let mut barrier = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        hpx::barrier().await?;
        barrier.push(start.elapsed());
    }
    if hpx::get_locality_id() == 0 {
        let n = hpx::get_num_localities();
        let (r50, r99) = percentiles(reduce);
        let (b50, b99) = percentiles(barrier);
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        println!(
            "{n} localities (at {stamp}): started and connected in {}; \
             all_reduce(1 f64) x{iterations}: median {:.1} us, p99 {:.1} us; \
             barrier baseline: median {:.1} us, p99 {:.1} us",
            booted.map_or("?".to_owned(), |s| format!("{s:.2} s")),
            r50.as_secs_f64() * 1e6,
            r99.as_secs_f64() * 1e6,
            b50.as_secs_f64() * 1e6,
            b99.as_secs_f64() * 1e6,
        );
    }
    Ok(())
}

//! Distributed array operations beside plain-slice baselines from the same run.
//!
//! ```text
//! cargo build --release -p hpx-bench --bin array_ops && cargo build --release --bin hpxrun
//! target/release/hpxrun -l 1 target/release/array_ops [LEN]
//! target/release/hpxrun -l 2 target/release/array_ops [LEN]
//! ```
//!
//! On locality 0, best of 5 repetitions each:
//!
//! - **fill / sum, one locality**: an array of `LEN` (default 10^8) f64 in a
//!   single partition on locality 0, against `slice.fill` and a plain
//!   `for x in slice { s += x }` loop over a `Vec` of the same length;
//! - **to_vec of 64 MiB from another locality** (with 2 or more
//!   localities): an array of 8 Mi f64 held entirely by locality 1, gathered
//!   to locality 0, in GB/s, against a `memcpy` of 64 MiB into a warm buffer
//!   and a copy into a freshly allocated one (page faults included); and
//!   the same read with `get_range_into` a buffer reused between reads (the
//!   way an MPI receive into a warm buffer is measured);
//! - **sum across all localities**: the same `LEN` elements in a block
//!   layout over every locality.
//! - **a + b into a new array, one partition**: against a plain loop that
//!   collects `x + y` into a new `Vec`;
//! - **the reproducible sum** (exact, correctly rounded: `sum`) against the
//!   plain lane-wise reduction of the same partition (`reduce(Sum)`);
//! - **inclusive scan of 10^6 i64, Cyclic and BlockCyclic(1000) against
//!   Block** (2 or more localities);
//! - **redistribution Block → Cyclic of 10^7 f64** (2 or more localities),
//!   in GB/s, against a memcpy of the same bytes.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use hpx::prelude::*;
use hpx::Error;

const DEFAULT_LEN: usize = 100_000_000;
const GATHER_BYTES: usize = 64 << 20;
const REPEAT: usize = 5;

fn best<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..REPEAT {
        let start = Instant::now();
        // black_box keeps the work inside the timed span.
        let v = std::hint::black_box(f());
        best = best.min(start.elapsed());
        out = Some(v);
    }
    (best, out.expect("REPEAT > 0"))
}

async fn best_async<T, Fut: std::future::Future<Output = Result<T, Error>>>(
    mut f: impl FnMut() -> Fut,
) -> Result<(Duration, T), Error> {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..REPEAT {
        let start = Instant::now();
        let v = f().await?;
        best = best.min(start.elapsed());
        out = Some(v);
    }
    Ok((best, out.expect("REPEAT > 0")))
}

fn gbs(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn row(measure: &str, hpx: String, baseline: String, ratio: f64, target: &str) {
    println!("| {measure:<34} | {hpx:>14} | {baseline:>24} | {ratio:>6.2} | {target:<22} |");
}

#[hpx::main(root_only)]
async fn main() -> Result<(), Error> {
    let len = match hpx::args().get(1) {
        Some(a) => a
            .parse()
            .map_err(|e| Error::BadArgument(format!("LEN {a:?}: {e}")))?,
        None => DEFAULT_LEN,
    };
    let n = hpx::get_num_localities();
    let bytes = len * 8;
    println!(
        "array_ops: {n} localities, {len} f64 ({} MB), best of {REPEAT}",
        bytes / 1_000_000
    );
    println!("| measure                            |         hpx-rs |      baseline (same run) |  ratio | target                 |");
    println!("|------------------------------------|----------------|--------------------------|--------|------------------------|");

    // One locality's partition against a plain Vec.
    let local = hpx::zeros::<f64>(len)
        .distribution(Distribution::Local)
        .await?;
    let mut plain = vec![0.0f64; len];
    let (t_fill_plain, _) = best(|| std::hint::black_box(&mut plain).fill(1.5));
    let (t_fill, _) = best_async(|| local.fill(1.5)).await?;
    row(
        "fill, one partition",
        format!("{:.2} GB/s", gbs(bytes, t_fill)),
        format!("{:.2} GB/s slice.fill", gbs(bytes, t_fill_plain)),
        t_fill_plain.as_secs_f64() / t_fill.as_secs_f64(),
        "≥ 0.8 × slice",
    );
    let (t_sum_plain, s_plain) = best(|| {
        let mut s = 0.0;
        for x in std::hint::black_box(&plain) {
            s += x;
        }
        s
    });
    let (t_sum, s_hpx) = best_async(|| local.sum()).await?;
    if (s_plain - s_hpx).abs() > 1e-9 * s_plain.abs() {
        return Err(Error::BadArgument(format!(
            "sum {s_hpx} differs from {s_plain}"
        )));
    }
    row(
        "sum, one partition",
        format!("{:.2} GB/s", gbs(bytes, t_sum)),
        format!("{:.2} GB/s plain loop", gbs(bytes, t_sum_plain)),
        t_sum_plain.as_secs_f64() / t_sum.as_secs_f64(),
        "≥ 0.8 × slice",
    );
    let (t_plain_reduce, s_lanes) = best_async(|| local.reduce(ReduceOp::Sum)).await?;
    if s_lanes.map_or(true, |s| (s - s_hpx).abs() > 1e-9 * s_hpx.abs()) {
        return Err(Error::BadArgument(format!(
            "lane sum {s_lanes:?} differs from {s_hpx}"
        )));
    }
    row(
        "  exact sum against the lane sum",
        format!("{:.2} GB/s", gbs(bytes, t_sum)),
        format!("{:.2} GB/s reduce(Sum)", gbs(bytes, t_plain_reduce)),
        t_plain_reduce.as_secs_f64() / t_sum.as_secs_f64(),
        "cost of reproducibility",
    );
    let other = hpx::full(len, 0.25f64)
        .distribution(Distribution::Local)
        .await?;
    let second = vec![0.25f64; len];
    let (t_add_plain, _) = best(|| {
        let out: Vec<f64> = std::hint::black_box(&plain)
            .iter()
            .zip(&second)
            .map(|(x, y)| x + y)
            .collect();
        out
    });
    let (t_add, _) = best_async(|| (&local + &other).into_future()).await?;
    row(
        "a + b into a new array, one partition",
        format!("{:.2} GB/s", gbs(2 * bytes, t_add)),
        format!("{:.2} GB/s collect(x + y)", gbs(2 * bytes, t_add_plain)),
        t_add_plain.as_secs_f64() / t_add.as_secs_f64(),
        "≥ 0.8 × slice",
    );
    drop(other);
    drop(second);
    drop(local);
    drop(plain);

    if n > 1 {
        let count = GATHER_BYTES / 8;
        let remote = hpx::zeros::<f64>(count)
            .distribution(Distribution::Explicit {
                sizes: vec![count],
                localities: vec![LocalityId(1)],
            })
            .await?;
        remote.fill(2.5).await?;
        let source = vec![2.5f64; count];
        let mut target = vec![0.0f64; count];
        let (t_copy, _) = best(|| std::hint::black_box(&mut target).copy_from_slice(&source));
        let (t_cold, _) = best(|| {
            let mut fresh = Vec::<f64>::with_capacity(count);
            fresh.extend_from_slice(&source);
            fresh
        });
        let (t_gather, got) = best_async(|| remote.to_vec()).await?;
        if got != source {
            return Err(Error::BadArgument("to_vec returned other values".into()));
        }
        row(
            "to_vec of 64 MiB from locality 1",
            format!("{:.2} GB/s", gbs(GATHER_BYTES, t_gather)),
            format!("{:.2} GB/s memcpy", gbs(GATHER_BYTES, t_copy)),
            t_copy.as_secs_f64() / t_gather.as_secs_f64(),
            "≥ 2 GB/s",
        );
        let mut into = vec![0.0f64; count];
        let mut t_into = Duration::MAX;
        for _ in 0..REPEAT {
            let start = Instant::now();
            remote.get_range_into(0, &mut into).await?;
            t_into = t_into.min(start.elapsed());
        }
        if into != source {
            return Err(Error::BadArgument(
                "get_range_into wrote other values".into(),
            ));
        }
        row(
            "  the same into a reused buffer (get_range_into)",
            format!("{:.2} GB/s", gbs(GATHER_BYTES, t_into)),
            format!("{:.2} GB/s memcpy", gbs(GATHER_BYTES, t_copy)),
            t_copy.as_secs_f64() / t_into.as_secs_f64(),
            "",
        );
        row(
            "  (the same against a fresh buffer)",
            format!("{:.2} GB/s", gbs(GATHER_BYTES, t_gather)),
            format!("{:.2} GB/s copy to new Vec", gbs(GATHER_BYTES, t_cold)),
            t_cold.as_secs_f64() / t_gather.as_secs_f64(),
            "",
        );
        drop(remote);
        let spread = hpx::full(len, 0.5f64)
            .distribution(Distribution::Block)
            .await?;
        let (t_spread, total) = best_async(|| spread.sum()).await?;
        if (total - 0.5 * len as f64).abs() > 1e-6 * len as f64 {
            return Err(Error::BadArgument(format!("sum across localities {total}")));
        }
        drop(spread);
        let scan_len = 1_000_000;
        let block = hpx::from_vec((0..scan_len as i64).collect(), Distribution::Block).await?;
        let cyclic = hpx::from_vec((0..scan_len as i64).collect(), Distribution::Cyclic).await?;
        let (t_block, _) = best_async(|| block.inclusive_scan(ReduceOp::Sum)).await?;
        let (t_cyclic, _) = best_async(|| cyclic.inclusive_scan(ReduceOp::Sum)).await?;
        if block.get(scan_len - 1).await? != cyclic.get(scan_len - 1).await? {
            return Err(Error::BadArgument("scans differ between layouts".into()));
        }
        row(
            "inclusive scan 10^6 i64, Cyclic",
            format!("{:.2} ms", t_cyclic.as_secs_f64() * 1e3),
            format!("{:.2} ms Block", t_block.as_secs_f64() * 1e3),
            t_block.as_secs_f64() / t_cyclic.as_secs_f64(),
            "≥ 0.33 × Block",
        );
        let chunked = hpx::from_vec(
            (0..scan_len as i64).collect(),
            Distribution::BlockCyclic(1000),
        )
        .await?;
        let (t_chunked, _) = best_async(|| chunked.inclusive_scan(ReduceOp::Sum)).await?;
        if chunked.get(scan_len - 1).await? != block.get(scan_len - 1).await? {
            return Err(Error::BadArgument("scans differ between layouts".into()));
        }
        row(
            "inclusive scan 10^6 i64, BlockCyclic(1000)",
            format!("{:.2} ms", t_chunked.as_secs_f64() * 1e3),
            format!("{:.2} ms Block", t_block.as_secs_f64() * 1e3),
            t_block.as_secs_f64() / t_chunked.as_secs_f64(),
            "≥ 0.33 × Block",
        );
        drop(chunked);
        drop(block);
        drop(cyclic);
        let moved = 10_000_000usize;
        let source = hpx::full(moved, 1.25f64)
            .distribution(Distribution::Block)
            .await?;
        let spec = hpx::LayoutSpec {
            shape: vec![moved],
            distribution: Distribution::Cyclic,
            over: (0..n).map(LocalityId).collect(),
            grid: None,
        };
        let plain = vec![1.25f64; moved];
        let mut into = vec![0.0f64; moved];
        let (t_memcpy, _) = best(|| std::hint::black_box(&mut into).copy_from_slice(&plain));
        let (t_move, cyclic) = best_async(|| source.redistribute(spec.clone())).await?;
        if cyclic.get(moved - 1).await? != 1.25 {
            return Err(Error::BadArgument("redistribution lost values".into()));
        }
        row(
            "redistribute 10^7 f64 Block → Cyclic",
            format!("{:.2} GB/s", gbs(moved * 8, t_move)),
            format!("{:.2} GB/s memcpy", gbs(moved * 8, t_memcpy)),
            t_memcpy.as_secs_f64() / t_move.as_secs_f64(),
            "",
        );
        row(
            &format!("sum, block over {n} localities"),
            format!("{:.2} GB/s", gbs(bytes, t_spread)),
            format!("{:.2} GB/s one partition", gbs(bytes, t_sum)),
            t_sum.as_secs_f64() / t_spread.as_secs_f64(),
            "",
        );
    }
    Ok(())
}

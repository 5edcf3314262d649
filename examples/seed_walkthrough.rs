//! Every line of the seed's distributed-array API (HPXPy phases 3 and 4),
//! in Rust, run SPMD: each locality makes the same calls and gets the same
//! shared arrays; each prints the figures the seed asks for.
//!
//! ```text
//! cargo build --release --examples --bins
//! target/release/hpxrun -l 4 target/release/examples/seed_walkthrough
//! ```

use hpx::prelude::*;
use hpx::Error;

#[hpx::main]
async fn main() -> Result<(), Error> {
    let me = hpx::get_locality_id();
    let n = hpx::get_num_localities();
    let say = |line: String| println!("locality {me}/{n}: {line}");

    // arr = hpx.zeros((10000,), distribution='block')
    let arr = hpx::zeros::<f64>(10_000)
        .distribution(Distribution::Block)
        .collective()
        .await?;
    say(format!(
        "block: is_distributed={} num_partitions={} partition_sizes={:?} localities={:?}",
        arr.is_distributed(),
        arr.num_partitions(),
        arr.partition_sizes(),
        arr.localities().iter().map(|l| l.0).collect::<Vec<_>>()
    ));

    // arr = hpx.zeros((10000,), chunks=1000)
    let arr = hpx::zeros::<f64>(10_000).chunks(1000).collective().await?;
    say(format!(
        "chunks=1000: num_partitions={} partition_sizes={:?}",
        arr.num_partitions(),
        arr.partition_sizes()
    ));

    // arr.local_partition: this locality's elements, zero-copy.
    let local: usize = arr.local_partitions().iter().map(|p| p.len()).sum();
    say(format!(
        "local partitions {} holding {local} elements",
        arr.local_partitions().len()
    ));

    // local_arr = arr.to_numpy(): the whole array, gathered.
    let gathered = arr.to_vec().await?;
    say(format!("gathered length {}", gathered.len()));

    // arr = hpx.from_numpy(data, distribution='block')
    let data: Vec<f64> = (0..10_000).map(f64::from).collect();
    let a = hpx::array(data.clone())
        .distribution(Distribution::Block)
        .collective()
        .await?;
    let b = hpx::ones::<f64>(10_000)
        .distribution(Distribution::Cyclic)
        .collective()
        .await?;

    // Phase 4: operations run where the data lives; a and b have different
    // layouts, so b moves to a's layout in bulk first.
    let c = (&a + &b).await?;
    let total = c.sum().await?;
    say(format!(
        "(a + b).sum() = {total} (serial {})",
        data.iter().map(|x| x + 1.0).sum::<f64>()
    ));
    say(format!(
        "a.mean() = {}, a.argmax() = {:?}",
        a.mean().await?,
        a.argmax().await?
    ));

    // hpx.all_reduce(arr, op='sum'): every locality gets the sum.
    let everywhere = c.all_reduce(ReduceOp::Sum).await?;
    // hpx.broadcast / gather / scatter / barrier on plain values.
    let from_root = hpx::broadcast((me == 0).then(|| "hello from 0".to_owned()), 0).await?;
    let sizes = hpx::gather(local as u64, 0).await?;
    let share = hpx::scatter(
        (me == 0).then(|| (0..n).map(|i| i * 10).collect::<Vec<u32>>()),
        0,
    )
    .await?;
    hpx::barrier().await?;
    say(format!(
        "all_reduce={everywhere:?} broadcast={from_root:?} scatter={share} gather={sizes:?}"
    ));
    Ok(())
}

//! A walk through the distributed array API: creation with each
//! distribution, introspection, element access, work where the data lives,
//! gathering, and local views.
//!
//! ```text
//! cargo build --release --examples --bins
//! target/release/hpxrun -l 4 target/release/examples/distributed_array
//! ```

use hpx::prelude::*;
use hpx::{Error, PartitionRef, ReduceOp};

#[hpx::element_fn(map)]
fn square(x: f64) -> f64 {
    x * x
}

#[hpx::element_fn(index)]
fn index_times_ten(i: usize) -> i64 {
    10 * i as i64
}

#[hpx::element_fn(predicate)]
fn is_even(x: i64) -> bool {
    x % 20 == 0
}

/// Runs on each partition's owner with a zero-copy view of its elements.
#[hpx::action]
async fn describe(part: PartitionRef<f64>, label: String) -> Result<String, Error> {
    let view = part.view().await?;
    let first = part.global_index(0).ok();
    Ok(format!(
        "{label}: partition {} on locality {} holds {} elements, first global index {first:?}, local sum {}",
        part.index(),
        hpx::find_here(),
        view.len(),
        view.iter().sum::<f64>()
    ))
}

fn show<T: hpx::Numeric>(name: &str, a: &PartitionedVector<T>) {
    println!(
        "{name:>6}: {} elements, {:?}, distributed: {}, partitions {} of sizes {:?} on {:?}",
        a.len(),
        a.distribution(),
        a.is_distributed(),
        a.num_partitions(),
        a.partition_sizes(),
        a.localities()
    );
}

#[hpx::main(root_only)]
async fn main() -> Result<(), Error> {
    let n = 10;
    let a = hpx::zeros::<f64>(n)
        .distribution(Distribution::Block)
        .await?;
    let b = hpx::ones::<f64>(n).chunks(3).await?;
    let c = hpx::full::<i64>(n, 7)
        .distribution(Distribution::Cyclic)
        .await?;
    let d = hpx::from_vec((0..n).map(|i| i as f64).collect(), Distribution::Block).await?;
    let e = hpx::from_fn(n, index_times_ten).await?;
    let last = LocalityId(hpx::get_num_localities() - 1);
    let f = hpx::zeros::<u8>(n)
        .distribution(Distribution::Explicit {
            sizes: vec![2, 8],
            localities: vec![last, LocalityId(0)],
        })
        .await?;
    let m = hpx::ones::<i32>(12).shape([3, 4]).await?;
    show("zeros", &a);
    show("ones", &b);
    show("full", &c);
    show("vec", &d);
    show("fn", &e);
    show("expl", &f);
    show("matrix", &m);
    println!(
        "matrix shape {:?}, element [2, 1] is flat index {}",
        m.shape(),
        m.flat_index(&[2, 1])?
    );

    d.set(3, 30.0).await?;
    println!(
        "d[3] = {}, d[4..7] = {:?}",
        d.get(3).await?,
        d.get_range(4..7).await?
    );
    match d.get(n).await {
        Err(e) => println!("d[{n}] is an error: {e}"),
        Ok(v) => println!("d[{n}] = {v}?"),
    }
    d.map_inplace(square).await?;
    println!("d squared: {:?}", d.to_vec().await?);
    println!(
        "d: sum {}, min {:?}, max {:?}, d·b {}",
        d.sum().await?,
        d.min().await?,
        d.max().await?,
        d.dot(
            &hpx::ones::<f64>(n)
                .distribution(Distribution::Block)
                .await?
        )
        .await?
    );
    c.inclusive_scan(ReduceOp::Sum).await?;
    println!("running sum of c: {:?}", c.to_vec().await?);
    println!(
        "e = {:?}, multiples of 20: {}",
        e.to_vec().await?,
        e.count_if(is_even).await?
    );
    for line in d.for_each(describe, "d".to_owned()).await? {
        println!("{line}");
    }
    let local = a.local_partition().await?;
    println!(
        "locality 0's partition of a, viewed in place: {:?}",
        &*local
    );
    Ok(())
}

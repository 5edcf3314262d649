//! HPX's classic 1-d heat diffusion on a partitioned vector.
//!
//! Every locality owns one block of the rod. Each step it reads the two
//! neighbouring values (halo exchange through the array), updates its block
//! in place, zero-copy, and contributes its largest change to a global
//! residual with `all_reduce`, which also keeps the localities in step. Two
//! arrays alternate as the old and the new state. At the end, locality 0
//! compares the result with a serial run of the same arithmetic: the bits
//! must be identical.
//!
//! ```text
//! cargo build --release --examples --bins
//! target/release/hpxrun -l 4 target/release/examples/stencil_1d [POINTS] [STEPS]
//! ```

use hpx::prelude::*;
use hpx::{Error, ReduceOp};

/// Heat transfer coefficient (dt · k / dx², stable below 0.5).
const K: f64 = 0.4;

/// Initial temperature: a hot spot in the middle of a cold rod.
#[hpx::element_fn(index)]
fn initial(i: usize) -> f64 {
    if (400..600).contains(&(i % 1000)) {
        100.0
    } else {
        0.0
    }
}

/// The new temperature of a point from its neighbours.
fn heat(left: f64, middle: f64, right: f64) -> f64 {
    middle + K * (left - 2.0 * middle + right)
}

/// The same computation on one process.
fn serial(points: usize, steps: usize) -> Vec<f64> {
    let mut cur: Vec<f64> = (0..points).map(initial::call).collect();
    let mut next = cur.clone();
    for _ in 0..steps {
        for i in 1..points.saturating_sub(1) {
            next[i] = heat(cur[i - 1], cur[i], cur[i + 1]);
        }
        std::mem::swap(&mut cur, &mut next);
    }
    cur
}

fn arg(i: usize, default: usize) -> Result<usize, Error> {
    match hpx::args().get(i) {
        Some(a) => a
            .parse()
            .map_err(|e| Error::BadArgument(format!("argument {i} ({a:?}): {e}"))),
        None => Ok(default),
    }
}

#[hpx::main]
async fn main() -> Result<(), Error> {
    let points = arg(1, 100_000)?;
    let steps = arg(2, 200)?;
    let me = hpx::get_locality_id();
    // Locality 0 creates both states and shares them by name.
    let (mut cur, mut next) = if me == 0 {
        let a = hpx::from_fn(points, initial)
            .distribution(Distribution::Block)
            .await?;
        let b = hpx::from_fn(points, initial)
            .distribution(Distribution::Block)
            .await?;
        a.register_as("stencil/a").await?;
        b.register_as("stencil/b").await?;
        (a, b)
    } else {
        (
            PartitionedVector::<f64>::connect_to("stencil/a").await?,
            PartitionedVector::<f64>::connect_to("stencil/b").await?,
        )
    };
    // This locality's block: global indices start..end.
    let part = cur.local_partitions().into_iter().next();
    let (start, len) = match &part {
        Some(p) if !p.is_empty() => (p.global_index(0)?, p.len()),
        _ => (0, 0),
    };
    let end = start + len;
    let mut residual = 0.0;
    for _ in 0..steps {
        let mut change = 0.0f64;
        if len > 0 {
            // Halo exchange: the values just outside this block.
            let left = if start > 0 {
                Some(cur.get(start - 1).await?)
            } else {
                None
            };
            let right = if end < points {
                Some(cur.get(end).await?)
            } else {
                None
            };
            let old = cur.local_partition().await?;
            let mut new = next.local_partition_mut().await?;
            for j in 0..len {
                let i = start + j;
                if i == 0 || i == points - 1 {
                    new[j] = old[j];
                    continue;
                }
                let l = if j == 0 {
                    left.unwrap_or(old[j])
                } else {
                    old[j - 1]
                };
                let r = if j + 1 == len {
                    right.unwrap_or(old[j])
                } else {
                    old[j + 1]
                };
                new[j] = heat(l, old[j], r);
                change = change.max((new[j] - old[j]).abs());
            }
        }
        // The global residual; every locality has finished the step when it returns.
        residual = hpx::all_reduce(change, ReduceOp::Max).await?;
        std::mem::swap(&mut cur, &mut next);
    }
    if me == 0 {
        let distributed = cur.to_vec().await?;
        let reference = serial(points, steps);
        let identical = distributed.len() == reference.len()
            && distributed
                .iter()
                .zip(&reference)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        println!(
            "stencil_1d: {points} points, {steps} steps on {} localities, last residual {residual:.6e}, \
             total heat {:.6}, identical to the serial run: {identical}",
            hpx::get_num_localities(),
            distributed.iter().sum::<f64>()
        );
        if !identical {
            return Err(Error::BadArgument(
                "the distributed result differs from the serial one".into(),
            ));
        }
    }
    Ok(())
}

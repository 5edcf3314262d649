//! The dot product of two distributed vectors of 10^7 doubles: each locality
//! multiplies its own partitions, only the partial sums travel.
//!
//! ```text
//! cargo build --release --examples --bins
//! target/release/hpxrun -l 4 target/release/examples/dot_product [LEN]
//! ```

use std::time::Instant;

use hpx::prelude::*;
use hpx::Error;

#[hpx::element_fn(index)]
fn ramp(i: usize) -> f64 {
    (i % 1000) as f64 * 0.001
}

#[hpx::main(root_only)]
async fn main() -> Result<(), Error> {
    let len = match hpx::args().get(1) {
        Some(a) => a
            .parse()
            .map_err(|e| Error::BadArgument(format!("LEN {a:?}: {e}")))?,
        None => 10_000_000,
    };
    let start = Instant::now();
    let x = hpx::from_fn(len, ramp)
        .distribution(Distribution::Block)
        .await?;
    let y = hpx::full(len, 2.0f64)
        .distribution(Distribution::Block)
        .await?;
    let created = start.elapsed();
    let start = Instant::now();
    let dot = x.dot(&y).await?;
    let took = start.elapsed();
    let expected: f64 = (0..len).map(|i| (i % 1000) as f64 * 0.001 * 2.0).sum();
    println!(
        "dot of {len} elements on {} localities = {dot:.6} (serial {expected:.6}) in {:.2} ms; arrays created in {:.2} ms",
        hpx::get_num_localities(),
        took.as_secs_f64() * 1e3,
        created.as_secs_f64() * 1e3
    );
    if (dot - expected).abs() > 1e-6 * expected.abs().max(1.0) {
        return Err(Error::BadArgument(format!(
            "dot {dot} differs from the serial {expected}"
        )));
    }
    Ok(())
}

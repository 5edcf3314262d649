//! The README's first program, exactly as it is printed there: every
//! locality asks the next one (round robin) to square 3.
//!
//! ```text
//! cargo build --release --examples --bins
//! target/release/hpxrun -l 4 target/release/examples/square
//! ```
//!
//! `scripts/run-examples.sh` checks that the README's block is this file's
//! program, line for line, and runs it.

use hpx::prelude::*;

#[hpx::action]
async fn square(x: u64) -> u64 {
    x * x
}

#[hpx::main]
async fn main() -> Result<(), hpx::Error> {
    let next = LocalityId((hpx::get_locality_id() + 1) % hpx::get_num_localities());
    let nine = hpx::async_at(next, square, 3).await?; // runs on `next`
    println!("locality {} got {nine}", hpx::find_here());
    Ok(())
}

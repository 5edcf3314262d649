//! Every collective operation once, printing what each locality gets.
//!
//! ```text
//! cargo build --release --example collectives --bin hpxrun
//! target/release/hpxrun -l 4 target/release/examples/collectives
//! ```
//!
//! Each locality contributes values derived from its id; the lines are
//! prefixed with the locality by hpxrun, so their order between localities
//! may vary. Run plainly (`cargo run --example collectives`) it is one
//! locality, and every operation returns that locality's own contribution.

use hpx::prelude::*;
use hpx::CustomOp;

/// The largest value and the locality holding it (MPI's MAXLOC): a
/// user-defined reduction, registered by implementing [`CustomOp`].
struct MaxLoc;

impl CustomOp for MaxLoc {
    type Value = (f64, u32);
    const NAME: &'static str = "examples::collectives::MaxLoc";
    fn combine(lower: (f64, u32), upper: (f64, u32)) -> (f64, u32) {
        if upper.0 > lower.0 {
            upper
        } else {
            lower
        }
    }
}

#[hpx::main]
async fn main() -> Result<(), hpx::Error> {
    let me = hpx::get_locality_id();
    let n = hpx::get_num_localities();
    let here = format!("locality {me} of {n}:");

    let sum: f64 = hpx::all_reduce(f64::from(me) + 0.5, ReduceOp::Sum).await?;
    println!("{here} all_reduce(id + 0.5, sum) = {sum}");
    let max: Vec<u32> = hpx::all_reduce(vec![me, 10 * me, 7], ReduceOp::Max).await?;
    println!("{here} all_reduce([id, 10 id, 7], max) = {max:?}");
    let xor: u8 = hpx::all_reduce(1u8 << me, ReduceOp::BitXor).await?;
    println!("{here} all_reduce(1 << id, xor) = {xor:#010b}");
    let best = hpx::all_reduce((f64::from((me * 7) % 5), me), MaxLoc).await?;
    println!("{here} all_reduce((id * 7 % 5, id), MaxLoc) = {best:?}");

    let root = n - 1;
    let product = hpx::reduce(u64::from(me) + 1, ReduceOp::Prod, root).await?;
    println!("{here} reduce(id + 1, prod) to {root} = {product:?}");

    let greeting = (me == 0).then(|| format!("hello from locality 0 to all {n}"));
    let greeting: String = hpx::broadcast(greeting, 0).await?;
    println!("{here} broadcast from 0 = {greeting:?}");

    let names = hpx::gather(format!("L{me}"), 0).await?;
    println!("{here} gather to 0 = {names:?}");

    let work = (me == 0).then(|| (0..n).map(|i| i * 100).collect::<Vec<u32>>());
    let mine: u32 = hpx::scatter(work, 0).await?;
    println!("{here} scatter from 0 = {mine}");

    let everyone: Vec<u32> = hpx::all_gather(me * me).await?;
    println!("{here} all_gather(id^2) = {everyone:?}");

    let letters: Vec<String> = (0..n).map(|to| format!("{me}->{to}")).collect();
    let received = hpx::all_to_all(letters).await?;
    println!("{here} all_to_all = {received:?}");

    let prefix = hpx::inclusive_scan(u64::from(me) + 1, ReduceOp::Sum).await?;
    println!("{here} inclusive_scan(id + 1, sum) = {prefix}");
    let before = hpx::exclusive_scan(u64::from(me) + 1, ReduceOp::Sum).await?;
    println!("{here} exclusive_scan(id + 1, sum) = {before:?}");

    hpx::barrier().await?;
    println!("{here} passed the barrier");

    // A sub-group of the even localities, created by its members only.
    if me % 2 == 0 {
        let evens: Vec<LocalityId> = (0..n).step_by(2).map(LocalityId).collect();
        let comm = Communicator::new("evens", &evens).await?;
        let total = comm.all_reduce(me, ReduceOp::Sum).await?;
        println!(
            "{here} rank {} of {} in {:?}: all_reduce(id, sum) = {total}",
            comm.rank(),
            comm.size(),
            comm.name()
        );
    }
    Ok(())
}

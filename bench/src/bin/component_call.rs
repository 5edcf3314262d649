//! Latency of component actions and of name resolution, beside a plain
//! action round trip measured in the same run.
//!
//! ```text
//! cargo build --release -p hpx-bench --bin component_call && cargo build --release --bin hpxrun
//! target/release/hpxrun -l 2 target/release/component_call [CALLS]
//! ```
//!
//! Locality 0 measures against locality 1 (medians of `CALLS`, default
//! 20 000, after a warm-up; the kinds alternate in blocks so drift affects
//! all alike):
//!
//! - **plain action**: an 8-byte action on locality 1 (the baseline);
//! - **component action, shared**: `&T` access to a component on locality 1;
//! - **component action, exclusive**: `&mut T` access (takes the write lock);
//! - **resolve_name, cold**: names registered beforehand, each resolved once,
//!   apart for names held by locality 1 (a round trip) and by locality 0;
//! - **resolve_name, cached**: the same names again, from this locality's cache.

use std::time::{Duration, Instant};

use hpx::prelude::*;
use hpx::{agas, Error};
use serde::{Deserialize, Serialize};

const DEFAULT_CALLS: usize = 20_000;
const WARM_UP: usize = 2_000;
const BLOCKS: usize = 4;
const NAMES: usize = 4_000;

#[hpx::component]
#[derive(Serialize, Deserialize, Default)]
struct Cell {
    value: u64,
}

#[hpx::action]
async fn peek(cell: &Cell, x: u64) -> u64 {
    cell.value ^ x
}

#[hpx::action]
async fn poke(cell: &mut Cell, x: u64) -> u64 {
    cell.value = x;
    x
}

#[hpx::action]
async fn echo(x: u64) -> u64 {
    x
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

async fn time<F, Fut>(count: usize, mut f: F) -> Result<Vec<Duration>, Error>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, Error>>,
{
    let mut out = Vec::with_capacity(count);
    for i in 0..count as u64 {
        let start = Instant::now();
        let got = f(i).await?;
        out.push(start.elapsed());
        if got == u64::MAX {
            return Err(Error::BadArgument("impossible reply".into()));
        }
    }
    Ok(out)
}

#[hpx::main]
async fn main() -> Result<(), Error> {
    if hpx::get_locality_id() != 0 {
        return Ok(());
    }
    let calls = match hpx::args().get(1) {
        None => DEFAULT_CALLS,
        Some(a) => a
            .parse()
            .map_err(|e| Error::BadArgument(format!("CALLS {a:?}: {e}")))?,
    };
    let n = hpx::get_num_localities();
    let peer = LocalityId(if n > 1 { 1 } else { 0 });
    let cell = hpx::new_component(peer, Cell::default()).await?;
    let per_block = calls.div_ceil(BLOCKS);
    time(WARM_UP, |i| hpx::async_at(peer, echo, i)).await?;
    time(WARM_UP, |i| cell.call(peek, i)).await?;
    let (mut plain, mut shared, mut exclusive) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..BLOCKS {
        plain.extend(time(per_block, |i| hpx::async_at(peer, echo, i)).await?);
        shared.extend(time(per_block, |i| cell.call(peek, i)).await?);
        exclusive.extend(time(per_block, |i| cell.call(poke, i)).await?);
    }
    for i in 0..NAMES {
        agas::register_name(&format!("bench/{i}"), cell.gid()).await?;
    }
    let (mut cold_remote, mut cold_local) = (Vec::new(), Vec::new());
    let mut cached = Vec::with_capacity(NAMES);
    for i in 0..NAMES {
        let name = format!("bench/{i}");
        let start = Instant::now();
        agas::resolve_name(&name).await?;
        let took = start.elapsed();
        if agas::name_home(&name)? == hpx::find_here() {
            cold_local.push(took);
        } else {
            cold_remote.push(took);
        }
        let start = Instant::now();
        agas::resolve_name(&name).await?;
        cached.push(start.elapsed());
    }
    let base = median(plain);
    println!("component_call: {n} localities, component on locality {peer}, {calls} calls of each kind, {NAMES} names");
    println!("| measure | median | plain action (same run) | ratio |");
    println!("|---|---:|---:|---:|");
    for (label, v) in [
        ("component action, shared (&T)", median(shared)),
        ("component action, exclusive (&mut T)", median(exclusive)),
        (
            "resolve_name, cold, name held remotely",
            median(cold_remote),
        ),
        ("resolve_name, cold, name held here", median(cold_local)),
        ("resolve_name, cached", median(cached)),
    ] {
        println!("| {label} | {v:.2} µs | {base:.2} µs | {:.2} |", v / base);
    }
    Ok(())
}

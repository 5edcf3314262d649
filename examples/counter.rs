//! A component incremented concurrently by every locality.
//!
//! Locality 0 creates a `Counter` on the last locality and registers it as
//! `"counter"`; every locality connects to it by name and adds 1000 in
//! parallel calls; locality 0 prints the total.
//!
//! ```text
//! cargo build --release --examples --bins
//! target/release/hpxrun -l 4 target/release/examples/counter
//! ```

use std::time::Duration;

use hpx::prelude::*;
use serde::{Deserialize, Serialize};

/// The shared object: lives on one locality, changed only through actions.
#[hpx::component]
#[derive(Serialize, Deserialize, Default)]
struct Counter {
    value: u64,
    calls: u64,
}

/// Exclusive access (`&mut`): calls from many localities are serialized on the owner.
#[hpx::action]
async fn add(counter: &mut Counter, amount: u64) -> u64 {
    counter.value += amount;
    counter.calls += 1;
    counter.value
}

/// Shared access (`&`).
#[hpx::action]
async fn total(counter: &Counter) -> (u64, u64) {
    (counter.value, counter.calls)
}

const PER_LOCALITY: u64 = 1000;

#[hpx::main]
async fn main() -> Result<(), hpx::Error> {
    let here = hpx::get_locality_id();
    let n = hpx::get_num_localities();
    let counter = if here == 0 {
        let c = hpx::new_component(LocalityId(n - 1), Counter::default()).await?;
        c.register_as("counter").await?;
        c
    } else {
        Component::<Counter>::connect_to("counter").await?
    };
    let calls: Vec<_> = (0..PER_LOCALITY).map(|_| counter.call(add, 1)).collect();
    for result in futures::future::join_all(calls).await {
        result?;
    }
    // Everyone says it is done by registering a name; locality 0 waits for all.
    let gid = counter.gid();
    hpx::agas::register_name(&format!("counter/done/{here}"), gid).await?;
    if here == 0 {
        for l in 0..n {
            hpx::agas::wait_for_name(&format!("counter/done/{l}"), Duration::from_secs(30)).await?;
        }
        let (value, calls) = counter.call(total, ()).await?;
        println!(
            "counter {} on locality {}: total {value} from {calls} calls by {n} localities (expected {})",
            counter.gid(),
            counter.owner(),
            PER_LOCALITY * u64::from(n)
        );
    }
    Ok(())
}

//! The symbol namespace: one locality registers a name, the others resolve it.
//!
//! Locality 0 creates a `Greeting` component on itself and registers it as
//! `"greeting"`; every other locality waits for the name, resolves it to a
//! global id, connects to the component and calls it. Then locality 0 lists
//! the names and unregisters them.
//!
//! ```text
//! cargo build --release --examples --bins
//! target/release/hpxrun -l 3 target/release/examples/names
//! ```

use std::time::Duration;

use hpx::prelude::*;
use hpx::{agas, Error};
use serde::{Deserialize, Serialize};

#[hpx::component]
#[derive(Serialize, Deserialize)]
struct Greeting {
    text: String,
}

#[hpx::action]
async fn greet(g: &Greeting, who: u32) -> String {
    format!(
        "{} (said by locality {} to locality {who})",
        g.text,
        hpx::get_locality_id()
    )
}

#[hpx::main]
async fn main() -> Result<(), Error> {
    let here = hpx::get_locality_id();
    let n = hpx::get_num_localities();
    if here == 0 {
        let g = hpx::new_component(
            hpx::find_here(),
            Greeting {
                text: "hello".into(),
            },
        )
        .await?;
        g.register_as("greeting").await?;
        println!("registered \"greeting\" as {}", g.gid());
        // Wait until everyone has used it, then clean up.
        for l in 1..n {
            agas::wait_for_name(&format!("greeted/{l}"), Duration::from_secs(30)).await?;
        }
        for (name, gid) in agas::list_names("").await? {
            println!("name {name:<12} -> {gid}");
        }
        agas::unregister_name("greeting").await?;
        for l in 1..n {
            agas::unregister_name(&format!("greeted/{l}")).await?;
        }
    } else {
        let gid = agas::wait_for_name("greeting", Duration::from_secs(30)).await?;
        let g = Component::<Greeting>::connect_to("greeting").await?;
        println!(
            "resolved \"greeting\" to {gid}: {}",
            g.call(greet, here).await?
        );
        agas::register_name(&format!("greeted/{here}"), gid).await?;
    }
    Ok(())
}

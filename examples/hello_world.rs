//! Prints one line per locality.
//!
//! ```text
//! cargo run --release --example hello_world
//! cargo run --release --bin hpxrun -- -l 4 target/release/examples/hello_world
//! ```

#[hpx::main]
async fn main() {
    println!(
        "hello world from locality {} of {}",
        hpx::get_locality_id(),
        hpx::get_num_localities()
    );
}

//! Distributed recursive Fibonacci, the way HPX's classic example does it.
//!
//! The action `fib(n, threshold)` computes `fib(n - 1)` on the next locality
//! (round robin: `(here + 1) % N`) with `hpx::async_at`, and `fib(n - 2)`
//! meanwhile on its own locality by running the body directly, without a
//! message. Below the threshold it computes serially, so that each action
//! does enough work to be worth a message. Locality 0 computes `fib(N)`, prints the result and the
//! time taken, and checks it against an iterative computation (exiting with an
//! error if they differ). The other localities serve actions.
//!
//! ```text
//! cargo build --release --example fibonacci --bin hpxrun
//! target/release/hpxrun -l 4 target/release/examples/fibonacci            # fib(22), threshold 15
//! target/release/hpxrun -l 2 target/release/examples/fibonacci 25 18      # fib(25), threshold 18
//! cargo run --release --example fibonacci -- 20                          # one locality
//! ```

use std::time::Instant;

use futures::future::BoxFuture;
use hpx::prelude::*;

/// `N` when no argument is given.
const DEFAULT_N: u64 = 22;
/// The threshold when no second argument is given.
const DEFAULT_THRESHOLD: u64 = 15;
/// The largest `N` whose Fibonacci number fits in a `u64`.
const MAX_N: u64 = 93;

/// Plain recursive Fibonacci, used below the threshold.
fn fib_serial(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_serial(n - 1) + fib_serial(n - 2)
    }
}

/// Iterative Fibonacci, the reference the result is checked against.
fn fib_iterative(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// Fibonacci of `n`: serial below `threshold`, otherwise `fib(n - 1)` on the
/// next locality and `fib(n - 2)` here, concurrently.
#[hpx::action]
async fn fib(n: u64, threshold: u64) -> Result<u64, hpx::Error> {
    fib_here(n, threshold).await
}

/// The body of [`fib`] as a boxed future, so that it can recurse into itself
/// for `fib(n - 2)` on this locality (a recursive `async fn` needs a box).
fn fib_here(n: u64, threshold: u64) -> BoxFuture<'static, Result<u64, hpx::Error>> {
    Box::pin(async move {
        if n < threshold.max(2) {
            return Ok(fib_serial(n));
        }
        let next = LocalityId((hpx::get_locality_id() + 1) % hpx::get_num_localities());
        let remote = hpx::async_at(next, fib, (n - 1, threshold));
        let (a, b) = futures::join!(remote, fib_here(n - 2, threshold));
        Ok(a? + b?)
    })
}

/// Parses program argument `index`, or returns `default` if it is absent.
fn arg(index: usize, name: &str, default: u64) -> Result<u64, String> {
    match hpx::args().get(index) {
        None => Ok(default),
        Some(text) => text.parse::<u64>().map_err(|_| {
            format!("{name} must be a non-negative integer, got {text:?} (usage: fibonacci [N] [THRESHOLD])")
        }),
    }
}

#[hpx::main(root_only)]
async fn main() -> Result<(), String> {
    let n = arg(1, "N", DEFAULT_N)?;
    let threshold = arg(2, "THRESHOLD", DEFAULT_THRESHOLD)?;
    if n > MAX_N {
        return Err(format!(
            "N must be at most {MAX_N} (fib({}) does not fit in 64 bits), got {n}",
            MAX_N + 1
        ));
    }
    let localities = hpx::get_num_localities();

    let start = Instant::now();
    let result = hpx::async_at(hpx::find_here(), fib, (n, threshold))
        .await
        .map_err(|e| format!("fib({n}) failed: {e}"))?;
    let elapsed = start.elapsed();

    println!(
        "fib({n}) = {result} on {localities} localit{} (threshold {threshold}) in {:.3} ms",
        if localities == 1 { "y" } else { "ies" },
        elapsed.as_secs_f64() * 1e3
    );
    let expected = fib_iterative(n);
    if result != expected {
        return Err(format!("wrong result: fib({n}) = {expected}, got {result}"));
    }
    Ok(())
}

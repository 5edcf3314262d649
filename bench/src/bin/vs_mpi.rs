//! hpx-rs beside MPI: the tests of `shared/baselines/mpibench.c`, written
//! with hpx-rs, with the same sizes, defaults, structure and output, so that
//! the ratio of a figure here to mpibench's is apples to apples.
//!
//! ```text
//! cargo build --release -p hpx-bench --bin vs_mpi && cargo build --release -p hpx --bin hpxrun
//! target/release/hpxrun -l N target/release/vs_mpi <test> [reps] [iters]
//! ```
//!
//! (`bench/scripts/vs-mpi.sh` runs both programs case by case and prints
//! the table of ratios.)
//!
//! Tests (mpibench's, plus `bwshared` and `bwget`):
//!
//! - `pingpong`: an 8-byte action (`u64` argument, `u64` result) called
//!   from locality 0 on locality 1 and awaited, back to back; µs per round
//!   trip (`us/roundtrip`), timed on locality 0 (like MPI's rank 0).
//! - `bw`: a 64 MiB `PodVec<u8>` action argument sent from locality 0 to 1,
//!   each call awaited (so locality 0's clock covers full delivery, as the
//!   acknowledgement of mpibench does); GB/s (10^9 bytes/s), timed on
//!   locality 0.
//! - `bwshared`: as `bw`, with a [`SharedBytes`] argument: locality 1's
//!   action reads the bytes where they arrived (the shared-memory segment
//!   locality 0 encoded them into) instead of owning a copy, as MPI's
//!   receiver reads a buffer it reuses; GB/s.
//! - `bwget`: the same 64 MiB the other way round, the way a distributed
//!   array is read: a `PartitionedVector<u8>` of 64 MiB held entirely by
//!   locality 1 (one partition, `Distribution::Explicit`), made by locality
//!   0 alone and read whole with `to_vec()` on locality 0; GB/s. mpibench
//!   has no such test: it is compared with MPI's `bw`.
//! - `allreduce1`: `hpx::all_reduce` of one `f64` (sum); µs per call.
//! - `allreduceM`: `hpx::all_reduce` of a `Vec<f64>` of 2^20 elements
//!   (8 MiB, sum, element by element); ms per call.
//! - `barrier`: `hpx::barrier`; µs per call.
//! - `bcast`: `hpx::broadcast` of a `PodVec<f64>` of 2^20 elements (8 MiB,
//!   travelling as raw bytes) from locality 0; ms per call.
//! - `gather`: `hpx::gather` of a `PodVec<f64>` of 2^20 elements per
//!   locality to locality 0; ms per call.
//!
//! As in mpibench, every locality runs main (SPMD); a test runs one warm-up
//! repetition (mpibench's warm-up counts: `iters / 10 + 100` round trips,
//! `iters / 10 + 2` all-reduces, `iters / 10 + 10` barriers, 2 of the bulk
//! operations), then `reps` (default 5) timed repetitions of `iters`
//! operations back to back (default 10000 for pingpong, allreduce1 and
//! barrier, 20 for the others; 0 means the default), each after a barrier.
//! For the collectives a repetition's value is the largest over the
//! localities of (elapsed / iters), found with `hpx::all_reduce(..,
//! ReduceOp::Max)`; pingpong, bw and bwget are timed on locality 0 only,
//! as mpibench times them on rank 0. The data are checked once, after the
//! warm-up (the same checks as mpibench's); a mismatch ends the program
//! with an error. Locality 0 prints one line per timed repetition, flushed:
//!
//! ```text
//! RESULT <test> <np> <rep> <value> <unit>
//! ```
//!
//! (under `hpxrun` with the launcher's `[L0] ` prefix).
//!
//! hpx-rs takes the arguments of actions and collectives by value, where MPI
//! reads the caller's buffer: the arguments of a repetition (clones of the
//! same 8 or 64 MiB) are made before its barrier, outside the timed span, so
//! that the time is that of the transfer, as for MPI. So `bw` holds `iters`
//! copies of 64 MiB on locality 0 for a moment (1.3 GiB with the default
//! 20). Results are dropped as they come, inside the timed span, as a
//! program would drop them.

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use hpx::prelude::*;
use hpx::{Error, SharedBytes};

/// One mebibyte.
const MIB: usize = 1024 * 1024;
/// mpibench's "1M" doubles: 2^20 `f64`, 8 MiB.
const MILLION: usize = 1024 * 1024;
/// Bytes of one `bw` / `bwget` transfer: 64 MiB.
const BW_BYTES: usize = 64 * MIB;
/// The byte `bw` and `bwget` send.
const BW_FILL: u8 = 0x5a;
/// Timed repetitions when none are given (mpibench's default).
const DEFAULT_REPS: usize = 5;
/// How to call the program.
const USAGE: &str = "usage: hpxrun -l N vs_mpi <test> [reps] [iters], <test> one of \
                     pingpong, bw, bwshared, bwget, allreduce1, allreduceM, barrier, bcast, gather \
                     (reps default 5; iters 0 or absent: the test's default)";

/// The tests, named as mpibench names them (`bwget` is extra).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    /// 8-byte round trip 0 → 1 → 0.
    PingPong,
    /// 64 MiB action argument 0 → 1.
    Bw,
    /// 64 MiB shared-bytes action argument 0 → 1.
    BwShared,
    /// 64 MiB array held by 1 read by 0.
    BwGet,
    /// All-reduce of one `f64`.
    AllReduce1,
    /// All-reduce of 2^20 `f64`.
    AllReduceM,
    /// Barrier.
    Barrier,
    /// Broadcast of 8 MiB from locality 0.
    Bcast,
    /// Gather of 8 MiB per locality to locality 0.
    Gather,
}

impl Test {
    /// Every test, in the order of the usage line.
    const ALL: [Test; 9] = [
        Test::PingPong,
        Test::Bw,
        Test::BwShared,
        Test::BwGet,
        Test::AllReduce1,
        Test::AllReduceM,
        Test::Barrier,
        Test::Bcast,
        Test::Gather,
    ];

    /// The name on the command line and in the `RESULT` lines.
    fn name(self) -> &'static str {
        match self {
            Test::PingPong => "pingpong",
            Test::Bw => "bw",
            Test::BwShared => "bwshared",
            Test::BwGet => "bwget",
            Test::AllReduce1 => "allreduce1",
            Test::AllReduceM => "allreduceM",
            Test::Barrier => "barrier",
            Test::Bcast => "bcast",
            Test::Gather => "gather",
        }
    }

    /// The test called `name`, if any.
    fn parse(name: &str) -> Option<Test> {
        Test::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Operations per repetition when none are given (mpibench's).
    fn default_iters(self) -> usize {
        match self {
            Test::PingPong | Test::AllReduce1 | Test::Barrier => 10_000,
            Test::Bw
            | Test::BwShared
            | Test::BwGet
            | Test::AllReduceM
            | Test::Bcast
            | Test::Gather => 20,
        }
    }

    /// Whether the test needs localities 0 and 1.
    fn needs_two(self) -> bool {
        matches!(
            self,
            Test::PingPong | Test::Bw | Test::BwShared | Test::BwGet
        )
    }
}

/// What the command line asks for.
#[derive(Debug)]
struct Options {
    /// The test to run.
    test: Test,
    /// Timed repetitions.
    reps: usize,
    /// Operations per timed repetition.
    iters: usize,
}

/// A non-negative integer argument, or an error naming it.
fn number(what: &str, text: &str) -> Result<usize, Error> {
    text.parse::<usize>().map_err(|_| {
        Error::BadArgument(format!(
            "{what} must be a non-negative integer, got {text:?} ({USAGE})"
        ))
    })
}

/// Reads `args` (with `args[0]` the program) into the options.
fn options(args: &[String]) -> Result<Options, Error> {
    let Some(name) = args.get(1) else {
        return Err(Error::BadArgument(format!("no test given ({USAGE})")));
    };
    if args.len() > 4 {
        return Err(Error::BadArgument(format!(
            "too many arguments: {:?} ({USAGE})",
            args.get(4..).unwrap_or_default()
        )));
    }
    let test = Test::parse(name)
        .ok_or_else(|| Error::BadArgument(format!("unknown test {name:?} ({USAGE})")))?;
    let reps = match args.get(2) {
        Some(text) => number("reps", text)?,
        None => DEFAULT_REPS,
    };
    let iters = match args.get(3) {
        Some(text) => number("iters", text)?,
        None => 0,
    };
    let iters = if iters > 0 {
        iters
    } else {
        test.default_iters()
    };
    Ok(Options { test, reps, iters })
}

/// The repetitions of a test: `None` for the warm-up, then `Some(rep)` for
/// each timed one.
fn repetitions(reps: usize) -> impl Iterator<Item = Option<usize>> {
    std::iter::once(None).chain((0..reps).map(Some))
}

/// Prints `RESULT <test> <np> <rep> <value> <unit>` on locality 0, flushed.
fn report(test: Test, rep: usize, value: f64, unit: &str) -> Result<(), Error> {
    if hpx::get_locality_id() != 0 {
        return Ok(());
    }
    let np = hpx::get_num_localities();
    let mut out = std::io::stdout().lock();
    writeln!(out, "RESULT {} {np} {rep} {value:.6} {unit}", test.name())
        .and_then(|()| out.flush())
        .map_err(|e| Error::MainFailed(format!("cannot write the result: {e}")))
}

/// The error of a failed data check.
fn mismatch(test: Test, what: String) -> Error {
    Error::MainFailed(format!(
        "{} data mismatch on locality {}: {what}",
        test.name(),
        hpx::get_locality_id()
    ))
}

/// The largest `value` over all localities.
async fn max_all(value: f64) -> Result<f64, Error> {
    hpx::all_reduce(value, ReduceOp::Max).await
}

/// Seconds since `start` divided by `n`.
fn per_op(start: Instant, n: usize) -> f64 {
    start.elapsed().as_secs_f64() / n as f64
}

/// Returns its 8-byte argument: the pong of `pingpong`.
#[hpx::action]
async fn echo(x: u64) -> u64 {
    x
}

/// Receives the 64 MiB of `bw`; returns their length and first and last
/// byte, for the check.
#[hpx::action]
async fn receive(bytes: PodVec<u8>) -> (u64, u8, u8) {
    ends(&bytes)
}

/// Receives the 64 MiB of `bwshared` where they arrived; as [`receive`].
#[hpx::action]
async fn receive_shared(bytes: SharedBytes) -> (u64, u8, u8) {
    ends(&bytes)
}

/// The length and first and last byte of `bytes`.
fn ends(bytes: &[u8]) -> (u64, u8, u8) {
    (
        bytes.len() as u64,
        bytes.first().copied().unwrap_or(0),
        bytes.last().copied().unwrap_or(0),
    )
}

/// `pingpong`: round trips of an 8-byte action 0 → 1 → 0, µs each.
async fn pingpong(reps: usize, iters: usize) -> Result<(), Error> {
    let test = Test::PingPong;
    let sender = hpx::get_locality_id() == 0;
    let warm = iters / 10 + 100;
    for rep in repetitions(reps) {
        let n = if rep.is_some() { iters } else { warm };
        hpx::barrier().await?;
        let start = Instant::now();
        if sender {
            for i in 0..n as u64 {
                let back = hpx::async_at(LocalityId(1), echo, i).await?;
                if rep.is_none() && back != i {
                    return Err(mismatch(test, format!("sent {i}, got {back} back")));
                }
                black_box(back);
            }
        }
        let t = per_op(start, n);
        if let Some(rep) = rep {
            report(test, rep, t * 1e6, "us/roundtrip")?;
        }
    }
    hpx::barrier().await
}

/// `bw` (and `bwshared`, with `shared`): 64 MiB action arguments 0 → 1,
/// each call awaited; GB/s.
async fn bw(reps: usize, iters: usize, shared: bool) -> Result<(), Error> {
    let test = if shared { Test::BwShared } else { Test::Bw };
    let sender = hpx::get_locality_id() == 0;
    let block = vec![if sender { BW_FILL } else { 0 }; BW_BYTES];
    let view = SharedBytes::from(block.clone());
    for rep in repetitions(reps) {
        let n = if rep.is_some() { iters } else { 2 };
        let arguments: Vec<PodVec<u8>> = if sender && !shared {
            (0..n).map(|_| PodVec(block.clone())).collect()
        } else {
            Vec::new()
        };
        hpx::barrier().await?;
        let start = Instant::now();
        let mut last = None;
        if shared && sender {
            for _ in 0..n {
                last = Some(hpx::async_at(LocalityId(1), receive_shared, view.clone()).await?);
            }
        }
        for argument in arguments {
            last = Some(hpx::async_at(LocalityId(1), receive, argument).await?);
        }
        let t = start.elapsed().as_secs_f64();
        if rep.is_none() {
            if let Some(got) = last {
                if got != (BW_BYTES as u64, BW_FILL, BW_FILL) {
                    return Err(mismatch(
                        test,
                        format!(
                            "locality 1 got (length, first, last) {got:?}, \
                             expected ({BW_BYTES}, {BW_FILL}, {BW_FILL})"
                        ),
                    ));
                }
            }
        }
        if let Some(rep) = rep {
            report(test, rep, (BW_BYTES * n) as f64 / t / 1e9, "GB/s")?;
        }
    }
    hpx::barrier().await
}

/// `bwget`: locality 0 reads a 64 MiB array held by locality 1 with
/// `to_vec()`; GB/s.
async fn bwget(reps: usize, iters: usize) -> Result<(), Error> {
    let test = Test::BwGet;
    let reader = hpx::get_locality_id() == 0;
    let array = if reader {
        let array = hpx::full::<u8>(BW_BYTES, BW_FILL)
            .distribution(Distribution::Explicit {
                sizes: vec![BW_BYTES],
                localities: vec![LocalityId(1)],
            })
            .await?;
        Some(array)
    } else {
        None
    };
    for rep in repetitions(reps) {
        let n = if rep.is_some() { iters } else { 2 };
        hpx::barrier().await?;
        let start = Instant::now();
        let mut last = None;
        if let Some(array) = &array {
            for _ in 0..n {
                last = Some(black_box(array.to_vec().await?));
            }
        }
        let t = start.elapsed().as_secs_f64();
        if rep.is_none() {
            if let Some(got) = &last {
                if got.len() != BW_BYTES || got.iter().any(|b| *b != BW_FILL) {
                    return Err(mismatch(
                        test,
                        format!("read {} bytes, not all {BW_FILL:#x}", got.len()),
                    ));
                }
            }
        }
        drop(last);
        if let Some(rep) = rep {
            report(test, rep, (BW_BYTES * n) as f64 / t / 1e9, "GB/s")?;
        }
    }
    drop(array);
    hpx::barrier().await
}

/// The sum that mpibench's all-reduce check expects at element `i`.
fn reduced(np: u32, i: usize) -> f64 {
    let np = f64::from(np);
    np * (np + 1.0) / 2.0 + np * (i & 7) as f64
}

/// This locality's input of mpibench's all-reduce at element `i`.
fn reduce_input(me: u32, i: usize) -> f64 {
    f64::from(me) + 1.0 + (i & 7) as f64
}

/// `allreduce1`: all-reduce (sum) of one `f64`, µs per call.
async fn allreduce1(reps: usize, iters: usize) -> Result<(), Error> {
    let test = Test::AllReduce1;
    let input = reduce_input(hpx::get_locality_id(), 0);
    let want = reduced(hpx::get_num_localities(), 0);
    let warm = iters / 10 + 2;
    for rep in repetitions(reps) {
        let n = if rep.is_some() { iters } else { warm };
        hpx::barrier().await?;
        let start = Instant::now();
        let mut out = f64::NAN;
        for _ in 0..n {
            out = hpx::all_reduce(black_box(input), ReduceOp::Sum).await?;
        }
        let t = max_all(per_op(start, n)).await?;
        match rep {
            None if out != want => {
                return Err(mismatch(test, format!("sum {out}, expected {want}")));
            }
            None => {}
            Some(rep) => report(test, rep, t * 1e6, "us/call")?,
        }
    }
    Ok(())
}

/// `allreduceM`: all-reduce (sum) of 2^20 `f64`, ms per call.
async fn allreduce_m(reps: usize, iters: usize) -> Result<(), Error> {
    let test = Test::AllReduceM;
    let me = hpx::get_locality_id();
    let np = hpx::get_num_localities();
    let input: Vec<f64> = (0..MILLION).map(|i| reduce_input(me, i)).collect();
    let warm = iters / 10 + 2;
    for rep in repetitions(reps) {
        let n = if rep.is_some() { iters } else { warm };
        let arguments: Vec<Vec<f64>> = (0..n).map(|_| input.clone()).collect();
        hpx::barrier().await?;
        let start = Instant::now();
        let mut out = Vec::new();
        for argument in arguments {
            out = hpx::all_reduce(argument, ReduceOp::Sum).await?;
        }
        let t = max_all(per_op(start, n)).await?;
        match rep {
            None => {
                if out.len() != MILLION {
                    return Err(mismatch(
                        test,
                        format!("{} elements, expected {MILLION}", out.len()),
                    ));
                }
                if let Some((i, v)) = out.iter().enumerate().find(|(i, v)| **v != reduced(np, *i)) {
                    return Err(mismatch(
                        test,
                        format!("element {i} is {v}, expected {}", reduced(np, i)),
                    ));
                }
            }
            Some(rep) => report(test, rep, t * 1e3, "ms/call")?,
        }
    }
    Ok(())
}

/// `barrier`: µs per barrier.
async fn barrier(reps: usize, iters: usize) -> Result<(), Error> {
    let warm = iters / 10 + 10;
    for rep in repetitions(reps) {
        let n = if rep.is_some() { iters } else { warm };
        hpx::barrier().await?;
        let start = Instant::now();
        for _ in 0..n {
            hpx::barrier().await?;
        }
        let t = max_all(per_op(start, n)).await?;
        if let Some(rep) = rep {
            report(Test::Barrier, rep, t * 1e6, "us/call")?;
        }
    }
    Ok(())
}

/// `bcast`: broadcast of 2^20 `f64` (8 MiB of raw bytes) from locality 0,
/// ms per call.
async fn bcast(reps: usize, iters: usize) -> Result<(), Error> {
    let test = Test::Bcast;
    let root = hpx::get_locality_id() == 0;
    let data = PodVec((0..MILLION).map(|i| i as f64).collect::<Vec<f64>>());
    for rep in repetitions(reps) {
        let n = if rep.is_some() { iters } else { 2 };
        let arguments: Vec<Option<PodVec<f64>>> =
            (0..n).map(|_| root.then(|| data.clone())).collect();
        hpx::barrier().await?;
        let start = Instant::now();
        let mut out = PodVec(Vec::new());
        for argument in arguments {
            out = hpx::broadcast(argument, 0).await?;
        }
        let t = max_all(per_op(start, n)).await?;
        match rep {
            None => {
                let last = (MILLION - 1) as f64;
                if out.len() != MILLION
                    || out.get(MILLION - 1) != Some(&last)
                    || out.get(1) != Some(&1.0)
                {
                    return Err(mismatch(
                        test,
                        format!(
                            "{} elements, [1] = {:?}, [{}] = {:?}",
                            out.len(),
                            out.get(1),
                            MILLION - 1,
                            out.get(MILLION - 1)
                        ),
                    ));
                }
            }
            Some(rep) => report(test, rep, t * 1e3, "ms/call")?,
        }
    }
    Ok(())
}

/// `gather`: gather of 2^20 `f64` per locality to locality 0, ms per call.
async fn gather(reps: usize, iters: usize) -> Result<(), Error> {
    let test = Test::Gather;
    let me = hpx::get_locality_id();
    let np = hpx::get_num_localities();
    let part = PodVec(
        (0..MILLION)
            .map(|i| f64::from(me) * 10.0 + (i & 3) as f64)
            .collect::<Vec<f64>>(),
    );
    for rep in repetitions(reps) {
        let n = if rep.is_some() { iters } else { 2 };
        let arguments: Vec<PodVec<f64>> = (0..n).map(|_| part.clone()).collect();
        hpx::barrier().await?;
        let start = Instant::now();
        let mut out = None;
        for argument in arguments {
            out = hpx::gather(argument, 0).await?;
        }
        let t = max_all(per_op(start, n)).await?;
        match rep {
            None if me == 0 => {
                let parts = out.unwrap_or_default();
                if parts.len() != np as usize {
                    return Err(mismatch(
                        test,
                        format!("{} parts gathered, expected {np}", parts.len()),
                    ));
                }
                for (p, got) in parts.iter().enumerate() {
                    let want = p as f64 * 10.0 + 1.0;
                    if got.len() != MILLION || got.get(5) != Some(&want) {
                        return Err(mismatch(
                            test,
                            format!(
                                "part {p}: {} elements, [5] = {:?}, expected {want}",
                                got.len(),
                                got.get(5)
                            ),
                        ));
                    }
                }
            }
            None => {}
            Some(rep) => report(test, rep, t * 1e3, "ms/call")?,
        }
    }
    Ok(())
}

/// Runs the test the arguments name on every locality (SPMD).
#[hpx::main]
async fn main() -> Result<(), Error> {
    let Options { test, reps, iters } = options(&hpx::args())?;
    let np = hpx::get_num_localities();
    if test.needs_two() && np < 2 {
        return Err(Error::BadArgument(format!(
            "{} needs 2 localities (run it with hpxrun -l 2), this job has {np}",
            test.name()
        )));
    }
    match test {
        Test::PingPong => pingpong(reps, iters).await,
        Test::Bw => bw(reps, iters, false).await,
        Test::BwShared => bw(reps, iters, true).await,
        Test::BwGet => bwget(reps, iters).await,
        Test::AllReduce1 => allreduce1(reps, iters).await,
        Test::AllReduceM => allreduce_m(reps, iters).await,
        Test::Barrier => barrier(reps, iters).await,
        Test::Bcast => bcast(reps, iters).await,
        Test::Gather => gather(reps, iters).await,
    }
}

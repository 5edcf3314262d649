//! Latency and rate of actions, each beside a plain tokio baseline measured in
//! the same run.
//!
//! Run it with two localities:
//!
//! ```text
//! cargo build --release -p hpx-bench --bin action_latency && cargo build --release --bin hpxrun
//! target/release/hpxrun -l 2 target/release/action_latency [ROUND_TRIPS] [POSTS]
//! ```
//!
//! Locality 0 measures, while locality 1 serves:
//!
//! - **round trip**: an action with an 8-byte argument and result on locality
//!   1, awaited before the next one (median and 99th percentile of
//!   `ROUND_TRIPS`, default 20 000, after a warm-up), against a raw tokio TCP
//!   ping-pong of 8 bytes between the same two processes (on their
//!   addresses: 127.0.0.1 on one host)
//!   (`TCP_NODELAY`, an echo task on locality 1). The echo action runs once
//!   as a plain action (on a task of its own) and once declared
//!   `#[hpx::action(direct)]` (run where its parcel is read). The kinds
//!   alternate in blocks so that drift of the machine affects all alike;
//! - **fire and forget**: `POSTS` (default 2 000 000) posts of an action that
//!   increments a counter on locality 1, then a call that returns once the
//!   counter has reached the total (woken by a [`Notify`], no polling): the
//!   rate is posts over the elapsed time; once with a plain action, once
//!   with a direct one;
//! - **spawn + await**: an action called on locality 0 itself and awaited,
//!   against `tokio::spawn` of an empty task and awaiting its handle.
//!
//! It prints a table of the figures, the baselines, their ratios and the
//! targets of the project, then how the fire-and-forget time splits between
//! the sender's `post` calls and the peer running them. With one locality
//! only the local measure runs.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hpx::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Measured round trips when no argument is given.
const DEFAULT_ROUND_TRIPS: usize = 20_000;
/// Fire-and-forget posts when no argument is given.
const DEFAULT_POSTS: u64 = 2_000_000;
/// Unmeasured round trips (of each kind) before measuring.
const WARM_UP_ROUND_TRIPS: usize = 2_000;
/// Unmeasured posts before measuring the rate.
const WARM_UP_POSTS: u64 = 20_000;
/// Blocks in which the measures alternate with their baselines.
const BLOCKS: usize = 4;
/// Local calls (and tokio spawns) measured.
const LOCAL_CALLS: usize = 400_000;
/// How long the echo server waits for its one connection.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Posted `tick` actions that have run on this locality.
static TICKS: AtomicU64 = AtomicU64::new(0);
/// The count `ticks_reached` waits for.
static TICK_TARGET: AtomicU64 = AtomicU64::new(u64::MAX);
/// Signalled when `TICKS` reaches `TICK_TARGET`.
static TICKS_REACHED: Notify = Notify::const_new();

/// Returns its 8-byte argument (runs on a task of its own, the default).
#[hpx::action]
async fn echo(x: u64) -> u64 {
    x
}

/// Returns its 8-byte argument (a direct action: run where the parcel is read).
#[hpx::action(direct)]
async fn echo_direct(x: u64) -> u64 {
    x
}

/// Does nothing: the cheapest action there is.
#[hpx::action]
async fn noop() {}

/// Counts one call; wakes `ticks_reached` when the count reaches its target.
fn count_tick() {
    let count = TICKS.fetch_add(1, Ordering::SeqCst) + 1;
    if count == TICK_TARGET.load(Ordering::SeqCst) {
        TICKS_REACHED.notify_one();
    }
}

/// One counted call (on a task of its own, the default).
#[hpx::action]
async fn tick() {
    count_tick();
}

/// One counted call (a direct action).
#[hpx::action(direct)]
async fn tick_direct() {
    count_tick();
}

/// Returns the number of `tick` calls run here once it is at least `target`.
#[hpx::action]
async fn ticks_reached(target: u64) -> u64 {
    TICK_TARGET.store(target, Ordering::SeqCst);
    loop {
        let count = TICKS.load(Ordering::SeqCst);
        if count >= target {
            return count;
        }
        TICKS_REACHED.notified().await;
    }
}

/// This locality's address (127.0.0.1 on one host, its own between hosts).
fn my_ip() -> std::net::IpAddr {
    hpx::locality_addresses()
        .get(hpx::get_locality_id() as usize)
        .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip())
}

/// Starts a TCP echo server for one connection on this locality's address
/// and returns its port.
#[hpx::action]
async fn tcp_echo_port() -> Result<u16, std::io::Error> {
    let listener = TcpListener::bind((my_ip(), 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(serve_echo(listener));
    Ok(port)
}

/// Echoes 8-byte messages on the first connection until it closes.
async fn serve_echo(listener: TcpListener) {
    let mut stream = match tokio::time::timeout(ACCEPT_TIMEOUT, listener.accept()).await {
        Ok(Ok((stream, _))) => stream,
        Ok(Err(e)) => return eprintln!("echo server: accept failed: {e}"),
        Err(_) => return eprintln!("echo server: no connection within {ACCEPT_TIMEOUT:?}"),
    };
    if let Err(e) = stream.set_nodelay(true) {
        return eprintln!("echo server: cannot set TCP_NODELAY: {e}");
    }
    let mut message = [0u8; 8];
    while stream.read_exact(&mut message).await.is_ok() {
        if stream.write_all(&message).await.is_err() {
            return;
        }
    }
}

/// What the command line asks for.
struct Settings {
    round_trips: usize,
    posts: u64,
}

/// Parses `[ROUND_TRIPS] [POSTS]`.
fn settings() -> Result<Settings, String> {
    fn positive<T: std::str::FromStr + PartialOrd + Default>(
        args: &[String],
        index: usize,
        name: &str,
        default: T,
    ) -> Result<T, String> {
        match args.get(index) {
            None => Ok(default),
            Some(text) => match text.parse::<T>() {
                Ok(v) if v > T::default() => Ok(v),
                _ => Err(format!(
                    "{name} must be a positive integer, got {text:?} \
                     (usage: action_latency [ROUND_TRIPS] [POSTS])"
                )),
            },
        }
    }
    let args = hpx::args();
    Ok(Settings {
        round_trips: positive(&args, 1, "ROUND_TRIPS", DEFAULT_ROUND_TRIPS)?,
        posts: positive(&args, 2, "POSTS", DEFAULT_POSTS)?,
    })
}

/// Turns any displayable error into the text main returns.
fn text(e: impl Display) -> String {
    e.to_string()
}

/// Microseconds in a duration.
fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The `q`-quantile (0..=1) of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

/// One action round trip of 8 bytes to `peer`.
async fn action_round_trip<A>(peer: LocalityId, action: A, i: u64) -> Result<(), String>
where
    A: hpx::Action<Args = u64, Output = u64>,
{
    let back = hpx::async_at(peer, action, i).await.map_err(text)?;
    if back != i {
        return Err(format!("echo action returned {back}, expected {i}"));
    }
    Ok(())
}

/// One TCP round trip of 8 bytes on `stream`.
async fn tcp_round_trip(stream: &mut TcpStream, i: u64) -> Result<(), String> {
    stream.write_all(&i.to_le_bytes()).await.map_err(text)?;
    let mut back = [0u8; 8];
    stream.read_exact(&mut back).await.map_err(text)?;
    if u64::from_le_bytes(back) != i {
        return Err(format!("TCP echo returned {back:?}, expected {i}"));
    }
    Ok(())
}

/// Round-trip times of the action, the direct action and raw TCP, sorted.
struct RoundTrips {
    action: Vec<Duration>,
    direct: Vec<Duration>,
    tcp: Vec<Duration>,
}

/// Measures `count` round trips of each kind to `peer`, alternating in blocks.
async fn round_trips(peer: LocalityId, count: usize) -> Result<RoundTrips, String> {
    let port = hpx::async_at(peer, tcp_echo_port, ()).await.map_err(text)?;
    let ip = hpx::locality_addresses()
        .get(peer.0 as usize)
        .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    let mut stream = TcpStream::connect((ip, port))
        .await
        .map_err(|e| format!("cannot connect to the echo server on port {port}: {e}"))?;
    stream.set_nodelay(true).map_err(text)?;

    for i in 0..WARM_UP_ROUND_TRIPS as u64 {
        action_round_trip(peer, echo, i).await?;
        action_round_trip(peer, echo_direct, i).await?;
        tcp_round_trip(&mut stream, i).await?;
    }
    let mut action = Vec::with_capacity(count);
    let mut direct = Vec::with_capacity(count);
    let mut tcp = Vec::with_capacity(count);
    for block in 0..BLOCKS {
        let n = count / BLOCKS + usize::from(block < count % BLOCKS);
        for i in 0..n as u64 {
            let start = Instant::now();
            action_round_trip(peer, echo, i).await?;
            action.push(start.elapsed());
        }
        for i in 0..n as u64 {
            let start = Instant::now();
            action_round_trip(peer, echo_direct, i).await?;
            direct.push(start.elapsed());
        }
        for i in 0..n as u64 {
            let start = Instant::now();
            tcp_round_trip(&mut stream, i).await?;
            tcp.push(start.elapsed());
        }
    }
    drop(stream);
    action.sort_unstable();
    direct.sort_unstable();
    tcp.sort_unstable();
    Ok(RoundTrips {
        action,
        direct,
        tcp,
    })
}

/// The outcome of the fire-and-forget measure.
struct PostRate {
    /// Posts per second, counted until the last one has run on the peer.
    rate: f64,
    /// Time the `post` calls alone took on the sender.
    posting: Duration,
    /// Time until the last post had run on the peer.
    total: Duration,
}

/// Posts `posts` calls of `action` (a tick) to `peer` and measures how
/// fast they run there.
async fn post_rate<A>(peer: LocalityId, action: A, posts: u64) -> Result<PostRate, String>
where
    A: hpx::Action<Args = ()>,
{
    let before = hpx::async_at(peer, ticks_reached, 0).await.map_err(text)?;
    for _ in 0..WARM_UP_POSTS {
        hpx::post(peer, action, ()).map_err(text)?;
    }
    let base = hpx::async_at(peer, ticks_reached, before + WARM_UP_POSTS)
        .await
        .map_err(text)?;
    let start = Instant::now();
    for _ in 0..posts {
        hpx::post(peer, action, ()).map_err(text)?;
    }
    let posting = start.elapsed();
    let reached = hpx::async_at(peer, ticks_reached, base + posts)
        .await
        .map_err(text)?;
    let total = start.elapsed();
    if reached != base + posts {
        return Err(format!(
            "locality {peer} ran {} ticks, expected {posts}",
            reached - base
        ));
    }
    Ok(PostRate {
        rate: posts as f64 / total.as_secs_f64(),
        posting,
        total,
    })
}

/// Mean time of a local action call and of a tokio spawn + await, alternating in blocks.
async fn local_calls(count: usize) -> Result<(Duration, Duration), String> {
    let here = hpx::find_here();
    let per_block = count / BLOCKS;
    for _ in 0..per_block {
        hpx::async_at(here, noop, ()).await.map_err(text)?;
        tokio::spawn(async {}).await.map_err(text)?;
    }
    let (mut action, mut spawn) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..BLOCKS {
        let start = Instant::now();
        for _ in 0..per_block {
            hpx::async_at(here, noop, ()).await.map_err(text)?;
        }
        action += start.elapsed();
        let start = Instant::now();
        for _ in 0..per_block {
            tokio::spawn(async {}).await.map_err(text)?;
        }
        spawn += start.elapsed();
    }
    let calls = (per_block * BLOCKS) as u32;
    Ok((action / calls, spawn / calls))
}

/// Whether a target was met, as a word for the table.
fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// Prints one row of the results table.
fn row(measure: &str, hpx: &str, baseline: &str, ratio: &str, target: &str, verdict: &str) {
    println!(
        "| {measure:<28} | {hpx:>12} | {baseline:>22} | {ratio:>7} | {target:<18} | {verdict:<6} |"
    );
}

#[hpx::main(root_only)]
async fn main() -> Result<(), String> {
    let settings = settings()?;
    let localities = hpx::get_num_localities();
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    println!(
        "action_latency: {localities} localities, {threads} worker threads each, \
         {} round trips, {} posts, {LOCAL_CALLS} local calls",
        settings.round_trips, settings.posts
    );

    let remote = if localities >= 2 {
        let peer = LocalityId(1);
        let trips = round_trips(peer, settings.round_trips).await?;
        let rate = post_rate(peer, tick, settings.posts).await?;
        let direct_rate = post_rate(peer, tick_direct, settings.posts).await?;
        Some((trips, rate, direct_rate))
    } else {
        println!("only one locality: the remote measures need `hpxrun -l 2`");
        None
    };
    let (local_action, local_spawn) = local_calls(LOCAL_CALLS).await?;

    let mut notes = Vec::new();
    println!();
    row("measure", "hpx-rs", "baseline", "ratio", "target", "");
    println!(
        "|{:-<30}|{:->14}|{:->24}|{:->9}|{:-<20}|{:-<8}|",
        "", "", "", "", "", ""
    );
    if let Some((trips, rate, direct_rate)) = remote {
        let median = (quantile(&trips.action, 0.5), quantile(&trips.tcp, 0.5));
        let ratio = median.0.as_secs_f64() / median.1.as_secs_f64();
        row(
            "8 B round trip, median",
            &format!("{:.1} µs", micros(median.0)),
            &format!("{:.1} µs (tokio TCP)", micros(median.1)),
            &format!("{ratio:.2}"),
            "≤ 1.0 × tokio TCP",
            verdict(ratio <= 1.0),
        );
        let direct = quantile(&trips.direct, 0.5);
        let ratio = direct.as_secs_f64() / median.1.as_secs_f64();
        row(
            "… direct action, median",
            &format!("{:.1} µs", micros(direct)),
            &format!("{:.1} µs (tokio TCP)", micros(median.1)),
            &format!("{ratio:.2}"),
            "≤ 1.0 × tokio TCP",
            verdict(ratio <= 1.0),
        );
        let p99 = (quantile(&trips.action, 0.99), quantile(&trips.tcp, 0.99));
        row(
            "8 B round trip, p99",
            &format!("{:.1} µs", micros(p99.0)),
            &format!("{:.1} µs (tokio TCP)", micros(p99.1)),
            &format!("{:.2}", p99.0.as_secs_f64() / p99.1.as_secs_f64()),
            "",
            "",
        );
        row(
            "fire-and-forget actions",
            &format!("{:.2} M/s", rate.rate / 1e6),
            "n/a",
            "",
            "≥ 1 M/s",
            verdict(rate.rate >= 1e6),
        );
        row(
            "… direct actions",
            &format!("{:.2} M/s", direct_rate.rate / 1e6),
            "n/a",
            "",
            "≥ 1 M/s",
            verdict(direct_rate.rate >= 1e6),
        );
        for (kind, rate) in [("", &rate), (" (direct)", &direct_rate)] {
            notes.push(format!(
                "fire and forget{kind}: the post calls took {:.0} ms, the last action ran after {:.0} ms",
                rate.posting.as_secs_f64() * 1e3,
                rate.total.as_secs_f64() * 1e3
            ));
        }
    }
    let ratio = local_action.as_secs_f64() / local_spawn.as_secs_f64();
    row(
        "spawn + await (local action)",
        &format!("{:.2} µs", micros(local_action)),
        &format!("{:.2} µs (tokio spawn)", micros(local_spawn)),
        &format!("{ratio:.2}"),
        "≤ 1.2 × tokio",
        verdict(ratio <= 1.2),
    );
    for note in notes {
        println!("{note}");
    }
    Ok(())
}

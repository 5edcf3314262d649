//! Never a silent hang: what happens to a job when a locality computes
//! for long, stops, dies or fails, how fast everyone learns it, and what is
//! left behind (RELIABILITY.md). Every job runs as real processes with a
//! deadline of its own.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{in_locality, launch_with, s, spmd, spmd_with, RawJob};
use hpx::{Error, LocalityId, ReduceOp};

/// Spins on this thread for `d` without ever yielding to the runtime.
fn compute_for(d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut x = 0u64;
    while Instant::now() < end {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    x
}

#[test]
fn a_locality_computing_without_yielding_is_alive() {
    const TEST: &str = "a_locality_computing_without_yielding_is_alive";
    if in_locality() {
        // One worker: while it computes, nothing else of this locality runs
        // on the workers; the heartbeats run on their own thread.
        return spmd_with(1, || async {
            hpx::barrier().await.map_err(s)?;
            if hpx::get_locality_id() == 1 {
                compute_for(Duration::from_secs(4));
            }
            let sum = hpx::all_reduce(1u32, ReduceOp::Sum).await.map_err(s)?;
            common::ensure(sum == hpx::get_num_localities(), format!("sum {sum}"))?;
            common::done(TEST);
            Ok(())
        });
    }
    // Four peer timeouts of compute.
    let out = launch_with(TEST, 3, &[], &[("HPX_PEER_TIMEOUT", "1")]);
    out.assert_success().assert_all_done(TEST, 3);
}

#[hpx::action]
async fn pid_of() -> u32 {
    std::process::id()
}

/// Wall-clock milliseconds: comparable between the processes of one host.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `RESULT failed at MS: ERROR` (or `RESULT unexpected success`).
fn report<T>(outcome: Result<T, Error>) -> Result<(), String> {
    match &outcome {
        Ok(_) => println!("RESULT unexpected success"),
        Err(e) => println!("RESULT failed at {}: {e}", unix_ms()),
    }
    outcome.map(|_| ()).map_err(s)
}

/// The time a locality said it failed on purpose (`RESULT dying at MS`).
fn dying_at(out: &common::Output, l: u32) -> u64 {
    let said = out.tagged_by(l, "RESULT dying at");
    assert_eq!(said.len(), 1, "{out}");
    said[0].parse().expect("ms")
}

/// Checks that each of `localities` of one job said it failed within
/// `bound_ms` of `since`, with an error containing `cause`.
fn assert_each_failed_within(
    out: &common::Output,
    localities: impl IntoIterator<Item = u32>,
    since: u64,
    bound_ms: u64,
    cause: &str,
) {
    for l in localities {
        let lines = out.tagged_by(l, "RESULT failed at");
        assert_eq!(lines.len(), 1, "locality {l}: {out}");
        let (at, error) = lines[0].split_once(": ").expect("ms and error");
        let took = at.parse::<u64>().expect("ms").saturating_sub(since);
        assert!(
            took < bound_ms,
            "locality {l} failed {took} ms after the cause"
        );
        assert!(error.contains(cause), "locality {l}: {error}");
    }
}

/// Checks that every locality in `waiting` failed within `bound_ms` of
/// `since` with an error containing `cause`.
fn assert_failed_within(
    outs: &[&common::Output],
    waiting: &[u32],
    since: u64,
    bound_ms: u64,
    cause: &str,
) {
    for (out, l) in outs.iter().zip(waiting) {
        let lines = out.tagged("RESULT failed at");
        assert_eq!(lines.len(), 1, "locality {l}: {out}");
        let (at, error) = lines[0].split_once(": ").expect("ms and error");
        let at: u64 = at.parse().expect("ms");
        let took = at.saturating_sub(since);
        assert!(
            took < bound_ms,
            "locality {l} failed {took} ms after the cause: {out}"
        );
        assert!(error.contains(cause), "locality {l}: {error}");
    }
}

#[test]
fn a_stopped_locality_is_lost_within_the_peer_timeout() {
    const TEST: &str = "a_stopped_locality_is_lost_within_the_peer_timeout";
    if in_locality() {
        let _ = hpx::Runtime::builder().threads(2).run(|| async {
            let me = hpx::get_locality_id();
            // Where the stop finds a locality (either barrier, the
            // all_reduce) is up to the scheduler: all of it is measured.
            report(
                async {
                    hpx::barrier().await?;
                    if me == 0 {
                        let pid = hpx::async_at(LocalityId(2), pid_of, ()).await?;
                        println!("RESULT dying at {}", unix_ms());
                        // SAFETY: kill(2) with the pid of a locality of this job.
                        let rc = unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
                        assert_eq!(rc, 0, "SIGSTOP failed");
                        // kill(2) returns before every thread has stopped.
                        until_stopped(pid).await;
                        // Locality 2 joins the all_reduce only after this,
                        // which it never reads: nobody can finish it.
                        hpx::post(LocalityId(2), entered, ())?;
                    }
                    if me == 2 {
                        entered_by(1).await;
                    }
                    hpx::all_reduce(1u32, ReduceOp::Sum).await
                }
                .await,
            )
        });
        return;
    }
    let env = [
        ("HPX_SECRET", common::secret(9)),
        ("HPX_PEER_TIMEOUT", "1".to_owned()),
    ];
    // Localities 0 and 1 end by themselves; locality 2 stays stopped until
    // the job is dropped (SIGKILL works on a stopped process).
    let outs = RawJob::spawn(TEST, 3, &[0, 1, 2], &env).wait_for(&[0, 1], Duration::from_secs(40));
    let said = outs[0].tagged("RESULT dying at");
    assert_eq!(said.len(), 1, "{}", outs[0]);
    let since: u64 = said[0].parse().expect("ms");
    // The peer timeout, and a little for a loaded machine.
    assert_failed_within(
        &[&outs[0], &outs[1]],
        &[0, 1],
        since,
        2_000,
        "locality 2 was lost",
    );
}

/// Waits until process `pid` is in the stopped state (`T` in
/// `/proc/PID/stat`), checking every millisecond for at most 10 s.
async fn until_stopped(pid: u32) {
    let stopped = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
            .unwrap_or(false)
    };
    for _ in 0..10_000 {
        if stopped() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("locality {pid} did not stop");
}

#[hpx::action]
async fn entered() {
    ENTERED.fetch_add(1, Ordering::SeqCst);
    ENTERED_CHANGED.notify_waiters();
}

static ENTERED: AtomicU64 = AtomicU64::new(0);
static ENTERED_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Waits until `n` others have called [`entered`] here.
async fn entered_by(n: u64) {
    loop {
        let changed = ENTERED_CHANGED.notified();
        if ENTERED.load(Ordering::SeqCst) >= n {
            return;
        }
        changed.await;
    }
}

/// The SPMD body of the failure tests: `victim` fails by `how` once every
/// other locality waits for it in an all_reduce.
async fn fail_while_others_wait(victim: u32, how: fn()) -> Result<(), String> {
    let me = hpx::get_locality_id();
    hpx::barrier().await.map_err(s)?;
    if me == victim {
        entered_by(u64::from(hpx::get_num_localities()) - 1).await;
        println!("RESULT dying at {}", unix_ms());
        how();
    }
    let (outcome, told) =
        futures::join!(hpx::all_reduce(vec![1.0f64; 1000], ReduceOp::Sum), async {
            hpx::post(LocalityId(victim), entered, ())
        });
    told.map_err(s)?;
    report(outcome)
}

#[test]
fn hpxrun_names_the_first_failure_and_everyone_ends_fast() {
    const TEST: &str = "hpxrun_names_the_first_failure_and_everyone_ends_fast";
    if in_locality() {
        return spmd(|| fail_while_others_wait(2, || panic!("locality 2 panics on purpose")));
    }
    for n in [3, 5] {
        let out = launch_with(TEST, n, &[], &[]);
        out.assert_failure();
        assert_eq!(out.status.code(), Some(1), "{out}");
        assert!(
            out.stderr
                .contains("hpxrun: locality 2 exited with code 1: main panicked: locality 2 panics on purpose"),
            "{out}"
        );
        let since = dying_at(&out, 2);
        assert_each_failed_within(
            &out,
            (0..n).filter(|l| *l != 2),
            since,
            2_000,
            "locality 2 failed: main panicked",
        );
    }
}

#[test]
fn a_killed_locality_ends_every_wait_within_two_seconds() {
    const TEST: &str = "a_killed_locality_ends_every_wait_within_two_seconds";
    if in_locality() {
        // SAFETY: raising SIGKILL on ourselves.
        return spmd(|| {
            fail_while_others_wait(1, || unsafe {
                libc::raise(libc::SIGKILL);
            })
        });
    }
    // The default peer timeout (5 s): hpxrun's news must be faster.
    let out = launch_with(TEST, 4, &[], &[]);
    out.assert_failure();
    assert!(
        out.stderr
            .contains("hpxrun: locality 1 killed by signal 9 (SIGKILL)"),
        "{out}"
    );
    let since = dying_at(&out, 1);
    for l in [0, 2, 3] {
        let lines = out.tagged_by(l, "RESULT failed at");
        assert_eq!(lines.len(), 1, "locality {l}: {out}");
        let (at, error) = lines[0].split_once(": ").expect("ms and error");
        let took = at.parse::<u64>().expect("ms").saturating_sub(since);
        assert!(took < 2_000, "locality {l} failed {took} ms after the kill");
        assert!(error.contains("locality 1"), "{error}");
        // From hpxrun's news, or sooner from the process's end itself
        // (shared memory's pidfd, TCP's connection closed by the kernel).
        assert!(
            error.contains("killed by signal 9")
                || error.contains("process (pid")
                || error.contains("without a goodbye"),
            "{error}"
        );
    }
}

#[test]
fn a_taken_rendezvous_port_fails_every_locality_within_a_second() {
    const TEST: &str = "a_taken_rendezvous_port_fails_every_locality_within_a_second";
    if in_locality() {
        return spmd(|| async { Ok(()) });
    }
    // Taken for QUIC (UDP) and TCP alike.
    let (_udp, _tcp, taken) = (0..100)
        .find_map(|_| {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            let addr = udp.local_addr().ok()?;
            let tcp = std::net::TcpListener::bind(addr).ok()?;
            Some((udp, tcp, addr.to_string()))
        })
        .expect("a port free for UDP and TCP");
    let start = Instant::now();
    let out = launch_with(TEST, 4, &[], &[("HPX_AGAS", &taken)]);
    let took = start.elapsed();
    out.assert_failure();
    assert!(out.stderr.contains("HPX_AGAS"), "{out}");
    assert!(out.stderr.contains(&taken), "{out}");
    assert!(
        out.stderr.contains("hpxrun: locality 0 exited with code 1"),
        "{out}"
    );
    for l in 1..4 {
        assert!(
            out.stderr.contains(&format!(
                "[L{l}] Error: bootstrap failed: locality 0 ended before the job started"
            )),
            "locality {l}: {out}"
        );
    }
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// Posts counted on their receiver, by sender, with duplicates detected.
static RECEIVED: AtomicU64 = AtomicU64::new(0);
static DUPLICATES: AtomicU64 = AtomicU64::new(0);
static SEEN: std::sync::Mutex<Vec<Vec<u64>>> = std::sync::Mutex::new(Vec::new());
static COUNTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

const POSTS_PER_SENDER: u64 = 500_000;

#[hpx::action]
async fn count_post(from: u32, seq: u64) {
    {
        let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        let from = from as usize;
        if seen.len() <= from {
            seen.resize(from + 1, Vec::new());
        }
        let words = &mut seen[from];
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if words.len() <= word {
            words.resize(word + 1, 0);
        }
        if words[word] & (1 << bit) != 0 {
            DUPLICATES.fetch_add(1, Ordering::SeqCst);
        }
        words[word] |= 1 << bit;
    }
    // A slow receiver now and then.
    if seq % 50_000 == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    RECEIVED.fetch_add(1, Ordering::SeqCst);
    COUNTED.notify_waiters();
}

/// Waits (up to 60 s) until `expected` posts have arrived; returns the
/// count and the duplicates.
#[hpx::action]
async fn counted(expected: u64) -> (u64, u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let changed = COUNTED.notified();
        let got = RECEIVED.load(Ordering::SeqCst);
        if got >= expected || tokio::time::Instant::now() >= deadline {
            return (got, DUPLICATES.load(Ordering::SeqCst));
        }
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
}

#[hpx::action]
async fn echo_len(v: Vec<u8>) -> usize {
    v.len()
}

#[test]
fn a_million_posts_under_load_arrive_exactly_once() {
    const TEST: &str = "a_million_posts_under_load_arrive_exactly_once";
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            let receiver = LocalityId(1);
            if me != 1 {
                // Other traffic to the same receiver alongside the posts.
                let noise = tokio::spawn(async move {
                    for i in 0..200usize {
                        let len = hpx::async_at(receiver, echo_len, vec![7u8; i * 512])
                            .await
                            .map_err(s)?;
                        common::ensure(len == i * 512, "echo")?;
                    }
                    Ok::<_, String>(())
                });
                for seq in 0..POSTS_PER_SENDER {
                    hpx::post(receiver, count_post, (me, seq)).map_err(s)?;
                    if seq % 4096 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                noise.await.map_err(s)??;
            }
            hpx::barrier().await.map_err(s)?;
            if me == 0 {
                let expected = POSTS_PER_SENDER * 2;
                let (got, dups) = hpx::async_at(receiver, counted, expected)
                    .await
                    .map_err(s)?;
                println!("RESULT received {got} duplicates {dups}");
            }
            common::done(TEST);
            Ok(())
        });
    }
    let out = launch_with(TEST, 3, &[], &[]);
    out.assert_success().assert_all_done(TEST, 3);
    assert_eq!(
        out.tagged_by(0, "RESULT"),
        [format!("received {} duplicates 0", POSTS_PER_SENDER * 2)],
        "{out}"
    );
}

/// A private shared-memory directory for one job, removed at the end.
struct ShmDir(PathBuf);

impl ShmDir {
    fn new(tag: &str) -> ShmDir {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("hpx-test-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make the directory");
        ShmDir(dir)
    }

    fn left(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How a job is ended in [`nothing_is_left_behind_however_a_job_ends`].
#[derive(Clone, Copy, Debug)]
enum Ending {
    Normal,
    KillALocality,
    SigtermToHpxrun,
    SigkillToHpxrun,
    Timeout,
}

#[test]
fn nothing_is_left_behind_however_a_job_ends() {
    const TEST: &str = "nothing_is_left_behind_however_a_job_ends";
    if in_locality() {
        let rounds: u64 = std::env::var("TEST_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(u64::MAX);
        return spmd(move || async move {
            // Large payloads (through the shared directory) all the time.
            let big = vec![1.0f64; 1 << 16];
            let mut round = 0;
            while round < rounds {
                hpx::all_reduce(big.clone(), ReduceOp::Sum)
                    .await
                    .map_err(s)?;
                if round == 2 {
                    println!("RESULT running {}", std::process::id());
                }
                round += 1;
            }
            Ok(())
        });
    }
    let exe = std::env::current_exe().expect("test binary");
    for ending in [
        Ending::Normal,
        Ending::KillALocality,
        Ending::SigtermToHpxrun,
        Ending::SigkillToHpxrun,
        Ending::Timeout,
    ] {
        let shm = ShmDir::new(&format!("{ending:?}"));
        let mut cmd = Command::new(common::hpxrun());
        let timeout = if matches!(ending, Ending::Timeout) {
            "4"
        } else {
            "60"
        };
        cmd.args(["-l", "3", "--timeout", timeout, "--"])
            .arg(&exe)
            .args(common::self_args(TEST))
            .env_remove("HPX_AGAS")
            .env("HPX_SHM", &shm.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if matches!(ending, Ending::Normal) {
            cmd.env("TEST_ROUNDS", "20");
        }
        let mut hpxrun = cmd.spawn().expect("start hpxrun");
        let stdout = hpxrun.stdout.take().expect("piped");
        // Some(pid) when a locality runs; None when the output closed.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("RESULT running ") {
                    let _ = tx.send(Some(line[at + 15..].trim().to_owned()));
                }
            }
            let _ = tx.send(None);
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        // Every locality runs (and said its pid).
        let mut pids: Vec<i32> = Vec::new();
        let running = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Some(pid)) => pids.push(pid.parse().expect("pid")),
                other => break Err(format!("{other:?}")),
            }
            if pids.len() == 3 {
                break Ok(pids[1]);
            }
        };
        match (ending, running) {
            (Ending::KillALocality, Ok(pid)) => {
                // SAFETY: kill(2) on a locality of the job this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            (Ending::SigtermToHpxrun, Ok(_)) => {
                // SAFETY: kill(2) on the hpxrun this test started.
                unsafe { libc::kill(hpxrun.id() as i32, libc::SIGTERM) };
            }
            (Ending::SigkillToHpxrun, Ok(_)) => {
                let _ = hpxrun.kill();
            }
            (_, Ok(_)) => {}
            (_, Err(e)) => {
                let _ = hpxrun.kill();
                panic!("{ending:?}: the job did not start: {e}");
            }
        }
        // The localities hold the output pipe: it closes when the last is gone.
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    let _ = hpxrun.kill();
                    panic!("{ending:?}: localities still running ({e})");
                }
            }
        }
        let status = hpxrun.wait().expect("hpxrun ends");
        // Without hpxrun (killed) nobody waits for the localities: wait here.
        for pid in &pids {
            wait_until_gone(*pid, deadline);
        }
        assert_eq!(
            status.success(),
            matches!(ending, Ending::Normal),
            "{ending:?}: {status}"
        );
        assert_eq!(shm.left(), Vec::<String>::new(), "{ending:?} left files");
    }
}

/// Waits until process `pid` (not a child of this one) is gone, failing the
/// test at `deadline`.
fn wait_until_gone(pid: i32, deadline: Instant) {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return; // ESRCH: already gone (and reaped).
    }
    let mut ready = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .as_millis() as i32;
    // SAFETY: poll(2) on the one pollfd given; close(2) on our own descriptor.
    let n = unsafe { libc::poll(&mut ready, 1, left) };
    unsafe { libc::close(fd) };
    assert_eq!(n, 1, "locality {pid} still running");
}

/// Never returns.
#[hpx::action]
async fn forever() {
    futures::future::pending::<()>().await
}

#[test]
fn a_call_to_this_locality_ends_with_the_job() {
    const TEST: &str = "a_call_to_this_locality_ends_with_the_job";
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            // Locality 1 may leave the barrier and fail before the others
            // have left it: then the barrier is what the abort ends.
            if let Err(e) = hpx::barrier().await {
                return report(Err::<(), _>(e));
            }
            if me == 1 {
                println!("RESULT dying at {}", unix_ms());
                return Err("locality 1 fails on purpose".into());
            }
            // A call that would wait for ever, here: the abort must end it
            // with the reason, as it ends calls to other localities.
            report(hpx::async_at(hpx::find_here(), forever, ()).await)
        });
    }
    let out = launch_with(TEST, 3, &[], &[]);
    out.assert_failure();
    let since = dying_at(&out, 1);
    assert_each_failed_within(&out, [0, 2], since, 2_000, "locality 1 failed");
}

//! How jobs start and end: examples under hpxrun, SPMD and root-only exit
//! codes, threads per locality, a locality that never arrives, and a
//! locality killed with SIGKILL.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{
    done_as, example, hpxrun_program, in_locality, launch, launch_with, output_within, s, spmd,
    RawJob,
};
use hpx::prelude::*;
use hpx::Error;

#[test]
fn hello_world_prints_one_line_per_locality() {
    for n in 1..=4u32 {
        let start = Instant::now();
        let out = hpxrun_program(n, &example("hello_world"), &[], &[]);
        out.assert_success();
        let mut lines: Vec<&str> = out.stdout.lines().collect();
        lines.sort_unstable();
        let expected: Vec<String> = (0..n)
            .map(|i| format!("[L{i}] hello world from locality {i} of {n}"))
            .collect();
        assert_eq!(lines, expected, "{out}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{n} localities took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn example_without_launcher_is_one_locality() {
    let out = output_within(
        std::process::Command::new(example("hello_world"))
            .env_remove("HPX_LOCALITY")
            .env_remove("HPX_NUM_LOCALITIES")
            .env_remove("HPX_AGAS")
            .env_remove("SLURM_PROCID"),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out}");
    assert_eq!(out.stdout, "hello world from locality 0 of 1\n", "{out}");
}

#[test]
fn failing_main_fails_the_job_everywhere() {
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            let n = hpx::get_num_localities();
            println!("RESULT reached {me}");
            // Every body runs before one fails (and the job stops them).
            hpx::barrier().await.map_err(s)?;
            if me == n / 2 {
                println!("RESULT failing {me}");
                return Err("deliberate failure".to_owned());
            }
            Ok(())
        });
    }
    for n in [1, 2, 3, 5] {
        let out = launch("failing_main_fails_the_job_everywhere", n);
        out.assert_failure();
        for l in 0..n {
            assert_eq!(out.tagged_by(l, "RESULT reached"), [l.to_string()], "{out}");
        }
        assert_eq!(
            out.tagged_by(n / 2, "RESULT failing"),
            [(n / 2).to_string()],
            "{out}"
        );
        assert!(
            out.stderr
                .contains(&format!("locality {} failed: deliberate failure", n / 2))
                || out.stderr.contains("deliberate failure"),
            "{out}"
        );
    }
}

#[test]
fn panicking_main_fails_the_job() {
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            println!("RESULT reached {me}");
            // Every body runs before one panics (and the job stops them).
            hpx::barrier().await.map_err(s)?;
            if me == 1 {
                println!("RESULT panicking {me}");
                panic!("main blew up");
            }
            Ok(())
        });
    }
    let out = launch("panicking_main_fails_the_job", 3);
    out.assert_failure();
    for l in 0..3 {
        assert_eq!(out.tagged_by(l, "RESULT reached"), [l.to_string()], "{out}");
    }
    assert_eq!(out.tagged_by(1, "RESULT panicking"), ["1"], "{out}");
    assert!(out.stderr.contains("main blew up"), "{out}");
}

#[test]
fn a_failure_while_the_others_wait_in_a_collective_ends_the_job() {
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            if me != 2 {
                // Waiting from here on: in the barrier (locality 2's panic
                // may end it before its last messages arrive here) or in the
                // all_reduce.
                println!("RESULT waiting {me}");
            }
            hpx::barrier().await.map_err(s)?;
            if me == 2 {
                println!("RESULT panicking {me}");
                panic!("locality 2 blew up");
            }
            // Locality 2 never joins: only the abort ends this call.
            hpx::all_reduce(1u64, ReduceOp::Sum).await.map_err(s)?;
            Err("the all_reduce completed without locality 2".to_owned())
        });
    }
    let start = Instant::now();
    let out = launch(
        "a_failure_while_the_others_wait_in_a_collective_ends_the_job",
        4,
    );
    let took = start.elapsed();
    out.assert_failure();
    assert_eq!(out.tagged_by(2, "RESULT panicking"), ["2"], "{out}");
    for l in [0, 1, 3] {
        assert_eq!(out.tagged_by(l, "RESULT waiting"), [l.to_string()], "{out}");
    }
    assert!(out.stderr.contains("locality 2 blew up"), "{out}");
    assert!(!out.stdout.contains("completed without"), "{out}");
    assert!(
        took < Duration::from_secs(10),
        "the job took {took:?} to end"
    );
}

static MAINS_RUN: AtomicU32 = AtomicU32::new(0);

#[hpx::action]
async fn mains_run_here() -> u32 {
    MAINS_RUN.load(Ordering::SeqCst)
}

#[test]
fn root_only_runs_main_once_and_others_serve() {
    if in_locality() {
        let result = hpx::Runtime::builder().threads(2).run_on_root(|| async {
            MAINS_RUN.fetch_add(1, Ordering::SeqCst);
            let counts = hpx::broadcast_action(mains_run_here, ()).await?;
            let mut expected = vec![0; hpx::get_num_localities() as usize];
            expected[0] = 1;
            if counts != expected {
                return Err(Error::BadArgument(format!("mains ran: {counts:?}")));
            }
            println!(
                "RESULT root main ran with {} localities",
                hpx::get_num_localities()
            );
            Ok::<_, Error>(7)
        });
        match (hpx_locality(), result) {
            (0, Ok(Some(7))) | (1.., Ok(None)) => {
                return done_as("root_only_runs_main_once_and_others_serve", hpx_locality())
            }
            (l, other) => panic!("locality {l}: {other:?}"),
        }
    }
    for n in [1, 2, 4] {
        let out = launch("root_only_runs_main_once_and_others_serve", n);
        out.assert_success();
        out.assert_all_done("root_only_runs_main_once_and_others_serve", n);
        assert_eq!(
            out.tagged("RESULT"),
            [format!("root main ran with {n} localities")],
            "{out}"
        );
    }
}

fn hpx_locality() -> u32 {
    std::env::var("HPX_LOCALITY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[hpx::action]
async fn where_am_i() -> u32 {
    hpx::get_locality_id()
}

#[test]
fn root_only_failure_is_an_exit_code() {
    if in_locality() {
        let result = hpx::Runtime::builder().run_on_root(|| async {
            // The others are up and serving before the root gives up.
            let serving = hpx::broadcast_action(where_am_i, ()).await.map_err(s)?;
            println!("RESULT serving {serving:?}");
            Err::<(), _>("root gave up".to_owned())
        });
        if let Err(e) = result {
            println!("RESULT exit 3 after: {e}");
            std::process::exit(3);
        }
        return;
    }
    let out = launch("root_only_failure_is_an_exit_code", 3);
    out.assert_failure();
    assert_eq!(out.status.code(), Some(3), "{out}");
    assert_eq!(out.tagged_by(0, "RESULT serving"), ["[0, 1, 2]"], "{out}");
    // Every locality fails with the root's error and exits with 3; hpxrun
    // stops the job at the first such exit, so at least one says so.
    let exits = out.tagged("RESULT exit 3 after:");
    assert!(
        !exits.is_empty() && exits.iter().all(|e| e.contains("root gave up")),
        "{out}"
    );
}

#[test]
fn threads_per_locality_follow_options() {
    if in_locality() {
        return spmd(|| async {
            let workers = tokio::runtime::Handle::current().metrics().num_workers();
            println!("RESULT workers {workers}");
            Ok(())
        });
    }
    let out = launch_with("threads_per_locality_follow_options", 2, &["-t", "1"], &[]);
    out.assert_success();
    assert_eq!(out.tagged("RESULT workers"), ["1", "1"], "{out}");
    let out = launch_with(
        "threads_per_locality_follow_options",
        1,
        &[],
        &[("HPX_THREADS", "3")],
    );
    out.assert_success();
    assert_eq!(out.tagged("RESULT workers"), ["3"], "{out}");
}

#[test]
fn missing_locality_fails_the_bootstrap_with_a_clear_error() {
    if in_locality() {
        let err = hpx::Runtime::builder()
            .run(|| async { Ok::<_, Error>(()) })
            .expect_err("the bootstrap cannot complete");
        println!("RESULT {err}");
        return;
    }
    let start = Instant::now();
    let env = [
        ("HPX_SECRET", common::secret(1)),
        ("HPX_STARTUP_TIMEOUT", "2".to_owned()),
    ];
    // A job of 3 of which only localities 0 and 1 start.
    let outs = RawJob::spawn(
        "missing_locality_fails_the_bootstrap_with_a_clear_error",
        3,
        &[0, 1],
        &env,
    )
    .wait(Duration::from_secs(40));
    for out in &outs {
        let msg = out.tagged("RESULT").join("\n");
        assert!(msg.contains("did not arrive within"), "{out}");
        assert!(msg.contains("missing: 2"), "{out}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
}

#[hpx::action]
async fn my_pid() -> u32 {
    std::process::id()
}

#[hpx::action]
async fn never_answers() {
    std::future::pending::<()>().await
}

/// Set once this locality's body has started.
static BODY_RAN: AtomicBool = AtomicBool::new(false);
static BODY_RAN_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Marks this locality's body as started (for [`pid_after_body`]).
fn body_runs() {
    println!("BODY RAN {}", hpx::get_locality_id());
    BODY_RAN.store(true, Ordering::SeqCst);
    BODY_RAN_CHANGED.notify_waiters();
}

/// This process's pid, once its body has started (and said so).
#[hpx::action]
async fn pid_after_body() -> u32 {
    loop {
        let changed = BODY_RAN_CHANGED.notified();
        if BODY_RAN.load(Ordering::SeqCst) {
            return std::process::id();
        }
        changed.await;
    }
}

/// Arrivals at [`count_and_wait_forever`] on this locality.
static ARRIVALS: AtomicU32 = AtomicU32::new(0);
static ARRIVALS_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Counts the caller as arrived, then never answers.
#[hpx::action]
async fn count_and_wait_forever() {
    ARRIVALS.fetch_add(1, Ordering::SeqCst);
    ARRIVALS_CHANGED.notify_waiters();
    std::future::pending::<()>().await
}

/// Waits until `n` callers have arrived at [`count_and_wait_forever`] here.
async fn arrivals(n: u32) {
    loop {
        let changed = ARRIVALS_CHANGED.notified();
        if ARRIVALS.load(Ordering::SeqCst) >= n {
            return;
        }
        changed.await;
    }
}

#[test]
fn killed_locality_fails_pending_futures() {
    if in_locality() {
        let result = hpx::Runtime::builder().threads(2).run(|| async {
            body_runs();
            if hpx::get_locality_id() != 0 {
                return Ok(());
            }
            let victim = LocalityId(2);
            let pending = hpx::async_at(victim, never_answers, ());
            // Its body has run (and said so) before it is killed.
            let pid = hpx::async_at(victim, pid_after_body, ()).await?;
            // SAFETY: kill(2) with a pid from our own job; no memory involved.
            let rc = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            assert_eq!(rc, 0, "kill failed");
            let start = Instant::now();
            let outcome = pending.await;
            let waited = start.elapsed();
            match outcome {
                Err(Error::LocalityLost { locality, .. }) if locality == victim => {
                    println!("RESULT lost after {} ms", waited.as_millis());
                }
                other => println!("RESULT unexpected {other:?}"),
            }
            // New calls fail at once.
            match hpx::async_at(victim, my_pid, ()).await {
                Err(Error::LocalityLost { .. }) => println!("RESULT later calls fail"),
                other => println!("RESULT later call gave {other:?}"),
            }
            Ok::<_, Error>(())
        });
        println!(
            "RESULT exit {}",
            match result {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("err {e}"),
            }
        );
        return;
    }
    let env = [
        ("HPX_SECRET", common::secret(2)),
        ("HPX_PEER_TIMEOUT", "2".to_owned()),
    ];
    let outs = RawJob::spawn("killed_locality_fails_pending_futures", 3, &[0, 1, 2], &env)
        .wait(Duration::from_secs(60));
    for (l, out) in outs.iter().enumerate() {
        assert_eq!(out.tagged("BODY RAN"), [l.to_string()], "{out}");
    }
    let root = outs[0].tagged("RESULT");
    assert_eq!(root.len(), 3, "{}", outs[0]);
    let ms: u64 = root[0]
        .strip_prefix("lost after ")
        .and_then(|s| s.strip_suffix(" ms"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{}", outs[0]));
    assert!(ms < 10_000, "LocalityLost only after {ms} ms");
    assert_eq!(root[1], "later calls fail");
    assert!(
        root[2].starts_with("exit err job aborted: locality 2 was lost"),
        "{}",
        outs[0]
    );
    assert!(
        outs[1].tagged("RESULT exit")[0].starts_with("err job aborted"),
        "{}",
        outs[1]
    );
    assert_eq!(
        outs[2].status.code(),
        None,
        "locality 2 was killed by a signal"
    );
}

#[test]
fn hpxrun_fails_fast_when_a_locality_is_killed() {
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            if me == 1 {
                // Dies once every other locality waits on it.
                arrivals(hpx::get_num_localities() - 1).await;
                println!("RESULT dying {me}");
                // SAFETY: raising SIGKILL on ourselves.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            // The others wait on the dead locality forever.
            println!("RESULT waiting {me}");
            let _ = hpx::async_at(LocalityId(1), count_and_wait_forever, ()).await;
            Ok(())
        });
    }
    let start = Instant::now();
    let out = launch("hpxrun_fails_fast_when_a_locality_is_killed", 3);
    out.assert_failure();
    assert!(out.stderr.contains("locality 1"), "{out}");
    assert!(
        out.stderr.contains("locality 1 killed by signal 9"),
        "{out}"
    );
    assert_eq!(out.tagged_by(1, "RESULT"), ["dying 1"], "{out}");
    for l in [0, 2] {
        assert_eq!(
            out.tagged_by(l, "RESULT"),
            [format!("waiting {l}")],
            "{out}"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
}

/// Drives `work` on the calling thread with `Started::poll_for` (as the
/// Python front does), in slices of a millisecond.
fn drive<T>(
    started: &hpx::Started,
    work: impl std::future::Future<Output = hpx::Result<T>>,
) -> hpx::Result<T> {
    let mut work = std::pin::pin!(work);
    loop {
        if let Some(done) = started.poll_for(work.as_mut(), Duration::from_millis(1))? {
            return done;
        }
    }
}

/// A locality driven from a plain thread (as the Python front drives it):
/// `Runtime::start`, `block_on` and `poll_for`, `finish`.
fn host_locality() -> i32 {
    let fail = |e: Error| {
        eprintln!("Error: {e}");
        match e {
            Error::Aborted(_) => i32::from(hpx::EXIT_ABORTED),
            _ => 1,
        }
    };
    let started = match hpx::Runtime::builder().threads(1).start() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let me = match started.block_on(async { Ok(hpx::get_locality_id()) }) {
        Ok(me) => me,
        Err(e) => return fail(e),
    };
    if std::env::var("HOST_DROP").ok().and_then(|v| v.parse().ok()) == Some(me) {
        drop(started);
        eprintln!("Error: the host dropped the job without finish()");
        return 1;
    }
    let failing: Option<u32> = std::env::var("HOST_FAIL").ok().and_then(|v| v.parse().ok());
    if failing == Some(me) {
        let _ = started.finish(Err("raised in the host".into()));
        eprintln!("Error: raised in the host");
        return 1;
    }
    let start = Instant::now();
    // Work polled on this thread waits for the others without a timer of
    // its own; a slow locality makes it span many budgets.
    let total = drive(&started, async {
        hpx::all_reduce(1u64, ReduceOp::Sum).await
    });
    match (failing, total) {
        (None, Ok(total)) => {
            let n = started.block_on(async { Ok(hpx::get_num_localities()) });
            if n.as_ref().ok() != Some(&(total as u32)) {
                eprintln!("Error: all_reduce gave {total}, {n:?} localities");
                return 1;
            }
            println!("RESULT host ok {me}");
            match started.finish(Ok(())) {
                Ok(()) => 0,
                Err(e) => fail(e),
            }
        }
        (Some(_), Err(e)) => {
            println!(
                "RESULT host saw the failure after {} ms: {e}",
                start.elapsed().as_millis()
            );
            // Calls made after the abort, while the transport closes and
            // once it has, fail with the job's reason, until the locality
            // has stopped.
            let mut calls = 0u32;
            loop {
                calls += 1;
                let after = if calls % 2 == 0 {
                    started.block_on(async { hpx::barrier().await })
                } else {
                    drive(&started, async { hpx::barrier().await })
                };
                match after {
                    Err(Error::Aborted(reason)) if reason.starts_with("the job has ended") => break,
                    Err(Error::Aborted(_)) => {}
                    other => {
                        eprintln!("Error: barrier {calls} after the abort gave {other:?}");
                        return 1;
                    }
                }
            }
            println!("RESULT host calls after the abort {calls}");
            match started.finish(Ok(())) {
                Ok(()) => 0,
                Err(e) => fail(e),
            }
        }
        (_, Ok(total)) => {
            eprintln!("Error: all_reduce gave {total} although a locality failed");
            1
        }
        (None, Err(e)) => fail(e),
    }
}

#[test]
fn a_host_thread_drives_a_job_and_sees_failures() {
    const TEST: &str = "a_host_thread_drives_a_job_and_sees_failures";
    if in_locality() {
        std::process::exit(host_locality());
    }
    for n in [1, 3] {
        let out = launch(TEST, n);
        out.assert_success();
        assert_eq!(out.tagged("RESULT host ok").len(), n as usize, "{out}");
    }
    // A host that drops its job without finish() fails it, and nobody waits.
    let out = launch_with(TEST, 3, &[], &[("HOST_DROP", "2")]);
    out.assert_failure();
    assert!(
        out.stderr.contains(
            "hpxrun: locality 2 exited with code 1: the host dropped the job without finish()"
        ),
        "{out}"
    );
    let out = launch_with(TEST, 3, &[], &[("HOST_FAIL", "1")]);
    out.assert_failure();
    assert!(
        out.stderr
            .contains("hpxrun: locality 1 exited with code 1: raised in the host"),
        "{out}"
    );
    let saw = out.tagged("RESULT host saw the failure after");
    assert_eq!(saw.len(), 2, "{out}");
    for line in saw {
        let ms: u64 = line
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(ms < 2000, "{line}: {out}");
    }
}

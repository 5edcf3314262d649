//! How jobs start and end: examples under hpxrun, SPMD and root-only exit
//! codes, threads per locality, a locality that never arrives, and a
//! locality killed with SIGKILL.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{example, hpxrun_program, in_locality, launch, launch_with, spmd, RawJob};
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
    let out = std::process::Command::new(example("hello_world"))
        .env_remove("HPX_LOCALITY")
        .env_remove("HPX_NUM_LOCALITIES")
        .env_remove("HPX_AGAS")
        .env_remove("SLURM_PROCID")
        .output()
        .expect("run hello_world");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello world from locality 0 of 1\n"
    );
}

#[test]
fn failing_main_fails_the_job_everywhere() {
    if in_locality() {
        return spmd(|| async {
            let n = hpx::get_num_localities();
            if hpx::get_locality_id() == n / 2 {
                return Err("deliberate failure".to_owned());
            }
            Ok(())
        });
    }
    for n in [1, 2, 3, 5] {
        let out = launch("failing_main_fails_the_job_everywhere", n);
        out.assert_failure();
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
            if hpx::get_locality_id() == 1 {
                panic!("main blew up");
            }
            Ok(())
        });
    }
    let out = launch("panicking_main_fails_the_job", 3);
    out.assert_failure();
    assert!(out.stderr.contains("main blew up"), "{out}");
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
            (0, Ok(Some(7))) | (1.., Ok(None)) => return,
            (l, other) => panic!("locality {l}: {other:?}"),
        }
    }
    for n in [1, 2, 4] {
        let out = launch("root_only_runs_main_once_and_others_serve", n);
        out.assert_success();
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

#[test]
fn root_only_failure_is_an_exit_code() {
    if in_locality() {
        let result = hpx::Runtime::builder().run_on_root(|| async { Err::<(), _>("root gave up") });
        if result.is_err() {
            std::process::exit(3);
        }
        return;
    }
    let out = launch("root_only_failure_is_an_exit_code", 3);
    out.assert_failure();
    assert_eq!(out.status.code(), Some(3), "{out}");
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

#[test]
fn killed_locality_fails_pending_futures() {
    if in_locality() {
        let result = hpx::Runtime::builder().threads(2).run(|| async {
            if hpx::get_locality_id() != 0 {
                return Ok(());
            }
            let victim = LocalityId(2);
            let pending = hpx::async_at(victim, never_answers, ());
            let pid = hpx::async_at(victim, my_pid, ()).await?;
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
            if hpx::get_locality_id() == 1 {
                // SAFETY: raising SIGKILL on ourselves.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            // The others wait on the dead locality forever.
            let _ = hpx::async_at(LocalityId(1), never_answers, ()).await;
            Ok(())
        });
    }
    let start = Instant::now();
    let out = launch("hpxrun_fails_fast_when_a_locality_is_killed", 3);
    out.assert_failure();
    assert!(out.stderr.contains("locality 1"), "{out}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
}

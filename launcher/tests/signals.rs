//! SIGTERM and SIGINT sent to the launcher stop the job.
//!
//! This test crate has a single test, because the signals are sent to the whole test process.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{is_sleeping, printed_pids, run_captured, Capture};

/// Runs two sleeping localities, sends `signal` to this process once both have started, and
/// returns hpxrun's exit code and stderr.
fn interrupt_job(signal: libc::c_int) -> (i32, String) {
    let out = Capture::default();
    let err = Capture::default();
    let watcher = {
        let out = out.clone();
        thread::spawn(move || {
            let give_up = Instant::now() + Duration::from_secs(10);
            while printed_pids(&out.text()).len() < 2 && Instant::now() < give_up {
                thread::sleep(Duration::from_millis(10));
            }
            // SAFETY: kill(2) has no memory-safety preconditions; the launcher under test has
            // installed handlers for this signal before starting the children.
            unsafe { libc::kill(libc::getpid(), signal) };
        })
    };
    let start = Instant::now();
    let code = run_captured(
        &["-l", "2", "sh", "-c", "echo pid $$; exec sleep 30"],
        &out,
        &err,
    )
    .expect("job runs");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    watcher.join().expect("watcher thread");
    let pids = printed_pids(&out.text());
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&pid| !is_sleeping(pid)));
    (code, err.text())
}

#[test]
fn signals_stop_the_job() {
    let (code, err) = interrupt_job(libc::SIGTERM);
    assert_eq!(code, 143);
    assert!(err.contains("hpxrun: received SIGTERM, stopping all localities\n"));
    let (code, err) = interrupt_job(libc::SIGINT);
    assert_eq!(code, 130);
    assert!(err.contains("hpxrun: received SIGINT, stopping all localities\n"));
}

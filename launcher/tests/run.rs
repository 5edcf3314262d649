//! End-to-end tests of `run_with_output` with `sh` programs as localities.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{is_sleeping, printed_pids, run, run_captured, Capture};
use hpx_launcher::LaunchError;

/// Every job of these tests gets this deadline (`--timeout`, in seconds):
/// a hung job fails its test (exit code 124) instead of hanging it.
const DEADLINE: &str = "30";

/// A fresh directory where the localities of one job leave files to tell
/// each other how far they got; removed when dropped.
struct Rendezvous(PathBuf);

impl Rendezvous {
    fn new(test: &str) -> Rendezvous {
        let dir = std::env::temp_dir().join(format!("hpxrun-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("rendezvous directory");
        Rendezvous(dir)
    }

    /// Shell code that defines `$D` (the directory) and `wait_for FILE...`,
    /// which waits until every FILE exists in it, or exits with 99 after
    /// about 20 s (the deadline of the condition, not an ordering).
    fn sh(&self) -> String {
        format!(
            "D='{}'; wait_for() {{ i=0; for f in \"$@\"; do \
             while [ ! -e \"$D/$f\" ]; do i=$((i+1)); [ $i -gt 2000 ] && exit 99; \
             sleep 0.01; done; done; }}; ",
            self.0.display()
        )
    }
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sorted output lines.
fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

#[test]
fn every_locality_runs_with_its_number() {
    let o = run(&[
        "--timeout",
        DEADLINE,
        "-l",
        "3",
        "sh",
        "-c",
        "echo hello $HPX_LOCALITY of $HPX_NUM_LOCALITIES",
    ]);
    assert_eq!(o.result.expect("job runs"), 0);
    assert_eq!(
        sorted_lines(&o.out.text()),
        [
            "[L0] hello 0 of 3",
            "[L1] hello 1 of 3",
            "[L2] hello 2 of 3"
        ]
    );
    assert_eq!(o.err.text(), "");
}

#[test]
fn environment_contract() {
    let o = run(&[
        "--timeout",
        DEADLINE,
        "-l",
        "3",
        "-t",
        "2",
        "--startup-timeout",
        "2.5",
        "--no-prefix",
        "--",
        "sh",
        "-c",
        "read word secret <&$HPX_CONTROL_FD; test \"$word\" = secret -a -z \"$HPX_SECRET\" && \
         echo $HPX_LOCALITY $secret $HPX_AGAS $HPX_HOST $HPX_THREADS $HPX_STARTUP_TIMEOUT",
    ]);
    assert_eq!(o.result.expect("job runs"), 0);
    let text = o.out.text();
    let rows: Vec<Vec<&str>> = sorted_lines(&text)
        .into_iter()
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(rows.len(), 3);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 6, "all variables set: {row:?}");
        assert_eq!(row[0], i.to_string());
        let secret = row[1];
        assert_eq!(secret.len(), 64);
        assert!(secret
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(secret, rows[0][1], "one secret per job");
        assert_eq!(row[2], rows[0][2], "one AGAS address per job");
        assert_eq!(row[3], "127.0.0.1");
        assert_eq!(row[4], "2");
        assert_eq!(row[5], "2.5");
    }
    if std::env::var_os("HPX_AGAS").is_none() {
        let port = rows[0][2]
            .strip_prefix("127.0.0.1:")
            .expect("HPX_AGAS on the host of locality 0");
        assert!(
            port.parse::<u16>().is_ok_and(|p| p > 0),
            "port in {}",
            rows[0][2]
        );
    }
    let other = run(&[
        "--timeout",
        DEADLINE,
        "--no-prefix",
        "sh",
        "-c",
        "echo $HPX_SECRET",
    ]);
    assert_eq!(other.result.expect("job runs"), 0);
    assert_ne!(other.out.text().trim(), rows[0][1], "a new secret per job");
}

#[test]
fn hosts_are_assigned_round_robin() {
    let o = run(&[
        "--timeout",
        DEADLINE,
        "-l",
        "4",
        "--hosts",
        "127.0.0.1,localhost",
        "sh",
        "-c",
        "echo $HPX_HOST",
    ]);
    assert_eq!(o.result.expect("job runs"), 0);
    assert_eq!(
        sorted_lines(&o.out.text()),
        [
            "[L0] 127.0.0.1",
            "[L1] localhost",
            "[L2] 127.0.0.1",
            "[L3] localhost"
        ]
    );
}

#[test]
fn arguments_are_passed_unchanged() {
    let o = run(&[
        "--timeout",
        DEADLINE,
        "sh",
        "-c",
        "printf '%s|' \"$@\"; echo",
        "zero",
        "--foo",
        "-x",
        "-l",
        "5",
        "two words",
    ]);
    assert_eq!(o.result.expect("job runs"), 0);
    assert_eq!(o.out.text(), "[L0] --foo|-x|-l|5|two words|\n");
}

#[test]
fn stderr_is_forwarded_and_last_line_is_terminated() {
    let o = run(&[
        "--timeout",
        DEADLINE,
        "-l",
        "2",
        "sh",
        "-c",
        "printf 'to err\\n' >&2; printf 'no newline'",
    ]);
    assert_eq!(o.result.expect("job runs"), 0);
    assert_eq!(
        sorted_lines(&o.out.text()),
        ["[L0] no newline", "[L1] no newline"]
    );
    assert!(o.out.text().ends_with('\n'));
    assert_eq!(sorted_lines(&o.err.text()), ["[L0] to err", "[L1] to err"]);
}

#[test]
fn non_utf8_output_passes_through() {
    let o = run(&["--timeout", DEADLINE, "sh", "-c", "printf 'a\\377b\\n'"]);
    assert_eq!(o.result.expect("job runs"), 0);
    assert_eq!(o.out.bytes(), b"[L0] a\xffb\n");
}

#[test]
fn lines_of_different_localities_never_mix() {
    let script = "i=0; while [ $i -lt 200 ]; do \
                  echo \"line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; \
                  i=$((i+1)); done";
    let o = run(&["--timeout", DEADLINE, "-l", "6", "sh", "-c", script]);
    assert_eq!(o.result.expect("job runs"), 0);
    let text = o.out.text();
    let mut count = 0;
    for line in text.lines() {
        let (prefix, rest) = line.split_at(5);
        assert!(prefix.starts_with("[L") && prefix.ends_with("] "), "{line}");
        assert!(
            rest.starts_with("line ") && rest.ends_with(&"x".repeat(64)),
            "{line}"
        );
        assert_eq!(
            rest.len(),
            "line ".len() + rest[5..].find(' ').unwrap_or(0) + 65
        );
        count += 1;
    }
    assert_eq!(count, 6 * 200);
}

#[test]
fn early_finishers_do_not_fail_the_job() {
    let dir = Rendezvous::new("early-finishers");
    // Localities 0 and 1 leave their pids and exit; locality 2 goes on until
    // hpxrun has reaped both (their pids are gone), so they finished first.
    let script = format!(
        "{}echo started $HPX_LOCALITY; \
         if [ $HPX_LOCALITY = 2 ]; then \
           i=0; for l in 0 1; do \
             while [ ! -e \"$D/$l.pid\" ] || kill -0 \"$(cat \"$D/$l.pid\")\" 2>/dev/null; do \
               i=$((i+1)); [ $i -gt 2000 ] && exit 99; sleep 0.01; done; done; \
           echo others finished; \
         else echo $$ > \"$D/$HPX_LOCALITY.tmp\" && mv \"$D/$HPX_LOCALITY.tmp\" \"$D/$HPX_LOCALITY.pid\"; fi; \
         exit 0",
        dir.sh()
    );
    let o = run(&["--timeout", DEADLINE, "-l", "3", "sh", "-c", &script]);
    assert_eq!(o.result.expect("job runs"), 0, "{}", o.err.text());
    assert_eq!(
        sorted_lines(&o.out.text()),
        [
            "[L0] started 0",
            "[L1] started 1",
            "[L2] others finished",
            "[L2] started 2"
        ]
    );
}

#[test]
fn failing_locality_stops_the_others() {
    let dir = Rendezvous::new("failing-locality");
    // Locality 1 fails once the others have printed their pids.
    let script = format!(
        "{}echo pid $$; touch \"$D/$HPX_LOCALITY\"; \
         if [ $HPX_LOCALITY = 1 ]; then wait_for 0 2; exit 3; fi; exec sleep 30",
        dir.sh()
    );
    let start = Instant::now();
    let o = run(&["--timeout", DEADLINE, "-l", "3", "sh", "-c", &script]);
    let elapsed = start.elapsed();
    assert_eq!(o.result.expect("job runs"), 3);
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(o
        .err
        .text()
        .contains("hpxrun: locality 1 exited with code 3\n"));
    let pids = printed_pids(&o.out.text());
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&pid| !is_sleeping(pid)));
}

#[test]
fn children_ignoring_sigterm_are_killed_after_the_grace_period() {
    let dir = Rendezvous::new("ignoring-sigterm");
    // Locality 1 fails once locality 0 ignores SIGTERM and has printed its pid.
    let script = format!(
        "{}trap '' TERM; echo pid $$; touch \"$D/$HPX_LOCALITY\"; \
         if [ $HPX_LOCALITY = 1 ]; then wait_for 0; exit 5; fi; exec sleep 30",
        dir.sh()
    );
    let start = Instant::now();
    let o = run(&["--timeout", DEADLINE, "-l", "2", "sh", "-c", &script]);
    let elapsed = start.elapsed();
    assert_eq!(o.result.expect("job runs"), 5);
    assert!(
        elapsed >= Duration::from_secs(2),
        "grace period respected: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
    let pids = printed_pids(&o.out.text());
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&pid| !is_sleeping(pid)));
}

#[test]
fn locality_killed_by_a_signal() {
    let dir = Rendezvous::new("killed-by-signal");
    // Locality 0 kills itself once locality 1 has printed its pid.
    let script = format!(
        "{}echo pid $$; touch \"$D/$HPX_LOCALITY\"; \
         if [ $HPX_LOCALITY = 0 ]; then wait_for 1; kill -9 $$; fi; exec sleep 30",
        dir.sh()
    );
    let o = run(&["--timeout", DEADLINE, "-l", "2", "sh", "-c", &script]);
    assert_eq!(o.result.expect("job runs"), 128 + 9, "{}", o.err.text());
    assert!(o
        .err
        .text()
        .contains("hpxrun: locality 0 killed by signal 9 (SIGKILL)\n"));
    let pids = printed_pids(&o.out.text());
    assert_eq!(pids.len(), 2, "{}", o.out.text());
    assert!(pids.iter().all(|&pid| !is_sleeping(pid)));
}

#[test]
fn timeout_stops_the_job() {
    // The localities must print their pids before the timeout: it is long
    // enough for two shells to start on a loaded machine.
    let start = Instant::now();
    let o = run(&[
        "--timeout",
        "2",
        "-l",
        "2",
        "sh",
        "-c",
        "echo pid $$; exec sleep 30",
    ]);
    let elapsed = start.elapsed();
    assert_eq!(o.result.expect("job runs"), 124);
    assert!(elapsed >= Duration::from_secs(2), "took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
    assert!(o.err.text().contains("hpxrun: timeout after 2 s\n"));
    let pids = printed_pids(&o.out.text());
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&pid| !is_sleeping(pid)));
}

#[test]
fn missing_program_is_a_spawn_error() {
    let o = run(&[
        "--timeout",
        DEADLINE,
        "-l",
        "2",
        "/nonexistent/hpx-program",
        "arg",
    ]);
    let err = o.result.expect_err("program does not exist");
    assert!(matches!(err, LaunchError::Spawn { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 127);
    assert!(err
        .to_string()
        .starts_with("cannot start /nonexistent/hpx-program: "));
}

#[test]
fn remote_hosts_need_a_runner() {
    let o = run(&["--hosts", "node1", "sh", "-c", "echo should not run"]);
    let err = o.result.expect_err("remote host without runner");
    assert!(
        matches!(err, LaunchError::RemoteHostWithoutRunner(_)),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 2);
    assert_eq!(o.out.text(), "");
}

#[test]
fn background_process_holding_the_pipe_does_not_hang_the_launcher() {
    let out = Capture::default();
    let err = Capture::default();
    let start = Instant::now();
    let result = run_captured(
        &[
            "--timeout",
            DEADLINE,
            "sh",
            "-c",
            "exec 2>/dev/null; sleep 10 & echo pid $!",
        ],
        &out,
        &err,
    );
    let elapsed = start.elapsed();
    let pids = printed_pids(&out.text());
    for &pid in &pids {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert_eq!(pids.len(), 1, "the locality ran: {}", out.text());
    assert_eq!(result.expect("job runs"), 0);
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(err.text().contains("stdout of locality 0 is still open"));
}

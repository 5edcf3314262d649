//! A localhost-cluster harness: a test re-executes its own binary as N
//! localities, through `hpxrun` (as a user would) or with the environment
//! set by hand (to start an incomplete or hostile job).
//!
//! A test function calls [`role`] first: inside a locality it runs its SPMD
//! body and returns; in the parent it launches the cluster and checks the
//! output. Every launch has a deadline and leaves no process behind.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod hostile;

use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Deadline given to hpxrun for one cluster run.
pub const JOB_TIMEOUT_SECS: u32 = 60;

/// What a launched job printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "job failed: {self}");
        self
    }

    pub fn assert_failure(&self) -> &Self {
        assert!(!self.status.success(), "job should have failed: {self}");
        self
    }

    /// What locality `l` printed after `tag` on its stdout lines (libtest's
    /// own output may share the line, so the tag is searched anywhere).
    pub fn tagged_by(&self, l: u32, tag: &str) -> Vec<String> {
        let prefix = format!("[L{l}] ");
        self.stdout
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .filter_map(|line| {
                line.find(tag)
                    .map(|i| line[i + tag.len()..].trim().to_owned())
            })
            .collect()
    }

    /// Asserts that each of `localities` printed [`done`] for `test` once.
    pub fn assert_done(&self, test: &str, localities: impl IntoIterator<Item = u32>) -> &Self {
        let tag = format!("BODY DONE {test}");
        for l in localities {
            assert_eq!(
                self.tagged_by(l, &tag),
                [l.to_string()],
                "locality {l} did not finish its body: {self}"
            );
        }
        self
    }

    /// Asserts that each of localities `0..n` printed [`done`] for `test` once.
    pub fn assert_all_done(&self, test: &str, n: u32) -> &Self {
        self.assert_done(test, 0..n)
    }

    /// What every locality printed after `tag`.
    pub fn tagged(&self, tag: &str) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|line| {
                line.find(tag)
                    .map(|i| line[i + tag.len()..].trim().to_owned())
            })
            .collect()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// `Err(what)` unless `cond`: the SPMD bodies' assertion, which fails the
/// locality with a message instead of panicking in the runtime.
pub fn ensure(cond: bool, what: impl std::fmt::Display) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

/// An error as text, for `map_err` in SPMD bodies.
pub fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Whether this process is a locality started by a test (not the test itself).
pub fn in_locality() -> bool {
    std::env::var_os("HPX_LOCALITY").is_some()
}

/// The role given to a child process by [`spawn_raw`], if any.
pub fn role() -> Option<String> {
    std::env::var("HPX_TEST_ROLE").ok()
}

/// Runs `body` as this locality's SPMD main with two workers; a failure
/// fails the process as `#[hpx::main]` does.
pub fn spmd<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    spmd_with(2, body)
}

/// [`spmd`] with `threads` workers. On failure it prints `Error: ...` and
/// exits with 1, or with `hpx::EXIT_ABORTED` when the job was aborted by
/// another locality's failure (what hpxrun reads to name the first one).
pub fn spmd_with<F, Fut>(threads: usize, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    if let Err(e) = hpx::Runtime::builder().threads(threads).run(body) {
        eprintln!("Error: {e}");
        let code = match e {
            hpx::Error::Aborted(_) => i32::from(hpx::EXIT_ABORTED),
            _ => 1,
        };
        std::process::exit(code);
    }
}

fn target_dir() -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Path of an example binary of this package (built by `cargo test`/nextest).
pub fn example(name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}

/// Path of the hpxrun binary.
pub fn hpxrun() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hpxrun"))
}

/// Arguments that make the test binary run just `test` in one process.
pub fn self_args(test: &str) -> Vec<String> {
    vec![
        test.to_owned(),
        "--exact".to_owned(),
        "--nocapture".to_owned(),
        "--test-threads=1".to_owned(),
    ]
}

/// Extra time the parent gives hpxrun beyond its own `--timeout` before it
/// kills hpxrun itself (which takes its localities with it).
const LAUNCHER_GRACE: Duration = Duration::from_secs(30);

/// Reads `child`'s output and waits for it to exit, killing it at `deadline`.
/// Returns what it printed and whether it had to be killed.
fn collect_within(mut child: Child, deadline: Duration) -> (Output, bool) {
    let end = Instant::now() + deadline;
    let (tx, rx) = std::sync::mpsc::channel();
    let pipes: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("piped stdout")),
        Box::new(child.stderr.take().expect("piped stderr")),
    ];
    for (i, mut pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = tx.send((i, String::from_utf8_lossy(&text).into_owned()));
        });
    }
    drop(tx);
    // Both pipes reach their end when the child exits (or closes them).
    let mut texts = [None, None];
    let mut killed = false;
    while texts.iter().any(Option::is_none) {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok((i, text)) => texts[i] = Some(text),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !killed => {
                killed = true;
                // Child::kill never signals a pid that was already reaped.
                let _ = child.kill();
            }
            // Killed, yet something (a grandchild) still holds a pipe open.
            Err(_) => break,
        }
    }
    // The pipes are closed; the exit follows (or the deadline kills it).
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if !killed && Instant::now() >= end {
            killed = true;
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let [stdout, stderr] = texts.map(Option::unwrap_or_default);
    (
        Output {
            status,
            stdout,
            stderr,
        },
        killed,
    )
}

/// Reads `child`'s output and waits for it; kills it and fails the test if it
/// runs past `deadline`.
fn collect(child: Child, deadline: Duration) -> Output {
    let (out, killed) = collect_within(child, deadline);
    assert!(!killed, "killed after {deadline:?}: {out}");
    out
}

/// Runs `cmd` (one process, not a job) to its end within `deadline`, killing
/// it and failing the test if it takes longer.
pub fn output_within(cmd: &mut Command, deadline: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the program");
    collect(child, deadline)
}

/// Runs `program args` on `n` localities with hpxrun and waits for it.
pub fn hpxrun_program(
    n: u32,
    program: &std::path::Path,
    args: &[String],
    hpxrun_opts: &[&str],
) -> Output {
    let child = Command::new(hpxrun())
        .arg("-l")
        .arg(n.to_string())
        .arg("--timeout")
        .arg(JOB_TIMEOUT_SECS.to_string())
        .args(hpxrun_opts)
        .arg("--")
        .arg(program)
        .args(args)
        .env_remove("HPX_AGAS")
        .env("HPX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hpxrun");
    collect(child, launcher_deadline())
}

/// Runs the calling test's SPMD body on `n` localities through hpxrun.
pub fn launch(test: &str, n: u32) -> Output {
    launch_with(test, n, &[], &[])
}

/// The `HPX_PARCELPORT` of this test run with QUIC between hosts: for tests
/// whose intruders speak QUIC (TCP's intruders are tested in the
/// parcelport's own tests). Shared memory stays as the run has it.
pub fn with_quic() -> String {
    let list = std::env::var("HPX_PARCELPORT").unwrap_or_else(|_| "shm,quic".into());
    list.split(',')
        .map(|p| if p.trim() == "tcp" { "quic" } else { p })
        .collect::<Vec<_>>()
        .join(",")
}

/// [`launch`] with extra hpxrun options and environment.
pub fn launch_with(test: &str, n: u32, hpxrun_opts: &[&str], env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(hpxrun());
    cmd.arg("-l")
        .arg(n.to_string())
        .arg("--timeout")
        .arg(JOB_TIMEOUT_SECS.to_string())
        .args(hpxrun_opts)
        .arg("--")
        .arg(exe)
        .args(self_args(test))
        .env_remove("HPX_AGAS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    collect(cmd.spawn().expect("start hpxrun"), launcher_deadline())
}

/// How long the parent waits for hpxrun, whose own deadline is `--timeout`.
fn launcher_deadline() -> Duration {
    Duration::from_secs(u64::from(JOB_TIMEOUT_SECS)) + LAUNCHER_GRACE
}

/// A port free for UDP and TCP on 127.0.0.1 for a rendezvous.
pub fn free_port() -> u16 {
    hpx_parcelport::free_port(std::net::Ipv4Addr::LOCALHOST.into()).expect("a free port")
}

/// A random-enough job secret for hand-started jobs.
pub fn secret(seed: u8) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:032x}{:02x}{:030x}", nanos, seed, std::process::id())
}

/// Processes started by hand; all are killed when this is dropped.
pub struct RawJob {
    children: Vec<Option<Child>>,
}

impl RawJob {
    /// Starts this test binary as the given localities of an `n`-locality job.
    pub fn spawn(test: &str, n: u32, localities: &[u32], env: &[(&str, String)]) -> RawJob {
        let port = free_port();
        let exe = std::env::current_exe().expect("test binary path");
        // Filled one by one, so that a failed start still kills the earlier ones.
        let mut job = RawJob {
            children: Vec::new(),
        };
        for l in localities {
            let mut cmd = Command::new(&exe);
            cmd.args(self_args(test))
                .env("HPX_LOCALITY", l.to_string())
                .env("HPX_NUM_LOCALITIES", n.to_string())
                .env("HPX_AGAS", format!("127.0.0.1:{port}"))
                .env("HPX_HOST", "127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in env {
                cmd.env(k, v);
            }
            job.children
                .push(Some(cmd.spawn().expect("start locality")));
        }
        job
    }

    /// Waits for every process, killing all of them at `deadline`.
    pub fn wait(self, deadline: Duration) -> Vec<Output> {
        let all: Vec<usize> = (0..self.children.len()).collect();
        self.wait_for(&all, deadline)
    }

    /// Waits for the processes at positions `which` (killing them at
    /// `deadline`); the others are killed when this returns.
    pub fn wait_for(mut self, which: &[usize], deadline: Duration) -> Vec<Output> {
        let handles: Vec<_> = which
            .iter()
            .map(|&i| {
                let child = self.children[i].take().expect("child");
                std::thread::spawn(move || collect_within(child, deadline))
            })
            .collect();
        let results: Vec<(Output, bool)> = handles
            .into_iter()
            .map(|h| h.join().expect("collect a locality"))
            .collect();
        let killed: Vec<String> = results
            .iter()
            .enumerate()
            .filter(|(_, (_, killed))| *killed)
            .map(|(i, (out, _))| format!("process {i} was killed: {out}"))
            .collect();
        assert!(
            killed.is_empty(),
            "the job did not end within {deadline:?}:\n{}",
            killed.join("\n")
        );
        results.into_iter().map(|(out, _)| out).collect()
    }
}

impl Drop for RawJob {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Prints the line that shows the parent this locality's body ran to its end
/// (see [`Output::assert_done`]); call it last in the body.
pub fn done(test: &str) {
    done_as(test, hpx::get_locality_id());
}

/// [`done`] for locality `l`, where no runtime is current.
pub fn done_as(test: &str, l: u32) {
    println!("BODY DONE {test} {l}");
}

impl RawJob {
    /// A job of no processes yet, for processes that the test starts itself
    /// (with a command prefix such as `ip netns exec`, or variables of their
    /// own) and hands over with [`RawJob::adopt`]: they are waited for and
    /// killed like [`RawJob::spawn`]'s.
    pub fn empty() -> RawJob {
        RawJob {
            children: Vec::new(),
        }
    }

    /// Adds a process started by the test (with piped stdout and stderr);
    /// it is killed with the others if the job is dropped.
    pub fn adopt(&mut self, child: Child) {
        self.children.push(Some(child));
    }
}

//! A localhost-cluster harness: a test re-executes its own binary as N
//! localities, through `hpxrun` (as a user would) or with the environment
//! set by hand (to start an incomplete or hostile job).
//!
//! A test function calls [`role`] first: inside a locality it runs its SPMD
//! body and returns; in the parent it launches the cluster and checks the
//! output. Every launch has a deadline and leaves no process behind.

#![allow(dead_code)] // each test binary uses a different part of the harness

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

/// Runs `body` as this locality's SPMD main; a failure fails the process.
pub fn spmd<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    if let Err(e) = hpx::Runtime::builder().threads(2).run(body) {
        panic!("locality {:?} failed: {e}", std::env::var("HPX_LOCALITY"));
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

fn collect(mut child: Child) -> Output {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    let stderr = reader.join().unwrap_or_default();
    let status = child.wait().expect("wait for child");
    Output {
        status,
        stdout,
        stderr,
    }
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
    collect(child)
}

/// Runs the calling test's SPMD body on `n` localities through hpxrun.
pub fn launch(test: &str, n: u32) -> Output {
    launch_with(test, n, &[], &[])
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
    collect(cmd.spawn().expect("start hpxrun"))
}

/// A free UDP port on 127.0.0.1 for a rendezvous.
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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
        let children = localities
            .iter()
            .map(|l| {
                let mut cmd = Command::new(&exe);
                cmd.args(self_args(test))
                    .env("HPX_LOCALITY", l.to_string())
                    .env("HPX_NUM_LOCALITIES", n.to_string())
                    .env("HPX_AGAS", format!("127.0.0.1:{port}"))
                    .env("HPX_HOST", "127.0.0.1")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                for (k, v) in env {
                    cmd.env(k, v);
                }
                Some(cmd.spawn().expect("start locality"))
            })
            .collect();
        RawJob { children }
    }

    /// Waits for every process, killing all of them at `deadline`.
    pub fn wait(mut self, deadline: Duration) -> Vec<Output> {
        let end = Instant::now() + deadline;
        let (tx, rx) = std::sync::mpsc::channel();
        let mut pids = Vec::new();
        let n = self.children.len();
        for (i, slot) in self.children.iter_mut().enumerate() {
            let child = slot.take().expect("child");
            pids.push(child.id());
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send((i, collect(child)));
            });
        }
        let mut results: Vec<Option<Output>> = (0..n).map(|_| None).collect();
        let mut killed = false;
        for _ in 0..n {
            let received = if killed {
                rx.recv().ok()
            } else {
                match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                    Ok(r) => Some(r),
                    Err(_) => {
                        killed = true;
                        for pid in &pids {
                            // SAFETY: kill(2) on our own children's pids; no memory is involved.
                            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
                        }
                        rx.recv().ok()
                    }
                }
            };
            if let Some((i, out)) = received {
                results[i] = Some(out);
            }
        }
        assert!(!killed, "the job did not end within {deadline:?}");
        results
            .into_iter()
            .map(|r| r.expect("every locality reported"))
            .collect()
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

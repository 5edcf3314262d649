//! Starting, supervising and stopping the processes of a job.

use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use signal_hook::consts::signal::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::error::LaunchError;
use crate::output::{message, Forwarders, Sink};
use crate::plan::{format_seconds, ChildSpec, LaunchPlan};

/// How long children may take to exit after SIGTERM before they get SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// Longest sleep between two checks of the children (SIGCHLD normally wakes us earlier).
const POLL: Duration = Duration::from_millis(100);

/// Exit code of a job stopped by `--timeout`.
const TIMEOUT_EXIT_CODE: i32 = 124;

/// A started child process.
struct Running {
    /// Name used in messages (`locality 3`).
    name: String,
    /// The process.
    child: Child,
    /// Whether its exit status has been collected.
    exited: bool,
}

/// The children of a job. Dropping it kills and reaps every child still running, so no
/// process outlives the job even if supervision is cut short.
#[derive(Default)]
struct Children(Vec<Running>);

impl Children {
    /// The children whose exit has not been collected yet.
    fn running(&mut self) -> impl Iterator<Item = &mut Running> {
        self.0.iter_mut().filter(|r| !r.exited)
    }

    /// Whether every child has exited.
    fn all_exited(&self) -> bool {
        self.0.iter().all(|r| r.exited)
    }

    /// Collects exits without reporting them.
    fn reap_quietly(&mut self) {
        for r in self.running() {
            // An error means the child cannot be waited for at all: nothing left to stop.
            r.exited = !matches!(r.child.try_wait(), Ok(None));
        }
    }

    /// Sends SIGTERM to every running child.
    fn terminate(&mut self) {
        for r in self.running() {
            if let Ok(pid) = libc::pid_t::try_from(r.child.id()) {
                // SAFETY: kill(2) has no memory-safety preconditions. `pid` is our own child
                // whose exit has not been collected, so it cannot have been reused by an
                // unrelated process.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }

    /// Sends SIGKILL to every running child and waits for it.
    fn kill_and_reap(&mut self) {
        for r in self.running() {
            let _ = r.child.kill();
            let _ = r.child.wait();
            r.exited = true;
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// A thread turning SIGINT, SIGTERM and SIGCHLD into channel events.
struct SignalWatcher {
    /// Closes the signal iterator.
    handle: Handle,
    /// The thread reading the iterator.
    thread: Option<JoinHandle<()>>,
    /// Received signal numbers.
    events: Receiver<i32>,
}

impl SignalWatcher {
    /// Installs the handlers and starts the thread.
    fn start() -> io::Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGCHLD])?;
        let handle = signals.handle();
        let (tx, events) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("hpxrun-signals".to_owned())
            .spawn(move || {
                for signal in signals.forever() {
                    if tx.send(signal).is_err() {
                        break;
                    }
                }
            });
        match thread {
            Ok(thread) => Ok(Self {
                handle,
                thread: Some(thread),
                events,
            }),
            Err(e) => {
                handle.close();
                Err(e)
            }
        }
    }

    /// Waits up to `timeout` for a signal; `None` if none arrived.
    fn next(&self, timeout: Duration) -> Option<i32> {
        match self.events.recv_timeout(timeout) {
            Ok(signal) => Some(signal),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                thread::sleep(timeout);
                None
            }
        }
    }
}

impl Drop for SignalWatcher {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether `signal` asks `hpxrun` to stop the job.
fn is_stop_signal(signal: i32) -> bool {
    signal == SIGINT || signal == SIGTERM
}

/// Starts every child of `plan`, forwards their output to `out` and `err`, and supervises them
/// until the job is over. Returns the job's exit code.
pub(crate) fn execute<O, E>(
    plan: &LaunchPlan,
    timeout: Option<Duration>,
    out: O,
    err: E,
) -> Result<i32, LaunchError>
where
    O: Write + Send + 'static,
    E: Write + Send + 'static,
{
    let out: Sink<O> = Arc::new(Mutex::new(out));
    let err: Sink<E> = Arc::new(Mutex::new(err));
    let signals = SignalWatcher::start().map_err(|source| LaunchError::Io {
        what: "cannot install signal handlers",
        source,
    })?;
    let mut children = Children::default();
    let mut forwarders = Forwarders::new();
    let result = start_all(plan, &mut children, &mut forwarders, &out, &err)
        .and_then(|()| supervise(&mut children, &signals, timeout, &err));
    stop_all(&mut children, &signals);
    forwarders.finish(&err);
    result
}

/// Spawns the children one after the other, with a forwarding thread per output pipe.
fn start_all<O, E>(
    plan: &LaunchPlan,
    children: &mut Children,
    forwarders: &mut Forwarders,
    out: &Sink<O>,
    err: &Sink<E>,
) -> Result<(), LaunchError>
where
    O: Write + Send + 'static,
    E: Write + Send + 'static,
{
    let thread_error = |source| LaunchError::Io {
        what: "cannot start an output thread",
        source,
    };
    for spec in &plan.children {
        let mut child = spawn(spec).map_err(|source| LaunchError::Spawn {
            program: spec.program.clone(),
            source,
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        children.0.push(Running {
            name: spec.name.clone(),
            child,
            exited: false,
        });
        if let Some(stdout) = stdout {
            let name = format!("stdout of {}", spec.name);
            forwarders
                .spawn(name, stdout, &spec.prefix, out)
                .map_err(thread_error)?;
        }
        if let Some(stderr) = stderr {
            let name = format!("stderr of {}", spec.name);
            forwarders
                .spawn(name, stderr, &spec.prefix, err)
                .map_err(thread_error)?;
        }
    }
    Ok(())
}

/// Starts one child with piped output that dies with `hpxrun`.
fn spawn(spec: &ChildSpec) -> io::Result<Child> {
    let mut command = spec.to_command();
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(&mut command);
    command.spawn()
}

/// Makes the child receive SIGKILL when the thread that spawned it (and so `hpxrun`) dies.
///
/// Linux delivers the parent-death signal when the spawning *thread* exits, so children must
/// be spawned from a thread that outlives them: [`execute`] reaps every child before it
/// returns to its caller.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;

    let parent = std::process::id();
    let hook = move || {
        // SAFETY: prctl(2) with PR_SET_PDEATHSIG only reads its integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // If the parent died before prctl took effect, the signal will never come.
        // SAFETY: getppid(2) has no preconditions.
        if u32::try_from(unsafe { libc::getppid() }).ok() != Some(parent) {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec, where only async-signal-safe operations
    // are allowed: it makes the async-signal-safe system calls prctl(2) and getppid(2) and
    // builds `io::Error` values from raw error codes, which does not allocate.
    unsafe { command.pre_exec(hook) };
}

/// Parent-death signals exist on Linux only; elsewhere children are left as they are.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// Waits until every child succeeded (0), one failed (its code, or 128 + signal), the
/// timeout expired (124) or `hpxrun` got SIGINT/SIGTERM (128 + signal). Reports the reason
/// on `err`. The remaining children are left for [`stop_all`].
fn supervise<E: Write>(
    children: &mut Children,
    signals: &SignalWatcher,
    timeout: Option<Duration>,
    err: &Mutex<E>,
) -> Result<i32, LaunchError> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t).map(|d| (t, d)));
    loop {
        for r in children.running() {
            let status = r.child.try_wait().map_err(|source| LaunchError::Io {
                what: "cannot wait for a child process",
                source,
            })?;
            if let Some(status) = status {
                r.exited = true;
                if !status.success() {
                    message(err, &describe_exit(&r.name, status));
                    return Ok(exit_code(status));
                }
            }
        }
        if children.all_exited() {
            return Ok(0);
        }
        let wait = deadline.map_or(POLL, |(_, end)| {
            end.saturating_duration_since(Instant::now()).min(POLL)
        });
        if let Some(signal) = signals.next(wait).filter(|s| is_stop_signal(*s)) {
            message(
                err,
                &format!("received {}, stopping all localities", signal_name(signal)),
            );
            return Ok(128 + signal);
        }
        if let Some((limit, end)) = deadline {
            if Instant::now() >= end {
                message(err, &format!("timeout after {} s", format_seconds(limit)));
                return Ok(TIMEOUT_EXIT_CODE);
            }
        }
    }
}

/// Stops every child still running: SIGTERM, then SIGKILL for those still alive after
/// [`GRACE`] (or at once on a further SIGINT/SIGTERM), and reaps them all.
fn stop_all(children: &mut Children, signals: &SignalWatcher) {
    children.terminate();
    let grace_end = Instant::now() + GRACE;
    loop {
        children.reap_quietly();
        if children.all_exited() {
            return;
        }
        let left = grace_end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if signals.next(left.min(POLL)).is_some_and(is_stop_signal) {
            break;
        }
    }
    children.kill_and_reap();
}

/// `locality 1 exited with code 3` / `locality 1 killed by signal 9`.
fn describe_exit(name: &str, status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("{name} exited with code {code}"),
        (None, Some(signal)) => format!("{name} killed by signal {signal}"),
        (None, None) => format!("{name} exited abnormally ({status})"),
    }
}

/// The exit code `hpxrun` takes over from a failed child: its code, or 128 + signal.
fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// `SIGINT` / `SIGTERM` (or the number for any other signal).
fn signal_name(signal: i32) -> String {
    match signal {
        SIGINT => "SIGINT".to_owned(),
        SIGTERM => "SIGTERM".to_owned(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions_and_codes() {
        let exited = ExitStatus::from_raw(3 << 8);
        assert_eq!(
            describe_exit("locality 1", exited),
            "locality 1 exited with code 3"
        );
        assert_eq!(exit_code(exited), 3);
        let killed = ExitStatus::from_raw(9);
        assert_eq!(
            describe_exit("locality 0", killed),
            "locality 0 killed by signal 9"
        );
        assert_eq!(exit_code(killed), 137);
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(SIGINT), "SIGINT");
        assert_eq!(signal_name(SIGTERM), "SIGTERM");
        assert_eq!(signal_name(SIGCHLD), format!("signal {SIGCHLD}"));
        assert!(is_stop_signal(SIGINT) && is_stop_signal(SIGTERM) && !is_stop_signal(SIGCHLD));
    }
}

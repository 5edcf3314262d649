//! Starting, supervising and stopping the processes of a job.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use signal_hook::consts::signal::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::error::LaunchError;
use crate::output::{message, Forwarders, LastError, Sink};
use crate::plan::{format_seconds, ChildSpec, ControlVia, LaunchPlan, CONTROL_FD};

/// How long children may take to exit after SIGTERM before they get SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// Longest sleep between two checks of the children (SIGCHLD normally wakes us earlier).
const POLL: Duration = Duration::from_millis(100);

/// Exit code of a job stopped by `--timeout`.
const TIMEOUT_EXIT_CODE: i32 = 124;

/// After the first locality failed, how long the others get to end by themselves (they
/// learn of the failure from their peers or from `hpxrun`) before they are stopped.
const END_GRACE: Duration = Duration::from_secs(2);

/// Exit code of a locality that ended only because the job was aborted elsewhere
/// (`hpx_runtime::EXIT_ABORTED`): not the cause of a failure.
const ABORTED_EXIT_CODE: i32 = hpx_runtime::EXIT_ABORTED as i32;

/// A started child process.
struct Running {
    /// Name used in messages (`locality 3`).
    name: String,
    /// The process.
    child: Child,
    /// Whether its exit status has been collected.
    exited: bool,
    /// `hpxrun`'s end of the child's channel (non-blocking), if it has one.
    control: Option<File>,
    /// The last `Error: ...` line the child wrote to its standard error.
    last_error: LastError,
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

    /// Tells every other running child that child `index` (locality `index`) ended with
    /// `how`. Best effort: a child that does not read its channel misses it.
    fn tell_lost(&mut self, index: usize, how: &str) {
        let line = format!("lost {index} {how}\n");
        for (i, r) in self.0.iter_mut().enumerate() {
            if i == index || r.exited {
                continue;
            }
            if let Some(control) = r.control.as_mut() {
                let _ = control.write_all(line.as_bytes());
            }
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
    out: &Sink<O>,
    err: &Sink<E>,
) -> Result<i32, LaunchError>
where
    O: Write + Send + 'static,
    E: Write + Send + 'static,
{
    let signals = SignalWatcher::start().map_err(|source| LaunchError::Io {
        what: "cannot install signal handlers",
        source,
    })?;
    let mut children = Children::default();
    let mut forwarders = Forwarders::new();
    let result = start_all(plan, &mut children, &mut forwarders, out, err)
        .and_then(|()| supervise(&mut children, &signals, timeout, err));
    stop_all(&mut children, &signals);
    forwarders.finish(err);
    remove_shared_files(plan);
    result
}

/// Removes the files the job's localities on this machine left in the shared-memory
/// directory (a locality killed with SIGKILL cannot remove its own).
fn remove_shared_files(plan: &LaunchPlan) {
    let local = plan
        .children
        .iter()
        .all(|c| c.control == Some(ControlVia::Descriptor));
    let dir = match std::env::var("HPX_SHM") {
        Ok(v) if v.is_empty() || v == "off" => return,
        Ok(v) => std::path::PathBuf::from(v),
        Err(_) => std::path::PathBuf::from("/dev/shm"),
    };
    let secret = hpx_runtime::config::parse_secret(&plan.secret);
    if let (true, Ok(secret)) = (local, secret) {
        hpx_parcelport::shared::remove_job_files(&dir, &hpx_parcelport::shared::job_tag(&secret));
    }
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
        let (mut child, control) =
            spawn(spec, &plan.secret).map_err(|source| LaunchError::Spawn {
                program: spec.program.clone(),
                source,
            })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let last_error = LastError::default();
        children.0.push(Running {
            name: spec.name.clone(),
            child,
            exited: false,
            control,
            last_error: last_error.clone(),
        });
        if let Some(stdout) = stdout {
            let name = format!("stdout of {}", spec.name);
            forwarders
                .spawn(name, stdout, &spec.prefix, out, None)
                .map_err(thread_error)?;
        }
        if let Some(stderr) = stderr {
            let name = format!("stderr of {}", spec.name);
            forwarders
                .spawn(name, stderr, &spec.prefix, err, Some(last_error))
                .map_err(thread_error)?;
        }
    }
    Ok(())
}

/// Starts one child with piped output that dies with `hpxrun`, and gives it its channel
/// with the job secret as the first line.
fn spawn(spec: &ChildSpec, secret: &str) -> io::Result<(Child, Option<File>)> {
    let mut command = spec.to_command();
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(&mut command);
    let Some(via) = spec.control else {
        return command.spawn().map(|child| (child, None));
    };
    let (read, write) = pipe()?;
    match via {
        ControlVia::Descriptor => give_descriptor(&mut command, read.as_raw_fd()),
        ControlVia::Stdin => {
            command.stdin(Stdio::from(read.try_clone()?));
        }
    }
    let child = command.spawn()?;
    drop(command);
    drop(read);
    let mut control = File::from(write);
    // An empty pipe takes these few bytes without blocking. A child that has already ended
    // (a script that did not need the job) no longer reads: not an error of the launch.
    let _ = writeln!(control, "secret {secret}");
    set_nonblocking(&control)?;
    Ok((child, Some(control)))
}

/// A pipe whose descriptors are close-on-exec and above the standard ones (so that setting
/// up the child's standard streams cannot overwrite them).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let high = |fd: OwnedFd| -> io::Result<OwnedFd> {
        if fd.as_raw_fd() > 2 {
            return Ok(fd);
        }
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) duplicates an open descriptor we own.
        let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if new == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `new` was just created and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(new) })
    };
    Ok((high(read)?, high(write)?))
}

fn set_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl(2) reads and sets the status flags of a descriptor we own.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags != -1 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) != -1
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `fd` the child's descriptor [`CONTROL_FD`], kept open across exec.
fn give_descriptor(command: &mut Command, fd: i32) {
    let hook = move || {
        // SAFETY: dup2(2) and fcntl(2) act on descriptors of this (forked) process only.
        let ok = unsafe {
            if fd == CONTROL_FD {
                libc::fcntl(fd, libc::F_SETFD, 0) != -1
            } else {
                libc::dup2(fd, CONTROL_FD) != -1
            }
        };
        if ok {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: the hook runs between fork and exec and makes only the async-signal-safe calls
    // dup2(2) and fcntl(2), building `io::Error` from a raw code without allocating.
    unsafe { command.pre_exec(hook) };
}

/// Makes the child receive SIGTERM when the thread that spawned it (and so `hpxrun`) dies:
/// a locality then aborts the job in order and removes its shared files.
///
/// Linux delivers the parent-death signal when the spawning *thread* exits, so children must
/// be spawned from a thread that outlives them: [`execute`] reaps every child before it
/// returns to its caller.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    let hook = move || {
        // SAFETY: prctl(2) with PR_SET_PDEATHSIG only reads its integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) } == -1 {
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
///
/// A failed child is reported to the others over their channels at once (they end the job
/// without waiting to notice); they get [`END_GRACE`] to end by themselves, and the failure
/// reported is the first that was not a consequence of another ([`ABORTED_EXIT_CODE`]).
fn supervise<E: Write>(
    children: &mut Children,
    signals: &SignalWatcher,
    timeout: Option<Duration>,
    err: &Mutex<E>,
) -> Result<i32, LaunchError> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t).map(|d| (t, d)));
    let mut failures: Vec<(usize, ExitStatus)> = Vec::new();
    let mut ending: Option<Instant> = None;
    loop {
        let mut failed_now = Vec::new();
        for (i, r) in children.0.iter_mut().enumerate().filter(|(_, r)| !r.exited) {
            let status = r.child.try_wait().map_err(|source| LaunchError::Io {
                what: "cannot wait for a child process",
                source,
            })?;
            if let Some(status) = status {
                r.exited = true;
                if !status.success() {
                    failed_now.push((i, status));
                }
            }
        }
        for &(i, status) in &failed_now {
            children.tell_lost(i, &describe_status(status));
            ending.get_or_insert_with(|| Instant::now() + END_GRACE);
        }
        failures.extend(failed_now);
        if children.all_exited() || ending.is_some_and(|end| Instant::now() >= end) {
            return Ok(report_failure(children, &failures, err));
        }
        let wait = deadline.map_or(POLL, |(_, end)| {
            end.saturating_duration_since(Instant::now()).min(POLL)
        });
        let wait = ending.map_or(wait, |end| {
            end.saturating_duration_since(Instant::now()).min(wait)
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

/// How long the report of a failure waits for the failed child's standard error to be read
/// to its end (a background process of the child may hold the pipe open).
const LAST_WORDS: Duration = Duration::from_millis(500);

/// Reports the failure that caused the job to end (the first child that failed by itself,
/// else the first that failed) and returns `hpxrun`'s exit code: 0 if nothing failed.
fn report_failure<E: Write>(
    children: &Children,
    failures: &[(usize, ExitStatus)],
    err: &Mutex<E>,
) -> i32 {
    let primary = failures
        .iter()
        .find(|(_, s)| s.code() != Some(ABORTED_EXIT_CODE))
        .or(failures.first());
    let Some(&(i, status)) = primary else {
        return 0;
    };
    let Some(r) = children.0.get(i) else {
        return exit_code(status);
    };
    let mut text = describe_exit(&r.name, status);
    // Its last lines may still be in the pipe: the cause is its last error.
    r.last_error.wait_closed(LAST_WORDS);
    if let Some(line) = r.last_error.get() {
        text.push_str(": ");
        text.push_str(&line);
    }
    let others = failures.len() - 1;
    if others > 0 {
        text.push_str(&format!(
            " (first failure; {others} other{} ended with it)",
            if others == 1 { "" } else { "s" }
        ));
    }
    message(err, &text);
    exit_code(status)
}

/// `locality 1 exited with code 3` / `locality 1 killed by signal 9 (SIGKILL)`.
fn describe_exit(name: &str, status: ExitStatus) -> String {
    format!("{name} {}", describe_status(status))
}

/// `exited with code 3` / `killed by signal 9 (SIGKILL)`.
fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal} ({})", signal_name(signal)),
        (None, None) => format!("exited abnormally ({status})"),
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

/// `SIGINT` / `SIGTERM` / ... (or the number for a signal without a common name).
fn signal_name(signal: i32) -> String {
    let name = match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
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
            "locality 0 killed by signal 9 (SIGKILL)"
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

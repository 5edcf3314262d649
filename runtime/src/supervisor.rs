//! This process's links to the outside that are not localities: the
//! launcher that started it and the signals it receives.
//!
//! **The launcher's channel.** `hpxrun` gives every locality the read end
//! of a pipe and names it in `HPX_CONTROL_FD` (over `ssh`, the remote
//! shell moves ssh's standard input there). It carries text lines:
//!
//! - `secret HEX`: the job secret, first and once (so it appears in no
//!   command line and no environment);
//! - `lost ID REASON`: the launcher saw locality `ID` end with a failure
//!   (`exited with code 1`, `killed by signal 9`), before its peers could
//!   notice: it is declared lost at once, or the bootstrap fails at once;
//! - end of file: the launcher is gone (killed, or its `ssh` connection
//!   dropped): the job is aborted.
//!
//! **Signals.** In a job of several localities, SIGINT, SIGTERM and SIGHUP
//! abort the job in order (peers learn why, shared files are removed)
//! instead of killing the process on the spot; if the process is still
//! there [`STOP_GRACE`] later, or at a second signal, it exits at once.
//!
//! Both arrive on threads of their own and are handed to subscribers as
//! [`Notice`]s; subscribers must not block.

use std::io::{BufRead, BufReader, Read};
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;

use hpx_parcelport::LocalityId;

use crate::{Error, Result};

/// How long a stop signal leaves the job to end in order.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long the launcher's first line may take to arrive.
const SECRET_WAIT_MS: i32 = 10_000;

/// Longest line accepted from the launcher.
const MAX_LINE: u64 = 4096;

/// What the outside tells this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The launcher saw a locality end with a failure.
    Lost {
        /// The locality.
        locality: LocalityId,
        /// How it ended.
        reason: String,
    },
    /// The job must end now (the launcher is gone, or a stop signal came).
    Stop(String),
    /// The process exits this instant (a second stop signal, or the job
    /// did not end in [`STOP_GRACE`]): last words only, such as removing
    /// files.
    Exit,
}

type Subscriber = Box<dyn Fn(&Notice) + Send>;

#[derive(Default)]
struct State {
    notices: Vec<Notice>,
    subscribers: Vec<(u64, Subscriber)>,
    next_id: u64,
}

/// The process-wide hub of notices.
#[derive(Default)]
struct Hub {
    state: Mutex<State>,
}

impl Hub {
    fn publish(&self, notice: Notice) {
        let mut state = self.state.lock();
        for (_, subscriber) in &state.subscribers {
            subscriber(&notice);
        }
        state.notices.push(notice);
    }

    /// Calls `f` with every notice so far and every later one, until the
    /// returned subscription is dropped.
    fn subscribe(&'static self, f: impl Fn(&Notice) + Send + 'static) -> Subscription {
        let mut state = self.state.lock();
        for notice in &state.notices {
            f(notice);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.subscribers.push((id, Box::new(f)));
        Subscription { hub: self, id }
    }
}

fn hub() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    HUB.get_or_init(Hub::default)
}

/// Calls `f` (on the thread that learns it; it must not block) with every
/// notice this process has had and every later one, until the returned
/// subscription is dropped.
pub(crate) fn subscribe(f: impl Fn(&Notice) + Send + 'static) -> Subscription {
    hub().subscribe(f)
}

/// Keeps a subscriber registered; dropping it removes the subscriber.
pub(crate) struct Subscription {
    hub: &'static Hub,
    id: u64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub
            .state
            .lock()
            .subscribers
            .retain(|(id, _)| *id != self.id);
    }
}

/// One parsed line from the launcher.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Secret(String),
    Notice(Notice),
}

fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "secret" => Some(Line::Secret(rest.trim().to_owned())),
        "lost" => {
            let (id, reason) = rest.split_once(' ').unwrap_or((rest, "it ended"));
            let locality = LocalityId(id.parse().ok()?);
            Some(Line::Notice(Notice::Lost {
                locality,
                reason: reason.to_owned(),
            }))
        }
        _ => None,
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at end of file.
fn read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut buf = Vec::new();
    match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
    }
}

/// `HPX_SECRET` as the launcher sent it over its channel, if it did (the
/// channel is opened once per process).
pub(crate) fn secret_from_launcher() -> Result<Option<String>> {
    static LINK: OnceLock<std::result::Result<Option<String>, String>> = OnceLock::new();
    LINK.get_or_init(open_launcher_channel)
        .clone()
        .map_err(Error::Config)
}

/// Takes the descriptor named in `HPX_CONTROL_FD`, reads the secret line and
/// leaves a thread reading the rest.
fn open_launcher_channel() -> std::result::Result<Option<String>, String> {
    use std::os::fd::FromRawFd;

    let Ok(value) = std::env::var("HPX_CONTROL_FD") else {
        return Ok(None);
    };
    let bad = |why: &str| format!("HPX_CONTROL_FD={value:?}: {why}");
    let fd: i32 = value.trim().parse().map_err(|_| bad("not a number"))?;
    if fd < 3 {
        return Err(bad("must be 3 or more"));
    }
    // SAFETY: fstat(2) and fcntl(2) only read and set flags of the
    // descriptor; `stat` is a plain struct that fstat fills.
    let is_channel = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut stat) == 0
            && matches!(stat.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
            && libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0
    };
    if !is_channel {
        return Err(bad("not an open pipe (start localities with hpxrun)"));
    }
    // SAFETY: the launcher handed this descriptor to this process for this
    // purpose; it is open (checked above), and it is taken only here, once
    // per process (the OnceLock in `secret_from_launcher`).
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    // The launcher writes the secret as soon as it has started this process;
    // a descriptor that stays silent is not the launcher's.
    let mut ready = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) reads and writes the one pollfd it is given.
    if unsafe { libc::poll(&mut ready, 1, SECRET_WAIT_MS) } != 1 {
        return Err(bad("nothing arrived on it (start localities with hpxrun)"));
    }
    let mut reader = BufReader::new(file);
    let secret = match read_line(&mut reader).as_deref().and_then(parse_line) {
        Some(Line::Secret(secret)) => secret,
        _ => return Err(bad("the launcher did not send the job secret")),
    };
    std::thread::Builder::new()
        .name("hpx-launcher-link".into())
        .spawn(move || {
            while let Some(line) = read_line(&mut reader) {
                match parse_line(&line) {
                    Some(Line::Notice(notice)) => hub().publish(notice),
                    _ => tracing::debug!(%line, "ignoring a line from the launcher"),
                }
            }
            hub().publish(Notice::Stop(
                "the launcher (hpxrun) is gone: its channel closed".into(),
            ));
        })
        .map_err(|e| format!("cannot start the launcher thread: {e}"))?;
    Ok(Some(secret))
}

/// Turns SIGINT, SIGTERM and SIGHUP into [`Notice::Stop`] (once per
/// process); a second signal, or [`STOP_GRACE`] after the first, ends the
/// process with 128 + the signal.
pub(crate) fn watch_stop_signals() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("hpx-signals".into())
            .spawn(move || {
                let mut first = None;
                for signal in signals.forever() {
                    if first.is_some() {
                        hub().publish(Notice::Exit);
                        std::process::exit(128 + signal);
                    }
                    first = Some(signal);
                    hub().publish(Notice::Stop(format!("received {}", signal_name(signal))));
                    std::thread::spawn(move || {
                        std::thread::sleep(STOP_GRACE);
                        hub().publish(Notice::Exit);
                        std::process::exit(128 + signal);
                    });
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(%e, "stop signals keep their default action");
        }
    });
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_lines() {
        assert_eq!(
            parse_line("secret abcd\n"),
            Some(Line::Secret("abcd".into()))
        );
        assert_eq!(
            parse_line("lost 3 killed by signal 9 (SIGKILL)\n"),
            Some(Line::Notice(Notice::Lost {
                locality: LocalityId(3),
                reason: "killed by signal 9 (SIGKILL)".into()
            }))
        );
        assert_eq!(parse_line("lost x y"), None);
        assert_eq!(parse_line("hello"), None);
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn long_lines_are_cut() {
        let long = "lost 1 ".to_owned() + &"x".repeat(10_000) + "\nsecret s\n";
        let mut reader = BufReader::new(long.as_bytes());
        let first = read_line(&mut reader).unwrap();
        assert_eq!(first.len(), MAX_LINE as usize);
    }

    #[test]
    fn subscribers_see_past_and_later_notices_until_dropped() {
        let hub: &'static Hub = Box::leak(Box::default());
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let earlier = Notice::Stop("test: earlier".into());
        hub.publish(earlier.clone());
        let s = seen.clone();
        let sub = hub.subscribe(move |n| s.lock().push(n.clone()));
        let later = Notice::Stop("test: later".into());
        hub.publish(later.clone());
        drop(sub);
        hub.publish(Notice::Stop("test: after".into()));
        let seen = seen.lock();
        assert!(seen.contains(&earlier) && seen.contains(&later), "{seen:?}");
        assert!(!seen
            .iter()
            .any(|n| *n == Notice::Stop("test: after".into())));
    }
}

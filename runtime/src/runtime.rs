//! Running one locality of a job: its threads, joining the job, its main,
//! and the end of the job (see [`crate::termination`]).
//!
//! # Threads
//!
//! A locality has worker threads (a tokio multi-thread runtime: actions, user
//! tasks, main). Where the host has a core for it (or
//! `--hpx:network-thread=on` says so), a network thread of its own (a second
//! tokio runtime) runs the transport: reading and writing, so that however
//! busy the workers are, parcels keep flowing. Loss detection never depends
//! on either: heartbeats run on a thread of their own (see
//! `hpx_parcelport::liveness`), and the launcher's news and stop signals
//! arrive on threads of their own (see [`crate::supervisor`]).
//! Otherwise the transport's tasks run on the workers. Either way only
//! actions declared `direct` run where parcels are read: every other call
//! goes to a queue drained by tasks on the workers (see
//! [`crate::locality`]), so with two or more workers a long action never
//! holds up other parcels either.

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;

use hpx_parcelport::{
    LocalityId, LoopbackParcelport, NetConfig, Parcelport, QuicParcelport, Routed, ShmConfig,
    ShmInbox, TcpParcelport, TransportError,
};

use crate::config::{Config, ExecutionMode, Network};
use crate::context::{self, Slot};
use crate::error::panic_message;
use crate::locality::{Locality, Phase};
use crate::supervisor::{self, Notice};
use crate::warm::{spin_window, Warmth};
use crate::{Error, Result};

/// How long main may go on after the job was aborted under it (to see its
/// pending futures fail and return) before it is cancelled.
const MAIN_GRACE: Duration = Duration::from_millis(500);

/// Bytes of received work a locality holds before it stops reading.
const INCOMING_BUDGET: usize = 256 << 20;

/// A tokio runtime whose threads work for the locality in `slot`.
fn threads(name: &str, count: usize, slot: &Slot) -> Result<tokio::runtime::Runtime> {
    let start = slot.clone();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(count)
        .thread_name(name)
        .on_thread_start(move || context::set_for_thread(&start))
        .on_thread_stop(context::clear_for_thread)
        .enable_all()
        .build()?)
}

/// Joins the job over the transport `config` asks for; its tasks run on
/// `net` (the network thread's runtime, or the workers'). Fails at once
/// when the launcher says a locality ended first, or a stop signal comes.
async fn join(config: &Config, net: &Handle) -> Result<Arc<dyn Parcelport>> {
    let (early, mut told) = tokio::sync::watch::channel(None::<String>);
    let _told = supervisor::subscribe(move |notice| {
        let why = match notice {
            Notice::Lost { locality, reason } => {
                format!("locality {locality} ended before the job started: {reason}")
            }
            Notice::Stop(reason) => reason.clone(),
            Notice::Exit => "the process is exiting".to_owned(),
        };
        early.send_if_modified(|first| {
            let news = first.is_none();
            first.get_or_insert(why);
            news
        });
    });
    let mut joining = net.spawn(connect(config.clone()));
    tokio::select! {
        joined = &mut joining => {
            joined.map_err(|e| Error::Transport(format!("the network thread failed: {e}")))?
        }
        Ok(why) = told.wait_for(Option::is_some) => {
            joining.abort();
            Err(Error::Bootstrap(why.clone().unwrap_or_default()))
        }
    }
}

/// Connects to the job's other localities.
async fn connect(config: Config) -> Result<Arc<dyn Parcelport>> {
    if config.num_localities == 1 {
        return Ok(Arc::new(LoopbackParcelport::new()));
    }
    let agas = config
        .agas
        .ok_or_else(|| Error::Config("no rendezvous address (HPX_AGAS)".into()))?;
    let secret = config.secret.clone().unwrap_or_default();
    // Every inbox exists before any locality can finish the bootstrap, so
    // that each finds the others of its host right after it.
    let inbox = match (&config.shared_dir, config.shm) {
        (Some(dir), true) => {
            let shm = ShmConfig {
                dir: dir.clone(),
                secret: secret.clone(),
                locality: config.locality,
                num_localities: config.num_localities,
                max_payload: hpx_parcelport::parcel::DEFAULT_MAX_PAYLOAD,
                incoming_budget: INCOMING_BUDGET,
            };
            match ShmInbox::create(shm) {
                Ok(inbox) => Some(inbox),
                Err(e) => {
                    tracing::warn!(%e, "no shared memory: every locality is reached over the network");
                    None
                }
            }
        }
        _ => None,
    };
    let net = NetConfig {
        locality: config.locality,
        num_localities: config.num_localities,
        rendezvous: agas,
        bind: config.host,
        secret,
        startup_timeout: config.startup_timeout,
        peer_timeout: config.peer_timeout,
        max_payload: hpx_parcelport::parcel::DEFAULT_MAX_PAYLOAD,
        incoming_budget: INCOMING_BUDGET,
    };
    let started = match config.network {
        Network::Quic => QuicParcelport::start(net)
            .await
            .map(|p| p as Arc<dyn Parcelport>),
        Network::Tcp => TcpParcelport::start(net)
            .await
            .map(|p| p as Arc<dyn Parcelport>),
    };
    let net = started.map_err(|e| match e {
        TransportError::Io(io) if config.locality.is_root() => Error::Bootstrap(format!(
            "locality 0 cannot listen at the rendezvous address {agas}: {io}; another job or \
             program holds it: choose another with HPX_AGAS=HOST:PORT (HPX_PORT under Slurm)"
        )),
        e => e.into(),
    })?;
    match inbox.map(ShmInbox::start).transpose()?.flatten() {
        Some(shm) => Ok(Arc::new(Routed::new(net, shm))),
        None => Ok(net),
    }
}

/// Says which parcelport reaches each locality (`--hpx:print-parcelports`):
/// `locality 1: shm to 0 2 3, quic to 4 5`.
fn print_parcelports(port: &dyn Parcelport) {
    let mut ways: Vec<(&'static str, Vec<String>)> = Vec::new();
    for l in (0..port.num_localities()).map(LocalityId) {
        let way = port.route(l);
        if way == "self" {
            continue;
        }
        match ways.iter_mut().find(|(w, _)| *w == way) {
            Some((_, to)) => to.push(l.0.to_string()),
            None => ways.push((way, vec![l.0.to_string()])),
        }
    }
    let ways: Vec<String> = ways
        .iter()
        .map(|(way, to)| format!("{way} to {}", to.join(" ")))
        .collect();
    let ways = if ways.is_empty() {
        "none (a job of one locality)".to_owned()
    } else {
        ways.join(", ")
    };
    println!("parcelports of locality {}: {ways}", port.here());
}

/// The files a locality writes when it ends, created when it starts: a
/// path that cannot be written fails the start, not the end.
#[derive(Debug)]
struct Outputs {
    counters: Option<(PathBuf, File)>,
    trace: Option<(PathBuf, File)>,
}

impl Outputs {
    fn create(config: &Config) -> Result<Outputs> {
        let create = |what: &str, path: &Option<PathBuf>| -> Result<Option<(PathBuf, File)>> {
            path.as_ref()
                .map(|path| match File::create(path) {
                    Ok(file) => Ok((path.clone(), file)),
                    Err(e) => Err(Error::Config(format!(
                        "{what}: cannot create {}: {e}",
                        path.display()
                    ))),
                })
                .transpose()
        };
        Ok(Outputs {
            counters: create("--hpx:counters (HPX_COUNTERS)", &config.counters_file)?,
            trace: create("--hpx:trace (HPX_TRACE)", &config.trace_file)?,
        })
    }

    /// Prints and writes what the locality counted and traced.
    fn finish(self, locality: &Locality, print: bool) {
        let counters = locality.counters().snapshot();
        if print {
            print!(
                "counters of locality {}:\n{}",
                locality.here(),
                crate::counters::table(std::slice::from_ref(&counters))
            );
        }
        if let Some((path, file)) = self.counters {
            written(
                "counters",
                &path,
                write_all(file, |f| f.write_all(counters.to_json().as_bytes())),
            );
        }
        if let (Some((path, file)), Some(tracer)) = (self.trace, locality.tracer()) {
            written("trace", &path, write_all(file, |f| tracer.write(f)));
        }
    }
}

/// Writes to `file` through a buffer with `write`, and flushes.
fn write_all(
    file: File,
    write: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(file);
    write(&mut out)?;
    out.flush()
}

/// Reports a failure to write `what` to `path` (the job's outcome stands).
fn written(what: &str, path: &Path, result: std::io::Result<()>) {
    if let Err(e) = result {
        eprintln!("hpx: cannot write the {what} to {}: {e}", path.display());
    }
}

/// The spin window of this locality's workers: it depends on how many
/// threads of the job share this host.
fn warmth(config: &Config, port: &Arc<dyn Parcelport>, workers: Handle, net: bool) -> Warmth {
    let addresses = port.addresses();
    let Some(mine) = addresses.get(port.here().index()).map(|a| a.ip()) else {
        return Warmth::new(Duration::ZERO, false, workers, port.clone());
    };
    let colocated = addresses.iter().filter(|a| a.ip() == mine).count();
    let threads = config.worker_threads() + usize::from(net);
    let (window, polite) = spin_window(colocated * threads, config.spin);
    Warmth::new(window, polite, workers, port.clone())
}

/// How long a locality that the launcher says ended with the job's abort
/// ([`crate::EXIT_ABORTED`]) leaves the abort to arrive before it takes
/// that end as the loss.
const CONSEQUENCE_GRACE: Duration = Duration::from_secs(1);

/// Whether the launcher's `reason` for a locality's end says it ended
/// because the job was aborted (`exited with code 3`, maybe with its words).
fn ended_with_the_job(reason: &str) -> bool {
    let code = format!("exited with code {}", crate::EXIT_ABORTED);
    reason
        .strip_prefix(&code)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

/// Runs this locality's main (if `runs_main`) and waits for the job's end.
async fn drive<T, E, F, Fut>(
    locality: &Arc<Locality>,
    runs_main: bool,
    main: F,
) -> Result<Option<T>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let outcome = if runs_main {
        let mut handle = locality.spawn(main());
        tokio::select! {
            joined = &mut handle => Some(match joined {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => match e.try_into_panic() {
                    Ok(payload) => Err(format!("main panicked: {}", panic_message(payload.as_ref()))),
                    Err(e) => Err(format!("main was cancelled: {e}")),
                },
            }),
            end = locality.until_end() => {
                // What main waits for fails with the reason now (requests,
                // collectives): give it a moment to see that and return.
                let _ = tokio::time::timeout(MAIN_GRACE, &mut handle).await;
                handle.abort();
                locality.close().await;
                return Err(match end {
                    Phase::Aborted(reason) => Error::Aborted(reason),
                    _ => Error::Aborted("the job ended while main was running".into()),
                });
            }
        }
    } else {
        None
    };
    let failure = match &outcome {
        Some(Err(msg)) => Some(msg.clone()),
        _ => None,
    };
    locality.main_done(failure);
    let end = locality.until_end().await;
    locality.close().await;
    match (outcome, end) {
        // A main that failed because the job was aborted under it (its
        // collective failed with another locality's failure) did not cause
        // it: the job's reason is the error.
        (Some(Err(_)), Phase::Aborted(reason))
            if locality.culprit().is_some_and(|c| c != locality.here()) =>
        {
            Err(Error::Aborted(reason))
        }
        (Some(Err(msg)), _) => Err(Error::MainFailed(msg)),
        (_, Phase::Aborted(reason)) => Err(Error::Aborted(reason)),
        (outcome, _) => Ok(outcome.and_then(|r| r.ok())),
    }
}

/// Runs a job on this locality: starts its threads, joins the job, runs
/// `main` (here or not, after `mode`), and ends the job with the others.
/// Several localities may run in one process, each from a thread of its own.
pub(crate) fn run_job<T, E, F, Fut>(
    config: Config,
    args: Vec<String>,
    mode: ExecutionMode,
    main: F,
) -> Result<Option<T>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HPX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    if config.num_localities > 1 {
        supervisor::watch_stop_signals();
    }
    let slot: Slot = Arc::new(OnceLock::new());
    let workers = threads("hpx-worker", config.worker_threads(), &slot)?;
    let net = if config.network_thread() {
        Some(threads("hpx-net", 1, &slot)?)
    } else {
        None
    };
    let runs_main = mode == ExecutionMode::Spmd || config.locality.is_root();
    let entered = context::enter(slot.clone());
    let handle = workers.handle().clone();
    let result = workers.block_on(async {
        let net_handle = net
            .as_ref()
            .map_or_else(|| handle.clone(), |n| n.handle().clone());
        let outputs = Outputs::create(&config)?;
        let port = join(&config, &net_handle).await?;
        if config.print_parcelports {
            print_parcelports(port.as_ref());
        }
        let warmth = Arc::new(warmth(&config, &port, handle.clone(), net.is_some()));
        let locality = Locality::new(
            port,
            args,
            handle,
            warmth,
            |minted| Box::pin(crate::agas::register_minted(minted)),
            config.trace_file.is_some(),
        );
        // Only this function sets the slot, once; before anything arrives.
        let _ = slot.set(locality.clone());
        locality.start_receiving();
        let weak = Arc::downgrade(&locality);
        let here = Handle::current();
        let _told = supervisor::subscribe(move |notice| {
            let Some(locality) = weak.upgrade() else {
                return;
            };
            match notice {
                // It ended because the job was aborted: the abort, with its
                // cause, is on its way from the root (the exit may be heard
                // first). Its exit is news only if the abort does not come.
                Notice::Lost {
                    locality: l,
                    reason,
                } if ended_with_the_job(reason) => {
                    let (l, reason) = (*l, reason.clone());
                    here.spawn(async move {
                        tokio::select! {
                            _ = locality.until_end() => {}
                            () = tokio::time::sleep(CONSEQUENCE_GRACE) => {
                                locality.declare_lost(l, reason);
                            }
                        }
                    });
                }
                Notice::Lost {
                    locality: l,
                    reason,
                } => locality.declare_lost(*l, reason.clone()),
                Notice::Stop(reason) => locality.abort(reason.clone()),
                Notice::Exit => locality.abort_transport("the process was stopped"),
            }
        });
        locality.measure_clocks().await;
        let result = drive(&locality, runs_main, main).await;
        outputs.finish(&locality, config.print_counters);
        result
    });
    drop(entered);
    workers.shutdown_timeout(Duration::from_millis(200));
    if let Some(net) = net {
        net.shutdown_timeout(Duration::from_millis(200));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::ended_with_the_job;

    #[test]
    fn an_exit_with_the_abort_code_is_a_consequence() {
        assert!(ended_with_the_job("exited with code 3"));
        assert!(ended_with_the_job(
            "exited with code 3: job aborted: locality 2 failed"
        ));
        for cause in [
            "exited with code 1",
            "exited with code 30",
            "exited with code 31: x",
            "killed by signal 9 (SIGKILL)",
            "",
        ] {
            assert!(!ended_with_the_job(cause), "{cause}");
        }
    }
}

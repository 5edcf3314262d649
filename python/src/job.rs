//! This process's locality: started when the module is imported in a job of
//! several localities (every one must join), or at the first call that
//! needs it in a plain run (one locality, no network); finished by the
//! package's `atexit` handler. Every wait releases the GIL.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use parking_lot::Mutex;
use pyo3::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;

use hpx::{Config, Runtime, Started};

use crate::errors::{raise, to_py, Failure};

enum State {
    /// Not started; the configuration read at import (None in a plain run,
    /// which reads it at start).
    Idle(Option<Box<(Config, Vec<String>)>>),
    Running(Arc<Started>),
    Finished,
}

static JOB: Mutex<State> = Mutex::new(State::Idle(None));

/// The running job, for handing over what Python drops (never locked
/// across a wait, so a destructor never blocks on it).
static RELEASE: Mutex<Option<Arc<Started>>> = Mutex::new(None);

/// This locality's number and the number of localities, once started.
static IDS: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();

/// Held (without the GIL) by the thread that reads the configuration or
/// starts the job, so that other threads wait for it without the GIL; `JOB`
/// itself is never held across a wait.
static STARTING: Mutex<()> = Mutex::new(());

/// The running job, started if it is not yet.
fn job(py: Python<'_>) -> PyResult<Arc<Started>> {
    if let Some(job) = running().map_err(Failure::into_py)? {
        return Ok(job);
    }
    py.detach(|| {
        let _starting = STARTING.lock();
        // Another thread may have started it (or failed to) meanwhile.
        if let Some(job) = running()? {
            return Ok(job);
        }
        let config = match &mut *JOB.lock() {
            State::Idle(config) => config.take(),
            _ => None,
        };
        let started = (|| {
            let (config, args) = match config {
                Some(c) => *c,
                None => Config::from_env()?,
            };
            let started = Runtime::builder().config(config, args).start()?;
            let ids = started
                .block_on(async { Ok((hpx::get_locality_id(), hpx::get_num_localities())) })?;
            let _ = IDS.set(ids);
            Ok::<_, hpx::Error>(started)
        })();
        match started {
            Ok(started) => {
                let started = Arc::new(started);
                *RELEASE.lock() = Some(started.clone());
                *JOB.lock() = State::Running(started.clone());
                Ok(started)
            }
            Err(e) => {
                *JOB.lock() = State::Finished;
                Err(Failure::from(e))
            }
        }
    })
    .map_err(Failure::into_py)
}

/// The job if it runs; an error if it has ended; None before it starts.
fn running() -> Result<Option<Arc<Started>>, Failure> {
    match &*JOB.lock() {
        State::Running(job) => Ok(Some(job.clone())),
        State::Finished => Err(Failure::new(
            "JobAbortedError",
            "the hpx job of this process has ended (hpxpy calls are not possible after it)",
        )),
        State::Idle(_) => Ok(None),
    }
}

/// Runs `work` on this locality's workers with the GIL released and
/// returns its result (an hpx error becomes a Python exception).
pub(crate) fn block<T: Send + 'static>(
    py: Python<'_>,
    work: impl Future<Output = hpx::Result<T>> + Send + 'static,
) -> PyResult<T> {
    wait(py, work)?.map_err(to_py)
}

/// Like [`block`] for work whose error is already a [`Failure`].
pub(crate) fn block_failing<T: Send + 'static>(
    py: Python<'_>,
    work: impl Future<Output = std::result::Result<T, Failure>> + Send + 'static,
) -> PyResult<T> {
    match wait(py, async move { Ok(work.await) })? {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(f)) => Err(f.into_py()),
        Err(e) => Err(to_py(e)),
    }
}

/// How often a long wait lets Python handle its signals (Ctrl-C raises
/// KeyboardInterrupt in a plain run even while the runtime works).
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Runs `work` right on the calling thread ([`Started::poll_for`]: no
/// hand-over to a worker, no wake-up of this thread when it is done) with
/// the GIL released, handing the GIL back to Python's signal handlers now
/// and then. An exception from a handler (KeyboardInterrupt) ends the wait
/// and drops the work.
fn wait<T: Send + 'static>(
    py: Python<'_>,
    work: impl Future<Output = hpx::Result<T>> + Send + 'static,
) -> PyResult<hpx::Result<T>> {
    let job = job(py)?;
    let mut work = Box::pin(AssertUnwindSafe(work).catch_unwind());
    loop {
        match py.detach(|| job.poll_for(work.as_mut(), SIGNAL_CHECK)) {
            Ok(Some(result)) => {
                return Ok(result.unwrap_or_else(|panic| {
                    Err(hpx::Error::MainFailed(format!(
                        "work panicked: {}",
                        hpx::panic_message(panic.as_ref())
                    )))
                }))
            }
            Ok(None) => py.check_signals()?,
            Err(ended) => return Ok(Err(ended)),
        }
    }
}

/// Drops `value` (a handle of distributed data) on this locality's
/// workers, where its release reaches the owners; after the job it is
/// simply dropped.
pub(crate) fn release<T: Send + 'static>(value: T) {
    let job = RELEASE.lock().clone();
    match job {
        Some(job) => job.spawn(async move { drop(value) }),
        None => drop(value),
    }
}

/// Whether this process is one locality of several (SPMD: every call that
/// makes or changes an array is collective).
pub(crate) fn spmd() -> bool {
    IDS.get().is_some_and(|&(_, n)| n > 1)
}

/// `work` done once for the whole job, SPMD style: every locality calls
/// this at the same point; after a barrier (so that what every locality
/// did before, such as writes into its local views, is done) locality 0
/// does the work and broadcasts the result, or its error, to all.
pub(crate) async fn once<T, F>(work: F) -> std::result::Result<T, Failure>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    F: Future<Output = hpx::Result<T>> + Send,
{
    if !spmd() {
        return work.await.map_err(Failure::from);
    }
    hpx::barrier().await?;
    let mine = if hpx::get_locality_id() == 0 {
        Some(work.await.map_err(Failure::from))
    } else {
        None
    };
    hpx::broadcast(mine, 0).await?
}

/// Reads this process's configuration (once) and returns the number of
/// localities of the job; [`_join`] then starts a job of several.
#[pyfunction]
fn _configure(py: Python<'_>) -> PyResult<u32> {
    py.detach(|| {
        let _starting = STARTING.lock();
        if let State::Idle(Some(c)) = &*JOB.lock() {
            return Ok(c.0.num_localities);
        }
        if !matches!(&*JOB.lock(), State::Idle(None)) {
            return Ok(IDS.get().map_or(1, |ids| ids.1));
        }
        let (config, args) = Config::from_env().map_err(Failure::from)?;
        let n = config.num_localities;
        *JOB.lock() = State::Idle(Some(Box::new((config, args))));
        Ok(n)
    })
    .map_err(Failure::into_py)
}

/// Joins the job now (every locality of a job of several must join at
/// start-up; a plain run starts at its first call instead).
#[pyfunction]
fn _join(py: Python<'_>) -> PyResult<()> {
    job(py).map(drop)
}

/// What every locality contributes when its script has ended: a
/// locality still waiting in another collective then fails with a
/// mismatch that names this type (`...ScriptEnded`), instead of waiting.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct ScriptEnded;

/// Ends this locality's part of the job: `error` None for success (after
/// checking that every locality got here, so that a locality still
/// waiting in a collective fails instead of hanging), else the job fails
/// with that message. Waits for the job to end.
#[pyfunction]
#[pyo3(signature = (error=None))]
fn _finish(py: Python<'_>, error: Option<String>) -> PyResult<()> {
    let previous = std::mem::replace(&mut *JOB.lock(), State::Finished);
    RELEASE.lock().take();
    let State::Running(job) = previous else {
        return Ok(());
    };
    let outcome = match error {
        Some(e) => Err(e),
        None => {
            let check = py.detach(|| {
                job.block_on(async {
                    if spmd() {
                        hpx::all_gather(ScriptEnded).await?;
                    }
                    Ok(())
                })
            });
            check.map_err(|e| e.to_string())
        }
    };
    let job = match Arc::try_unwrap(job) {
        Ok(job) => job,
        Err(_) => {
            return Err(raise(
                "HPXError",
                "the job ended while another thread was still waiting on it",
            ))
        }
    };
    py.detach(move || job.finish(outcome)).map_err(to_py)
}

/// This locality's number (0 .. number of localities).
#[pyfunction]
fn get_locality_id(py: Python<'_>) -> PyResult<u32> {
    ids(py).map(|(id, _)| id)
}

/// The number of localities of the job.
#[pyfunction]
fn get_num_localities(py: Python<'_>) -> PyResult<u32> {
    ids(py).map(|(_, n)| n)
}

/// This locality's counters as JSON (`hpxpy.counters()` parses it).
#[pyfunction]
fn _counters_json(py: Python<'_>) -> PyResult<String> {
    block(py, async { Ok(hpx::counters()?.to_json()) })
}

fn ids(py: Python<'_>) -> PyResult<(u32, u32)> {
    if let Some(ids) = IDS.get() {
        return Ok(*ids);
    }
    job(py)?;
    IDS.get()
        .copied()
        .ok_or_else(|| raise("HPXError", "the job did not start"))
}

/// Runs `hpxrun` with the arguments `argv` (without the program name); a
/// command that is a `.py` file runs under `python` (this interpreter).
/// Returns the job's exit code.
#[pyfunction]
fn _launch(py: Python<'_>, argv: Vec<String>, python: String) -> PyResult<i32> {
    use hpx_launcher::Options;
    use pyo3::exceptions::PySystemExit;
    let mut opts = match <Options as clap::Parser>::try_parse_from(
        std::iter::once("hpxrun".to_owned()).chain(argv),
    ) {
        Ok(opts) => opts,
        Err(e) => {
            let _ = e.print();
            return Err(PySystemExit::new_err(e.exit_code()));
        }
    };
    if opts
        .command
        .first()
        .and_then(|c| c.to_str())
        .is_some_and(|c| c.ends_with(".py"))
    {
        opts.command.insert(0, python.into());
    }
    match py.detach(|| hpx_launcher::run(&opts)) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("hpxrun: {e}");
            Ok(i32::from(e.exit_code()))
        }
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_configure, m)?)?;
    m.add_function(wrap_pyfunction!(_join, m)?)?;
    m.add_function(wrap_pyfunction!(_finish, m)?)?;
    m.add_function(wrap_pyfunction!(_launch, m)?)?;
    m.add_function(wrap_pyfunction!(get_locality_id, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_localities, m)?)?;
    m.add_function(wrap_pyfunction!(_counters_json, m)?)?;
    Ok(())
}

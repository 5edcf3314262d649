//! `hpxrun --counters` and `--trace FILE`: every locality writes its
//! counters and its trace into a directory of this job (named in
//! `HPX_COUNTERS` and `HPX_TRACE`, `%l` standing for its id); after the job
//! `hpxrun` prints one table of the counters and merges the traces into
//! `FILE`, then removes the directory.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hpx_runtime::counters::{self, Counters};

use crate::cli::Options;
use crate::error::LaunchError;
use crate::output::message;

/// What the localities of one job write for `hpxrun` to collect.
#[derive(Debug)]
pub(crate) struct Collection {
    dir: PathBuf,
    localities: usize,
    counters: bool,
    trace: Option<PathBuf>,
}

impl Collection {
    /// The collection `opts` asks for, if any: makes its directory (under
    /// the system's temporary directory, `TMPDIR`) and checks that the trace
    /// file can be written before the job starts.
    pub(crate) fn create(opts: &Options) -> Result<Option<Collection>, LaunchError> {
        if !opts.counters && opts.trace.is_none() {
            return Ok(None);
        }
        if let Some(trace) = &opts.trace {
            std::fs::File::create(trace).map_err(|source| LaunchError::Output {
                path: trace.clone(),
                source,
            })?;
        }
        let dir = std::env::temp_dir().join(format!(
            "hpxrun-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir(&dir).map_err(|source| LaunchError::Io {
            what: "cannot make a directory for the localities' counters and traces",
            source,
        })?;
        Ok(Some(Collection {
            dir,
            localities: opts.localities,
            counters: opts.counters,
            trace: opts.trace.clone(),
        }))
    }

    fn counters_file(&self) -> PathBuf {
        self.dir.join("counters-%l.json")
    }

    fn trace_file(&self) -> PathBuf {
        self.dir.join("trace-%l.json")
    }

    /// Where locality `i` writes what `file` names with `%l`.
    fn of(file: &Path, i: usize) -> PathBuf {
        PathBuf::from(file.to_string_lossy().replace("%l", &i.to_string()))
    }

    /// The variables that make every locality write what is collected.
    pub(crate) fn env(&self) -> Vec<(OsString, OsString)> {
        let mut env = Vec::new();
        if self.counters {
            env.push(("HPX_COUNTERS".into(), self.counters_file().into()));
        }
        if self.trace.is_some() {
            env.push(("HPX_TRACE".into(), self.trace_file().into()));
        }
        env
    }

    /// After the job: prints the counters' table to `out`, writes the merged
    /// trace, says what is missing on `err`, and removes the directory.
    pub(crate) fn finish<O: Write, E: Write>(self, out: &Mutex<O>, err: &Mutex<E>) {
        if self.counters {
            let mut all = Vec::new();
            for i in 0..self.localities {
                let path = Self::of(&self.counters_file(), i);
                match read(&path).and_then(|text| Counters::from_json(&text)) {
                    Ok(c) => all.push(c),
                    Err(e) => message(err, &format!("no counters from locality {i}: {e}")),
                }
            }
            if !all.is_empty() {
                let mut out = out
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = write!(out, "counters of the job:\n{}", counters::table(&all))
                    .and_then(|()| out.flush());
            }
        }
        if let Some(target) = &self.trace {
            let mut traces = Vec::new();
            for i in 0..self.localities {
                match read(&Self::of(&self.trace_file(), i)) {
                    Ok(text) if !text.is_empty() => traces.push(text),
                    Ok(_) => message(err, &format!("no trace from locality {i}: empty")),
                    Err(e) => message(err, &format!("no trace from locality {i}: {e}")),
                }
            }
            let written = hpx_runtime::trace::merge(&traces)
                .and_then(|merged| std::fs::write(target, merged).map_err(|e| e.to_string()));
            match written {
                Ok(()) => message(
                    err,
                    &format!(
                        "trace of {} localities written to {}",
                        traces.len(),
                        target.display()
                    ),
                ),
                Err(e) => message(
                    err,
                    &format!("cannot write the trace to {}: {e}", target.display()),
                ),
            }
        }
    }
}

impl Drop for Collection {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

//! Helpers shared by the integration tests.
// Every test crate includes this module but uses only some of its helpers.
#![allow(dead_code)]

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use clap::Parser;
use hpx_launcher::{LaunchError, Options};

/// An in-memory output sink whose contents can be read while a job runs.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything written so far, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The result of one `hpxrun` run.
pub struct Outcome {
    /// Exit code or launch error.
    pub result: Result<i32, LaunchError>,
    /// What the job wrote to stdout.
    pub out: Capture,
    /// What the job and hpxrun wrote to stderr.
    pub err: Capture,
}

/// Parses `args` (without the program name `hpxrun`).
pub fn options(args: &[&str]) -> Options {
    Options::try_parse_from(std::iter::once("hpxrun").chain(args.iter().copied()))
        .expect("valid hpxrun command line")
}

/// Runs hpxrun with `args`, capturing its output in `out` and `err`.
pub fn run_captured(args: &[&str], out: &Capture, err: &Capture) -> Result<i32, LaunchError> {
    hpx_launcher::run_with_output(&options(args), out.clone(), err.clone())
}

/// Runs hpxrun with `args` and captures everything.
pub fn run(args: &[&str]) -> Outcome {
    let out = Capture::default();
    let err = Capture::default();
    let result = run_captured(args, &out, &err);
    Outcome { result, out, err }
}

/// Pids printed by the children as lines `[L<i>] pid <pid>`.
pub fn printed_pids(text: &str) -> Vec<libc::pid_t> {
    text.lines()
        .filter_map(|line| line.split_once("] pid ").map(|(_, pid)| pid.trim()))
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// Whether `pid` is still a running `sleep` process (the children of these tests `exec sleep`).
pub fn is_sleeping(pid: libc::pid_t) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| cmdline.starts_with(b"sleep"))
        .unwrap_or(false)
}

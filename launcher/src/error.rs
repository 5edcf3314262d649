//! Errors that prevent a job from being launched.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

/// Why `hpxrun` could not launch (or fully start) a job.
///
/// Failures of the job itself (a locality exiting non-zero, a timeout, a signal) are not
/// errors: they are reported through the exit code returned by [`crate::run`].
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The options are inconsistent or out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),

    /// The hostfile could not be read.
    #[error("cannot read hostfile {}: {source}", path.display())]
    HostfileRead {
        /// The hostfile.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// The hostfile has a syntax error.
    #[error("{}:{line}: {message}", path.display())]
    HostfileSyntax {
        /// The hostfile.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },

    /// A host given with `--hosts` is invalid.
    #[error("invalid --hosts value: {0}")]
    InvalidHost(String),

    /// The runner `none` was asked to place a locality on a remote host.
    #[error(
        "host `{0}` is not a loopback address; runner `none` starts every locality on this \
         machine: use `-r ssh` to start localities on other hosts"
    )]
    RemoteHostWithoutRunner(String),

    /// The AGAS rendezvous port could not be chosen.
    #[error("cannot pick a rendezvous port on {host}: {source}")]
    AgasPort {
        /// The host of locality 0.
        host: String,
        /// The underlying error.
        source: io::Error,
    },

    /// The job secret could not be generated.
    #[error("cannot generate the job secret: {0}")]
    Secret(getrandom::Error),

    /// The current directory could not be determined (needed by `-r ssh`).
    #[error("cannot determine the current directory: {0}")]
    CurrentDir(#[source] io::Error),

    /// A child process could not be started.
    #[error("cannot start {}: {source}", program.to_string_lossy())]
    Spawn {
        /// The program that was to be executed.
        program: OsString,
        /// The underlying error.
        source: io::Error,
    },

    /// A file `hpxrun` is asked to write cannot be created.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// An operating-system facility needed to supervise the job failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

impl LaunchError {
    /// The exit code `hpxrun` uses for this error: 127 when the program could not be started,
    /// 2 for invalid options or host lists, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Spawn { .. } => 127,
            Self::InvalidOptions(_)
            | Self::HostfileRead { .. }
            | Self::HostfileSyntax { .. }
            | Self::InvalidHost(_)
            | Self::RemoteHostWithoutRunner(_)
            | Self::Output { .. } => 2,
            Self::AgasPort { .. } | Self::Secret(_) | Self::CurrentDir(_) | Self::Io { .. } => 1,
        }
    }
}

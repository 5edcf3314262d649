//! Command-line interface of `hpxrun`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// How the localities of a job are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Runner {
    /// Spawn every locality as a local child process (all hosts must be loopback).
    #[default]
    #[value(name = "none")]
    Local,
    /// Start each locality through `ssh -o BatchMode=yes HOST ...`.
    Ssh,
    /// Start the whole job as a single `srun -n N ...` step inside a Slurm allocation.
    Srun,
}

/// The options of `hpxrun`: `hpxrun [OPTIONS] [--] PROGRAM [ARGS...]`.
///
/// Build it from a command line with [`clap::Parser::parse_from`] or
/// [`clap::Parser::try_parse_from`], then hand it to [`crate::run`].
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hpxrun",
    version,
    override_usage = "hpxrun [OPTIONS] [--] PROGRAM [ARGS...]",
    about = "Start a hpx-rs program as N cooperating localities",
    long_about = "Start a hpx-rs program as N cooperating localities.\n\n\
        Every locality receives HPX_LOCALITY, HPX_NUM_LOCALITIES, HPX_AGAS, HPX_HOST and \
        HPX_SECRET in its environment; its output is forwarded line by line with an \
        `[L<i>] ` prefix."
)]
pub struct Options {
    /// Number of localities (processes) to start.
    #[arg(short = 'l', long, value_name = "N", default_value_t = 1, value_parser = parse_count)]
    pub localities: usize,

    /// Worker threads per locality (exported as HPX_THREADS).
    #[arg(short = 't', long, value_name = "T", value_parser = parse_count)]
    pub threads: Option<usize>,

    /// Comma-separated hosts; localities are assigned to them round-robin.
    #[arg(
        long,
        value_name = "HOST,...",
        value_delimiter = ',',
        conflicts_with = "hostfile"
    )]
    pub hosts: Vec<String>,

    /// File with one host per line (`HOST [slots=K]`, `#` starts a comment).
    #[arg(long, value_name = "FILE")]
    pub hostfile: Option<PathBuf>,

    /// How localities are started.
    #[arg(short = 'r', long, value_enum, value_name = "RUNNER", default_value_t = Runner::Local)]
    pub runner: Runner,

    /// Kill the job if it has not finished after SECS seconds (exit code 124).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,

    /// How long localities wait for each other at startup (exported as HPX_STARTUP_TIMEOUT).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub startup_timeout: Option<Duration>,

    /// Forward output lines without the `[L<i>] ` prefix.
    #[arg(long)]
    pub no_prefix: bool,

    /// After the job, print a table of every locality's counters and their total
    /// (parcels, bytes, actions, tasks, collectives, AGAS, array partitions).
    #[arg(long)]
    pub counters: bool,

    /// Trace every locality and write the job's timeline to FILE (Chrome trace-event
    /// JSON, for Perfetto or about://tracing).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// The program to start, followed by its arguments (passed on unchanged).
    #[arg(
        value_name = "PROGRAM",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// Parses a count that must be at least 1.
fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a positive, finite number of seconds (fractions allowed).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.trim().parse().map_err(|e| format!("{e}"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("must be a positive number of seconds".to_owned());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("hpxrun").chain(args.iter().copied()))
    }

    fn command(opts: &Options) -> Vec<&str> {
        opts.command.iter().filter_map(|a| a.to_str()).collect()
    }

    #[test]
    fn defaults() {
        let opts = parse(&["prog"]).expect("valid command line");
        assert_eq!(opts.localities, 1);
        assert_eq!(opts.threads, None);
        assert!(opts.hosts.is_empty());
        assert_eq!(opts.hostfile, None);
        assert_eq!(opts.runner, Runner::Local);
        assert_eq!(opts.timeout, None);
        assert_eq!(opts.startup_timeout, None);
        assert!(!opts.no_prefix);
        assert!(!opts.counters);
        assert_eq!(opts.trace, None);
        assert_eq!(command(&opts), ["prog"]);
    }

    #[test]
    fn trailing_arguments_go_to_the_program() {
        let opts = parse(&["-l", "2", "prog", "--foo", "-x", "-l", "9"]).expect("valid");
        assert_eq!(opts.localities, 2);
        assert_eq!(command(&opts), ["prog", "--foo", "-x", "-l", "9"]);
    }

    #[test]
    fn double_dash_form() {
        let opts = parse(&["-l", "2", "--", "prog", "--foo"]).expect("valid");
        assert_eq!(opts.localities, 2);
        assert_eq!(command(&opts), ["prog", "--foo"]);
    }

    #[test]
    fn all_options() {
        let opts = parse(&[
            "--localities",
            "4",
            "-t",
            "3",
            "--hosts",
            "a,b",
            "-r",
            "ssh",
            "--timeout",
            "1.5",
            "--startup-timeout",
            "20",
            "--no-prefix",
            "--counters",
            "--trace",
            "t.json",
            "prog",
        ])
        .expect("valid");
        assert_eq!(opts.localities, 4);
        assert_eq!(opts.threads, Some(3));
        assert_eq!(opts.hosts, ["a", "b"]);
        assert_eq!(opts.runner, Runner::Ssh);
        assert_eq!(opts.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(opts.startup_timeout, Some(Duration::from_secs(20)));
        assert!(opts.no_prefix);
        assert!(opts.counters);
        assert_eq!(opts.trace, Some(PathBuf::from("t.json")));
        let srun = parse(&["-r", "srun", "prog"]).expect("valid");
        assert_eq!(srun.runner, Runner::Srun);
        let none = parse(&["--runner", "none", "prog"]).expect("valid");
        assert_eq!(none.runner, Runner::Local);
    }

    #[test]
    fn large_locality_counts_are_accepted() {
        let opts = parse(&["-l", "100000", "prog"]).expect("valid");
        assert_eq!(opts.localities, 100_000);
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(parse(&["-l", "0", "prog"]).is_err());
        assert!(parse(&["-l", "-3", "prog"]).is_err());
        assert!(parse(&["-l", "many", "prog"]).is_err());
        assert!(parse(&["-t", "0", "prog"]).is_err());
        assert!(parse(&["--timeout", "0", "prog"]).is_err());
        assert!(parse(&["--timeout", "-1", "prog"]).is_err());
        assert!(parse(&["--timeout", "NaN", "prog"]).is_err());
        assert!(parse(&["--timeout", "inf", "prog"]).is_err());
        assert!(parse(&["-r", "mpirun", "prog"]).is_err());
    }

    #[test]
    fn program_is_required() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["-l", "2"]).is_err());
    }

    #[test]
    fn hosts_and_hostfile_conflict() {
        assert!(parse(&["--hosts", "a", "--hostfile", "f", "prog"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Options::command().debug_assert();
    }
}

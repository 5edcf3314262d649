//! The logic of `hpxrun`, the launcher that starts a hpx-rs program as N cooperating
//! processes called *localities*.
//!
//! ```text
//! hpxrun [OPTIONS] [--] PROGRAM [ARGS...]
//! ```
//!
//! The `hpxrun` binary of the `hpx` package is just `hpx_launcher::main()`.
//!
//! # Environment contract
//!
//! This is the interface the runtime relies on. Locality `i` (0-based) of a job with `N`
//! localities is started with its inherited environment plus:
//!
//! | variable | value |
//! | --- | --- |
//! | `HPX_LOCALITY` | `i` |
//! | `HPX_NUM_LOCALITIES` | `N` |
//! | `HPX_AGAS` | `HOST0:PORT`, the address where locality 0 listens (UDP under QUIC, TCP under TCP) and every other locality registers (`[ADDR]:PORT` for IPv6 literals). `hpxrun` picks a port free for both UDP and TCP on the host of locality 0 by binding it and closing the sockets again. If `HPX_AGAS` is already set in `hpxrun`'s environment, that value is passed on unchanged. |
//! | `HPX_HOST` | the host locality `i` runs on, where it should bind its own endpoint |
//! | `HPX_LOCALITIES_ON_HOST` | how many localities of the job run on that host (the runtime shares the host's cores among them) |
//! | `HPX_CONTROL_FD` | `3`: the descriptor of `hpxrun`'s channel, a pipe. Its first line is `secret HEX`, the job secret (64 lowercase hex characters, 32 random bytes, one per job), so the secret is in no environment and no command line; later lines `lost ID HOW` tell that locality `ID` ended with a failure (`exited with code 1`, `killed by signal 9 (SIGKILL)`), so the others end at once instead of waiting for a timeout; end of file means `hpxrun` is gone and the job is aborted. |
//! | `HPX_THREADS` | worker threads per locality, only with `-t T` |
//! | `HPX_STARTUP_TIMEOUT` | seconds (decimal, e.g. `30` or `2.5`) to wait for the other localities at startup, only with `--startup-timeout` |
//! | `HPX_COUNTERS` | `DIR/counters-%l.json`, only with `--counters`: where each locality writes its counters as JSON when it ends (`%l`: its id) |
//! | `HPX_TRACE` | `DIR/trace-%l.json`, only with `--trace FILE`: each locality records a timeline and writes it there when it ends |
//!
//! With `-r srun` a single `srun -n N PROGRAM ARGS` step is started, with `HPX_SECRET` (in its
//! environment: Slurm passes it on, and it is on no command line),
//! `HPX_NUM_LOCALITIES` and the optional `HPX_THREADS` / `HPX_STARTUP_TIMEOUT`; the runtime
//! takes its locality number and hosts from Slurm (`SLURM_PROCID`, ...). With `-r ssh` the
//! variables are passed inside the remote command line
//! (`ssh -o BatchMode=yes HOST 'cd CWD && exec 3<&0 </dev/null && exec env K=V... PROGRAM
//! ARGS'`) and the channel is ssh's standard input, which the remote shell moves to descriptor
//! 3: the secret never appears in a process list.
//!
//! # Counters and traces
//!
//! With `--counters`, `hpxrun` prints after the job one table of every locality's counters
//! (parcels and bytes sent and received, actions run and their time, tasks spawned, time in
//! collectives, AGAS lookups and cache hits, bytes in array partitions) with a total row, then
//! the traffic by parcelport, the actions and the collectives of the whole job. With
//! `--trace FILE` it writes one Chrome trace-event JSON file of the whole job (open it in
//! Perfetto or `about://tracing`): a process per locality, a track per thread, actions and
//! collectives as slices, each parcel as a flow arrow, the localities' clocks aligned by
//! offsets the root measured at the start. `DIR` is a new directory under the temporary
//! directory (`TMPDIR`), removed after the job; with `-r ssh` or `srun`, point `TMPDIR` at a
//! directory that every host shares.
//!
//! # Hosts
//!
//! `--hosts a,b,c` or `--hostfile FILE` (one `HOST [slots=K]` per line, `#` comments) list
//! the hosts; each host takes `K` (default 1) consecutive localities, round-robin over the
//! list. Without either, every locality runs on `127.0.0.1`. The default runner `none`
//! spawns local processes and therefore only accepts loopback hosts.
//!
//! # Output and exit code
//!
//! Each line a locality writes to stdout (stderr) is written to `hpxrun`'s stdout (stderr)
//! prefixed with `[L<i>] ` (`[srun] ` for srun; nothing with `--no-prefix`). Lines are written
//! whole and flushed one by one; bytes are passed through unchanged.
//!
//! `hpxrun` exits with 0 when every locality exits with 0. When a locality fails, the others
//! are told over their channels, get 2 s to end by themselves, and are then stopped (SIGTERM,
//! then SIGKILL after 2 s). `hpxrun` reports the first failure that was not a consequence of
//! another (a locality that ended because the job was aborted exits with
//! `hpx_runtime::EXIT_ABORTED`, 3), with the last `Error: ...` line it printed, and exits with
//! its code, or 128 + signal number when it was killed. `--timeout` expiring gives 124; SIGINT and SIGTERM sent to
//! `hpxrun` stop the job with 130 and 143; a program that cannot be started gives 127, and
//! invalid options 2. Children get `PR_SET_PDEATHSIG(SIGTERM)`, so they also end (in order,
//! removing their shared files) when
//! `hpxrun` itself is killed. Only the direct children are signalled: a program that forks
//! helpers (a shell script, say) should `exec` its final command or stop the helpers itself.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod cli;
mod error;
mod hosts;
mod job;
mod observe;
mod output;
mod plan;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

pub use cli::{Options, Runner};
pub use error::LaunchError;
pub use plan::{plan, ChildSpec, ControlVia, LaunchPlan, CONTROL_FD};

/// Entry point of the `hpxrun` binary: parses the command line, runs the job and turns the
/// outcome into the process exit code.
pub fn main() -> ExitCode {
    let opts = match Options::try_parse_from(std::env::args_os()) {
        Ok(opts) => opts,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(&opts) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("hpxrun: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs the job described by `opts`, forwarding its output to this process's stdout and
/// stderr. See [`run_with_output`].
pub fn run(opts: &Options) -> Result<i32, LaunchError> {
    run_with_output(opts, std::io::stdout(), std::io::stderr())
}

/// Runs the job described by `opts` and returns its exit code (0 on success, see the
/// [crate documentation](crate) for the others).
///
/// Children's stdout lines go to `out`, and after the job the table of `--counters`; their
/// stderr lines and `hpxrun`'s own `hpxrun: ...` messages go to `err`. Errors that prevent the job from starting are returned instead; if
/// some children were already running, they are stopped before this returns. Every child is
/// reaped before this returns, whatever the outcome.
///
/// While it runs, SIGINT and SIGTERM sent to this process stop the job instead of the
/// process. Afterwards the `signal-hook` handlers stay installed but inert, so the process
/// no longer dies of those signals: call this from a process that exits when it returns, like
/// [`main`].
pub fn run_with_output<O, E>(opts: &Options, out: O, err: E) -> Result<i32, LaunchError>
where
    O: Write + Send + 'static,
    E: Write + Send + 'static,
{
    let collection = observe::Collection::create(opts)?;
    let extra = collection.as_ref().map(|c| c.env()).unwrap_or_default();
    let plan = plan::plan_with(opts, extra)?;
    let out = std::sync::Arc::new(std::sync::Mutex::new(out));
    let err = std::sync::Arc::new(std::sync::Mutex::new(err));
    let code = job::execute(&plan, opts.timeout, &out, &err)?;
    if let Some(collection) = collection {
        collection.finish(&out, &err);
    }
    Ok(code)
}

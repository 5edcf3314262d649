//! The runtime of hpx-rs: localities, bootstrap, actions and their futures.
//!
//! Users normally reach this through the `hpx` facade crate. The pieces:
//!
//! - [`Runtime`] starts a locality (or `#[hpx::main]` does it for you);
//! - [`Config`] says which locality of which job this process is;
//! - [`Action`] is implemented by `#[hpx::action]` functions, called with
//!   [`async_at`], [`post`] and [`broadcast_action`];
//! - [`find_here`], [`find_all_localities`], [`get_locality_id`] and
//!   [`get_num_localities`] describe the job;
//! - [`counters()`] says what this locality did ([`mod@counters`]), and
//!   [`trace`] records a timeline of it.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

pub mod action;
pub mod agas;
mod call;
mod cluster;
pub mod codec;
pub mod config;
mod context;
pub mod counters;
pub mod element;
mod embed;
mod error;
mod gid;
pub mod hash;
mod locality;
pub mod memory;
mod runtime;
mod supervisor;
mod termination;
pub mod trace;
mod warm;
mod work;

use std::future::Future;
use std::net::SocketAddr;

pub use action::{Action, ActionResult};
pub use agas::{
    async_colocated, colocated, new_component, Component, ComponentAction, ComponentRef,
    ComponentType, GlobalId,
};
pub use call::{async_at, broadcast_action, post, ActionFuture};
pub use cluster::run_in_process;
pub use codec::{PodVec, SharedBytes};
pub use config::{Config, Network};
pub use counters::{counters, Counters};
pub use embed::Started;
pub use error::{panic_message, Error, Result};
pub use hpx_parcelport::{LocalityId, SharedRegion};

use config::ExecutionMode;

/// Starts this process's locality of a job and runs a main function on it.
///
/// ```no_run
/// let answer = hpx_runtime::Runtime::builder()
///     .threads(2)
///     .run(|| async { Ok::<_, std::io::Error>(hpx_runtime::get_num_localities() * 2) })
///     .expect("the job failed");
/// ```
#[derive(Debug, Default)]
pub struct Runtime {
    config: Option<Config>,
    args: Vec<String>,
    threads: Option<usize>,
}

impl Runtime {
    /// A builder reading the job from the environment and command line (see [`config`]).
    pub fn builder() -> Runtime {
        Runtime::default()
    }

    /// Worker threads when neither `--hpx:threads` nor `HPX_THREADS` says otherwise.
    pub fn threads(mut self, threads: usize) -> Runtime {
        self.threads = Some(threads.max(1));
        self
    }

    /// Uses `config` instead of the environment, with `args` as the program's arguments.
    pub fn config(mut self, config: Config, args: Vec<String>) -> Runtime {
        self.config = Some(config);
        self.args = args;
        self
    }

    fn resolve(self) -> Result<(Config, Vec<String>)> {
        let (mut config, args) = match self.config {
            Some(c) => (c, self.args),
            None => Config::from_env()?,
        };
        if config.threads.is_none() {
            config.threads = self.threads;
        }
        Ok((config, args))
    }

    /// SPMD: runs `main` on every locality, like MPI. Returns this locality's
    /// result once every locality's main has returned and no work is in
    /// flight. If any main fails or a locality dies, every locality returns
    /// an error ([`Error::MainFailed`] where main failed, [`Error::Aborted`]
    /// elsewhere).
    pub fn run<T, E, F, Fut>(self, main: F) -> Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let (config, args) = self.resolve()?;
        runtime::run_job(config, args, ExecutionMode::Spmd, main)?
            .ok_or_else(|| Error::MainFailed("main did not run".into()))
    }

    /// Root-only: runs `main` on locality 0 while the others serve actions
    /// until it returns (HPX's default). Returns `Some(result)` on locality 0
    /// and `None` elsewhere.
    pub fn run_on_root<T, E, F, Fut>(self, main: F) -> Result<Option<T>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let (config, args) = self.resolve()?;
        runtime::run_job(config, args, ExecutionMode::RootOnly, main)
    }
}

/// This locality. Panics outside a running runtime.
pub fn find_here() -> LocalityId {
    context::expect_current().here()
}

/// This locality, or [`Error::NotRunning`] outside a running runtime.
pub fn try_find_here() -> Result<LocalityId> {
    context::current().map(|l| l.here())
}

/// The root locality (0).
pub fn find_root_locality() -> LocalityId {
    LocalityId::ROOT
}

/// All localities of the job, in order. Panics outside a running runtime.
pub fn find_all_localities() -> Vec<LocalityId> {
    (0..get_num_localities()).map(LocalityId).collect()
}

/// All localities but this one. Panics outside a running runtime.
pub fn find_remote_localities() -> Vec<LocalityId> {
    let here = find_here();
    find_all_localities()
        .into_iter()
        .filter(|l| *l != here)
        .collect()
}

/// This locality's id as a number. Panics outside a running runtime.
pub fn get_locality_id() -> u32 {
    find_here().0
}

/// Number of localities in the job. Panics outside a running runtime.
pub fn get_num_localities() -> u32 {
    context::expect_current().num_localities()
}

/// The program's arguments (with `args()[0]` the program) without `--hpx:` flags.
/// Panics outside a running runtime.
pub fn args() -> Vec<String> {
    context::expect_current().args().to_vec()
}

/// Where each locality listens, indexed by id (empty in a one-locality job,
/// which uses no network). Panics outside a running runtime.
pub fn locality_addresses() -> Vec<SocketAddr> {
    context::expect_current().addresses()
}

/// Resolves with [`Error::LocalityLost`] once `locality` has been declared
/// lost (it died or stopped answering), or with [`Error::Aborted`] when the
/// job is aborted; never resolves while it is alive and the job runs.
/// Lets code that waits for a message from a locality stop waiting when it
/// dies. Outside a running runtime it resolves at once with
/// [`Error::NotRunning`].
pub fn locality_lost(locality: LocalityId) -> impl Future<Output = Error> + Send + 'static {
    first_lost(vec![locality])
}

/// Resolves with [`Error::LocalityLost`] for the first of `localities` that
/// is declared lost, or with [`Error::Aborted`] when the job is aborted
/// (another locality failed); never resolves while they all live and the
/// job runs. This is the runtime's one loss signal: subscribing costs no
/// task and no polling. Code that waits for a message from other localities
/// selects on it so that it never waits forever. Outside a running runtime
/// it resolves at once with [`Error::NotRunning`].
pub fn first_lost(
    localities: impl Into<std::sync::Arc<[LocalityId]>>,
) -> impl Future<Output = Error> + Send + 'static {
    let localities = localities.into();
    let lost = context::current().map(|rt| rt.first_lost(localities));
    async move {
        match lost {
            Ok(lost) => lost.await,
            Err(e) => e,
        }
    }
}

/// A region of `len` bytes of memory shared with `members` (this locality
/// among them), named `key` within the job (letters, digits and '-'; every
/// member passes the same key, length and members), or `None` where some
/// member is on another host or shared memory is off. Made zero-filled by
/// the first member to ask; a file of the job, so it is gone after any end.
/// Layers above build same-host fast paths on it (the collectives' segment
/// per communicator); what they write there is their own protocol.
///
/// Errors: [`Error::NotRunning`] outside a running runtime, or
/// [`Error::Transport`] if the region cannot be made or mapped.
pub fn shared_region(
    key: &str,
    len: usize,
    members: &[LocalityId],
) -> Result<Option<SharedRegion>> {
    match context::current()?.shared_region(key, len, members) {
        None => Ok(None),
        Some(made) => Ok(Some(made?)),
    }
}

/// This locality's extension of type `T`: per-locality state of a layer
/// above the runtime (the collectives' mailbox, say), made with `init` on
/// first use and dropped when the locality's run ends. Several localities in
/// one process each have their own.
///
/// Errors: [`Error::NotRunning`] outside a running runtime.
pub fn extension<T: Send + Sync + 'static>(init: impl FnOnce() -> T) -> Result<std::sync::Arc<T>> {
    Ok(context::current()?.extension(init))
}

/// Exit code of a `#[hpx::main]` program whose locality did not fail itself
/// but ended because the job was aborted (another locality failed or was
/// lost, a stop signal): launchers report the locality that exited
/// otherwise as the cause. A locality's own failure exits with 1.
pub const EXIT_ABORTED: u8 = 3;

/// What `#[hpx::main]` and `#[hpx::action]` expand to. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;

    pub use crate::action::{action_id, ActionEntry};
    pub use crate::agas::{component_exclusive, component_shared, ComponentTypeEntry};
    pub use crate::call::action_error;

    use std::fmt::Display;
    use std::process::ExitCode;

    /// What a main function may return.
    pub trait MainResult {
        /// The error type.
        type Err: Display + Send + 'static;
        /// As a `Result`.
        fn into_main_result(self) -> Result<(), Self::Err>;
    }

    impl MainResult for () {
        type Err = std::convert::Infallible;
        fn into_main_result(self) -> Result<(), Self::Err> {
            Ok(())
        }
    }

    impl<E: Display + Send + 'static> MainResult for Result<(), E> {
        type Err = E;
        fn into_main_result(self) -> Result<(), E> {
            self
        }
    }

    fn exit(result: crate::Result<()>) -> ExitCode {
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                match e {
                    crate::Error::Aborted(_) => ExitCode::from(crate::EXIT_ABORTED),
                    _ => ExitCode::FAILURE,
                }
            }
        }
    }

    /// Entry of `#[hpx::main]`.
    pub fn main_spmd<F, Fut>(main: F) -> ExitCode
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: MainResult,
    {
        exit(crate::Runtime::builder().run(|| async move { main().await.into_main_result() }))
    }

    /// Entry of `#[hpx::main(root_only)]`.
    pub fn main_root_only<F, Fut>(main: F) -> ExitCode
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: MainResult,
    {
        exit(
            crate::Runtime::builder()
                .run_on_root(|| async move { main().await.into_main_result() })
                .map(|_| ()),
        )
    }
}

//! # hpx-rs
//!
//! An asynchronous, task-based distributed runtime in the spirit of
//! [HPX](https://hpx.stellar-group.org): a program runs as N *localities*
//! (processes), and everything that crosses a locality returns a future.
//!
//! ```no_run
//! use hpx::prelude::*;
//!
//! #[hpx::action]
//! async fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! #[hpx::main]
//! async fn main() -> Result<(), hpx::Error> {
//!     let next = LocalityId((hpx::get_locality_id() + 1) % hpx::get_num_localities());
//!     let nine = hpx::async_at(next, square, 3).await?;
//!     println!("locality {} got {nine} from {next}", hpx::find_here());
//!     Ok(())
//! }
//! ```
//!
//! Run plainly (`cargo run`), a program is one locality and uses no network.
//! Under `hpxrun -l 4 prog` it is four processes that find each other over
//! QUIC on loopback (or, with `-r ssh`/`srun`, across hosts).
//!
//! - `#[hpx::main]` runs main on every locality (SPMD, like MPI);
//!   `#[hpx::main(root_only)]` runs it on locality 0 while the others serve
//!   actions. [`Runtime`] is the same without the macro.
//! - `#[hpx::action]` makes an `async fn` callable anywhere with
//!   [`async_at`], [`post`] and [`broadcast_action`].
//! - `#[hpx::component]` types live on one locality as components
//!   ([`new_component`], [`Component`]); [`agas`] names them across the job.
//! - [`PartitionedVector`] is a distributed array (block, cyclic,
//!   block-cyclic, explicit [`Distribution`]s) created with [`zeros`],
//!   [`ones`], [`full`], [`from_vec`], [`from_fn`]; work runs where its data
//!   lives, with functions registered by `#[hpx::element_fn(..)]`.
//! - Configuration (threads, Slurm, timeouts) is described in [`config`].
//! - [`counters()`] says what this locality did (parcels, bytes, actions,
//!   collectives; see [`mod@counters`]); `--hpx:trace=FILE` or
//!   `hpxrun --trace FILE` records a timeline ([`trace`]).
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

/// Element types of arrays and reductions, and the built-in reduction operations.
pub use hpx_collectives::{Element, ReduceOp};
pub use hpx_containers::{
    arange, array, empty, from_fn, from_vec, full, linspace, ones, random, select, zeros, AnyExpr,
    AnyVector, ArrayBuilder, ArrayFuture, BinaryOp, CompareOp, Distribution, ElementMap,
    ElementPredicate, ElementReduce, Expr, IndexFn, IntoShape, Layout, LayoutSpec, LocalPartition,
    LocalPartitionMut, Numeric, PartitionRef, PartitionedVector, Place, UnaryOp,
};
pub use hpx_macros::{action, component, element_fn, main};
pub use hpx_runtime::trace;
pub use hpx_runtime::{
    agas, args, async_at, async_colocated, broadcast_action, colocated, config, counters,
    find_all_localities, find_here, find_remote_localities, find_root_locality, first_lost,
    get_locality_id, get_num_localities, locality_addresses, locality_lost, new_component,
    panic_message, post, run_in_process, Action, ActionFuture, ActionResult, Component,
    ComponentAction, ComponentRef, ComponentType, Config, Counters, Error, GlobalId, LocalityId,
    PodVec, Result, Runtime, SharedBytes, Started, EXIT_ABORTED,
};

/// What `use hpx::prelude::*;` brings into scope.
pub mod prelude {
    pub use crate::{
        async_at, broadcast_action, find_all_localities, find_here, get_locality_id,
        get_num_localities, new_component, post, Action, Communicator, Component, Distribution,
        GlobalId, LocalityId, PartitionedVector, PodVec, ReduceOp,
    };
}

#[doc(hidden)]
pub use hpx_containers::ElementFnEntry;

/// Collectives over all localities (free functions) or a [`Communicator`]
/// of some, with built-in or custom reductions; SPMD helpers ([`spmd`]).
pub use hpx_collectives::{
    all_gather, all_reduce, all_to_all, barrier, broadcast, exclusive_scan, gather, inclusive_scan,
    reduce, scatter, spmd, Communicator, CustomOp, ReduceOperation, Reducible, Reduction,
};
#[doc(hidden)]
pub use hpx_runtime::__private;

//! Collective operations of hpx-rs: `all_reduce`, `reduce`, `broadcast`,
//! `gather`, `scatter`, `all_gather`, `all_to_all`, `inclusive_scan`,
//! `exclusive_scan` and `barrier`, as futures, over all localities or a
//! named group of some ([`Communicator`]).
//!
//! ```no_run
//! use hpx_collectives::{Communicator, ReduceOp};
//! use hpx_runtime::LocalityId;
//!
//! hpx_runtime::Runtime::builder()
//!     .run(|| async {
//!         let here = hpx_runtime::get_locality_id();
//!         // Every locality gets the sum; vectors combine element by element.
//!         let total: f64 = hpx_collectives::all_reduce(f64::from(here), ReduceOp::Sum).await?;
//!         let most: Vec<u32> = hpx_collectives::all_reduce(vec![here, 7], ReduceOp::Max).await?;
//!         // The root passes Some(value); everyone gets it.
//!         let config: String =
//!             hpx_collectives::broadcast((here == 0).then(|| "cfg".to_owned()), 0).await?;
//!         let all: Option<Vec<u32>> = hpx_collectives::gather(here, 0).await?;
//!         hpx_collectives::barrier().await?;
//!         // A sub-group, created by its members only.
//!         if here % 2 == 0 {
//!             let evens: Vec<LocalityId> = (0..hpx_runtime::get_num_localities())
//!                 .step_by(2)
//!                 .map(LocalityId)
//!                 .collect();
//!             let comm = Communicator::new("evens", &evens).await?;
//!             let sum = comm.all_reduce(1u64, ReduceOp::Sum).await?;
//!             assert_eq!(sum, evens.len() as u64);
//!         }
//!         println!("{total} {most:?} {config} {all:?}");
//!         Ok::<_, hpx_runtime::Error>(())
//!     })
//!     .expect("the job failed");
//! ```
//!
//! # Values and operations
//!
//! The reducing collectives (`all_reduce`, `reduce`, the scans) take a
//! [`ReduceOp`] (sum, product, min, max, and the bitwise ones for integers)
//! for numbers and `Vec`s or arrays of numbers ([`Reducible`]), combined
//! element by element, or a user-defined [`CustomOp`] for any serde type.
//! The others move any serde type; bulk numeric data should travel as a
//! [`hpx_runtime::PodVec`], which is sent as raw bytes.
//!
//! # Algorithms
//!
//! Latency grows with `log2 n`; no rank exchanges with everyone in turn.
//!
//! | operation | algorithm | steps |
//! |---|---|---|
//! | `barrier` | dissemination | `⌈log2 n⌉` |
//! | `all_reduce`, small values | recursive doubling | `log2 p` (+2 if `n ≠ p`) |
//! | `all_reduce`, vectors ≥ 64 KiB | reduce-scatter by recursive halving + all-gather by recursive doubling (Rabenseifner) | `2 log2 p` (+2) |
//! | `reduce`, `gather` | tree to the root | `⌈log2 n⌉` |
//! | `broadcast`, `scatter` | tree from the root | `⌈log2 n⌉` |
//! | `all_gather` | recursive doubling | `log2 p` (+2) |
//! | `all_to_all` | direct, staggered | 1 |
//! | scans | recursive doubling (Hillis-Steele) | `⌈log2 n⌉` |
//!
//! (`p` is the largest power of two `≤ n`.) A non-power of two `n` first
//! folds the first `n - p` pairs of ranks into one.
//!
//! **Members on one host.** A communicator whose members all share this
//! host (the shared-memory parcelport reaches each) has a region of shared
//! memory (`hpx_runtime::shared_region`). `barrier` and `all_reduce` of
//! values up to 448 bytes go through it without a message: each member
//! writes its contribution into its own slot, polls the others' (spinning,
//! giving the core away at every turn when the host has more localities
//! than cores, napping after 2 ms), and combines them all itself in the
//! canonical order below, so the bits are those of the message algorithms.
//! Every call on such a communicator also says in the region which
//! operation it is in, so a member in another operation, through messages
//! or not, is a mismatch on every member. Larger values, and communicators
//! that span hosts, use the algorithms of the table.
//!
//! # Order of combination: reproducible results
//!
//! `all_reduce` and `reduce` (with any root, small or large values) combine
//! the contributions `x_0 .. x_{n-1}` of the ranks along one fixed tree:
//! the first `r = n - p` pairs are combined first, `y_i = x_{2i} ⊕ x_{2i+1}`
//! for `i < r` and `y_i = x_{i+r}` above, then `y_0 .. y_{p-1}` as a
//! balanced binary tree, `(y_0 ⊕ y_1) ⊕ (y_2 ⊕ y_3)` and so on. With five
//! ranks: `((x0 ⊕ x1) ⊕ x2) ⊕ (x3 ⊕ x4)`. So floating-point results are
//! bitwise the same on every locality and in every run, and an operation
//! need not be commutative (lower ranks always come first).
//!
//! # Calls, generations and errors
//!
//! Every member of a communicator calls the same collectives in the same
//! order. Each call carries a generation number, so a locality that runs
//! ahead into the next call cannot mix its messages with the current one.
//! Every message also carries what its sender called (operation, reduction,
//! root, value type, vector length): a participant that receives a
//! message of another call fails, tells the others, and the call fails on
//! every member with [`Error::CollectiveMismatch`](hpx_runtime::Error::CollectiveMismatch) instead of hanging. The
//! operations in which some members would otherwise finish without hearing
//! from all others (the rooted ones and the scans) run a dissemination
//! agreement alongside, so that they too fail everywhere. A member that
//! dies during a call makes the others fail with
//! [`Error::LocalityLost`](hpx_runtime::Error::LocalityLost)
//! once one of them notices (the runtime's peer timeout).
//!
//! # SPMD helpers
//!
//! [`spmd::for_each_locality`] and [`spmd::for_each_member`] run an action
//! everywhere and collect the results; [`spmd::Latch`] is a latch shared by
//! all localities.
//!
//! All functions panic if called inside a tokio runtime that is not an hpx
//! runtime, like [`hpx_runtime::find_here`].
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod algorithms;
mod comm;
mod communicator;
mod host;
mod mailbox;
mod op;
mod payload;
mod round;
mod session;
mod signature;
pub mod spmd;
mod tree;

pub use communicator::Communicator;
pub use op::{CustomOp, Element, ReduceOp, ReduceOperation, Reducible, Reduction};

use hpx_runtime::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// [`Communicator::barrier`] on all localities.
pub async fn barrier() -> Result<()> {
    Communicator::world()?.barrier().await
}

/// [`Communicator::all_reduce`] on all localities.
pub async fn all_reduce<T, O>(value: T, op: O) -> Result<T>
where
    T: Send + 'static,
    O: ReduceOperation<T>,
{
    Communicator::world()?.all_reduce(value, op).await
}

/// [`Communicator::reduce`] on all localities, to locality `root`.
pub async fn reduce<T, O>(value: T, op: O, root: u32) -> Result<Option<T>>
where
    T: Send + 'static,
    O: ReduceOperation<T>,
{
    Communicator::world()?.reduce(value, op, root).await
}

/// [`Communicator::broadcast`] on all localities, from locality `root`.
pub async fn broadcast<T>(value: Option<T>, root: u32) -> Result<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    Communicator::world()?.broadcast(value, root).await
}

/// [`Communicator::gather`] on all localities, to locality `root`.
pub async fn gather<T>(value: T, root: u32) -> Result<Option<Vec<T>>>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    Communicator::world()?.gather(value, root).await
}

/// [`Communicator::scatter`] on all localities, from locality `root`.
pub async fn scatter<T>(values: Option<Vec<T>>, root: u32) -> Result<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    Communicator::world()?.scatter(values, root).await
}

/// [`Communicator::all_gather`] on all localities.
pub async fn all_gather<T>(value: T) -> Result<Vec<T>>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    Communicator::world()?.all_gather(value).await
}

/// [`Communicator::all_to_all`] on all localities.
pub async fn all_to_all<T>(values: Vec<T>) -> Result<Vec<T>>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    Communicator::world()?.all_to_all(values).await
}

/// [`Communicator::inclusive_scan`] on all localities.
pub async fn inclusive_scan<T, O>(value: T, op: O) -> Result<T>
where
    T: Clone + Send + 'static,
    O: ReduceOperation<T>,
{
    Communicator::world()?.inclusive_scan(value, op).await
}

/// [`Communicator::exclusive_scan`] on all localities.
pub async fn exclusive_scan<T, O>(value: T, op: O) -> Result<Option<T>>
where
    T: Clone + Send + 'static,
    O: ReduceOperation<T>,
{
    Communicator::world()?.exclusive_scan(value, op).await
}

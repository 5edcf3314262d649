//! Distributed containers of hpx-rs: [`PartitionedVector`], HPX's
//! `partitioned_vector` with a numpy-like creation and introspection API.
//!
//! ```no_run
//! # async fn demo() -> hpx_runtime::Result<()> {
//! use hpx_containers::{zeros, ones, from_vec, Distribution};
//! let a = zeros::<f64>(10_000).distribution(Distribution::Block).await?;
//! let b = ones::<f64>(10_000).chunks(1_000).await?; // block-cyclic, 1000 per chunk
//! let c = from_vec(vec![1i64, 2, 3], Distribution::Cyclic).await?;
//! assert_eq!(a.len(), 10_000);
//! let dot = a.dot(&a).await?;
//! let all: Vec<i64> = c.to_vec().await?;
//! # let _ = (b, dot, all);
//! # Ok(()) }
//! ```
//!
//! Partitions are components on their localities. Index arithmetic lives in
//! [`Layout`] (O(1), O(log p) for explicit layouts). Element functions that
//! run where the data lives are registered with `#[hpx::element_fn(..)]`.
//!
//! # Arrays and collectives
//!
//! - A whole array: [`PartitionedVector::all_reduce`] is the collective
//!   reduction of every element, called by every locality (SPMD);
//!   [`PartitionedVector::reduce`] does the same from one caller.
//! - A local partition: `hpx::all_reduce(a.local_partition().await?.to_vec(), op)`
//!   reduces element by element across localities (every locality's
//!   partition must have the same length, or all fail with a mismatch).
//! - A handle: `hpx::broadcast(Some(array), root)` gives every locality the
//!   array as a weak handle (valid while the root keeps its own); to share
//!   an array for good, use [`PartitionedVector::register_as`] and
//!   [`PartitionedVector::connect_to`].
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod builder;
mod data;
mod exact;
mod function;
mod generate;
mod layout;
mod math;
mod ops;
mod partition;
mod vector;

pub use builder::{
    arange, array, empty, from_fn, from_vec, full, linspace, ones, random, zeros, ArrayBuilder,
    IntoShape,
};
pub use function::{ElementFnEntry, ElementMap, ElementPredicate, ElementReduce, IndexFn};
pub use layout::{Distribution, Layout, LayoutSpec, Place, Run, Runs, MAX_PARTITIONS};
pub use math::{BinaryOp, CompareOp, Numeric, UnaryOp};
pub use ops::{select, ArrayFuture};
pub use vector::{LocalPartition, LocalPartitionMut, PartitionRef, PartitionedVector};

//! Distributed containers of hpx-rs: [`PartitionedVector`], HPX's
//! `partitioned_vector` with NumPy's creation, math and reductions, for
//! arrays of any rank.
//!
//! ```no_run
//! # async fn demo() -> hpx_runtime::Result<()> {
//! use hpx_containers::{zeros, ones, from_vec, Distribution};
//! let a = zeros::<f64>(10_000).distribution(Distribution::Block).await?;
//! let b = ones::<f64>(10_000).chunks(1_000).await?; // 10 partitions of 1000
//! let c = from_vec(vec![1i64, 2, 3], Distribution::Cyclic).await?;
//! assert_eq!(b.num_partitions(), 10);
//! let sum = (&a + &b).await?.sum().await?; // on the owners; exact
//! let all: Vec<i64> = c.to_vec().await?;
//! # let _ = (sum, all);
//! # Ok(()) }
//! ```
//!
//! # Model
//!
//! An array has a shape (row-major). A [`Layout`] cuts it into partitions
//! (contiguous blocks of rows, round-robin chunks of rows, or 2-d tiles) and
//! places each on a locality of a placement list, round robin: partitions are
//! not localities. Partitions are components on their localities; the index
//! arithmetic is plain code (`layout.rs`, O(1) or O(log p)).
//!
//! Work goes to the data: element-wise operations (`ops.rs`) make a new array
//! in the first operand's layout, partition by partition on the owners; an
//! operand in another layout is first redistributed, each source partition
//! sending each target partition what it needs in one message of strided
//! spans. `set_range`, scans, copies and redistributions move whole runs.
//!
//! # Numbers
//!
//! - Integer sums accumulate in 64 bits ([`Numeric::Sum`], NumPy's rule).
//! - Float sums and means are exact: every partition accumulates its
//!   elements in a fixed-point superaccumulator (`exact.rs`, 280 bytes),
//!   partial accumulators merge by integer addition, and the total is
//!   rounded once. The result is the correctly rounded sum, with the same
//!   bits for any number of localities, any layout and any chunking. The
//!   cost: about 1.6 ns per element on one thread against 1.1 ns for a
//!   plain loop (BENCHMARKS.md, `array_ops`); large partitions are split
//!   over the locality's worker threads, which changes no bit.
//! - Axis sums, `dot`, `reduce` and scans combine in partition order and
//!   carry no such guarantee.
//!
//! # Arrays and collectives
//!
//! - Collective creation (`.collective()` on a builder): every locality makes
//!   the same call and gets one array; each makes the partitions it owns.
//! - A whole array: [`PartitionedVector::all_reduce`] is the collective
//!   reduction of every element, called by every locality (SPMD);
//!   [`PartitionedVector::reduce`] does the same from one caller.
//! - A handle: `hpx::broadcast(Some(array), root)` gives every locality the
//!   array as a weak handle (valid while the root keeps its own) until
//!   [`PartitionedVector::keep_alive`]; a handle in an action's arguments
//!   or result keeps the array alive. Names: [`PartitionedVector::register_as`]
//!   and [`PartitionedVector::connect_to`].
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod axes;
mod builder;
mod data;
mod erased;
mod exact;
mod expr;
mod function;
mod generate;
mod layout;
mod lazy;
mod math;
mod ops;
mod partition;
mod vector;

pub use builder::{
    arange, array, empty, from_fn, from_vec, full, linspace, ones, random, zeros, ArrayBuilder,
    IntoShape,
};
pub use erased::AnyVector;
pub use function::{ElementFnEntry, ElementMap, ElementPredicate, ElementReduce, IndexFn};
pub use layout::{Distribution, Layout, LayoutSpec, Place, Run, Runs, MAX_PARTITIONS};
pub use lazy::{select, AnyExpr, Expr};
pub use math::{BinaryOp, CompareOp, Numeric, UnaryOp};
pub use ops::ArrayFuture;
pub use vector::{LocalPartition, LocalPartitionMut, PartitionRef, PartitionedVector};

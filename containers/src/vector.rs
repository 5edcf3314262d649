//! `PartitionedVector<T>`: a distributed array of numbers.

use std::any::Any;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut, Range};
use std::pin::Pin;
use std::sync::Arc;

use futures::future::join_all;
use hpx_runtime::element::{Element, ReduceOp};
use hpx_runtime::{
    async_at, Action, Component, ComponentRef, Error, GlobalId, LocalityId, PodVec, Result,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::{OwnedRwLockMappedWriteGuard, OwnedRwLockReadGuard};

use crate::data::combine;
use crate::function::{self, ElementMap, ElementPredicate, ElementReduce, IndexFn};
use crate::layout::{Distribution, Layout};
use crate::partition::{self, handle, owner, Init};
use hpx_runtime::element::element_from_bytes;

type Object = Box<dyn Any + Send + Sync>;

struct Meta {
    layout: Layout,
    parts: Vec<ComponentRef>,
    shape: Vec<usize>,
}

/// A distributed array of numbers (`f64`, `f32`, `i64`, `i32`, `u64`, `u32`,
/// `u8`, ... any [`Element`]), split into partitions that live on their
/// localities as components.
///
/// The handle (partitions, layout, shape) is cheap to clone and can be sent
/// inside action arguments; the partitions live as long as a handle anywhere
/// does. Work goes to the data: [`fill`](Self::fill), [`map_inplace`](Self::map_inplace),
/// reductions, [`dot`](Self::dot), scans and [`for_each`](Self::for_each) run
/// on each partition's owner in parallel, and only their results travel.
pub struct PartitionedVector<T> {
    meta: Arc<Meta>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for PartitionedVector<T> {
    fn clone(&self) -> Self {
        PartitionedVector {
            meta: self.meta.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: Element> std::fmt::Debug for PartitionedVector<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedVector")
            .field("type", &T::NAME)
            .field("len", &self.len())
            .field("distribution", self.meta.layout.distribution())
            .field("partition_sizes", &self.partition_sizes())
            .field("localities", &self.localities())
            .finish()
    }
}

impl<T: Element> Serialize for PartitionedVector<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (
            T::NAME,
            &self.meta.layout,
            &self.meta.parts,
            &self.meta.shape,
        )
            .serialize(s)
    }
}

impl<'de, T: Element> Deserialize<'de> for PartitionedVector<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (dtype, layout, parts, shape) =
            <(String, Layout, Vec<ComponentRef>, Vec<usize>)>::deserialize(d)?;
        PartitionedVector::assemble(&dtype, layout, parts, shape).map_err(serde::de::Error::custom)
    }
}

/// Shared, zero-copy access to this locality's partition.
pub struct LocalPartition<T> {
    guard: OwnedRwLockReadGuard<Object, [T]>,
}

impl<T> std::fmt::Debug for LocalPartition<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPartition")
            .field("len", &self.guard.len())
            .finish_non_exhaustive()
    }
}

impl<T> Deref for LocalPartition<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.guard
    }
}

/// Exclusive, zero-copy access to this locality's partition.
pub struct LocalPartitionMut<T> {
    guard: OwnedRwLockMappedWriteGuard<Object, [T]>,
}

impl<T> std::fmt::Debug for LocalPartitionMut<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPartitionMut")
            .field("len", &self.guard.len())
            .finish_non_exhaustive()
    }
}

impl<T> Deref for LocalPartitionMut<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.guard
    }
}

impl<T> DerefMut for LocalPartitionMut<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.guard
    }
}

/// One partition of an array, as given to a [`PartitionedVector::for_each`]
/// action on the partition's owner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartitionRef<T> {
    gid: GlobalId,
    index: usize,
    layout: Layout,
    #[serde(skip)]
    _type: PhantomData<fn() -> T>,
}

impl<T: Element> PartitionRef<T> {
    /// Which partition of the array this is.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of elements in the partition.
    pub fn len(&self) -> usize {
        self.layout.partition_sizes()[self.index]
    }

    /// Whether the partition is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The array's global index of element `local` of this partition.
    pub fn global_index(&self, local: usize) -> usize {
        self.layout.global(self.index, local)
    }

    /// The array's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Shared, zero-copy access to the elements (on the partition's owner).
    pub async fn view(&self) -> Result<LocalPartition<T>> {
        Ok(LocalPartition {
            guard: partition::view::<T>(self.gid).await?,
        })
    }

    /// Exclusive, zero-copy access to the elements (on the partition's owner).
    pub async fn view_mut(&self) -> Result<LocalPartitionMut<T>> {
        Ok(LocalPartitionMut {
            guard: partition::view_mut::<T>(self.gid).await?,
        })
    }
}

fn to_u64(v: usize) -> u64 {
    v as u64
}

fn same_layout<T, U>(a: &PartitionedVector<T>, b: &PartitionedVector<U>, what: &str) -> Result<()> {
    if a.meta.layout.partition_sizes() == b.meta.layout.partition_sizes()
        && a.meta.layout.localities() == b.meta.layout.localities()
        && a.meta.layout.distribution() == b.meta.layout.distribution()
    {
        Ok(())
    } else {
        Err(Error::BadArgument(format!(
            "{what} needs arrays with the same layout: {:?} with sizes {:?} on {:?}, and {:?} with sizes {:?} on {:?}",
            a.meta.layout.distribution(),
            a.meta.layout.partition_sizes(),
            a.meta.layout.localities(),
            b.meta.layout.distribution(),
            b.meta.layout.partition_sizes(),
            b.meta.layout.localities(),
        )))
    }
}

impl<T: Element> PartitionedVector<T> {
    fn assemble(
        dtype: &str,
        layout: Layout,
        parts: Vec<ComponentRef>,
        shape: Vec<usize>,
    ) -> Result<Self> {
        if dtype != T::NAME {
            return Err(Error::BadArgument(format!(
                "an array of {dtype} is not an array of {}",
                T::NAME
            )));
        }
        if parts.len() != layout.num_partitions() {
            return Err(Error::BadArgument(
                "partitions do not match the layout".into(),
            ));
        }
        Ok(PartitionedVector {
            meta: Arc::new(Meta {
                layout,
                parts,
                shape,
            }),
            _type: PhantomData,
        })
    }

    /// Creates the partitions of `layout`, each initialised by `init(partition)`.
    async fn create(
        layout: Layout,
        shape: Vec<usize>,
        init: impl Fn(usize) -> Result<Init>,
    ) -> Result<Self> {
        let calls = (0..layout.num_partitions())
            .map(|p| {
                let size = to_u64(layout.partition_sizes()[p]);
                init(p).map(|i| {
                    async_at(
                        layout.localities()[p],
                        partition::part_create,
                        (T::NAME.to_owned(), size, i),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let parts = join_all(calls)
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        PartitionedVector::assemble(T::NAME, layout, parts, shape)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.meta.layout.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape (row-major); `[len]` for a 1-d array.
    pub fn shape(&self) -> &[usize] {
        &self.meta.shape
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.meta.layout
    }

    /// The distribution.
    pub fn distribution(&self) -> &Distribution {
        self.meta.layout.distribution()
    }

    /// Whether elements live on more than one locality.
    pub fn is_distributed(&self) -> bool {
        let mut holders = self
            .meta
            .layout
            .localities()
            .iter()
            .zip(self.meta.layout.partition_sizes())
            .filter(|(_, size)| **size > 0)
            .map(|(l, _)| *l);
        match holders.next() {
            Some(first) => holders.any(|l| l != first),
            None => false,
        }
    }

    /// Number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.meta.layout.num_partitions()
    }

    /// Elements in each partition.
    pub fn partition_sizes(&self) -> Vec<usize> {
        self.meta.layout.partition_sizes().to_vec()
    }

    /// The locality of each partition.
    pub fn localities(&self) -> Vec<LocalityId> {
        self.meta.layout.localities().to_vec()
    }

    /// The ids of the partitions' components.
    pub fn partition_ids(&self) -> Vec<GlobalId> {
        self.meta.parts.iter().map(ComponentRef::gid).collect()
    }

    /// The flat index of a multi-dimensional index (row-major).
    pub fn flat_index(&self, index: &[usize]) -> Result<usize> {
        if index.len() != self.meta.shape.len() {
            return Err(Error::BadArgument(format!(
                "a {}-d index for an array of shape {:?}",
                index.len(),
                self.meta.shape
            )));
        }
        let mut flat = 0usize;
        for (i, (&x, &extent)) in index.iter().zip(&self.meta.shape).enumerate() {
            if x >= extent {
                return Err(Error::BadArgument(format!(
                    "index {index:?} is out of range in dimension {i} of shape {:?}",
                    self.meta.shape
                )));
            }
            flat = flat * extent + x;
        }
        Ok(flat)
    }

    fn here_partition(&self) -> Result<GlobalId> {
        let here = hpx_runtime::find_here();
        let mut mine = self.meta.parts.iter().filter(|p| owner(p) == here);
        match (mine.next(), mine.next()) {
            (Some(p), None) => Ok(p.gid()),
            (None, _) => Err(Error::BadArgument(format!(
                "locality {here} holds no partition of this array"
            ))),
            (Some(_), Some(_)) => Err(Error::BadArgument(format!(
                "locality {here} holds several partitions of this array: use local_partitions"
            ))),
        }
    }

    /// Shared, zero-copy access to this locality's partition (an error if it
    /// holds none or several).
    pub async fn local_partition(&self) -> Result<LocalPartition<T>> {
        Ok(LocalPartition {
            guard: partition::view::<T>(self.here_partition()?).await?,
        })
    }

    /// Exclusive, zero-copy access to this locality's partition.
    pub async fn local_partition_mut(&self) -> Result<LocalPartitionMut<T>> {
        Ok(LocalPartitionMut {
            guard: partition::view_mut::<T>(self.here_partition()?).await?,
        })
    }

    /// The partitions this locality holds, in partition order.
    pub fn local_partitions(&self) -> Vec<PartitionRef<T>> {
        let here = hpx_runtime::find_here();
        self.partitions()
            .into_iter()
            .filter(|p| p.gid.owner() == here)
            .collect()
    }

    /// Every partition, in order.
    pub fn partitions(&self) -> Vec<PartitionRef<T>> {
        self.meta
            .parts
            .iter()
            .enumerate()
            .map(|(index, p)| PartitionRef {
                gid: p.gid(),
                index,
                layout: self.meta.layout.clone(),
                _type: PhantomData,
            })
            .collect()
    }

    /// Element `index`.
    pub async fn get(&self, index: usize) -> Result<T> {
        let place = self.meta.layout.locate(index)?;
        let part = handle(&self.meta.parts[place.partition]);
        let local = to_u64(place.local);
        let bytes = part.call(partition::part_read, (local, local + 1)).await?;
        element_from_bytes(&bytes)
    }

    /// Sets element `index` to `value`.
    pub async fn set(&self, index: usize, value: T) -> Result<()> {
        let place = self.meta.layout.locate(index)?;
        let part = handle(&self.meta.parts[place.partition]);
        part.call(
            partition::part_write,
            (
                to_u64(place.local),
                PodVec(bytemuck::bytes_of(&value).to_vec()),
            ),
        )
        .await
    }

    fn check_range(&self, range: &Range<usize>) -> Result<()> {
        if range.start > range.end || range.end > self.len() {
            return Err(Error::BadArgument(format!(
                "range {}..{} is out of bounds of an array of {} elements",
                range.start,
                range.end,
                self.len()
            )));
        }
        Ok(())
    }

    /// The pieces of `range` in each partition: (partition, local start,
    /// offset in the range, length).
    fn pieces(&self, range: &Range<usize>) -> Vec<(usize, usize, usize, usize)> {
        let layout = &self.meta.layout;
        (0..layout.num_partitions())
            .flat_map(|p| {
                layout
                    .runs(p)
                    .into_iter()
                    .filter_map(move |(global, local, n)| {
                        let start = global.max(range.start);
                        let end = (global + n).min(range.end);
                        (start < end).then(|| {
                            (
                                p,
                                local + (start - global),
                                start - range.start,
                                end - start,
                            )
                        })
                    })
            })
            .collect()
    }

    /// Elements `range`, gathered from their owners in parallel as raw bytes.
    pub async fn get_range(&self, range: Range<usize>) -> Result<Vec<T>> {
        self.check_range(&range)?;
        let mut out = vec![T::zeroed(); range.len()];
        let pieces = self.pieces(&range);
        // One read per partition covering its pieces, not one per piece.
        let mut spans: Vec<Option<(usize, usize)>> = vec![None; self.num_partitions()];
        for &(p, local, _, n) in &pieces {
            let span = spans[p].get_or_insert((local, local + n));
            span.0 = span.0.min(local);
            span.1 = span.1.max(local + n);
        }
        let reads = spans.iter().enumerate().filter_map(|(p, span)| {
            span.map(|(start, end)| {
                let part = handle(&self.meta.parts[p]);
                async move {
                    let bytes = part
                        .call(partition::part_read, (to_u64(start), to_u64(end)))
                        .await?;
                    Ok::<_, Error>((p, start, bytes))
                }
            })
        });
        let mut read: Vec<Option<(usize, PodVec<u8>)>> = vec![None; self.num_partitions()];
        for r in join_all(reads).await {
            let (p, start, bytes) = r?;
            read[p] = Some((start, bytes));
        }
        let size = std::mem::size_of::<T>();
        let out_bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
        for (p, local, offset, n) in pieces {
            let (start, bytes) = read[p]
                .as_ref()
                .ok_or_else(|| Error::BadArgument("a partition was not read".into()))?;
            let from = (local - start) * size;
            let piece = bytes
                .get(from..from + n * size)
                .ok_or_else(|| Error::Codec("a partition sent fewer bytes than asked".into()))?;
            out_bytes[offset * size..(offset + n) * size].copy_from_slice(piece);
        }
        Ok(out)
    }

    /// Writes `values` to elements `start..start + values.len()`, scattered
    /// to their owners in parallel as raw bytes.
    pub async fn set_range(&self, start: usize, values: &[T]) -> Result<()> {
        let range = start..start.saturating_add(values.len());
        self.check_range(&range)?;
        let writes = self
            .pieces(&range)
            .into_iter()
            .map(|(p, local, offset, n)| {
                let part = handle(&self.meta.parts[p]);
                let bytes = bytemuck::cast_slice(&values[offset..offset + n]).to_vec();
                async move {
                    part.call(partition::part_write, (to_u64(local), PodVec(bytes)))
                        .await
                }
            });
        join_all(writes).await.into_iter().collect()
    }

    /// Gathers the whole array to the caller (raw bytes, from all owners in parallel).
    pub async fn to_vec(&self) -> Result<Vec<T>> {
        self.get_range(0..self.len()).await
    }

    async fn on_all<A, F>(&self, action: A, args: F) -> Result<Vec<A::Output>>
    where
        A: hpx_runtime::ComponentAction<Component = partition::Partition>,
        F: Fn(usize) -> A::UserArgs,
    {
        let calls = self
            .meta
            .parts
            .iter()
            .enumerate()
            .map(|(p, part)| handle(part).call(action, args(p)));
        join_all(calls).await.into_iter().collect()
    }

    /// Sets every element to `value`, on the owners.
    pub async fn fill(&self, value: T) -> Result<()> {
        let bytes = bytemuck::bytes_of(&value).to_vec();
        self.on_all(partition::part_fill, |_| PodVec(bytes.clone()))
            .await?;
        Ok(())
    }

    /// Applies a registered map (`#[hpx::element_fn(map)]`) to every element, on the owners.
    pub async fn map_inplace<F: ElementMap<Elem = T>>(&self, _f: F) -> Result<()> {
        self.on_all(partition::part_map, |_| F::NAME.to_owned())
            .await?;
        Ok(())
    }

    /// Counts the elements passing a registered predicate, on the owners.
    pub async fn count_if<F: ElementPredicate<Elem = T>>(&self, _f: F) -> Result<u64> {
        Ok(self
            .on_all(partition::part_count, |_| F::NAME.to_owned())
            .await?
            .into_iter()
            .sum())
    }

    /// Reduces all elements with `op` (None for an empty array). Each owner
    /// reduces its partition; the partial results combine in partition order.
    pub async fn reduce(&self, op: ReduceOp) -> Result<Option<T>> {
        if !T::supports(op) {
            return Err(Error::BadArgument(format!(
                "{} is not defined for {}",
                op.name(),
                T::NAME
            )));
        }
        let partials = self.on_all(partition::part_reduce, |_| op).await?;
        let mut total: Option<T> = None;
        for bytes in partials.into_iter().flatten() {
            let v = element_from_bytes::<T>(&bytes)?;
            total = Some(match total {
                Some(t) => combine(op, t, v),
                None => v,
            });
        }
        Ok(total)
    }

    /// Collective form of [`reduce`](Self::reduce) for SPMD code: every
    /// locality calls it, reduces the partitions it holds, and the partial
    /// results are combined in partition order through an `all_gather` of
    /// the collectives crate; every locality gets the result of the whole
    /// array (None if empty). Only partial results travel.
    pub async fn all_reduce(&self, op: ReduceOp) -> Result<Option<T>> {
        if !T::supports(op) {
            return Err(Error::BadArgument(format!(
                "{} is not defined for {}",
                op.name(),
                T::NAME
            )));
        }
        let mut mine = Vec::new();
        for part in self.local_partitions() {
            let view = part.view().await?;
            if let Some(v) = crate::data::reduce_slice(op, &view) {
                mine.push((part.index as u64, v));
            }
        }
        let (indices, values): (Vec<u64>, Vec<T>) = mine.into_iter().unzip();
        let everyone = hpx_collectives::all_gather((indices, PodVec(values))).await?;
        let mut partials: Vec<(u64, T)> = everyone
            .into_iter()
            .flat_map(|(i, v)| i.into_iter().zip(v.0))
            .collect();
        partials.sort_by_key(|(i, _)| *i);
        Ok(partials
            .into_iter()
            .map(|(_, v)| v)
            .reduce(|a, b| combine(op, a, b)))
    }

    /// Reduces with a registered reduction (`#[hpx::element_fn(reduce)]`).
    pub async fn reduce_with<F: ElementReduce<Elem = T>>(&self, _f: F) -> Result<Option<T>> {
        let partials = self
            .on_all(partition::part_reduce_with, |_| F::NAME.to_owned())
            .await?;
        let mut total: Option<Vec<u8>> = None;
        for bytes in partials.into_iter().flatten() {
            total = Some(match total {
                Some(t) => function::combine(F::NAME, &t, &bytes)?,
                None => bytes.0,
            });
        }
        total.map(|t| element_from_bytes(&t)).transpose()
    }

    /// The sum of all elements (0 for an empty array).
    pub async fn sum(&self) -> Result<T> {
        Ok(self.reduce(ReduceOp::Sum).await?.unwrap_or_else(T::zeroed))
    }

    /// The smallest element (None for an empty array).
    pub async fn min(&self) -> Result<Option<T>> {
        self.reduce(ReduceOp::Min).await
    }

    /// The largest element (None for an empty array).
    pub async fn max(&self) -> Result<Option<T>> {
        self.reduce(ReduceOp::Max).await
    }

    /// The dot product with `other`, which must have the same layout; each
    /// owner multiplies its partitions, the partial sums combine in order.
    pub async fn dot(&self, other: &PartitionedVector<T>) -> Result<T> {
        same_layout(self, other, "dot")?;
        let calls = self
            .meta
            .parts
            .iter()
            .zip(&other.meta.parts)
            .map(|(a, b)| async_at(owner(a), partition::part_dot, (a.gid(), b.gid())));
        let mut total = T::zeroed();
        for bytes in join_all(calls).await {
            total = combine(ReduceOp::Sum, total, element_from_bytes(&bytes?)?);
        }
        Ok(total)
    }

    /// Copies `other` into this array. With the same layout each owner
    /// copies locally; otherwise the data is gathered and scattered.
    pub async fn copy_from(&self, other: &PartitionedVector<T>) -> Result<()> {
        if other.len() != self.len() {
            return Err(Error::BadArgument(format!(
                "copy of an array of {} elements into one of {}",
                other.len(),
                self.len()
            )));
        }
        if same_layout(self, other, "copy").is_ok() {
            let calls = self
                .meta
                .parts
                .iter()
                .zip(&other.meta.parts)
                .map(|(into, from)| {
                    async_at(owner(into), partition::part_copy, (into.gid(), from.gid()))
                });
            return join_all(calls).await.into_iter().collect();
        }
        let values = other.to_vec().await?;
        self.set_range(0, &values).await
    }

    async fn scan(&self, op: ReduceOp, inclusive: bool, init: Option<T>) -> Result<()> {
        if !T::supports(op) {
            return Err(Error::BadArgument(format!(
                "{} is not defined for {}",
                op.name(),
                T::NAME
            )));
        }
        let layout = &self.meta.layout;
        if layout.is_contiguous() && layout.localities().len() > 1 {
            // Two passes on the owners: partition totals, then each partition
            // scans from the combination of the partitions before it.
            let partials = self.on_all(partition::part_reduce, |_| op).await?;
            let mut carries = Vec::with_capacity(partials.len());
            let mut carry: Option<T> = init;
            for partial in &partials {
                carries.push(carry);
                if let Some(bytes) = partial {
                    let v = element_from_bytes::<T>(bytes)?;
                    carry = Some(match carry {
                        Some(c) => combine(op, c, v),
                        None => v,
                    });
                }
            }
            self.on_all(partition::part_scan, |p| {
                (
                    op,
                    inclusive,
                    carries[p].map(|c| PodVec(bytemuck::bytes_of(&c).to_vec())),
                )
            })
            .await?;
            return Ok(());
        }
        // Round-robin layouts interleave the partitions in index order: the
        // scan runs over the gathered values, which are then put back.
        let mut values = self.to_vec().await?;
        let mut acc = init;
        for x in values.iter_mut() {
            let next = match acc {
                Some(a) => combine(op, a, *x),
                None => *x,
            };
            *x = if inclusive { next } else { acc.unwrap_or(*x) };
            acc = Some(next);
        }
        self.set_range(0, &values).await
    }

    /// Replaces every element by the combination of it and all before it.
    pub async fn inclusive_scan(&self, op: ReduceOp) -> Result<()> {
        self.scan(op, true, None).await
    }

    /// Replaces every element by `init` combined with all elements before it.
    pub async fn exclusive_scan(&self, op: ReduceOp, init: T) -> Result<()> {
        self.scan(op, false, Some(init)).await
    }

    /// Runs `action` on every partition's owner with a [`PartitionRef`] to
    /// the partition and a copy of `args`; returns the results in partition
    /// order. The SPMD workhorse: work goes where the data lives.
    pub async fn for_each<A, U>(&self, action: A, args: U) -> Result<Vec<A::Output>>
    where
        A: Action<Args = (PartitionRef<T>, U)>,
        U: Clone,
    {
        let calls = self
            .partitions()
            .into_iter()
            .map(|p| async_at(p.gid.owner(), action, (p, args.clone())));
        join_all(calls).await.into_iter().collect()
    }

    /// Registers the array as `name` so other localities can
    /// [`connect_to`](Self::connect_to) it; the name keeps it alive until
    /// unregistered.
    pub async fn register_as(&self, name: &str) -> Result<()> {
        let descriptor = Descriptor {
            dtype: T::NAME.to_owned(),
            layout: self.meta.layout.clone(),
            parts: self.meta.parts.clone(),
            shape: self.meta.shape.clone(),
        };
        let d = hpx_runtime::new_component(hpx_runtime::find_here(), descriptor).await?;
        d.register_as(name).await
    }

    /// The array registered as `name`, waiting up to 30 s for it.
    pub async fn connect_to(name: &str) -> Result<PartitionedVector<T>> {
        let d = Component::<Descriptor>::connect_to(name).await?;
        let (dtype, layout, parts, shape) = d.call(describe, ()).await?;
        PartitionedVector::assemble(&dtype, layout, parts, shape)
    }
}

/// What a name registered with [`PartitionedVector::register_as`] holds.
#[hpx_macros::component(crate = hpx_runtime)]
#[derive(Serialize, Deserialize)]
pub(crate) struct Descriptor {
    dtype: String,
    layout: Layout,
    parts: Vec<ComponentRef>,
    shape: Vec<usize>,
}

#[hpx_macros::action(crate = hpx_runtime)]
async fn describe(d: &Descriptor) -> (String, Layout, Vec<ComponentRef>, Vec<usize>) {
    (
        d.dtype.clone(),
        d.layout.clone(),
        d.parts.clone(),
        d.shape.clone(),
    )
}

/// How a new array's elements are set.
enum Source<T> {
    Fill(T),
    Index(&'static str),
}

/// A new array, configured before it is created: `.distribution(..)`,
/// `.chunks(k)`, `.shape(..)`; `.await` creates it.
#[must_use = "await the builder to create the array"]
pub struct ArrayBuilder<T> {
    len: usize,
    source: Source<T>,
    distribution: Distribution,
    shape: Option<Vec<usize>>,
}

impl<T> std::fmt::Debug for ArrayBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayBuilder")
            .field("len", &self.len)
            .field("distribution", &self.distribution)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl<T: Element> ArrayBuilder<T> {
    /// How to spread the elements (default [`Distribution::Block`]).
    pub fn distribution(mut self, distribution: Distribution) -> Self {
        self.distribution = distribution;
        self
    }

    /// Block-cyclic with chunks of `k` elements.
    pub fn chunks(self, k: usize) -> Self {
        self.distribution(Distribution::BlockCyclic(k))
    }

    /// A multi-dimensional shape (row-major); its product must be the length.
    pub fn shape(mut self, shape: &[usize]) -> Self {
        self.shape = Some(shape.to_vec());
        self
    }

    async fn build(self) -> Result<PartitionedVector<T>> {
        let shape = self.shape.unwrap_or_else(|| vec![self.len]);
        let product = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        if product != Some(self.len) {
            return Err(Error::BadArgument(format!(
                "shape {shape:?} does not hold {} elements",
                self.len
            )));
        }
        let n = hpx_runtime::get_num_localities();
        let layout = Layout::new(self.len, self.distribution, n, hpx_runtime::find_here())?;
        match self.source {
            Source::Fill(v) if bytemuck::bytes_of(&v).iter().all(|b| *b == 0) => {
                PartitionedVector::create(layout, shape, |_| Ok(Init::Zeros)).await
            }
            Source::Fill(v) => {
                let bytes = bytemuck::bytes_of(&v).to_vec();
                PartitionedVector::create(layout, shape, |_| Ok(Init::Fill(PodVec(bytes.clone()))))
                    .await
            }
            Source::Index(function) => {
                let l = layout.clone();
                PartitionedVector::create(layout, shape, move |p| {
                    Ok(Init::Index {
                        function: function.to_owned(),
                        layout: l.clone(),
                        partition: to_u64(p),
                    })
                })
                .await
            }
        }
    }
}

impl<T: Element> IntoFuture for ArrayBuilder<T> {
    type Output = Result<PartitionedVector<T>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.build())
    }
}

fn builder<T: Element>(len: usize, source: Source<T>) -> ArrayBuilder<T> {
    ArrayBuilder {
        len,
        source,
        distribution: Distribution::Block,
        shape: None,
    }
}

/// An array of `len` zeros.
pub fn zeros<T: Element>(len: usize) -> ArrayBuilder<T> {
    builder(len, Source::Fill(T::zeroed()))
}

/// An array of `len` ones.
pub fn ones<T: Element + num_one::One>(len: usize) -> ArrayBuilder<T> {
    builder(len, Source::Fill(T::one()))
}

/// An array of `len` copies of `value`.
pub fn full<T: Element>(len: usize, value: T) -> ArrayBuilder<T> {
    builder(len, Source::Fill(value))
}

/// An array whose element `i` is `F::at(i)`, computed where it lives.
pub fn from_fn<F: IndexFn>(len: usize, _f: F) -> ArrayBuilder<F::Elem> {
    builder(len, Source::Index(F::NAME))
}

/// An array holding `values`, scattered from the caller to the owners as raw bytes.
pub async fn from_vec<T: Element>(
    values: Vec<T>,
    distribution: Distribution,
) -> Result<PartitionedVector<T>> {
    let n = hpx_runtime::get_num_localities();
    let layout = Layout::new(values.len(), distribution, n, hpx_runtime::find_here())?;
    let shape = vec![values.len()];
    let l = layout.clone();
    PartitionedVector::create(layout, shape, move |p| {
        let mut bytes = Vec::with_capacity(l.partition_sizes()[p] * std::mem::size_of::<T>());
        for (global, _, len) in l.runs(p) {
            bytes.extend_from_slice(bytemuck::cast_slice(&values[global..global + len]));
        }
        Ok(Init::Data(PodVec(bytes)))
    })
    .await
}

/// The number one of each element type.
pub(crate) mod num_one {
    /// Types with a one.
    pub trait One {
        /// One.
        fn one() -> Self;
    }

    macro_rules! one {
        ($($t:ty => $v:expr),*) => {$(
            impl One for $t {
                fn one() -> Self {
                    $v
                }
            }
        )*};
    }

    one!(i8 => 1, i16 => 1, i32 => 1, i64 => 1, i128 => 1, isize => 1,
         u8 => 1, u16 => 1, u32 => 1, u64 => 1, u128 => 1, usize => 1, f32 => 1.0, f64 => 1.0);
}

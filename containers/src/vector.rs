//! `PartitionedVector<T>`: a distributed array of numbers.

use std::any::Any;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut, Range};
use std::sync::Arc;

use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use hpx_runtime::element::ReduceOp;
use hpx_runtime::{
    async_at, Action, Component, ComponentRef, Error, GlobalId, LocalityId, PodVec, Result,
    SharedBytes,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::{OwnedRwLockMappedWriteGuard, OwnedRwLockReadGuard};

use crate::axes::Fold;
use crate::builder::IntoShape;
use crate::data::{combine, push_span, Span};
use crate::function::{self, ElementMap, ElementPredicate, ElementReduce};
use crate::layout::{Distribution, Layout, LayoutSpec};
use crate::math::Numeric;
use crate::partition::{self, handle, owner, Init};
use hpx_runtime::element::element_from_bytes;

type Object = Box<dyn Any + Send + Sync>;

/// Chunks of at least this many elements are scanned where they live, from
/// carries (two elements per chunk travel); shorter ones move to blocks.
const CHUNKED_SCAN: usize = 64;
/// Bytes of one read from another locality in
/// [`PartitionedVector::get_range_into`].
const READ_PIECE: usize = 2 << 20;
/// Reads in flight to each owner at a time there: one being written by the
/// owner while the last is copied here.
const READS_PER_OWNER: usize = 2;

struct Meta {
    layout: Layout,
    parts: Vec<ComponentRef>,
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

impl<T: Numeric> std::fmt::Debug for PartitionedVector<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedVector")
            .field("type", &T::NAME)
            .field("shape", &self.shape())
            .field("distribution", self.meta.layout.distribution())
            .field("partition_sizes", &self.partition_sizes())
            .field("localities", &self.localities())
            .finish()
    }
}

impl<T: Numeric> Serialize for PartitionedVector<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (T::NAME, &self.meta.layout, &self.meta.parts).serialize(s)
    }
}

impl<'de, T: Numeric> Deserialize<'de> for PartitionedVector<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (dtype, layout, parts) = <(String, Layout, Vec<ComponentRef>)>::deserialize(d)?;
        PartitionedVector::assemble(&dtype, layout, parts).map_err(serde::de::Error::custom)
    }
}

/// Shared, zero-copy access to the elements of a partition on this
/// locality (empty when this locality holds no partition of the array).
pub struct LocalPartition<T> {
    guard: Option<OwnedRwLockReadGuard<Object, [T]>>,
}

impl<T> std::fmt::Debug for LocalPartition<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPartition")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T> Deref for LocalPartition<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.guard {
            Some(g) => g,
            None => &[],
        }
    }
}

/// Exclusive, zero-copy access to the elements of a partition on this
/// locality (empty when this locality holds no partition of the array).
pub struct LocalPartitionMut<T> {
    guard: Option<OwnedRwLockMappedWriteGuard<Object, [T]>>,
}

impl<T> std::fmt::Debug for LocalPartitionMut<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPartitionMut")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T> Deref for LocalPartitionMut<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.guard {
            Some(g) => g,
            None => &[],
        }
    }
}

impl<T> DerefMut for LocalPartitionMut<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.guard {
            Some(g) => g,
            None => &mut [],
        }
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

impl<T: Numeric> PartitionRef<T> {
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
    pub fn global_index(&self, local: usize) -> Result<usize> {
        self.layout.global(self.index, local)
    }

    /// The array's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The locality that holds the partition.
    pub fn locality(&self) -> LocalityId {
        self.gid.owner()
    }

    /// The array's flat index of the partition's first element (None if
    /// the partition is empty).
    pub fn global_offset(&self) -> Option<usize> {
        self.layout.global(self.index, 0).ok()
    }

    /// The box the partition covers in the array: the index of its first
    /// element along each axis and its extent along each axis (row blocks
    /// and tiles are boxes; round-robin partitions are not, and give None).
    pub fn global_box(&self) -> Option<(Vec<usize>, Vec<usize>)> {
        self.layout.partition_box(self.index)
    }

    /// Shared, zero-copy access to the elements (on the partition's owner).
    pub async fn view(&self) -> Result<LocalPartition<T>> {
        Ok(LocalPartition {
            guard: Some(partition::view::<T>(self.gid).await?),
        })
    }

    /// Exclusive, zero-copy access to the elements (on the partition's owner).
    pub async fn view_mut(&self) -> Result<LocalPartitionMut<T>> {
        Ok(LocalPartitionMut {
            guard: Some(partition::view_mut::<T>(self.gid).await?),
        })
    }
}

fn to_u64(v: usize) -> u64 {
    v as u64
}

/// Checks that two arrays have the same shape (element-wise work and
/// copies need it; their layouts may differ).
pub(crate) fn same_shape<T, U>(
    a: &PartitionedVector<T>,
    b: &PartitionedVector<U>,
    what: &str,
) -> Result<()> {
    if a.meta.layout.shape() == b.meta.layout.shape() {
        Ok(())
    } else {
        Err(Error::BadArgument(format!(
            "{what} of arrays of shapes {:?} and {:?}",
            a.meta.layout.shape(),
            b.meta.layout.shape()
        )))
    }
}

impl<T: Numeric> PartitionedVector<T> {
    pub(crate) fn assemble(dtype: &str, layout: Layout, parts: Vec<ComponentRef>) -> Result<Self> {
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
            meta: Arc::new(Meta { layout, parts }),
            _type: PhantomData,
        })
    }

    /// The partitions' component handles, in partition order.
    pub(crate) fn part_refs(&self) -> &[ComponentRef] {
        &self.meta.parts
    }

    /// Creates the partitions of `layout`, each initialised by `init(partition)`.
    pub(crate) async fn create(
        layout: Layout,
        init: impl Fn(usize) -> Result<Init>,
    ) -> Result<Self> {
        let calls = remote_first(
            layout.num_partitions(),
            |p| layout.localities()[p],
            |p| {
                let size = to_u64(layout.partition_sizes()[p]);
                init(p).map(|i| {
                    async_at(
                        layout.localities()[p],
                        partition::part_create,
                        (T::NAME.to_owned(), size, i),
                    )
                })
            },
        )
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
        let parts = join_all(calls)
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        PartitionedVector::assemble(T::NAME, layout, parts)
    }

    /// Makes every partition handle of this locality a strong one, so the
    /// array lives as long as this handle does (a handle received inside a
    /// collective's value is weak: it reaches the array only while another
    /// handle keeps it alive). An error names the array if it is gone.
    pub async fn keep_alive(&self) -> Result<()> {
        let calls = self.meta.parts.iter().map(ComponentRef::keep_alive);
        for r in join_all(calls).await {
            r.map_err(|e| self.explain(e))?;
        }
        Ok(())
    }

    /// An error of an operation on this array, with the array named when a
    /// partition no longer exists.
    pub(crate) fn explain(&self, e: Error) -> Error {
        let gone = |gid: GlobalId| {
            let p = self.meta.parts.iter().position(|r| r.gid() == gid)?;
            Some(Error::BadArgument(format!(
                "partition {p} (on locality {}) of the {} array of shape {:?} no longer exists: \
                 every handle that kept the array alive was dropped; a handle received inside \
                 a collective's value is weak: call keep_alive() on it while the sender still \
                 holds the array, or create the array collectively",
                gid.owner(),
                T::NAME,
                self.shape()
            )))
        };
        match &e {
            Error::ComponentGone(gid) => gone(*gid).unwrap_or(e),
            Error::Remote { message, .. } => self
                .meta
                .parts
                .iter()
                .find(|r| message.contains(&format!("component {} does not exist", r.gid())))
                .and_then(|r| gone(r.gid()))
                .unwrap_or(e),
            _ => e,
        }
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
        self.meta.layout.shape()
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape().len()
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
        let shape = self.shape();
        if index.len() != shape.len() {
            return Err(Error::BadArgument(format!(
                "a {}-d index for an array of shape {shape:?}",
                index.len(),
            )));
        }
        let mut flat = 0usize;
        for (i, (&x, &extent)) in index.iter().zip(shape).enumerate() {
            if x >= extent {
                return Err(Error::BadArgument(format!(
                    "index {index:?} is out of range in dimension {i} of shape {shape:?}"
                )));
            }
            flat = flat * extent + x;
        }
        Ok(flat)
    }

    /// This locality's one partition (None if it holds none).
    fn here_partition(&self) -> Result<Option<GlobalId>> {
        let here = hpx_runtime::find_here();
        let mut mine = self.meta.parts.iter().filter(|p| owner(p) == here);
        match (mine.next(), mine.next()) {
            (first, None) => Ok(first.map(ComponentRef::gid)),
            (Some(_), Some(_)) => Err(Error::BadArgument(format!(
                "locality {here} holds {} partitions of this array: use local_partitions() \
                 for a view of each",
                self.local_partitions().len()
            ))),
            (None, Some(_)) => Err(Error::BadArgument("inconsistent partitions".into())),
        }
    }

    /// Shared, zero-copy access to this locality's partition: empty if it
    /// holds none, an error if it holds several (see [`local_partitions`](Self::local_partitions)).
    pub async fn local_partition(&self) -> Result<LocalPartition<T>> {
        let guard = match self.here_partition()? {
            Some(gid) => Some(
                partition::view::<T>(gid)
                    .await
                    .map_err(|e| self.explain(e))?,
            ),
            None => None,
        };
        Ok(LocalPartition { guard })
    }

    /// Exclusive, zero-copy access to this locality's partition: empty if
    /// it holds none, an error if it holds several.
    pub async fn local_partition_mut(&self) -> Result<LocalPartitionMut<T>> {
        let guard = match self.here_partition()? {
            Some(gid) => Some(
                partition::view_mut::<T>(gid)
                    .await
                    .map_err(|e| self.explain(e))?,
            ),
            None => None,
        };
        Ok(LocalPartitionMut { guard })
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

    /// Element `index` (a flat, row-major index).
    pub async fn get(&self, index: usize) -> Result<T> {
        let place = self.meta.layout.locate(index)?;
        let part = &self.meta.parts[place.partition];
        let local = to_u64(place.local);
        let bytes = async_at(
            owner(part),
            partition::part_read,
            (part.gid(), local, local + 1),
        )
        .await
        .map_err(|e| self.explain(e))?;
        element_from_bytes(&bytes)
    }

    /// Sets element `index` (a flat, row-major index) to `value`.
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
        .map_err(|e| self.explain(e))
    }

    /// The element at a multi-dimensional index (`a.get_at(&[i, j])`).
    pub async fn get_at(&self, index: &[usize]) -> Result<T> {
        self.get(self.flat_index(index)?).await
    }

    /// Sets the element at a multi-dimensional index.
    pub async fn set_at(&self, index: &[usize], value: T) -> Result<()> {
        self.set(self.flat_index(index)?, value).await
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
    fn pieces(&self, range: &Range<usize>) -> Result<Vec<(usize, usize, usize, usize)>> {
        // Walks the range run by run: the work is proportional to the
        // runs inside it, not to the array.
        let layout = &self.meta.layout;
        let mut out = Vec::new();
        let mut at = range.start;
        while at < range.end {
            let (place, run) = layout.locate_run(at)?;
            let n = run.min(range.end - at);
            out.push((place.partition, place.local, at - range.start, n));
            at += n;
        }
        Ok(out)
    }

    /// Elements `range`, gathered from their owners in parallel as raw bytes.
    pub async fn get_range(&self, range: Range<usize>) -> Result<Vec<T>> {
        self.check_range(&range)?;
        let mut out = hpx_runtime::memory::fresh::<T>(range.len());
        self.get_range_into(range.start, &mut out).await?;
        Ok(out)
    }

    /// Elements `start..start + out.len()` written into `out` (memory the
    /// caller owns, such as a NumPy array's): partitions held here are
    /// copied straight from their memory, the others read from their owners
    /// in parallel as raw bytes, in pieces of at most [`READ_PIECE`] bytes
    /// so that an owner writes the next piece while this locality copies
    /// the last one ([`READS_PER_OWNER`] at a time).
    pub async fn get_range_into(&self, start: usize, out: &mut [T]) -> Result<()> {
        let range = start..start.saturating_add(out.len());
        self.check_range(&range)?;
        // Per partition: its pieces of the range (local index, offset in
        // `out`, length), in local order, and the span they cover.
        let mut by_part: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); self.num_partitions()];
        for (p, local, offset, n) in self.pieces(&range)? {
            by_part[p].push((local, offset, n));
        }
        let size = std::mem::size_of::<T>().max(1);
        let here = hpx_runtime::find_here();
        let per_read = (READ_PIECE / size).max(1);
        // Reads of the partitions held elsewhere, one piece of each in turn
        // so that every owner is busy from the start.
        let mut reads: Vec<(usize, usize, usize)> = Vec::new();
        let spans: Vec<(usize, usize, usize)> = by_part
            .iter()
            .enumerate()
            .filter(|(p, pieces)| !pieces.is_empty() && owner(&self.meta.parts[*p]) != here)
            .map(|(p, pieces)| {
                let first = pieces[0].0;
                let last = pieces[pieces.len() - 1];
                (p, first, last.0 + last.2)
            })
            .collect();
        for k in 0usize.. {
            let before = reads.len();
            for &(p, from, to) in &spans {
                let at = from.saturating_add(k.saturating_mul(per_read));
                if at < to {
                    reads.push((p, at, (at + per_read).min(to)));
                }
            }
            if reads.len() == before {
                break;
            }
        }
        let read = |(p, from, to): (usize, usize, usize)| {
            let (gid, at) = (self.meta.parts[p].gid(), owner(&self.meta.parts[p]));
            let call = async_at(at, partition::part_read, (gid, to_u64(from), to_u64(to)));
            async move { Ok::<_, Error>((p, from, to, call.await?)) }
        };
        // The first reads leave now; partitions held here are copied
        // straight from their memory while their owners answer.
        let mut waiting = reads.into_iter();
        let mut in_flight: FuturesUnordered<_> = waiting
            .by_ref()
            .take(READS_PER_OWNER * spans.len())
            .map(read)
            .collect();
        for (p, pieces) in by_part.iter().enumerate() {
            if pieces.is_empty() || owner(&self.meta.parts[p]) != here {
                continue;
            }
            let view = partition::view::<T>(self.meta.parts[p].gid())
                .await
                .map_err(|e| self.explain(e))?;
            for &(from, offset, n) in pieces {
                let piece = view.get(from..from + n).ok_or_else(|| {
                    Error::Codec(format!(
                        "partition {p} holds fewer elements than its layout"
                    ))
                })?;
                out[offset..offset + n].copy_from_slice(piece);
            }
        }
        let out_bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
        while let Some(done) = in_flight.next().await {
            let (p, from, to, bytes) = done?;
            if let Some(next) = waiting.next() {
                in_flight.push(read(next));
            }
            if bytes.len() != (to - from) * size {
                return Err(Error::Codec(format!(
                    "partition {p} sent {} bytes for elements {from}..{to}",
                    bytes.len()
                )));
            }
            let pieces = &by_part[p];
            let first = pieces.partition_point(|&(local, _, n)| local + n <= from);
            for &(local, offset, n) in pieces[first..].iter().take_while(|piece| piece.0 < to) {
                let (a, b) = (local.max(from), (local + n).min(to));
                let at = offset + (a - local);
                out_bytes[at * size..(at + b - a) * size]
                    .copy_from_slice(&bytes[(a - from) * size..(b - from) * size]);
            }
        }
        Ok(())
    }

    /// Writes `values` to elements `start..start + values.len()`: one
    /// message of raw bytes per partition touched, sent in parallel.
    pub async fn set_range(&self, start: usize, values: &[T]) -> Result<()> {
        let range = start..start.saturating_add(values.len());
        self.check_range(&range)?;
        let mut plan: Vec<(Vec<Span>, Vec<T>)> = vec![Default::default(); self.num_partitions()];
        for (p, local, offset, n) in self.pieces(&range)? {
            let (spans, data) = &mut plan[p];
            push_span(spans, local, n);
            data.extend_from_slice(&values[offset..offset + n]);
        }
        let writes = plan
            .into_iter()
            .enumerate()
            .filter(|(_, (spans, _))| !spans.is_empty())
            .map(|(p, (spans, data))| {
                let part = handle(&self.meta.parts[p]);
                let bytes = PodVec(bytemuck::cast_slice(&data).to_vec());
                async move { part.call(partition::part_write_spans, (spans, bytes)).await }
            });
        for r in join_all(writes).await {
            r.map_err(|e| self.explain(e))?;
        }
        Ok(())
    }

    /// Gathers the whole array to the caller (raw bytes, from all owners in parallel).
    pub async fn to_vec(&self) -> Result<Vec<T>> {
        self.get_range(0..self.len()).await
    }

    pub(crate) async fn on_all<A, F>(&self, action: A, args: F) -> Result<Vec<A::Output>>
    where
        A: hpx_runtime::ComponentAction<Component = partition::Partition>,
        F: Fn(usize) -> A::UserArgs,
    {
        let parts = &self.meta.parts;
        let calls = remote_first(
            parts.len(),
            |p| owner(&parts[p]),
            |p| handle(&parts[p]).call(action, args(p)),
        );
        join_all(calls)
            .await
            .into_iter()
            .map(|r| r.map_err(|e| self.explain(e)))
            .collect()
    }

    /// Runs `action` on each partition's owner with the ids of this array's
    /// and `other`'s partitions (same layout), collecting the results.
    pub(crate) async fn on_pairs<U: Numeric, A, F>(
        &self,
        other: &PartitionedVector<U>,
        action: A,
        args: F,
    ) -> Result<Vec<A::Output>>
    where
        A: Action,
        F: Fn(GlobalId, GlobalId) -> A::Args,
    {
        let (ours, theirs) = (&self.meta.parts, &other.meta.parts);
        let calls = remote_first(
            ours.len().min(theirs.len()),
            |p| owner(&ours[p]),
            |p| {
                let (a, b) = (&ours[p], &theirs[p]);
                async_at(owner(a), action, args(a.gid(), b.gid()))
            },
        );
        join_all(calls)
            .await
            .into_iter()
            .map(|r| r.map_err(|e| self.explain(other.explain(e))))
            .collect()
    }

    /// A new array with the same shape, holding the same elements in the
    /// layout `spec` describes: every partition sends what each new
    /// partition needs in one message, owner to owner.
    pub async fn redistribute(&self, spec: LayoutSpec) -> Result<PartitionedVector<T>> {
        let layout = Layout::from_spec(spec)?;
        if layout.shape() != self.shape() {
            return Err(Error::BadArgument(format!(
                "redistribution of an array of shape {:?} into a layout of shape {:?}",
                self.shape(),
                layout.shape()
            )));
        }
        layout.check_localities(hpx_runtime::get_num_localities())?;
        let target = PartitionedVector::<T>::create(layout, |_| Ok(Init::Zeros)).await?;
        target.receive_from(self, &[]).await?;
        Ok(target)
    }

    /// This array with the shape `shape` (NumPy's `reshape`: the same
    /// elements in the same row-major order; the shape must hold as many).
    /// A view sharing this array's partitions (a write through either is
    /// seen by both) where every partition is a contiguous run of whole rows
    /// of the new shape, as in the block, chunked and explicit layouts;
    /// otherwise a copy in the block distribution, sent owner to owner.
    pub async fn reshape(&self, shape: impl IntoShape) -> Result<PartitionedVector<T>> {
        let shape = shape.into_shape();
        let count = shape.iter().try_fold(1usize, |n, &k| n.checked_mul(k));
        if count != Some(self.len()) || shape.is_empty() {
            return Err(Error::BadArgument(format!(
                "cannot reshape an array of {} elements into shape {shape:?}",
                self.len()
            )));
        }
        let layout = &self.meta.layout;
        if layout.is_contiguous() {
            let view = Layout::from_spec(LayoutSpec {
                shape: shape.clone(),
                distribution: Distribution::Explicit {
                    sizes: layout.partition_sizes().to_vec(),
                    localities: layout.localities().to_vec(),
                },
                over: layout.spec().over.clone(),
                grid: None,
            });
            if let Ok(view) = view {
                return Ok(PartitionedVector {
                    meta: Arc::new(Meta {
                        layout: view,
                        parts: self.meta.parts.clone(),
                    }),
                    _type: PhantomData,
                });
            }
        }
        let target = PartitionedVector::<T>::create(block(shape)?, |_| Ok(Init::Zeros)).await?;
        target.receive_from(self, &[]).await?;
        Ok(target)
    }

    /// The transpose (NumPy's `.T`: the axes in reverse order), a new array
    /// in block rows: every owner sends each other owner, in one message,
    /// the elements of its partitions that land there. A 1-d array is its
    /// own transpose (this array, shared).
    pub async fn transpose(&self) -> Result<PartitionedVector<T>> {
        if self.shape().len() == 1 {
            return Ok(self.clone());
        }
        let axes: Vec<usize> = (0..self.shape().len()).rev().collect();
        self.permute_axes(&axes).await
    }

    /// The array with its axes in the order `axes` (NumPy's
    /// `transpose(axes)`: axis `i` of the result is axis `axes[i]` of this
    /// array), a new array in block rows, sent owner to owner as
    /// [`transpose`](Self::transpose). The same order gives a copy.
    pub async fn permute_axes(&self, axes: &[usize]) -> Result<PartitionedVector<T>> {
        let shape = self.shape();
        let mut seen = vec![false; shape.len()];
        let ok = axes.len() == shape.len()
            && axes
                .iter()
                .all(|&a| seen.get_mut(a).is_some_and(|s| !std::mem::replace(s, true)));
        if !ok {
            return Err(Error::BadArgument(format!(
                "axes {axes:?} are not a permutation of the {} axes of an array of shape \
                 {shape:?}",
                shape.len()
            )));
        }
        let permuted: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
        let target = PartitionedVector::<T>::create(block(permuted)?, |_| Ok(Init::Zeros)).await?;
        target.receive_from(self, axes).await?;
        Ok(target)
    }

    /// The matrix product `self @ other` of 2-d arrays (`m` × `k` times
    /// `k` × `n`): a new `m` × `n` array whose rows lie with the left
    /// operand's rows. The left operand is used in place where its
    /// partitions are whole rows (block, chunked and explicit layouts;
    /// else it is first redistributed in block rows); the right one is
    /// read once and sent whole to every owner of rows, which multiplies
    /// its rows with the `gemm` crate (floats) or a plain loop (integers,
    /// wrapping as NumPy's). Memory: every owner holds the right operand.
    pub async fn matmul(&self, other: &PartitionedVector<T>) -> Result<PartitionedVector<T>> {
        let n = match *other.shape() {
            [k, n] if Some(&k) == self.shape().get(1) => n,
            _ => {
                return Err(Error::BadArgument(format!(
                    "matmul of shapes {:?} and {:?}: needs m x k and k x n",
                    self.shape(),
                    other.shape()
                )))
            }
        };
        let b = other.to_vec().await?;
        self.matmul_bytes(SharedBytes(bytes::Bytes::from_owner(Elements(b))), n)
            .await
    }

    /// `self @ b` for a 2-d array `self` (`m` × `k`) and the `k` × `n`
    /// values `b` (row-major) held here; as [`matmul`](Self::matmul).
    pub async fn matmul_values(&self, b: Vec<T>, n: usize) -> Result<PartitionedVector<T>> {
        let bytes = SharedBytes(bytes::Bytes::from_owner(Elements(b)));
        self.matmul_bytes(bytes, n).await
    }

    /// [`matmul_values`](Self::matmul_values) with the values as the bytes
    /// that travel.
    async fn matmul_bytes(&self, b: SharedBytes, n: usize) -> Result<PartitionedVector<T>> {
        let count = b.len() / std::mem::size_of::<T>().max(1);
        let (m, k) = match *self.shape() {
            [m, k] if k.checked_mul(n) == Some(count) => (m, k),
            _ => {
                return Err(Error::BadArgument(format!(
                    "matmul of shape {:?} by {count} values in rows of {n}: needs m x k and k x n",
                    self.shape(),
                )))
            }
        };
        if k == 0 {
            // Sums of nothing: zeros, in block rows.
            return PartitionedVector::<T>::create(block(vec![m, n])?, |_| Ok(Init::Zeros)).await;
        }
        let layout = &self.meta.layout;
        let whole_rows =
            layout.is_contiguous() && layout.partition_sizes().iter().all(|s| s % k == 0);
        let rows = if whole_rows {
            self.clone()
        } else {
            self.redistribute(block(vec![m, k])?.spec().clone()).await?
        };
        let sizes: Vec<usize> = rows
            .meta
            .layout
            .partition_sizes()
            .iter()
            .map(|s| s / k * n)
            .collect();
        let spec = LayoutSpec {
            shape: vec![m, n],
            distribution: Distribution::Explicit {
                sizes,
                localities: rows.meta.layout.localities().to_vec(),
            },
            over: rows.meta.layout.spec().over.clone(),
            grid: None,
        };
        let out =
            PartitionedVector::<T>::create(Layout::from_spec(spec)?, |_| Ok(Init::Zeros)).await?;
        let (k64, n64) = (k as u64, n as u64);
        out.on_pairs(&rows, partition::part_matmul, |into, from| {
            (into, from, b.clone(), k64, n64)
        })
        .await?;
        Ok(out)
    }

    /// This array's elements in `other`'s layout (`self` itself, shared, if
    /// the placements already agree).
    pub async fn aligned_with<U: Numeric>(
        &self,
        other: &PartitionedVector<U>,
    ) -> Result<PartitionedVector<T>> {
        same_shape(self, other, "aligning")?;
        self.in_layout(&other.meta.layout).await
    }

    /// This array's elements in `layout` (of the same shape): `self`
    /// itself, shared, if the placements already agree.
    pub(crate) async fn in_layout(&self, layout: &Layout) -> Result<PartitionedVector<T>> {
        if self.meta.layout.same_placement(layout) {
            return Ok(self.clone());
        }
        self.redistribute(layout.spec().clone()).await
    }

    /// Overwrites this array's elements with `source`'s (as many, any
    /// layout, in row-major order; with a permutation `axes`, this array
    /// has `source`'s axes in that order), sent owner to owner.
    async fn receive_from(&self, source: &PartitionedVector<T>, axes: &[usize]) -> Result<()> {
        let targets: Vec<GlobalId> = self.partition_ids();
        let axes = axes
            .iter()
            .map(|&a| u8::try_from(a))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| Error::BadArgument(format!("axes {axes:?}: at most 255 axes")))?;
        let from = &source.meta.layout;
        let calls = source
            .meta
            .parts
            .iter()
            .enumerate()
            .filter(|(p, _)| from.partition_sizes()[*p] > 0)
            .map(|(p, part)| {
                async_at(
                    owner(part),
                    partition::part_send,
                    (
                        part.gid(),
                        to_u64(p),
                        from.clone(),
                        self.meta.layout.clone(),
                        targets.clone(),
                        axes.clone(),
                    ),
                )
            });
        for r in join_all(calls).await {
            r.map_err(|e| self.explain(source.explain(e)))?;
        }
        Ok(())
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

    /// The smallest element (None for an empty array).
    pub async fn min(&self) -> Result<Option<T>> {
        self.reduce(ReduceOp::Min).await
    }

    /// The largest element (None for an empty array).
    pub async fn max(&self) -> Result<Option<T>> {
        self.reduce(ReduceOp::Max).await
    }

    /// The dot product with `other` (same shape; redistributed to this
    /// array's layout first if needed), in one pass over each pair of
    /// partitions on its owner. Integers wrap; for floats each product is
    /// rounded and their sum is exact, rounded once: the same bits for any
    /// layout and any number of localities.
    pub async fn dot(&self, other: &PartitionedVector<T>) -> Result<T> {
        let total = (crate::lazy::Expr::from(self) * other).sum().await?;
        Ok(total.cast::<T>())
    }

    /// Copies `other` (same shape, any layout) into this array. With the
    /// same placement each owner copies locally; otherwise each of
    /// `other`'s partitions sends its elements to their new owners in one
    /// message per target partition.
    pub async fn copy_from(&self, other: &PartitionedVector<T>) -> Result<()> {
        same_shape(self, other, "copy")?;
        if self.meta.layout.same_placement(&other.meta.layout) {
            self.on_pairs(other, partition::part_copy, |into, from| (into, from))
                .await?;
            return Ok(());
        }
        self.receive_from(other, &[]).await
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
        if layout.is_contiguous() {
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
        if let Some(chunk) = layout.round_robin_chunk().filter(|k| *k >= CHUNKED_SCAN) {
            return self.scan_round_robin(op, inclusive, init, chunk).await;
        }
        // Cyclic layouts of short chunks and tiled layouts interleave the
        // partitions in index order: the elements move (in bulk) to blocks
        // of rows on the same localities, are scanned there and move back.
        let blocks = LayoutSpec {
            shape: self.shape().to_vec(),
            distribution: Distribution::Block,
            over: layout.spec().over.clone(),
            grid: None,
        };
        let contiguous = self.redistribute(blocks).await?;
        Box::pin(contiguous.scan(op, inclusive, init)).await?;
        self.receive_from(&contiguous, &[]).await
    }

    /// A scan of a round-robin layout of chunks of `chunk` elements: the
    /// owners send one total per chunk, the caller combines them into each
    /// chunk's carry in index order, and the owners scan their chunks from
    /// those carries. Only two elements per chunk travel.
    async fn scan_round_robin(
        &self,
        op: ReduceOp,
        inclusive: bool,
        init: Option<T>,
        chunk: usize,
    ) -> Result<()> {
        let layout = &self.meta.layout;
        let p = self.num_partitions();
        let totals = self
            .on_all(partition::part_chunk_totals, |_| (op, to_u64(chunk)))
            .await?;
        let totals: Vec<Vec<T>> = totals
            .iter()
            .map(|t| hpx_runtime::element::elements_from_bytes::<T>(t))
            .collect::<Result<_>>()?;
        for (q, t) in totals.iter().enumerate() {
            if t.len() != layout.partition_sizes()[q].div_ceil(chunk) {
                return Err(Error::Codec(format!(
                    "partition {q} sent {} chunk totals",
                    t.len()
                )));
            }
        }
        let mut carries: Vec<Vec<T>> = totals.iter().map(|t| vec![T::zeroed(); t.len()]).collect();
        let mut first_without_carry = vec![false; p];
        let mut acc = init;
        for g in 0..layout.len().div_ceil(chunk) {
            let (q, j) = (g % p, g / p);
            match acc {
                Some(a) => carries[q][j] = a,
                None => first_without_carry[q] = true,
            }
            let t = totals[q][j];
            acc = Some(acc.map_or(t, |a| combine(op, a, t)));
        }
        self.on_all(partition::part_scan_chunks, |q| {
            (
                op,
                inclusive,
                to_u64(chunk),
                PodVec(bytemuck::cast_slice(&carries[q]).to_vec()),
                first_without_carry[q],
            )
        })
        .await?;
        Ok(())
    }

    /// Scans along `axis` in place (NumPy's `cumsum(axis=k)` with
    /// [`ReduceOp::Sum`], `cumprod` with `Prod`): each element becomes the
    /// combination of the elements before it along that axis and itself.
    /// Two passes on the owners: each partition's line totals, then each
    /// partition scans from the combination of the partitions before it
    /// (layouts whose partitions are not contiguous runs are scanned in
    /// block rows and sent back).
    pub async fn inclusive_scan_axis(&self, axis: usize, op: ReduceOp) -> Result<()> {
        let layout = self.meta.layout.clone();
        if !layout.is_contiguous() {
            Fold::new(self.shape(), &[axis])?;
            let contiguous = self
                .redistribute(block(self.shape().to_vec())?.spec().clone())
                .await?;
            Box::pin(contiguous.inclusive_scan_axis(axis, op)).await?;
            return self.receive_from(&contiguous, &[]).await;
        }
        let (lines, partials) = self.axis_partials(&[axis], op).await?;
        let mut running: Vec<Option<T::Sum>> = vec![None; lines];
        let mut carries = Vec::with_capacity(partials.len());
        for partial in partials {
            let (mut slots, mut from) = (Vec::new(), Vec::new());
            for (i, v) in partial {
                running[i] = Some(match running[i] {
                    Some(carry) => {
                        slots.push(i as u64);
                        from.push(carry.cast::<T>());
                        combine(op, carry, v)
                    }
                    None => v,
                });
            }
            carries.push((slots, bytemuck::cast_slice::<T, u8>(&from).to_vec()));
        }
        self.on_all(partition::part_scan_axis, |p| {
            let (slots, from) = &carries[p];
            (
                layout.clone(),
                p as u64,
                axis as u64,
                op,
                PodVec(slots.clone()),
                PodVec(from.clone()),
            )
        })
        .await?;
        Ok(())
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
        let parts = self.partitions();
        let calls = remote_first(
            parts.len(),
            |p| parts[p].gid.owner(),
            |p| {
                async_at(
                    parts[p].gid.owner(),
                    action,
                    (parts[p].clone(), args.clone()),
                )
            },
        );
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
        };
        let d = hpx_runtime::new_component(hpx_runtime::find_here(), descriptor).await?;
        d.register_as(name).await
    }

    /// The array registered as `name`, waiting up to 30 s for it.
    pub async fn connect_to(name: &str) -> Result<PartitionedVector<T>> {
        let d = Component::<Descriptor>::connect_to(name).await?;
        let (dtype, layout, parts) = d.call(describe, ()).await?;
        PartitionedVector::assemble(&dtype, layout, parts)
    }
}

/// What a name registered with [`PartitionedVector::register_as`] holds.
#[hpx_macros::component(crate = hpx_runtime)]
#[derive(Serialize, Deserialize)]
pub(crate) struct Descriptor {
    dtype: String,
    layout: Layout,
    parts: Vec<ComponentRef>,
}

#[hpx_macros::action(crate = hpx_runtime)]
async fn describe(d: &Descriptor) -> (String, Layout, Vec<ComponentRef>) {
    (d.dtype.clone(), d.layout.clone(), d.parts.clone())
}

/// A vector of elements seen as its bytes: the owner of bytes that travel
/// without a copy into a byte vector.
struct Elements<T>(Vec<T>);

impl<T: Numeric> AsRef<[u8]> for Elements<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// The block layout of `shape` over every locality of the job.
fn block(shape: Vec<usize>) -> Result<Layout> {
    Layout::from_spec(LayoutSpec {
        shape,
        distribution: Distribution::Block,
        over: (0..hpx_runtime::get_num_localities())
            .map(LocalityId)
            .collect(),
        grid: None,
    })
}

/// Calls `call(i)` for every `i` in `0..n`, those whose work runs on another
/// locality (`owner(i)` is not this one) first, and returns the futures in
/// index order. Their parcels leave before a call here spawns its task:
/// from a host thread (Python's, say) that spawn wakes a worker, which the
/// kernel may put on the caller's own core for as long as the call runs,
/// and the remote calls would wait for it.
pub(crate) fn remote_first<F>(
    n: usize,
    owner: impl Fn(usize) -> LocalityId,
    mut call: impl FnMut(usize) -> F,
) -> Vec<F> {
    let here = hpx_runtime::try_find_here().ok();
    let mut started: Vec<Option<F>> = (0..n).map(|_| None).collect();
    let (remote, local): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| Some(owner(i)) != here);
    for i in remote.into_iter().chain(local) {
        started[i] = Some(call(i));
    }
    started.into_iter().flatten().collect()
}

//! A partition of a distributed array: a component holding the elements one
//! locality owns, and the actions that work on it where it lives.

use std::any::Any;

use hpx_runtime::agas::{component_exclusive, component_shared};
use hpx_runtime::element::ReduceOp;
use hpx_runtime::{
    Component, ComponentRef, Error, GlobalId, LocalityId, PodVec, Result, SharedBytes,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::axes::Fold;
use crate::data::{self, push_span, ErasedVec, Span};
use crate::expr::{self, Plan, Reduction, Step};
use crate::function;
use crate::generate::{generate, Generator};
use crate::layout::Layout;
use hpx_runtime::async_at;

/// The elements of one partition.
#[hpx_macros::component(crate = hpx_runtime)]
pub(crate) struct Partition {
    pub(crate) data: Box<dyn ErasedVec>,
    /// Counts the elements' bytes as held on this locality.
    _held: hpx_runtime::counters::HeldBytes,
}

impl Partition {
    /// A partition of `data`, counted as held here.
    pub(crate) fn new(data: Box<dyn ErasedVec>) -> Partition {
        let _held = hpx_runtime::counters::HeldBytes::new(data.byte_len());
        Partition { data, _held }
    }
}

impl Serialize for Partition {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let bytes = self
            .data
            .bytes(0, self.data.len())
            .map_err(serde::ser::Error::custom)?;
        (self.data.dtype(), Raw(bytes)).serialize(s)
    }
}

/// Bytes serialized as one block, as [`PodVec<u8>`] is, from where they lie.
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de> Deserialize<'de> for Partition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (dtype, bytes) = <(String, PodVec<u8>)>::deserialize(d)?;
        let data = data::from_bytes(&dtype, &bytes).map_err(serde::de::Error::custom)?;
        Ok(Partition::new(data))
    }
}

/// How a new partition gets its elements.
#[derive(Serialize, Deserialize)]
pub(crate) enum Init {
    /// All zero.
    Zeros,
    /// All equal to one element (raw bytes).
    Fill(PodVec<u8>),
    /// These elements (raw bytes).
    Data(PodVec<u8>),
    /// A registered function of the global index.
    Index {
        function: String,
        layout: Layout,
        partition: u64,
    },
    /// A function of the global index computed by the container itself.
    Generated {
        generator: Generator,
        layout: Layout,
        partition: u64,
    },
}

/// Checks that partition `partition` of `layout` holds `len` elements (a
/// layout from another process is checked against the data before use).
fn check_size(layout: &Layout, partition: usize, len: usize) -> Result<()> {
    match layout.partition_sizes().get(partition) {
        Some(size) if *size == len => Ok(()),
        size => Err(Error::BadArgument(format!(
            "partition {partition} of the layout holds {size:?} elements, the data {len}"
        ))),
    }
}

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::BadArgument(format!("{v} does not fit in usize")))
}

/// Creates a partition here and returns a handle to it.
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_create(
    dtype: String,
    len: u64,
    init: Init,
) -> Result<ComponentRef, Error> {
    let len = to_usize(len)?;
    let data = match init {
        Init::Zeros => data::zeros(&dtype, len)?,
        Init::Fill(value) => {
            let mut data = data::zeros(&dtype, len)?;
            data.fill(&value)?;
            data
        }
        Init::Data(bytes) => {
            let data = data::from_bytes(&dtype, &bytes)?;
            if data.len() != len {
                return Err(Error::BadArgument(format!(
                    "{} elements for a partition of {len}",
                    data.len()
                )));
            }
            data
        }
        Init::Index {
            function,
            layout,
            partition,
        } => {
            let partition = to_usize(partition)?;
            check_size(&layout, partition, len)?;
            let mut data = data::zeros(&dtype, len)?;
            function::fill_index(&function, data.as_mut(), &layout, partition)?;
            data
        }
        Init::Generated {
            generator,
            layout,
            partition,
        } => {
            let partition = to_usize(partition)?;
            check_size(&layout, partition, len)?;
            let mut data = data::zeros(&dtype, len)?;
            generate(data.as_mut(), &generator, &layout, partition)?;
            data
        }
    };
    if data.len() != len {
        return Err(Error::BadArgument(format!(
            "{} elements for a partition of {len}",
            data.len()
        )));
    }
    store(data).await
}

/// Makes a partition of `data` on this locality.
async fn store(data: Box<dyn ErasedVec>) -> Result<ComponentRef> {
    let here = hpx_runtime::find_here();
    let component = hpx_runtime::new_component(here, Partition::new(data)).await?;
    Ok(component.as_ref().clone())
}

/// A partition read-locked.
type Held = tokio::sync::OwnedRwLockReadGuard<Box<dyn Any + Send + Sync>, Partition>;

/// The partitions `ids` on this locality, each read-locked once (an id may
/// appear more than once: taking a second read lock of one partition could
/// wait behind a writer that waits for the first).
async fn hold(ids: &[GlobalId]) -> Result<(Vec<Held>, Vec<usize>)> {
    if ids.len() > expr::MAX_STEPS {
        return Err(Error::BadArgument(format!(
            "an expression of {} operands",
            ids.len()
        )));
    }
    let mut held: Vec<(GlobalId, Held)> = Vec::new();
    let mut index = Vec::with_capacity(ids.len());
    for &id in ids {
        match held.iter().position(|(g, _)| *g == id) {
            Some(i) => index.push(i),
            None => {
                index.push(held.len());
                held.push((id, component_shared::<Partition>(id).await?));
            }
        }
    }
    Ok((held.into_iter().map(|(_, g)| g).collect(), index))
}

/// A new partition here: the expression `steps` over the partitions
/// `inputs` (here, one per input of the expression), element by element;
/// `place` is the value's layout and the partition's index in it, for
/// expressions with broadcast values.
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_eval(
    inputs: Vec<GlobalId>,
    steps: Vec<Step>,
    place: Option<(Layout, u64)>,
) -> Result<ComponentRef, Error> {
    let data = {
        let (held, index) = hold(&inputs).await?;
        let views = index.iter().map(|&i| held[i].data.as_ref()).collect();
        let place = placed(&place)?;
        Plan::new(&steps, views, place)?.evaluate()?
    };
    store(data).await
}

/// The partial reduction `r` of the expression `steps` over the
/// partitions `inputs` here (see [`Plan::reduce`]; `place` as for
/// [`part_eval`]).
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_eval_reduce(
    inputs: Vec<GlobalId>,
    steps: Vec<Step>,
    r: Reduction,
    place: Option<(Layout, u64)>,
) -> Result<Option<PodVec<u8>>, Error> {
    let (held, index) = hold(&inputs).await?;
    let views = index.iter().map(|&i| held[i].data.as_ref()).collect();
    let place = placed(&place)?;
    Ok(Plan::new(&steps, views, place)?.reduce(r)?.map(PodVec))
}

/// A received `(layout, partition)` with the partition as an index.
fn placed(place: &Option<(Layout, u64)>) -> Result<Option<(&Layout, usize)>, Error> {
    place
        .as_ref()
        .map(|(layout, p)| Ok((layout, to_usize(*p)?)))
        .transpose()
}

/// The partition's first extreme element: (local index, raw value).
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_arg_extreme(p: &Partition, largest: bool) -> Option<(u64, PodVec<u8>)> {
    p.data.arg_extreme(largest).map(|(i, v)| (i, PodVec(v)))
}

/// The partition's partial results of a reduction over `axes` of the
/// array (see [`crate::axes`]).
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_fold(
    p: &Partition,
    layout: Layout,
    partition: u64,
    axes: Vec<u64>,
    op: ReduceOp,
) -> Result<(PodVec<u64>, PodVec<u8>), Error> {
    let partition = to_usize(partition)?;
    check_size(&layout, partition, p.data.len())?;
    let axes = axes
        .into_iter()
        .map(to_usize)
        .collect::<Result<Vec<usize>, Error>>()?;
    let fold = Fold::new(layout.shape(), &axes)?;
    let runs: Vec<(u64, u64, u64)> = layout
        .runs(partition)
        .map(|r| (r.global as u64, r.local as u64, r.len as u64))
        .collect();
    let (slots, values) = p.data.fold_partials(&runs, &fold, op)?;
    Ok((PodVec(slots), PodVec(values)))
}

/// Writes raw bytes to the elements of `spans` of a partition here.
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_write_spans(
    p: &mut Partition,
    spans: Vec<Span>,
    bytes: PodVec<u8>,
) -> Result<(), Error> {
    p.data.write_spans(&spans, &bytes)
}

/// Sends the elements of partition `index` of `from` (here, id `gid`) to
/// the partitions `targets` of layout `to` that hold them: one message per
/// target partition, owner to owner. With a permutation `axes` (empty: none),
/// `to` has `from`'s axes in that order (NumPy's `transpose(axes)`): target
/// axis `i` is source axis `axes[i]`.
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_send(
    gid: GlobalId,
    index: u64,
    from: Layout,
    to: Layout,
    targets: Vec<GlobalId>,
    axes: Vec<u8>,
) -> Result<(), Error> {
    let index = to_usize(index)?;
    if targets.len() != to.num_partitions() || index >= from.num_partitions() {
        return Err(Error::BadArgument(
            "a redistribution's partitions do not match its layouts".into(),
        ));
    }
    if from.len() != to.len() {
        return Err(Error::BadArgument(format!(
            "redistribution of {} elements into a layout of {}",
            from.len(),
            to.len()
        )));
    }
    let permuted = if axes.is_empty() {
        None
    } else {
        Some(Permutation::new(from.shape(), to.shape(), &axes)?)
    };
    let source = component_shared::<Partition>(gid).await?;
    check_size(&from, index, source.data.len())?;
    let mut plan: std::collections::BTreeMap<usize, (Vec<Span>, Vec<Span>)> =
        std::collections::BTreeMap::new();
    if let Some(permuted) = permuted {
        // Element by element: consecutive elements of the source land a
        // fixed stride apart in the target (strided spans).
        for run in from.runs(index) {
            for k in 0..run.len {
                let place = to.locate(permuted.target(run.global + k))?;
                let (src, dst) = plan.entry(place.partition).or_default();
                push_span(src, run.local + k, 1);
                push_span(dst, place.local, 1);
            }
        }
    } else {
        for run in from.runs(index) {
            let mut at = run.global;
            let end = run.global + run.len;
            while at < end {
                let (place, available) = to.locate_run(at)?;
                let n = available.min(end - at);
                let (src, dst) = plan.entry(place.partition).or_default();
                push_span(src, run.local + (at - run.global), n);
                push_span(dst, place.local, n);
                at += n;
            }
        }
    }
    let sends = plan
        .into_iter()
        .map(|(target, (src, dst))| {
            let bytes = source.data.read_spans(&src)?;
            let gid = targets[target];
            Ok(async_at(
                gid.owner(),
                part_write_spans,
                (gid, (dst, PodVec(bytes))),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    // The bytes are out: the source is free again while they travel.
    drop(source);
    futures::future::join_all(sends)
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
    Ok(())
}

/// Where the elements of an array go when its axes are permuted: the
/// target flat index of each source flat index.
struct Permutation {
    /// The source's shape.
    shape: Vec<usize>,
    /// For each source axis, the target's stride of the axis it becomes.
    strides: Vec<usize>,
}

impl Permutation {
    /// The permutation `axes` (target axis `i` is source axis `axes[i]`)
    /// of an array of shape `from` into one of shape `to`; an error unless
    /// `axes` is a permutation and `to` the permuted shape.
    fn new(from: &[usize], to: &[usize], axes: &[u8]) -> Result<Permutation> {
        let bad = || {
            Error::BadArgument(format!(
                "axes {axes:?} do not permute shape {from:?} into {to:?}"
            ))
        };
        if axes.len() != from.len() || to.len() != from.len() {
            return Err(bad());
        }
        let mut target_of = vec![usize::MAX; from.len()];
        for (i, &a) in axes.iter().enumerate() {
            let a = usize::from(a);
            match target_of.get_mut(a) {
                Some(t) if *t == usize::MAX && from[a] == to[i] => *t = i,
                _ => return Err(bad()),
            }
        }
        let mut target_strides = vec![1usize; to.len()];
        for i in (0..to.len().saturating_sub(1)).rev() {
            target_strides[i] = target_strides[i + 1] * to[i + 1];
        }
        Ok(Permutation {
            shape: from.to_vec(),
            strides: target_of.iter().map(|&t| target_strides[t]).collect(),
        })
    }

    /// The target flat index of source flat index `g`.
    fn target(&self, mut g: usize) -> usize {
        let mut at = 0;
        for (&len, &stride) in self.shape.iter().zip(&self.strides).rev() {
            at += g % len * stride;
            g /= len;
        }
        at
    }
}

/// Elements `start..end` of partition `gid` as raw bytes, lent from the
/// partition's memory (it stays readable, and unwritable, until the bytes
/// are dropped: once encoded, for a caller elsewhere): no copy before the
/// encoding.
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_read(gid: GlobalId, start: u64, end: u64) -> Result<SharedBytes, Error> {
    let guard = component_shared::<Partition>(gid).await?;
    let (start, end) = (to_usize(start)?, to_usize(end)?);
    let len = guard.data.bytes(start, end)?.len();
    let from = guard.data.bytes(0, start)?.len();
    Ok(SharedBytes(bytes::Bytes::from_owner(Lent {
        guard,
        range: from..from + len,
    })))
}

/// A byte range of a partition held for reading.
struct Lent {
    guard: tokio::sync::OwnedRwLockReadGuard<Box<dyn Any + Send + Sync>, Partition>,
    range: std::ops::Range<usize>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        let all = self
            .guard
            .data
            .bytes(0, self.guard.data.len())
            .unwrap_or(&[]);
        all.get(self.range.clone()).unwrap_or(&[])
    }
}

#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_write(
    p: &mut Partition,
    start: u64,
    bytes: PodVec<u8>,
) -> Result<(), Error> {
    p.data.write(to_usize(start)?, &bytes)
}

#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_fill(p: &mut Partition, value: PodVec<u8>) -> Result<(), Error> {
    p.data.fill(&value)
}

#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_reduce(p: &Partition, op: ReduceOp) -> Result<Option<PodVec<u8>>, Error> {
    Ok(p.data.reduce(op)?.map(PodVec))
}

#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_reduce_with(
    p: &Partition,
    function: String,
) -> Result<Option<PodVec<u8>>, Error> {
    Ok(function::reduce(&function, p.data.as_ref())?.map(PodVec))
}

#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_map(p: &mut Partition, function: String) -> Result<(), Error> {
    function::map(&function, p.data.as_mut())
}

#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_count(p: &Partition, function: String) -> Result<u64, Error> {
    function::count(&function, p.data.as_ref())
}

#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_scan(
    p: &mut Partition,
    op: ReduceOp,
    inclusive: bool,
    carry: Option<PodVec<u8>>,
) -> Result<Option<PodVec<u8>>, Error> {
    let carry = carry.as_ref().map(|c| c.as_slice());
    Ok(p.data.scan(op, inclusive, carry)?.map(PodVec))
}

/// Scans the partition along `axis` of the array in place, each line
/// along it from its carry (`slots`, raw `carries`).
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_scan_axis(
    p: &mut Partition,
    layout: Layout,
    partition: u64,
    axis: u64,
    op: ReduceOp,
    slots: PodVec<u64>,
    carries: PodVec<u8>,
) -> Result<(), Error> {
    let partition = to_usize(partition)?;
    check_size(&layout, partition, p.data.len())?;
    let fold = Fold::new(layout.shape(), &[to_usize(axis)?])?;
    let runs: Vec<(u64, u64, u64)> = layout
        .runs(partition)
        .map(|r| (r.global as u64, r.local as u64, r.len as u64))
        .collect();
    p.data.scan_axis(&runs, &fold, op, &slots, &carries)
}

/// The combination of each run of `chunk` elements of the partition.
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_chunk_totals(
    p: &Partition,
    op: ReduceOp,
    chunk: u64,
) -> Result<PodVec<u8>, Error> {
    Ok(PodVec(p.data.chunk_totals(op, to_usize(chunk)?)?))
}

/// Scans each run of `chunk` elements of the partition from its carry.
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_scan_chunks(
    p: &mut Partition,
    op: ReduceOp,
    inclusive: bool,
    chunk: u64,
    carries: PodVec<u8>,
    first_without_carry: bool,
) -> Result<(), Error> {
    p.data.scan_chunks(
        op,
        inclusive,
        to_usize(chunk)?,
        &carries,
        first_without_carry,
    )
}

/// Copies partition `from` into partition `into`, both on this locality.
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_copy(into: GlobalId, from: GlobalId) -> Result<(), Error> {
    if into == from {
        return Ok(());
    }
    // Locks in id order, so two opposite copies cannot wait on each other.
    if into < from {
        let mut target = component_exclusive::<Partition>(into).await?;
        let source = component_shared::<Partition>(from).await?;
        target.data.copy_from(source.data.as_ref())
    } else {
        let source = component_shared::<Partition>(from).await?;
        let mut target = component_exclusive::<Partition>(into).await?;
        target.data.copy_from(source.data.as_ref())
    }
}

/// Partition `into` of a matrix product becomes partition `rows` of the
/// left operand (`k` columns, on this locality too) times the whole right
/// operand `b` (`k` × `n`, raw row-major bytes).
#[hpx_macros::action(crate = hpx_runtime)]
pub(crate) async fn part_matmul(
    into: GlobalId,
    rows: GlobalId,
    b: SharedBytes,
    k: u64,
    n: u64,
) -> Result<(), Error> {
    if into == rows {
        return Err(Error::BadArgument(
            "a matrix product into its own operand".into(),
        ));
    }
    let (k, n) = (to_usize(k)?, to_usize(n)?);
    let source = component_shared::<Partition>(rows).await?;
    let mut target = component_exclusive::<Partition>(into).await?;
    target.data.matmul_rows(source.data.as_ref(), &b, k, n)
}

/// A typed handle to one partition.
pub(crate) fn handle(part: &ComponentRef) -> Component<Partition> {
    Component::from_ref(part.clone())
}

/// The owner of a partition.
pub(crate) fn owner(part: &ComponentRef) -> LocalityId {
    part.gid().owner()
}

/// Shared access to the elements of a partition on this locality, as `[T]`.
pub(crate) async fn view<T: hpx_runtime::element::Element>(
    gid: GlobalId,
) -> Result<tokio::sync::OwnedRwLockReadGuard<Box<dyn Any + Send + Sync>, [T]>> {
    let guard = component_shared::<Partition>(gid).await?;
    tokio::sync::OwnedRwLockReadGuard::try_map(guard, |p| {
        p.data.as_any().downcast_ref::<Vec<T>>().map(Vec::as_slice)
    })
    .map_err(|g| {
        Error::BadArgument(format!(
            "the partition holds {}, not {}",
            g.data.dtype(),
            T::NAME
        ))
    })
}

/// Exclusive access to the elements of a partition on this locality, as `[T]`.
pub(crate) async fn view_mut<T: hpx_runtime::element::Element>(
    gid: GlobalId,
) -> Result<tokio::sync::OwnedRwLockMappedWriteGuard<Box<dyn Any + Send + Sync>, [T]>> {
    let guard = component_exclusive::<Partition>(gid).await?;
    tokio::sync::OwnedRwLockMappedWriteGuard::try_map(guard, |p| {
        p.data
            .as_any_mut()
            .downcast_mut::<Vec<T>>()
            .map(Vec::as_mut_slice)
    })
    .map_err(|g| {
        Error::BadArgument(format!(
            "the partition holds {}, not {}",
            g.data.dtype(),
            T::NAME
        ))
    })
}

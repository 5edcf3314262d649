//! Creating arrays: the builder (`zeros(..).chunks(1000).await`), the
//! creation functions and collective (SPMD) creation.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use futures::future::join_all;
use hpx_runtime::{ComponentRef, Error, LocalityId, PodVec, Result};

use crate::function::IndexFn;
use crate::generate::{Generator, Scalar};
use crate::layout::{Distribution, Layout, LayoutSpec};
use crate::math::Numeric;
use crate::partition::{self, Init};
use crate::vector::PartitionedVector;

/// Something that names an array's shape: a length (`10_000`), an array
/// (`[100, 200]`), a tuple (`(100, 200)`), a slice or a vector.
pub trait IntoShape {
    /// The shape, row-major.
    fn into_shape(self) -> Vec<usize>;
}

impl IntoShape for usize {
    fn into_shape(self) -> Vec<usize> {
        vec![self]
    }
}

impl<const N: usize> IntoShape for [usize; N] {
    fn into_shape(self) -> Vec<usize> {
        self.to_vec()
    }
}

impl<const N: usize> IntoShape for &[usize; N] {
    fn into_shape(self) -> Vec<usize> {
        self.to_vec()
    }
}

impl IntoShape for &[usize] {
    fn into_shape(self) -> Vec<usize> {
        self.to_vec()
    }
}

impl IntoShape for Vec<usize> {
    fn into_shape(self) -> Vec<usize> {
        self
    }
}

impl IntoShape for (usize, usize) {
    fn into_shape(self) -> Vec<usize> {
        vec![self.0, self.1]
    }
}

impl IntoShape for (usize, usize, usize) {
    fn into_shape(self) -> Vec<usize> {
        vec![self.0, self.1, self.2]
    }
}

/// How a new array's elements are set.
#[derive(Debug)]
enum Source<T> {
    Fill(T),
    Index(&'static str),
    Generated(Generator),
    Data(Vec<T>),
}

/// What each locality offers in a collective creation: the call's
/// signature, its failure if any, and the partitions it made.
type Offer = (String, Option<String>, Vec<(u64, ComponentRef)>);

/// A new array, configured before it is created: `.distribution(..)`,
/// `.chunks(k)`, `.num_partitions(p)`, `.tiles(r, c)`, `.on(..)`,
/// `.collective()`; `.await` creates it.
#[must_use = "await the builder to create the array"]
pub struct ArrayBuilder<T> {
    shape: Vec<usize>,
    source: Source<T>,
    distribution: Distribution,
    over: Option<Vec<LocalityId>>,
    grid: Option<(usize, usize)>,
    collective: bool,
    /// The number of elements before `.shape(..)` changed the shape.
    elements: usize,
}

impl<T: Numeric> std::fmt::Debug for ArrayBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayBuilder")
            .field("shape", &self.shape)
            .field("distribution", &self.distribution)
            .field("over", &self.over)
            .field("grid", &self.grid)
            .field("collective", &self.collective)
            .finish_non_exhaustive()
    }
}

impl<T: Numeric> ArrayBuilder<T> {
    /// How to spread the elements (default [`Distribution::Block`]).
    pub fn distribution(mut self, distribution: Distribution) -> Self {
        self.distribution = distribution;
        self
    }

    /// Contiguous partitions of `k` rows each, placed round robin:
    /// `chunks(1000)` of 10,000 elements makes 10 partitions.
    pub fn chunks(self, k: usize) -> Self {
        self.distribution(Distribution::Chunks(k))
    }

    /// `p` contiguous partitions of rows, placed round robin.
    pub fn num_partitions(self, p: usize) -> Self {
        self.distribution(Distribution::Partitions(p))
    }

    /// 2-d tiles of `rows` × `cols`, block-cyclic over the locality grid.
    pub fn tiles(self, rows: usize, cols: usize) -> Self {
        self.distribution(Distribution::Tiles { rows, cols })
    }

    /// The locality grid (rows × columns) of tiled layouts.
    pub fn grid(mut self, rows: usize, cols: usize) -> Self {
        self.grid = Some((rows, cols));
        self
    }

    /// Places the partitions on these localities, in order, round robin
    /// (default: every locality).
    pub fn on(mut self, localities: &[LocalityId]) -> Self {
        self.over = Some(localities.to_vec());
        self
    }

    /// Another shape with the same number of elements (row-major).
    pub fn shape(mut self, shape: impl IntoShape) -> Self {
        self.shape = shape.into_shape();
        self
    }

    /// Collective (SPMD) creation: every locality makes the same call and
    /// all get one shared array, each making the partitions it owns. The
    /// calls must agree on type, shape, layout and values, or all fail
    /// with an error naming the difference.
    pub fn collective(mut self) -> Self {
        self.collective = true;
        self
    }

    fn layout(&self) -> Result<Layout> {
        if self.shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d)) != Some(self.elements) {
            return Err(Error::BadArgument(format!(
                "shape {:?} does not hold {} elements",
                self.shape, self.elements
            )));
        }
        let n = hpx_runtime::get_num_localities();
        let here = if self.collective {
            LocalityId(0)
        } else {
            hpx_runtime::find_here()
        };
        let over = match (&self.over, &self.distribution) {
            (Some(over), _) => over.clone(),
            (None, Distribution::Local) => vec![here],
            (None, _) => (0..n).map(LocalityId).collect(),
        };
        if let Some(bad) = over.iter().find(|l| l.0 >= n) {
            return Err(Error::NoSuchLocality(*bad));
        }
        let layout = Layout::from_spec(LayoutSpec {
            shape: self.shape.clone(),
            distribution: self.distribution.clone(),
            over,
            grid: self.grid,
        })?;
        layout.check_localities(n)?;
        Ok(layout)
    }

    /// The initialiser of partition `p`.
    fn init(&self, layout: &Layout, p: usize) -> Result<Init> {
        Ok(match &self.source {
            Source::Fill(v) if bytemuck::bytes_of(v).iter().all(|b| *b == 0) => Init::Zeros,
            Source::Fill(v) => Init::Fill(PodVec(bytemuck::bytes_of(v).to_vec())),
            Source::Index(function) => Init::Index {
                function: (*function).to_owned(),
                layout: layout.clone(),
                partition: p as u64,
            },
            Source::Generated(generator) => Init::Generated {
                generator: generator.clone(),
                layout: layout.clone(),
                partition: p as u64,
            },
            Source::Data(values) => {
                let mut data = Vec::with_capacity(layout.partition_sizes()[p]);
                for run in layout.runs(p) {
                    data.extend_from_slice(&values[run.global..run.global + run.len]);
                }
                Init::Data(PodVec(bytemuck::cast_slice(&data).to_vec()))
            }
        })
    }

    /// The layout, with the source checked against it.
    fn checked_layout(&self) -> Result<Layout> {
        let layout = self.layout()?;
        if let Source::Data(values) = &self.source {
            if values.len() != layout.len() {
                return Err(Error::BadArgument(format!(
                    "{} values for an array of shape {:?}",
                    values.len(),
                    layout.shape()
                )));
            }
        }
        if let Source::Generated(g) = &self.source {
            g.check()?;
        }
        Ok(layout)
    }

    async fn build(self) -> Result<PartitionedVector<T>> {
        if self.collective {
            return self.build_collective().await;
        }
        let layout = self.checked_layout()?;
        PartitionedVector::create(layout.clone(), |p| self.init(&layout, p)).await
    }

    /// Every locality makes its own partitions; the handles are exchanged
    /// with an all_gather and made strong, then a barrier makes sure no
    /// locality drops its share before all hold theirs. A failure anywhere
    /// (bad arguments, no memory) travels in the exchange, so every
    /// locality returns an error instead of waiting for the others.
    async fn build_collective(self) -> Result<PartitionedVector<T>> {
        let here = hpx_runtime::find_here();
        let mut failure = None;
        let mut created = Vec::new();
        let mut signature = String::from("(no layout)");
        let layout = match self.checked_layout() {
            Ok(layout) => Some(layout),
            Err(e) => {
                failure = Some(e.to_string());
                None
            }
        };
        if let Some(layout) = &layout {
            let mine: Vec<usize> = (0..layout.num_partitions())
                .filter(|p| layout.localities()[*p] == here)
                .collect();
            let made = join_all(mine.iter().map(|&p| {
                let init = self.init(layout, p);
                let size = layout.partition_sizes()[p] as u64;
                async move {
                    hpx_runtime::async_at(
                        here,
                        partition::part_create,
                        (T::NAME.to_owned(), size, init?),
                    )
                    .await
                }
            }))
            .await;
            for (p, r) in mine.iter().zip(made) {
                match r {
                    Ok(part) => created.push((*p as u64, part)),
                    Err(e) => failure = Some(e.to_string()),
                }
            }
            signature = format!(
                "{} array of shape {:?}, {:?} over {:?}, grid {:?} (layout {:016x}), {}",
                T::NAME,
                layout.shape(),
                layout.distribution(),
                layout.spec().over,
                layout.spec().grid,
                fingerprint(format!("{layout:?}").as_bytes()),
                self.describe_source()
            );
        }
        let everyone: Vec<Offer> =
            hpx_collectives::all_gather((signature.clone(), failure, created)).await?;
        let layout = match layout {
            Some(layout) => layout,
            None => {
                let why = everyone
                    .get(here.index())
                    .and_then(|o| o.1.clone())
                    .unwrap_or_default();
                return Err(Error::BadArgument(why));
            }
        };
        let mut parts: Vec<Option<ComponentRef>> = vec![None; layout.num_partitions()];
        for (locality, (theirs, failed, made)) in everyone.into_iter().enumerate() {
            if let Some(why) = failed {
                return Err(Error::BadArgument(format!(
                    "collective creation failed on locality {locality}: {why}"
                )));
            }
            if theirs != signature {
                return Err(Error::CollectiveMismatch(format!(
                    "in collective array creation: locality {locality} asked for {theirs}; \
                     locality {here} for {signature}"
                )));
            }
            for (p, part) in made {
                let slot = parts.get_mut(p as usize).ok_or_else(|| {
                    Error::BadArgument(format!("collective creation: no partition {p}"))
                })?;
                *slot = Some(part);
            }
        }
        let parts = parts
            .into_iter()
            .enumerate()
            .map(|(p, part)| {
                part.ok_or_else(|| {
                    Error::BadArgument(format!("collective creation: partition {p} is missing"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let array = PartitionedVector::assemble(T::NAME, layout, parts)?;
        let kept = array.keep_alive().await;
        // Every locality reaches the barrier, even one whose keep_alive
        // failed (the others would wait for it otherwise).
        hpx_collectives::barrier().await?;
        kept?;
        Ok(array)
    }

    /// What the elements are made from, for comparing collective calls.
    fn describe_source(&self) -> String {
        match &self.source {
            Source::Fill(v) => format!("filled with {v:?}"),
            Source::Index(f) => format!("from function {f}"),
            Source::Generated(g) => format!("generated by {g:?}"),
            Source::Data(values) => format!(
                "from {} values (fingerprint {:016x})",
                values.len(),
                fingerprint(bytemuck::cast_slice(values))
            ),
        }
    }
}

impl<T: Numeric> IntoFuture for ArrayBuilder<T> {
    type Output = Result<PartitionedVector<T>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.build())
    }
}

/// A fingerprint of bytes, the same in every process of the job (which
/// all run one binary), to compare what collective calls were given.
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

fn builder<T: Numeric>(shape: Vec<usize>, source: Source<T>) -> ArrayBuilder<T> {
    ArrayBuilder {
        elements: shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .unwrap_or(usize::MAX),
        shape,
        source,
        distribution: Distribution::Block,
        over: None,
        grid: None,
        collective: false,
    }
}

/// An array of zeros.
pub fn zeros<T: Numeric>(shape: impl IntoShape) -> ArrayBuilder<T> {
    builder(shape.into_shape(), Source::Fill(T::zero()))
}

/// An array whose values are not to be relied on (NumPy's `empty`; here
/// the memory is zeroed, which costs no more than leaving it).
pub fn empty<T: Numeric>(shape: impl IntoShape) -> ArrayBuilder<T> {
    zeros(shape)
}

/// An array of ones.
pub fn ones<T: Numeric>(shape: impl IntoShape) -> ArrayBuilder<T> {
    builder(shape.into_shape(), Source::Fill(T::one()))
}

/// An array of copies of `value`.
pub fn full<T: Numeric>(shape: impl IntoShape, value: T) -> ArrayBuilder<T> {
    builder(shape.into_shape(), Source::Fill(value))
}

/// An array whose element `i` is `F::at(i)`, computed where it lives.
pub fn from_fn<F: IndexFn>(len: usize, _f: F) -> ArrayBuilder<F::Elem>
where
    F::Elem: Numeric,
{
    builder(vec![len], Source::Index(F::NAME))
}

/// An array holding `values` (row-major; set another shape with
/// `.shape(..)`), scattered from the caller to the owners as raw bytes.
pub fn array<T: Numeric>(values: Vec<T>) -> ArrayBuilder<T> {
    builder(vec![values.len()], Source::Data(values))
}

/// A 1-d array holding `values`, scattered from the caller to the owners.
pub async fn from_vec<T: Numeric>(
    values: Vec<T>,
    distribution: Distribution,
) -> Result<PartitionedVector<T>> {
    array(values).distribution(distribution).await
}

fn scalar<T: Numeric>(v: T) -> Scalar {
    if T::IS_FLOAT {
        Scalar::Float(v.to_f64())
    } else {
        Scalar::Int(v.cast::<i128>())
    }
}

/// `start, start + step, ...` up to `stop` (excluded), NumPy's `arange`;
/// values are computed where they live (exact for integers).
pub fn arange<T: Numeric>(start: T, stop: T, step: T) -> Result<ArrayBuilder<T>> {
    let (a, b, s) = (scalar(start), scalar(stop), scalar(step));
    let len = match (a, b, s) {
        (Scalar::Int(a), Scalar::Int(b), Scalar::Int(s)) if s != 0 => {
            let span = b.saturating_sub(a);
            if (span > 0) == (s > 0) && span != 0 {
                let n = span / s + i128::from(span % s != 0);
                usize::try_from(n).ok()
            } else {
                Some(0)
            }
        }
        (a, b, s) => {
            let (a, b, s) = (as_f64(a), as_f64(b), as_f64(s));
            let n = ((b - a) / s).ceil();
            (s != 0.0 && n.is_finite()).then_some(if n > 0.0 { n as usize } else { 0 })
        }
    }
    .ok_or_else(|| Error::BadArgument("arange needs a finite, non-zero step".into()))?;
    Ok(builder(
        vec![len],
        Source::Generated(Generator::Arange { start: a, step: s }),
    ))
}

fn as_f64(s: Scalar) -> f64 {
    match s {
        Scalar::Int(v) => v as f64,
        Scalar::Float(v) => v,
    }
}

/// `num` evenly spaced values from `start` to `stop` (included), NumPy's
/// `linspace`.
pub fn linspace<T: Numeric>(start: f64, stop: f64, num: usize) -> ArrayBuilder<T> {
    builder(
        vec![num],
        Source::Generated(Generator::Linspace {
            start,
            stop,
            num: num as u64,
            endpoint: true,
        }),
    )
}

/// Random arrays from a counter-based generator: element `i` depends only
/// on the seed and `i`, so the same seed gives the same values whatever the
/// layout and the number of localities (not for cryptography).
pub mod random {
    use super::*;

    /// Uniform values in `[low, high)`.
    pub fn uniform<T: Numeric>(
        shape: impl IntoShape,
        seed: u64,
        low: f64,
        high: f64,
    ) -> ArrayBuilder<T> {
        builder(
            shape.into_shape(),
            Source::Generated(Generator::Uniform { seed, low, high }),
        )
    }

    /// Normally distributed values.
    pub fn normal<T: Numeric>(
        shape: impl IntoShape,
        seed: u64,
        mean: f64,
        std: f64,
    ) -> ArrayBuilder<T> {
        builder(
            shape.into_shape(),
            Source::Generated(Generator::Normal { seed, mean, std }),
        )
    }

    /// Integers uniform in `[low, high)`.
    pub fn integers<T: Numeric>(
        shape: impl IntoShape,
        seed: u64,
        low: i64,
        high: i64,
    ) -> ArrayBuilder<T> {
        builder(
            shape.into_shape(),
            Source::Generated(Generator::Integers {
                seed,
                low: i128::from(low),
                high: i128::from(high),
            }),
        )
    }
}

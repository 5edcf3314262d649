//! [`AnyVector`]: a distributed array whose element type is known only at
//! run time (what hpxpy holds, and what an expression reads), with the
//! typed [`PartitionedVector`] one downcast away.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hpx_runtime::{ComponentRef, Error, GlobalId, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::by_dtype;
use crate::layout::Layout;
use crate::math::Numeric;
use crate::vector::PartitionedVector;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// What [`AnyVector`] needs of the typed array inside it.
trait Erased: Send + Sync {
    fn dtype(&self) -> &'static str;
    fn layout(&self) -> &Layout;
    fn ids(&self) -> Vec<GlobalId>;
    fn parts(&self) -> &[ComponentRef];
    fn explain(&self, e: Error) -> Error;
    fn as_any(&self) -> &dyn Any;
    fn keep_alive(&self) -> Boxed<'_, ()>;
    /// The array in `layout` (itself if the placements agree).
    fn aligned_to<'a>(&'a self, layout: &'a Layout) -> Boxed<'a, AnyVector>;
    /// See [`PartitionedVector::reshape`].
    fn reshape(&self, shape: Vec<usize>) -> Boxed<'_, AnyVector>;
    /// See [`PartitionedVector::transpose`].
    fn transpose(&self) -> Boxed<'_, AnyVector>;
}

impl<T: Numeric> Erased for PartitionedVector<T> {
    fn dtype(&self) -> &'static str {
        T::NAME
    }

    fn layout(&self) -> &Layout {
        PartitionedVector::layout(self)
    }

    fn ids(&self) -> Vec<GlobalId> {
        self.partition_ids()
    }

    fn parts(&self) -> &[ComponentRef] {
        self.part_refs()
    }

    fn explain(&self, e: Error) -> Error {
        PartitionedVector::explain(self, e)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn keep_alive(&self) -> Boxed<'_, ()> {
        Box::pin(PartitionedVector::keep_alive(self))
    }

    fn aligned_to<'a>(&'a self, layout: &'a Layout) -> Boxed<'a, AnyVector> {
        Box::pin(async move { Ok(AnyVector::new(self.in_layout(layout).await?)) })
    }

    fn reshape(&self, shape: Vec<usize>) -> Boxed<'_, AnyVector> {
        Box::pin(async move {
            Ok(AnyVector::new(
                PartitionedVector::reshape(self, shape).await?,
            ))
        })
    }

    fn transpose(&self) -> Boxed<'_, AnyVector> {
        Box::pin(async move { Ok(AnyVector::new(PartitionedVector::transpose(self).await?)) })
    }
}

/// A distributed array of any element type: a cheap handle, as
/// [`PartitionedVector`]'s, that keeps the array alive, can be sent in an
/// action's arguments or a collective's value, and gives the typed array
/// back with [`typed`](AnyVector::typed).
#[derive(Clone)]
pub struct AnyVector {
    inner: Arc<dyn Erased>,
}

impl fmt::Debug for AnyVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyVector")
            .field("dtype", &self.dtype())
            .field("shape", &self.shape())
            .field("partitions", &self.layout().num_partitions())
            .finish()
    }
}

impl<T: Numeric> From<PartitionedVector<T>> for AnyVector {
    fn from(a: PartitionedVector<T>) -> AnyVector {
        AnyVector::new(a)
    }
}

impl AnyVector {
    /// The array `a`, its element type erased.
    pub fn new<T: Numeric>(a: PartitionedVector<T>) -> AnyVector {
        AnyVector { inner: Arc::new(a) }
    }

    /// The element type (Rust's name: `f64`, `u8`, ...).
    pub fn dtype(&self) -> &'static str {
        self.inner.dtype()
    }

    /// The shape (row-major).
    pub fn shape(&self) -> &[usize] {
        self.inner.layout().shape()
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        self.inner.layout()
    }

    /// The partitions' global ids, in partition order.
    pub fn partition_ids(&self) -> Vec<GlobalId> {
        self.inner.ids()
    }

    /// The typed array; an error if `T` is not the element type.
    pub fn typed<T: Numeric>(&self) -> Result<PartitionedVector<T>> {
        self.inner
            .as_any()
            .downcast_ref::<PartitionedVector<T>>()
            .cloned()
            .ok_or_else(|| {
                Error::BadArgument(format!(
                    "an array of {} is not an array of {}",
                    self.dtype(),
                    T::NAME
                ))
            })
    }

    /// See [`PartitionedVector::reshape`] (a view where the layout allows
    /// it, else a copy).
    pub async fn reshape(&self, shape: Vec<usize>) -> Result<AnyVector> {
        self.inner.reshape(shape).await
    }

    /// See [`PartitionedVector::transpose`].
    pub async fn transpose(&self) -> Result<AnyVector> {
        self.inner.transpose().await
    }

    /// See [`PartitionedVector::keep_alive`].
    pub async fn keep_alive(&self) -> Result<()> {
        self.inner.keep_alive().await
    }

    pub(crate) fn explain(&self, e: Error) -> Error {
        self.inner.explain(e)
    }

    /// This array in `layout` (itself if the placements agree, else a
    /// redistributed copy).
    pub(crate) async fn aligned_to(&self, layout: &Layout) -> Result<AnyVector> {
        self.inner.aligned_to(layout).await
    }
}

impl Serialize for AnyVector {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.dtype(), self.layout(), self.inner.parts()).serialize(s)
    }
}

fn assemble<T: Numeric>(layout: Layout, parts: Vec<ComponentRef>) -> Result<AnyVector> {
    Ok(AnyVector::new(PartitionedVector::<T>::assemble(
        T::NAME,
        layout,
        parts,
    )?))
}

impl<'de> Deserialize<'de> for AnyVector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (dtype, layout, parts) = <(String, Layout, Vec<ComponentRef>)>::deserialize(d)?;
        let made: Result<AnyVector> = by_dtype!(dtype.as_str(), assemble, layout, parts);
        made.map_err(serde::de::Error::custom)
    }
}

//! Element functions registered at link time, so the localities that own an
//! array's partitions can run them on their data: maps, predicates,
//! reductions and functions of the index. Declare one with
//! `#[hpx::element_fn(map)]` (or `predicate`, `reduce`, `index`).

use hpx_runtime::element::Element;
use hpx_runtime::{Error, Result};

use crate::data::ErasedVec;
use crate::layout::Layout;
use hpx_runtime::element::element_from_bytes;

/// `x -> y` applied to every element in place ([`crate::PartitionedVector::map_inplace`]).
pub trait ElementMap: Copy + Send + Sync + 'static {
    /// The element type.
    type Elem: Element;
    /// A name unique in the program.
    const NAME: &'static str;
    /// The function.
    fn apply(x: Self::Elem) -> Self::Elem;
}

/// A test of one element ([`crate::PartitionedVector::count_if`]).
pub trait ElementPredicate: Copy + Send + Sync + 'static {
    /// The element type.
    type Elem: Element;
    /// A name unique in the program.
    const NAME: &'static str;
    /// The test.
    fn test(x: Self::Elem) -> bool;
}

/// An associative combination of two elements ([`crate::PartitionedVector::reduce_with`]).
pub trait ElementReduce: Copy + Send + Sync + 'static {
    /// The element type.
    type Elem: Element;
    /// A name unique in the program.
    const NAME: &'static str;
    /// `lower ⊕ upper` (lower indices first).
    fn combine(lower: Self::Elem, upper: Self::Elem) -> Self::Elem;
}

/// The value of element `index` ([`crate::from_fn`]).
pub trait IndexFn: Copy + Send + Sync + 'static {
    /// The element type.
    type Elem: Element;
    /// A name unique in the program.
    const NAME: &'static str;
    /// The value at `index`.
    fn at(index: usize) -> Self::Elem;
}

#[derive(Clone, Copy)]
enum Run {
    Map(fn(&mut dyn ErasedVec) -> Result<()>),
    Count(fn(&dyn ErasedVec) -> Result<u64>),
    Reduce(
        fn(&dyn ErasedVec) -> Result<Option<Vec<u8>>>,
        fn(&[u8], &[u8]) -> Result<Vec<u8>>,
    ),
    Index(fn(&mut dyn ErasedVec, &Layout, usize) -> Result<()>),
}

/// A registered element function (made by `#[hpx::element_fn]`).
pub struct ElementFnEntry {
    name: &'static str,
    run: Run,
}

impl std::fmt::Debug for ElementFnEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElementFnEntry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

inventory::collect!(ElementFnEntry);

fn typed<'a, T: Element>(data: &'a dyn ErasedVec, f: &str) -> Result<&'a Vec<T>> {
    data.as_any().downcast_ref::<Vec<T>>().ok_or_else(|| {
        Error::BadArgument(format!(
            "{f} works on {}, the array holds {}",
            T::NAME,
            data.dtype()
        ))
    })
}

fn typed_mut<'a, T: Element>(data: &'a mut dyn ErasedVec, f: &str) -> Result<&'a mut Vec<T>> {
    let dtype = data.dtype();
    data.as_any_mut().downcast_mut::<Vec<T>>().ok_or_else(|| {
        Error::BadArgument(format!("{f} works on {}, the array holds {dtype}", T::NAME))
    })
}

fn run_map<F: ElementMap>(data: &mut dyn ErasedVec) -> Result<()> {
    typed_mut::<F::Elem>(data, F::NAME)?
        .iter_mut()
        .for_each(|x| *x = F::apply(*x));
    Ok(())
}

fn run_count<F: ElementPredicate>(data: &dyn ErasedVec) -> Result<u64> {
    Ok(typed::<F::Elem>(data, F::NAME)?
        .iter()
        .filter(|x| F::test(**x))
        .count() as u64)
}

fn run_reduce<F: ElementReduce>(data: &dyn ErasedVec) -> Result<Option<Vec<u8>>> {
    let v = typed::<F::Elem>(data, F::NAME)?;
    let mut it = v.iter().copied();
    Ok(it
        .next()
        .map(|first| it.fold(first, F::combine))
        .map(|r| bytemuck::bytes_of(&r).to_vec()))
}

fn combine_reduce<F: ElementReduce>(lower: &[u8], upper: &[u8]) -> Result<Vec<u8>> {
    let r = F::combine(element_from_bytes(lower)?, element_from_bytes(upper)?);
    Ok(bytemuck::bytes_of(&r).to_vec())
}

fn run_index<F: IndexFn>(
    data: &mut dyn ErasedVec,
    layout: &Layout,
    partition: usize,
) -> Result<()> {
    let v = typed_mut::<F::Elem>(data, F::NAME)?;
    for run in layout.runs(partition) {
        let (global, local, n) = (run.global, run.local, run.len);
        for (j, slot) in v
            .get_mut(local..local + n)
            .into_iter()
            .flatten()
            .enumerate()
        {
            *slot = F::at(global + j);
        }
    }
    Ok(())
}

impl ElementFnEntry {
    /// The entry of a map.
    pub const fn map<F: ElementMap>() -> ElementFnEntry {
        ElementFnEntry {
            name: F::NAME,
            run: Run::Map(run_map::<F>),
        }
    }

    /// The entry of a predicate.
    pub const fn predicate<F: ElementPredicate>() -> ElementFnEntry {
        ElementFnEntry {
            name: F::NAME,
            run: Run::Count(run_count::<F>),
        }
    }

    /// The entry of a reduction.
    pub const fn reduce<F: ElementReduce>() -> ElementFnEntry {
        ElementFnEntry {
            name: F::NAME,
            run: Run::Reduce(run_reduce::<F>, combine_reduce::<F>),
        }
    }

    /// The entry of a function of the index.
    pub const fn index<F: IndexFn>() -> ElementFnEntry {
        ElementFnEntry {
            name: F::NAME,
            run: Run::Index(run_index::<F>),
        }
    }
}

fn find(name: &str) -> Result<Run> {
    inventory::iter::<ElementFnEntry>
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| e.run)
        .ok_or_else(|| Error::BadArgument(format!("no element function {name} is registered")))
}

fn wrong_kind(name: &str, kind: &str) -> Error {
    Error::BadArgument(format!("element function {name} is not a {kind}"))
}

/// Runs map `name` on `data`.
pub(crate) fn map(name: &str, data: &mut dyn ErasedVec) -> Result<()> {
    match find(name)? {
        Run::Map(f) => f(data),
        _ => Err(wrong_kind(name, "map")),
    }
}

/// Counts the elements of `data` passing predicate `name`.
pub(crate) fn count(name: &str, data: &dyn ErasedVec) -> Result<u64> {
    match find(name)? {
        Run::Count(f) => f(data),
        _ => Err(wrong_kind(name, "predicate")),
    }
}

/// Reduces `data` with reduction `name`.
pub(crate) fn reduce(name: &str, data: &dyn ErasedVec) -> Result<Option<Vec<u8>>> {
    match find(name)? {
        Run::Reduce(f, _) => f(data),
        _ => Err(wrong_kind(name, "reduction")),
    }
}

/// Combines two partial results of reduction `name`.
pub(crate) fn combine(name: &str, lower: &[u8], upper: &[u8]) -> Result<Vec<u8>> {
    match find(name)? {
        Run::Reduce(_, c) => c(lower, upper),
        _ => Err(wrong_kind(name, "reduction")),
    }
}

/// Fills partition `partition` of `layout` from index function `name`.
pub(crate) fn fill_index(
    name: &str,
    data: &mut dyn ErasedVec,
    layout: &Layout,
    partition: usize,
) -> Result<()> {
    match find(name)? {
        Run::Index(f) => f(data, layout, partition),
        _ => Err(wrong_kind(name, "function of the index")),
    }
}

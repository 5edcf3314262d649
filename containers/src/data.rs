//! Partition data with its element type erased, so one set of actions serves
//! every element type; typed views come back by downcasting.

use std::any::Any;

use hpx_runtime::element::{element_from_bytes, elements_from_bytes, Element, ReduceOp};
use hpx_runtime::{Error, Result};

/// Elements handled per step of a reduction: the lanes combine element-wise
/// (which vectorizes), then the lanes are combined in order.
const LANES: usize = 64;

/// A partition's elements, whatever their type.
pub(crate) trait ErasedVec: Any + Send + Sync {
    /// The element type's name.
    fn dtype(&self) -> &'static str;
    /// Number of elements.
    fn len(&self) -> usize;
    /// For downcasting to `Vec<T>`.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting to `Vec<T>`.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The raw bytes of elements `start..end`.
    fn read(&self, start: usize, end: usize) -> Result<Vec<u8>>;
    /// Overwrites elements from `start` with raw bytes.
    fn write(&mut self, start: usize, bytes: &[u8]) -> Result<()>;
    /// Sets every element to the value in `bytes`.
    fn fill(&mut self, value: &[u8]) -> Result<()>;
    /// Reduces all elements (None if there are none), as raw bytes.
    fn reduce(&self, op: ReduceOp) -> Result<Option<Vec<u8>>>;
    /// The sum of products with `other`'s elements, as raw bytes.
    fn dot(&self, other: &dyn ErasedVec) -> Result<Vec<u8>>;
    /// Replaces the elements by their running `op` (inclusive or exclusive),
    /// starting from `carry` (the combination of all earlier elements), and
    /// returns the combination including this partition.
    fn scan(
        &mut self,
        op: ReduceOp,
        inclusive: bool,
        carry: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>>;
    /// Copies the elements of a partition of the same type and length.
    fn copy_from(&mut self, other: &dyn ErasedVec) -> Result<()>;
}

/// `a ⊕ b` for one pair of elements.
pub(crate) fn combine<T: Element>(op: ReduceOp, a: T, b: T) -> T {
    let mut acc = [a];
    T::combine_slices(op, &mut acc, &[b], false);
    acc[0]
}

/// Reduces a slice in a fixed order: `LANES` running lanes, then the lanes in order.
pub(crate) fn reduce_slice<T: Element>(op: ReduceOp, data: &[T]) -> Option<T> {
    let (first, rest) = data.split_at(data.len().min(LANES));
    let mut lanes: Vec<T> = first.to_vec();
    let mut chunks = rest.chunks_exact(LANES);
    for chunk in &mut chunks {
        T::combine_slices(op, &mut lanes, chunk, false);
    }
    T::combine_slices(
        op,
        &mut lanes[..chunks.remainder().len()],
        chunks.remainder(),
        false,
    );
    let mut lanes = lanes.into_iter();
    let first = lanes.next()?;
    Some(lanes.fold(first, |a, b| combine(op, a, b)))
}

fn check_op<T: Element>(op: ReduceOp) -> Result<()> {
    if T::supports(op) {
        Ok(())
    } else {
        Err(Error::BadArgument(format!(
            "{} is not defined for {}",
            op.name(),
            T::NAME
        )))
    }
}

fn range_error(start: usize, end: usize, len: usize) -> Error {
    Error::BadArgument(format!(
        "range {start}..{end} is out of bounds of a partition of {len} elements"
    ))
}

impl<T: Element> ErasedVec for Vec<T> {
    fn dtype(&self) -> &'static str {
        T::NAME
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn read(&self, start: usize, end: usize) -> Result<Vec<u8>> {
        let slice = self
            .get(start..end)
            .ok_or_else(|| range_error(start, end, self.len()))?;
        Ok(bytemuck::cast_slice(slice).to_vec())
    }

    fn write(&mut self, start: usize, bytes: &[u8]) -> Result<()> {
        let values = elements_from_bytes::<T>(bytes)?;
        let len = self.len();
        let end = start.saturating_add(values.len());
        self.get_mut(start..end)
            .ok_or_else(|| range_error(start, end, len))?
            .copy_from_slice(&values);
        Ok(())
    }

    fn fill(&mut self, value: &[u8]) -> Result<()> {
        let value = element_from_bytes::<T>(value)?;
        self.as_mut_slice().fill(value);
        Ok(())
    }

    fn reduce(&self, op: ReduceOp) -> Result<Option<Vec<u8>>> {
        check_op::<T>(op)?;
        Ok(reduce_slice(op, self).map(|v| bytemuck::bytes_of(&v).to_vec()))
    }

    fn dot(&self, other: &dyn ErasedVec) -> Result<Vec<u8>> {
        let other = other.as_any().downcast_ref::<Vec<T>>().ok_or_else(|| {
            Error::BadArgument(format!("dot of {} with {}", T::NAME, other.dtype()))
        })?;
        if other.len() != self.len() {
            return Err(Error::BadArgument(format!(
                "dot of partitions of {} and {} elements",
                self.len(),
                other.len()
            )));
        }
        let mut lanes = [T::zeroed(); LANES];
        let mut products = [T::zeroed(); LANES];
        for (a, b) in self.chunks(LANES).zip(other.chunks(LANES)) {
            let n = a.len();
            products[..n].copy_from_slice(a);
            T::combine_slices(ReduceOp::Prod, &mut products[..n], b, false);
            T::combine_slices(ReduceOp::Sum, &mut lanes[..n], &products[..n], false);
        }
        let total = lanes
            .into_iter()
            .fold(T::zeroed(), |a, b| combine(ReduceOp::Sum, a, b));
        Ok(bytemuck::bytes_of(&total).to_vec())
    }

    fn scan(
        &mut self,
        op: ReduceOp,
        inclusive: bool,
        carry: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        check_op::<T>(op)?;
        let mut acc: Option<T> = carry.map(element_from_bytes::<T>).transpose()?;
        for x in self.iter_mut() {
            let next = match acc {
                Some(a) => combine(op, a, *x),
                None => *x,
            };
            if !inclusive {
                // The first element of an exclusive scan without a carry has
                // nothing before it: it keeps the identity the caller seeded.
                if let Some(a) = acc {
                    *x = a;
                }
            } else {
                *x = next;
            }
            acc = Some(next);
        }
        Ok(acc.map(|a| bytemuck::bytes_of(&a).to_vec()))
    }

    fn copy_from(&mut self, other: &dyn ErasedVec) -> Result<()> {
        let other = other.as_any().downcast_ref::<Vec<T>>().ok_or_else(|| {
            Error::BadArgument(format!("copy of {} into {}", other.dtype(), T::NAME))
        })?;
        if other.len() != self.len() {
            return Err(Error::BadArgument(format!(
                "copy between partitions of {} and {} elements",
                other.len(),
                self.len()
            )));
        }
        self.copy_from_slice(other);
        Ok(())
    }
}

/// The element types an array can hold, by name.
macro_rules! by_dtype {
    ($name:expr, $f:ident $(, $arg:expr)*) => {
        match $name {
            "i8" => $f::<i8>($($arg),*),
            "i16" => $f::<i16>($($arg),*),
            "i32" => $f::<i32>($($arg),*),
            "i64" => $f::<i64>($($arg),*),
            "i128" => $f::<i128>($($arg),*),
            "isize" => $f::<isize>($($arg),*),
            "u8" => $f::<u8>($($arg),*),
            "u16" => $f::<u16>($($arg),*),
            "u32" => $f::<u32>($($arg),*),
            "u64" => $f::<u64>($($arg),*),
            "u128" => $f::<u128>($($arg),*),
            "usize" => $f::<usize>($($arg),*),
            "f32" => $f::<f32>($($arg),*),
            "f64" => $f::<f64>($($arg),*),
            other => Err(Error::BadArgument(format!("no element type {other}"))),
        }
    };
}

fn zeros_of<T: Element>(len: usize) -> Result<Box<dyn ErasedVec>> {
    Ok(Box::new(vec![T::zeroed(); len]))
}

fn from_bytes_of<T: Element>(bytes: &[u8]) -> Result<Box<dyn ErasedVec>> {
    Ok(Box::new(elements_from_bytes::<T>(bytes)?))
}

/// `len` zeros of the element type named `dtype`.
pub(crate) fn zeros(dtype: &str, len: usize) -> Result<Box<dyn ErasedVec>> {
    by_dtype!(dtype, zeros_of, len)
}

/// Elements of the type named `dtype` from raw bytes.
pub(crate) fn from_bytes(dtype: &str, bytes: &[u8]) -> Result<Box<dyn ErasedVec>> {
    by_dtype!(dtype, from_bytes_of, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_match_a_serial_fold_for_integers() {
        let v: Vec<i64> = (0..1000).map(|i| i * 7 - 300).collect();
        assert_eq!(reduce_slice(ReduceOp::Sum, &v), Some(v.iter().sum()));
        assert_eq!(reduce_slice(ReduceOp::Max, &v), v.iter().max().copied());
        assert_eq!(reduce_slice(ReduceOp::Min, &v[..3]), Some(-300));
        assert_eq!(reduce_slice::<i64>(ReduceOp::Sum, &[]), None);
        let bytes = v.dot(&v).unwrap();
        assert_eq!(
            element_from_bytes::<i64>(&bytes).unwrap(),
            v.iter().map(|x| x * x).sum::<i64>()
        );
    }

    #[test]
    fn scans_in_place() {
        let mut v = vec![1u32, 2, 3, 4];
        let total = v
            .scan(ReduceOp::Sum, true, Some(&10u32.to_ne_bytes()))
            .unwrap();
        assert_eq!(v, [11, 13, 16, 20]);
        assert_eq!(total, Some(20u32.to_ne_bytes().to_vec()));
        let mut v = vec![1u32, 2, 3, 4];
        v.scan(ReduceOp::Sum, false, Some(&10u32.to_ne_bytes()))
            .unwrap();
        assert_eq!(v, [10, 11, 13, 16]);
    }

    #[test]
    fn bad_bytes_and_ranges_are_errors() {
        let mut v = vec![0f64; 4];
        assert!(v.write(3, &[0u8; 16]).is_err());
        assert!(v.write(usize::MAX, &[0u8; 8]).is_err());
        assert!(v.fill(&[0u8; 3]).is_err());
        assert!(v.read(2, 9).is_err());
        assert!(v.reduce(ReduceOp::BitAnd).is_err());
        assert!(v.dot(&vec![0f32; 4]).is_err());
        assert!(zeros("bool", 3).is_err());
        assert!(from_bytes("u16", &[1, 2, 3]).is_err());
    }
}

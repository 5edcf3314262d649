//! Distributed arrays across real clusters: the matrix of localities ×
//! distributions × element types × lengths, checked against a plain `Vec`.

mod common;

use common::{done, ensure, in_locality, launch, s, spmd};
use hpx::prelude::*;
use hpx::{Error, Numeric, PartitionRef};
use hpx_collectives::ReduceOp;

/// What the matrix needs of an element type: values and a serial reference.
trait TestElem: hpx::Numeric {
    fn make(i: usize) -> Self;
    fn add(a: Self, b: Self) -> Self;
    fn mul(a: Self, b: Self) -> Self;
    fn close(a: Self, b: Self) -> bool {
        a == b
    }
}

impl TestElem for f64 {
    fn make(i: usize) -> f64 {
        i as f64 * 0.5 - 3.0
    }
    fn add(a: f64, b: f64) -> f64 {
        a + b
    }
    fn mul(a: f64, b: f64) -> f64 {
        a * b
    }
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }
}

impl TestElem for i64 {
    fn make(i: usize) -> i64 {
        i as i64 * 7 - 500
    }
    fn add(a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
    fn mul(a: i64, b: i64) -> i64 {
        a.wrapping_mul(b)
    }
}

impl TestElem for u8 {
    fn make(i: usize) -> u8 {
        (i * 31 % 256) as u8
    }
    fn add(a: u8, b: u8) -> u8 {
        a.wrapping_add(b)
    }
    fn mul(a: u8, b: u8) -> u8 {
        a.wrapping_mul(b)
    }
}

fn distributions(len: usize, n: u32) -> Vec<Distribution> {
    let third = len / 3;
    vec![
        Distribution::Local,
        Distribution::Block,
        Distribution::Cyclic,
        Distribution::BlockCyclic(3),
        // Long chunks: scans run where the chunks live, from carries.
        Distribution::BlockCyclic(100),
        Distribution::Chunks(3),
        // More partitions than localities.
        Distribution::Partitions(n as usize + 2),
        Distribution::Explicit {
            sizes: vec![third, 0, len - third],
            localities: vec![LocalityId(n - 1), LocalityId(0), LocalityId(1 % n)],
        },
    ]
}

fn all_close<T: TestElem>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| T::close(*x, *y))
}

/// One cell of the matrix.
async fn check_case<T: TestElem>(len: usize, dist: Distribution) -> Result<(), String> {
    let n = hpx::get_num_localities();
    let what = format!("{} len {len} {dist:?} on {n}", T::NAME);
    let source: Vec<T> = (0..len).map(T::make).collect();
    let a = hpx::from_vec(source.clone(), dist.clone())
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    // Introspection.
    ensure(
        a.len() == len && a.is_empty() == (len == 0),
        format!("{what}: len"),
    )?;
    let sizes = a.partition_sizes();
    ensure(
        sizes.iter().sum::<usize>() == len,
        format!("{what}: sizes {sizes:?}"),
    )?;
    ensure(
        a.num_partitions() == sizes.len() && a.localities().len() == sizes.len(),
        format!("{what}: partitions"),
    )?;
    let holders: std::collections::BTreeSet<_> = a
        .localities()
        .iter()
        .zip(&sizes)
        .filter(|(_, s)| **s > 0)
        .map(|(l, _)| *l)
        .collect();
    ensure(
        a.is_distributed() == (holders.len() > 1),
        format!("{what}: is_distributed"),
    )?;
    match &dist {
        Distribution::Local => ensure(
            a.localities() == [hpx::find_here()],
            format!("{what}: local"),
        )?,
        Distribution::Block => {
            let (lo, hi) = (
                sizes.iter().min().copied().unwrap_or(0),
                sizes.iter().max().copied().unwrap_or(0),
            );
            ensure(
                hi - lo <= 1 && sizes.len() == n as usize,
                format!("{what}: block sizes {sizes:?}"),
            )?
        }
        Distribution::Chunks(k) => {
            let count = len.div_ceil(*k).max(1);
            ensure(
                sizes.len() == count
                    && sizes[..count - 1].iter().all(|s| s == k)
                    && (0..count).all(|p| a.localities()[p] == LocalityId(p as u32 % n)),
                format!("{what}: chunks {sizes:?} on {:?}", a.localities()),
            )?
        }
        Distribution::Partitions(p) => ensure(
            sizes.len() == *p && (0..*p).all(|i| a.localities()[i] == LocalityId(i as u32 % n)),
            format!("{what}: partitions {sizes:?} on {:?}", a.localities()),
        )?,
        _ => {}
    }
    // Gather.
    let gathered = a.to_vec().await.map_err(s)?;
    ensure(gathered == source, format!("{what}: to_vec"))?;
    // Element access and ranges.
    if len > 0 {
        for i in [0, len / 2, len - 1] {
            ensure(
                a.get(i).await.map_err(s)? == source[i],
                format!("{what}: get({i})"),
            )?;
        }
        a.set(len - 1, T::one()).await.map_err(s)?;
        ensure(
            a.get(len - 1).await.map_err(s)? == T::one(),
            format!("{what}: set"),
        )?;
        a.set(len - 1, source[len - 1]).await.map_err(s)?;
        let mid = len / 3..len - len / 4;
        ensure(
            a.get_range(mid.clone()).await.map_err(s)? == source[mid.clone()],
            format!("{what}: get_range"),
        )?;
    }
    match a.get(len).await {
        Err(Error::BadArgument(m)) => ensure(m.contains("out of range"), m)?,
        other => return Err(format!("{what}: get({len}) gave {other:?}")),
    }
    ensure(
        a.set(len + 3, T::one()).await.is_err(),
        format!("{what}: set out of range"),
    )?;
    ensure(
        a.get_range(0..len + 1).await.is_err(),
        format!("{what}: range out of bounds"),
    )?;
    // Reductions and dot against the serial reference.
    // Sums accumulate in the wide type (u8 sums are u64, as NumPy's).
    let total = a.sum().await.map_err(s)?;
    if T::IS_FLOAT {
        let sum: f64 = source.iter().map(|x| x.to_f64()).sum();
        ensure(
            (total.to_f64() - sum).abs() <= 1e-9 * (1.0 + sum.abs()),
            format!("{what}: sum"),
        )?;
    } else {
        let sum: i128 = source.iter().map(|x| x.cast::<i128>()).sum();
        ensure(
            total.cast::<i128>() == sum,
            format!("{what}: sum {total:?}, expected {sum}"),
        )?;
    }
    let min = source
        .iter()
        .copied()
        .reduce(|x, y| if y < x { y } else { x });
    let max = source
        .iter()
        .copied()
        .reduce(|x, y| if y > x { y } else { x });
    ensure(
        a.min().await.map_err(s)? == min && a.max().await.map_err(s)? == max,
        format!("{what}: min/max"),
    )?;
    let dot = source
        .iter()
        .fold(T::zeroed(), |acc, x| T::add(acc, T::mul(*x, *x)));
    ensure(
        T::close(a.dot(&a).await.map_err(s)?, dot),
        format!("{what}: dot"),
    )?;
    let b = hpx::from_vec(source.clone(), dist.clone())
        .await
        .map_err(s)?;
    ensure(
        T::close(a.dot(&b).await.map_err(s)?, dot),
        format!("{what}: dot of two arrays"),
    )?;
    // Scans, in place.
    let mut inclusive = source.clone();
    let mut acc = T::zeroed();
    for x in inclusive.iter_mut() {
        acc = T::add(acc, *x);
        *x = acc;
    }
    b.inclusive_scan(ReduceOp::Sum).await.map_err(s)?;
    ensure(
        all_close(&b.to_vec().await.map_err(s)?, &inclusive),
        format!("{what}: inclusive_scan"),
    )?;
    let mut exclusive = vec![T::one(); len];
    for i in 1..len {
        exclusive[i] = T::add(exclusive[i - 1], source[i - 1]);
    }
    b.copy_from(&a).await.map_err(s)?;
    b.exclusive_scan(ReduceOp::Sum, T::one()).await.map_err(s)?;
    ensure(
        all_close(&b.to_vec().await.map_err(s)?, &exclusive),
        format!("{what}: exclusive_scan"),
    )?;
    // Fill runs on the owners.
    a.fill(T::one()).await.map_err(s)?;
    ensure(
        a.to_vec().await.map_err(s)? == vec![T::one(); len],
        format!("{what}: fill"),
    )?;
    Ok(())
}

#[hpx::element_fn(map)]
fn halve(x: f64) -> f64 {
    x / 2.0
}

#[hpx::element_fn(predicate)]
fn is_negative(x: i64) -> bool {
    x < 0
}

#[hpx::element_fn(reduce)]
fn keep_larger_abs(lower: i64, upper: i64) -> i64 {
    if upper.abs() > lower.abs() {
        upper
    } else {
        lower
    }
}

#[hpx::element_fn(index)]
fn square_of_index(i: usize) -> u64 {
    (i * i) as u64
}

/// Scales the partition it is given, where it lives, and returns its local sum.
#[hpx::action]
async fn scale_partition(
    part: PartitionRef<f64>,
    factor: f64,
) -> Result<(usize, LocalityId, f64), Error> {
    let mut view = part.view_mut().await?;
    for x in view.iter_mut() {
        *x *= factor;
    }
    Ok((part.index(), hpx::find_here(), view.iter().sum()))
}

/// Receives an array handle in its arguments and reads it from there.
#[hpx::action]
async fn remote_sum(a: PartitionedVector<i64>) -> Result<i64, Error> {
    a.sum().await
}

async fn check_functions() -> Result<(), String> {
    let n = hpx::get_num_localities();
    let len = 1001;
    let a = hpx::from_vec((0..len).map(|i| i as f64).collect(), Distribution::Cyclic)
        .await
        .map_err(s)?;
    a.map_inplace(halve).await.map_err(s)?;
    let expected: Vec<f64> = (0..len).map(|i| i as f64 / 2.0).collect();
    ensure(a.to_vec().await.map_err(s)? == expected, "map_inplace")?;
    let results = a.for_each(scale_partition, 2.0).await.map_err(s)?;
    ensure(results.len() == a.num_partitions(), "for_each results")?;
    for (p, (index, loc, _)) in results.iter().enumerate() {
        ensure(
            *index == p && *loc == a.localities()[p],
            format!("for_each ran partition {p} on {loc}"),
        )?;
    }
    let total: f64 = results.iter().map(|r| r.2).sum();
    ensure(
        (total - (0..len).map(|i| i as f64).sum::<f64>()).abs() < 1e-6,
        "for_each sums",
    )?;
    let b = hpx::from_vec(
        (0..len as i64).map(|i| i * 3 - 1000).collect(),
        Distribution::BlockCyclic(7),
    )
    .await
    .map_err(s)?;
    let negatives = (0..len as i64).filter(|i| i * 3 - 1000 < 0).count() as u64;
    ensure(
        b.count_if(is_negative).await.map_err(s)? == negatives,
        "count_if",
    )?;
    ensure(
        b.reduce_with(keep_larger_abs).await.map_err(s)? == Some(2000),
        "reduce_with",
    )?;
    ensure(
        b.reduce(ReduceOp::BitXor).await.map_err(s)?.is_some(),
        "bitwise reduce on integers",
    )?;
    ensure(
        a.reduce(ReduceOp::BitAnd).await.is_err(),
        "bitwise reduce on floats is an error",
    )?;
    let remote = hpx::async_at(LocalityId(n - 1), remote_sum, b.clone())
        .await
        .map_err(s)?;
    ensure(
        remote == b.sum().await.map_err(s)?,
        "array handle sent in an action",
    )?;
    let c = hpx::from_fn(len, square_of_index)
        .chunks(10)
        .await
        .map_err(s)?;
    let squares: Vec<u64> = (0..len).map(|i| (i * i) as u64).collect();
    ensure(c.to_vec().await.map_err(s)? == squares, "from_fn")?;
    // Layout mismatches are clear errors.
    let d = hpx::zeros::<f64>(len)
        .distribution(Distribution::Block)
        .await
        .map_err(s)?;
    // Operands in different layouts are redistributed, owner to owner.
    ensure(d.dot(&a).await.map_err(s)? == 0.0, "dot across layouts")?;
    match a.dot(&hpx::zeros::<f64>(len + 1).await.map_err(s)?).await {
        Err(Error::BadArgument(m)) => ensure(m.contains("shapes"), m)?,
        other => return Err(format!("dot of different shapes gave {other:?}")),
    }
    d.copy_from(&a).await.map_err(s)?;
    ensure(
        d.to_vec().await.map_err(s)? == a.to_vec().await.map_err(s)?,
        "copy_from across layouts",
    )?;
    // Shapes.
    let m = hpx::ones::<i32>(12).shape([3, 4]).await.map_err(s)?;
    ensure(
        m.shape() == [3, 4] && m.flat_index(&[2, 1]).map_err(s)? == 9,
        "shape",
    )?;
    ensure(
        m.flat_index(&[3, 0]).is_err() && m.flat_index(&[1]).is_err(),
        "bad n-d index",
    )?;
    ensure(
        hpx::zeros::<i32>(12).shape([5, 2]).await.is_err(),
        "bad shape",
    )?;
    ensure(hpx::ones::<u8>(5).chunks(0).await.is_err(), "zero chunks")?;
    let e = hpx::full(0usize, 7u32)
        .distribution(Distribution::Cyclic)
        .await
        .map_err(s)?;
    ensure(
        e.to_vec().await.map_err(s)?.is_empty() && e.max().await.map_err(s)?.is_none(),
        "empty array",
    )?;
    Ok(())
}

/// `reshape`: a view sharing the partitions where each holds whole rows
/// of the new shape in a contiguous layout, else a copy; the elements in
/// row-major order either way.
async fn check_reshape(n: u32) -> Result<(), String> {
    let source: Vec<i64> = (0..60).collect();
    for (dist, view) in [
        (
            Distribution::Block,
            60 % n == 0 && (60 / n) % 5 == 0 || n == 1,
        ),
        (Distribution::Chunks(10), true),
        (Distribution::Chunks(7), false),
        (Distribution::Cyclic, false),
    ] {
        let what = format!("reshape {dist:?} on {n}");
        let a = hpx::from_vec(source.clone(), dist.clone())
            .await
            .map_err(s)?;
        let m = a.reshape([12, 5]).await.map_err(s)?;
        ensure(m.shape() == [12, 5], format!("{what}: shape"))?;
        ensure(
            m.to_vec().await.map_err(s)? == source,
            format!("{what}: row-major"),
        )?;
        let shared = m.partition_ids() == a.partition_ids();
        ensure(
            shared == view,
            format!("{what}: a view: {shared}, expected {view}"),
        )?;
        m.set_at(&[2, 3], -1).await.map_err(s)?;
        let seen = a.get(13).await.map_err(s)?;
        ensure(
            (seen == -1) == view,
            format!("{what}: a write through the reshaped array read {seen} in the original"),
        )?;
        ensure(
            m.reshape([3, 4, 5])
                .await
                .map_err(s)?
                .to_vec()
                .await
                .map_err(s)?
                == m.to_vec().await.map_err(s)?,
            format!("{what}: 3-d"),
        )?;
        ensure(
            a.reshape([7, 9]).await.is_err(),
            format!("{what}: 63 is not 60"),
        )?;
    }
    Ok(())
}

/// Reads of arrays whose partitions are larger than one read from another
/// locality (2 MiB): a partition is read in several pieces, and a piece of
/// the layout can straddle two of them.
async fn check_large_reads<T: TestElem>(len: usize, n: u32) -> Result<(), String> {
    let source: Vec<T> = (0..len).map(T::make).collect();
    for dist in [
        Distribution::Block,
        Distribution::Cyclic,
        Distribution::BlockCyclic(1000),
        Distribution::Explicit {
            sizes: vec![len / 3, len - len / 3],
            localities: vec![LocalityId(n - 1), LocalityId(0)],
        },
    ] {
        let what = format!("{len} {} {dist:?}", std::any::type_name::<T>());
        let a = hpx::from_vec(source.clone(), dist.clone())
            .await
            .map_err(s)?;
        ensure(
            a.to_vec().await.map_err(s)? == source,
            format!("{what}: to_vec"),
        )?;
        let mid = len / 5 + 1..len - len / 7;
        ensure(
            a.get_range(mid.clone()).await.map_err(s)? == source[mid.clone()],
            format!("{what}: get_range({mid:?})"),
        )?;
        let mut into = vec![T::zero(); 3];
        a.get_range_into(len - 3, &mut into).await.map_err(s)?;
        ensure(into == source[len - 3..], format!("{what}: the last three"))?;
    }
    Ok(())
}

#[test]
fn arrays_match_a_serial_reference() {
    if in_locality() {
        return spmd(|| async {
            if hpx::get_locality_id() != 0 {
                done("arrays_match_a_serial_reference");
                return Ok(());
            }
            let n = hpx::get_num_localities();
            for len in [0usize, 1, 7, 13, 1000, 1009] {
                for dist in distributions(len, n) {
                    check_case::<f64>(len, dist.clone()).await?;
                    check_case::<i64>(len, dist.clone()).await?;
                    check_case::<u8>(len, dist).await?;
                }
            }
            check_functions().await?;
            check_reshape(n).await?;
            check_large_reads::<f64>(700_001, n).await?;
            check_large_reads::<u8>(5_000_003, n).await?;
            println!("RESULT matrix ok");
            done("arrays_match_a_serial_reference");
            Ok(())
        });
    }
    for n in 1..=5 {
        let out = launch("arrays_match_a_serial_reference", n);
        out.assert_success();
        out.assert_all_done("arrays_match_a_serial_reference", n);
        assert_eq!(out.tagged("RESULT matrix ok").len(), 1, "{out}");
    }
}

#[test]
fn spmd_sharing_and_local_views() {
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            let n = hpx::get_num_localities() as usize;
            let len = 10 * n + 3;
            let a = if me == 0 {
                let a = hpx::zeros::<u64>(len)
                    .distribution(Distribution::Block)
                    .await
                    .map_err(s)?;
                a.register_as("shared-array").await.map_err(s)?;
                a
            } else {
                PartitionedVector::<u64>::connect_to("shared-array")
                    .await
                    .map_err(s)?
            };
            ensure(a.len() == len, "connected array length")?;
            // Every locality writes its own partition in place, zero-copy.
            {
                let mut part = a.local_partition_mut().await.map_err(s)?;
                for x in part.iter_mut() {
                    *x = u64::from(me) + 1;
                }
            }
            let view = a.local_partition().await.map_err(s)?;
            ensure(view.iter().all(|x| *x == u64::from(me) + 1), "local view")?;
            drop(view);
            ensure(
                PartitionedVector::<f64>::connect_to("shared-array")
                    .await
                    .is_err(),
                "wrong element type",
            )?;
            // Wait for all writers through the array itself: each adds 1 to its flag slot.
            let flags = if me == 0 {
                let f = hpx::zeros::<u64>(n)
                    .distribution(Distribution::Cyclic)
                    .await
                    .map_err(s)?;
                f.register_as("flags").await.map_err(s)?;
                f
            } else {
                PartitionedVector::<u64>::connect_to("flags")
                    .await
                    .map_err(s)?
            };
            flags.set(me as usize, 1).await.map_err(s)?;
            // Collectives over the array: the whole array, a local partition, a handle.
            let total = a.all_reduce(ReduceOp::Sum).await.map_err(s)?;
            let expected: u64 = a
                .partition_sizes()
                .iter()
                .enumerate()
                .map(|(p, n)| (p as u64 + 1) * *n as u64)
                .sum();
            ensure(
                total == Some(expected),
                format!("array all_reduce {total:?}, expected {expected}"),
            )?;
            let sizes = hpx::all_reduce(
                a.local_partition().await.map_err(s)?.len() as u64,
                ReduceOp::Max,
            )
            .await
            .map_err(s)?;
            ensure(
                sizes as usize == a.partition_sizes().into_iter().max().unwrap_or(0),
                "partition sizes",
            )?;
            let shared = hpx::broadcast(if me == 0 { Some(a.clone()) } else { None }, 0)
                .await
                .map_err(s)?;
            ensure(
                shared.partition_ids() == a.partition_ids(),
                "broadcast handle",
            )?;
            ensure(
                shared.sum().await.map_err(s)? == expected,
                "sum through a broadcast handle",
            )?;
            if me == 0 {
                loop {
                    if flags.sum().await.map_err(s)? == n as u64 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                let all = a.to_vec().await.map_err(s)?;
                let mut expected = Vec::new();
                for (p, size) in a.partition_sizes().iter().enumerate() {
                    expected.extend(std::iter::repeat(p as u64 + 1).take(*size));
                }
                ensure(
                    all == expected,
                    format!("partitions written in place: {all:?}"),
                )?;
                println!("RESULT shared ok");
            }
            done("spmd_sharing_and_local_views");
            Ok(())
        });
    }
    for n in [1, 3] {
        let out = launch("spmd_sharing_and_local_views", n);
        out.assert_success();
        out.assert_all_done("spmd_sharing_and_local_views", n);
        assert_eq!(out.tagged("RESULT shared ok").len(), 1, "{out}");
    }
}

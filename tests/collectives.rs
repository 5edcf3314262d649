//! Collectives across real clusters of 1 to 16 localities started with
//! hpxrun: every operation against a serial reference, generations,
//! sub-groups, mismatches, a dying locality, bitwise reproducible
//! floating-point sums, and the SPMD helpers.

mod common;

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{ensure, in_locality, launch, s, spmd, RawJob};
use hpx::prelude::*;
use hpx::Error;
use hpx::{Communicator, CustomOp, ReduceOp};
use serde::{Deserialize, Serialize};

/// Every body must finish within this (a hang is a failure, not a stuck test).
const BODY_TIMEOUT: Duration = Duration::from_secs(45);

const ALL_OPS: [ReduceOp; 7] = [
    ReduceOp::Sum,
    ReduceOp::Prod,
    ReduceOp::Min,
    ReduceOp::Max,
    ReduceOp::BitAnd,
    ReduceOp::BitOr,
    ReduceOp::BitXor,
];

const FLOAT_OPS: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Min, ReduceOp::Max];

/// The largest value and the lowest rank holding it (MPI's MAXLOC).
struct MaxLoc;

impl CustomOp for MaxLoc {
    type Value = (f64, u32);
    const NAME: &'static str = "tests::MaxLoc";
    fn combine(lower: (f64, u32), upper: (f64, u32)) -> (f64, u32) {
        if upper.0 > lower.0 {
            upper
        } else {
            lower
        }
    }
}

/// Joins with a dot: associative, not commutative, so it shows the order.
struct Join;

impl CustomOp for Join {
    type Value = String;
    const NAME: &'static str = "tests::Join";
    fn combine(lower: String, upper: String) -> String {
        format!("{lower}.{upper}")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    name: String,
    weights: Vec<f32>,
    root: u32,
}

fn same<T: PartialEq + Debug>(got: T, want: T, what: impl std::fmt::Display) -> Result<(), String> {
    ensure(got == want, format!("{what}: got {got:?}, want {want:?}"))
}

/// Serial reduction of integers, left to right.
fn fold_int<T: Copy>(
    op: ReduceOp,
    xs: impl IntoIterator<Item = T>,
    f: impl Fn(ReduceOp, T, T) -> T,
) -> T {
    let mut it = xs.into_iter();
    let first = it.next().expect("at least one value");
    it.fold(first, |a, b| f(op, a, b))
}

fn op_i64(op: ReduceOp, a: i64, b: i64) -> i64 {
    match op {
        ReduceOp::Sum => a.wrapping_add(b),
        ReduceOp::Prod => a.wrapping_mul(b),
        ReduceOp::Min => a.min(b),
        ReduceOp::Max => a.max(b),
        ReduceOp::BitAnd => a & b,
        ReduceOp::BitOr => a | b,
        ReduceOp::BitXor => a ^ b,
    }
}

fn op_u32(op: ReduceOp, a: u32, b: u32) -> u32 {
    match op {
        ReduceOp::Sum => a.wrapping_add(b),
        ReduceOp::Prod => a.wrapping_mul(b),
        ReduceOp::Min => a.min(b),
        ReduceOp::Max => a.max(b),
        ReduceOp::BitAnd => a & b,
        ReduceOp::BitOr => a | b,
        ReduceOp::BitXor => a ^ b,
    }
}

fn op_f64(op: ReduceOp, a: f64, b: f64) -> f64 {
    match op {
        ReduceOp::Sum => a + b,
        ReduceOp::Prod => a * b,
        ReduceOp::Min => a.min(b),
        ReduceOp::Max => a.max(b),
        _ => unreachable!("no bitwise operations on floats"),
    }
}

/// The documented order of combination: fold the first `n - p` pairs, then
/// a balanced tree (see the crate documentation of hpx-collectives).
fn canonical<T: Clone>(xs: &[T], f: impl Fn(T, T) -> T) -> T {
    let n = xs.len();
    let p = 1usize << (usize::BITS - 1 - n.leading_zeros());
    let r = n - p;
    let mut ys: Vec<T> = (0..p)
        .map(|i| {
            if i < r {
                f(xs[2 * i].clone(), xs[2 * i + 1].clone())
            } else {
                xs[i + r].clone()
            }
        })
        .collect();
    while ys.len() > 1 {
        ys = ys
            .chunks(2)
            .map(|c| f(c[0].clone(), c[1].clone()))
            .collect();
    }
    ys.swap_remove(0)
}

/// A rank's integer contribution: mixed signs and bit patterns.
fn int_of(rank: u32) -> i64 {
    let r = i64::from(rank);
    (r + 1) * if rank % 2 == 0 { 3 } else { -5 } + (r << 8)
}

/// A rank's vector contribution.
fn vec_of(rank: u32) -> Vec<u32> {
    vec![rank * 7 + 1, 100 - rank, rank ^ 5, 0xF0F0 >> rank]
}

/// A rank's floating-point contribution: very different magnitudes, so the
/// order of additions shows in the last bits.
fn float_of(rank: u32, j: usize) -> f64 {
    let r = f64::from(rank) + 1.0;
    let sign = if (rank as usize + j) % 3 == 0 {
        -1.0
    } else {
        1.0
    };
    sign * (r * 0.1 + j as f64 * 1e-3).powi(5) * 10f64.powi((rank as i32 % 4) * 5) + 1.0 / (r + 0.3)
}

/// Every operation and reduction, checked against serial references.
async fn every_operation() -> Result<(), String> {
    let n = hpx::get_num_localities();
    let me = hpx::get_locality_id();
    let ranks: Vec<u32> = (0..n).collect();
    let world = Communicator::world().map_err(s)?;
    same(world.rank(), me, "world rank")?;
    same(world.size(), n, "world size")?;

    // all_reduce and reduce (every root) of scalars, vectors and arrays.
    for op in ALL_OPS {
        let want = fold_int(op, ranks.iter().map(|&r| int_of(r)), op_i64);
        let got = hpx::all_reduce(int_of(me), op).await.map_err(s)?;
        same(got, want, format!("all_reduce i64 {op:?}"))?;
        let want_v: Vec<u32> = (0..4)
            .map(|j| fold_int(op, ranks.iter().map(|&r| vec_of(r)[j]), op_u32))
            .collect();
        let got = hpx::all_reduce(vec_of(me), op).await.map_err(s)?;
        same(got, want_v.clone(), format!("all_reduce Vec<u32> {op:?}"))?;
        let got = hpx::all_reduce([me as u8 + 200, 1], op).await.map_err(s)?;
        let want_a = [
            fold_int(op, ranks.iter().map(|&r| r as u8 + 200), |op, a, b| {
                op_u32(op, u32::from(a), u32::from(b)) as u8
            }),
            fold_int(op, ranks.iter().map(|_| 1u8), |op, a, b| {
                op_u32(op, u32::from(a), u32::from(b)) as u8
            }),
        ];
        same(got, want_a, format!("all_reduce [u8; 2] {op:?}"))?;
        for root in 0..n {
            let got = hpx::reduce(vec_of(me), op, root).await.map_err(s)?;
            let want = (me == root).then(|| want_v.clone());
            same(got, want, format!("reduce Vec<u32> {op:?} to {root}"))?;
        }
    }
    for op in FLOAT_OPS {
        let xs: Vec<f64> = ranks.iter().map(|&r| float_of(r, 0)).collect();
        let got = hpx::all_reduce(xs[me as usize], op).await.map_err(s)?;
        same(
            got.to_bits(),
            canonical(&xs, |a, b| op_f64(op, a, b)).to_bits(),
            format!("f64 {op:?}"),
        )?;
        let got = hpx::all_reduce(vec![me as f32, 0.5], op).await.map_err(s)?;
        let want = [
            canonical(
                &ranks.iter().map(|&r| r as f32).collect::<Vec<_>>(),
                |a, b| op_f64(op, f64::from(a), f64::from(b)) as f32,
            ),
            canonical(&vec![0.5f32; n as usize], |a, b| {
                op_f64(op, f64::from(a), f64::from(b)) as f32
            }),
        ];
        same(got, want.to_vec(), format!("Vec<f32> {op:?}"))?;
    }
    match hpx::all_reduce(1.5f64, ReduceOp::BitXor).await {
        Err(Error::BadArgument(m)) => ensure(m.contains("bit_xor"), m)?,
        other => return Err(format!("bitwise on f64 gave {other:?}")),
    }

    // Custom operations, including a non-commutative one, and their order.
    let got = hpx::all_reduce((f64::from(me % 3), me), MaxLoc)
        .await
        .map_err(s)?;
    let best = ranks.iter().map(|&r| r % 3).max().unwrap_or(0);
    same(got, (f64::from(best), best), "MaxLoc")?;
    let order: Vec<String> = ranks.iter().map(|r| r.to_string()).collect();
    let got = hpx::all_reduce(me.to_string(), Join).await.map_err(s)?;
    same(got, order.join("."), "Join all_reduce")?;
    for root in 0..n {
        let got = hpx::reduce(me.to_string(), Join, root).await.map_err(s)?;
        same(
            got,
            (me == root).then(|| order.join(".")),
            format!("Join reduce to {root}"),
        )?;
    }

    // Large vectors take reduce-scatter + all-gather.
    let len = (1 << 14) + 3;
    let big = |r: u32| -> Vec<f64> { (0..len).map(|j| f64::from(r) * 1000.0 + j as f64).collect() };
    let got = hpx::all_reduce(big(me), ReduceOp::Sum).await.map_err(s)?;
    let want: Vec<f64> = (0..len)
        .map(|j| {
            ranks
                .iter()
                .map(|&r| f64::from(r) * 1000.0 + j as f64)
                .sum()
        })
        .collect();
    same(got == want, true, "large Vec<f64> sum")?;
    let bits = |r: u32| -> Vec<i64> {
        (0..20_000)
            .map(|j| (j as i64 * 7919) ^ i64::from(r * 31))
            .collect()
    };
    let got = hpx::all_reduce(bits(me), ReduceOp::BitXor)
        .await
        .map_err(s)?;
    let all_bits: Vec<Vec<i64>> = ranks.iter().map(|&r| bits(r)).collect();
    let want: Vec<i64> = (0..20_000)
        .map(|j| all_bits.iter().fold(0, |acc, b| acc ^ b[j]))
        .collect();
    same(got == want, true, "large Vec<i64> xor")?;
    let bytes = |r: u32| -> Vec<u8> {
        (0..70_000usize)
            .map(|j| ((j * 13 + r as usize * 101) % 251) as u8)
            .collect()
    };
    let got = hpx::all_reduce(bytes(me), ReduceOp::Max).await.map_err(s)?;
    let all_bytes: Vec<Vec<u8>> = ranks.iter().map(|&r| bytes(r)).collect();
    let want: Vec<u8> = (0..70_000)
        .map(|j| all_bytes.iter().map(|b| b[j]).max().unwrap_or(0))
        .collect();
    same(got == want, true, "large Vec<u8> max")?;

    // Scans.
    let got = hpx::inclusive_scan(int_of(me), ReduceOp::Sum)
        .await
        .map_err(s)?;
    same(got, (0..=me).map(int_of).sum::<i64>(), "inclusive_scan sum")?;
    let got = hpx::exclusive_scan(int_of(me), ReduceOp::Sum)
        .await
        .map_err(s)?;
    same(
        got,
        (me > 0).then(|| (0..me).map(int_of).sum::<i64>()),
        "exclusive_scan sum",
    )?;
    let got = hpx::inclusive_scan(me.to_string(), Join).await.map_err(s)?;
    same(got, order[..=me as usize].join("."), "inclusive_scan Join")?;
    let got = hpx::exclusive_scan(me.to_string(), Join).await.map_err(s)?;
    same(
        got,
        (me > 0).then(|| order[..me as usize].join(".")),
        "exclusive_scan Join",
    )?;
    let got = hpx::inclusive_scan(vec_of(me), ReduceOp::Max)
        .await
        .map_err(s)?;
    let want: Vec<u32> = (0..4)
        .map(|j| (0..=me).map(|r| vec_of(r)[j]).max().unwrap_or(0))
        .collect();
    same(got, want, "inclusive_scan Vec max")?;

    // Broadcast, gather, scatter from every root; any serde type.
    for root in 0..n {
        let settings = Settings {
            name: format!("from {root}"),
            weights: vec![0.5, f32::from(root as u16)],
            root,
        };
        let got = hpx::broadcast((me == root).then(|| settings.clone()), root)
            .await
            .map_err(s)?;
        same(got, settings, format!("broadcast from {root}"))?;
        let bulk: Vec<f64> = (0..10_000).map(|j| j as f64 + f64::from(root)).collect();
        let got = hpx::broadcast((me == root).then(|| PodVec(bulk.clone())), root)
            .await
            .map_err(s)?;
        same(got.0 == bulk, true, format!("broadcast PodVec from {root}"))?;
        let got = hpx::gather((me, format!("L{me}")), root).await.map_err(s)?;
        let want = (me == root).then(|| {
            ranks
                .iter()
                .map(|&r| (r, format!("L{r}")))
                .collect::<Vec<_>>()
        });
        same(got, want, format!("gather to {root}"))?;
        let parts = (me == root).then(|| {
            ranks
                .iter()
                .map(|&r| vec![root; r as usize])
                .collect::<Vec<_>>()
        });
        let got = hpx::scatter(parts, root).await.map_err(s)?;
        same(got, vec![root; me as usize], format!("scatter from {root}"))?;
        // Values of every size in one call: rank 0's is empty, the others'
        // grow from a few bytes to far more than a shared slot.
        let sized = |r: u32| {
            PodVec(
                (0..(r as usize).pow(3) * 300)
                    .map(|j| j as u32 ^ r)
                    .collect::<Vec<u32>>(),
            )
        };
        let got = hpx::gather(sized(me), root).await.map_err(s)?;
        let want = (me == root).then(|| ranks.iter().map(|&r| sized(r).0).collect::<Vec<_>>());
        same(
            got.map(|g| g.into_iter().map(|v| v.0).collect::<Vec<_>>()),
            want,
            format!("gather of uneven sizes to {root}"),
        )?;
        let got = hpx::reduce(big(me), ReduceOp::Sum, root).await.map_err(s)?;
        let want = (me == root).then(|| {
            let inputs: Vec<Vec<f64>> = ranks.iter().map(|&r| big(r)).collect();
            (0..len)
                .map(|j| {
                    canonical(&inputs.iter().map(|v| v[j]).collect::<Vec<_>>(), |a, b| {
                        a + b
                    })
                })
                .collect::<Vec<f64>>()
        });
        same(
            got.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
            want.map(|v| v.iter().map(|x| x.to_bits()).collect()),
            format!("large reduce to {root}, bit for bit"),
        )?;
        let long = |r: u32| format!("{r}:{}", "ab".repeat(100 * r as usize));
        let got = hpx::reduce(long(me), Join, root).await.map_err(s)?;
        let want =
            (me == root).then(|| ranks.iter().map(|&r| long(r)).collect::<Vec<_>>().join("."));
        same(got, want, format!("reduce of long strings to {root}"))?;
    }
    let got = hpx::all_gather(PodVec(vec![me; 100 * me as usize]))
        .await
        .map_err(s)?;
    same(
        got.iter().map(|v| v.len()).collect::<Vec<_>>(),
        ranks.iter().map(|&r| 100 * r as usize).collect(),
        "all_gather of uneven sizes",
    )?;
    let got = hpx::all_gather(format!("L{me}")).await.map_err(s)?;
    same(
        got,
        ranks.iter().map(|r| format!("L{r}")).collect::<Vec<_>>(),
        "all_gather",
    )?;
    let got = hpx::all_gather(PodVec(vec![me; 3000])).await.map_err(s)?;
    same(
        got.iter().map(|v| (v[0], v.len())).collect::<Vec<_>>(),
        ranks.iter().map(|&r| (r, 3000)).collect(),
        "all_gather PodVec",
    )?;
    let got = hpx::all_to_all(ranks.iter().map(|&to| (me, to)).collect())
        .await
        .map_err(s)?;
    same(
        got,
        ranks.iter().map(|&from| (from, me)).collect::<Vec<_>>(),
        "all_to_all",
    )?;
    hpx::barrier().await.map_err(s)?;

    // Bitwise reproducible f64 sums: equal to the documented order, on
    // every locality, for all_reduce, reduce and the large algorithm.
    let xs: Vec<f64> = ranks.iter().map(|&r| float_of(r, 0)).collect();
    let want = canonical(&xs, |a, b| a + b);
    let got = hpx::all_reduce(xs[me as usize], ReduceOp::Sum)
        .await
        .map_err(s)?;
    same(got.to_bits(), want.to_bits(), "f64 sum bits")?;
    let everywhere = hpx::all_gather(got.to_bits()).await.map_err(s)?;
    ensure(
        everywhere.iter().all(|b| *b == want.to_bits()),
        "f64 sum differs between localities",
    )?;
    let got = hpx::reduce(xs[me as usize], ReduceOp::Sum, n - 1)
        .await
        .map_err(s)?;
    same(
        got.map(f64::to_bits),
        (me == n - 1).then_some(want.to_bits()),
        "reduce f64 bits",
    )?;
    let wide = 9000;
    let mine: Vec<f64> = (0..wide).map(|j| float_of(me, j)).collect();
    let got = hpx::all_reduce(mine, ReduceOp::Sum).await.map_err(s)?;
    for (j, value) in got.iter().enumerate() {
        let column: Vec<f64> = ranks.iter().map(|&r| float_of(r, j)).collect();
        let want = canonical(&column, |a, b| a + b);
        same(
            value.to_bits(),
            want.to_bits(),
            format!("large f64 sum bits, element {j}"),
        )?;
    }
    let naive_differs = (0..wide).any(|j| {
        let column: Vec<f64> = ranks.iter().map(|&r| float_of(r, j)).collect();
        canonical(&column, |a, b| a + b).to_bits() != column.iter().sum::<f64>().to_bits()
    });
    println!("RESULT ok {me} (order matters: {naive_differs})");
    Ok(())
}

/// Runs `body`, failing if it does not finish within [`BODY_TIMEOUT`].
async fn within_deadline(
    body: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(BODY_TIMEOUT, body)
        .await
        .unwrap_or_else(|_| Err(format!("the body did not finish within {BODY_TIMEOUT:?}")))
}

fn assert_all_ok(out: &common::Output, n: u32) {
    out.assert_success();
    for l in 0..n {
        let lines = out.tagged_by(l, "RESULT ok");
        assert_eq!(lines.len(), 1, "locality {l}: {out}");
    }
}

#[test]
fn every_operation_matches_a_serial_reference() {
    if in_locality() {
        return spmd(|| within_deadline(every_operation()));
    }
    for n in [1, 2, 3, 4, 5, 8] {
        let out = launch("every_operation_matches_a_serial_reference", n);
        assert_all_ok(&out, n);
        if n >= 4 {
            // The documented order differs from a left-to-right sum here.
            assert!(out.stdout.contains("order matters: true"), "{out}");
        }
    }
}

/// 1000 back-to-back all_reduces on the world while a task runs calls on a
/// sub-group, and sub-groups of various shapes.
async fn generations_and_groups() -> Result<(), String> {
    let n = hpx::get_num_localities();
    let me = hpx::get_locality_id();
    // Odd localities, in reverse order: rank 0 is the highest one.
    let odd: Vec<LocalityId> = (0..n)
        .rev()
        .filter(|l| l % 2 == 1)
        .map(LocalityId)
        .collect();
    let side = if me % 2 == 1 {
        let odd = odd.clone();
        Some(tokio::spawn(async move {
            let comm = Communicator::new("odd", &odd).await.map_err(s)?;
            same(comm.locality(comm.rank()), Some(LocalityId(me)), "odd rank")?;
            for i in 0..300u64 {
                let got = comm
                    .all_reduce(i + u64::from(comm.rank()), ReduceOp::Sum)
                    .await
                    .map_err(s)?;
                let k = u64::from(comm.size());
                same(got, i * k + k * (k - 1) / 2, format!("odd all_reduce {i}"))?;
            }
            let joined = comm.all_reduce(me.to_string(), Join).await.map_err(s)?;
            let want: Vec<String> = odd.iter().map(|l| l.0.to_string()).collect();
            same(joined, want.join("."), "odd order follows the member list")?;
            Ok::<_, String>(())
        }))
    } else {
        None
    };
    for i in 0..1000u64 {
        // Each call's value depends on i: a message of another call would show.
        let got = hpx::all_reduce(vec![i, u64::from(me)], ReduceOp::Sum)
            .await
            .map_err(s)?;
        let k = u64::from(n);
        same(got, vec![i * k, k * (k - 1) / 2], format!("all_reduce {i}"))?;
        if i % 100 == 0 {
            let root = (i / 100) as u32 % n;
            let got = hpx::broadcast((me == root).then_some(i), root)
                .await
                .map_err(s)?;
            same(got, i, format!("broadcast {i}"))?;
        }
    }
    if let Some(side) = side {
        side.await.map_err(|e| e.to_string())??;
    }
    // A group without locality 0, used twice under one name, and a group of one.
    if me != 0 {
        let rest: Vec<LocalityId> = (1..n).map(LocalityId).collect();
        for round in 0..2u32 {
            let comm = Communicator::new("rest", &rest).await.map_err(s)?;
            same(comm.rank(), me - 1, "rest rank")?;
            let got = comm.gather(me + round, 0).await.map_err(s)?;
            let want = (me == 1).then(|| (1..n).map(|l| l + round).collect::<Vec<_>>());
            same(got, want, "rest gather")?;
            comm.barrier().await.map_err(s)?;
        }
    }
    let alone = Communicator::new(&format!("alone {me}"), &[LocalityId(me)])
        .await
        .map_err(s)?;
    same(
        alone.all_reduce(5u8, ReduceOp::Sum).await.map_err(s)?,
        5,
        "alone",
    )?;
    same(
        alone.exclusive_scan(5u8, ReduceOp::Sum).await.map_err(s)?,
        None,
        "alone scan",
    )?;
    hpx::barrier().await.map_err(s)?;
    println!("RESULT ok {me}");
    Ok(())
}

#[test]
fn generations_never_mix_and_groups_are_independent() {
    if in_locality() {
        return spmd(|| within_deadline(generations_and_groups()));
    }
    let out = launch("generations_never_mix_and_groups_are_independent", 5);
    assert_all_ok(&out, 5);
}

/// Set when locality 0 has abandoned its barrier (see [`mismatches`]).
static ABANDONED: AtomicBool = AtomicBool::new(false);
static ABANDONED_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Tells this locality that locality 0 has dropped its barrier call.
#[hpx::action]
async fn barrier_abandoned() {
    ABANDONED.store(true, Ordering::SeqCst);
    ABANDONED_CHANGED.notify_waiters();
}

/// Waits (without sleeping) for [`barrier_abandoned`].
async fn wait_abandoned() {
    loop {
        let changed = ABANDONED_CHANGED.notified();
        if ABANDONED.load(Ordering::SeqCst) {
            return;
        }
        changed.await;
    }
}

/// Calls that do not match, each of which must fail on every locality.
async fn mismatches() -> Result<(), String> {
    let n = hpx::get_num_localities();
    let me = hpx::get_locality_id();
    let odd_one = n - 1;
    let expect_mismatch = |what: &str, outcome: Result<String, Error>| -> Result<(), String> {
        match outcome {
            Err(Error::CollectiveMismatch(m)) => {
                println!("MISMATCH {what}: {m}");
                Ok(())
            }
            other => Err(format!("{what}: expected a mismatch error, got {other:?}")),
        }
    };
    // Vectors of different lengths, small and large.
    let len = if me == odd_one { 5 } else { 4 };
    let got = hpx::all_reduce(vec![1.0f64; len], ReduceOp::Sum).await;
    expect_mismatch("length", got.map(|v| format!("{v:?}")))?;
    let len = if me == odd_one { 20_000 } else { 20_001 };
    let got = hpx::all_reduce(vec![1u64; len], ReduceOp::Sum).await;
    expect_mismatch("large length", got.map(|v| format!("{}", v.len())))?;
    // Another reduction.
    let op = if me == 0 {
        ReduceOp::Max
    } else {
        ReduceOp::Sum
    };
    let got = hpx::all_reduce(1i32, op).await;
    expect_mismatch("reduction", got.map(|v| v.to_string()))?;
    // Another operation: a barrier against an all_reduce.
    let got = if me == odd_one {
        hpx::barrier().await.map(|()| "barrier".to_owned())
    } else {
        hpx::all_reduce(1i32, ReduceOp::Sum)
            .await
            .map(|v| v.to_string())
    };
    if let Err(Error::CollectiveMismatch(m)) = &got {
        ensure(
            m.contains("barrier") && m.contains("all_reduce"),
            format!("the message names both calls: {m}"),
        )?;
    }
    expect_mismatch("barrier vs all_reduce", got)?;
    // An operation through shared memory against one through messages.
    let got = if me == odd_one {
        hpx::gather(7u32, 0).await.map(|v| format!("{v:?}"))
    } else {
        hpx::barrier().await.map(|()| "barrier".to_owned())
    };
    expect_mismatch("barrier vs gather", got)?;
    let got = if me == odd_one {
        hpx::all_reduce(1u64, ReduceOp::Sum)
            .await
            .map(|v| v.to_string())
    } else {
        hpx::all_to_all(vec![me; n as usize])
            .await
            .map(|v| format!("{v:?}"))
    };
    expect_mismatch("all_reduce vs all_to_all", got)?;
    // Operations that send one way only: broadcast against gather.
    let got = if me == 0 {
        hpx::broadcast(Some(7u32), 0).await.map(|v| v.to_string())
    } else {
        hpx::gather(7u32, 0).await.map(|v| format!("{v:?}"))
    };
    expect_mismatch("broadcast vs gather", got)?;
    // Another root.
    let root = if me == odd_one { 0 } else { 1 % n };
    let got = hpx::broadcast((me == root).then_some(1u8), root).await;
    expect_mismatch("root", got.map(|v| v.to_string()))?;
    // Another value type.
    let got = if me == 0 {
        hpx::all_gather(1u32).await.map(|v| format!("{v:?}"))
    } else {
        hpx::all_gather(1i32).await.map(|v| format!("{v:?}"))
    };
    expect_mismatch("type", got)?;
    // A call abandoned on one locality (its future dropped) fails on the others.
    // The others call the barrier only once locality 0 has dropped its call.
    if me == 0 {
        let abandoned = tokio::time::timeout(Duration::from_millis(20), hpx::barrier()).await;
        ensure(
            abandoned.is_err(),
            "the barrier cannot finish without the others",
        )?;
        for l in 1..n {
            hpx::async_at(LocalityId(l), barrier_abandoned, ())
                .await
                .map_err(s)?;
        }
    } else {
        wait_abandoned().await;
        match hpx::barrier().await {
            Err(Error::Aborted(m)) if m.contains("cancelled on locality 0") => {}
            other => return Err(format!("expected a cancellation error, got {other:?}")),
        }
    }
    // The world is still usable afterwards.
    let got = hpx::all_reduce(1u32, ReduceOp::Sum).await.map_err(s)?;
    same(got, n, "all_reduce after the mismatches")?;
    // Values of one call may differ in size (a string): one too large for
    // the shared slot sends the whole call through the bulk region, same
    // result.
    let word = |l: u32| {
        if l == odd_one {
            "x".repeat(5_000)
        } else {
            l.to_string()
        }
    };
    let got = hpx::all_reduce(word(me), Join).await.map_err(s)?;
    let want = canonical(&(0..n).map(word).collect::<Vec<_>>(), |a, b| {
        format!("{a}.{b}")
    });
    same(got, want, "all_reduce of one long and some short strings")?;
    hpx::barrier().await.map_err(s)?;
    println!("RESULT ok {me}");
    Ok(())
}

#[test]
fn mismatched_calls_fail_on_every_locality() {
    if in_locality() {
        return spmd(|| within_deadline(mismatches()));
    }
    for n in [2, 3, 4] {
        let out = launch("mismatched_calls_fail_on_every_locality", n);
        assert_all_ok(&out, n);
        assert_eq!(out.tagged("MISMATCH").len(), 9 * n as usize, "{out}");
    }
}

/// Localities that have entered the large all_reduce (counted on locality 2).
static IN_ALL_REDUCE: AtomicU32 = AtomicU32::new(0);
static IN_ALL_REDUCE_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[hpx::action]
async fn entered_all_reduce() {
    IN_ALL_REDUCE.fetch_add(1, Ordering::SeqCst);
    IN_ALL_REDUCE_CHANGED.notify_waiters();
}

/// Waits (without sleeping) until `n` localities have entered the all_reduce.
async fn entered_by(n: u32) {
    loop {
        let changed = IN_ALL_REDUCE_CHANGED.notified();
        if IN_ALL_REDUCE.load(Ordering::SeqCst) >= n {
            return;
        }
        changed.await;
    }
}

#[test]
fn a_dying_locality_fails_the_collective_elsewhere() {
    if in_locality() {
        let result = hpx::Runtime::builder().threads(2).run(|| async {
            let me = hpx::get_locality_id();
            // Connections are up and every message so far has arrived.
            hpx::all_reduce(1u32, ReduceOp::Sum).await?;
            hpx::barrier().await?;
            if me == 2 {
                // Dies once the others wait in a large all_reduce that
                // cannot finish without it.
                entered_by(hpx::get_num_localities() - 1).await;
                println!("RESULT dying {me}");
                // SAFETY: raising SIGKILL on ourselves.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            let start = Instant::now();
            // The all_reduce is polled first: it has begun (and waits for
            // locality 2) when locality 2 hears of it.
            let (outcome, told) = futures::join!(
                hpx::all_reduce(vec![1.0f64; 1 << 18], ReduceOp::Sum),
                async { hpx::post(LocalityId(2), entered_all_reduce, ()) }
            );
            told?;
            let waited = start.elapsed().as_millis();
            match outcome {
                Err(e) => println!("RESULT failed after {waited} ms: {e}"),
                Ok(_) => println!("RESULT unexpected success"),
            }
            Ok::<_, Error>(())
        });
        println!(
            "RESULT exit {}",
            result.map_or_else(|e| format!("err {e}"), |()| "ok".into())
        );
        return;
    }
    let env = [
        ("HPX_SECRET", common::secret(5)),
        ("HPX_PEER_TIMEOUT", "2".to_owned()),
    ];
    let outs = RawJob::spawn(
        "a_dying_locality_fails_the_collective_elsewhere",
        4,
        &[0, 1, 2, 3],
        &env,
    )
    .wait(Duration::from_secs(50));
    for l in [0usize, 1, 3] {
        let lines = outs[l].tagged("RESULT");
        assert!(!lines.is_empty(), "{}", outs[l]);
        let (ms, error) = lines[0]
            .strip_prefix("failed after ")
            .and_then(|s| s.split_once(" ms: "))
            .unwrap_or_else(|| panic!("locality {l}: {}", outs[l]));
        let ms: u64 = ms.parse().unwrap_or_else(|_| panic!("{}", outs[l]));
        assert!(ms < 10_000, "locality {l} failed only after {ms} ms");
        assert!(
            error.contains("locality 2 was lost"),
            "locality {l}: {error}"
        );
    }
    assert_eq!(outs[2].tagged("RESULT"), ["dying 2"], "{}", outs[2]);
    assert_eq!(
        outs[2].status.code(),
        None,
        "locality 2 was killed by a signal"
    );
}

/// Returns where it ran and its argument.
#[hpx::action]
async fn whoami(tag: u32) -> (u32, u32) {
    (hpx::get_locality_id(), tag)
}

/// Delay of locality `l` before it arrives at the latch.
const ARRIVAL_STEP: Duration = Duration::from_millis(60);

/// Set just before this locality arrives at the latch.
static AT_LATCH: AtomicBool = AtomicBool::new(false);

#[hpx::action]
async fn arrived_at_latch() -> bool {
    AT_LATCH.load(Ordering::SeqCst)
}

async fn spmd_helpers() -> Result<(), String> {
    let n = hpx::get_num_localities();
    let me = hpx::get_locality_id();
    let all = hpx::spmd::for_each_locality(whoami, 7).await.map_err(s)?;
    same(all, (0..n).map(|l| (l, 7)).collect(), "for_each_locality")?;
    // The last and the first locality, in that order (just 0 when alone).
    let mut pair = vec![LocalityId(n - 1), LocalityId(0)];
    pair.dedup();
    if pair.contains(&LocalityId(me)) {
        let comm = Communicator::new("pair", &pair).await.map_err(s)?;
        let got = hpx::spmd::for_each_member(&comm, whoami, me)
            .await
            .map_err(s)?;
        let want: Vec<(u32, u32)> = pair.iter().map(|l| (l.0, me)).collect();
        same(got, want, "for_each_member")?;
    }

    // Every locality arrives later than the previous one; nobody passes
    // the latch before the last has arrived. The pauses only spread the
    // arrivals: what is checked is that every locality had arrived (said
    // so before arriving) when one passes, whatever the timing.
    hpx::barrier().await.map_err(s)?;
    let latch = hpx::spmd::Latch::new("arrivals", u64::from(n))
        .await
        .map_err(s)?;
    tokio::time::sleep(ARRIVAL_STEP * me).await;
    AT_LATCH.store(true, Ordering::SeqCst);
    latch.arrive_and_wait().await.map_err(s)?;
    let arrived = hpx::broadcast_action(arrived_at_latch, ())
        .await
        .map_err(s)?;
    ensure(
        arrived.iter().all(|a| *a),
        format!("passed the latch before every arrival: {arrived:?}"),
    )?;
    ensure(latch.try_wait().await.map_err(s)?, "the latch is open")?;
    match latch.count_down(1).await {
        Err(Error::BadArgument(m)) => ensure(m.contains("arrivals left"), m)?,
        other => return Err(format!("counting down an open latch gave {other:?}")),
    }
    match hpx::spmd::Latch::new("arrivals", 99).await {
        Err(Error::BadArgument(m)) => ensure(m.contains("not 99"), m)?,
        other => return Err(format!("a latch with another count gave {other:?}")),
    }
    let gate = hpx::spmd::Latch::new(&format!("gate {me}"), 2)
        .await
        .map_err(s)?;
    ensure(!gate.try_wait().await.map_err(s)?, "a new latch is closed")?;
    same(gate.count_down(2).await.map_err(s)?, 0, "count_down")?;
    gate.wait().await.map_err(s)?;
    hpx::barrier().await.map_err(s)?;
    println!("RESULT ok {me}");
    Ok(())
}

#[test]
fn spmd_helpers_run_everywhere_and_latch() {
    if in_locality() {
        return spmd(|| within_deadline(spmd_helpers()));
    }
    for n in [1, 3] {
        let out = launch("spmd_helpers_run_everywhere_and_latch", n);
        assert_all_ok(&out, n);
    }
}

async fn smoke() -> Result<(), String> {
    let n = hpx::get_num_localities();
    let me = hpx::get_locality_id();
    for i in 0..20u64 {
        let got = hpx::all_reduce(u64::from(me) + i, ReduceOp::Sum)
            .await
            .map_err(s)?;
        same(
            got,
            u64::from(n) * i + u64::from(n * (n - 1) / 2),
            "all_reduce",
        )?;
        hpx::barrier().await.map_err(s)?;
    }
    let xs: Vec<f64> = (0..n).map(|r| float_of(r, 1)).collect();
    let got = hpx::all_reduce(xs[me as usize], ReduceOp::Sum)
        .await
        .map_err(s)?;
    same(
        got.to_bits(),
        canonical(&xs, |a, b| a + b).to_bits(),
        "f64 bits",
    )?;
    println!("RESULT ok {me}");
    Ok(())
}

#[test]
fn sixteen_localities_smoke() {
    if in_locality() {
        return spmd(|| within_deadline(smoke()));
    }
    let out = launch("sixteen_localities_smoke", 16);
    assert_all_ok(&out, 16);
}

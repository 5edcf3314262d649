//! Distributed array math across real processes: element-wise operations
//! between arrays of different layouts, reductions, 2-d row and tile
//! layouts, bitwise-reproducible float sums and collective (SPMD) creation,
//! each checked against a serial computation on plain vectors.

mod common;

use common::{done, ensure, example, hpxrun_program, in_locality, launch, s, spmd};
use hpx::prelude::*;
use hpx::{BinaryOp, CompareOp, Error, LayoutSpec, UnaryOp};

/// Layouts of a 1-d array of `len` elements over `n` localities.
fn layouts_1d(len: usize, n: u32) -> Vec<Distribution> {
    let half = len / 2;
    vec![
        Distribution::Block,
        Distribution::Cyclic,
        Distribution::BlockCyclic(4),
        Distribution::Chunks(5),
        Distribution::Partitions(n as usize * 2 + 1),
        Distribution::Local,
        Distribution::Explicit {
            sizes: vec![0, half, len - half],
            localities: vec![LocalityId(0), LocalityId(n - 1), LocalityId(n / 2)],
        },
    ]
}

/// Values with mixed signs and magnitudes.
fn values(len: usize, salt: u64) -> Vec<f64> {
    (0..len as u64)
        .map(|i| {
            let k = (i * 7919 + salt * 104_729) % 1000;
            let sign = if (i + salt) % 3 == 0 { -1.0 } else { 1.0 };
            sign * (k as f64 + 0.25) * 10f64.powi((i % 7) as i32 - 3)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
}

async fn check_elementwise(len: usize) -> Result<(), String> {
    let n = hpx::get_num_localities();
    let x = values(len, 1);
    let y: Vec<f64> = values(len, 2).into_iter().map(|v| v.abs() + 1.0).collect();
    for da in layouts_1d(len, n) {
        for db in [Distribution::Block, Distribution::Cyclic, da.clone()] {
            let what = format!("len {len} on {n}: {da:?} with {db:?}");
            let a = hpx::from_vec(x.clone(), da.clone()).await.map_err(s)?;
            let b = hpx::from_vec(y.clone(), db.clone()).await.map_err(s)?;
            let sum = (&a + &b).await.map_err(s)?;
            ensure(
                sum.layout().same_placement(a.layout()),
                format!("{what}: result in a's layout"),
            )?;
            let got = sum.to_vec().await.map_err(s)?;
            let want: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p + q).collect();
            ensure(got == want, format!("{what}: a + b"))?;
            let got = (&a / &b).await.map_err(s)?.to_vec().await.map_err(s)?;
            let want: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p / q).collect();
            ensure(got == want, format!("{what}: a / b"))?;
            let got = a
                .binary(BinaryOp::Pow, &b)
                .await
                .map_err(s)?
                .to_vec()
                .await
                .map_err(s)?;
            let want: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p.powf(*q)).collect();
            ensure(
                got.iter()
                    .zip(&want)
                    .all(|(g, w)| g.to_bits() == w.to_bits()),
                format!("{what}: pow"),
            )?;
            let got = (&a * 2.0).await.map_err(s)?.to_vec().await.map_err(s)?;
            ensure(
                got == x.iter().map(|p| p * 2.0).collect::<Vec<_>>(),
                format!("{what}: a * 2"),
            )?;
            let got = a
                .binary_scalar(BinaryOp::Sub, 1.0, true)
                .await
                .map_err(s)?
                .to_vec()
                .await
                .map_err(s)?;
            ensure(
                got == x.iter().map(|p| 1.0 - p).collect::<Vec<_>>(),
                format!("{what}: 1 - a"),
            )?;
            let mask = a.compare(CompareOp::Gt, &b).await.map_err(s)?;
            let want_mask: Vec<u8> = x.iter().zip(&y).map(|(p, q)| u8::from(p > q)).collect();
            ensure(
                mask.to_vec().await.map_err(s)? == want_mask,
                format!("{what}: a > b"),
            )?;
            let picked = hpx::select(&mask, &a, &b).await.map_err(s)?;
            let want: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p.max(*q)).collect();
            ensure(
                picked.to_vec().await.map_err(s)? == want,
                format!("{what}: where"),
            )?;
            // Moving b into a's layout and back keeps every element.
            let moved = b.aligned_with(&a).await.map_err(s)?;
            ensure(
                moved.to_vec().await.map_err(s)? == y,
                format!("{what}: redistribution"),
            )?;
        }
        // Functions of one array.
        let what = format!("len {len} on {n}: {da:?}");
        let a = hpx::from_vec(x.clone(), da.clone()).await.map_err(s)?;
        for (op, f) in [
            (UnaryOp::Sqrt, f64::sqrt as fn(f64) -> f64),
            (UnaryOp::Exp, f64::exp),
            (UnaryOp::Log, f64::ln),
            (UnaryOp::Sin, f64::sin),
            (UnaryOp::Cos, f64::cos),
            (UnaryOp::Abs, f64::abs),
        ] {
            let got = a
                .unary_float(op)
                .await
                .map_err(s)?
                .to_vec()
                .await
                .map_err(s)?;
            ensure(
                got.iter()
                    .zip(&x)
                    .all(|(g, v)| g.to_bits() == f(*v).to_bits()),
                format!("{what}: {op:?}"),
            )?;
        }
        let neg = (-&a).await.map_err(s)?.to_vec().await.map_err(s)?;
        ensure(
            neg == x.iter().map(|v| -v).collect::<Vec<_>>(),
            format!("{what}: -a"),
        )?;
        let ints = a.astype::<i32>().await.map_err(s)?;
        ensure(
            ints.to_vec().await.map_err(s)? == x.iter().map(|v| *v as i32).collect::<Vec<_>>(),
            format!("{what}: astype"),
        )?;
        // Reductions against the serial reference.
        let argmax = x
            .iter()
            .enumerate()
            .fold(None::<(usize, f64)>, |best, (i, v)| match best {
                Some((_, b)) if *v <= b => best,
                _ => Some((i, *v)),
            })
            .map(|(i, _)| i);
        let argmin = x
            .iter()
            .enumerate()
            .fold(None::<(usize, f64)>, |best, (i, v)| match best {
                Some((_, b)) if *v >= b => best,
                _ => Some((i, *v)),
            })
            .map(|(i, _)| i);
        ensure(
            a.argmax().await.map_err(s)? == argmax && a.argmin().await.map_err(s)? == argmin,
            format!("{what}: argmax/argmin"),
        )?;
        let nonzero = x.iter().filter(|v| **v != 0.0).count() as u64;
        ensure(
            a.count_nonzero().await.map_err(s)? == nonzero
                && a.any().await.map_err(s)? == (nonzero > 0)
                && a.all().await.map_err(s)? == (nonzero == len as u64),
            format!("{what}: any/all"),
        )?;
        let mean = a.mean().await.map_err(s)?;
        let serial: f64 = x.iter().sum::<f64>() / len as f64;
        ensure(
            close(mean, serial) || (len == 0 && mean.is_nan()),
            format!("{what}: mean {mean} against {serial}"),
        )?;
    }
    Ok(())
}

async fn check_integers() -> Result<(), String> {
    let n = hpx::get_num_localities();
    // NumPy's rule: integer sums accumulate in 64 bits.
    let bytes = hpx::ones::<u8>(300)
        .distribution(Distribution::Cyclic)
        .await
        .map_err(s)?;
    ensure(bytes.sum().await.map_err(s)? == 300u64, "u8 sum is 300")?;
    let small = hpx::full::<i8>(1000, -100).await.map_err(s)?;
    ensure(
        small.sum().await.map_err(s)? == -100_000i64,
        "i8 sum is -100000",
    )?;
    ensure(
        (small.mean().await.map_err(s)? + 100.0).abs() < 1e-12,
        "i8 mean is f64",
    )?;
    // A mean does not wrap where the sum does.
    let big = hpx::full::<i64>(4, i64::MAX)
        .distribution(Distribution::Cyclic)
        .await
        .map_err(s)?;
    let mean = big.mean().await.map_err(s)?;
    ensure(
        (mean - i64::MAX as f64).abs() < 1e6,
        format!("mean of i64::MAX is {mean}"),
    )?;
    ensure(
        big.sum().await.map_err(s)? == i64::MAX.wrapping_mul(4),
        "the i64 sum wraps as NumPy's",
    )?;
    // Integer ranges are exact; floor division and modulo as Python's.
    let r = hpx::arange(-7i64, 8, 1)
        .map_err(s)?
        .chunks(4)
        .await
        .map_err(s)?;
    ensure(
        r.to_vec().await.map_err(s)? == (-7..8).collect::<Vec<i64>>(),
        "arange",
    )?;
    let q = (&r / 2).await.map_err(s)?.to_vec().await.map_err(s)?;
    ensure(
        q == (-7i64..8).map(|v| v.div_euclid(2)).collect::<Vec<_>>(),
        format!("floor division {q:?}"),
    )?;
    let m = (&r % 3).await.map_err(s)?.to_vec().await.map_err(s)?;
    ensure(
        m == (-7i64..8).map(|v| v.rem_euclid(3)).collect::<Vec<_>>(),
        format!("modulo {m:?}"),
    )?;
    match (&r / 0).await {
        Err(e) => ensure(
            e.to_string().contains("division by zero"),
            format!("division by zero: {e}"),
        )?,
        Ok(_) => return Err("integer division by zero gave an array".into()),
    }
    let zero_somewhere = hpx::arange(0i64, 15, 1)
        .map_err(s)?
        .distribution(Distribution::Cyclic)
        .await
        .map_err(s)?;
    ensure(
        (&r % &zero_somewhere).await.is_err(),
        "modulo by an array holding a zero",
    )?;
    let lin = hpx::linspace::<f64>(0.0, 1.0, 11)
        .distribution(Distribution::Cyclic)
        .await
        .map_err(s)?;
    let got = lin.to_vec().await.map_err(s)?;
    ensure(
        got[0] == 0.0 && got[10] == 1.0 && (got[3] - 0.3).abs() < 1e-15,
        format!("linspace {got:?}"),
    )?;
    // The same seed gives the same values in any layout.
    let u1 = hpx::random::uniform::<f64>(1001, 42, 0.0, 1.0)
        .await
        .map_err(s)?;
    let u2 = hpx::random::uniform::<f64>(1001, 42, 0.0, 1.0)
        .chunks(7)
        .on(&[LocalityId(n - 1)])
        .await
        .map_err(s)?;
    let (v1, v2) = (u1.to_vec().await.map_err(s)?, u2.to_vec().await.map_err(s)?);
    ensure(
        v1 == v2 && v1.iter().all(|v| (0.0..1.0).contains(v)),
        "random uniform",
    )?;
    let dice = hpx::random::integers::<u8>(600, 3, 1, 7)
        .distribution(Distribution::Cyclic)
        .await
        .map_err(s)?;
    let d = dice.to_vec().await.map_err(s)?;
    ensure(
        d.iter().all(|v| (1..7).contains(v)) && (1..7).all(|k| d.contains(&k)),
        "random integers",
    )?;
    Ok(())
}

#[test]
fn elementwise_math_and_reductions_match_a_serial_reference() {
    const TEST: &str = "elementwise_math_and_reductions_match_a_serial_reference";
    if in_locality() {
        return spmd(|| async {
            if hpx::get_locality_id() == 0 {
                for len in [0usize, 1, 13, 1000] {
                    check_elementwise(len).await?;
                }
                check_integers().await?;
                println!("RESULT math ok");
            }
            hpx::barrier().await.map_err(s)?;
            done(TEST);
            Ok(())
        });
    }
    for n in [1, 2, 3, 5] {
        let out = launch(TEST, n);
        out.assert_success().assert_all_done(TEST, n);
        assert_eq!(out.tagged("RESULT math ok").len(), 1, "{out}");
    }
}

/// Fused expressions against the same operations one by one: values,
/// reductions (NaN-propagating extremes, exact sums), operands in other
/// layouts, constants on either side, masks and conversions.
async fn check_fused(len: usize) -> Result<(), String> {
    let n = hpx::get_num_localities();
    let x = values(len, 3);
    let mut y = values(len, 4);
    for da in layouts_1d(len, n) {
        let what = format!("len {len} on {n}: {da:?}");
        let a = hpx::from_vec(x.clone(), da.clone()).await.map_err(s)?;
        let b = hpx::from_vec(y.clone(), Distribution::Cyclic)
            .await
            .map_err(s)?;
        let want: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p * 2.0 + q).collect();
        let fused = (&a * 2.0 + &b).await.map_err(s)?;
        ensure(
            fused.layout().same_placement(a.layout()),
            format!("{what}: the value in the first array's layout"),
        )?;
        ensure(
            fused.to_vec().await.map_err(s)? == want,
            format!("{what}: a * 2 + b"),
        )?;
        let step = a
            .binary_scalar(BinaryOp::Mul, 2.0, false)
            .await
            .map_err(s)?;
        let step = step.binary(BinaryOp::Add, &b).await.map_err(s)?;
        let (fused_sum, step_sum) = (
            (&a * 2.0 + &b).sum().await.map_err(s)?,
            step.sum().await.map_err(s)?,
        );
        ensure(
            fused_sum.to_bits() == step_sum.to_bits(),
            format!("{what}: fused sum {fused_sum} against {step_sum}"),
        )?;
        let norm = (hpx::Expr::from(&a) * &a + (hpx::Expr::from(&b) * &b)).sqrt();
        let want_max = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p * p + q * q).sqrt())
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        ensure(
            norm.max().await.map_err(s)? == want_max,
            format!("{what}: sqrt(a*a + b*b).max()"),
        )?;
        let positive = hpx::select(
            hpx::Expr::from(&a).compare_scalar(CompareOp::Gt, 0.0, false),
            &a,
            hpx::Expr::from(&a) * 0.0,
        );
        let want_pos: Vec<f64> = x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect();
        ensure(
            positive
                .clone()
                .await
                .map_err(s)?
                .to_vec()
                .await
                .map_err(s)?
                == want_pos,
            format!("{what}: where(a > 0, a, 0)"),
        )?;
        let count = positive.count_nonzero().await.map_err(s)?;
        ensure(
            count == x.iter().filter(|v| **v > 0.0).count() as u64,
            format!("{what}: count_nonzero"),
        )?;
        let ints = (1.5 - &a * 1.0).astype::<i64>().await.map_err(s)?;
        ensure(
            ints.to_vec().await.map_err(s)?
                == x.iter().map(|v| (1.5 - v) as i64).collect::<Vec<_>>(),
            format!("{what}: astype after a constant first"),
        )?;
    }
    let any = hpx::AnyVector::new(
        hpx::from_vec(x.clone(), Distribution::Block)
            .await
            .map_err(s)?,
    );
    ensure(
        any.typed::<i32>().is_err() && any.typed::<f64>().is_ok() && any.dtype() == "f64",
        "an AnyVector gives back its own element type only",
    )?;
    let twice = hpx::AnyExpr::of_any(&any)
        .binary(hpx::BinaryOp::Add, &hpx::AnyExpr::of_any(&any))
        .map_err(s)?
        .evaluate::<f64>()
        .await
        .map_err(s)?;
    ensure(
        twice.to_vec().await.map_err(s)? == x.iter().map(|v| v + v).collect::<Vec<_>>(),
        "an AnyExpr of an AnyVector",
    )?;
    if len > 0 {
        y[len / 2] = f64::NAN;
        let b = hpx::from_vec(y.clone(), Distribution::Block)
            .await
            .map_err(s)?;
        let top = (&b + 1.0).max().await.map_err(s)?;
        ensure(
            top.is_some_and(f64::is_nan),
            format!("len {len}: max with a NaN is NaN, got {top:?}"),
        )?;
    } else {
        let b = hpx::from_vec(y.clone(), Distribution::Block)
            .await
            .map_err(s)?;
        ensure(
            (&b + 1.0).max().await.map_err(s)?.is_none(),
            "max of nothing",
        )?;
    }
    let a = hpx::zeros::<f64>(len + 1).await.map_err(s)?;
    let c = hpx::zeros::<f64>(len + 2).await.map_err(s)?;
    let e = (&a * 2.0 + &c).sum().await.err().map(|e| e.to_string());
    ensure(
        e.as_deref().is_some_and(|e| e.contains("shapes")),
        format!("shape mismatch: {e:?}"),
    )?;
    let i = hpx::from_vec(vec![4i64; len + 1], Distribution::Block)
        .await
        .map_err(s)?;
    let zero = hpx::zeros::<i64>(len + 1).await.map_err(s)?;
    let e = (&i / &zero).await.err().map(|e| e.to_string());
    ensure(
        e.as_deref().is_some_and(|e| e.contains("zero")),
        format!("integer division by zero: {e:?}"),
    )?;
    Ok(())
}

#[test]
fn fused_expressions_match_the_operations_one_by_one() {
    const TEST: &str = "fused_expressions_match_the_operations_one_by_one";
    if in_locality() {
        return spmd(|| async {
            if hpx::get_locality_id() == 0 {
                for len in [0usize, 1, 13, 20_000] {
                    check_fused(len).await?;
                }
                println!("RESULT fused ok");
            }
            hpx::barrier().await.map_err(s)?;
            done(TEST);
            Ok(())
        });
    }
    for n in [1, 2, 3, 5] {
        let out = launch(TEST, n);
        out.assert_success().assert_all_done(TEST, n);
        assert_eq!(out.tagged("RESULT fused ok").len(), 1, "{out}");
    }
}

async fn check_2d(rows: usize, cols: usize) -> Result<(), String> {
    let n = hpx::get_num_localities();
    let source: Vec<i64> = (0..(rows * cols) as i64).map(|v| v * 3 - 7).collect();
    let layouts = [
        Distribution::Block,
        Distribution::Cyclic,
        Distribution::Chunks(2),
        Distribution::Grid,
        Distribution::Tiles { rows: 2, cols: 3 },
    ];
    let reference = hpx::array(source.clone())
        .shape((rows, cols))
        .await
        .map_err(s)?;
    for dist in layouts {
        let what = format!("{rows}x{cols} {dist:?} on {n}");
        let a = hpx::array(source.clone())
            .shape((rows, cols))
            .distribution(dist.clone())
            .await
            .map_err(s)?;
        ensure(
            a.shape() == [rows, cols] && a.ndim() == 2,
            format!("{what}: shape"),
        )?;
        ensure(
            a.to_vec().await.map_err(s)? == source,
            format!("{what}: to_vec is row-major"),
        )?;
        if rows > 0 && cols > 0 {
            let v = a.get_at(&[rows - 1, cols / 2]).await.map_err(s)?;
            ensure(
                v == source[(rows - 1) * cols + cols / 2],
                format!("{what}: get_at"),
            )?;
        }
        ensure(
            a.get_at(&[rows, 0]).await.is_err(),
            format!("{what}: bad index"),
        )?;
        // Each partition knows where it sits in the array.
        let mut covered = 0;
        for part in a.partitions() {
            if let Some((offset, extent)) = part.global_box() {
                ensure(
                    extent.iter().product::<usize>() == part.len(),
                    format!("{what}: box of partition {}", part.index()),
                )?;
                if !part.is_empty() {
                    ensure(
                        part.global_offset() == Some(offset[0] * cols + offset[1]),
                        format!("{what}: offset of partition {}", part.index()),
                    )?;
                }
            }
            covered += part.len();
        }
        ensure(covered == rows * cols, format!("{what}: partitions cover"))?;
        for axis in [0, 1] {
            let got = a.sum_axis(axis).await.map_err(s)?;
            let want: Vec<i64> = if axis == 0 {
                (0..cols)
                    .map(|c| (0..rows).map(|r| source[r * cols + c]).sum())
                    .collect()
            } else {
                (0..rows)
                    .map(|r| source[r * cols..(r + 1) * cols].iter().sum())
                    .collect()
            };
            ensure(got == want, format!("{what}: sum along axis {axis}"))?;
            let means = a.mean_axis(axis).await.map_err(s)?;
            let count = if axis == 0 { rows } else { cols } as f64;
            ensure(
                means.len() == want.len()
                    && means
                        .iter()
                        .zip(&want)
                        .all(|(m, w)| close(*m, *w as f64 / count)),
                format!("{what}: mean along axis {axis}: {means:?}"),
            )?;
        }
        ensure(
            a.sum().await.map_err(s)? == source.iter().sum::<i64>(),
            format!("{what}: sum"),
        )?;
        // Broadcast values: a row over every row, a column over every
        // column (each element reads the value at its own position).
        let row: Vec<i64> = (0..cols as i64).map(|c| c * 10 + 1).collect();
        let col: Vec<i64> = (0..rows as i64).map(|r| 1 - r).collect();
        let got = (&a - hpx::Expr::from(&a).broadcast_values(&row, &[cols]))
            .await
            .map_err(s)?;
        let want: Vec<i64> = (0..rows * cols)
            .map(|g| source[g] - row[g % cols])
            .collect();
        ensure(
            got.to_vec().await.map_err(s)? == want,
            format!("{what}: a - row"),
        )?;
        let scaled = (hpx::Expr::from(&a).broadcast_values(&col, &[rows, 1]) * &a)
            .sum()
            .await
            .map_err(s)?;
        let want: i64 = (0..rows * cols).map(|g| col[g / cols] * source[g]).sum();
        ensure(scaled == want, format!("{what}: (column * a).sum()"))?;
        ensure(
            hpx::Expr::from(&a)
                .broadcast_values(&row, &[1, cols, 1])
                .await
                .is_err(),
            format!("{what}: values of a shape that does not broadcast"),
        )?;
        // The transpose, owner to owner, and back.
        let t = a.transpose().await.map_err(s)?;
        let want: Vec<i64> = (0..rows * cols)
            .map(|g| source[(g % rows) * cols + g / rows])
            .collect();
        ensure(
            t.shape() == [cols, rows] && t.to_vec().await.map_err(s)? == want,
            format!("{what}: transpose"),
        )?;
        ensure(
            t.transpose().await.map_err(s)?.to_vec().await.map_err(s)? == source,
            format!("{what}: transpose twice"),
        )?;
        // Arithmetic between a tiled and a row-block array.
        let twice = (&a + &reference).await.map_err(s)?;
        ensure(
            twice.to_vec().await.map_err(s)? == source.iter().map(|v| v * 2).collect::<Vec<_>>(),
            format!("{what}: a + rows"),
        )?;
        let back = a
            .redistribute(LayoutSpec {
                shape: vec![rows, cols],
                distribution: Distribution::Tiles { rows: 3, cols: 1 },
                over: (0..n).rev().map(LocalityId).collect(),
                grid: None,
            })
            .await
            .map_err(s)?;
        ensure(
            back.to_vec().await.map_err(s)? == source,
            format!("{what}: redistribution to other tiles"),
        )?;
        a.inclusive_scan(ReduceOp::Sum)
            .await
            .map_err(s)
            .or_else(|e| {
                // Tiles are not whole rows: a scan of their flat order is refused clearly.
                if matches!(dist, Distribution::Grid | Distribution::Tiles { .. })
                    && e.contains("not supported")
                {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
    }
    Ok(())
}

/// Reductions of a 3-d array over every set of axes, in each 1-d layout
/// reshaped (a view or a copy), against a plain loop over coordinates.
async fn check_axes_of_any_rank() -> Result<(), String> {
    let shape = [3usize, 4, 5];
    let source: Vec<i64> = (0..60).map(|i| (i * 37 % 23) - 11).collect();
    let n = hpx::get_num_localities();
    for dist in layouts_1d(60, n) {
        let a = hpx::from_vec(source.clone(), dist.clone())
            .await
            .map_err(s)?
            .reshape(shape)
            .await
            .map_err(s)?;
        for mask in 0u32..8 {
            let axes: Vec<usize> = (0..3).filter(|k| mask >> k & 1 == 1).collect();
            let kept: Vec<usize> = (0..3).filter(|k| !axes.contains(k)).collect();
            let slots: usize = kept.iter().map(|&k| shape[k]).product();
            let mut sums = vec![0i64; slots];
            let mut maxes = vec![i64::MIN; slots];
            for (g, x) in source.iter().enumerate() {
                let coords = [g / 20, g / 5 % 4, g % 5];
                let slot = kept.iter().fold(0, |acc, &k| acc * shape[k] + coords[k]);
                sums[slot] += x;
                maxes[slot] = maxes[slot].max(*x);
            }
            let what = format!("{dist:?} over axes {axes:?}");
            let got = a.reduce_axes(&axes, ReduceOp::Sum).await.map_err(s)?;
            ensure(
                got == sums,
                format!("{what}: sums {got:?}, expected {sums:?}"),
            )?;
            let got = a.reduce_axes(&axes, ReduceOp::Max).await.map_err(s)?;
            ensure(got == maxes, format!("{what}: maxima {got:?}"))?;
        }
        for axes in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            let p = a.permute_axes(&axes).await.map_err(s)?;
            let got = p.to_vec().await.map_err(s)?;
            let dims = [shape[axes[0]], shape[axes[1]], shape[axes[2]]];
            let want: Vec<i64> = (0..60)
                .map(|t| {
                    let to = [t / (dims[1] * dims[2]), t / dims[2] % dims[1], t % dims[2]];
                    let mut from = [0; 3];
                    for (i, &ax) in axes.iter().enumerate() {
                        from[ax] = to[i];
                    }
                    source[from[0] * 20 + from[1] * 5 + from[2]]
                })
                .collect();
            ensure(
                p.shape() == dims && got == want,
                format!("{dist:?}: permute_axes({axes:?})"),
            )?;
        }
        for axis in 0..3 {
            // A new array of the same values in this layout, scanned in place.
            let b = hpx::from_vec(source.clone(), dist.clone())
                .await
                .map_err(s)?
                .reshape(shape)
                .await
                .map_err(s)?;
            b.inclusive_scan_axis(axis, ReduceOp::Sum)
                .await
                .map_err(s)?;
            let stride: usize = shape[axis + 1..].iter().product();
            let mut want = source.clone();
            for g in 0..60 {
                if g / stride % shape[axis] > 0 {
                    want[g] += want[g - stride];
                }
            }
            let got = b.to_vec().await.map_err(s)?;
            ensure(
                got == want,
                format!("{dist:?}: scan along axis {axis}: {got:?}"),
            )?;
        }
        ensure(
            a.permute_axes(&[0, 0, 1]).await.is_err() && a.permute_axes(&[1, 0]).await.is_err(),
            format!("{dist:?}: bad permutations are errors"),
        )?;
        ensure(
            a.reduce_axes(&[3], ReduceOp::Sum).await.is_err()
                && a.reduce_axes(&[1, 1], ReduceOp::Sum).await.is_err(),
            format!("{dist:?}: bad axes are errors"),
        )?;
    }
    Ok(())
}

/// `a @ b` with the left operand in each 1-d layout reshaped (whole rows
/// or not), the right one distributed or given as values, against a loop.
async fn check_matmul() -> Result<(), String> {
    let (m, k, n) = (7usize, 5usize, 3usize);
    let left: Vec<f64> = (0..m * k).map(|i| (i % 7) as f64 - 3.0).collect();
    let right: Vec<f64> = (0..k * n).map(|i| (i % 5) as f64 * 0.5 - 1.0).collect();
    let want: Vec<f64> = (0..m * n)
        .map(|ij| {
            (0..k)
                .map(|p| left[ij / n * k + p] * right[p * n + ij % n])
                .sum()
        })
        .collect();
    let b = hpx::from_vec(right.clone(), Distribution::Cyclic)
        .await
        .map_err(s)?
        .reshape([k, n])
        .await
        .map_err(s)?;
    for dist in layouts_1d(m * k, hpx::get_num_localities()) {
        let a = hpx::from_vec(left.clone(), dist.clone())
            .await
            .map_err(s)?
            .reshape([m, k])
            .await
            .map_err(s)?;
        for (how, c) in [
            ("distributed", a.matmul(&b).await.map_err(s)?),
            (
                "values",
                a.matmul_values(right.clone(), n).await.map_err(s)?,
            ),
        ] {
            let got = c.to_vec().await.map_err(s)?;
            ensure(
                c.shape() == [m, n] && got.len() == want.len(),
                format!("{dist:?} {how}: shape {:?}", c.shape()),
            )?;
            ensure(
                got.iter().zip(&want).all(|(g, w)| close(*g, *w)),
                format!("{dist:?} {how}: {got:?}, expected {want:?}"),
            )?;
        }
        ensure(
            a.matmul(&a).await.is_err() && a.matmul_values(vec![1.0; 4], 2).await.is_err(),
            format!("{dist:?}: mismatched shapes are errors"),
        )?;
    }
    Ok(())
}

#[test]
fn two_d_arrays_in_rows_and_tiles() {
    const TEST: &str = "two_d_arrays_in_rows_and_tiles";
    if in_locality() {
        return spmd(|| async {
            if hpx::get_locality_id() == 0 {
                for (r, c) in [(7, 5), (1, 13), (6, 1), (0, 4), (3, 0), (9, 10)] {
                    check_2d(r, c).await?;
                }
                check_axes_of_any_rank().await?;
                check_matmul().await?;
                let n = hpx::get_num_localities() as usize;
                // A 2 x 2 grid needs 4 localities; 1 x n is always possible.
                let grid = hpx::zeros::<f64>((4, 4))
                    .distribution(Distribution::Grid)
                    .grid(2, 2)
                    .await;
                ensure(
                    grid.is_ok() == (n >= 4),
                    format!("2 x 2 grid on {n} localities: {grid:?}"),
                )?;
                ensure(
                    hpx::zeros::<f64>(10)
                        .distribution(Distribution::Grid)
                        .await
                        .is_err(),
                    "tiles of a 1-d array",
                )?;
                println!("RESULT 2d ok");
            }
            hpx::barrier().await.map_err(s)?;
            done(TEST);
            Ok(())
        });
    }
    for n in [1, 2, 4, 5] {
        let out = launch(TEST, n);
        out.assert_success().assert_all_done(TEST, n);
        assert_eq!(out.tagged("RESULT 2d ok").len(), 1, "{out}");
    }
}

#[test]
fn float_sums_have_the_same_bits_for_any_locality_count_and_layout() {
    const TEST: &str = "float_sums_have_the_same_bits_for_any_locality_count_and_layout";
    if in_locality() {
        return spmd(|| async {
            if hpx::get_locality_id() == 0 {
                let n = hpx::get_num_localities();
                let len = 100_003;
                let x = values(len, 5);
                let mut seen = Vec::new();
                let mut dots = Vec::new();
                let other = hpx::from_vec(values(len, 6), Distribution::Cyclic)
                    .await
                    .map_err(s)?;
                for dist in layouts_1d(len, n) {
                    let a = hpx::from_vec(x.clone(), dist).await.map_err(s)?;
                    dots.push(a.dot(&other).await.map_err(s)?.to_bits());
                    let sum = a.sum().await.map_err(s)?;
                    let mean = a.mean().await.map_err(s)?;
                    seen.push((sum.to_bits(), mean.to_bits()));
                    let single = a.astype::<f32>().await.map_err(s)?;
                    seen.push((
                        u64::from(single.sum().await.map_err(s)?.to_bits()),
                        single.mean().await.map_err(s)?.to_bits() as u64,
                    ));
                }
                let f64s: Vec<_> = seen.iter().step_by(2).collect();
                let f32s: Vec<_> = seen.iter().skip(1).step_by(2).collect();
                ensure(
                    f64s.windows(2).all(|w| w[0] == w[1]) && f32s.windows(2).all(|w| w[0] == w[1]),
                    format!("sums differ between layouts: {seen:x?}"),
                )?;
                ensure(
                    dots.windows(2).all(|w| w[0] == w[1]),
                    format!("dot products differ between layouts: {dots:x?}"),
                )?;
                println!(
                    "RESULT bits {:016x} {:016x} {:08x} {:016x}",
                    f64s[0].0, f64s[0].1, f32s[0].0, dots[0]
                );
                // The exact sum: a plain loop loses the small terms.
                let a = hpx::from_vec(vec![1e100f64, 1.0, -1e100, 0.5], Distribution::Cyclic)
                    .await
                    .map_err(s)?;
                ensure(a.sum().await.map_err(s)? == 1.5, "cancellation")?;
            }
            hpx::barrier().await.map_err(s)?;
            done(TEST);
            Ok(())
        });
    }
    let mut bits = Vec::new();
    for n in [1, 2, 3, 4, 8] {
        let out = launch(TEST, n);
        out.assert_success().assert_all_done(TEST, n);
        let line = out.tagged("RESULT bits");
        assert_eq!(line.len(), 1, "{out}");
        bits.push((n, line[0].clone()));
    }
    assert!(
        bits.windows(2).all(|w| w[0].1 == w[1].1),
        "the float sums differ between locality counts: {bits:?}"
    );
    // The correctly rounded sum of the data, computed here in one process.
    let x = values(100_003, 5);
    let mut partials: Vec<f64> = Vec::new();
    for v in x {
        // Shewchuk's exact partials (Python's math.fsum).
        let mut v = v;
        let mut kept = Vec::with_capacity(partials.len() + 1);
        for mut p in partials {
            if v.abs() < p.abs() {
                std::mem::swap(&mut v, &mut p);
            }
            let hi = v + p;
            let lo = p - (hi - v);
            if lo != 0.0 {
                kept.push(lo);
            }
            v = hi;
        }
        kept.push(v);
        partials = kept;
    }
    let mut total = partials.pop().unwrap_or(0.0);
    while let Some(p) = partials.pop() {
        let (x, y) = (total, p);
        total = x + y;
        let lo = y - (total - x);
        if lo != 0.0 {
            if let Some(next) = partials.last() {
                if (lo < 0.0) == (*next < 0.0) {
                    let y = lo * 2.0;
                    let x = total + y;
                    if y == x - total {
                        total = x;
                    }
                }
            }
            break;
        }
    }
    let expected = format!("{:016x}", total.to_bits());
    assert!(
        bits[0].1.starts_with(&expected),
        "sum {} is not the correctly rounded {expected}",
        bits[0].1
    );
}

#[test]
fn collective_creation_makes_one_shared_array() {
    const TEST: &str = "collective_creation_makes_one_shared_array";
    if in_locality() {
        return spmd(|| async {
            let me = hpx::get_locality_id();
            let n = hpx::get_num_localities() as usize;
            let len = 1000 * n + 7;
            let a = hpx::zeros::<u32>(len)
                .chunks(100)
                .collective()
                .await
                .map_err(s)?;
            ensure(
                a.num_partitions() == len.div_ceil(100),
                "partitions, not localities",
            )?;
            // Each locality writes its partitions in place.
            for part in a.local_partitions() {
                let mut view = part.view_mut().await.map_err(s)?;
                view.iter_mut().for_each(|v| *v = me + 1);
            }
            match a.local_partition().await {
                Ok(view) => ensure(
                    a.local_partitions().len() <= 1
                        && view.len() == a.local_partitions().first().map_or(0, |p| p.len()),
                    "local_partition with one or none",
                )?,
                Err(e) => ensure(
                    a.local_partitions().len() > 1 && e.to_string().contains("local_partitions()"),
                    format!("local_partition with several: {e}"),
                )?,
            }
            hpx::barrier().await.map_err(s)?;
            let all = a.to_vec().await.map_err(s)?;
            let owners = a.localities();
            let expected: u64 = a
                .partition_sizes()
                .iter()
                .zip(&owners)
                .map(|(size, l)| *size as u64 * u64::from(l.0 + 1))
                .sum();
            ensure(
                all.iter().map(|v| u64::from(*v)).sum::<u64>() == expected,
                "every locality sees every write",
            )?;
            ensure(a.sum().await.map_err(s)? == expected, "sum")?;
            // Calls that disagree fail everywhere, naming the difference.
            let shape = if me == n as u32 - 1 && n > 1 { 11 } else { 10 };
            let mismatch = hpx::ones::<f64>(shape).collective().await;
            if n > 1 {
                match mismatch {
                    Err(Error::CollectiveMismatch(m)) => {
                        ensure(m.contains("shape [11]") && m.contains("shape [10]"), m)?
                    }
                    other => return Err(format!("mismatched creation gave {other:?}")),
                }
            } else {
                ensure(mismatch.is_ok(), "one locality cannot disagree")?;
            }
            // A bad argument on one locality fails the call everywhere
            // instead of leaving the others waiting.
            let std = if me == 0 { -1.0 } else { 1.0 };
            match hpx::random::normal::<f64>(100, 1, 0.0, std)
                .collective()
                .await
            {
                Err(e) => ensure(e.to_string().contains("std >= 0"), format!("bad std: {e}"))?,
                Ok(_) => return Err("a creation with a negative std succeeded".into()),
            }
            // A handle broadcast from the root is weak until kept alive;
            // then it outlives the root's own.
            let b = if me == 0 {
                Some(
                    hpx::full::<i64>(50, 3)
                        .distribution(Distribution::Cyclic)
                        .await
                        .map_err(s)?,
                )
            } else {
                None
            };
            let shared = hpx::broadcast(b.clone(), 0).await.map_err(s)?;
            shared.keep_alive().await.map_err(s)?;
            hpx::barrier().await.map_err(s)?;
            drop(b);
            hpx::barrier().await.map_err(s)?;
            ensure(shared.sum().await.map_err(s)? == 150, "kept-alive handle")?;
            hpx::barrier().await.map_err(s)?;
            // Without keep_alive, the error names the array and the cause.
            let c = if me == 0 {
                Some(
                    hpx::full::<i64>(20, 1)
                        .distribution(Distribution::Local)
                        .await
                        .map_err(s)?,
                )
            } else {
                None
            };
            let weak = hpx::broadcast(c.clone(), 0).await.map_err(s)?;
            hpx::barrier().await.map_err(s)?;
            // The root's copy shares the root's own handle: both go.
            let weak = (me != 0).then_some(weak);
            drop(c);
            hpx::barrier().await.map_err(s)?;
            if let Some(weak) = &weak {
                match weak.sum().await {
                    Err(e) => ensure(
                        e.to_string()
                            .contains("of the i64 array of shape [20] no longer exists")
                            && e.to_string().contains("keep_alive"),
                        format!("gone array: {e}"),
                    )?,
                    Ok(v) => return Err(format!("a freed array summed to {v}")),
                }
            }
            drop(weak);
            hpx::barrier().await.map_err(s)?;
            println!("RESULT collective ok {me}");
            done(TEST);
            Ok(())
        });
    }
    for n in [1, 3, 4] {
        let out = launch(TEST, n);
        out.assert_success().assert_all_done(TEST, n);
        assert_eq!(
            out.tagged("RESULT collective ok").len(),
            n as usize,
            "{out}"
        );
    }
}

/// Bad input gets a clear error.
#[test]
fn bad_array_input_is_a_clear_error() {
    const TEST: &str = "bad_array_input_is_a_clear_error";
    if in_locality() {
        return spmd(|| async {
            if hpx::get_locality_id() == 0 {
                let a = hpx::zeros::<f64>(10).await.map_err(s)?;
                let b = hpx::zeros::<f64>(11).await.map_err(s)?;
                let e = (&a + &b)
                    .await
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                ensure(e.contains("shapes [10] and [11]"), format!("shapes: {e}"))?;
                let e = a
                    .sum_axis(1)
                    .await
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                ensure(e.contains("axis 1 is out of range"), format!("axis: {e}"))?;
                for bad in [
                    hpx::zeros::<f64>(10).chunks(0).await.err(),
                    hpx::zeros::<f64>(10).num_partitions(0).await.err(),
                    hpx::zeros::<f64>(10).on(&[LocalityId(999)]).await.err(),
                    hpx::zeros::<f64>(10).shape((3, 3)).await.err(),
                    hpx::zeros::<f64>(1 << 30).chunks(1).await.err(),
                    hpx::random::uniform::<f64>(10, 1, 2.0, 1.0).await.err(),
                    hpx::arange(0i32, 10, 0).err(),
                ] {
                    ensure(bad.is_some(), "a bad creation succeeded")?;
                }
            }
            hpx::barrier().await.map_err(s)?;
            done(TEST);
            Ok(())
        });
    }
    let out = launch(TEST, 2);
    out.assert_success().assert_all_done(TEST, 2);
}

#[test]
fn the_array_examples_check_themselves() {
    for (n, tile) in [(1, "0"), (3, "0"), (4, "0"), (5, "7"), (4, "5")] {
        let args: Vec<String> = ["40", "33", "25", tile].map(String::from).to_vec();
        let out = hpxrun_program(n, &example("heat_2d"), &args, &[]);
        out.assert_success();
        assert!(
            out.stdout.contains("identical to the serial run (bitwise)"),
            "heat_2d on {n} localities, tiles {tile}: {out}"
        );
    }
    let out = hpxrun_program(4, &example("seed_walkthrough"), &[], &[]);
    out.assert_success();
    for l in 0..4 {
        for line in [
            "chunks=1000: num_partitions=10 partition_sizes=[1000, 1000",
            "block: is_distributed=true num_partitions=4 partition_sizes=[2500, 2500, 2500, 2500]",
            "gathered length 10000",
            "(a + b).sum() = 50005000 (serial 50005000)",
        ] {
            assert_eq!(out.tagged_by(l, line).len(), 1, "{line} on {l}: {out}");
        }
    }
}

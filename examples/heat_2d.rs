//! 2-d heat diffusion on a tiled array (ScaLAPACK-style blocks over a grid
//! of localities) with halo exchange, checked against a serial run.
//!
//! Every locality makes the same collective calls and works on the tiles it
//! owns. Each step it asks the owners of the four neighbouring tiles for
//! their facing edges (one message per edge, answered from a zero-copy view
//! where the tile lives), updates its tiles into the second array in place,
//! and joins an `all_reduce` of the largest change, which also keeps the
//! steps in lockstep. At the end locality 0 compares the gathered result
//! with a serial run of the same arithmetic: the bits must be identical.
//!
//! ```text
//! cargo build --release --examples --bins
//! target/release/hpxrun -l 4 target/release/examples/heat_2d [ROWS] [COLS] [STEPS] [TILE]
//! ```
//!
//! With `TILE` > 0 the plate is cut into `TILE` × `TILE` tiles placed
//! block-cyclically over the locality grid (several tiles per locality);
//! without, into one tile per locality.

use hpx::prelude::*;
use hpx::{Error, PartitionRef};

/// Heat transfer coefficient (dt · k / dx², stable below 0.25 in 2-d).
const K: f64 = 0.2;

/// Which edge of a tile.
const TOP: u8 = 0;
const BOTTOM: u8 = 1;
const LEFT: u8 = 2;
const RIGHT: u8 = 3;

/// Initial temperature: a hot square off the centre of a cold plate.
fn initial(rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for r in rows / 4..rows / 2 {
        for c in cols / 3..cols / 2 {
            t[r * cols + c] = 100.0;
        }
    }
    t
}

/// The new temperature of a point from its four neighbours.
fn heat(middle: f64, up: f64, down: f64, left: f64, right: f64) -> f64 {
    middle + K * (up + down + left + right - 4.0 * middle)
}

/// The same computation on one process (the plate's border stays fixed).
fn serial(rows: usize, cols: usize, steps: usize) -> Vec<f64> {
    let mut cur = initial(rows, cols);
    let mut next = cur.clone();
    for _ in 0..steps {
        for r in 1..rows.saturating_sub(1) {
            for c in 1..cols.saturating_sub(1) {
                let i = r * cols + c;
                next[i] = heat(cur[i], cur[i - cols], cur[i + cols], cur[i - 1], cur[i + 1]);
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    cur
}

/// One edge of a tile, read where the tile lives.
#[hpx::action]
async fn tile_edge(part: PartitionRef<f64>, side: u8) -> Result<Vec<f64>, Error> {
    let (_, extent) = part
        .global_box()
        .ok_or_else(|| Error::BadArgument("a tile is a box".into()))?;
    let (h, w) = (extent[0], extent[1]);
    let view = part.view().await?;
    Ok(match side {
        TOP => view[..w].to_vec(),
        BOTTOM => view[(h - 1) * w..].to_vec(),
        LEFT => (0..h).map(|k| view[k * w]).collect(),
        _ => (0..h).map(|k| view[k * w + w - 1]).collect(),
    })
}

/// The facing edge of the tile next to `part` on `side` (None at the plate's border).
async fn halo(
    array: &PartitionedVector<f64>,
    part: &PartitionRef<f64>,
    side: u8,
) -> Result<Option<Vec<f64>>, Error> {
    let (offset, extent) = part
        .global_box()
        .ok_or_else(|| Error::BadArgument("a tile is a box".into()))?;
    let cols = array.shape()[1];
    let (r0, c0) = (offset[0], offset[1]);
    let (row, col, facing) = match side {
        TOP if r0 > 0 => (r0 - 1, c0, BOTTOM),
        BOTTOM if r0 + extent[0] < array.shape()[0] => (r0 + extent[0], c0, TOP),
        LEFT if c0 > 0 => (r0, c0 - 1, RIGHT),
        RIGHT if c0 + extent[1] < cols => (r0, c0 + extent[1], LEFT),
        _ => return Ok(None),
    };
    let neighbour = array.layout().locate(row * cols + col)?.partition;
    let tile = array.partitions()[neighbour].clone();
    let owner = tile.locality();
    Ok(Some(hpx::async_at(owner, tile_edge, (tile, facing)).await?))
}

/// Updates this locality's tile `index` of `cur` into `next`; returns the largest change.
async fn step_tile(
    cur: &PartitionedVector<f64>,
    next: &PartitionedVector<f64>,
    index: usize,
) -> Result<f64, Error> {
    let part = cur.partitions()[index].clone();
    let (rows, cols) = (cur.shape()[0], cur.shape()[1]);
    let (offset, extent) = part
        .global_box()
        .ok_or_else(|| Error::BadArgument("a tile is a box".into()))?;
    let (h, w) = (extent[0], extent[1]);
    if h == 0 || w == 0 {
        return Ok(0.0);
    }
    let (up, down, left, right) = futures::try_join!(
        halo(cur, &part, TOP),
        halo(cur, &part, BOTTOM),
        halo(cur, &part, LEFT),
        halo(cur, &part, RIGHT)
    )?;
    let old = part.view().await?;
    let mut new = next.partitions()[index].view_mut().await?;
    let mut change: f64 = 0.0;
    for k in 0..h {
        for j in 0..w {
            let (r, c) = (offset[0] + k, offset[1] + j);
            let i = k * w + j;
            if r == 0 || c == 0 || r == rows - 1 || c == cols - 1 {
                new[i] = old[i];
                continue;
            }
            let u = if k > 0 {
                old[i - w]
            } else {
                up.as_ref().map_or(0.0, |e| e[j])
            };
            let d = if k + 1 < h {
                old[i + w]
            } else {
                down.as_ref().map_or(0.0, |e| e[j])
            };
            let l = if j > 0 {
                old[i - 1]
            } else {
                left.as_ref().map_or(0.0, |e| e[k])
            };
            let rt = if j + 1 < w {
                old[i + 1]
            } else {
                right.as_ref().map_or(0.0, |e| e[k])
            };
            new[i] = heat(old[i], u, d, l, rt);
            change = change.max((new[i] - old[i]).abs());
        }
    }
    Ok(change)
}

fn arg(i: usize, default: usize) -> Result<usize, Error> {
    match hpx::args().get(i) {
        Some(a) => a
            .parse()
            .map_err(|e| Error::BadArgument(format!("argument {i} ({a:?}): {e}"))),
        None => Ok(default),
    }
}

#[hpx::main]
async fn main() -> Result<(), Error> {
    let rows = arg(1, 256)?;
    let cols = arg(2, 256)?;
    let steps = arg(3, 100)?;
    let distribution = match arg(4, 0)? {
        0 => Distribution::Grid,
        t => Distribution::Tiles { rows: t, cols: t },
    };
    let me = hpx::get_locality_id();
    let start = std::time::Instant::now();
    let plate = initial(rows, cols);
    let mut cur = hpx::array(plate.clone())
        .shape((rows, cols))
        .distribution(distribution.clone())
        .collective()
        .await?;
    let mut next = hpx::array(plate)
        .shape((rows, cols))
        .distribution(distribution.clone())
        .collective()
        .await?;
    let mine: Vec<usize> = cur.local_partitions().iter().map(|p| p.index()).collect();
    let mut residual = 0.0;
    for _ in 0..steps {
        let mut change: f64 = 0.0;
        for &index in &mine {
            change = change.max(step_tile(&cur, &next, index).await?);
        }
        residual = hpx::all_reduce(change, ReduceOp::Max).await?;
        std::mem::swap(&mut cur, &mut next);
    }
    if me == 0 {
        let tiles: Vec<String> = cur
            .partitions()
            .iter()
            .map(|p| format!("{:?}@{}", p.global_box().map(|b| b.1), p.locality()))
            .collect();
        println!(
            "{rows} x {cols} plate in {} tiles {} over {} localities, {steps} steps in {:.3} s; last change {residual:.3e}",
            cur.num_partitions(),
            tiles.join(" "),
            hpx::get_num_localities(),
            start.elapsed().as_secs_f64()
        );
        let result = cur.to_vec().await?;
        let expected = serial(rows, cols, steps);
        let same = result
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            return Err(Error::BadArgument(
                "the distributed result differs from the serial run".into(),
            ));
        }
        println!(
            "identical to the serial run (bitwise); total heat {}",
            cur.sum().await?
        );
    }
    hpx::barrier().await?;
    Ok(())
}

//! How a distributed array's elements map to partitions and localities: plain
//! arithmetic, tested without any runtime.
//!
//! An array has a shape (row-major, any rank). Its partitions are not its
//! localities: a layout cuts the array into partitions (contiguous blocks of
//! rows, round-robin chunks of rows, or 2-d tiles) and places each partition
//! on a locality of a placement list, round robin, as HPX's
//! `container_layout` does. Every partition stores its elements in the
//! array's row-major order restricted to the partition.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use hpx_runtime::{Error, LocalityId, Result};

/// The most partitions one array may have (a layout from the network
/// cannot make a process allocate without bound).
pub const MAX_PARTITIONS: usize = 1 << 20;

/// How the elements of an array are spread over partitions and localities.
/// "Rows" are the slices along axis 0 (single elements for a 1-d array).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distribution {
    /// All elements in one partition on the creating locality.
    Local,
    /// One contiguous block of rows per locality; row counts differ by at most one.
    Block,
    /// Rows round robin, one by one, one partition per locality holding
    /// every N-th row.
    Cyclic,
    /// Chunks of `k` rows round robin, one partition per locality holding
    /// every N-th chunk.
    BlockCyclic(usize),
    /// Contiguous partitions of `k` rows each (the last may be shorter),
    /// placed round robin: `ceil(rows / k)` partitions (Dask's and HPXPy's
    /// `chunks=k`).
    Chunks(usize),
    /// `p` contiguous partitions of rows (counts differ by at most one),
    /// placed round robin (HPX's `container_layout(p)`).
    Partitions(usize),
    /// A 2-d array cut into a grid of tiles, one tile per locality of the
    /// locality grid (ScaLAPACK's block distribution).
    Grid,
    /// A 2-d array cut into tiles of `rows` × `cols` elements, placed
    /// block-cyclically over the locality grid (ScaLAPACK's block-cyclic
    /// distribution): tile `(i, j)` lives on grid cell `(i % pr, j % pc)`.
    Tiles {
        /// Rows per tile.
        rows: usize,
        /// Columns per tile.
        cols: usize,
    },
    /// Contiguous partitions of the given element counts on the given
    /// localities, in order (each a whole number of rows).
    Explicit {
        /// Elements in each partition.
        sizes: Vec<usize>,
        /// The locality of each partition.
        localities: Vec<LocalityId>,
    },
}

/// What a layout is made from: the shape, the distribution, the localities
/// partitions are placed on (in order) and, for 2-d tiles, the locality
/// grid. A layout travels as its spec and is rebuilt (and so checked) on
/// arrival.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutSpec {
    /// The array's shape (row-major).
    pub shape: Vec<usize>,
    /// How elements are spread.
    pub distribution: Distribution,
    /// The localities partitions go to, round robin (the first only for
    /// [`Distribution::Local`]; ignored by [`Distribution::Explicit`]).
    pub over: Vec<LocalityId>,
    /// The locality grid (rows × columns) of tiled layouts; None picks the
    /// most nearly square grid of `over`.
    pub grid: Option<(usize, usize)>,
}

/// How flat indices map to partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Map {
    /// Partition `p` holds the flat indices `offsets[p]..offsets[p] + sizes[p]`.
    Contiguous { offsets: Vec<usize> },
    /// Chunks of `chunk` flat indices go round robin over the partitions.
    RoundRobin { chunk: usize },
    /// 2-d tiles: tile row `i` covers rows `row_starts[i]..row_starts[i + 1]`,
    /// tile column `j` covers `col_starts[j]..col_starts[j + 1]`; partition
    /// `i * tile_cols + j`.
    Tiles {
        row_starts: Vec<usize>,
        col_starts: Vec<usize>,
    },
}

/// The placement of an array: its shape, its partitions and their owners.
/// Index arithmetic is O(1), O(log p) for contiguous and tiled layouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    spec: LayoutSpec,
    len: usize,
    localities: Vec<LocalityId>,
    sizes: Vec<usize>,
    map: Map,
}

impl Serialize for Layout {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.spec.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Layout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Layout::from_spec(LayoutSpec::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Where one element lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// The partition.
    pub partition: usize,
    /// The index inside the partition.
    pub local: usize,
}

/// A run of elements that are consecutive both in the array and in one
/// partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Flat index of the first element in the array.
    pub global: usize,
    /// Index of the first element in the partition.
    pub local: usize,
    /// Number of elements.
    pub len: usize,
}

fn bad(message: impl Into<String>) -> Error {
    Error::BadArgument(message.into())
}

/// `n` items split into `parts` counts differing by at most one.
fn balanced(n: usize, parts: usize) -> impl Iterator<Item = usize> {
    (0..parts).map(move |i| n / parts + usize::from(i < n % parts))
}

/// Start positions (with the end appended) of consecutive counts.
fn starts(counts: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut out = vec![0];
    let mut at = 0usize;
    for c in counts {
        at += c;
        out.push(at);
    }
    out
}

/// The most nearly square grid of `p` cells: `pr × pc` with `pr <= pc`.
pub(crate) fn default_grid(p: usize) -> (usize, usize) {
    let p = p.max(1);
    let mut pr = 1;
    let mut d = 1;
    while d * d <= p {
        if p % d == 0 {
            pr = d;
        }
        d += 1;
    }
    (pr, p / pr)
}

/// Elements of partition `i` of `p` when chunks of `k` go round robin.
fn cyclic_size(len: usize, p: usize, k: usize, i: usize) -> usize {
    let chunks = len / k;
    let rest = len % k;
    let full = chunks / p + usize::from(i < chunks % p);
    full * k + if chunks % p == i { rest } else { 0 }
}

fn check_count(what: &str, count: usize) -> Result<()> {
    if count > MAX_PARTITIONS {
        return Err(bad(format!(
            "{what} makes {count} partitions, more than the {MAX_PARTITIONS} allowed"
        )));
    }
    Ok(())
}

impl Layout {
    /// A 1-d layout of `len` elements over localities `0..num_localities`,
    /// created on `here` (where a [`Distribution::Local`] array lives).
    pub fn new(
        len: usize,
        distribution: Distribution,
        num_localities: u32,
        here: LocalityId,
    ) -> Result<Layout> {
        let over = match distribution {
            Distribution::Local => vec![here],
            _ => (0..num_localities.max(1)).map(LocalityId).collect(),
        };
        Layout::from_spec(LayoutSpec {
            shape: vec![len],
            distribution,
            over,
            grid: None,
        })
    }

    /// The layout a spec describes, or why there is none.
    pub fn from_spec(spec: LayoutSpec) -> Result<Layout> {
        if spec.shape.is_empty() {
            return Err(bad("an array needs at least one dimension"));
        }
        let len = spec
            .shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| bad(format!("shape {:?} has too many elements", spec.shape)))?;
        let p = spec.over.len();
        if p == 0 && !matches!(spec.distribution, Distribution::Explicit { .. }) {
            return Err(bad("no locality to place the partitions on"));
        }
        check_count("the placement list", p)?;
        let rows = spec.shape[0];
        let row_len = spec.shape[1..]
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| bad(format!("shape {:?} has too many elements", spec.shape)))?;
        let round_robin =
            |count: usize| -> Vec<LocalityId> { (0..count).map(|i| spec.over[i % p]).collect() };
        let contiguous = |row_counts: Vec<usize>| {
            let sizes: Vec<usize> = row_counts.iter().map(|r| r * row_len).collect();
            let offsets = starts(sizes.iter().copied());
            (
                round_robin(sizes.len()),
                sizes,
                Map::Contiguous {
                    offsets: offsets[..offsets.len() - 1].to_vec(),
                },
            )
        };
        let (localities, sizes, map) = match &spec.distribution {
            Distribution::Local => (
                vec![spec.over[0]],
                vec![len],
                Map::Contiguous { offsets: vec![0] },
            ),
            Distribution::Block => contiguous(balanced(rows, p).collect()),
            Distribution::Partitions(0) => {
                return Err(bad("an array needs at least one partition"))
            }
            Distribution::Partitions(count) => {
                check_count("num_partitions", *count)?;
                contiguous(balanced(rows, *count).collect())
            }
            Distribution::Chunks(0) | Distribution::BlockCyclic(0) => {
                return Err(bad("chunks must hold at least one row"))
            }
            Distribution::Chunks(k) => {
                let count = rows.div_ceil(*k).max(1);
                check_count(&format!("chunks of {k}"), count)?;
                contiguous(
                    (0..count)
                        .map(|i| (*k).min(rows.saturating_sub(i * k)))
                        .collect(),
                )
            }
            Distribution::Cyclic | Distribution::BlockCyclic(_) => {
                let k = match spec.distribution {
                    Distribution::BlockCyclic(k) => k,
                    _ => 1,
                };
                let chunk = k.saturating_mul(row_len);
                if chunk == 0 {
                    // No elements: every partition is empty.
                    contiguous(vec![0; p])
                } else {
                    (
                        spec.over.clone(),
                        (0..p).map(|i| cyclic_size(len, p, chunk, i)).collect(),
                        Map::RoundRobin { chunk },
                    )
                }
            }
            Distribution::Grid | Distribution::Tiles { .. } => {
                if spec.shape.len() != 2 {
                    return Err(bad(format!(
                        "tiles need a 2-d array, the shape is {:?}",
                        spec.shape
                    )));
                }
                let (pr, pc) = spec.grid.unwrap_or_else(|| default_grid(p));
                if pr == 0 || pc == 0 || pr.saturating_mul(pc) > p {
                    return Err(bad(format!(
                        "a {pr} × {pc} locality grid needs {} localities, there are {p}",
                        pr.saturating_mul(pc)
                    )));
                }
                let cols = spec.shape[1];
                let (row_starts, col_starts) = match spec.distribution {
                    Distribution::Tiles { rows: 0, .. } | Distribution::Tiles { cols: 0, .. } => {
                        return Err(bad("tiles must hold at least one row and one column"))
                    }
                    Distribution::Tiles { rows: r, cols: c } => {
                        let (tr, tc) = (rows.div_ceil(r).max(1), cols.div_ceil(c).max(1));
                        check_count("tiles", tr.saturating_mul(tc))?;
                        (
                            starts((0..tr).map(|i| r.min(rows.saturating_sub(i * r)))),
                            starts((0..tc).map(|j| c.min(cols.saturating_sub(j * c)))),
                        )
                    }
                    _ => (starts(balanced(rows, pr)), starts(balanced(cols, pc))),
                };
                let (tr, tc) = (row_starts.len() - 1, col_starts.len() - 1);
                let mut localities = Vec::with_capacity(tr * tc);
                let mut sizes = Vec::with_capacity(tr * tc);
                for i in 0..tr {
                    for j in 0..tc {
                        localities.push(spec.over[(i % pr) * pc + j % pc]);
                        sizes.push(
                            (row_starts[i + 1] - row_starts[i])
                                * (col_starts[j + 1] - col_starts[j]),
                        );
                    }
                }
                (
                    localities,
                    sizes,
                    Map::Tiles {
                        row_starts,
                        col_starts,
                    },
                )
            }
            Distribution::Explicit { sizes, localities } => {
                if sizes.len() != localities.len() {
                    return Err(bad(format!(
                        "explicit distribution: {} sizes but {} localities",
                        sizes.len(),
                        localities.len()
                    )));
                }
                if sizes.is_empty() {
                    return Err(bad("explicit distribution without partitions"));
                }
                check_count("the explicit distribution", sizes.len())?;
                let total = sizes.iter().try_fold(0usize, |a, s| a.checked_add(*s));
                if total != Some(len) {
                    return Err(bad(format!(
                        "explicit distribution: sizes add up to {total:?}, the array has {len} elements"
                    )));
                }
                if row_len > 1 {
                    if let Some(s) = sizes.iter().find(|s| *s % row_len != 0) {
                        return Err(bad(format!(
                            "explicit distribution: a partition of {s} elements is not a whole \
                             number of rows of {row_len}"
                        )));
                    }
                }
                let offsets = starts(sizes.iter().copied());
                (
                    localities.clone(),
                    sizes.clone(),
                    Map::Contiguous {
                        offsets: offsets[..offsets.len() - 1].to_vec(),
                    },
                )
            }
        };
        Ok(Layout {
            spec,
            len,
            localities,
            sizes,
            map,
        })
    }

    /// Checks that every partition's locality is below `num_localities`.
    pub fn check_localities(&self, num_localities: u32) -> Result<()> {
        match self.localities.iter().find(|l| l.0 >= num_localities) {
            Some(l) => Err(Error::NoSuchLocality(*l)),
            None => Ok(()),
        }
    }

    /// What the layout was made from.
    pub fn spec(&self) -> &LayoutSpec {
        &self.spec
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shape (row-major).
    pub fn shape(&self) -> &[usize] {
        &self.spec.shape
    }

    /// The distribution the layout was made from.
    pub fn distribution(&self) -> &Distribution {
        &self.spec.distribution
    }

    /// Number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.sizes.len()
    }

    /// Elements in each partition.
    pub fn partition_sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// The locality of each partition.
    pub fn localities(&self) -> &[LocalityId] {
        &self.localities
    }

    /// The number of consecutive elements that go round robin (chunks of
    /// rows of a `Cyclic` or `BlockCyclic` layout); None for other layouts.
    pub fn round_robin_chunk(&self) -> Option<usize> {
        match self.map {
            Map::RoundRobin { chunk } => Some(chunk),
            _ => None,
        }
    }

    /// Whether every partition holds one contiguous range of flat indices.
    pub fn is_contiguous(&self) -> bool {
        matches!(self.map, Map::Contiguous { .. })
    }

    /// Whether `other` puts every element in the same partition, at the same
    /// place, on the same locality (element-wise work needs no data moved).
    pub fn same_placement(&self, other: &Layout) -> bool {
        self.len == other.len
            && self.sizes == other.sizes
            && self.localities == other.localities
            && self.map == other.map
    }

    /// Where element `index` (a flat, row-major index) lives;
    /// [`Error::BadArgument`] if out of range.
    pub fn locate(&self, index: usize) -> Result<Place> {
        self.locate_run(index).map(|(place, _)| place)
    }

    /// Where element `index` lives and how many elements from it on are
    /// consecutive both in the array and in its partition.
    pub fn locate_run(&self, index: usize) -> Result<(Place, usize)> {
        if index >= self.len {
            return Err(bad(format!(
                "index {index} is out of range for an array of {} elements",
                self.len
            )));
        }
        Ok(match &self.map {
            Map::RoundRobin { chunk: k } => {
                let p = self.sizes.len();
                let chunk = index / k;
                let place = Place {
                    partition: chunk % p,
                    local: (chunk / p) * k + index % k,
                };
                (place, (k - index % k).min(self.len - index))
            }
            Map::Contiguous { offsets } => {
                // The last partition starting at or before `index`; it is not
                // empty, or the next one would start there too.
                let partition = offsets.partition_point(|&start| start <= index) - 1;
                let local = index - offsets[partition];
                (Place { partition, local }, self.sizes[partition] - local)
            }
            Map::Tiles {
                row_starts,
                col_starts,
            } => {
                let cols = self.spec.shape[1];
                let (row, col) = (index / cols, index % cols);
                let i = row_starts.partition_point(|&s| s <= row) - 1;
                let j = col_starts.partition_point(|&s| s <= col) - 1;
                let width = col_starts[j + 1] - col_starts[j];
                let local = (row - row_starts[i]) * width + (col - col_starts[j]);
                let place = Place {
                    partition: i * (col_starts.len() - 1) + j,
                    local,
                };
                (place, col_starts[j + 1] - col)
            }
        })
    }

    /// The flat index of element `local` of `partition`;
    /// [`Error::BadArgument`] if either is out of range.
    pub fn global(&self, partition: usize, local: usize) -> Result<usize> {
        match self.sizes.get(partition) {
            Some(size) if local < *size => Ok(self.global_unchecked(partition, local)),
            Some(size) => Err(bad(format!(
                "element {local} of partition {partition}, which holds {size}"
            ))),
            None => Err(bad(format!(
                "partition {partition} of an array of {} partitions",
                self.sizes.len()
            ))),
        }
    }

    /// [`global`](Self::global) for a partition and local index known to be in range.
    fn global_unchecked(&self, partition: usize, local: usize) -> usize {
        match &self.map {
            Map::RoundRobin { chunk: k } => {
                let p = self.sizes.len();
                let chunk = (local / k) * p + partition;
                chunk * k + local % k
            }
            Map::Contiguous { offsets } => offsets[partition] + local,
            Map::Tiles {
                row_starts,
                col_starts,
            } => {
                let tc = col_starts.len() - 1;
                let (i, j) = (partition / tc, partition % tc);
                let width = col_starts[j + 1] - col_starts[j];
                let row = row_starts[i] + local / width;
                row * self.spec.shape[1] + col_starts[j] + local % width
            }
        }
    }

    /// The runs of partition `partition`, in local order.
    pub fn runs(&self, partition: usize) -> Runs<'_> {
        let size = self.sizes.get(partition).copied().unwrap_or(0);
        let step = match &self.map {
            Map::Contiguous { .. } => size.max(1),
            Map::RoundRobin { chunk } => *chunk,
            Map::Tiles { col_starts, .. } => {
                let j = partition % (col_starts.len() - 1);
                (col_starts[j + 1] - col_starts[j]).max(1)
            }
        };
        Runs {
            layout: self,
            partition,
            next: 0,
            size,
            step,
        }
    }

    /// The box partition `partition` covers: its first element's index
    /// along each axis and its extent along each axis; None when the
    /// partition is not a box (round-robin chunks, or contiguous ranges that
    /// do not start and end on rows).
    pub fn partition_box(&self, partition: usize) -> Option<(Vec<usize>, Vec<usize>)> {
        let shape = &self.spec.shape;
        let size = *self.sizes.get(partition)?;
        match &self.map {
            Map::Tiles {
                row_starts,
                col_starts,
            } => {
                let tc = col_starts.len() - 1;
                let (i, j) = (partition / tc, partition % tc);
                Some((
                    vec![row_starts[i], col_starts[j]],
                    vec![
                        row_starts[i + 1] - row_starts[i],
                        col_starts[j + 1] - col_starts[j],
                    ],
                ))
            }
            Map::Contiguous { offsets } => {
                let row_len = shape[1..].iter().product::<usize>();
                let start = offsets[partition];
                if row_len == 0 {
                    let mut extent = shape.clone();
                    extent[0] = if partition == 0 { shape[0] } else { 0 };
                    return Some((vec![0; shape.len()], extent));
                }
                if start % row_len != 0 || size % row_len != 0 {
                    return None;
                }
                let mut offset = vec![0; shape.len()];
                offset[0] = start / row_len;
                let mut extent = shape.clone();
                extent[0] = size / row_len;
                Some((offset, extent))
            }
            Map::RoundRobin { .. } => {
                // Round-robin layouts only exist with elements, so rows are not empty.
                let row_len = shape[1..].iter().product::<usize>().max(1);
                let mut offset = vec![0; shape.len()];
                let mut extent = shape.clone();
                extent[0] = size / row_len;
                if size == 0 {
                    return Some((offset, extent));
                }
                let first = self.global_unchecked(partition, 0);
                let last = self.global_unchecked(partition, size - 1);
                // A box only if the partition's rows are consecutive.
                (last - first + 1 == size).then(|| {
                    offset[0] = first / row_len;
                    (offset, extent)
                })
            }
        }
    }
}

/// The runs of one partition, in local order (see [`Layout::runs`]).
#[derive(Debug)]
pub struct Runs<'a> {
    layout: &'a Layout,
    partition: usize,
    next: usize,
    size: usize,
    step: usize,
}

impl Iterator for Runs<'_> {
    type Item = Run;

    fn next(&mut self) -> Option<Run> {
        if self.next >= self.size {
            return None;
        }
        let local = self.next;
        let len = self.step.min(self.size - local);
        self.next += len;
        Some(Run {
            global: self.layout.global_unchecked(self.partition, local),
            local,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn over(n: u32) -> Vec<LocalityId> {
        (0..n).map(LocalityId).collect()
    }

    fn layout(shape: &[usize], distribution: Distribution, n: u32) -> Result<Layout> {
        Layout::from_spec(LayoutSpec {
            shape: shape.to_vec(),
            distribution,
            over: over(n),
            grid: None,
        })
    }

    fn all_distributions(n: u32) -> Vec<Distribution> {
        vec![
            Distribution::Local,
            Distribution::Block,
            Distribution::Cyclic,
            Distribution::BlockCyclic(3),
            Distribution::BlockCyclic(1000),
            Distribution::Chunks(3),
            Distribution::Chunks(1000),
            Distribution::Partitions(7),
            Distribution::Explicit {
                sizes: vec![0, 2, 0, 5],
                localities: (0..4).map(|i| LocalityId(i % n)).collect(),
            },
        ]
    }

    /// Every index maps to exactly one (partition, local) and back, and the
    /// runs cover each partition once.
    fn check(layout: &Layout) {
        let mut seen: Vec<Vec<bool>> = layout
            .partition_sizes()
            .iter()
            .map(|s| vec![false; *s])
            .collect();
        for i in 0..layout.len() {
            let (place, run) = layout.locate_run(i).unwrap();
            assert!(
                !seen[place.partition][place.local],
                "{i} maps to a taken slot"
            );
            seen[place.partition][place.local] = true;
            assert_eq!(layout.global(place.partition, place.local).unwrap(), i);
            assert!(run >= 1);
            let (last, _) = layout.locate_run(i + run - 1).unwrap();
            assert_eq!(last.partition, place.partition);
            assert_eq!(last.local, place.local + run - 1);
        }
        assert!(seen.iter().flatten().all(|s| *s));
        assert!(layout.locate(layout.len()).is_err());
        for part in 0..layout.num_partitions() {
            let mut covered = 0;
            for run in layout.runs(part) {
                assert_eq!(run.local, covered);
                for j in 0..run.len {
                    assert_eq!(layout.global(part, run.local + j).unwrap(), run.global + j);
                }
                covered += run.len;
            }
            assert_eq!(covered, layout.partition_sizes()[part]);
            if let Some((offset, extent)) = layout.partition_box(part) {
                assert_eq!(
                    extent.iter().product::<usize>(),
                    layout.partition_sizes()[part]
                );
                if layout.partition_sizes()[part] > 0 {
                    let mut flat = 0;
                    for (o, d) in offset.iter().zip(layout.shape()) {
                        flat = flat * d + o;
                    }
                    assert_eq!(layout.global(part, 0).unwrap(), flat);
                }
            }
            assert!(layout.global(part, layout.partition_sizes()[part]).is_err());
        }
        assert!(layout.global(layout.num_partitions(), 0).is_err());
    }

    #[test]
    fn block_sizes_differ_by_at_most_one() {
        let l = layout(&[10], Distribution::Block, 4).unwrap();
        assert_eq!(l.partition_sizes(), [3, 3, 2, 2]);
        let l = layout(&[2], Distribution::Block, 4).unwrap();
        assert_eq!(l.partition_sizes(), [1, 1, 0, 0]);
        check(&l);
    }

    #[test]
    fn chunks_and_partitions_are_not_localities() {
        let l = layout(&[10_000], Distribution::Chunks(1000), 4).unwrap();
        assert_eq!(l.num_partitions(), 10);
        assert_eq!(l.partition_sizes(), [1000; 10]);
        assert_eq!(
            l.localities(),
            [0, 1, 2, 3, 0, 1, 2, 3, 0, 1].map(LocalityId)
        );
        let l = layout(&[10], Distribution::Chunks(3), 2).unwrap();
        assert_eq!(l.partition_sizes(), [3, 3, 3, 1]);
        check(&l);
        let l = layout(&[10], Distribution::Partitions(3), 5).unwrap();
        assert_eq!(l.partition_sizes(), [4, 3, 3]);
        assert_eq!(l.localities(), [0, 1, 2].map(LocalityId));
        let l = layout(&[0], Distribution::Chunks(3), 2).unwrap();
        assert_eq!(l.partition_sizes(), [0]);
        let l = Layout::from_spec(LayoutSpec {
            shape: vec![9],
            distribution: Distribution::Partitions(4),
            over: vec![LocalityId(3), LocalityId(1)],
            grid: None,
        })
        .unwrap();
        assert_eq!(l.localities(), [3, 1, 3, 1].map(LocalityId));
    }

    #[test]
    fn cyclic_and_block_cyclic() {
        let l = layout(&[7], Distribution::Cyclic, 3).unwrap();
        assert_eq!(l.partition_sizes(), [3, 2, 2]);
        assert_eq!(
            l.locate(4).unwrap(),
            Place {
                partition: 1,
                local: 1
            }
        );
        let l = layout(&[10], Distribution::BlockCyclic(3), 2).unwrap();
        // chunks: [0..3]->0, [3..6]->1, [6..9]->0, [9]->1
        assert_eq!(l.partition_sizes(), [6, 4]);
        assert_eq!(
            l.runs(1).collect::<Vec<_>>(),
            vec![
                Run {
                    global: 3,
                    local: 0,
                    len: 3
                },
                Run {
                    global: 9,
                    local: 3,
                    len: 1
                }
            ]
        );
        check(&l);
    }

    #[test]
    fn rows_of_n_d_arrays_stay_whole() {
        let l = layout(&[5, 3, 2], Distribution::Block, 2).unwrap();
        assert_eq!(l.partition_sizes(), [18, 12]);
        assert_eq!(l.partition_box(1), Some((vec![3, 0, 0], vec![2, 3, 2])));
        let l = layout(&[5, 4], Distribution::Cyclic, 2).unwrap();
        assert_eq!(l.partition_sizes(), [12, 8]);
        assert_eq!(l.runs(1).next().map(|r| (r.global, r.len)), Some((4, 4)));
        check(&l);
        let l = layout(&[7, 2], Distribution::Chunks(3), 2).unwrap();
        assert_eq!(l.partition_sizes(), [6, 6, 2]);
        check(&l);
    }

    #[test]
    fn tiles_over_a_locality_grid() {
        assert_eq!(default_grid(4), (2, 2));
        assert_eq!(default_grid(6), (2, 3));
        assert_eq!(default_grid(5), (1, 5));
        let l = layout(&[5, 7], Distribution::Grid, 4).unwrap();
        assert_eq!(l.partition_sizes(), [12, 9, 8, 6]);
        assert_eq!(l.partition_box(3), Some((vec![3, 4], vec![2, 3])));
        check(&l);
        let l = layout(&[10, 9], Distribution::Tiles { rows: 4, cols: 2 }, 4).unwrap();
        // 3 × 5 tiles on a 2 × 2 grid: tile (i, j) on cell (i % 2, j % 2).
        assert_eq!(l.num_partitions(), 15);
        assert_eq!(l.localities()[0..5], [0, 1, 0, 1, 0].map(LocalityId));
        assert_eq!(l.localities()[5..10], [2, 3, 2, 3, 2].map(LocalityId));
        assert_eq!(l.localities()[10..15], [0, 1, 0, 1, 0].map(LocalityId));
        assert_eq!(l.partition_box(14), Some((vec![8, 8], vec![2, 1])));
        check(&l);
        assert!(layout(&[10], Distribution::Grid, 4).is_err());
        let too_big = LayoutSpec {
            shape: vec![4, 4],
            distribution: Distribution::Grid,
            over: over(4),
            grid: Some((3, 2)),
        };
        assert!(Layout::from_spec(too_big).is_err());
    }

    #[test]
    fn bad_layouts_are_errors() {
        assert!(layout(&[5], Distribution::BlockCyclic(0), 2).is_err());
        assert!(layout(&[5], Distribution::Chunks(0), 2).is_err());
        assert!(layout(&[5], Distribution::Partitions(0), 2).is_err());
        assert!(layout(&[1 << 30], Distribution::Chunks(1), 2).is_err());
        assert!(layout(&[], Distribution::Block, 2).is_err());
        assert!(layout(&[usize::MAX, 3], Distribution::Block, 2).is_err());
        assert!(layout(&[4, 4], Distribution::Tiles { rows: 0, cols: 1 }, 2).is_err());
        let wrong_sum = Distribution::Explicit {
            sizes: vec![1, 2],
            localities: vec![LocalityId(0), LocalityId(1)],
        };
        assert!(layout(&[5], wrong_sum, 2).is_err());
        let split_row = Distribution::Explicit {
            sizes: vec![3, 3],
            localities: vec![LocalityId(0), LocalityId(1)],
        };
        assert!(layout(&[3, 2], split_row, 2).is_err());
        let mismatched = Distribution::Explicit {
            sizes: vec![5],
            localities: vec![LocalityId(0), LocalityId(1)],
        };
        assert!(layout(&[5], mismatched, 2).is_err());
        let nowhere = Distribution::Explicit {
            sizes: vec![5],
            localities: vec![LocalityId(7)],
        };
        let l = layout(&[5], nowhere, 2).unwrap();
        assert!(matches!(
            l.check_localities(2),
            Err(Error::NoSuchLocality(_))
        ));
    }

    proptest! {
        #[test]
        fn every_layout_is_a_bijection(len in 0usize..200, n in 1u32..7) {
            for dist in all_distributions(n) {
                let len = match &dist {
                    Distribution::Explicit { sizes, .. } => sizes.iter().sum(),
                    _ => len,
                };
                let l = Layout::new(len, dist, n, LocalityId(n - 1)).unwrap();
                prop_assert_eq!(l.partition_sizes().iter().sum::<usize>(), len);
                check(&l);
            }
        }

        #[test]
        fn every_2d_layout_is_a_bijection(
            rows in 0usize..20,
            cols in 0usize..20,
            n in 1u32..7,
            tr in 1usize..6,
            tc in 1usize..6,
        ) {
            for dist in [
                Distribution::Block,
                Distribution::Cyclic,
                Distribution::BlockCyclic(2),
                Distribution::Chunks(3),
                Distribution::Grid,
                Distribution::Tiles { rows: tr, cols: tc },
            ] {
                let l = layout(&[rows, cols], dist, n).unwrap();
                prop_assert_eq!(l.partition_sizes().iter().sum::<usize>(), rows * cols);
                check(&l);
                // A layout travels as its spec and comes back the same.
                prop_assert_eq!(Layout::from_spec(l.spec().clone()).unwrap(), l);
            }
        }
    }
}

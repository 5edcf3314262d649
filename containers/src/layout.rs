//! How a distributed array's elements map to partitions and localities: plain
//! arithmetic, tested without any runtime.

use serde::{Deserialize, Serialize};

use hpx_runtime::{Error, LocalityId, Result};

/// How the elements of an array are spread over localities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distribution {
    /// All elements in one partition on the creating locality.
    Local,
    /// One contiguous block per locality; sizes differ by at most one.
    Block,
    /// Round robin, element by element: element `i` on locality `i % N`.
    Cyclic,
    /// Round robin by chunks of `k` elements: chunk `c` on locality `c % N`.
    BlockCyclic(usize),
    /// Contiguous blocks of the given sizes on the given localities, in order.
    Explicit {
        /// Elements in each partition.
        sizes: Vec<usize>,
        /// The locality of each partition.
        localities: Vec<LocalityId>,
    },
}

/// The placement of an array: its length, its partitions and their owners.
/// Index arithmetic is O(1), O(log p) for explicit layouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    len: usize,
    distribution: Distribution,
    localities: Vec<LocalityId>,
    sizes: Vec<usize>,
    /// Global index where each partition starts (contiguous layouts).
    offsets: Vec<usize>,
}

/// Where one element lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// The partition.
    pub partition: usize,
    /// The index inside the partition.
    pub local: usize,
}

impl Layout {
    /// The layout of `len` elements distributed over `num_localities`
    /// localities, created on `here`.
    pub fn new(
        len: usize,
        distribution: Distribution,
        num_localities: u32,
        here: LocalityId,
    ) -> Result<Layout> {
        let p = num_localities.max(1) as usize;
        let all = || (0..p as u32).map(LocalityId).collect::<Vec<_>>();
        let (localities, sizes) = match &distribution {
            Distribution::Local => (vec![here], vec![len]),
            Distribution::Block => (
                all(),
                (0..p).map(|i| len / p + usize::from(i < len % p)).collect(),
            ),
            Distribution::Cyclic => (all(), (0..p).map(|i| cyclic_size(len, p, 1, i)).collect()),
            Distribution::BlockCyclic(0) => {
                return Err(Error::BadArgument(
                    "block-cyclic chunks must hold at least one element".into(),
                ))
            }
            Distribution::BlockCyclic(k) => {
                (all(), (0..p).map(|i| cyclic_size(len, p, *k, i)).collect())
            }
            Distribution::Explicit { sizes, localities } => {
                if sizes.len() != localities.len() {
                    return Err(Error::BadArgument(format!(
                        "explicit distribution: {} sizes but {} localities",
                        sizes.len(),
                        localities.len()
                    )));
                }
                if sizes.is_empty() {
                    return Err(Error::BadArgument(
                        "explicit distribution without partitions".into(),
                    ));
                }
                let total = sizes.iter().try_fold(0usize, |a, s| a.checked_add(*s));
                if total != Some(len) {
                    return Err(Error::BadArgument(format!(
                        "explicit distribution: sizes add up to {total:?}, the array has {len} elements"
                    )));
                }
                if let Some(bad) = localities.iter().find(|l| l.0 >= num_localities) {
                    return Err(Error::NoSuchLocality(*bad));
                }
                (localities.clone(), sizes.clone())
            }
        };
        let offsets = sizes
            .iter()
            .scan(0usize, |acc, s| {
                let start = *acc;
                *acc += s;
                Some(start)
            })
            .collect();
        Ok(Layout {
            len,
            distribution,
            localities,
            sizes,
            offsets,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The distribution the layout was made from.
    pub fn distribution(&self) -> &Distribution {
        &self.distribution
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

    /// The chunk length of round-robin layouts (1 for cyclic), None for contiguous ones.
    fn chunk(&self) -> Option<usize> {
        match self.distribution {
            Distribution::Cyclic => Some(1),
            Distribution::BlockCyclic(k) => Some(k),
            _ => None,
        }
    }

    /// Whether every partition holds one contiguous range of indices.
    pub fn is_contiguous(&self) -> bool {
        self.chunk().is_none()
    }

    /// Where element `index` lives; [`Error::BadArgument`] if out of range.
    pub fn locate(&self, index: usize) -> Result<Place> {
        if index >= self.len {
            return Err(Error::BadArgument(format!(
                "index {index} is out of range for an array of {} elements",
                self.len
            )));
        }
        Ok(match self.chunk() {
            Some(k) => {
                let p = self.sizes.len();
                let chunk = index / k;
                Place {
                    partition: chunk % p,
                    local: (chunk / p) * k + index % k,
                }
            }
            None => {
                // The last partition starting at or before `index`; it is not
                // empty, or the next one would start there too.
                let partition = self.offsets.partition_point(|&start| start <= index) - 1;
                Place {
                    partition,
                    local: index - self.offsets[partition],
                }
            }
        })
    }

    /// The global index of element `local` of `partition`.
    pub fn global(&self, partition: usize, local: usize) -> usize {
        match self.chunk() {
            Some(k) => {
                let p = self.sizes.len();
                let chunk = (local / k) * p + partition;
                chunk * k + local % k
            }
            None => self.offsets[partition] + local,
        }
    }

    /// The runs of consecutive global indices that partition `partition`
    /// holds, as (global start, local start, length), in local order.
    pub fn runs(&self, partition: usize) -> Vec<(usize, usize, usize)> {
        let size = self.sizes[partition];
        match self.chunk() {
            None => {
                if size == 0 {
                    Vec::new()
                } else {
                    vec![(self.offsets[partition], 0, size)]
                }
            }
            Some(k) => (0..size)
                .step_by(k)
                .map(|local| (self.global(partition, local), local, k.min(size - local)))
                .collect(),
        }
    }
}

/// Elements of partition `i` of `p` when chunks of `k` go round robin.
fn cyclic_size(len: usize, p: usize, k: usize, i: usize) -> usize {
    let chunks = len / k;
    let rest = len % k;
    let full = chunks / p + usize::from(i < chunks % p);
    full * k + if chunks % p == i { rest } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_distributions(n: u32) -> Vec<Distribution> {
        vec![
            Distribution::Local,
            Distribution::Block,
            Distribution::Cyclic,
            Distribution::BlockCyclic(3),
            Distribution::BlockCyclic(1000),
            Distribution::Explicit {
                sizes: vec![0, 2, 0, 5],
                localities: (0..4).map(|i| LocalityId(i % n)).collect(),
            },
        ]
    }

    /// Every index maps to exactly one (partition, local) and back.
    fn check(layout: &Layout) {
        let mut seen: Vec<Vec<bool>> = layout
            .partition_sizes()
            .iter()
            .map(|s| vec![false; *s])
            .collect();
        for i in 0..layout.len() {
            let place = layout.locate(i).unwrap();
            assert!(
                !seen[place.partition][place.local],
                "{i} maps to a taken slot"
            );
            seen[place.partition][place.local] = true;
            assert_eq!(layout.global(place.partition, place.local), i);
        }
        assert!(seen.iter().flatten().all(|s| *s));
        assert!(layout.locate(layout.len()).is_err());
        for part in 0..layout.num_partitions() {
            let mut covered = 0;
            for (g, l, n) in layout.runs(part) {
                for j in 0..n {
                    assert_eq!(layout.global(part, l + j), g + j);
                }
                covered += n;
            }
            assert_eq!(covered, layout.partition_sizes()[part]);
        }
    }

    #[test]
    fn block_sizes_differ_by_at_most_one() {
        let l = Layout::new(10, Distribution::Block, 4, LocalityId(0)).unwrap();
        assert_eq!(l.partition_sizes(), [3, 3, 2, 2]);
        let l = Layout::new(2, Distribution::Block, 4, LocalityId(0)).unwrap();
        assert_eq!(l.partition_sizes(), [1, 1, 0, 0]);
        check(&l);
    }

    #[test]
    fn cyclic_and_chunks() {
        let l = Layout::new(7, Distribution::Cyclic, 3, LocalityId(0)).unwrap();
        assert_eq!(l.partition_sizes(), [3, 2, 2]);
        assert_eq!(
            l.locate(4).unwrap(),
            Place {
                partition: 1,
                local: 1
            }
        );
        let l = Layout::new(10, Distribution::BlockCyclic(3), 2, LocalityId(0)).unwrap();
        // chunks: [0..3]->0, [3..6]->1, [6..9]->0, [9]->1
        assert_eq!(l.partition_sizes(), [6, 4]);
        assert_eq!(
            l.locate(7).unwrap(),
            Place {
                partition: 0,
                local: 4
            }
        );
        assert_eq!(l.runs(1), vec![(3, 0, 3), (9, 3, 1)]);
        check(&l);
    }

    #[test]
    fn bad_layouts_are_errors() {
        assert!(Layout::new(5, Distribution::BlockCyclic(0), 2, LocalityId(0)).is_err());
        let wrong_sum = Distribution::Explicit {
            sizes: vec![1, 2],
            localities: vec![LocalityId(0), LocalityId(1)],
        };
        assert!(Layout::new(5, wrong_sum, 2, LocalityId(0)).is_err());
        let mismatched = Distribution::Explicit {
            sizes: vec![5],
            localities: vec![LocalityId(0), LocalityId(1)],
        };
        assert!(Layout::new(5, mismatched, 2, LocalityId(0)).is_err());
        let nowhere = Distribution::Explicit {
            sizes: vec![5],
            localities: vec![LocalityId(7)],
        };
        assert!(matches!(
            Layout::new(5, nowhere, 2, LocalityId(0)),
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
                let layout = Layout::new(len, dist, n, LocalityId(n - 1)).unwrap();
                prop_assert_eq!(layout.partition_sizes().iter().sum::<usize>(), len);
                check(&layout);
            }
        }
    }
}

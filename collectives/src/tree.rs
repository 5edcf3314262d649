//! The arithmetic of the communication patterns, free of I/O.
//!
//! # The canonical combining tree
//!
//! Every reduction of `n` contributions `x_0 .. x_{n-1}` (ranks in order)
//! combines them along one fixed tree, whatever the algorithm and the root:
//!
//! 1. with `p` the largest power of two `≤ n` and `r = n - p`, the first `2r`
//!    contributions are folded in pairs: `y_i = x_{2i} ⊕ x_{2i+1}` for
//!    `i < r`, and `y_i = x_{i+r}` for `r ≤ i < p`;
//! 2. the `p` values `y` are combined as a balanced binary tree:
//!    `(y_0 ⊕ y_1) ⊕ (y_2 ⊕ y_3)`, and so on.
//!
//! So a floating-point sum is bitwise the same on every locality, in every
//! run, and for `all_reduce` and `reduce` with any root. [`Shape`] holds the
//! numbers of this tree; the `i` of `y_i` is a *virtual rank*.

use std::ops::Range;

/// The folded tree over `n` ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Number of ranks.
    pub n: u32,
    /// Largest power of two `≤ n`: the number of virtual ranks.
    pub p: u32,
    /// Ranks folded in pairs: `2 * r` ranks make `r` virtual ranks.
    pub r: u32,
    /// `log2(p)`: the levels of the balanced part.
    pub levels: u32,
}

impl Shape {
    /// The tree of `n ≥ 1` ranks.
    pub(crate) fn new(n: u32) -> Shape {
        let n = n.max(1);
        let levels = 31 - n.leading_zeros();
        let p = 1 << levels;
        Shape {
            n,
            p,
            r: n - p,
            levels,
        }
    }

    /// The virtual rank that `rank` acts for after the fold (the odd rank of
    /// a folded pair), or `None` for the even rank of a pair, which hands its
    /// value to `rank + 1`.
    pub(crate) fn virtual_of(&self, rank: u32) -> Option<u32> {
        if rank < 2 * self.r {
            (rank % 2 == 1).then_some(rank / 2)
        } else {
            Some(rank - self.r)
        }
    }

    /// The rank that acts for virtual rank `v`.
    pub(crate) fn acting(&self, v: u32) -> u32 {
        if v < self.r {
            2 * v + 1
        } else {
            v + self.r
        }
    }

    /// The ranks whose contributions virtual ranks `vs` combine: contiguous.
    pub(crate) fn leaves(&self, vs: Range<u32>) -> Range<u32> {
        let first = |v: u32| if v < self.r { 2 * v } else { v + self.r };
        if vs.is_empty() {
            return first(vs.start)..first(vs.start);
        }
        first(vs.start)..self.acting(vs.end - 1) + 1
    }

    /// The virtual ranks whose leaves hold `rank`.
    pub(crate) fn virtual_holding(&self, rank: u32) -> u32 {
        if rank < 2 * self.r {
            rank / 2
        } else {
            rank - self.r
        }
    }
}

/// One step of a rooted tree operation, in the order of a reduction
/// (leaves to root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TreeStep {
    /// Receive the partial result of `peer`, which covers the ranks `peer_covers`.
    FromChild {
        /// The level of the tree (the message tag).
        level: u32,
        /// The child's rank.
        peer: u32,
        /// The ranks of the child's subtree.
        peer_covers: Range<u32>,
    },
    /// Send the partial result, covering `covers`, to `peer`, and stop.
    ToParent {
        /// The level of the tree (the message tag).
        level: u32,
        /// The parent's rank.
        peer: u32,
        /// The ranks of this subtree.
        covers: Range<u32>,
    },
}

/// Who computes a subtree's partial result: the root if it is inside, else
/// the subtree's first rank.
fn representative(covers: &Range<u32>, root: u32) -> u32 {
    if covers.contains(&root) {
        root
    } else {
        covers.start
    }
}

/// The steps of rank `me` in a reduction to `root` along the canonical tree
/// (see the module documentation); a broadcast or scatter runs them backwards.
/// The depth is `⌈log2 n⌉`.
pub(crate) fn rooted_steps(shape: Shape, root: u32, me: u32) -> Vec<TreeStep> {
    let mut steps = Vec::new();
    let mut covers = me..me + 1;
    if me < 2 * shape.r {
        let pair = (me & !1)..(me & !1) + 2;
        let other = me ^ 1;
        if representative(&pair, root) == me {
            steps.push(TreeStep::FromChild {
                level: 0,
                peer: other,
                peer_covers: other..other + 1,
            });
            covers = pair;
        } else {
            steps.push(TreeStep::ToParent {
                level: 0,
                peer: other,
                covers,
            });
            return steps;
        }
    }
    let v = shape.virtual_holding(me);
    for k in 0..shape.levels {
        let block = v >> k;
        let sibling = block ^ 1;
        let parent = block >> 1;
        let sibling_covers = shape.leaves(sibling << k..(sibling + 1) << k);
        let parent_covers = shape.leaves(parent << (k + 1)..(parent + 1) << (k + 1));
        let parent_rep = representative(&parent_covers, root);
        if parent_rep == me {
            steps.push(TreeStep::FromChild {
                level: k + 1,
                peer: representative(&sibling_covers, root),
                peer_covers: sibling_covers,
            });
            covers = parent_covers;
        } else {
            steps.push(TreeStep::ToParent {
                level: k + 1,
                peer: parent_rep,
                covers,
            });
            return steps;
        }
    }
    steps
}

/// Combines the contributions `xs` of all ranks, in rank order, along the
/// canonical tree (see the module documentation): the same order, so the
/// same bits, as every algorithm that combines over messages.
pub(crate) fn combine_canonical<T>(
    xs: Vec<T>,
    mut combine: impl FnMut(T, T) -> hpx_runtime::Result<T>,
) -> hpx_runtime::Result<Option<T>> {
    let shape = Shape::new(xs.len() as u32);
    if xs.is_empty() {
        return Ok(None);
    }
    let mut ys = Vec::with_capacity(shape.p as usize);
    let mut xs = xs.into_iter();
    for _ in 0..shape.r {
        if let (Some(lower), Some(upper)) = (xs.next(), xs.next()) {
            ys.push(combine(lower, upper)?);
        }
    }
    ys.extend(xs);
    while ys.len() > 1 {
        let mut next = Vec::with_capacity(ys.len() / 2);
        let mut level = ys.into_iter();
        while let Some(lower) = level.next() {
            next.push(match level.next() {
                Some(upper) => combine(lower, upper)?,
                None => lower,
            });
        }
        ys = next;
    }
    Ok(ys.pop())
}

/// The rounds of a dissemination pattern over `n` ranks: in round `k` rank
/// `me` sends to the first rank and receives from the second.
pub(crate) fn dissemination(n: u32, me: u32) -> Vec<(u32, u32)> {
    let mut rounds = Vec::new();
    let mut distance = 1u32;
    while distance < n {
        rounds.push(((me + distance) % n, (me + n - distance) % n));
        distance = distance.saturating_mul(2);
    }
    rounds
}

/// Element range of block `b` when `len` elements are cut into `blocks`
/// nearly equal blocks.
pub(crate) fn block_range(len: usize, blocks: u32, b: u32) -> Range<usize> {
    let at = |i: u32| ((len as u128 * u128::from(i)) / u128::from(blocks.max(1))) as usize;
    at(b)..at(b + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn canonical_combination_follows_the_folded_tree() {
        let join = |a: String, b: String| Ok(format!("({a}+{b})"));
        let xs = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(combine_canonical(xs(0), join).unwrap(), None);
        assert_eq!(combine_canonical(xs(1), join).unwrap().unwrap(), "0");
        assert_eq!(
            combine_canonical(xs(4), join).unwrap().unwrap(),
            "((0+1)+(2+3))"
        );
        assert_eq!(
            combine_canonical(xs(5), join).unwrap().unwrap(),
            "(((0+1)+2)+(3+4))"
        );
        assert_eq!(
            combine_canonical(xs(7), join).unwrap().unwrap(),
            "(((0+1)+(2+3))+((4+5)+6))"
        );
        for n in 1..40 {
            let got = combine_canonical(xs(n), join).unwrap().unwrap();
            assert_eq!(got, canonical(n as u32), "n = {n}");
        }
    }

    /// The canonical bracketing of `0..n` as a string, computed directly.
    pub(crate) fn canonical(n: u32) -> String {
        let shape = Shape::new(n);
        let mut ys: Vec<String> = (0..shape.p)
            .map(|v| {
                if v < shape.r {
                    format!("({}+{})", 2 * v, 2 * v + 1)
                } else {
                    (v + shape.r).to_string()
                }
            })
            .collect();
        while ys.len() > 1 {
            ys = ys
                .chunks(2)
                .map(|c| format!("({}+{})", c[0], c[1]))
                .collect();
        }
        ys.remove(0)
    }

    #[test]
    fn shapes() {
        assert_eq!(
            Shape::new(1),
            Shape {
                n: 1,
                p: 1,
                r: 0,
                levels: 0
            }
        );
        assert_eq!(Shape::new(5).p, 4);
        assert_eq!(Shape::new(5).r, 1);
        assert_eq!(Shape::new(8).levels, 3);
        let s = Shape::new(6);
        assert_eq!(s.virtual_of(0), None);
        assert_eq!(s.virtual_of(3), Some(1));
        assert_eq!(s.virtual_of(5), Some(3));
        assert_eq!(s.acting(1), 3);
        assert_eq!(s.leaves(0..2), 0..4);
        assert_eq!(s.leaves(1..4), 2..6);
        assert_eq!(canonical(3), "((0+1)+2)");
        assert_eq!(canonical(6), "(((0+1)+(2+3))+(4+5))");
    }

    /// Simulates a reduction along `rooted_steps` and returns the bracketing
    /// the root ends up with.
    fn simulate_reduce(n: u32, root: u32) -> String {
        let shape = Shape::new(n);
        let schedules: Vec<Vec<TreeStep>> =
            (0..n).map(|me| rooted_steps(shape, root, me)).collect();
        let mut values: Vec<Option<(Range<u32>, String)>> =
            (0..n).map(|i| Some((i..i + 1, i.to_string()))).collect();
        let mut inbox: HashMap<(u32, u32, u32), (Range<u32>, String)> = HashMap::new();
        let mut cursor = vec![0usize; n as usize];
        let mut progress = true;
        while progress {
            progress = false;
            for me in 0..n {
                let i = me as usize;
                while let Some(step) = schedules[i].get(cursor[i]) {
                    match step {
                        TreeStep::ToParent {
                            level,
                            peer,
                            covers,
                        } => {
                            let value = values[i].take().expect("value");
                            assert_eq!(&value.0, covers);
                            inbox.insert((*peer, me, *level), value);
                        }
                        TreeStep::FromChild {
                            level,
                            peer,
                            peer_covers,
                        } => {
                            let Some(child) = inbox.remove(&(me, *peer, *level)) else {
                                break;
                            };
                            assert_eq!(&child.0, peer_covers);
                            let mine = values[i].take().expect("value");
                            let joined = if child.0.start < mine.0.start {
                                assert_eq!(child.0.end, mine.0.start);
                                (
                                    child.0.start..mine.0.end,
                                    format!("({}+{})", child.1, mine.1),
                                )
                            } else {
                                assert_eq!(mine.0.end, child.0.start);
                                (
                                    mine.0.start..child.0.end,
                                    format!("({}+{})", mine.1, child.1),
                                )
                            };
                            values[i] = Some(joined);
                        }
                    }
                    cursor[i] += 1;
                    progress = true;
                }
            }
        }
        assert!(inbox.is_empty());
        for me in 0..n {
            assert_eq!(
                cursor[me as usize],
                schedules[me as usize].len(),
                "rank {me} stuck"
            );
            if me != root {
                assert!(values[me as usize].is_none());
            }
        }
        let (covers, expr) = values[root as usize].take().expect("root value");
        assert_eq!(covers, 0..n);
        expr
    }

    #[test]
    fn rooted_trees_follow_the_canonical_bracketing_for_every_root() {
        for n in 1..=17u32 {
            let depth = 32 - (n - 1).leading_zeros();
            for root in 0..n {
                assert_eq!(simulate_reduce(n, root), canonical(n), "n {n} root {root}");
                for me in 0..n {
                    let steps = rooted_steps(Shape::new(n), root, me);
                    assert!(steps.len() as u32 <= depth.max(1), "n {n} depth");
                }
            }
        }
    }

    #[test]
    fn dissemination_reaches_everyone() {
        for n in 1..=17u32 {
            // After the rounds each rank has heard, transitively, from all.
            let mut heard: Vec<BTreeSet<u32>> = (0..n).map(|i| BTreeSet::from([i])).collect();
            let rounds: Vec<Vec<(u32, u32)>> = (0..n).map(|me| dissemination(n, me)).collect();
            for (k, _) in rounds[0].iter().enumerate() {
                let before = heard.clone();
                for (me, mine) in rounds.iter().enumerate() {
                    let (to, from) = mine[k];
                    assert_eq!(rounds[to as usize][k].1, me as u32);
                    heard[me].extend(before[from as usize].iter().copied());
                }
            }
            assert!(heard.iter().all(|h| h.len() == n as usize), "n {n}");
        }
    }

    #[test]
    fn blocks_cover_everything() {
        for len in [0usize, 1, 5, 1000, 1 << 20] {
            for blocks in 1..9u32 {
                let ranges: Vec<_> = (0..blocks).map(|b| block_range(len, blocks, b)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[blocks as usize - 1].end, len);
                assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
            }
        }
    }
}

//! The algorithms, one file per family. Each runs inside a [`Round`] and
//! uses its own range of message tags.
//!
//! [`Round`]: crate::round::Round

pub(crate) mod agree;
pub(crate) mod doubling;
pub(crate) mod exchange;
pub(crate) mod large;
pub(crate) mod rooted;
pub(crate) mod scan;
pub(crate) mod shared;

/// Message tags: a base per algorithm plus its step.
pub(crate) mod tag {
    /// An even rank of a folded pair hands its value to its odd neighbour.
    pub(crate) const FOLD: u32 = 1;
    /// The odd rank of a folded pair hands the result back.
    pub(crate) const UNFOLD: u32 = 2;
    /// Recursive doubling, plus the step.
    pub(crate) const DOUBLING: u32 = 0x100;
    /// Reduce-scatter by recursive halving, plus the step.
    pub(crate) const HALVING: u32 = 0x200;
    /// All-gather by recursive doubling, plus the step.
    pub(crate) const GATHERING: u32 = 0x300;
    /// The rooted tree, plus the level.
    pub(crate) const TREE: u32 = 0x400;
    /// The scans, plus the step.
    pub(crate) const SCAN: u32 = 0x500;
    /// The dissemination agreement, plus the round.
    pub(crate) const AGREE: u32 = 0x600;
    /// All-to-all: one message from every rank to every other.
    pub(crate) const DIRECT: u32 = 0x700;
    /// Never sent: a call through the shared region waits on it to hear of
    /// the call's failure.
    pub(crate) const HOST: u32 = 0x800;
}

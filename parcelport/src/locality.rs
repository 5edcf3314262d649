//! Locality identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The id of one locality (one process of a job), `0..N`. Locality 0 is the root.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct LocalityId(pub u32);

impl LocalityId {
    /// The root locality, which hosts the bootstrap rendezvous.
    pub const ROOT: LocalityId = LocalityId(0);

    /// The id as an index into per-locality tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Whether this is the root locality.
    pub fn is_root(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for LocalityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for LocalityId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(LocalityId)
    }
}

impl From<u32> for LocalityId {
    fn from(v: u32) -> Self {
        LocalityId(v)
    }
}

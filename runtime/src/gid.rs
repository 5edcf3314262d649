//! Global ids: 128 bits naming an object anywhere in the job.

use std::fmt;
use std::str::FromStr;

use hpx_parcelport::LocalityId;
use serde::{Deserialize, Serialize};

/// A 128-bit global id. The high 32 bits are the owning locality, so a call
/// to the object is routed without a lookup; the low 64 bits are unique on
/// that locality. Ids are allocated locally, with no round trip.
///
/// Written as `{owner:08x}.{local:016x}`, e.g. `00000002.000000000000002a`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GlobalId(u128);

impl GlobalId {
    /// The id of object `local` owned by `owner`.
    pub const fn new(owner: LocalityId, local: u64) -> GlobalId {
        GlobalId(((owner.0 as u128) << 96) | local as u128)
    }

    /// The locality that owns the object.
    pub const fn owner(self) -> LocalityId {
        LocalityId((self.0 >> 96) as u32)
    }

    /// The part that is unique on the owner.
    pub const fn local_id(self) -> u64 {
        self.0 as u64
    }

    /// All 128 bits.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The id with these 128 bits.
    pub const fn from_u128(bits: u128) -> GlobalId {
        GlobalId(bits)
    }
}

impl fmt::Display for GlobalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}.{:016x}", self.owner().0, self.local_id())
    }
}

impl fmt::Debug for GlobalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GlobalId({self})")
    }
}

/// Why a string is not a [`GlobalId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a global id: {0:?} (expected OWNER.LOCAL in hex, e.g. 00000002.000000000000002a)")]
pub struct ParseGlobalIdError(String);

impl FromStr for GlobalId {
    type Err = ParseGlobalIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseGlobalIdError(s.chars().take(64).collect());
        let (owner, local) = s.trim().split_once('.').ok_or_else(bad)?;
        if owner.is_empty() || local.is_empty() || owner.len() > 8 || local.len() > 16 {
            return Err(bad());
        }
        let owner = u32::from_str_radix(owner, 16).map_err(|_| bad())?;
        let local = u64::from_str_radix(local, 16).map_err(|_| bad())?;
        Ok(GlobalId::new(LocalityId(owner), local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn owner_is_in_the_high_bits() {
        let g = GlobalId::new(LocalityId(7), 42);
        assert_eq!(g.owner(), LocalityId(7));
        assert_eq!(g.local_id(), 42);
        assert_eq!(g.as_u128() >> 96, 7);
        assert_eq!(g.to_string(), "00000007.000000000000002a");
    }

    #[test]
    fn bad_strings_are_errors() {
        for s in [
            "",
            ".",
            "7",
            "7.",
            ".1",
            "x.1",
            "1.y",
            "123456789.1",
            "1.12345678901234567",
            "1.-1",
        ] {
            assert!(s.parse::<GlobalId>().is_err(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(owner in any::<u32>(), local in any::<u64>()) {
            let g = GlobalId::new(LocalityId(owner), local);
            prop_assert_eq!(g.to_string().parse::<GlobalId>().unwrap(), g);
            let bytes = crate::codec::encode(&g).unwrap();
            prop_assert_eq!(crate::codec::decode::<GlobalId>(&bytes).unwrap(), g);
        }
    }
}

//! The one hash of stable names (action ids, name and latch homes,
//! communicator ids): 64-bit FNV-1a, the same on every locality and run.

use hpx_parcelport::LocalityId;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit FNV-1a hash of `bytes`.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = OFFSET;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    hash
}

/// The FNV-1a hash of the concatenation of `parts`.
pub fn fnv1a_parts(parts: &[&[u8]]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .fold(OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The locality that is home to the key made of `parts` in a job of
/// `num_localities` (locality 0 for an empty job).
pub fn home_of(parts: &[&[u8]], num_localities: u32) -> LocalityId {
    let n = u64::from(num_localities.max(1));
    // The remainder is below `num_localities`, so it fits.
    LocalityId((fnv1a_parts(parts) % n) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_hash_like_their_concatenation() {
        assert_eq!(fnv1a(b""), OFFSET);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_parts(&[b"ab", b"c"]), fnv1a(b"abc"));
        assert_eq!(home_of(&[b"x"], 0), LocalityId(0));
        assert!(home_of(&[b"x"], 5).0 < 5);
    }
}

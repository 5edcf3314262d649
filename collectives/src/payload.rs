//! The bytes a collective message carries: a list of byte strings
//! ("chunks"), each serialized as a length and a memory copy.
//!
//! On the sending side a chunk may be a view into a shared buffer, so that
//! the parts of a large vector, or one encoded value sent to several peers,
//! are copied only once: into the parcel. A received chunk is always an
//! owned vector.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytemuck::Pod;
use hpx_runtime::{Error, Result};
use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A buffer whose bytes can be sent without copying it first.
pub(crate) trait ByteSource: Send + Sync {
    /// The buffer's bytes.
    fn bytes(&self) -> &[u8];
}

impl<E: Pod + Send + Sync> ByteSource for Vec<E> {
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self)
    }
}

/// One byte string of a payload.
pub(crate) enum Chunk {
    /// Bytes owned by the chunk.
    Owned(Vec<u8>),
    /// A byte range of a shared buffer.
    View(Arc<dyn ByteSource>, Range<usize>),
}

impl Chunk {
    /// A view of `range` (in bytes) of `source`; an out-of-range view is cut
    /// to the buffer.
    pub(crate) fn view(source: Arc<dyn ByteSource>, range: Range<usize>) -> Chunk {
        let len = source.bytes().len();
        let end = range.end.min(len);
        let start = range.start.min(end);
        Chunk::View(source, start..end)
    }

    /// The chunk's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::View(source, range) => source.bytes().get(range.clone()).unwrap_or_default(),
        }
    }

    /// The chunk as an owned vector (a copy only for a view).
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            Chunk::Owned(v) => v,
            Chunk::View(..) => self.bytes().to_vec(),
        }
    }

    /// The chunk as a shareable buffer (no copy).
    pub(crate) fn into_shared(self) -> Chunk {
        match self {
            Chunk::Owned(v) => {
                let len = v.len();
                Chunk::View(Arc::new(v), 0..len)
            }
            view => view,
        }
    }

    /// Another reference to the same bytes (a copy only for an owned chunk).
    pub(crate) fn share(&self) -> Chunk {
        match self {
            Chunk::Owned(v) => Chunk::Owned(v.clone()),
            Chunk::View(source, range) => Chunk::View(source.clone(), range.clone()),
        }
    }
}

/// The bytes of one collective message.
#[derive(Default)]
pub(crate) struct Payload {
    chunks: Vec<Chunk>,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: Vec<usize> = self.chunks.iter().map(|c| c.bytes().len()).collect();
        write!(f, "Payload{sizes:?}")
    }
}

impl Payload {
    /// No chunks at all.
    pub(crate) fn empty() -> Payload {
        Payload::default()
    }

    /// One owned chunk.
    pub(crate) fn single(bytes: Vec<u8>) -> Payload {
        Payload {
            chunks: vec![Chunk::Owned(bytes)],
        }
    }

    /// The given chunks.
    pub(crate) fn from_chunks(chunks: Vec<Chunk>) -> Payload {
        Payload { chunks }
    }

    /// The one chunk of a single-chunk payload, owned.
    pub(crate) fn into_single(self) -> Result<Vec<u8>> {
        let count = self.chunks.len();
        let mut chunks = self.chunks.into_iter();
        match (chunks.next(), count) {
            (Some(chunk), 1) => Ok(chunk.into_vec()),
            _ => Err(Error::Codec(format!(
                "a collective message has {count} parts where 1 was expected"
            ))),
        }
    }

    /// The chunks of a payload that must hold exactly `count` of them.
    pub(crate) fn into_exactly(self, count: usize) -> Result<Vec<Chunk>> {
        if self.chunks.len() != count {
            return Err(Error::Codec(format!(
                "a collective message has {} parts where {count} were expected",
                self.chunks.len()
            )));
        }
        Ok(self.chunks)
    }
}

/// Serializes borrowed bytes as one byte string.
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.chunks.len()))?;
        for chunk in &self.chunks {
            seq.serialize_element(&RawBytes(chunk.bytes()))?;
        }
        seq.end()
    }
}

/// One received byte string, moved out of the decoder where it allows.
struct OwnedBytes(Vec<u8>);

struct OwnedBytesVisitor;

impl Visitor<'_> for OwnedBytesVisitor {
    type Value = OwnedBytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<OwnedBytes, E> {
        Ok(OwnedBytes(v.to_vec()))
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> std::result::Result<OwnedBytes, E> {
        Ok(OwnedBytes(v))
    }
}

impl<'de> Deserialize<'de> for OwnedBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_byte_buf(OwnedBytesVisitor)
    }
}

struct PayloadVisitor;

/// Chunks reserved up front at most, whatever a message claims.
const MAX_RESERVED_CHUNKS: usize = 64;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of byte strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Payload, A::Error> {
        let mut chunks = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_RESERVED_CHUNKS));
        while let Some(OwnedBytes(bytes)) = seq.next_element()? {
            chunks.push(Chunk::Owned(bytes));
        }
        Ok(Payload { chunks })
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_seq(PayloadVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpx_runtime::codec;
    use proptest::prelude::*;

    fn sizes(p: &Payload) -> Vec<Vec<u8>> {
        p.chunks.iter().map(|c| c.bytes().to_vec()).collect()
    }

    #[test]
    fn views_and_owned_chunks_travel_as_bytes() {
        let shared: Arc<dyn ByteSource> = Arc::new(vec![1.0f64, 2.0, 3.0]);
        let p = Payload::from_chunks(vec![
            Chunk::view(shared.clone(), 8..24),
            Chunk::Owned(vec![7, 8]),
            Chunk::view(shared, 20..100),
        ]);
        let bytes = codec::encode(&p).unwrap();
        assert_eq!(bytes.len(), 8 + (8 + 16) + (8 + 2) + (8 + 4));
        let back: Payload = codec::decode(&bytes).unwrap();
        assert_eq!(sizes(&back), sizes(&p));
        let chunks = back.into_exactly(3).unwrap();
        let first: Vec<f64> = bytemuck::pod_collect_to_vec(chunks[0].bytes());
        assert_eq!(first, [2.0, 3.0]);
    }

    #[test]
    fn single_and_exact_counts_are_checked() {
        assert_eq!(Payload::single(vec![1]).into_single().unwrap(), [1]);
        assert!(Payload::empty().into_single().is_err());
        let two = Payload::from_chunks(vec![Chunk::Owned(vec![]), Chunk::Owned(vec![])]);
        assert!(two.into_exactly(3).is_err());
    }

    #[test]
    fn sharing_does_not_copy_views() {
        let c = Chunk::Owned(vec![1, 2, 3]).into_shared();
        let d = c.share();
        assert_eq!(d.bytes(), [1, 2, 3]);
        assert_eq!(d.into_vec(), [1, 2, 3]);
        assert_eq!(Chunk::Owned(vec![4]).share().into_vec(), [4]);
    }

    #[test]
    fn huge_claims_are_errors() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        assert!(codec::decode::<Payload>(&bytes).is_err());
        bytes = 1u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(codec::decode::<Payload>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = codec::decode::<Payload>(&bytes);
        }

        #[test]
        fn round_trip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let p = Payload::from_chunks(chunks.iter().cloned().map(Chunk::Owned).collect());
            let back: Payload = codec::decode(&codec::encode(&p).unwrap()).unwrap();
            prop_assert_eq!(sizes(&back), chunks);
        }
    }
}

//! Serialization of action arguments and results: serde with bincode 2, and
//! [`PodVec`] for numeric buffers that travel as raw bytes.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::gid::GlobalId;
use crate::LocalityId;
use crate::{Error, Result};

/// Upper bound on what a decoder may be asked to allocate (1 GiB).
const DECODE_LIMIT: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<DECODE_LIMIT>()
}

/// Encodes a value. Large values are written into a buffer kept for reuse
/// ([`crate::memory::buffer`]) that goes back once the bytes are dropped.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
    encode_with(value, None)
}

/// [`encode`] for a payload to `to`: large values are written straight
/// into memory the transport lends for it (a shared-memory segment that
/// `to` maps), where it has some.
fn encode_with<T: Serialize + ?Sized>(value: &T, to: Option<LocalityId>) -> Result<Bytes> {
    let mut out = Encoded {
        sink: Sink::Vec(Vec::new()),
        to,
    };
    bincode::serde::encode_into_writer(value, &mut out, config())
        .map_err(|e| Error::Codec(e.to_string()))?;
    Ok(match out.sink {
        Sink::Vec(v) => crate::memory::shared(v),
        Sink::Lent { buf, len } => buf.freeze(len),
    })
}

/// Encodes a value into a plain vector, for callers that put several
/// values together into one message.
pub fn encode_to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| Error::Codec(e.to_string()))
}

/// The number of bytes [`encode`] makes of `value` (a serialisation that
/// only counts: bulk buffers cost nothing here).
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize> {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, config())
        .map_err(|e| Error::Codec(e.to_string()))?;
    Ok(size.bytes_written)
}

/// Encodes `value` into the start of `out` if it fits: `Some(length)`, or
/// `None` (and `out` partly written) if it needs more room. One pass for
/// the small values of a size-dependent path, where [`encoded_len`] then
/// [`encode_to_vec`] would serialise twice.
pub fn encode_if_fits<T: Serialize + ?Sized>(value: &T, out: &mut [u8]) -> Result<Option<usize>> {
    match bincode::serde::encode_into_slice(value, out, config()) {
        Ok(written) => Ok(Some(written)),
        Err(bincode::error::EncodeError::UnexpectedEnd) => Ok(None),
        Err(e) => Err(Error::Codec(e.to_string())),
    }
}

/// Encodes `value` into `out`, which must hold exactly
/// [`encoded_len`] bytes: for writing straight into memory that another
/// locality reads (one copy less than encoding first).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut [u8]) -> Result<()> {
    let written = bincode::serde::encode_into_slice(value, &mut *out, config())
        .map_err(|e| Error::Codec(e.to_string()))?;
    if written == out.len() {
        Ok(())
    } else {
        Err(Error::Codec(format!(
            "a value encoded into {written} bytes where {} were expected",
            out.len()
        )))
    }
}

/// Where [`encode`] writes: a small vector, moved into a reusable large
/// buffer, or into memory the transport lends for the destination, when a
/// large block (a bulk buffer's bytes) comes.
struct Encoded {
    sink: Sink,
    /// The destination, for lent memory.
    to: Option<LocalityId>,
}

enum Sink {
    Vec(Vec<u8>),
    /// The first `len` bytes of `buf` are written.
    Lent {
        buf: hpx_parcelport::PayloadBuffer,
        len: usize,
    },
}

/// Room left after a large block for what follows it.
const AFTER_LARGE: usize = 4096;

impl Encoded {
    /// A buffer for `need` bytes and what may follow: lent for the
    /// destination if the transport has one, else a reusable one.
    fn grow(&mut self, written: &[u8], need: usize) {
        let room = need.saturating_add(AFTER_LARGE);
        let lent = self
            .to
            .and_then(|to| crate::context::current().ok()?.payload_buffer(to, room));
        self.sink = match lent {
            Some(mut buf) if buf.capacity() >= room => {
                buf.memory()[..written.len()].copy_from_slice(written);
                Sink::Lent {
                    buf,
                    len: written.len(),
                }
            }
            _ => {
                let mut large = crate::memory::buffer(room);
                large.extend_from_slice(written);
                Sink::Vec(large)
            }
        };
    }
}

impl bincode::enc::write::Writer for Encoded {
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), bincode::error::EncodeError> {
        match &mut self.sink {
            Sink::Vec(v) => {
                let need = v.len().saturating_add(bytes.len());
                if bytes.len() >= crate::memory::POOLED_FROM && need > v.capacity() {
                    let written = std::mem::take(v);
                    self.grow(&written, need);
                    return self.write(bytes);
                }
                v.extend_from_slice(bytes);
            }
            Sink::Lent { buf, len } => {
                let end = len.saturating_add(bytes.len());
                match buf.memory().get_mut(*len..end) {
                    Some(room) => {
                        room.copy_from_slice(bytes);
                        *len = end;
                    }
                    None => {
                        // More than the room left after the large block:
                        // on in a buffer of our own.
                        let mut large = crate::memory::buffer(end.saturating_add(AFTER_LARGE));
                        large.extend_from_slice(&buf.memory()[..*len]);
                        large.extend_from_slice(bytes);
                        self.sink = Sink::Vec(large);
                    }
                }
            }
        }
        Ok(())
    }
}

thread_local! {
    /// The received buffer being decoded on this thread by [`decode_shared`]:
    /// [`SharedBytes`] inside it take slices of it instead of copies.
    static RECEIVED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Decodes a value from a received buffer, rejecting trailing bytes, like
/// [`decode`]; [`SharedBytes`] in the value keep slices of `bytes` (no copy).
pub fn decode_shared<T: DeserializeOwned>(bytes: &Bytes) -> Result<T> {
    /// Puts the outer buffer back, also when a `Deserialize` panics: the
    /// thread must not keep the payload (and the memory it pins).
    struct Restore(Option<Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            RECEIVED.with(|r| *r.borrow_mut() = outer);
        }
    }
    let _restore = Restore(RECEIVED.with(|r| r.borrow_mut().replace(bytes.clone())));
    decode(bytes)
}

/// `part` as a slice of the buffer [`decode_shared`] is decoding, if it lies
/// inside it.
fn received_slice(part: &[u8]) -> Option<Bytes> {
    RECEIVED.with(|r| {
        let r = r.borrow();
        let whole = r.as_ref()?;
        let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        (end <= whole.len()).then(|| whole.slice(start..end))
    })
}

/// Decodes a value, rejecting trailing bytes. Never panics on malformed input.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // The borrowing decoder hands byte buffers over as slices of `bytes`:
    // one copy less for bulk data.
    let (value, used) = bincode::serde::borrow_decode_from_slice(bytes, config())
        .map_err(|e| Error::Codec(e.to_string()))?;
    if used != bytes.len() {
        return Err(Error::Codec(format!(
            "{} trailing bytes after the value",
            bytes.len() - used
        )));
    }
    Ok(value)
}

/// Credit minted for component handles: (component, amount) pairs.
pub type Minted = Vec<(GlobalId, u64)>;

thread_local! {
    /// Credit minted for component handles while encoding a value to send.
    static MINTED: RefCell<Option<Minted>> = const { RefCell::new(None) };
}

/// Encodes a value to send to another locality, returning the credit that
/// component handles inside it minted (see [`crate::agas`]): the owners must
/// learn of it before the bytes leave this locality.
pub(crate) fn encode_minting<T: Serialize + ?Sized>(
    value: &T,
    to: LocalityId,
) -> Result<(Bytes, Minted)> {
    /// Ends the recording, also when a `Serialize` panics: the thread must
    /// not go on recording credit into a message it no longer encodes.
    struct Recording;
    impl Drop for Recording {
        fn drop(&mut self) {
            MINTED.with(|m| m.borrow_mut().take());
        }
    }
    MINTED.with(|m| *m.borrow_mut() = Some(Vec::new()));
    let recording = Recording;
    let bytes = encode_with(value, Some(to));
    let minted = MINTED.with(|m| m.borrow_mut().take()).unwrap_or_default();
    drop(recording);
    bytes.map(|b| (b, minted))
}

/// Whether a message to one other locality is being encoded on this thread
/// (inside [`encode_minting`]).
pub(crate) fn sending() -> bool {
    MINTED.with(|m| m.borrow().is_some())
}

/// Records credit minted for `gid` in the message being encoded.
pub(crate) fn record_mint(gid: GlobalId, amount: u64) {
    MINTED.with(|m| {
        if let Some(minted) = m.borrow_mut().as_mut() {
            minted.push((gid, amount));
        }
    });
}

/// A vector of plain numbers that is serialized as one block of raw bytes
/// (a length and a memory copy) instead of element by element. Use it for
/// bulk numeric arguments and results of actions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodVec<T: Pod>(pub Vec<T>);

impl<T: Pod> PodVec<T> {
    /// Unwraps the vector.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T: Pod> From<Vec<T>> for PodVec<T> {
    fn from(v: Vec<T>) -> Self {
        PodVec(v)
    }
}

impl<T: Pod> Deref for PodVec<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T: Pod> DerefMut for PodVec<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T: Pod> Serialize for PodVec<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(bytemuck::cast_slice(&self.0))
    }
}

struct PodVisitor<T>(PhantomData<T>);

impl<'de, T: Pod> serde::de::Visitor<'de> for PodVisitor<T> {
    type Value = PodVec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a byte buffer of {}-byte elements",
            std::mem::size_of::<T>()
        )
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Self::Value, E> {
        let size = std::mem::size_of::<T>().max(1);
        if v.len() % size != 0 {
            return Err(E::custom(format!(
                "{} bytes is not a whole number of {size}-byte elements",
                v.len()
            )));
        }
        if std::mem::size_of::<T>() == 0 {
            return Ok(PodVec(bytemuck::pod_collect_to_vec(v)));
        }
        let mut out = crate::memory::fresh::<T>(v.len() / size);
        bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(v);
        Ok(PodVec(out))
    }

    fn visit_byte_buf<E: serde::de::Error>(
        self,
        v: Vec<u8>,
    ) -> std::result::Result<Self::Value, E> {
        // Bytes (alignment 1) are taken over without a copy.
        match bytemuck::allocation::try_cast_vec::<u8, T>(v) {
            Ok(v) => Ok(PodVec(v)),
            Err((_, v)) => self.visit_bytes(&v),
        }
    }
}

impl<'de, T: Pod> Deserialize<'de> for PodVec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_bytes(PodVisitor(PhantomData))
    }
}

/// A block of bytes that travels as one length and a memory copy, like
/// [`PodVec<u8>`], but is not copied again on arrival: decoded from a parcel
/// it is a slice of the received buffer (for a large payload between
/// localities of one host, the memory the sender wrote). Use it for bulk
/// results that the receiver copies somewhere else anyway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedBytes(pub Bytes);

impl Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SharedBytes {
    /// A large vector goes back for reuse once its bytes are dropped
    /// ([`crate::memory::shared`]).
    fn from(v: Vec<u8>) -> Self {
        SharedBytes(crate::memory::shared(v))
    }
}

impl Serialize for SharedBytes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

struct SharedVisitor;

impl<'de> serde::de::Visitor<'de> for SharedVisitor {
    type Value = SharedBytes;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte buffer")
    }

    fn visit_borrowed_bytes<E: serde::de::Error>(
        self,
        v: &'de [u8],
    ) -> std::result::Result<Self::Value, E> {
        Ok(SharedBytes(
            received_slice(v).unwrap_or_else(|| Bytes::copy_from_slice(v)),
        ))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Self::Value, E> {
        Ok(SharedBytes(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E: serde::de::Error>(
        self,
        v: Vec<u8>,
    ) -> std::result::Result<Self::Value, E> {
        Ok(SharedBytes::from(v))
    }
}

impl<'de> Deserialize<'de> for SharedBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_bytes(SharedVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_in_place_matches_encode() {
        let value = (7u32, "text".to_owned(), PodVec(vec![1.5f64; 1000]));
        let len = encoded_len(&value).unwrap();
        let whole = encode(&value).unwrap();
        assert_eq!(len, whole.len());
        let mut out = vec![0u8; len];
        encode_into(&value, &mut out).unwrap();
        assert_eq!(out, whole.as_ref());
        assert!(
            encode_into(&value, &mut vec![0u8; len - 1]).is_err(),
            "too short"
        );
        assert!(
            encode_into(&value, &mut vec![0u8; len + 1]).is_err(),
            "too long"
        );
        let mut room = vec![0u8; len];
        assert_eq!(encode_if_fits(&value, &mut room).unwrap(), Some(len));
        assert_eq!(room, whole.as_ref());
        assert_eq!(
            encode_if_fits(&value, &mut vec![0u8; len - 1]).unwrap(),
            None
        );
        assert_eq!(encode_if_fits(&value, &mut [0u8; 3]).unwrap(), None);
    }
    use proptest::prelude::*;

    #[test]
    fn a_panicking_encode_ends_the_recording_of_credit() {
        struct Panics;
        impl Serialize for Panics {
            fn serialize<S: Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
                panic!("a bad Serialize")
            }
        }
        assert!(std::panic::catch_unwind(|| encode_minting(&Panics, LocalityId(1))).is_err());
        assert!(!sending(), "still recording after the panic");
    }

    #[test]
    fn a_panicking_decode_does_not_keep_the_buffer() {
        struct Panics;
        impl<'de> Deserialize<'de> for Panics {
            fn deserialize<D: Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
                panic!("a bad Deserialize")
            }
        }
        let wire = encode(&1u32).unwrap();
        let caught = std::panic::catch_unwind(|| decode_shared::<Panics>(&wire));
        assert!(caught.is_err());
        assert!(
            RECEIVED.with(|r| r.borrow().is_none()),
            "the buffer was kept"
        );
    }

    #[test]
    fn shared_bytes_are_slices_of_the_received_buffer() {
        let sent = SharedBytes::from(vec![7u8; 1000]);
        let wire = encode(&(5u32, sent.clone())).unwrap();
        let (n, got): (u32, SharedBytes) = decode_shared(&wire).unwrap();
        assert_eq!((n, &got), (5, &sent));
        let at = got.as_ptr() as usize - wire.as_ptr() as usize;
        assert_eq!(
            at,
            4 + 8,
            "a slice of the received buffer, after the u32 and the length"
        );
        // Outside decode_shared, or decoded from a plain slice: a copy.
        let copied: (u32, SharedBytes) = decode(&wire).unwrap();
        assert_eq!(copied.1, sent);
        assert!(!wire.as_ptr_range().contains(&copied.1.as_ptr()));
        assert_eq!(
            encode(&sent).unwrap(),
            encode(&PodVec(vec![7u8; 1000])).unwrap()
        );
    }

    #[test]
    fn large_values_are_encoded_into_reused_buffers() {
        let big = PodVec(vec![2.5f64; 1 << 18]);
        let first = encode(&(7u8, &big, 9u16)).unwrap();
        let at = first.as_ptr();
        assert_eq!(
            decode::<(u8, PodVec<f64>, u16)>(&first).unwrap(),
            (7, big.clone(), 9)
        );
        drop(first);
        let again = encode(&(7u8, &big, 9u16)).unwrap();
        assert_eq!(again.as_ptr(), at, "the buffer came back and was reused");
        assert_eq!(
            decode::<(u8, PodVec<f64>, u16)>(&again).unwrap(),
            (7, big, 9)
        );
    }

    #[test]
    fn pod_vec_is_raw_bytes() {
        let v = PodVec(vec![1.5f64, -2.0, 3.25]);
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes.len(), 8 + 3 * 8);
        assert_eq!(decode::<PodVec<f64>>(&bytes).unwrap(), v);
    }

    #[test]
    fn rejects_trailing_and_truncated() {
        let mut bytes = encode(&(1u32, 2u64)).unwrap().to_vec();
        assert!(decode::<(u32, u64)>(&bytes[..5]).is_err());
        bytes.push(0);
        assert!(decode::<(u32, u64)>(&bytes).is_err());
        let odd = encode(&PodVec(vec![1u8, 2, 3])).unwrap();
        assert!(decode::<PodVec<u32>>(&odd).is_err());
    }

    #[test]
    fn huge_claimed_length_is_an_error_not_an_allocation() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Vec<u64>>(&bytes).is_err());
        assert!(decode::<PodVec<u64>>(&bytes).is_err());
        assert!(decode::<String>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode::<(String, Vec<u32>, Option<f64>)>(&bytes);
            let _ = decode::<PodVec<f32>>(&bytes);
        }

        #[test]
        fn round_trip(v in proptest::collection::vec(any::<i64>(), 0..64), s in ".*") {
            let bytes = encode(&(v.clone(), s.clone(), PodVec(v.clone()))).unwrap();
            let back: (Vec<i64>, String, PodVec<i64>) = decode(&bytes).unwrap();
            prop_assert_eq!(back, (v.clone(), s, PodVec(v)));
        }
    }
}

//! Coalescing outgoing parcels into few large writes, as plain code without
//! I/O: parcels go in ([`Batcher::push`]), the byte chunks of one write come
//! out ([`Batcher::take_into`]). Small parcels are copied into one buffer; a large
//! payload becomes a chunk of its own and is never copied.

use bytes::{Bytes, BytesMut};

use crate::parcel::{encode_parcel, HEADER_LEN};
use crate::{Parcel, TransportError};

/// Payloads at least this large are written without copying.
pub const ZERO_COPY_MIN: usize = 16 * 1024;
/// A write is due once this many bytes are queued.
pub const BATCH_MAX: usize = 256 * 1024;

/// The bytes of the next write to one peer.
#[derive(Debug)]
pub struct Batcher {
    /// Small parcels, encoded back to back.
    batch: BytesMut,
    /// What the write consists of so far, in order.
    chunks: Vec<Bytes>,
    /// Bytes queued for the write.
    queued: usize,
}

impl Default for Batcher {
    fn default() -> Self {
        Batcher::new()
    }
}

impl Batcher {
    /// An empty batcher.
    pub fn new() -> Batcher {
        Batcher {
            batch: BytesMut::with_capacity(64 * 1024),
            chunks: Vec::new(),
            queued: 0,
        }
    }

    /// Queues `parcel` for the next write. On an error (a payload too large
    /// to announce) nothing of the parcel is queued.
    pub fn push(&mut self, parcel: Parcel) -> Result<(), TransportError> {
        if parcel.payload.len() >= ZERO_COPY_MIN {
            let mut header = BytesMut::with_capacity(HEADER_LEN);
            parcel.header.encode(parcel.payload.len(), &mut header)?;
            if !self.batch.is_empty() {
                self.chunks.push(self.batch.split().freeze());
            }
            self.queued += parcel.wire_len();
            self.chunks.push(header.freeze());
            self.chunks.push(parcel.payload);
        } else {
            let before = self.batch.len();
            if let Err(e) = encode_parcel(&parcel, &mut self.batch) {
                self.batch.truncate(before);
                return Err(e);
            }
            self.queued += parcel.wire_len();
        }
        Ok(())
    }

    /// Whether enough is queued that the write should happen now.
    pub fn is_full(&self) -> bool {
        self.queued >= BATCH_MAX
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Moves the chunks of the write, in order, to the end of `out`; the
    /// batcher is empty afterwards. Both vectors keep their capacity, so a
    /// sender that clears `out` after each write allocates no new one.
    pub fn take_into(&mut self, out: &mut Vec<Bytes>) {
        if !self.batch.is_empty() {
            self.chunks.push(self.batch.split().freeze());
        }
        self.queued = 0;
        out.append(&mut self.chunks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parcel::ParcelDecoder;
    use crate::{LocalityId, ParcelHeader};
    use proptest::prelude::*;

    fn parcel(seq: u64, len: usize) -> Parcel {
        Parcel {
            header: ParcelHeader {
                kind: 1,
                flags: 0,
                source: LocalityId(0),
                dest: LocalityId(1),
                tag: 7,
                seq,
            },
            payload: Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
        }
    }

    fn take(b: &mut Batcher) -> Vec<Bytes> {
        let mut out = Vec::new();
        b.take_into(&mut out);
        out
    }

    #[test]
    fn large_payloads_are_not_copied() {
        let mut b = Batcher::new();
        let big = parcel(1, ZERO_COPY_MIN);
        let address = big.payload.as_ptr();
        b.push(parcel(0, 10)).unwrap();
        b.push(big).unwrap();
        b.push(parcel(2, 10)).unwrap();
        let chunks = take(&mut b);
        assert_eq!(chunks.len(), 4, "small, header, payload, small");
        assert_eq!(chunks[2].as_ptr(), address);
        assert!(b.is_empty());
        assert!(take(&mut b).is_empty());
    }

    #[test]
    fn full_after_the_batch_limit() {
        let mut b = Batcher::new();
        while !b.is_full() {
            b.push(parcel(0, 1000)).unwrap();
        }
        assert!(take(&mut b).iter().map(Bytes::len).sum::<usize>() >= BATCH_MAX);
        assert!(!b.is_full());
    }

    proptest! {
        /// Whatever the sizes and however writes are cut, the receiver
        /// decodes exactly the parcels pushed, in order.
        #[test]
        fn writes_decode_to_the_parcels_pushed(
            sizes in proptest::collection::vec(
                prop_oneof![0usize..64, 64usize..4096, ZERO_COPY_MIN..ZERO_COPY_MIN + 5000],
                0..40,
            ),
            cuts in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let mut b = Batcher::new();
            let mut wire = Vec::new();
            for (i, len) in sizes.iter().enumerate() {
                b.push(parcel(i as u64, *len)).unwrap();
                if cuts[i] || b.is_full() {
                    wire.extend(take(&mut b));
                }
            }
            wire.extend(take(&mut b));
            let mut decoder = ParcelDecoder::new(1 << 20);
            for chunk in &wire {
                decoder.feed(chunk);
            }
            for (i, len) in sizes.iter().enumerate() {
                let p = decoder.next_parcel().unwrap().expect("a parcel");
                prop_assert_eq!(p.header.seq, i as u64);
                prop_assert_eq!(p.payload, parcel(i as u64, *len).payload);
            }
            prop_assert!(decoder.next_parcel().unwrap().is_none());
        }
    }
}

//! Parcels: the unit of transfer, with a versioned fixed-size header, and the
//! pure (socket-free) code that frames and decodes them.
//!
//! On the wire a stream carries parcels back to back; each is a
//! [`HEADER_LEN`]-byte little-endian header followed by `payload_len` bytes of
//! payload. The meaning of `kind`, `tag` and `seq` belongs to the layer above:
//! the parcelport only routes by `dest` and checks the framing.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{LocalityId, TransportError};

/// First two bytes of every parcel header ("HX").
pub const MAGIC: u16 = 0x5848;
/// Wire-protocol version carried in every header.
pub const VERSION: u8 = 1;
/// Size of the fixed parcel header in bytes.
pub const HEADER_LEN: usize = 36;
/// Default upper bound for one parcel's payload (1 GiB).
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 30;

/// Flag bit: the receiver must not charge this parcel against its incoming
/// budget (for replies and control traffic, which must never wait behind
/// requests, or a full budget could deadlock).
pub const FLAG_UNMETERED: u16 = 1;
/// Flag bit: the payload is a note (id and length) of a shared-memory bulk
/// segment holding the real payload (only between localities of one host).
pub const FLAG_SHARED: u16 = 2;

/// The fixed-size header of a parcel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ParcelHeader {
    /// Parcel kind, defined by the layer above.
    pub kind: u8,
    /// Flag bits ([`FLAG_UNMETERED`], [`FLAG_SHARED`]; others are reserved and must be 0).
    pub flags: u16,
    /// Sending locality.
    pub source: LocalityId,
    /// Receiving locality.
    pub dest: LocalityId,
    /// A 64-bit tag defined by the layer above (e.g. which handler runs it).
    pub tag: u64,
    /// A 64-bit sequence number defined by the layer above (e.g. request id).
    pub seq: u64,
}

/// A parcel: header plus payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parcel {
    /// The header.
    pub header: ParcelHeader,
    /// The payload, opaque to the parcelport.
    pub payload: Bytes,
}

impl Parcel {
    /// Size of this parcel on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

impl ParcelHeader {
    /// Appends the encoded header, announcing `payload_len` bytes of payload.
    pub fn encode(&self, payload_len: usize, out: &mut impl BufMut) -> Result<(), TransportError> {
        let len = u32::try_from(payload_len)
            .map_err(|_| TransportError::Protocol(format!("payload of {payload_len} bytes")))?;
        out.put_u16_le(MAGIC);
        out.put_u8(VERSION);
        out.put_u8(self.kind);
        out.put_u16_le(self.flags);
        out.put_u16_le(0);
        out.put_u32_le(self.source.0);
        out.put_u32_le(self.dest.0);
        out.put_u32_le(len);
        out.put_u64_le(self.tag);
        out.put_u64_le(self.seq);
        Ok(())
    }

    /// Decodes a header from exactly [`HEADER_LEN`] bytes, returning it and the
    /// announced payload length. Rejects bad magic, unknown versions, unknown
    /// flags and payloads above `max_payload`.
    pub fn decode(
        mut bytes: &[u8],
        max_payload: usize,
    ) -> Result<(ParcelHeader, usize), TransportError> {
        if bytes.len() < HEADER_LEN {
            return Err(TransportError::Protocol("truncated parcel header".into()));
        }
        let magic = bytes.get_u16_le();
        if magic != MAGIC {
            return Err(TransportError::Protocol(format!(
                "bad parcel magic {magic:#06x}"
            )));
        }
        let version = bytes.get_u8();
        if version != VERSION {
            return Err(TransportError::Protocol(format!(
                "unsupported parcel version {version} (this build speaks {VERSION})"
            )));
        }
        let kind = bytes.get_u8();
        let flags = bytes.get_u16_le();
        if flags & !(FLAG_UNMETERED | FLAG_SHARED) != 0 {
            return Err(TransportError::Protocol(format!(
                "unknown parcel flags {flags:#06x}"
            )));
        }
        let reserved = bytes.get_u16_le();
        if reserved != 0 {
            return Err(TransportError::Protocol("reserved header bits set".into()));
        }
        let source = LocalityId(bytes.get_u32_le());
        let dest = LocalityId(bytes.get_u32_le());
        let len = bytes.get_u32_le() as usize;
        if len > max_payload {
            return Err(TransportError::Protocol(format!(
                "parcel payload of {len} bytes exceeds the limit of {max_payload}"
            )));
        }
        let tag = bytes.get_u64_le();
        let seq = bytes.get_u64_le();
        Ok((
            ParcelHeader {
                kind,
                flags,
                source,
                dest,
                tag,
                seq,
            },
            len,
        ))
    }
}

/// Appends a whole parcel (header and payload) to `out`.
pub fn encode_parcel(parcel: &Parcel, out: &mut BytesMut) -> Result<(), TransportError> {
    out.reserve(parcel.wire_len());
    parcel.header.encode(parcel.payload.len(), out)?;
    out.extend_from_slice(&parcel.payload);
    Ok(())
}

/// How far [`ParcelDecoder`] grows its buffer ahead of a payload's arrival
/// beyond the bytes already buffered (64 KiB).
const RESERVE_AHEAD: usize = 64 << 10;

/// Incremental decoder of a parcel stream: feed it bytes as they arrive and
/// take out whole parcels. It never panics on malformed input; the first
/// protocol violation is returned as an error and the stream must be dropped.
#[derive(Debug)]
pub struct ParcelDecoder {
    buf: BytesMut,
    pending: Option<(ParcelHeader, usize)>,
    max_payload: usize,
}

impl ParcelDecoder {
    /// A decoder that rejects payloads above `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        ParcelDecoder {
            buf: BytesMut::new(),
            pending: None,
            max_payload,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as parcels (including the header
    /// of a parcel whose payload is still incomplete).
    pub fn buffered(&self) -> usize {
        self.pending.map_or(0, |_| HEADER_LEN) + self.buf.len()
    }

    /// Returns the next complete parcel, `Ok(None)` if more bytes are needed.
    pub fn next_parcel(&mut self) -> Result<Option<Parcel>, TransportError> {
        if self.pending.is_none() {
            if self.buf.len() < HEADER_LEN {
                return Ok(None);
            }
            let header = ParcelHeader::decode(&self.buf[..HEADER_LEN], self.max_payload)?;
            self.buf.advance(HEADER_LEN);
            self.pending = Some(header);
        }
        let Some((header, len)) = self.pending else {
            return Ok(None);
        };
        if self.buf.len() < len {
            // Make room for the rest of the payload, but at most as much again
            // as has arrived (or RESERVE_AHEAD): memory follows the bytes the
            // peer sent, not the length it announced, which a bare header
            // could otherwise set to `max_payload`.
            let missing = len - self.buf.len();
            self.buf
                .reserve(missing.min(self.buf.len().max(RESERVE_AHEAD)));
            return Ok(None);
        }
        self.pending = None;
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(Parcel { header, payload }))
    }

    /// Whether the stream ended on a parcel boundary.
    pub fn is_at_boundary(&self) -> bool {
        self.pending.is_none() && self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parcel(kind: u8, tag: u64, payload: Vec<u8>) -> Parcel {
        Parcel {
            header: ParcelHeader {
                kind,
                flags: 0,
                source: LocalityId(3),
                dest: LocalityId(1),
                tag,
                seq: 77,
            },
            payload: Bytes::from(payload),
        }
    }

    #[test]
    fn header_round_trip() {
        let p = parcel(2, u64::MAX, vec![1, 2, 3]);
        let mut buf = BytesMut::new();
        encode_parcel(&p, &mut buf).unwrap();
        assert_eq!(buf.len(), HEADER_LEN + 3);
        let (h, len) = ParcelHeader::decode(&buf, 10).unwrap();
        assert_eq!(h, p.header);
        assert_eq!(len, 3);
    }

    #[test]
    fn rejects_bad_magic_version_flags_and_size() {
        let p = parcel(1, 1, vec![0; 100]);
        let mut good = BytesMut::new();
        encode_parcel(&p, &mut good).unwrap();
        let mut bad = good.clone();
        bad[0] ^= 0xff;
        assert!(ParcelHeader::decode(&bad, 1000).is_err());
        let mut bad = good.clone();
        bad[2] = 99;
        let err = ParcelHeader::decode(&bad, 1000).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
        let mut bad = good.clone();
        bad[4] = 0x80;
        assert!(ParcelHeader::decode(&bad, 1000).is_err());
        assert!(ParcelHeader::decode(&good, 99).is_err());
        assert!(ParcelHeader::decode(&good[..10], 1000).is_err());
    }

    #[test]
    fn decoder_handles_byte_by_byte_input() {
        let ps = vec![
            parcel(1, 5, vec![9; 10]),
            parcel(2, 6, vec![]),
            parcel(3, 7, vec![1]),
        ];
        let mut wire = BytesMut::new();
        for p in &ps {
            encode_parcel(p, &mut wire).unwrap();
        }
        let mut dec = ParcelDecoder::new(1 << 20);
        let mut out = Vec::new();
        for b in wire.iter() {
            dec.feed(&[*b]);
            while let Some(p) = dec.next_parcel().unwrap() {
                out.push(p);
            }
        }
        assert_eq!(out, ps);
        assert!(dec.is_at_boundary());
    }

    #[test]
    fn bare_header_does_not_reserve_the_announced_payload() {
        // A 36-byte header announcing 1 GiB used to make the decoder reserve
        // 1 GiB before any payload byte had arrived (fuzz/parcel_decoder).
        let mut wire = BytesMut::new();
        ParcelHeader::default()
            .encode(DEFAULT_MAX_PAYLOAD, &mut wire)
            .unwrap();
        let mut dec = ParcelDecoder::new(DEFAULT_MAX_PAYLOAD);
        dec.feed(&wire);
        assert!(dec.next_parcel().unwrap().is_none());
        assert!(dec.buf.capacity() <= 2 * RESERVE_AHEAD);
        // The buffer grows with what arrives, not with what was announced.
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..4 {
            dec.feed(&chunk);
            assert!(dec.next_parcel().unwrap().is_none());
        }
        assert!(dec.buf.capacity() <= 16 << 20);
        assert_eq!(dec.buffered(), HEADER_LEN + (4 << 20));
    }

    #[test]
    fn large_parcel_completes_in_small_chunks() {
        let p = parcel(1, 2, vec![5; 1 << 20]);
        let mut wire = BytesMut::new();
        encode_parcel(&p, &mut wire).unwrap();
        let mut dec = ParcelDecoder::new(1 << 20);
        let out: Vec<Parcel> = wire
            .chunks(1000)
            .filter_map(|chunk| {
                dec.feed(chunk);
                dec.next_parcel().unwrap()
            })
            .collect();
        assert_eq!(out, vec![p]);
        assert!(dec.is_at_boundary());
    }

    #[test]
    fn buffered_counts_the_header_of_an_incomplete_parcel() {
        // Once its header was decoded, an incomplete parcel's header bytes used
        // to drop out of `buffered` (fuzz/parcel_decoder).
        let mut wire = BytesMut::new();
        encode_parcel(&parcel(1, 2, vec![5; 10]), &mut wire).unwrap();
        let mut dec = ParcelDecoder::new(100);
        dec.feed(&wire[..HEADER_LEN + 4]);
        assert!(dec.next_parcel().unwrap().is_none());
        assert_eq!(dec.buffered(), HEADER_LEN + 4);
        dec.feed(&wire[HEADER_LEN + 4..]);
        assert!(dec.next_parcel().unwrap().is_some());
        assert_eq!(dec.buffered(), 0);
    }

    proptest! {
        #[test]
        fn decoder_round_trips_any_split(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            split in 1usize..97,
        ) {
            let ps: Vec<Parcel> = payloads.into_iter().enumerate()
                .map(|(i, p)| parcel(i as u8, i as u64, p)).collect();
            let mut wire = BytesMut::new();
            for p in &ps {
                encode_parcel(p, &mut wire).unwrap();
            }
            let mut dec = ParcelDecoder::new(1 << 20);
            let mut out = Vec::new();
            for chunk in wire.chunks(split) {
                dec.feed(chunk);
                while let Some(p) = dec.next_parcel().unwrap() {
                    out.push(p);
                }
            }
            prop_assert_eq!(out, ps);
        }

        #[test]
        fn decoder_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut dec = ParcelDecoder::new(1 << 16);
            dec.feed(&bytes);
            while let Ok(Some(_)) = dec.next_parcel() {}
        }
    }
}

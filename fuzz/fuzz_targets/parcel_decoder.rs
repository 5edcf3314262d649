//! Fuzz target for the parcel stream decoder ([`ParcelDecoder`]).
//!
//! Input layout: one configuration byte (its low three bits pick the payload
//! limit, the next two the flags of the round-tripped parcels), one byte whose
//! low three bits give the length of a chunk plan, that many plan bytes, and
//! the rest is the stream.
//!
//! Two properties are checked:
//!
//! * The stream, fed in the chunks of the plan, decodes exactly as a
//!   straightforward model of the wire format says: the same parcels (which
//!   must re-encode to the very bytes they came from) and the same ending (a
//!   protocol error, a parcel boundary or a partial parcel, with every byte
//!   after the last parcel still counted as buffered). The decoder must
//!   never panic, and with the 1 GiB default limit an announced payload must
//!   not make it allocate more than the peer actually sent (the run script
//!   sets a malloc limit far below that).
//! * Parcels cut from the stream, encoded back to back and fed in the chunks
//!   of the plan, decode to themselves.

#![no_main]

use bytes::{Bytes, BytesMut};
use hpx_parcelport::parcel::{
    encode_parcel, Parcel, ParcelDecoder, ParcelHeader, DEFAULT_MAX_PAYLOAD, FLAG_SHARED,
    FLAG_UNMETERED, HEADER_LEN, MAGIC, VERSION,
};
use hpx_parcelport::LocalityId;
use libfuzzer_sys::fuzz_target;

/// Payload limits the configuration byte chooses from: small ones so that
/// whole parcels are easy to reach, and the default one.
const MAX_PAYLOADS: [usize; 8] = [0, 1, 7, 36, 100, 255, 4096, DEFAULT_MAX_PAYLOAD];

/// Most parcels built for the round trip.
const MAX_ROUND_TRIP_PARCELS: usize = 64;

/// How a stream ends.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// A protocol violation was reported.
    Error,
    /// Every byte belongs to a returned parcel.
    Boundary,
    /// The stream stops inside a parcel.
    Partial,
}

/// What the model says a stream decodes to.
struct Expected {
    /// Number of whole parcels before the end.
    parcels: usize,
    /// Bytes those parcels take.
    consumed: usize,
    /// How the stream ends.
    end: End,
}

/// Decodes the stream with an independent model of the wire format.
fn model(stream: &[u8], max_payload: usize) -> Expected {
    let mut expected = Expected {
        parcels: 0,
        consumed: 0,
        end: End::Boundary,
    };
    loop {
        let rest = &stream[expected.consumed..];
        if rest.is_empty() {
            return expected;
        }
        let Some(header) = rest.get(..HEADER_LEN) else {
            expected.end = End::Partial;
            return expected;
        };
        let u16_at = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]);
        let len = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
        let valid = u16_at(0) == MAGIC
            && header[2] == VERSION
            && u16_at(4) & !(FLAG_UNMETERED | FLAG_SHARED) == 0
            && u16_at(6) == 0
            && len <= max_payload;
        if !valid {
            expected.end = End::Error;
            return expected;
        }
        if rest.len() - HEADER_LEN < len {
            expected.end = End::Partial;
            return expected;
        }
        expected.parcels += 1;
        expected.consumed += HEADER_LEN + len;
    }
}

/// Feeds `wire` to `decoder` in chunks of the sizes in `plan` (cycled, each
/// 1 to 256 bytes; all at once if the plan is empty), draining parcels after
/// every chunk. Stops at the first error.
fn decode_chunked(decoder: &mut ParcelDecoder, wire: &[u8], plan: &[u8]) -> (Vec<Parcel>, End) {
    let mut parcels = Vec::new();
    let mut rest = wire;
    let mut sizes = plan.iter().map(|&b| usize::from(b) + 1).cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(rest.len()).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        decoder.feed(chunk);
        loop {
            match decoder.next_parcel() {
                Ok(Some(parcel)) => parcels.push(parcel),
                Ok(None) => break,
                Err(_) => return (parcels, End::Error),
            }
        }
    }
    let end = if decoder.is_at_boundary() {
        End::Boundary
    } else {
        End::Partial
    };
    (parcels, end)
}

/// Encodes parcels back to back.
fn encode_all(parcels: &[Parcel]) -> BytesMut {
    let mut wire = BytesMut::new();
    for parcel in parcels {
        encode_parcel(parcel, &mut wire).expect("payloads here are far below 4 GiB");
    }
    wire
}

/// Checks the decoder against the model on an arbitrary stream.
fn check_stream(stream: &[u8], plan: &[u8], max_payload: usize) {
    let expected = model(stream, max_payload);
    let mut decoder = ParcelDecoder::new(max_payload);
    let (parcels, end) = decode_chunked(&mut decoder, stream, plan);
    assert_eq!(end, expected.end);
    assert_eq!(parcels.len(), expected.parcels);
    assert!(parcels.iter().all(|p| p.payload.len() <= max_payload));
    assert_eq!(&encode_all(&parcels)[..], &stream[..expected.consumed]);
    if end != End::Error {
        assert_eq!(decoder.buffered(), stream.len() - expected.consumed);
    }
}

/// Cuts the stream into payloads (sizes from the plan, cycled), encodes them
/// as parcels and checks that they decode to themselves.
fn check_round_trip(stream: &[u8], plan: &[u8], flags: u16) {
    let mut parcels = Vec::new();
    let mut rest = stream;
    let mut sizes = plan.iter().map(|&b| usize::from(b)).cycle();
    while !rest.is_empty() && parcels.len() < MAX_ROUND_TRIP_PARCELS {
        let size = sizes.next().unwrap_or(rest.len()).min(rest.len());
        let (payload, tail) = rest.split_at(size);
        rest = tail;
        let i = parcels.len() as u32;
        parcels.push(Parcel {
            header: ParcelHeader {
                kind: i as u8,
                flags,
                source: LocalityId(i),
                dest: LocalityId(!i),
                tag: u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                seq: u64::MAX - u64::from(i),
            },
            payload: Bytes::copy_from_slice(payload),
        });
    }
    let max_payload = parcels.iter().map(|p| p.payload.len()).max().unwrap_or(0);
    let wire = encode_all(&parcels);
    // Chunk with the plan reversed, so that cuts and chunks do not line up.
    let chunks: Vec<u8> = plan.iter().rev().copied().collect();
    let mut decoder = ParcelDecoder::new(max_payload);
    let (decoded, end) = decode_chunked(&mut decoder, &wire, &chunks);
    assert_eq!(end, End::Boundary);
    assert_eq!(decoded, parcels);
}

fuzz_target!(|data: &[u8]| {
    let [config, plan_len, rest @ ..] = data else {
        return;
    };
    let max_payload = MAX_PAYLOADS[usize::from(config & 7)];
    let flags = u16::from(config >> 3) & (FLAG_UNMETERED | FLAG_SHARED);
    let (plan, stream) = rest.split_at(usize::from(plan_len & 7).min(rest.len()));
    check_stream(stream, plan, max_payload);
    check_round_trip(stream, plan, flags);
});

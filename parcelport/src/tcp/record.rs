//! The records of a TCP connection, inside TLS, as plain functions over bytes.
//!
//! After the TLS handshake both directions of a connection carry records:
//! a [`HEADER_LEN`]-byte header (a kind byte and a little-endian `u32`
//! length) and that many bytes of body:
//!
//! - [`Kind::Message`]: a handshake message of [`crate::handshake`] (hello,
//!   welcome, locality table), only before the connection carries parcels;
//! - [`Kind::Data`]: the next bytes of the parcel stream of
//!   [`crate::parcel`], at most [`MAX_DATA`] (a parcel spans as many data
//!   records as it needs, so a close can follow any record);
//! - [`Kind::Close`]: the sender ends the connection: a little-endian `u32`
//!   close code of [`crate::net`] and a UTF-8 reason of at most
//!   [`MAX_REASON`] bytes. An orderly close ([`crate::net::CLOSE_SHUTDOWN`])
//!   comes between parcels unless the sender gave up flushing (the parcel
//!   cut short is dropped); the TCP connection ending without a close
//!   record is a loss.
//!
//! Every length is checked against its kind's limit before anything is
//! allocated for the body.

use crate::TransportError;

/// Bytes of a record header.
pub(super) const HEADER_LEN: usize = 5;
/// Largest body of a data record.
pub(super) const MAX_DATA: usize = 256 << 10;
/// Largest reason of a close record, in bytes.
pub(super) const MAX_REASON: usize = 1024;

/// What a record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A handshake message.
    Message,
    /// Bytes of the parcel stream.
    Data,
    /// The end of the connection, with a code and a reason.
    Close,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Message => 1,
            Kind::Data => 2,
            Kind::Close => 3,
        }
    }
}

/// The header of a record of `kind` with `len` bytes of body.
pub(super) fn header(kind: Kind, len: usize) -> Result<[u8; HEADER_LEN], TransportError> {
    let len = u32::try_from(len)
        .map_err(|_| TransportError::Protocol(format!("record of {len} bytes")))?;
    let mut out = [0u8; HEADER_LEN];
    out[0] = kind.byte();
    out[1..].copy_from_slice(&len.to_le_bytes());
    Ok(out)
}

/// Decodes a record header: its kind and body length, rejecting unknown
/// kinds and bodies beyond their limit (`max_message` for messages).
pub(super) fn decode_header(
    bytes: [u8; HEADER_LEN],
    max_message: usize,
) -> Result<(Kind, usize), TransportError> {
    let len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    let (kind, max) = match bytes[0] {
        1 => (Kind::Message, max_message),
        2 => (Kind::Data, MAX_DATA),
        3 => (Kind::Close, 4 + MAX_REASON),
        k => return Err(TransportError::Protocol(format!("unknown record kind {k}"))),
    };
    if len > max || (kind == Kind::Close && len < 4) {
        return Err(TransportError::Protocol(format!(
            "{kind:?} record of {len} bytes"
        )));
    }
    Ok((kind, len))
}

/// A whole message record.
pub(super) fn message(msg: &[u8]) -> Result<Vec<u8>, TransportError> {
    let mut out = header(Kind::Message, msg.len())?.to_vec();
    out.extend_from_slice(msg);
    Ok(out)
}

/// A whole close record; the reason is cut to [`MAX_REASON`] bytes.
pub(super) fn close(code: u32, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut out = Vec::with_capacity(HEADER_LEN + 4 + reason.len());
    out.push(Kind::Close.byte());
    // At most 4 + MAX_REASON: fits in u32.
    out.extend_from_slice(&((4 + reason.len()) as u32).to_le_bytes());
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(reason);
    out
}

/// The code and reason of a close record's body (at least 4 bytes, see
/// [`decode_header`]); a reason that is not UTF-8 is shown lossily.
pub(super) fn decode_close(body: &[u8]) -> (u32, String) {
    let mut code = [0u8; 4];
    let n = body.len().min(4);
    code[..n].copy_from_slice(&body[..n]);
    let reason = String::from_utf8_lossy(body.get(4..).unwrap_or_default()).into_owned();
    (u32::from_le_bytes(code), reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn headers_round_trip_within_their_limits() {
        let h = header(Kind::Data, MAX_DATA).unwrap();
        assert_eq!(decode_header(h, 10).unwrap(), (Kind::Data, MAX_DATA));
        let h = header(Kind::Data, MAX_DATA + 1).unwrap();
        assert!(decode_header(h, 10).is_err());
        let h = header(Kind::Message, 10).unwrap();
        assert_eq!(decode_header(h, 10).unwrap(), (Kind::Message, 10));
        assert!(decode_header(header(Kind::Message, 11).unwrap(), 10).is_err());
        assert!(decode_header([9, 0, 0, 0, 0], 10).is_err());
        assert!(decode_header([1, 0xff, 0xff, 0xff, 0xff], 1 << 20).is_err());
        assert!(decode_header(header(Kind::Close, 3).unwrap(), 10).is_err());
    }

    #[test]
    fn close_records_carry_code_and_a_bounded_reason() {
        let rec = close(3, "test abort");
        let h: [u8; HEADER_LEN] = rec[..HEADER_LEN].try_into().unwrap();
        let (kind, len) = decode_header(h, 0).unwrap();
        assert_eq!((kind, len), (Kind::Close, rec.len() - HEADER_LEN));
        assert_eq!(
            decode_close(&rec[HEADER_LEN..]),
            (3, "test abort".to_owned())
        );
        let long = "é".repeat(MAX_REASON);
        let rec = close(0, &long);
        let h: [u8; HEADER_LEN] = rec[..HEADER_LEN].try_into().unwrap();
        assert!(decode_header(h, 0).is_ok());
        let (code, reason) = decode_close(&rec[HEADER_LEN..]);
        assert_eq!(code, 0);
        assert!(reason.len() <= MAX_REASON && long.starts_with(&reason));
    }

    #[test]
    fn message_records_frame_the_message() {
        let rec = message(b"hello").unwrap();
        let h: [u8; HEADER_LEN] = rec[..HEADER_LEN].try_into().unwrap();
        assert_eq!(decode_header(h, 5).unwrap(), (Kind::Message, 5));
        assert_eq!(&rec[HEADER_LEN..], b"hello");
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in any::<[u8; HEADER_LEN]>(), body in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = decode_header(bytes, 1024);
            let _ = decode_close(&body);
        }
    }
}

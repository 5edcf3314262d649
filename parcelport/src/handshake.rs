//! The connection handshake, as plain encode/decode functions.
//!
//! Right after the TLS 1.3 handshake (of QUIC, or over TCP) the dialing side
//! sends a [`Hello`] (on a bidirectional QUIC stream it opens, or as the
//! first record on TCP); the accepting side answers with a [`Welcome`]. Each carries a token derived from the TLS session's exporter
//! keyed with the job secret and the sender's role, so a process without the
//! secret cannot produce it, a token cannot be replayed on another connection,
//! and one side's token cannot be reflected back as the other's. Nothing else
//! is read from a connection until the token has been checked.
//!
//! For the bootstrap, the root later sends the [`LocalityTable`] on the same
//! stream (or TCP connection) as the joining locality's hello.

use bytes::{Buf, BufMut};

use crate::{LocalityId, TransportError};

/// Magic bytes opening every handshake message.
pub const HANDSHAKE_MAGIC: [u8; 4] = *b"HPXA";
/// Handshake protocol version.
pub const HANDSHAKE_VERSION: u16 = 2;
/// Length of an authentication token.
pub const TOKEN_LEN: usize = 32;
/// Exporter label used to derive tokens.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-hpx-rs-auth-v1";
/// Upper bound on the locality table (a table of many localities fits).
/// Only an authenticated root sends it.
pub const MAX_HANDSHAKE_LEN: usize = 4 << 20;
/// Upper bound on a [`Hello`] or [`Welcome`]: what an unauthenticated peer
/// may make this locality read and hold.
pub const MAX_HELLO_LEN: usize = 1024;

/// Which side of a connection a token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that opened the connection.
    Dialer,
    /// The side that accepted it.
    Acceptor,
}

/// The exporter context for a token: the job secret and the role, so the two
/// directions of one connection have different tokens.
pub fn token_context(secret: &[u8], role: Role) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(secret.len() + 1);
    ctx.extend_from_slice(secret);
    ctx.push(match role {
        Role::Dialer => b'D',
        Role::Acceptor => b'A',
    });
    ctx
}

/// Compares two tokens in constant time.
pub fn tokens_equal(a: &[u8; TOKEN_LEN], b: &[u8; TOKEN_LEN]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Why a connection is being opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A locality joining the job at the root's rendezvous.
    Join,
    /// A direct connection between two localities of a running job.
    Peer,
}

/// First message of the dialing side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Why the connection is opened.
    pub purpose: Purpose,
    /// The dialer's locality id.
    pub locality: LocalityId,
    /// The number of localities the dialer believes the job has.
    pub num_localities: u32,
    /// The dialer's token.
    pub token: [u8; TOKEN_LEN],
    /// Where the dialer listens for direct connections (joins only).
    pub listen_addr: String,
    /// The port of the dialer's heartbeat socket, on the listen address's
    /// host (joins only).
    pub beat_port: u16,
}

/// Answer of the accepting side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The acceptor's locality id.
    pub locality: LocalityId,
    /// The acceptor's token.
    pub token: [u8; TOKEN_LEN],
}

/// Where one locality can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    /// Its listen address (`host:port`).
    pub listen: String,
    /// The port of its heartbeat socket, on the same host.
    pub beat_port: u16,
}

/// The bootstrap result: where every locality listens, indexed by id; or why
/// the job could not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalityTable {
    /// Every locality's addresses.
    Ready(Vec<PeerAddress>),
    /// The bootstrap failed.
    Failed(String),
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), TransportError> {
    let len = u16::try_from(s.len())
        .map_err(|_| TransportError::Protocol("string too long for handshake".into()))?;
    out.put_u16_le(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn get_str(buf: &mut &[u8]) -> Result<String, TransportError> {
    need(buf, 2)?;
    let len = buf.get_u16_le() as usize;
    need(buf, len)?;
    let s = std::str::from_utf8(&buf[..len])
        .map_err(|_| TransportError::Protocol("handshake string is not UTF-8".into()))?
        .to_owned();
    buf.advance(len);
    Ok(s)
}

fn need(buf: &[u8], n: usize) -> Result<(), TransportError> {
    if buf.len() < n {
        Err(TransportError::Protocol(
            "truncated handshake message".into(),
        ))
    } else {
        Ok(())
    }
}

fn put_preamble(out: &mut Vec<u8>) {
    out.extend_from_slice(&HANDSHAKE_MAGIC);
    out.put_u16_le(HANDSHAKE_VERSION);
}

fn get_preamble(buf: &mut &[u8]) -> Result<(), TransportError> {
    need(buf, 6)?;
    if buf[..4] != HANDSHAKE_MAGIC {
        return Err(TransportError::Protocol(
            "not an hpx-rs peer (bad handshake magic)".into(),
        ));
    }
    buf.advance(4);
    let version = buf.get_u16_le();
    if version != HANDSHAKE_VERSION {
        return Err(TransportError::Protocol(format!(
            "handshake version {version}, this build speaks {HANDSHAKE_VERSION}"
        )));
    }
    Ok(())
}

fn get_token(buf: &mut &[u8]) -> Result<[u8; TOKEN_LEN], TransportError> {
    need(buf, TOKEN_LEN)?;
    let mut token = [0u8; TOKEN_LEN];
    buf.copy_to_slice(&mut token);
    Ok(token)
}

fn finish(buf: &[u8]) -> Result<(), TransportError> {
    if buf.is_empty() {
        Ok(())
    } else {
        Err(TransportError::Protocol(
            "trailing bytes in handshake message".into(),
        ))
    }
}

impl Hello {
    /// Encodes the message.
    pub fn encode(&self) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::with_capacity(64 + self.listen_addr.len());
        put_preamble(&mut out);
        out.put_u8(match self.purpose {
            Purpose::Join => 0,
            Purpose::Peer => 1,
        });
        out.put_u32_le(self.locality.0);
        out.put_u32_le(self.num_localities);
        out.extend_from_slice(&self.token);
        put_str(&mut out, &self.listen_addr)?;
        out.put_u16_le(self.beat_port);
        Ok(out)
    }

    /// Decodes the message, rejecting anything malformed.
    pub fn decode(mut buf: &[u8]) -> Result<Hello, TransportError> {
        get_preamble(&mut buf)?;
        need(buf, 9)?;
        let purpose = match buf.get_u8() {
            0 => Purpose::Join,
            1 => Purpose::Peer,
            p => return Err(TransportError::Protocol(format!("unknown purpose {p}"))),
        };
        let locality = LocalityId(buf.get_u32_le());
        let num_localities = buf.get_u32_le();
        let token = get_token(&mut buf)?;
        let listen_addr = get_str(&mut buf)?;
        need(buf, 2)?;
        let beat_port = buf.get_u16_le();
        finish(buf)?;
        Ok(Hello {
            purpose,
            locality,
            num_localities,
            token,
            listen_addr,
            beat_port,
        })
    }
}

impl Welcome {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + 4 + TOKEN_LEN);
        put_preamble(&mut out);
        out.put_u32_le(self.locality.0);
        out.extend_from_slice(&self.token);
        out
    }

    /// Decodes the message, rejecting anything malformed.
    pub fn decode(mut buf: &[u8]) -> Result<Welcome, TransportError> {
        get_preamble(&mut buf)?;
        need(buf, 4)?;
        let locality = LocalityId(buf.get_u32_le());
        let token = get_token(&mut buf)?;
        finish(buf)?;
        Ok(Welcome { locality, token })
    }
}

impl LocalityTable {
    /// Encodes the message.
    pub fn encode(&self) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::new();
        put_preamble(&mut out);
        match self {
            LocalityTable::Ready(addrs) => {
                out.put_u8(0);
                let n = u32::try_from(addrs.len())
                    .map_err(|_| TransportError::Protocol("too many localities".into()))?;
                out.put_u32_le(n);
                for a in addrs {
                    put_str(&mut out, &a.listen)?;
                    out.put_u16_le(a.beat_port);
                }
            }
            LocalityTable::Failed(reason) => {
                out.put_u8(1);
                let cut: String = reason.chars().take(1000).collect();
                put_str(&mut out, &cut)?;
            }
        }
        Ok(out)
    }

    /// Decodes the message, rejecting anything malformed.
    pub fn decode(mut buf: &[u8]) -> Result<LocalityTable, TransportError> {
        get_preamble(&mut buf)?;
        need(buf, 1)?;
        let table = match buf.get_u8() {
            0 => {
                need(buf, 4)?;
                let n = buf.get_u32_le() as usize;
                // Each entry takes at least four bytes: bound before allocating.
                if n > buf.len() / 4 {
                    return Err(TransportError::Protocol("locality table too short".into()));
                }
                let mut addrs = Vec::with_capacity(n);
                for _ in 0..n {
                    let listen = get_str(&mut buf)?;
                    need(buf, 2)?;
                    addrs.push(PeerAddress {
                        listen,
                        beat_port: buf.get_u16_le(),
                    });
                }
                LocalityTable::Ready(addrs)
            }
            1 => LocalityTable::Failed(get_str(&mut buf)?),
            t => return Err(TransportError::Protocol(format!("unknown table type {t}"))),
        };
        finish(buf)?;
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip() {
        let hello = Hello {
            purpose: Purpose::Join,
            locality: LocalityId(5),
            num_localities: 8,
            token: [7; TOKEN_LEN],
            listen_addr: "127.0.0.1:4567".into(),
            beat_port: 4568,
        };
        assert_eq!(Hello::decode(&hello.encode().unwrap()).unwrap(), hello);
        let welcome = Welcome {
            locality: LocalityId(0),
            token: [9; TOKEN_LEN],
        };
        assert_eq!(Welcome::decode(&welcome.encode()).unwrap(), welcome);
        for table in [
            LocalityTable::Ready(vec![
                PeerAddress {
                    listen: "a:1".into(),
                    beat_port: 3,
                },
                PeerAddress {
                    listen: "b:2".into(),
                    beat_port: 65535,
                },
            ]),
            LocalityTable::Ready(vec![]),
            LocalityTable::Failed("locality 3 did not arrive".into()),
        ] {
            assert_eq!(
                LocalityTable::decode(&table.encode().unwrap()).unwrap(),
                table
            );
        }
    }

    #[test]
    fn rejects_foreign_and_truncated_messages() {
        assert!(Hello::decode(b"GET / HTTP/1.1\r\n").is_err());
        let w = Welcome {
            locality: LocalityId(1),
            token: [1; TOKEN_LEN],
        }
        .encode();
        assert!(Welcome::decode(&w[..w.len() - 1]).is_err());
        let mut long = w.clone();
        long.push(0);
        assert!(Welcome::decode(&long).is_err());
    }

    #[test]
    fn token_contexts_differ_by_role_and_secret() {
        assert_ne!(
            token_context(b"s", Role::Dialer),
            token_context(b"s", Role::Acceptor)
        );
        assert_ne!(
            token_context(b"s", Role::Dialer),
            token_context(b"t", Role::Dialer)
        );
        assert!(tokens_equal(&[3; TOKEN_LEN], &[3; TOKEN_LEN]));
        let mut other = [3; TOKEN_LEN];
        other[31] = 4;
        assert!(!tokens_equal(&[3; TOKEN_LEN], &other));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Hello::decode(&bytes);
            let _ = Welcome::decode(&bytes);
            let _ = LocalityTable::decode(&bytes);
            let mut prefixed = HANDSHAKE_MAGIC.to_vec();
            prefixed.extend_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
            prefixed.extend_from_slice(&bytes);
            let _ = Hello::decode(&prefixed);
            let _ = LocalityTable::decode(&prefixed);
        }
    }
}

//! Writes the seed corpora under `fuzz/seeds/`: a few valid messages made by
//! the real encoders, so that fuzzing starts past the magic numbers.
//!
//! Run it after a wire-format change and check the files in:
//! `cargo run --manifest-path fuzz/Cargo.toml --example write_seeds`.

use std::fs;
use std::io;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use hpx_parcelport::handshake::{
    Hello, LocalityTable, PeerAddress, Purpose, Welcome, TOKEN_LEN,
};
use hpx_parcelport::parcel::{
    encode_parcel, Parcel, ParcelHeader, FLAG_SHARED, FLAG_UNMETERED, HEADER_LEN,
};
use hpx_parcelport::{LocalityId, TransportError};

/// A parcel with the given kind, flags and payload.
fn parcel(kind: u8, flags: u16, payload: &[u8]) -> Parcel {
    Parcel {
        header: ParcelHeader {
            kind,
            flags,
            source: LocalityId(1),
            dest: LocalityId(0),
            tag: 0x0123_4567_89ab_cdef,
            seq: u64::from(kind),
        },
        payload: Bytes::copy_from_slice(payload),
    }
}

/// A `parcel_decoder` input: configuration byte (payload limit index), chunk
/// plan, then the parcels encoded back to back, the last one cut to `cut`
/// bytes of the stream if given.
fn parcel_input(
    config: u8,
    plan: &[u8],
    parcels: &[Parcel],
    cut: Option<usize>,
) -> Result<Vec<u8>, TransportError> {
    let mut wire = BytesMut::new();
    for p in parcels {
        encode_parcel(p, &mut wire)?;
    }
    wire.truncate(cut.unwrap_or(wire.len()));
    let plan_len = u8::try_from(plan.len()).unwrap_or(u8::MAX);
    let mut input = vec![config, plan_len];
    input.extend_from_slice(plan);
    input.extend_from_slice(&wire);
    Ok(input)
}

/// Writes one seed file.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");

    let parcels = seeds.join("parcel_decoder");
    // Limit 36 bytes, whole stream at once: a parcel and an empty one.
    let input = parcel_input(
        3,
        &[],
        &[parcel(1, 0, b"0123456789"), parcel(2, 0, b"")],
        None,
    )?;
    write(&parcels, "two_parcels", &input)?;
    // Limit 4096, chunks of 1, 36 and 8 bytes: flagged parcels.
    let input = parcel_input(
        6,
        &[0, 35, 7],
        &[
            parcel(3, FLAG_UNMETERED, b"reply"),
            parcel(4, FLAG_SHARED, b"shm-file-name"),
            parcel(5, FLAG_UNMETERED | FLAG_SHARED, &[0xff; 40]),
        ],
        None,
    )?;
    write(&parcels, "flagged_parcels", &input)?;
    // Default limit: a parcel cut short inside its payload.
    let input = parcel_input(
        7,
        &[99],
        &[parcel(6, 0, &[0x5a; 300])],
        Some(HEADER_LEN + 20),
    )?;
    write(&parcels, "partial_parcel", &input)?;

    let handshake = seeds.join("handshake");
    let hello = Hello {
        purpose: Purpose::Join,
        locality: LocalityId(3),
        num_localities: 4,
        token: [0x11; TOKEN_LEN],
        listen_addr: "127.0.0.1:7910".into(),
        beat_port: 7911,
    };
    write(&handshake, "hello_join", &hello.encode()?)?;
    let hello = Hello {
        purpose: Purpose::Peer,
        listen_addr: String::new(),
        ..hello
    };
    write(&handshake, "hello_peer", &hello.encode()?)?;
    let welcome = Welcome {
        locality: LocalityId(0),
        token: [0x22; TOKEN_LEN],
    };
    write(&handshake, "welcome", &welcome.encode())?;
    let table = LocalityTable::Ready(vec![
        PeerAddress {
            listen: "10.0.0.1:7910".into(),
            beat_port: 7911,
        },
        PeerAddress {
            listen: "[::1]:7911".into(),
            beat_port: 7912,
        },
    ]);
    write(&handshake, "table_ready", &table.encode()?)?;
    let table = LocalityTable::Failed("locality 2 did not arrive".into());
    write(&handshake, "table_failed", &table.encode()?)?;
    Ok(())
}

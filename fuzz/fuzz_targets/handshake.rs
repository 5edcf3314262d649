//! Fuzz target for the handshake decoders ([`Hello::decode`],
//! [`Welcome::decode`] and [`LocalityTable::decode`]).
//!
//! Every decoder runs on the whole input. None may panic, and the encoding is
//! canonical: whatever decodes must re-encode to the very same bytes (except a
//! failure reason longer than the encoder's 1000-character cut, which must
//! still re-encode to a message that decodes).

#![no_main]

use hpx_parcelport::handshake::{Hello, LocalityTable, Welcome};
use libfuzzer_sys::fuzz_target;

/// The most characters [`LocalityTable::encode`] keeps of a failure reason.
const MAX_REASON_CHARS: usize = 1000;

fuzz_target!(|data: &[u8]| {
    if let Ok(hello) = Hello::decode(data) {
        let again = hello.encode().expect("a decoded hello re-encodes");
        assert_eq!(again, data);
    }
    if let Ok(welcome) = Welcome::decode(data) {
        assert_eq!(welcome.encode(), data);
    }
    if let Ok(table) = LocalityTable::decode(data) {
        let again = table.encode().expect("a decoded table re-encodes");
        match &table {
            LocalityTable::Failed(reason) if reason.chars().count() > MAX_REASON_CHARS => {
                assert!(LocalityTable::decode(&again).is_ok());
            }
            _ => assert_eq!(again, data),
        }
    }
});

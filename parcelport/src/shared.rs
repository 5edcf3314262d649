//! Large payloads between localities on one host travel through files in a
//! shared-memory directory (`/dev/shm`) instead of through QUIC: the sender
//! writes the payload to a new file and sends only its name; the receiver
//! reads the file and removes it. One copy each way, no encryption, no
//! packets: memory bandwidth instead of loopback packet rate.
//!
//! Only names made by [`SharedDir::stash`] are accepted on receipt (letters,
//! digits and dashes, starting with `hpx-`), always inside the receiver's
//! own directory, so a name from the network cannot point anywhere else.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::TransportError;

/// Payloads at least this large go through the shared directory.
pub const SHARED_MIN: usize = 256 * 1024;

/// The shared-memory directory of this locality and the files it made.
#[derive(Debug)]
pub struct SharedDir {
    dir: PathBuf,
    prefix: String,
    counter: AtomicU64,
    made: Mutex<Vec<PathBuf>>,
}

fn valid_name(name: &str) -> bool {
    name.starts_with("hpx-")
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl SharedDir {
    /// Files in `dir`, named after this process and `tag` (e.g. its port).
    pub fn new(dir: &Path, tag: u64) -> SharedDir {
        SharedDir {
            dir: dir.to_path_buf(),
            prefix: format!("hpx-{}-{tag}", std::process::id()),
            counter: AtomicU64::new(0),
            made: Mutex::new(Vec::new()),
        }
    }

    fn made(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `payload` to a new file (mode 0600) and returns its name.
    pub fn stash(&self, payload: &[u8]) -> std::io::Result<String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}", self.prefix);
        let path = self.dir.join(&name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(payload)?;
        let mut made = self.made();
        // Forget files the receivers have taken already.
        if made.len() >= 64 {
            made.retain(|p| p.exists());
        }
        made.push(path);
        Ok(name)
    }

    /// Reads and removes the file named in `name` (at most `max` bytes).
    pub fn take(&self, name: &[u8], max: usize) -> Result<Bytes, TransportError> {
        let name = std::str::from_utf8(name)
            .ok()
            .filter(|n| valid_name(n))
            .ok_or_else(|| TransportError::Protocol("bad shared payload name".into()))?;
        let path = self.dir.join(name);
        let bad = |e: std::io::Error| {
            TransportError::Protocol(format!("shared payload {}: {e}", path.display()))
        };
        let size = std::fs::metadata(&path).map_err(bad)?.len();
        if size > max as u64 {
            let _ = std::fs::remove_file(&path);
            return Err(TransportError::Protocol(format!(
                "shared payload of {size} bytes exceeds the limit of {max}"
            )));
        }
        let data = std::fs::read(&path).map_err(bad)?;
        std::fs::remove_file(&path).map_err(bad)?;
        Ok(Bytes::from(data))
    }

    /// Removes the files this locality made that nobody took.
    pub fn clean_up(&self) {
        for path in self.made().drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        self.clean_up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stash_and_take_round_trip() {
        let dir = std::env::temp_dir();
        let a = SharedDir::new(&dir, 1);
        let b = SharedDir::new(&dir, 2);
        let name = a.stash(b"payload bytes").unwrap();
        assert_eq!(
            b.take(name.as_bytes(), 100).unwrap().as_ref(),
            b"payload bytes"
        );
        assert!(b.take(name.as_bytes(), 100).is_err(), "taken twice");
        let name = a.stash(&[7u8; 50]).unwrap();
        assert!(b.take(name.as_bytes(), 10).is_err(), "over the limit");
        assert!(!dir.join(&name).exists(), "refused files are removed");
        let left = a.stash(b"never taken").unwrap();
        drop(a);
        assert!(!dir.join(left).exists(), "the maker cleans up");
    }

    #[test]
    fn foreign_names_are_refused() {
        let b = SharedDir::new(&std::env::temp_dir(), 3);
        for name in [
            "../etc/passwd",
            "hpx-../../x",
            "/dev/null",
            "passwd",
            "hpx-a/b",
            "",
            "hpx-\u{0}",
        ] {
            assert!(b.take(name.as_bytes(), 1 << 20).is_err(), "{name:?}");
        }
        assert!(b.take(&[0xff, 0xfe], 10).is_err());
    }
}

//! Payloads too large for a shared-memory ring (see the shared-memory
//! parcelport) travel through files of their own in the shared-memory
//! directory (`/dev/shm`): the sender writes the payload to a new file and
//! sends only its name through the ring; the receiver maps the file, reads
//! the payload in place and removes the name. One copy, by the sender.
//!
//! Only names made by [`SharedDir::stash`] for this job are accepted on
//! receipt (`hpx-<job>-`, then letters, digits and dashes), always inside
//! the receiver's own directory, so a name from the network cannot point
//! anywhere else. The job tag comes from the job secret ([`job_tag`]), so
//! whoever ends last (any locality, or the launcher) can remove every file
//! the job left behind: [`remove_job_files`].

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::TransportError;

/// The shared-memory directory of this locality and the files it made.
#[derive(Debug)]
pub struct SharedDir {
    dir: PathBuf,
    /// The job's tag.
    job: String,
    /// `hpx-<job>-`: every file of the job starts so.
    job_prefix: String,
    /// `hpx-<job>-<locality>`: this locality's files.
    prefix: String,
    counter: AtomicU64,
    made: Mutex<Vec<PathBuf>>,
    /// True once the job's files were removed: no file is made after that
    /// (a stash holds the read side while it writes).
    closed: parking_lot::RwLock<bool>,
}

/// A short public tag of the job with `secret`, for file names: 16 hex
/// digits of a SHA-256 of the secret (which it does not reveal).
pub fn job_tag(secret: &[u8]) -> String {
    let mut input = b"hpx-rs shared files v1:".to_vec();
    input.extend_from_slice(secret);
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Removes every file of the job tagged `job` from `dir`; returns how many.
/// For the end of a job: files of a locality that was killed, or that
/// nobody took, would otherwise stay in memory until the next reboot.
pub fn remove_job_files(dir: &Path, job: &str) -> usize {
    let prefix = format!("hpx-{job}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

impl SharedDir {
    /// Files in `dir` of the job tagged `job` ([`job_tag`]), made by `locality`.
    pub fn new(dir: &Path, job: &str, locality: u32) -> SharedDir {
        SharedDir {
            dir: dir.to_path_buf(),
            job: job.to_owned(),
            job_prefix: format!("hpx-{job}-"),
            prefix: format!("hpx-{job}-{locality}"),
            counter: AtomicU64::new(0),
            made: Mutex::new(Vec::new()),
            closed: parking_lot::RwLock::new(false),
        }
    }

    fn valid_name(&self, name: &str) -> bool {
        name.starts_with(&self.job_prefix)
            && name.len() <= 128
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }

    fn made(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `payload` to a new file (mode 0600) and returns its name.
    pub fn stash(&self, payload: &[u8]) -> std::io::Result<String> {
        let closed = self.closed.read();
        if *closed {
            return Err(std::io::Error::other("the job's shared files are closed"));
        }
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
            .filter(|n| self.valid_name(n))
            .ok_or_else(|| TransportError::Protocol("bad shared payload name".into()))?;
        let path = self.dir.join(name);
        let bad = |e: std::io::Error| {
            TransportError::Protocol(format!("shared payload {}: {e}", path.display()))
        };
        let file = std::fs::File::open(&path).map_err(bad)?;
        // Gone from the directory at once; the open file stays readable.
        std::fs::remove_file(&path).map_err(bad)?;
        let size = file.metadata().map_err(bad)?.len();
        if size > max as u64 {
            return Err(TransportError::Protocol(format!(
                "shared payload of {size} bytes exceeds the limit of {max}"
            )));
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        // The payload is read where it lies (no copy into a new buffer).
        // SAFETY: the file is this job's (0600, its name checked above),
        // written in full by its sender before the name was sent, and no
        // longer in the directory: nothing changes or truncates it while
        // the mapping lives.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(bad)?;
        Ok(Bytes::from_owner(map))
    }

    /// Removes the files this locality made that nobody took.
    pub fn clean_up(&self) {
        for path in self.made().drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Removes every file of this job, whoever made it: at the end of the
    /// job, when nothing is in flight any more, or nothing matters.
    pub fn clean_up_job(&self) {
        *self.closed.write() = true;
        self.made().clear();
        remove_job_files(&self.dir, &self.job);
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
        let job = job_tag(b"stash_and_take_round_trip");
        let a = SharedDir::new(&dir, &job, 1);
        let b = SharedDir::new(&dir, &job, 2);
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
        let dir = std::env::temp_dir();
        let other = SharedDir::new(&dir, &job_tag(b"another job"), 0);
        let b = SharedDir::new(&dir, &job_tag(b"foreign_names_are_refused"), 3);
        let theirs = other.stash(b"not yours").unwrap();
        assert!(
            b.take(theirs.as_bytes(), 100).is_err(),
            "another job's file"
        );
        drop(other);
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

#[cfg(test)]
mod job_tests {
    use super::*;

    #[test]
    fn the_job_cleans_up_files_of_any_of_its_localities() {
        let dir = std::env::temp_dir();
        let job = job_tag(b"the_job_cleans_up");
        assert_eq!(job.len(), 16);
        assert_ne!(job, job_tag(b"another secret"));
        let a = SharedDir::new(&dir, &job, 0);
        let b = SharedDir::new(&dir, &job, 1);
        let bystander = SharedDir::new(&dir, &job_tag(b"bystander"), 0);
        let kept = bystander.stash(b"other job").unwrap();
        let names = [a.stash(b"x").unwrap(), b.stash(b"y").unwrap()];
        // Locality 1 dies without cleaning: locality 0 removes its file too.
        std::mem::forget(b);
        a.clean_up_job();
        for n in &names {
            assert!(!dir.join(n).exists(), "{n} left behind");
        }
        assert!(dir.join(&kept).exists(), "another job's file was removed");
        assert_eq!(remove_job_files(&dir, &job), 0);
    }
}

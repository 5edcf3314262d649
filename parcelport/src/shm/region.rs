//! Regions of shared memory for a group of localities of one host, for the
//! layers above to build on (the collectives' segment per communicator).
//!
//! A region is the file `hpx-<job>-region-<key>` in the job's shared
//! directory (mode 0600), made or opened by whichever member comes first,
//! zero-filled, mapped read-write by every member. Its first 64 bytes count
//! the members that opened it; the last to open unlinks the file, and the
//! job's end removes it in any case (it is one of the job's files). What the
//! members write there, and how they keep out of each other's way, is the
//! user's protocol: the region only offers atomic words and plain copies.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::ring::Segment;

/// Bytes before the user's part: the count of members that opened it.
const HEADER: usize = 64;
/// Largest region (the user's part).
const MAX_REGION: usize = 1 << 30;

/// A region of memory shared with the other members of a group of
/// localities of this host (see the module documentation). Offsets are
/// relative to the user's part, `len()` bytes, zero when first made.
#[derive(Debug)]
pub struct SharedRegion {
    seg: Segment,
}

impl SharedRegion {
    /// Makes or opens the region `key` of `dir` for a job tagged `job`, with
    /// `len` bytes for the user, shared by `members` localities.
    pub(crate) fn open(
        dir: &Path,
        job: &str,
        key: &str,
        len: usize,
        members: u32,
    ) -> std::io::Result<SharedRegion> {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(std::io::Error::other(format!(
                "a region's key is letters, digits and '-', not {key:?}"
            )));
        }
        if len > MAX_REGION {
            return Err(std::io::Error::other(format!(
                "a region of {len} bytes exceeds the limit of {MAX_REGION}"
            )));
        }
        let path = region_path(dir, job, key);
        let total = (HEADER + len).next_multiple_of(8);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        // Every member asks for the same size: the first sets it, and a
        // region is never shrunk under a member that mapped it.
        let found = file.metadata()?.len();
        if found < total as u64 {
            file.set_len(total as u64)?;
        } else if found > total as u64 {
            return Err(std::io::Error::other(format!(
                "{} holds {found} bytes, not the {total} asked for",
                path.display()
            )));
        }
        reserve(&file, total, &path)?;
        let seg = Segment::from_file(&file, total)?;
        let opened = seg.u32_at(0).fetch_add(1, Ordering::AcqRel) + 1;
        if opened >= members {
            // Everyone holds it now: the name is no longer needed.
            let _ = std::fs::remove_file(&path);
        }
        Ok(SharedRegion { seg })
    }

    /// Bytes for the user.
    pub fn len(&self) -> usize {
        self.seg.len() - HEADER
    }

    /// Whether the user's part is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The 64-bit word at `offset` (a multiple of 8).
    ///
    /// # Panics
    /// If the word is not inside the region or not aligned.
    pub fn u64_at(&self, offset: usize) -> &AtomicU64 {
        self.seg.u64_at(HEADER + offset)
    }

    /// The 32-bit word at `offset` (a multiple of 4).
    ///
    /// # Panics
    /// If the word is not inside the region or not aligned.
    pub fn u32_at(&self, offset: usize) -> &AtomicU32 {
        self.seg.u32_at(HEADER + offset)
    }

    /// Copies `bytes` to `offset`. The caller's protocol must keep every
    /// other member from reading or writing these bytes meanwhile (publish
    /// them afterwards with a release store).
    ///
    /// # Panics
    /// If the range is not inside the region.
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        self.seg.write(HEADER + offset, bytes);
    }

    /// The `len` bytes at `offset`, in place.
    ///
    /// # Safety
    /// No member may write these bytes while the slice lives: the caller's
    /// protocol must give them to the readers alone meanwhile (published
    /// with a release store that this member loaded with acquire, and not
    /// written again until every reader said it is done).
    ///
    /// # Panics
    /// If the range is not inside the region.
    pub unsafe fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        self.seg.bytes(HEADER + offset, len)
    }

    /// The `len` bytes at `offset`, in place, to write.
    ///
    /// # Safety
    /// No other member may read or write these bytes while the slice lives
    /// (publish them afterwards with a release store), and the caller holds
    /// no other slice of them.
    ///
    /// # Panics
    /// If the range is not inside the region.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        // SAFETY: exclusive by the caller's contract.
        unsafe { self.seg.bytes_mut(HEADER + offset, len) }
    }

    /// Copies the bytes at `offset` into `out`. The caller's protocol must
    /// keep every other member from writing them meanwhile (they were
    /// published with a release store that this member loaded with acquire).
    ///
    /// # Panics
    /// If the range is not inside the region.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(self.seg.bytes(HEADER + offset, out.len()));
    }
}

/// Gives the file's `len` bytes their memory now, so that a full shared
/// directory is an error here rather than a SIGBUS when a page is first
/// written (a no-op where the pages exist; file systems that cannot
/// reserve are left to allocate as they go).
fn reserve(file: &std::fs::File, len: usize, path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: a plain system call on an open descriptor.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 | libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        code => Err(std::io::Error::other(format!(
            "cannot reserve {len} bytes of shared memory for {}: {} (is the shared \
             directory full?)",
            path.display(),
            std::io::Error::from_raw_os_error(code)
        ))),
    }
}

/// The file of region `key` of job `job`.
fn region_path(dir: &Path, job: &str, key: &str) -> PathBuf {
    dir.join(format!("hpx-{job}-region-{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (PathBuf, String) {
        let job = crate::shared::job_tag(format!("region-test-{}", std::process::id()).as_bytes());
        (std::env::temp_dir(), job)
    }

    #[test]
    fn members_share_the_bytes_and_the_last_to_open_unlinks() {
        let (dir, job) = scratch();
        let a = SharedRegion::open(&dir, &job, "c1", 100, 3).unwrap();
        let b = SharedRegion::open(&dir, &job, "c1", 100, 3).unwrap();
        assert_eq!(a.len(), 104, "rounded up to whole words");
        assert!(
            region_path(&dir, &job, "c1").exists(),
            "two of three opened"
        );
        a.write(8, b"hello");
        a.u64_at(0).store(7, Ordering::Release);
        assert_eq!(b.u64_at(0).load(Ordering::Acquire), 7);
        let mut out = [0u8; 5];
        b.read(8, &mut out);
        assert_eq!(&out, b"hello");
        let c = SharedRegion::open(&dir, &job, "c1", 100, 3).unwrap();
        assert!(
            !region_path(&dir, &job, "c1").exists(),
            "the last one unlinks"
        );
        assert_eq!(c.u64_at(0).load(Ordering::Acquire), 7);
        assert_eq!(c.u32_at(96).load(Ordering::Relaxed), 0, "zero-filled");
    }

    #[test]
    fn a_full_shared_directory_is_an_error_not_a_crash() {
        // A tmpfs of 256 KiB of our own (root, as in CI; elsewhere the test
        // says why it cannot run and fails only where it could).
        let dir = std::env::temp_dir().join(format!("hpx-region-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            assert_ne!(
                // SAFETY: a plain system call without arguments.
                unsafe { libc::geteuid() },
                0,
                "root could not mount a tmpfs for the test"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
        let job = crate::shared::job_tag(b"full directory");
        let small = SharedRegion::open(&dir, &job, "small", 64 << 10, 1);
        let big = SharedRegion::open(&dir, &job, "big", 1 << 20, 1);
        let _ = std::process::Command::new("umount").arg(&dir).status();
        let _ = std::fs::remove_dir(&dir);
        assert!(small.is_ok(), "{small:?}");
        let e = big.expect_err("1 MiB in a 256 KiB directory");
        assert!(e.to_string().contains("cannot reserve"), "{e}");
    }

    #[test]
    fn bad_keys_sizes_and_mismatched_sizes_are_errors() {
        let (dir, job) = scratch();
        assert!(SharedRegion::open(&dir, &job, "../x", 8, 2).is_err());
        assert!(SharedRegion::open(&dir, &job, "", 8, 2).is_err());
        assert!(SharedRegion::open(&dir, &job, "big", MAX_REGION + 1, 2).is_err());
        let _a = SharedRegion::open(&dir, &job, "sized", 64, 2).unwrap();
        let e = SharedRegion::open(&dir, &job, "sized", 32, 2).unwrap_err();
        assert!(e.to_string().contains("not the"), "{e}");
        let _ = std::fs::remove_file(region_path(&dir, &job, "sized"));
    }
}

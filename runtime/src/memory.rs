//! Fresh memory for large buffers: new partitions, payloads, results.
//!
//! On Linux the first touch of freshly mapped memory costs a page fault per
//! 4 KiB page, which dominates operations that write a new buffer once (a
//! copy into a new `Vec` runs at a third of a copy into a warm one on this
//! project's machine). Large buffers ask the kernel for huge pages instead,
//! as NumPy's allocator does; where the kernel does not offer them on
//! request the advice has no effect.

/// Buffers from this size on are advised to use huge pages.
pub const HUGE_FROM: usize = 4 << 20;

/// `len` zeros in fresh memory, for a buffer about to be written in full.
pub fn fresh<T: bytemuck::Zeroable + Clone>(len: usize) -> Vec<T> {
    // Zeros come from the allocator's zeroed memory (untouched pages for
    // large sizes), so the advice below still applies to every page.
    let mut v = vec![T::zeroed(); len];
    advise_fresh(v.as_mut_ptr().cast(), std::mem::size_of_val(v.as_slice()));
    v
}

/// [`fresh`], or `None` where the memory cannot be had (a size from outside
/// that is too large is an error to report, not an abort).
pub fn try_fresh<T: bytemuck::Zeroable>(len: usize) -> Option<Vec<T>> {
    let mut v: Vec<T> = bytemuck::allocation::try_zeroed_vec(len).ok()?;
    advise_fresh(v.as_mut_ptr().cast(), std::mem::size_of_val(v.as_slice()));
    Some(v)
}

/// Asks for huge pages behind `bytes` bytes at `at`, memory that was just
/// allocated and not yet touched (small buffers are left alone).
pub fn advise_fresh(at: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        if bytes < HUGE_FROM {
            return;
        }
        const PAGE: usize = 4096;
        let start = (at as usize).next_multiple_of(PAGE);
        let end = (at as usize).saturating_add(bytes) & !(PAGE - 1);
        if end > start {
            // SAFETY: the range lies inside the caller's allocation;
            // MADV_HUGEPAGE changes how its pages are backed, never their
            // contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (at, bytes);
}

/// Buffers of this size or more are kept for reuse when their payload is
/// done with ([`buffer`], [`shared`]).
pub const POOLED_FROM: usize = 1 << 20;
/// At most this many buffers are kept for reuse…
const POOL_KEEP: usize = 4;
/// …holding at most this many bytes together.
const POOL_BYTES: usize = 512 << 20;

/// Large byte buffers whose payloads were sent or read: their pages are
/// mapped and touched already, so writing the next payload into one runs at
/// the speed of a copy into warm memory instead of paying a page fault and a
/// zeroing per page.
static POOL: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

fn pool() -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// An empty byte buffer with room for at least `capacity` bytes: one kept
/// for reuse if one is large enough, else fresh memory (advised as in
/// [`fresh`]).
pub fn buffer(capacity: usize) -> Vec<u8> {
    if capacity >= POOLED_FROM {
        let mut kept = pool();
        let best = kept
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        if let Some(i) = best {
            return kept.swap_remove(i);
        }
    }
    let mut v = Vec::with_capacity(capacity);
    advise_fresh(v.as_mut_ptr(), capacity);
    v
}

/// `buf` as shared bytes that give the buffer back for reuse (see
/// [`buffer`]) when the last slice of them is dropped.
pub fn shared(buf: Vec<u8>) -> bytes::Bytes {
    if buf.capacity() < POOLED_FROM {
        return bytes::Bytes::from(buf);
    }
    bytes::Bytes::from_owner(Returned(buf))
}

/// A buffer lent out as [`bytes::Bytes`], returned to the pool on drop.
struct Returned(Vec<u8>);

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        let mut kept = pool();
        let held: usize = kept.iter().map(Vec::capacity).sum();
        if kept.len() < POOL_KEEP && held.saturating_add(buf.capacity()) <= POOL_BYTES {
            kept.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_come_back_for_reuse() {
        let mut a = buffer(3 * POOLED_FROM);
        a.extend_from_slice(&vec![1u8; 3 * POOLED_FROM]);
        let at = a.as_ptr();
        let bytes = shared(a);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(&slice[..], &[1u8; 10]);
        drop(slice);
        let b = buffer(2 * POOLED_FROM);
        assert!(b.is_empty() && b.capacity() >= 2 * POOLED_FROM);
        assert_eq!(b.as_ptr(), at, "the same memory again");
        let c = buffer(2 * POOLED_FROM);
        assert_ne!(c.as_ptr(), at, "lent once at a time");
        let small = shared(vec![1u8; 10]);
        assert_eq!(&small[..], &[1u8; 10]);
        assert!(pool().len() <= POOL_KEEP);
    }
}

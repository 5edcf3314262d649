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

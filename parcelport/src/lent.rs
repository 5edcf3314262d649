//! Memory a parcelport lends for one payload, so that the layer above
//! encodes straight into what crosses to the peer (see
//! [`crate::Parcelport::payload_buffer`]).

use bytes::Bytes;

/// What a parcelport lends: writable memory, and the payload it becomes.
pub(crate) trait Lend: Send {
    /// The memory to write, all of it the caller's.
    fn memory(&mut self) -> &mut [u8];
    /// The length of [`Lend::memory`].
    fn capacity(&self) -> usize;
    /// The first `len` bytes as a payload to send.
    fn freeze(self: Box<Self>, len: usize) -> Bytes;
}

/// Memory lent for a payload to one destination: write the payload into
/// [`PayloadBuffer::memory`], then [`PayloadBuffer::freeze`] it and send
/// it in a parcel to that destination, which then crosses without another
/// copy. Dropped unsent, the memory goes back to the parcelport.
pub struct PayloadBuffer(Box<dyn Lend>);

impl PayloadBuffer {
    pub(crate) fn new(lend: impl Lend + 'static) -> PayloadBuffer {
        PayloadBuffer(Box::new(lend))
    }

    /// The memory to write (its length is the capacity asked for, or more).
    pub fn memory(&mut self) -> &mut [u8] {
        self.0.memory()
    }

    /// The length of [`PayloadBuffer::memory`].
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// The first `len` bytes written, as a parcel's payload (`len` is
    /// clamped to the capacity).
    pub fn freeze(self, len: usize) -> Bytes {
        self.0.freeze(len)
    }
}

impl std::fmt::Debug for PayloadBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadBuffer").finish_non_exhaustive()
    }
}

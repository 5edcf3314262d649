//! Shared-memory segments, the single-producer single-consumer ring of
//! parcels that one locality writes and another reads, and the futex
//! wake-ups between processes.
//!
//! A segment is a file in a tmpfs directory (`/dev/shm`) mapped shared by
//! the processes of one job; its words are atomics read and written by both
//! sides. The ring's producer owns `tail`, its consumer owns `head`; records
//! lie between them and are written before `tail` moves past them
//! (release/acquire), so neither side ever reads bytes the other is writing.
//! The consumer checks every record as it would check bytes from a socket:
//! nothing in the segment can make it panic or allocate without bound.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::parcel::HEADER_LEN;
use crate::{Parcel, ParcelHeader, TransportError};

/// A file of a job's shared memory, mapped read-write and shared.
pub(crate) struct Segment {
    map: memmap2::MmapRaw,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("len", &self.map.len())
            .finish()
    }
}

impl Segment {
    /// Creates the file `path` (it must not exist; mode 0600) of `len`
    /// zero bytes and maps it.
    pub(crate) fn create(path: &Path, len: usize) -> std::io::Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let made = file
            .set_len(len as u64)
            .and_then(|()| Segment::from_file(&file, len));
        if made.is_err() {
            let _ = std::fs::remove_file(path);
        }
        made
    }

    /// Opens and maps the existing file `path`, which must hold between
    /// `min` and `max` bytes.
    pub(crate) fn open(path: &Path, min: usize, max: usize) -> std::io::Result<Segment> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len < min as u64 || len > max as u64 || len % 8 != 0 {
            return Err(std::io::Error::other(format!(
                "{} holds {len} bytes",
                path.display()
            )));
        }
        Segment::from_file(&file, len as usize)
    }

    /// Maps the first `len` bytes of `file`.
    pub(crate) fn from_file(file: &File, len: usize) -> std::io::Result<Segment> {
        let map = memmap2::MmapOptions::new().len(len).map_raw(file)?;
        Ok(Segment { map })
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The 64-bit word at byte `offset` (a multiple of 8 inside the segment).
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len(), "word outside");
        // SAFETY: in bounds and aligned (the mapping is page-aligned); the
        // memory lives as long as `self`, and is only ever accessed
        // atomically at this offset by every process of the job.
        unsafe { &*(self.map.as_mut_ptr().add(offset) as *const AtomicU64) }
    }

    /// The 32-bit word at byte `offset` (a multiple of 4 inside the segment).
    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.len(), "word outside");
        // SAFETY: as in `u64_at`.
        unsafe { &*(self.map.as_mut_ptr().add(offset) as *const AtomicU32) }
    }

    /// The `len` bytes at `offset`. Only for memory that the protocol gives
    /// to the reader alone for as long as the slice lives (a bulk payload
    /// until its receiver frees it).
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= self.len(), "read outside");
        // SAFETY: in bounds; the memory lives as long as `self`, and the
        // protocol keeps the other side from writing it meanwhile.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset), len) }
    }

    /// The `len` bytes at `offset`, to write in place.
    ///
    /// # Safety
    /// The protocol gives this range to the caller alone while the slice
    /// lives (no other reader or writer, here or in another process).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn bytes_mut(&self, offset: usize, len: usize) -> &mut [u8] {
        assert!(offset + len <= self.len(), "write outside");
        // SAFETY: in bounds; exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(offset), len) }
    }

    /// Copies `bytes` to `offset`.
    pub(crate) fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len(), "write outside");
        // SAFETY: in bounds; the ring protocol gives this range to the
        // writer alone until it publishes it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_mut_ptr().add(offset),
                bytes.len(),
            )
        }
    }

    /// Copies `out.len()` bytes from `offset`.
    fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= self.len(), "read outside");
        // SAFETY: in bounds; the ring protocol gives this range to the
        // reader alone until it releases it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            )
        }
    }
}

/// Sleeps while `word` holds `expected` (or until woken, or `timeout`).
/// The word lies in memory shared between processes: no private futex.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: futex(2) on a valid, aligned 32-bit word that outlives the
    // call; the timeout pointer is null or points to a live timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes up to `count` sleepers on `word`.
pub(crate) fn futex_wake(word: &AtomicU32, count: i32) {
    // SAFETY: futex(2) on a valid, aligned 32-bit word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// "hpx-ring" in ASCII: the ring header's first word.
const RING_MAGIC: u64 = u64::from_le_bytes(*b"hpx-ring");
/// Where the records start: one page of header, the cursors on lines of
/// their own.
const DATA: usize = 4096;
const MAGIC_AT: usize = 0;
const CAPACITY_AT: usize = 8;
const TAIL_AT: usize = 64;
const HEAD_AT: usize = 128;
const WANT_SPACE_AT: usize = 192;
const SPACE_SEQ_AT: usize = 196;
/// A record's length word that sends the reader back to the ring's start.
const WRAP: u32 = u32::MAX;
/// A record: its length (u32), 4 reserved bytes, the parcel header and the
/// payload, padded to 8 bytes.
const RECORD_HEADER: usize = 8;

/// Smallest and largest ring.
pub(crate) const MIN_RING: usize = 32 * 1024;
/// See [`MIN_RING`].
pub(crate) const MAX_RING: usize = 1 << 20;

fn record_len(payload: usize) -> usize {
    (RECORD_HEADER + HEADER_LEN + payload + 7) & !7
}

/// One direction between two localities: parcels from its producer to its
/// consumer.
#[derive(Debug)]
pub(crate) struct Ring {
    seg: Segment,
    capacity: u64,
}

impl Ring {
    /// Creates the ring file `path` with room for `capacity` bytes of
    /// records (a power of two between [`MIN_RING`] and [`MAX_RING`]).
    pub(crate) fn create(path: &Path, capacity: usize) -> std::io::Result<Ring> {
        let capacity = capacity.clamp(MIN_RING, MAX_RING).next_power_of_two();
        let seg = Segment::create(path, DATA + capacity)?;
        seg.u64_at(CAPACITY_AT)
            .store(capacity as u64, Ordering::Relaxed);
        seg.u64_at(MAGIC_AT).store(RING_MAGIC, Ordering::Release);
        Ok(Ring {
            seg,
            capacity: capacity as u64,
        })
    }

    /// Opens the ring file `path` that another locality created.
    pub(crate) fn open(path: &Path) -> std::io::Result<Ring> {
        let seg = Segment::open(path, DATA + MIN_RING, DATA + MAX_RING)?;
        let capacity = seg.u64_at(CAPACITY_AT).load(Ordering::Relaxed);
        if seg.u64_at(MAGIC_AT).load(Ordering::Acquire) != RING_MAGIC
            || !capacity.is_power_of_two()
            || DATA as u64 + capacity != seg.len() as u64
        {
            return Err(std::io::Error::other(format!(
                "{} is not a ring",
                path.display()
            )));
        }
        Ok(Ring { seg, capacity })
    }

    /// The largest payload a record of this ring carries: larger ones
    /// travel apart (see the parcelport).
    pub(crate) fn max_inline(&self) -> usize {
        self.capacity as usize / 4 - RECORD_HEADER - HEADER_LEN
    }

    fn tail(&self) -> &AtomicU64 {
        self.seg.u64_at(TAIL_AT)
    }

    fn head(&self) -> &AtomicU64 {
        self.seg.u64_at(HEAD_AT)
    }

    /// Producer: whether a record with `payload` bytes fits now.
    pub(crate) fn has_room(&self, payload: usize) -> bool {
        self.room(payload).is_some()
    }

    /// The tail and the room a record of `payload` bytes would take, if it
    /// fits now.
    fn room(&self, payload: usize) -> Option<(u64, usize)> {
        let rec = record_len(payload);
        let tail = self.tail().load(Ordering::Relaxed);
        let head = self.head().load(Ordering::Acquire);
        let contiguous = self.capacity as usize - (tail % self.capacity) as usize;
        let need = if rec <= contiguous {
            rec
        } else {
            contiguous + rec
        };
        (tail.wrapping_sub(head) + need as u64 <= self.capacity).then_some((tail, rec))
    }

    /// Producer: appends `header` and `payload` as one record if there is
    /// room (false if not; the caller waits with [`Ring::wait_for_space`]).
    /// The payload must fit [`Ring::max_inline`].
    pub(crate) fn try_write(
        &self,
        header: &ParcelHeader,
        payload: &[u8],
    ) -> Result<bool, TransportError> {
        let Some((tail, rec)) = self.room(payload.len()) else {
            return Ok(false);
        };
        let pos = (tail % self.capacity) as usize;
        let contiguous = self.capacity as usize - pos;
        let mut at = tail;
        if rec > contiguous {
            self.seg.write(DATA + pos, &WRAP.to_le_bytes());
            at += contiguous as u64;
        }
        let start = DATA + (at % self.capacity) as usize;
        let mut head_bytes = [0u8; RECORD_HEADER + HEADER_LEN];
        let len = (HEADER_LEN + payload.len()) as u32;
        head_bytes[..4].copy_from_slice(&len.to_le_bytes());
        header.encode(payload.len(), &mut &mut head_bytes[RECORD_HEADER..])?;
        self.seg.write(start, &head_bytes);
        self.seg.write(start + RECORD_HEADER + HEADER_LEN, payload);
        self.tail().store(at + rec as u64, Ordering::Release);
        Ok(true)
    }

    /// Whether everything written has been read.
    pub(crate) fn is_drained(&self) -> bool {
        self.head().load(Ordering::Acquire) == self.tail().load(Ordering::Acquire)
    }

    /// Whether there is something to read.
    pub(crate) fn has_data(&self) -> bool {
        !self.is_drained()
    }

    /// Producer: sleeps until the consumer frees space (or `timeout`).
    /// Returns at once if `ready` holds once the consumer is sure to wake
    /// this producer: the check and the sleep cannot miss a wake-up.
    pub(crate) fn wait_for_space(&self, ready: impl Fn() -> bool, timeout: Duration) {
        let seq = self.seg.u32_at(SPACE_SEQ_AT).load(Ordering::Acquire);
        self.seg.u32_at(WANT_SPACE_AT).store(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if ready() {
            return;
        }
        futex_wait(self.seg.u32_at(SPACE_SEQ_AT), seq, Some(timeout));
    }

    /// Producer: wakes whoever waits in [`Ring::wait_for_space`] (a close).
    pub(crate) fn wake_producer(&self) {
        self.seg
            .u32_at(SPACE_SEQ_AT)
            .fetch_add(1, Ordering::Release);
        futex_wake(self.seg.u32_at(SPACE_SEQ_AT), i32::MAX);
    }

    /// Consumer: takes the next parcel, if any. A malformed record is an
    /// error (the producer broke the protocol); payloads above
    /// `max_payload` are refused.
    pub(crate) fn read(&self, max_payload: usize) -> Result<Option<Parcel>, TransportError> {
        let bad = |what: String| TransportError::Protocol(format!("shared-memory ring: {what}"));
        loop {
            let head = self.head().load(Ordering::Relaxed);
            let tail = self.tail().load(Ordering::Acquire);
            let avail = tail.wrapping_sub(head);
            if avail == 0 {
                return Ok(None);
            }
            if avail > self.capacity || avail % 8 != 0 {
                return Err(bad(format!("{avail} bytes announced")));
            }
            let pos = (head % self.capacity) as usize;
            let contiguous = self.capacity as usize - pos;
            let mut word = [0u8; 4];
            self.seg.read(DATA + pos, &mut word);
            let len = u32::from_le_bytes(word);
            if len == WRAP {
                if avail < contiguous as u64 {
                    return Err(bad("a wrap beyond the data".into()));
                }
                self.release(head + contiguous as u64);
                continue;
            }
            let len = len as usize;
            let rec = (RECORD_HEADER + len + 7) & !7;
            if len < HEADER_LEN || rec > contiguous || rec as u64 > avail {
                return Err(bad(format!("a record of {len} bytes")));
            }
            let mut header = [0u8; HEADER_LEN];
            self.seg.read(DATA + pos + RECORD_HEADER, &mut header);
            let (header, payload_len) = ParcelHeader::decode(&header, max_payload)?;
            if HEADER_LEN + payload_len != len {
                return Err(bad("record and parcel lengths differ".into()));
            }
            let mut payload = vec![0u8; payload_len];
            self.seg
                .read(DATA + pos + RECORD_HEADER + HEADER_LEN, &mut payload);
            self.release(head + rec as u64);
            return Ok(Some(Parcel {
                header,
                payload: Bytes::from(payload),
            }));
        }
    }

    /// Consumer: frees everything before `head`, waking a producer that
    /// waits for space.
    fn release(&self, head: u64) {
        self.head().store(head, Ordering::Release);
        fence(Ordering::SeqCst);
        let want = self.seg.u32_at(WANT_SPACE_AT);
        if want.load(Ordering::Relaxed) != 0 {
            want.store(0, Ordering::Relaxed);
            self.wake_producer();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalityId;

    fn path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("hpx-ringtest-{}-{name}", std::process::id()))
    }

    fn header(seq: u64) -> ParcelHeader {
        ParcelHeader {
            kind: 1,
            flags: 0,
            source: LocalityId(1),
            dest: LocalityId(2),
            tag: 7,
            seq,
        }
    }

    #[test]
    fn records_wrap_around_in_order() {
        let p = path("wrap");
        let producer = Ring::create(&p, MIN_RING).unwrap();
        let consumer = Ring::open(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        let mut next_read = 0u64;
        // Sizes chosen so records straddle the end many times.
        for seq in 0..2000u64 {
            let payload = vec![seq as u8; (seq as usize * 37) % 3000];
            while !producer.try_write(&header(seq), &payload).unwrap() {
                let got = consumer
                    .read(1 << 20)
                    .unwrap()
                    .expect("a full ring has data");
                assert_eq!(got.header.seq, next_read);
                assert_eq!(got.payload.len(), (next_read as usize * 37) % 3000);
                assert!(got.payload.iter().all(|b| *b == next_read as u8));
                next_read += 1;
            }
        }
        while let Some(got) = consumer.read(1 << 20).unwrap() {
            assert_eq!(got.header.seq, next_read);
            next_read += 1;
        }
        assert_eq!(next_read, 2000);
        assert!(producer.is_drained());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let p = path("garbage");
        let producer = Ring::create(&p, MIN_RING).unwrap();
        let consumer = Ring::open(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(producer.try_write(&header(1), b"ok").unwrap());
        // A producer that lies about its tail, its lengths or its header.
        producer.tail().store(1 << 40, Ordering::Release);
        assert!(consumer.read(1 << 20).is_err());
        producer.tail().store(64, Ordering::Release);
        producer.seg.write(DATA, &9999u32.to_le_bytes());
        assert!(consumer.read(1 << 20).is_err());
        producer.seg.write(DATA, &40u32.to_le_bytes());
        producer.seg.write(DATA + RECORD_HEADER, &[0xffu8; 4]);
        assert!(consumer.read(1 << 20).is_err());
        // An oversized payload is refused before anything is allocated.
        let q = path("big");
        let producer = Ring::create(&q, MIN_RING).unwrap();
        let consumer = Ring::open(&q).unwrap();
        std::fs::remove_file(&q).unwrap();
        assert!(producer.try_write(&header(2), &[1u8; 4000]).unwrap());
        assert!(consumer.read(100).is_err());
    }

    #[test]
    fn files_that_are_not_rings_are_refused() {
        let p = path("notring");
        std::fs::write(&p, vec![0u8; DATA + MIN_RING]).unwrap();
        assert!(Ring::open(&p).is_err());
        std::fs::write(&p, b"short").unwrap();
        assert!(Ring::open(&p).is_err());
        std::fs::remove_file(&p).unwrap();
        assert!(Ring::open(&p).is_err());
    }

    #[test]
    fn a_waiting_producer_is_woken_by_the_consumer() {
        let p = path("wake");
        let producer = Ring::create(&p, MIN_RING).unwrap();
        let consumer = Ring::open(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        let payload = vec![3u8; producer.max_inline()];
        let mut written = 0;
        while producer.try_write(&header(written), &payload).unwrap() {
            written += 1;
        }
        let reader = std::thread::spawn(move || {
            let mut read = 0;
            while read < written + 1 {
                if consumer.read(1 << 20).unwrap().is_some() {
                    read += 1;
                }
            }
        });
        let start = std::time::Instant::now();
        loop {
            if producer.try_write(&header(written), &payload).unwrap() {
                break;
            }
            producer.wait_for_space(|| producer.has_room(payload.len()), Duration::from_secs(10));
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        reader.join().unwrap();
    }
}

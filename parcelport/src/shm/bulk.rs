//! Large payloads between localities of one host: segments of shared
//! memory that the sender writes once and the receiver reads in place.
//!
//! A payload too large for the ring is copied into a *bulk segment*
//! (`hpx-<job>-bulk-<s>-<r>-<id>`, mode 0600) and only its id and length go
//! through the ring. The receiver maps the segment on first sight, unlinks
//! it (both sides hold it now) and hands the payload on as a slice of the
//! mapping: no copy on arrival. When the last slice of it is dropped, the
//! receiver marks the segment free in its header, and the sender writes its
//! next large payload to that peer into the same, already mapped and
//! touched, memory: fresh pages cost a fault and a zeroing each (a copy into
//! fresh memory runs at a third of one into warm memory on a small VM), so
//! reuse is most of the speed.
//!
//! Segments kept for reuse count against [`KEPT_BYTES`] per locality; a
//! payload that does not fit in what may be kept gets a one-shot segment,
//! which nobody keeps: the receiver's mapping goes with the payload's last
//! slice. A kept segment the sender gives up is marked retired, and the
//! receiver drops its mapping when it next hears from that sender.
//!
//! A sender can also *lend* a free kept segment to the layer above
//! ([`Outgoing::lend`]), which encodes its payload straight into it; when
//! that payload is sent, the segment is handed over as it is, so the bytes
//! cross with no copy of the transport's own. A segment is lent or written
//! again only when no slice of a payload lent from it is left on the
//! sending side.
//!
//! The receiver trusts nothing in a segment but what it checks: the id and
//! the length from the ring, the segment's size, its state. Segments are
//! files of this job only (their names are made here from numbers, never
//! read from the peer).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::ring::Segment;
use crate::{LocalityId, TransportError};

/// Bytes of kept segments (all peers together) a locality may hold.
pub(super) const KEPT_BYTES: usize = 512 << 20;
/// Segments are made in multiples of this.
const GRAIN: usize = 1 << 20;
/// The header: state, keep flag, payload length.
const HEADER: usize = 64;
const STATE_AT: usize = 0;
const KEEP_AT: usize = 4;
const LEN_AT: usize = 8;
/// The receiver is done with it: the sender may write.
const FREE: u32 = 0;
/// Written and sent: the receiver owns it until it frees it.
const FULL: u32 = 1;
/// The sender gave it up: the receiver unmaps it.
const RETIRED: u32 = 2;
/// Lent to the layer above on the sending side, being written.
const LENT: u32 = 3;

/// The ring record for a payload in a bulk segment: its id and length.
pub(super) const NOTE_LEN: usize = 12;

fn bulk_path(dir: &Path, job: &str, s: LocalityId, r: LocalityId, id: u32) -> PathBuf {
    dir.join(format!("hpx-{job}-bulk-{}-{}-{id}", s.0, r.0))
}

/// The file name prefix of the bulk segments `s` makes.
pub(super) fn bulk_prefix(job: &str, s: LocalityId) -> String {
    format!("hpx-{job}-bulk-{}-", s.0)
}

struct Kept {
    id: u32,
    /// Shared with the payloads lent from it ([`LentSegment`]).
    seg: Arc<Segment>,
}

impl Kept {
    /// Free for a payload of `len` bytes: the receiver is done with it, and
    /// nothing lent from it is alive here.
    fn free_for(&self, len: usize) -> bool {
        self.seg.len() - HEADER >= len
            && Arc::strong_count(&self.seg) == 1
            && self.seg.u32_at(STATE_AT).load(Ordering::Acquire) == FREE
    }
}

/// The sending side's segments to one peer.
#[derive(Default)]
pub(super) struct Outgoing {
    kept: Vec<Kept>,
    next_id: u32,
}

/// Where a locality's segments live, and how much it keeps.
pub(super) struct Place<'a> {
    pub dir: &'a Path,
    pub job: &'a str,
    pub here: LocalityId,
    pub kept_bytes: &'a AtomicUsize,
}

impl Outgoing {
    /// Copies `payload` into a segment for `dest`; the note to send
    /// through the ring in its place.
    pub(super) fn put(
        &mut self,
        place: &Place<'_>,
        dest: LocalityId,
        payload: &[u8],
    ) -> std::io::Result<Bytes> {
        let len = payload.len();
        if let Some(id) = self.lent_as(payload) {
            return Ok(self.hand_over(id, len));
        }
        let reuse = self
            .kept
            .iter()
            .filter(|k| k.free_for(len))
            .min_by_key(|k| k.seg.len())
            .map(|k| k.id);
        let (id, one_shot) = match reuse {
            Some(id) => (id, None),
            None => {
                let (id, seg, keep) = self.create(place, dest, len)?;
                (id, (!keep).then_some(seg))
            }
        };
        let seg = match &one_shot {
            Some(seg) => seg,
            None => match self.kept.iter().find(|k| k.id == id) {
                Some(k) => &k.seg,
                None => return Err(std::io::Error::other("a kept segment vanished")),
            },
        };
        seg.write(HEADER, payload);
        seg.u64_at(LEN_AT).store(len as u64, Ordering::Relaxed);
        seg.u32_at(STATE_AT).store(FULL, Ordering::Release);
        Ok(note(id, len))
    }

    /// A new segment for a payload of `len` bytes to `dest`: its id, the
    /// segment, and whether it is kept (in `self.kept` then).
    fn create(
        &mut self,
        place: &Place<'_>,
        dest: LocalityId,
        len: usize,
    ) -> std::io::Result<(u32, Arc<Segment>, bool)> {
        let size = (len + HEADER).div_ceil(GRAIN) * GRAIN;
        let keep = self.room_for(place, size);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let made = Segment::create(&bulk_path(place.dir, place.job, place.here, dest, id), size);
        let seg = match made {
            Ok(seg) => Arc::new(seg),
            Err(e) => {
                if keep {
                    place.kept_bytes.fetch_sub(size, Ordering::Relaxed);
                }
                return Err(e);
            }
        };
        seg.u32_at(KEEP_AT)
            .store(u32::from(keep), Ordering::Relaxed);
        if keep {
            self.kept.push(Kept {
                id,
                seg: seg.clone(),
            });
        }
        Ok((id, seg, keep))
    }

    /// Lends a kept segment to `dest` with room for `capacity` bytes, to be
    /// written in place and then sent; `None` where none is free and no
    /// new one may be kept.
    pub(super) fn lend(
        &mut self,
        place: &Place<'_>,
        dest: LocalityId,
        capacity: usize,
    ) -> Option<LentSegment> {
        let free = self
            .kept
            .iter()
            .filter(|k| k.free_for(capacity))
            .min_by_key(|k| k.seg.len())
            .map(|k| k.seg.clone());
        let seg = match free {
            Some(seg) => seg,
            None => match self.create(place, dest, capacity) {
                Ok((_, seg, true)) => seg,
                // A segment that may not be kept is not lent: it goes when
                // the payload is dropped, and the next one starts cold.
                Ok((id, _, false)) => {
                    let _ =
                        std::fs::remove_file(bulk_path(place.dir, place.job, place.here, dest, id));
                    return None;
                }
                Err(_) => return None,
            },
        };
        seg.u32_at(STATE_AT).store(LENT, Ordering::Release);
        Some(LentSegment { seg: Some(seg) })
    }

    /// The kept segment whose lent memory `payload` is, if it is one.
    fn lent_as(&self, payload: &[u8]) -> Option<u32> {
        self.kept
            .iter()
            .find(|k| {
                k.seg.u32_at(STATE_AT).load(Ordering::Acquire) == LENT
                    && std::ptr::eq(k.seg.bytes(HEADER, 0).as_ptr(), payload.as_ptr())
                    && payload.len() <= k.seg.len() - HEADER
            })
            .map(|k| k.id)
    }

    /// Hands lent segment `id`, written with `len` bytes, to the receiver.
    fn hand_over(&self, id: u32, len: usize) -> Bytes {
        if let Some(k) = self.kept.iter().find(|k| k.id == id) {
            k.seg.u64_at(LEN_AT).store(len as u64, Ordering::Relaxed);
            k.seg.u32_at(STATE_AT).store(FULL, Ordering::Release);
        }
        note(id, len)
    }

    /// Whether a segment of `size` bytes may be kept, retiring free kept
    /// segments of this peer to make room if need be.
    fn room_for(&mut self, place: &Place<'_>, size: usize) -> bool {
        let fits = |held: usize| held.saturating_add(size) <= KEPT_BYTES;
        if !fits(place.kept_bytes.load(Ordering::Relaxed)) {
            let mut i = 0;
            while i < self.kept.len() && !fits(place.kept_bytes.load(Ordering::Relaxed)) {
                if self.kept[i].seg.u32_at(STATE_AT).load(Ordering::Acquire) == FREE {
                    let gone = self.kept.swap_remove(i);
                    gone.seg.u32_at(STATE_AT).store(RETIRED, Ordering::Release);
                    place
                        .kept_bytes
                        .fetch_sub(gone.seg.len(), Ordering::Relaxed);
                } else {
                    i += 1;
                }
            }
        }
        let held = place.kept_bytes.fetch_add(size, Ordering::Relaxed);
        if fits(held) {
            true
        } else {
            place.kept_bytes.fetch_sub(size, Ordering::Relaxed);
            false
        }
    }

    /// Gives every kept segment up (at the end).
    pub(super) fn release(&mut self, kept_bytes: &AtomicUsize) {
        for k in self.kept.drain(..) {
            k.seg.u32_at(STATE_AT).store(RETIRED, Ordering::Release);
            kept_bytes.fetch_sub(k.seg.len(), Ordering::Relaxed);
        }
    }
}

/// The ring record for payload `id` of `len` bytes.
fn note(id: u32, len: usize) -> Bytes {
    let mut note = Vec::with_capacity(NOTE_LEN);
    note.extend_from_slice(&id.to_le_bytes());
    note.extend_from_slice(&(len as u64).to_le_bytes());
    Bytes::from(note)
}

/// A kept segment lent to the layer above on the sending side
/// ([`Outgoing::lend`]); `None` once frozen into a payload.
pub(super) struct LentSegment {
    seg: Option<Arc<Segment>>,
}

impl crate::lent::Lend for LentSegment {
    fn memory(&mut self) -> &mut [u8] {
        match &self.seg {
            // SAFETY: the segment is LENT: the receiver does not read it
            // before it is handed over, and the sender neither lends nor
            // writes it while this Arc (or a payload frozen from it) lives.
            Some(seg) => unsafe { seg.bytes_mut(HEADER, seg.len() - HEADER) },
            None => &mut [],
        }
    }

    fn capacity(&self) -> usize {
        self.seg.as_ref().map_or(0, |seg| seg.len() - HEADER)
    }

    fn freeze(mut self: Box<Self>, len: usize) -> Bytes {
        match self.seg.take() {
            Some(seg) => {
                let len = len.min(seg.len() - HEADER);
                Bytes::from_owner(Held {
                    seg,
                    len,
                    held: LENT,
                })
            }
            None => Bytes::new(),
        }
    }
}

impl Drop for LentSegment {
    fn drop(&mut self) {
        if let Some(seg) = &self.seg {
            free_if(seg, LENT);
        }
    }
}

/// Marks `seg` free again if it is still `held` (a lent segment not
/// handed over meanwhile, or a received one its sender did not retire).
fn free_if(seg: &Segment, held: u32) {
    let _ = seg
        .u32_at(STATE_AT)
        .compare_exchange(held, FREE, Ordering::Release, Ordering::Relaxed);
}

/// The first `len` bytes of a segment as a payload, on either side: the
/// sender's lent payload (`held` LENT: given back if dropped unsent) or the
/// receiver's (`held` FULL: freed for its sender once read). Dropped, the
/// segment is free again, unless its state moved on meanwhile.
struct Held {
    seg: Arc<Segment>,
    len: usize,
    held: u32,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        self.seg.bytes(HEADER, self.len)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        free_if(&self.seg, self.held);
    }
}

/// The receiving side's mapped segments, by sender and id.
#[derive(Default)]
pub(super) struct Incoming {
    mapped: HashMap<(u32, u32), Arc<Segment>>,
}

impl Incoming {
    /// The payload that `note` from `s` stands for, at most `max` bytes.
    pub(super) fn take(
        &mut self,
        dir: &Path,
        job: &str,
        s: LocalityId,
        here: LocalityId,
        note: &[u8],
        max: usize,
    ) -> Result<Bytes, TransportError> {
        let bad = |why: String| TransportError::Protocol(format!("bulk payload from {s}: {why}"));
        let (id, len) = match note {
            [a, b, c, d, rest @ ..] if rest.len() == 8 => {
                let mut l = [0u8; 8];
                l.copy_from_slice(rest);
                (u32::from_le_bytes([*a, *b, *c, *d]), u64::from_le_bytes(l))
            }
            _ => return Err(bad(format!("a note of {} bytes", note.len()))),
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| bad(format!("{len} bytes exceed the limit of {max}")))?;
        self.mapped
            .retain(|_, seg| seg.u32_at(STATE_AT).load(Ordering::Acquire) != RETIRED);
        let seg = match self.mapped.get(&(s.0, id)) {
            Some(seg) => seg.clone(),
            None => {
                let path = bulk_path(dir, job, s, here, id);
                let most = (max + HEADER).div_ceil(GRAIN) * GRAIN;
                let seg =
                    Segment::open(&path, HEADER + len, most).map_err(|e| bad(e.to_string()))?;
                // Both sides hold it now.
                let _ = std::fs::remove_file(&path);
                let seg = Arc::new(seg);
                if seg.u32_at(KEEP_AT).load(Ordering::Relaxed) != 0 {
                    self.mapped.insert((s.0, id), seg.clone());
                }
                seg
            }
        };
        if seg.len() - HEADER < len
            || seg.u32_at(STATE_AT).load(Ordering::Acquire) != FULL
            || seg.u64_at(LEN_AT).load(Ordering::Relaxed) != len as u64
        {
            self.mapped.remove(&(s.0, id));
            return Err(bad(format!("segment {id} does not hold {len} bytes")));
        }
        Ok(Bytes::from_owner(Held {
            seg,
            len,
            held: FULL,
        }))
    }

    /// Forgets the segments of `s` (it is gone).
    pub(super) fn forget(&mut self, s: LocalityId) {
        self.mapped.retain(|(from, _), _| *from != s.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place<'a>(dir: &'a Path, job: &'a str, here: u32, kept: &'a AtomicUsize) -> Place<'a> {
        Place {
            dir,
            job,
            here: LocalityId(here),
            kept_bytes: kept,
        }
    }

    #[test]
    fn segments_are_reused_once_the_receiver_is_done() {
        let dir = std::env::temp_dir();
        let job = crate::shared::job_tag(b"segments_are_reused");
        let kept = AtomicUsize::new(0);
        let (s, r) = (LocalityId(1), LocalityId(2));
        let mut out = Outgoing::default();
        let mut inc = Incoming::default();
        let first = vec![3u8; 3 << 20];
        let note = out.put(&place(&dir, &job, 1, &kept), r, &first).unwrap();
        let got = inc.take(&dir, &job, s, r, &note, 8 << 20).unwrap();
        assert_eq!(&got[..], &first[..]);
        assert!(
            !bulk_path(&dir, &job, s, r, 0).exists(),
            "unlinked once mapped"
        );
        // Still held: the next payload needs another segment.
        let second = vec![4u8; 1000];
        let note2 = out.put(&place(&dir, &job, 1, &kept), r, &second).unwrap();
        assert_eq!(&note2[..4], &1u32.to_le_bytes());
        let got2 = inc.take(&dir, &job, s, r, &note2, 8 << 20).unwrap();
        assert_eq!(&got2[..], &second[..]);
        drop(got);
        // Free again: reused in place, no new file.
        let third = vec![5u8; 2 << 20];
        let note3 = out.put(&place(&dir, &job, 1, &kept), r, &third).unwrap();
        assert_eq!(&note3[..4], &0u32.to_le_bytes());
        let got3 = inc.take(&dir, &job, s, r, &note3, 8 << 20).unwrap();
        assert_eq!(&got3[..], &third[..]);
        assert!(kept.load(Ordering::Relaxed) >= 4 << 20);
        out.release(&kept);
        assert_eq!(kept.load(Ordering::Relaxed), 0);
        drop(got3);
        drop(got2);
        let later = vec![6u8; 10];
        let note4 = out.put(&place(&dir, &job, 1, &kept), r, &later).unwrap();
        inc.take(&dir, &job, s, r, &note4, 8 << 20).unwrap();
        assert!(inc.mapped.len() <= 1, "retired segments are unmapped");
    }

    #[test]
    fn lent_segments_cross_without_a_copy_and_come_back() {
        use crate::lent::Lend;
        /// Removes the segments the test made, also when it fails.
        struct Clean(PathBuf, String);
        impl Drop for Clean {
            fn drop(&mut self) {
                for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
                    if e.file_name().to_string_lossy().starts_with(&self.1) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        let dir = std::env::temp_dir();
        let job = crate::shared::job_tag(format!("lent-{}", std::process::id()).as_bytes());
        let _clean = Clean(dir.clone(), bulk_prefix(&job, LocalityId(5)));
        let kept = AtomicUsize::new(0);
        let (s, r) = (LocalityId(5), LocalityId(6));
        let mut out = Outgoing::default();
        let mut inc = Incoming::default();
        let at = place(&dir, &job, 5, &kept);
        let mut lent = out.lend(&at, r, 3 << 20).unwrap();
        assert!(lent.capacity() >= 3 << 20);
        lent.memory()[..5].copy_from_slice(b"hello");
        let payload = Box::new(lent).freeze(5);
        assert!(
            out.lend(&at, r, 1 << 20).is_some_and(|other| !std::ptr::eq(
                other.seg.as_ref().unwrap().bytes(HEADER, 0).as_ptr(),
                payload.as_ptr()
            )),
            "a lent segment is not lent twice"
        );
        let note = out.put(&at, r, &payload).unwrap();
        let got = inc.take(&dir, &job, s, r, &note, 8 << 20).unwrap();
        assert_eq!(&got[..], b"hello");
        assert_eq!(
            note_ptr(&out, &note),
            payload.as_ptr(),
            "the lent segment itself is handed over"
        );
        drop(got);
        // The receiver is done, but the sender still holds the payload: the
        // segment is neither lent nor written again until it drops it.
        let copy = out.put(&at, r, &[7u8; 2 << 20]).unwrap();
        assert_ne!(&note[..4], &copy[..4], "another segment");
        drop(payload);
        let again = out.lend(&at, r, 3 << 20).unwrap();
        assert_eq!(
            again.seg.as_ref().unwrap().bytes(HEADER, 0).as_ptr(),
            note_ptr(&out, &note)
        );
        // Dropped unsent: free again for the next payload.
        drop(again);
        let reused = out.put(&at, r, &[8u8; 3 << 20]).unwrap();
        assert_eq!(&reused[..4], &note[..4]);
        out.release(&kept);
        assert_eq!(kept.load(Ordering::Relaxed), 0);
    }

    /// Where the payload of `note` starts on the sending side.
    fn note_ptr(out: &Outgoing, note: &[u8]) -> *const u8 {
        let id = u32::from_le_bytes([note[0], note[1], note[2], note[3]]);
        let k = out.kept.iter().find(|k| k.id == id).unwrap();
        k.seg.bytes(HEADER, 0).as_ptr()
    }

    #[test]
    fn bad_notes_are_errors() {
        let dir = std::env::temp_dir();
        let job = crate::shared::job_tag(b"bad_notes_are_errors");
        let kept = AtomicUsize::new(0);
        let (s, r) = (LocalityId(0), LocalityId(1));
        let mut inc = Incoming::default();
        assert!(inc.take(&dir, &job, s, r, b"short", 100).is_err());
        let mut note = 7u32.to_le_bytes().to_vec();
        note.extend_from_slice(&5u64.to_le_bytes());
        assert!(
            inc.take(&dir, &job, s, r, &note, 100).is_err(),
            "no such segment"
        );
        let mut out = Outgoing::default();
        let note = out
            .put(&place(&dir, &job, 0, &kept), r, &[1u8; 100])
            .unwrap();
        assert!(
            inc.take(&dir, &job, s, r, &note, 50).is_err(),
            "over the limit"
        );
        let mut lie = note.to_vec();
        lie[4..].copy_from_slice(&(99u64).to_le_bytes());
        assert!(
            inc.take(&dir, &job, s, r, &lie, 1000).is_err(),
            "wrong length"
        );
        let mut huge = note.to_vec();
        huge[4..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(inc.take(&dir, &job, s, r, &huge, 1000).is_err());
        out.release(&kept);
        let _ = std::fs::remove_file(bulk_path(&dir, &job, s, r, 0));
    }

    #[test]
    fn past_the_budget_segments_are_one_shot() {
        let dir = std::env::temp_dir();
        let job = crate::shared::job_tag(b"one_shot");
        let kept = AtomicUsize::new(KEPT_BYTES - GRAIN);
        let (s, r) = (LocalityId(3), LocalityId(4));
        let mut out = Outgoing::default();
        let mut inc = Incoming::default();
        let payload = vec![9u8; 2 * GRAIN];
        let note = out.put(&place(&dir, &job, 3, &kept), r, &payload).unwrap();
        assert!(out.kept.is_empty());
        assert_eq!(kept.load(Ordering::Relaxed), KEPT_BYTES - GRAIN);
        let got = inc.take(&dir, &job, s, r, &note, 4 * GRAIN).unwrap();
        assert_eq!(&got[..], &payload[..]);
        assert!(inc.mapped.is_empty(), "one-shot segments are not kept");
    }
}

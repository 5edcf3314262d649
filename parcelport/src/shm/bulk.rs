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
    seg: Segment,
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
        let reuse = self
            .kept
            .iter()
            .filter(|k| {
                k.seg.len() - HEADER >= len
                    && k.seg.u32_at(STATE_AT).load(Ordering::Acquire) == FREE
            })
            .min_by_key(|k| k.seg.len())
            .map(|k| k.id);
        let (id, one_shot) = match reuse {
            Some(id) => (id, None),
            None => {
                let size = (len + HEADER).div_ceil(GRAIN) * GRAIN;
                let keep = self.room_for(place, size);
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                let seg =
                    Segment::create(&bulk_path(place.dir, place.job, place.here, dest, id), size)?;
                seg.u32_at(KEEP_AT)
                    .store(u32::from(keep), Ordering::Relaxed);
                if keep {
                    self.kept.push(Kept { id, seg });
                    (id, None)
                } else {
                    (id, Some(seg))
                }
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
        let mut note = Vec::with_capacity(NOTE_LEN);
        note.extend_from_slice(&id.to_le_bytes());
        note.extend_from_slice(&(len as u64).to_le_bytes());
        Ok(Bytes::from(note))
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

/// A payload in a segment, lent to the layer above: frees the segment for
/// its sender when dropped.
struct Lease {
    seg: Arc<Segment>,
    len: usize,
}

impl AsRef<[u8]> for Lease {
    fn as_ref(&self) -> &[u8] {
        self.seg.bytes(HEADER, self.len)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Unless the sender retired it meanwhile.
        let _ = self.seg.u32_at(STATE_AT).compare_exchange(
            FULL,
            FREE,
            Ordering::Release,
            Ordering::Relaxed,
        );
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
        Ok(Bytes::from_owner(Lease { seg, len }))
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

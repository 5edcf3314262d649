//! Calls sent from here: requests, which wait for their answers in a table
//! by sequence number ([`Requests`]), and posts, which do not.
//!
//! A request is filed before it is sent and leaves the table once: with its
//! reply or failure, with the loss of its destination (requests to a lost
//! locality fail with [`Error::LocalityLost`]), or with the abort of the job
//! (every other one fails with [`Error::Aborted`]). An answer whose sequence
//! number is no longer filed is ignored.

use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hpx_parcelport::LocalityId;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::parcels::kind;
use super::Locality;
use crate::action::Registry;
use crate::codec;
use crate::{Error, Result};

/// A request waiting for its answer.
struct Pending {
    /// Where it was sent.
    dest: LocalityId,
    /// The action's name (to name an unknown action in its failure).
    action: &'static str,
    /// Where its answer goes.
    reply: oneshot::Sender<Result<Bytes>>,
}

/// The requests sent from here that wait for their answers, by sequence
/// number.
pub(super) struct Requests {
    /// The next sequence number: of a request, or of a post or control
    /// parcel while tracing (its flow id).
    next: AtomicU64,
    /// The requests waiting, by sequence number.
    pending: Mutex<HashMap<u64, Pending>>,
}

/// Requests taken out of the table ([`Requests::withdraw`]), to fail later.
#[must_use = "withdrawn requests must be failed, or their callers wait forever"]
pub(super) struct Withdrawn(Vec<Pending>);

impl Requests {
    /// No request yet; sequence numbers start at 1.
    pub(super) fn new() -> Requests {
        Requests {
            next: AtomicU64::new(1),
            pending: Mutex::new(HashMap::default()),
        }
    }

    /// A fresh sequence number.
    pub(super) fn next_seq(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Files a request of `action` to `dest` under a fresh sequence number:
    /// that number, and where its answer will come.
    pub(super) fn file(
        &self,
        dest: LocalityId,
        action: &'static str,
    ) -> (u64, oneshot::Receiver<Result<Bytes>>) {
        let (reply, rx) = oneshot::channel();
        let seq = self.next_seq();
        self.pending.lock().insert(
            seq,
            Pending {
                dest,
                action,
                reply,
            },
        );
        (seq, rx)
    }

    /// How many requests wait for their answers.
    pub(super) fn in_flight(&self) -> usize {
        self.pending.lock().len()
    }

    /// Answers request `seq` with `result` and forgets it; nothing if no
    /// such request waits (answered, failed, or never sent from here).
    pub(super) fn complete(&self, seq: u64, result: Result<Bytes>) {
        let pending = self.pending.lock().remove(&seq);
        if let Some(p) = pending {
            let _ = p.reply.send(result);
        }
    }

    /// The error that a `FAILURE` parcel answering request `seq` carries:
    /// an unknown action is named as the caller knows it (the callee has
    /// only its id), `"?"` if the request no longer waits.
    pub(super) fn failure(&self, seq: u64, payload: &[u8]) -> Error {
        match codec::decode::<Error>(payload) {
            Ok(Error::UnknownAction { locality, id, .. }) => Error::UnknownAction {
                locality,
                id,
                action: self
                    .pending
                    .lock()
                    .get(&seq)
                    .map_or("?", |p| p.action)
                    .to_owned(),
            },
            Ok(e) => e,
            Err(e) => e,
        }
    }

    /// Takes every request to `dest` out of the table.
    pub(super) fn withdraw(&self, dest: LocalityId) -> Withdrawn {
        let mut pending = self.pending.lock();
        let seqs: Vec<u64> = pending
            .iter()
            .filter(|(_, p)| p.dest == dest)
            .map(|(s, _)| *s)
            .collect();
        Withdrawn(seqs.iter().filter_map(|s| pending.remove(s)).collect())
    }

    /// Fails every request still waiting with `error`.
    pub(super) fn fail_all(&self, error: &Error) {
        let failed: Vec<Pending> = self.pending.lock().drain().map(|(_, p)| p).collect();
        Withdrawn(failed).fail(error);
    }
}

impl Withdrawn {
    /// Fails each of these requests with `error`.
    pub(super) fn fail(self, error: &Error) {
        for p in self.0 {
            let _ = p.reply.send(Err(error.clone()));
        }
    }
}

impl Locality {
    /// Sends a request for action `id` to `dest`; the receiver gets the
    /// encoded result or the error.
    pub(crate) fn request(
        self: &Arc<Self>,
        dest: LocalityId,
        id: u64,
        action: &'static str,
        args: Bytes,
    ) -> oneshot::Receiver<Result<Bytes>> {
        let (seq, rx) = self.requests.file(dest, action);
        // A loss or an abort that was published before the request was
        // filed would never fail it: check after filing.
        if let Some(reason) = self.lost_reason(dest) {
            self.requests.complete(
                seq,
                Err(Error::LocalityLost {
                    locality: dest,
                    reason,
                }),
            );
            return rx;
        }
        if let Some(reason) = self.aborted() {
            self.requests.complete(seq, Err(Error::Aborted(reason)));
            return rx;
        }
        match self.send(self.header(kind::REQUEST, dest, id, seq), args, action) {
            Ok(()) => {
                self.work.sent_one();
                self.counters
                    .call_sent(Registry::global().find(id).map(|(i, _)| i));
            }
            Err(e) => self.requests.complete(seq, Err(e)),
        }
        rx
    }

    /// Waits a moment for the answer of a request on the calling thread,
    /// polling the transport, if it is the only request in flight here (a
    /// fan-out of many leaves them to the spinner): `answered` says whether
    /// the answer came. Returns what `answered` last said.
    pub(crate) fn wait_inline(&self, answered: impl FnOnce() -> bool) -> bool {
        self.requests.in_flight() == 1 && self.warmth.poll_until(answered)
    }

    /// Sends a fire-and-forget call of action `id` to `dest`.
    pub(crate) fn post(self: &Arc<Self>, dest: LocalityId, id: u64, args: Bytes) -> Result<()> {
        let found = Registry::global().find(id);
        let name = found.map_or("unknown action", |(_, e)| e.name);
        self.send(
            self.header(kind::POST, dest, id, self.trace_seq()),
            args,
            name,
        )?;
        self.work.sent_one();
        self.counters.call_sent(found.map(|(i, _)| i));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    fn answer(rx: &mut oneshot::Receiver<Result<Bytes>>) -> Option<Result<Bytes>> {
        match rx.try_recv() {
            Ok(result) => Some(result),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => panic!("the request was dropped unanswered"),
        }
    }

    fn lost(locality: u32) -> Error {
        Error::LocalityLost {
            locality: LocalityId(locality),
            reason: "gone".into(),
        }
    }

    #[test]
    fn sequence_numbers_start_at_one_and_are_never_reused() {
        let requests = Requests::new();
        let (a, _ra) = requests.file(LocalityId(1), "a");
        assert_eq!(a, 1);
        assert_eq!(
            requests.next_seq(),
            2,
            "traced posts and controls share the numbers"
        );
        let (b, _rb) = requests.file(LocalityId(1), "b");
        assert_eq!(b, 3);
    }

    #[test]
    fn a_reply_reaches_its_waiter_only() {
        let requests = Requests::new();
        let (a, mut ra) = requests.file(LocalityId(1), "a");
        let (_b, mut rb) = requests.file(LocalityId(1), "b");
        requests.complete(a, Ok(Bytes::from_static(b"nine")));
        assert_eq!(answer(&mut ra), Some(Ok(Bytes::from_static(b"nine"))));
        assert_eq!(answer(&mut rb), None);
    }

    #[test]
    fn unknown_and_repeated_answers_are_ignored() {
        let requests = Requests::new();
        let (a, mut ra) = requests.file(LocalityId(1), "a");
        requests.complete(a + 100, Ok(Bytes::from_static(b"stray")));
        assert_eq!(answer(&mut ra), None);
        requests.complete(a, Err(Error::Aborted("first".into())));
        requests.complete(a, Ok(Bytes::from_static(b"second")));
        assert_eq!(answer(&mut ra), Some(Err(Error::Aborted("first".into()))));
    }

    #[test]
    fn an_answer_to_a_caller_gone_is_dropped_quietly() {
        let requests = Requests::new();
        let (a, ra) = requests.file(LocalityId(1), "a");
        drop(ra);
        requests.complete(a, Ok(Bytes::new()));
        requests.withdraw(LocalityId(1)).fail(&lost(1));
    }

    #[test]
    fn a_loss_fails_exactly_the_requests_to_that_locality() {
        let requests = Requests::new();
        let (_, mut to1) = requests.file(LocalityId(1), "a");
        let (s2, mut to2) = requests.file(LocalityId(2), "b");
        let (_, mut to1_again) = requests.file(LocalityId(1), "c");
        let withdrawn = requests.withdraw(LocalityId(1));
        // Taken out, not failed yet: an abort in between does not reach them.
        assert_eq!(answer(&mut to1), None);
        requests.fail_all(&Error::Aborted("abort".into()));
        assert_eq!(answer(&mut to1), None);
        assert_eq!(answer(&mut to2), Some(Err(Error::Aborted("abort".into()))));
        withdrawn.fail(&lost(1));
        assert_eq!(answer(&mut to1), Some(Err(lost(1))));
        assert_eq!(answer(&mut to1_again), Some(Err(lost(1))));
        // Already failed: a late reply goes nowhere.
        requests.complete(s2, Ok(Bytes::new()));
    }

    #[test]
    fn a_loss_leaves_the_others_waiting() {
        let requests = Requests::new();
        let (_, mut to1) = requests.file(LocalityId(1), "a");
        let (s2, mut to2) = requests.file(LocalityId(2), "b");
        requests.withdraw(LocalityId(1)).fail(&lost(1));
        assert_eq!(answer(&mut to1), Some(Err(lost(1))));
        assert_eq!(answer(&mut to2), None);
        requests.complete(s2, Ok(Bytes::from_static(b"ok")));
        assert_eq!(answer(&mut to2), Some(Ok(Bytes::from_static(b"ok"))));
        // Nothing left to 1.
        requests.withdraw(LocalityId(1)).fail(&lost(1));
    }

    #[test]
    fn an_abort_fails_every_request_once() {
        let requests = Requests::new();
        let mut waiting: Vec<_> = (0..4)
            .map(|i| requests.file(LocalityId(i), "a").1)
            .collect();
        let abort = Error::Aborted("stopped".into());
        requests.fail_all(&abort);
        for rx in &mut waiting {
            assert_eq!(answer(rx), Some(Err(abort.clone())));
        }
        requests.fail_all(&Error::Aborted("again".into()));
    }

    #[test]
    fn an_unknown_action_is_named_as_the_caller_knows_it() {
        let requests = Requests::new();
        let (seq, _rx) = requests.file(LocalityId(3), "module::square");
        let unknown = Error::UnknownAction {
            locality: LocalityId(3),
            id: 0xabc,
            action: String::new(),
        };
        let payload = codec::encode(&unknown).expect("encodes");
        let named = Error::UnknownAction {
            locality: LocalityId(3),
            id: 0xabc,
            action: "module::square".into(),
        };
        assert_eq!(requests.failure(seq, &payload), named);
        let stray = Error::UnknownAction {
            locality: LocalityId(3),
            id: 0xabc,
            action: "?".into(),
        };
        assert_eq!(requests.failure(seq + 1, &payload), stray);
    }

    #[test]
    fn other_failures_pass_as_they_are() {
        let requests = Requests::new();
        let (seq, _rx) = requests.file(LocalityId(1), "a");
        let remote = Error::Remote {
            locality: LocalityId(1),
            action: "a".into(),
            message: "no".into(),
        };
        let payload = codec::encode(&remote).expect("encodes");
        assert_eq!(requests.failure(seq, &payload), remote);
        assert!(
            matches!(requests.failure(seq, &[0xff; 3]), Error::Codec(_)),
            "an undecodable failure is a codec error"
        );
    }
}

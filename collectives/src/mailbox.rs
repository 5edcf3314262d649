//! Where collective messages wait for their receiver.
//!
//! A message is filed under its communicator, its *generation* (the number
//! of the call on that communicator), its tag (the step of the algorithm)
//! and its sender's rank. A locality that runs ahead into later calls only
//! adds messages under later generations, which wait until this locality
//! gets there.
//!
//! The mailbox also checks participation: once this locality has entered a
//! call, any message of that call whose [`Signature`] differs from its own
//! fails the call here, and the failure is announced to the other
//! participants (an [`Alarm`]), so that everyone fails instead of waiting.
//! A failure announced by another participant fails the call the same way.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use hpx_runtime::{Error, LocalityId, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::payload::Payload;
use crate::signature::Signature;

/// The address and signature of one message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The communicator's id.
    pub comm: u64,
    /// The call's generation on that communicator.
    pub gen: u64,
    /// The step of the algorithm.
    pub tag: u32,
    /// The sender's rank in the communicator.
    pub from_rank: u32,
    /// The sender's locality.
    pub from: LocalityId,
    /// The sender's view of the call.
    pub sig: Signature,
}

/// This locality's view of a call it has entered.
#[derive(Clone, Debug)]
pub(crate) struct Expected {
    /// The signature every message must carry.
    pub sig: Signature,
    /// The value type's name, for error messages.
    pub type_name: &'static str,
    /// The reduction's name, for error messages.
    pub op_name: &'static str,
    /// The communicator's name.
    pub comm_name: Arc<str>,
    /// The communicator's members, by rank.
    pub members: Arc<[LocalityId]>,
    /// This locality.
    pub here: LocalityId,
}

/// A failure detected here that the listed localities must hear of.
#[derive(Debug)]
pub(crate) struct Alarm {
    /// The communicator.
    pub comm: u64,
    /// The failed call.
    pub gen: u64,
    /// What went wrong.
    pub error: Error,
    /// Who to tell.
    pub to: Vec<LocalityId>,
}

/// The outcome of entering a call.
pub(crate) enum Entry {
    /// The call is open.
    Open,
    /// The call had failed elsewhere already.
    Failed(Error),
    /// A message that arrived early does not match: the call failed here
    /// and the others must hear of it.
    Mismatch(Alarm),
}

/// The outcome of asking for a message.
pub(crate) enum Wait {
    /// The message (or the call's failure) is here.
    Ready(Result<Payload>),
    /// It will come through this channel.
    Pending(oneshot::Receiver<Result<Payload>>),
}

struct Arrived {
    tag: u32,
    from_rank: u32,
    from: LocalityId,
    sig: Signature,
    payload: Payload,
}

struct Waiter {
    tag: u32,
    from_rank: u32,
    reply: oneshot::Sender<Result<Payload>>,
}

/// The messages of one call.
#[derive(Default)]
struct Call {
    expected: Option<Expected>,
    arrived: Vec<Arrived>,
    waiting: Vec<Waiter>,
    failure: Option<Error>,
}

impl Call {
    /// Fails the call: every waiter gets `error`, later messages are dropped.
    fn fail(&mut self, error: Error) {
        if self.failure.is_some() {
            return;
        }
        self.arrived.clear();
        for waiter in self.waiting.drain(..) {
            let _ = waiter.reply.send(Err(error.clone()));
        }
        self.failure = Some(error);
    }
}

/// The calls of one communicator.
#[derive(Default)]
struct CommCalls {
    calls: HashMap<u64, Call>,
    /// Every generation below this one is finished.
    finished_below: u64,
    /// Finished generations at or above `finished_below`.
    finished: BTreeSet<u64>,
}

impl CommCalls {
    fn is_finished(&self, gen: u64) -> bool {
        gen < self.finished_below || self.finished.contains(&gen)
    }

    fn finish(&mut self, gen: u64) {
        self.calls.remove(&gen);
        if gen == self.finished_below {
            // Calls end in order almost always: no set to touch.
            self.finished_below += 1;
        } else if gen > self.finished_below {
            self.finished.insert(gen);
        }
        while !self.finished.is_empty() && self.finished.remove(&self.finished_below) {
            self.finished_below += 1;
        }
    }
}

/// All collective messages of this locality.
#[derive(Default)]
pub(crate) struct Mailbox {
    comms: HashMap<u64, CommCalls>,
}

/// The error of a message from `env` that does not match `expected`.
fn mismatch(expected: &Expected, env: &Envelope) -> Error {
    let theirs = env.sig.describe(
        (env.sig.ty == expected.sig.ty).then_some(expected.type_name),
        (env.sig.op == expected.sig.op).then_some(expected.op_name),
    );
    let mine = expected
        .sig
        .describe(Some(expected.type_name), Some(expected.op_name));
    Error::CollectiveMismatch(format!(
        "on communicator {:?} (call {}): rank {} (locality {}) called {}, \
         but locality {} called {}",
        expected.comm_name, env.gen, env.from_rank, env.from, theirs, expected.here, mine
    ))
}

/// Everyone but this locality among the members, plus `sender` if it is
/// not a member (it may have another member list).
fn alarm_targets(expected: &Expected, sender: LocalityId) -> Vec<LocalityId> {
    let mut to: Vec<LocalityId> = expected
        .members
        .iter()
        .copied()
        .filter(|l| *l != expected.here)
        .collect();
    if sender != expected.here && !to.contains(&sender) {
        to.push(sender);
    }
    to
}

impl Mailbox {
    /// Files a received message; a mismatch fails the call and returns the
    /// alarm to send.
    pub(crate) fn deliver(&mut self, env: Envelope, mut payload: Payload) -> Option<Alarm> {
        let comm = self.comms.entry(env.comm).or_default();
        if comm.is_finished(env.gen) {
            return None;
        }
        let call = comm.calls.entry(env.gen).or_default();
        if call.failure.is_some() {
            return None;
        }
        if let Some(expected) = &call.expected {
            if env.sig != expected.sig {
                let error = mismatch(expected, &env);
                let to = alarm_targets(expected, env.from);
                call.fail(error.clone());
                return Some(Alarm {
                    comm: env.comm,
                    gen: env.gen,
                    error,
                    to,
                });
            }
            if let Some(i) = call
                .waiting
                .iter()
                .position(|w| w.tag == env.tag && w.from_rank == env.from_rank)
            {
                let waiter = call.waiting.swap_remove(i);
                match waiter.reply.send(Ok(payload)) {
                    Ok(()) | Err(Err(_)) => return None,
                    // The receiver gave up waiting: keep the message.
                    Err(Ok(returned)) => payload = returned,
                }
            }
        }
        call.arrived.push(Arrived {
            tag: env.tag,
            from_rank: env.from_rank,
            from: env.from,
            sig: env.sig,
            payload,
        });
        None
    }

    /// Fails a call because another participant said it failed.
    pub(crate) fn fail(&mut self, comm: u64, gen: u64, error: Error) {
        let comm = self.comms.entry(comm).or_default();
        if !comm.is_finished(gen) {
            comm.calls.entry(gen).or_default().fail(error);
        }
    }

    /// This locality enters call `gen`: checks what arrived early. With
    /// `messages`, the call's messages will come through the mailbox and
    /// `expected` is kept to check them; without (a call through shared
    /// memory, where only failures come), nothing is filed for it.
    pub(crate) fn enter(
        &mut self,
        comm: u64,
        gen: u64,
        expected: impl FnOnce() -> Expected,
        messages: bool,
    ) -> Entry {
        let comm_calls = self.comms.entry(comm).or_default();
        if comm_calls.is_finished(gen) {
            return Entry::Failed(Error::BadArgument(format!(
                "call {gen} of communicator {:?} was entered twice",
                expected().comm_name
            )));
        }
        let call = if messages {
            comm_calls.calls.entry(gen).or_default()
        } else {
            match comm_calls.calls.get_mut(&gen) {
                Some(call) => call,
                // Nothing came for it yet, and only failures will.
                None => return Entry::Open,
            }
        };
        if let Some(error) = &call.failure {
            return Entry::Failed(error.clone());
        }
        let expected = expected();
        if let Some(a) = call.arrived.iter().find(|a| a.sig != expected.sig) {
            let env = Envelope {
                comm,
                gen,
                tag: a.tag,
                from_rank: a.from_rank,
                from: a.from,
                sig: a.sig,
            };
            let error = mismatch(&expected, &env);
            let to = alarm_targets(&expected, a.from);
            call.fail(error.clone());
            return Entry::Mismatch(Alarm {
                comm,
                gen,
                error,
                to,
            });
        }
        if messages {
            call.expected = Some(expected);
        }
        Entry::Open
    }

    /// Takes the message of call `gen` with `tag` from `from_rank`, or
    /// registers to get it.
    pub(crate) fn take(&mut self, comm: u64, gen: u64, tag: u32, from_rank: u32) -> Wait {
        let call = self
            .comms
            .entry(comm)
            .or_default()
            .calls
            .entry(gen)
            .or_default();
        if let Some(error) = &call.failure {
            return Wait::Ready(Err(error.clone()));
        }
        if let Some(i) = call
            .arrived
            .iter()
            .position(|a| a.tag == tag && a.from_rank == from_rank)
        {
            return Wait::Ready(Ok(call.arrived.swap_remove(i).payload));
        }
        let (reply, rx) = oneshot::channel();
        call.waiting.push(Waiter {
            tag,
            from_rank,
            reply,
        });
        Wait::Pending(rx)
    }

    /// Ends call `gen` here; returns whether it had failed through the
    /// mailbox (the others have been told already).
    pub(crate) fn finish(&mut self, comm: u64, gen: u64) -> bool {
        let comm = self.comms.entry(comm).or_default();
        let failed = comm
            .calls
            .get(&gen)
            .is_some_and(|call| call.failure.is_some());
        comm.finish(gen);
        failed
    }

    /// Drops everything of a communicator that no longer exists here.
    pub(crate) fn forget(&mut self, comm: u64) {
        self.comms.remove(&comm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Kind;

    fn expected(sig: Signature) -> Expected {
        Expected {
            sig,
            type_name: "f64",
            op_name: "sum",
            comm_name: "world".into(),
            members: vec![LocalityId(0), LocalityId(1), LocalityId(2)].into(),
            here: LocalityId(0),
        }
    }

    fn env(gen: u64, tag: u32, from_rank: u32, sig: Signature) -> Envelope {
        Envelope {
            comm: 0,
            gen,
            tag,
            from_rank,
            from: LocalityId(from_rank),
            sig,
        }
    }

    fn bytes(wait: Wait) -> Vec<u8> {
        match wait {
            Wait::Ready(Ok(p)) => p.into_single().unwrap(),
            Wait::Ready(Err(e)) => panic!("failed: {e}"),
            Wait::Pending(_) => panic!("pending"),
        }
    }

    #[test]
    fn early_messages_wait_for_their_generation() {
        let sig = Signature::of::<f64>(Kind::AllReduce).len(1);
        let mut m = Mailbox::default();
        assert!(m
            .deliver(env(1, 0, 1, sig), Payload::single(vec![1]))
            .is_none());
        assert!(m
            .deliver(env(0, 0, 1, sig), Payload::single(vec![0]))
            .is_none());
        assert!(matches!(m.enter(0, 0, || expected(sig), true), Entry::Open));
        assert_eq!(bytes(m.take(0, 0, 0, 1)), [0]);
        assert!(!m.finish(0, 0));
        assert!(matches!(m.enter(0, 1, || expected(sig), true), Entry::Open));
        assert_eq!(bytes(m.take(0, 1, 0, 1)), [1]);
        m.finish(0, 1);
        // Late messages of finished calls are dropped.
        m.deliver(env(0, 0, 2, sig), Payload::single(vec![9]));
        assert!(m.comms[&0].calls.is_empty());
        assert_eq!(m.comms[&0].finished_below, 2);
    }

    #[tokio::test]
    async fn waiters_get_their_message() {
        let sig = Signature::bare(Kind::Barrier);
        let mut m = Mailbox::default();
        assert!(matches!(m.enter(0, 0, || expected(sig), true), Entry::Open));
        let Wait::Pending(rx) = m.take(0, 0, 3, 2) else {
            panic!("nothing arrived yet")
        };
        m.deliver(env(0, 4, 2, sig), Payload::single(vec![4]));
        m.deliver(env(0, 3, 2, sig), Payload::single(vec![3]));
        assert_eq!(rx.await.unwrap().unwrap().into_single().unwrap(), [3]);
        assert_eq!(bytes(m.take(0, 0, 4, 2)), [4]);
    }

    #[tokio::test]
    async fn a_mismatch_fails_the_call_and_raises_an_alarm() {
        let mine = Signature::of::<Vec<f64>>(Kind::AllReduce).len(5);
        let theirs = mine.len(6);
        let mut m = Mailbox::default();
        assert!(matches!(
            m.enter(0, 0, || expected(mine), true),
            Entry::Open
        ));
        let Wait::Pending(rx) = m.take(0, 0, 0, 1) else {
            panic!()
        };
        let alarm = m
            .deliver(env(0, 0, 1, theirs), Payload::empty())
            .expect("alarm");
        assert_eq!(alarm.to, [LocalityId(1), LocalityId(2)]);
        let err = rx.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("of 6 elements"), "{err}");
        assert!(err.to_string().contains("of 5 elements"), "{err}");
        assert!(m.finish(0, 0));
        // Buffered mismatches are found on entry; a stranger is told too.
        let mut m = Mailbox::default();
        let mut stranger = env(0, 0, 1, Signature::bare(Kind::Barrier));
        stranger.from = LocalityId(7);
        m.deliver(stranger, Payload::empty());
        let Entry::Mismatch(alarm) = m.enter(0, 0, || expected(mine), true) else {
            panic!("the early barrier message does not match")
        };
        assert!(
            alarm.error.to_string().contains("called barrier"),
            "{:?}",
            alarm.error
        );
        assert!(alarm.to.contains(&LocalityId(7)));
    }

    #[test]
    fn failures_from_elsewhere_are_not_raised_again() {
        let sig = Signature::bare(Kind::Barrier);
        let mut m = Mailbox::default();
        m.fail(0, 3, Error::Aborted("x".into()));
        let Entry::Failed(err) = m.enter(0, 3, || expected(sig), true) else {
            panic!("the call failed elsewhere")
        };
        assert_eq!(err, Error::Aborted("x".into()));
        assert!(m.finish(0, 3));
        assert!(matches!(
            m.enter(0, 3, || expected(sig), true),
            Entry::Failed(_)
        ));
    }

    #[test]
    fn calls_without_messages_file_nothing_but_still_fail() {
        let sig = Signature::bare(Kind::Barrier);
        let mut m = Mailbox::default();
        assert!(matches!(
            m.enter(0, 0, || expected(sig), false),
            Entry::Open
        ));
        assert!(m.comms[&0].calls.is_empty());
        assert!(!m.finish(0, 0));
        // Out of order: call 2 ends before call 1.
        m.fail(0, 1, Error::Aborted("x".into()));
        assert!(matches!(
            m.enter(0, 2, || expected(sig), false),
            Entry::Open
        ));
        assert!(!m.finish(0, 2));
        let Entry::Failed(err) = m.enter(0, 1, || expected(sig), false) else {
            panic!("call 1 failed elsewhere")
        };
        assert_eq!(err, Error::Aborted("x".into()));
        assert!(m.finish(0, 1));
        assert_eq!(m.comms[&0].finished_below, 3);
        assert!(m.comms[&0].finished.is_empty());
        assert!(m.comms[&0].calls.is_empty());
        // A failure of a call that ended is dropped.
        m.fail(0, 2, Error::Aborted("late".into()));
        assert!(m.comms[&0].calls.is_empty());
    }
}

//! One collective call on one locality: its generation, its messages, and
//! what happens when it fails.

use std::sync::Arc;

use hpx_runtime::{Error, LocalityId, Result};

use crate::algorithms::tag;
use crate::comm::CommInner;
use crate::host::{CallInfo, Failure, FailureSource, HostCall, HostSegment, Waiter};
use crate::mailbox::{Alarm, Entry, Envelope, Expected, Wait};
use crate::payload::Payload;
use crate::session::{send, Session};
use crate::signature::Signature;

/// A message that came with the tag that nothing sends.
fn stray() -> Error {
    Error::Codec("a collective message arrived with the shared-memory tag".into())
}

/// A collective call in progress on this locality.
///
/// Made by [`Round::begin`], which takes the communicator's next generation,
/// and ended by [`Round::end`]. A call that fails here (a mismatch, a lost
/// locality, a bad argument) tells every other member, so that nobody
/// waits for it; a call dropped before its end (a cancelled future) does
/// the same.
pub(crate) struct Round {
    session: Arc<Session>,
    comm: Arc<CommInner>,
    sig: Signature,
    gen: u64,
    ended: bool,
    type_name: &'static str,
    op_name: &'static str,
    /// Times the call for the locality's counters (and trace).
    _timer: hpx_runtime::counters::WaitTimer,
}

impl Round {
    /// Enters the next call on `comm`, described by `sig`.
    pub(crate) fn begin(
        comm: &Arc<CommInner>,
        sig: Signature,
        type_name: &'static str,
        op_name: &'static str,
    ) -> Result<Round> {
        let session = comm.session()?;
        let gen = comm.next_generation();
        let host = comm.host();
        let expected = || Expected {
            sig,
            type_name,
            op_name,
            comm_name: comm.name.clone(),
            members: comm.members.clone(),
            here: session.here,
        };
        // A call through shared memory gets no messages, only failures.
        let messages = !(sig.kind.shared() && matches!(host, Ok(Some(_))));
        let entered = session
            .mailbox
            .lock()
            .enter(comm.id, gen, expected, messages);
        let round = Round {
            session,
            comm: comm.clone(),
            sig,
            gen,
            ended: false,
            type_name,
            op_name,
            _timer: hpx_runtime::counters::time_wait(sig.kind.name()),
        };
        match host {
            Ok(Some(host)) => host.announce(gen, sig.kind),
            Ok(None) => {}
            Err(error) => return round.end(Err(error)),
        }
        match entered {
            Entry::Open => Ok(round),
            Entry::Failed(error) => round.end(Err(error)),
            Entry::Mismatch(alarm) => {
                let error = alarm.error.clone();
                round.session.raise(alarm);
                round.end(Err(error))
            }
        }
    }

    /// This locality's rank in the communicator.
    pub(crate) fn rank(&self) -> u32 {
        self.comm.rank
    }

    /// The number of members.
    pub(crate) fn size(&self) -> u32 {
        self.comm.members.len() as u32
    }

    fn locality(&self, rank: u32) -> Result<LocalityId> {
        self.comm
            .members
            .get(rank as usize)
            .copied()
            .ok_or_else(|| Error::BadArgument(format!("no rank {rank} in the communicator")))
    }

    /// Sends `payload` to rank `to` as step `tag`.
    pub(crate) fn send(&self, to: u32, tag: u32, payload: Payload) -> Result<()> {
        let envelope = Envelope {
            comm: self.comm.id,
            gen: self.gen,
            tag,
            from_rank: self.comm.rank,
            from: self.session.here,
            sig: self.sig,
        };
        send(self.locality(to)?, envelope, payload)
    }

    /// Receives step `tag` from rank `from`; fails if the call fails or a
    /// member is lost meanwhile.
    pub(crate) async fn recv(&self, from: u32, tag: u32) -> Result<Payload> {
        let wait = self
            .session
            .mailbox
            .lock()
            .take(self.comm.id, self.gen, tag, from);
        let rx = match wait {
            Wait::Ready(result) => return result,
            Wait::Pending(rx) => rx,
        };
        let lost = hpx_runtime::first_lost(self.comm.members.clone());
        tokio::select! {
            biased;
            got = rx => got.unwrap_or_else(|_| Err(Error::Aborted(
                "the collectives' mailbox was dropped while a call waited".into(),
            ))),
            error = lost => Err(error),
        }
    }

    /// The members' shared region, where they all share this host.
    pub(crate) fn host(&self) -> Option<&HostSegment> {
        self.comm.host().ok().flatten()
    }

    /// This call in the members' shared region, where they all share this
    /// host and its kind runs there ([`crate::signature::Kind::shared`]; see [`HostCall`]).
    pub(crate) fn host_call(&self) -> Option<HostCall<'_>> {
        if !self.sig.kind.shared() {
            return None;
        }
        let seg = self.host()?;
        let call = CallInfo {
            gen: self.gen,
            sig: self.sig,
            members: &self.comm.members,
            here: self.session.here,
            comm_name: &self.comm.name,
            type_name: self.type_name,
            op_name: self.op_name,
        };
        Some(HostCall::new(
            seg,
            call,
            Waiter::new(&self.comm.members, self),
        ))
    }

    /// Ends the call with `result`. A failure detected here is announced to
    /// the other members.
    pub(crate) fn end<T>(mut self, result: Result<T>) -> Result<T> {
        self.ended = true;
        let told = self.session.mailbox.lock().finish(self.comm.id, self.gen);
        if let Err(error) = &result {
            if !told {
                self.alarm(error.clone());
            }
        }
        result
    }

    fn alarm(&self, error: Error) {
        self.session.raise(Alarm {
            comm: self.comm.id,
            gen: self.gen,
            error,
            to: self.comm.members.to_vec(),
        });
    }
}

impl FailureSource for Round {
    /// Resolves only when the call fails: nothing is ever sent with the
    /// shared-memory tag, so only a failure of the call answers it.
    fn failure(&self) -> Result<Failure> {
        let rx = match self.session.mailbox.lock().take(
            self.comm.id,
            self.gen,
            tag::HOST,
            self.comm.rank,
        ) {
            Wait::Ready(Err(error)) => return Err(error),
            Wait::Ready(Ok(_)) => return Err(stray()),
            Wait::Pending(rx) => rx,
        };
        Ok(Box::pin(async move {
            match rx.await {
                Ok(Err(error)) => error,
                Ok(Ok(_)) => stray(),
                Err(_) => Error::Aborted(
                    "the collectives' mailbox was dropped while a call waited".into(),
                ),
            }
        }))
    }
}

impl Drop for Round {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let told = self.session.mailbox.lock().finish(self.comm.id, self.gen);
        if !told {
            self.alarm(Error::Aborted(format!(
                "call {} on communicator {:?} was cancelled on locality {}",
                self.gen, self.comm.name, self.session.here
            )));
        }
    }
}

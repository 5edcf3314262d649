//! Parcels in and out: the kinds of the runtime's parcels ([`kind`]), their
//! headers, sending one, and handing what arrives to the concern it is for
//! (calls to [`super::calls`], answers to [`super::requests`], control
//! messages to [`super::control`], losses of peers to
//! [`super::lifecycle`]).

use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use hpx_parcelport::parcel::FLAG_UNMETERED;
use hpx_parcelport::{Credit, LocalityId, Parcel, ParcelHandler, ParcelHeader, TransportError};

use super::Locality;
use crate::action::Registry;
use crate::trace;
use crate::{Error, Result};

/// Parcel kinds used by the runtime.
pub(super) mod kind {
    /// Run an action and answer.
    pub(crate) const REQUEST: u8 = 1;
    /// Run an action, no answer.
    pub(crate) const POST: u8 = 2;
    /// An action's result.
    pub(crate) const REPLY: u8 = 3;
    /// An action's failure.
    pub(crate) const FAILURE: u8 = 4;
    /// Runtime control traffic.
    pub(crate) const CONTROL: u8 = 5;
}

/// The flags of a parcel of `kind`: calls (requests and posts) are charged
/// to the receiver's incoming budget, answers and control traffic are not.
fn flags(kind: u8) -> u16 {
    if kind == kind::REQUEST || kind == kind::POST {
        0
    } else {
        FLAG_UNMETERED
    }
}

/// Whether parcels of `kind` answer a request (their flow is the request's).
fn is_reply(kind: u8) -> bool {
    kind == kind::REPLY || kind == kind::FAILURE
}

/// What a received parcel is, for the trace: the action it calls, or its
/// kind.
fn received_name(header: &ParcelHeader) -> &'static str {
    match header.kind {
        kind::REQUEST | kind::POST => Registry::global()
            .get(header.tag)
            .map_or("unknown action", |e| e.name),
        kind::REPLY => "reply",
        kind::FAILURE => "failure",
        _ => "control",
    }
}

/// Hands what the transport receives to the locality.
struct Dispatcher(Weak<Locality>);

impl ParcelHandler for Dispatcher {
    fn on_parcel(&self, parcel: Parcel, credit: Credit) {
        if let Some(locality) = self.0.upgrade() {
            locality.on_parcel(parcel, credit);
        }
    }

    fn on_peer_lost(&self, locality: LocalityId, reason: &str) {
        if let Some(this) = self.0.upgrade() {
            this.on_peer_lost(locality, reason);
        }
    }
}

impl Locality {
    /// Starts handling what arrives. Call it once the locality's threads
    /// can find it: received actions run at once.
    pub(crate) fn start_receiving(self: &Arc<Self>) {
        self.run_calls_on_spinner();
        self.port.attach(Arc::new(Dispatcher(Arc::downgrade(self))));
    }

    /// A sequence number for a post or control parcel: one of its own while
    /// tracing (its flow id), 0 otherwise.
    pub(super) fn trace_seq(&self) -> u64 {
        match self.tracer {
            Some(_) => self.requests.next_seq(),
            None => 0,
        }
    }

    /// The header of a parcel of `kind` from here to `dest`.
    pub(super) fn header(&self, kind: u8, dest: LocalityId, tag: u64, seq: u64) -> ParcelHeader {
        ParcelHeader {
            kind,
            flags: flags(kind),
            source: self.here,
            dest,
            tag,
            seq,
        }
    }

    /// Sends a parcel (`name`: its action, or what it is, for the trace).
    ///
    /// Once the job has been aborted the transport closes; a send that
    /// fails then reports the abort's reason, not the closed transport.
    pub(super) fn send(
        self: &Arc<Self>,
        header: ParcelHeader,
        payload: Bytes,
        name: &'static str,
    ) -> Result<()> {
        self.warmth.touch();
        let started = self.tracer.as_ref().map(|_| Instant::now());
        let parcel = Parcel { header, payload };
        let bytes = parcel.wire_len();
        // Counted (and traced) before it leaves: over shared memory the
        // receiver may handle it, and the job end, before this thread goes on.
        self.counters.sent(header.dest, bytes);
        if let (Some(tracer), Some(started), Some(flow)) = (
            &self.tracer,
            started,
            trace::flow_of(&header, is_reply(header.kind)),
        ) {
            tracer.leaving(flow, started);
        }
        let sent = self.port.send(parcel).map_err(|e| {
            if let Some(reason) = self.aborted() {
                return Error::Aborted(reason);
            }
            match e {
                // The transport knew of the loss before it told the
                // handler: the lifecycle learns it here first, so that
                // nothing that fails with it (a request, and so main) is
                // seen before the abort it causes, with its culprit.
                TransportError::PeerLost { locality, reason } => {
                    self.on_peer_lost(locality, &reason);
                    Error::LocalityLost { locality, reason }
                }
                e => Error::from(e),
            }
        });
        match (&sent, &self.tracer, started) {
            (Err(_), _, _) => self.counters.unsent(header.dest, bytes),
            (Ok(()), Some(tracer), Some(started)) => tracer.slice("send", name, started),
            (Ok(()), _, _) => {}
        }
        sent
    }

    /// A parcel arrived: counts it, traces it and hands it on.
    fn on_parcel(self: Arc<Self>, parcel: Parcel, credit: Credit) {
        self.warmth.touch();
        self.counters
            .received(parcel.header.source, parcel.wire_len());
        let traced = self.tracer.clone().map(|tracer| {
            let header = &parcel.header;
            let name = received_name(header);
            let started = Instant::now();
            if let Some(flow) = trace::flow_of(header, is_reply(header.kind)) {
                tracer.arrived(flow, started);
            }
            (tracer, name, started)
        });
        self.handle(parcel, credit);
        if let Some((tracer, name, started)) = traced {
            tracer.slice("receive", name, started);
        }
    }

    /// Hands a received parcel to the concern of its kind.
    fn handle(self: Arc<Self>, parcel: Parcel, credit: Credit) {
        let Parcel { header, payload } = parcel;
        match header.kind {
            kind::REQUEST | kind::POST => self.on_call(header, payload, credit),
            kind::REPLY => self.requests.complete(header.seq, Ok(payload)),
            kind::FAILURE => {
                let error = self.requests.failure(header.seq, &payload);
                self.requests.complete(header.seq, Err(error));
            }
            kind::CONTROL => self.on_control_parcel(header.source, &payload),
            other => tracing::warn!(from = %header.source, kind = other, "parcel of unknown kind"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, tag: u64) -> ParcelHeader {
        ParcelHeader {
            kind,
            flags: flags(kind),
            source: LocalityId(1),
            dest: LocalityId(0),
            tag,
            seq: 7,
        }
    }

    #[test]
    fn calls_are_metered_answers_and_control_are_not() {
        assert_eq!(flags(kind::REQUEST), 0);
        assert_eq!(flags(kind::POST), 0);
        assert_eq!(flags(kind::REPLY), FLAG_UNMETERED);
        assert_eq!(flags(kind::FAILURE), FLAG_UNMETERED);
        assert_eq!(flags(kind::CONTROL), FLAG_UNMETERED);
    }

    #[test]
    fn replies_and_failures_answer_requests() {
        assert!(is_reply(kind::REPLY));
        assert!(is_reply(kind::FAILURE));
        for kind in [kind::REQUEST, kind::POST, kind::CONTROL, 0, 99] {
            assert!(!is_reply(kind), "kind {kind}");
        }
    }

    #[test]
    fn the_kinds_are_those_on_the_wire() {
        // The peers of a job run the same binary, but a trace or a capture
        // reads these numbers: they do not change.
        assert_eq!(
            [
                kind::REQUEST,
                kind::POST,
                kind::REPLY,
                kind::FAILURE,
                kind::CONTROL
            ],
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn received_parcels_are_named_by_action_or_kind() {
        let registry = Registry::global();
        let entry = registry
            .entries()
            .first()
            .expect("the runtime's own actions");
        assert_eq!(received_name(&header(kind::REQUEST, entry.id)), entry.name);
        assert_eq!(received_name(&header(kind::POST, entry.id)), entry.name);
        let unknown = (0..).find(|id| registry.get(*id).is_none()).unwrap_or(0);
        assert_eq!(
            received_name(&header(kind::REQUEST, unknown)),
            "unknown action"
        );
        assert_eq!(
            received_name(&header(kind::POST, unknown)),
            "unknown action"
        );
        assert_eq!(received_name(&header(kind::REPLY, 0)), "reply");
        assert_eq!(received_name(&header(kind::FAILURE, 0)), "failure");
        assert_eq!(received_name(&header(kind::CONTROL, 0)), "control");
        assert_eq!(received_name(&header(42, 0)), "control");
    }
}

//! The runtime's own messages between localities ([`Control`], in `CONTROL`
//! parcels): the end of the job (mains done, waves of queries and reports,
//! shutdown, abort, failures and losses seen) and, while tracing, the clock
//! pings that measure each locality's clock offset.
//!
//! Each message goes one way ([`Control::accepted`]): news for the root
//! (mains done, reports, failures, losses, clock answers) is taken only on
//! the root, orders (queries, shutdown, abort, clock pings) only from it.
//! What the end of the job means is [`super::lifecycle`]'s; this module
//! sends, receives and routes.

use std::sync::Arc;
use std::time::Duration;

use hpx_parcelport::LocalityId;
use serde::{Deserialize, Serialize};

use super::parcels::kind;
use super::Locality;
use crate::codec;
use crate::termination::Event;
use crate::trace;

/// The runtime's own messages (end of job, clocks). Their order is their
/// wire encoding: add new ones at the end.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(super) enum Control {
    /// To the root: the sender's main returned.
    MainDone {
        /// Why it failed, if it did.
        failure: Option<String>,
    },
    /// From the root: report once no received work runs.
    Query {
        /// The wave of queries.
        wave: u64,
    },
    /// To the root: the answer to a [`Control::Query`].
    Report {
        /// The wave answered.
        wave: u64,
        /// Calls the sender has sent.
        sent: u64,
        /// Received calls the sender has finished.
        done: u64,
    },
    /// From the root: the job ended normally.
    Shutdown,
    /// From the root: the job is aborted.
    Abort {
        /// Why.
        reason: String,
        /// The locality whose failure or loss caused it, if known.
        culprit: Option<LocalityId>,
    },
    /// To the root: the sender fails (a stop signal, its launcher gone).
    Failed {
        /// Why.
        reason: String,
    },
    /// A locality found another one lost (to the root, which may not see
    /// it yet: a peer of the same host notices at once).
    Lost {
        /// The lost locality.
        locality: LocalityId,
        /// Why the sender thinks so.
        reason: String,
    },
    /// The root's clock (Unix nanoseconds) when it sent this, to measure
    /// the offset of the receiver's clock (while tracing).
    ClockPing {
        /// The root's clock.
        t0: i64,
    },
    /// The answer to a [`Control::ClockPing`]: its `t0`, and the answering
    /// locality's clock when it answered.
    ClockPong {
        /// The ping's clock.
        t0: i64,
        /// The answering locality's clock.
        t1: i64,
    },
}

impl Control {
    /// Whether locality `here` takes this message from `from`: news for the
    /// root only on the root (a loss only of another locality than the root
    /// itself), orders only from the root.
    fn accepted(&self, here: LocalityId, from: LocalityId) -> bool {
        match self {
            Control::MainDone { .. }
            | Control::Report { .. }
            | Control::Failed { .. }
            | Control::ClockPong { .. } => here.is_root(),
            Control::Lost { locality, .. } => here.is_root() && *locality != here,
            Control::Query { .. }
            | Control::Shutdown
            | Control::Abort { .. }
            | Control::ClockPing { .. } => from.is_root(),
        }
    }
}

/// How long the root waits for the clock offsets of a traced job.
const CLOCK_LIMIT: Duration = Duration::from_secs(2);

impl Locality {
    /// Sends `control` to `dest`; a failure to send is only logged (the
    /// end of the job copes with losses by itself).
    pub(super) fn control(self: &Arc<Self>, dest: LocalityId, control: &Control) {
        let sent = codec::encode(control).and_then(|payload| {
            let header = self.header(kind::CONTROL, dest, 0, self.trace_seq());
            self.send(header, payload, "control")
        });
        if let Err(e) = sent {
            tracing::debug!(%e, to = %dest, "control parcel not sent");
        }
    }

    /// A `CONTROL` parcel arrived from `from`.
    pub(super) fn on_control_parcel(self: Arc<Self>, from: LocalityId, payload: &[u8]) {
        match codec::decode::<Control>(payload) {
            Ok(control) => self.on_control(from, control),
            Err(e) => tracing::warn!(%from, %e, "undecodable control parcel"),
        }
    }

    /// Routes a control message from `from` (this locality itself, for the
    /// root's own report) to what it is about.
    fn on_control(self: Arc<Self>, from: LocalityId, control: Control) {
        if !control.accepted(self.here, from) {
            let other = control;
            tracing::warn!(%from, ?other, "unexpected control parcel");
            return;
        }
        match control {
            Control::MainDone { failure } => self.root_event(Event::MainDone { from, failure }),
            Control::Report { wave, sent, done } => self.root_event(Event::Report {
                from,
                wave,
                sent,
                done,
            }),
            Control::Query { wave } => self.answer_query(wave),
            Control::Failed { reason } => self.root_event(Event::Failed { from, reason }),
            Control::Lost { locality, reason } => {
                self.declare_lost(locality, format!("{reason} (seen by locality {from})"));
            }
            Control::Shutdown => self.shut_down_by_root(),
            Control::Abort { reason, culprit } => self.abort_by_root(reason, culprit),
            Control::ClockPing { t0 } => {
                let t1 = self
                    .tracer
                    .as_ref()
                    .map_or_else(trace::unix_now_ns, |t| t.now_ns());
                self.control(from, &Control::ClockPong { t0, t1 });
            }
            Control::ClockPong { t0, t1 } => {
                if let Some(tracer) = &self.tracer {
                    if tracer.clock_sample(from, t0, t1, tracer.now_ns()) {
                        let t0 = tracer.now_ns();
                        self.control(from, &Control::ClockPing { t0 });
                    }
                }
            }
        }
    }

    /// Answers the root's query of `wave` once no received work runs here:
    /// calls sent and finished (the root answers itself).
    pub(super) fn answer_query(self: &Arc<Self>, wave: u64) {
        let this = self.clone();
        self.workers.spawn(async move {
            this.work.idle().await;
            let (sent, done) = this.work.totals();
            let report = Control::Report { wave, sent, done };
            if this.here.is_root() {
                this.on_control(LocalityId::ROOT, report);
            } else {
                this.control(LocalityId::ROOT, &report);
            }
        });
    }

    /// On the root of a traced job: measures every locality's clock offset
    /// (rounds of pings; the best round trip wins), for the trace's merge.
    /// Waits at most [`CLOCK_LIMIT`].
    pub(crate) async fn measure_clocks(self: &Arc<Self>) {
        let Some(tracer) = &self.tracer else {
            return;
        };
        if !self.here.is_root() || self.n == 1 {
            return;
        }
        for i in 1..self.n {
            self.control(
                LocalityId(i),
                &Control::ClockPing {
                    t0: tracer.now_ns(),
                },
            );
        }
        tracer.clocks_measured(CLOCK_LIMIT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: LocalityId = LocalityId::ROOT;
    const ONE: LocalityId = LocalityId(1);
    const TWO: LocalityId = LocalityId(2);

    /// Bytes as the codec writes them: little-endian integers of fixed
    /// size, a `u32` variant index, a `u8` tag before an option's value, a
    /// `u64` length before a string's bytes.
    struct Wire(Vec<u8>);

    impl Wire {
        fn variant(index: u32) -> Wire {
            Wire(index.to_le_bytes().to_vec())
        }

        fn tag(mut self, tag: u8) -> Wire {
            self.0.push(tag);
            self
        }

        fn u32(mut self, value: u32) -> Wire {
            self.0.extend(value.to_le_bytes());
            self
        }

        fn u64(mut self, value: u64) -> Wire {
            self.0.extend(value.to_le_bytes());
            self
        }

        fn i64(mut self, value: i64) -> Wire {
            self.0.extend(value.to_le_bytes());
            self
        }

        fn str(self, value: &str) -> Wire {
            let mut wire = self.u64(value.len() as u64);
            wire.0.extend(value.as_bytes());
            wire
        }
    }

    /// One of each, with the bytes it is on the wire.
    fn each() -> Vec<(Control, Wire)> {
        vec![
            (Control::MainDone { failure: None }, Wire::variant(0).tag(0)),
            (
                Control::MainDone {
                    failure: Some("x".into()),
                },
                Wire::variant(0).tag(1).str("x"),
            ),
            (Control::Query { wave: 3 }, Wire::variant(1).u64(3)),
            (
                Control::Report {
                    wave: 1,
                    sent: 300,
                    done: 2,
                },
                Wire::variant(2).u64(1).u64(300).u64(2),
            ),
            (Control::Shutdown, Wire::variant(3)),
            (
                Control::Abort {
                    reason: "why".into(),
                    culprit: Some(TWO),
                },
                Wire::variant(4).str("why").tag(1).u32(2),
            ),
            (
                Control::Abort {
                    reason: String::new(),
                    culprit: None,
                },
                Wire::variant(4).str("").tag(0),
            ),
            (
                Control::Failed { reason: "r".into() },
                Wire::variant(5).str("r"),
            ),
            (
                Control::Lost {
                    locality: ONE,
                    reason: "r".into(),
                },
                Wire::variant(6).u32(1).str("r"),
            ),
            (Control::ClockPing { t0: -1 }, Wire::variant(7).i64(-1)),
            (
                Control::ClockPong { t0: 1, t1: 2 },
                Wire::variant(8).i64(1).i64(2),
            ),
        ]
    }

    #[test]
    fn the_wire_format_does_not_change() {
        for (control, wire) in each() {
            let encoded = codec::encode(&control).expect("encodes");
            assert_eq!(&encoded[..], &wire.0[..], "{control:?}");
            assert_eq!(codec::decode::<Control>(&wire.0), Ok(control));
        }
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(
            codec::decode::<Control>(&Wire::variant(9).0).is_err(),
            "no such variant"
        );
        assert!(codec::decode::<Control>(&[]).is_err());
        let short = Wire::variant(2).u64(1).u64(0);
        assert!(codec::decode::<Control>(&short.0).is_err(), "cut short");
        let long = Wire::variant(3).tag(0);
        assert!(codec::decode::<Control>(&long.0).is_err(), "trailing bytes");
    }

    #[test]
    fn news_is_taken_on_the_root_only() {
        for (control, _) in each() {
            let news = matches!(
                control,
                Control::MainDone { .. }
                    | Control::Report { .. }
                    | Control::Failed { .. }
                    | Control::Lost { .. }
                    | Control::ClockPong { .. }
            );
            if !news {
                continue;
            }
            assert!(control.accepted(ROOT, ONE), "{control:?}");
            assert!(control.accepted(ROOT, TWO), "{control:?}");
            assert!(!control.accepted(ONE, ROOT), "{control:?}");
            assert!(!control.accepted(TWO, ONE), "{control:?}");
        }
    }

    #[test]
    fn the_root_takes_its_own_news() {
        // The root's own main and report reach it as messages from itself.
        assert!(Control::MainDone { failure: None }.accepted(ROOT, ROOT));
        let report = Control::Report {
            wave: 1,
            sent: 0,
            done: 0,
        };
        assert!(report.accepted(ROOT, ROOT));
    }

    #[test]
    fn orders_are_taken_from_the_root_only() {
        for (control, _) in each() {
            let order = matches!(
                control,
                Control::Query { .. }
                    | Control::Shutdown
                    | Control::Abort { .. }
                    | Control::ClockPing { .. }
            );
            if !order {
                continue;
            }
            assert!(control.accepted(ONE, ROOT), "{control:?}");
            assert!(control.accepted(ROOT, ROOT), "{control:?}");
            assert!(!control.accepted(ONE, TWO), "{control:?}");
            assert!(!control.accepted(ROOT, ONE), "{control:?}");
        }
    }

    #[test]
    fn a_loss_of_the_root_is_not_news_to_the_root() {
        let lost_root = Control::Lost {
            locality: ROOT,
            reason: "r".into(),
        };
        assert!(!lost_root.accepted(ROOT, ONE));
        let lost_two = Control::Lost {
            locality: TWO,
            reason: "r".into(),
        };
        assert!(lost_two.accepted(ROOT, ONE));
        assert!(!lost_two.accepted(ONE, ROOT));
    }
}

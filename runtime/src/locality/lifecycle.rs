//! Where the job stands for this locality: running, then ended, normally
//! ([`Phase::Shutdown`]) or not ([`Phase::Aborted`]); the peers lost on the
//! way; and, on the root, the end-of-job protocol ([`Termination`]).
//!
//! [`Lifecycle`] is a state machine without I/O, in the style of
//! [`crate::termination`]: an [`Input`] in ([`Lifecycle::on`]), the
//! [`Step`]s to carry out, in order, out; it is tested without sockets or
//! tasks. Its rules:
//!
//! - the phase leaves [`Phase::Running`] once: the first end wins;
//! - the first culprit known wins;
//! - a locality is lost once, with its first reason; a loss noticed once
//!   the job is aborted is a consequence (peers close their connections as
//!   they end) and is ignored;
//! - any loss ends the job at once, here and (through the root) everywhere:
//!   whoever waits on the lost locality would wait forever. The root aborts
//!   through [`Termination`] and tells everyone; another locality tells the
//!   root and aborts by itself. The abort is published before the loss, so
//!   that code that sees the loss also sees the abort;
//! - requests to a lost locality fail with its loss, every other request
//!   waiting with the abort's reason.
//!
//! The glue (`impl Locality` below) feeds the machine and carries out its
//! steps: it publishes the phase and the losses on their watches (which the
//! waiters read: [`Locality::until_end`], [`Locality::first_lost`]), fails
//! requests, and sends control messages.

use std::future::Future;
use std::sync::Arc;

use hpx_parcelport::LocalityId;

use super::control::Control;
use super::Locality;
use crate::termination::{Command, Event, Termination};
use crate::Error;

/// How long an aborting locality tries to deliver what it queued (the
/// root's abort notices, say) before it closes its connections anyway.
const ABORT_FLUSH: std::time::Duration = std::time::Duration::from_millis(300);

/// Where the job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Running.
    Running,
    /// Ended normally.
    Shutdown,
    /// Ended with an error.
    Aborted(String),
}

/// What a locality learns about the end of the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Input {
    /// This locality's main returned (with its failure, if it failed).
    MainDone {
        /// Why main failed.
        failure: Option<String>,
    },
    /// On the root: a locality's news for the end-of-job protocol (its main
    /// returned, its report, its failure). Ignored elsewhere.
    Root(Event),
    /// The transport lost `locality`.
    Lost {
        /// The lost locality.
        locality: LocalityId,
        /// Why.
        reason: String,
    },
    /// This locality must end with an error (a stop signal, the launcher
    /// gone).
    Stop {
        /// Why.
        reason: String,
    },
    /// The root ended the job normally.
    Shutdown,
    /// The root aborted the job.
    Abort {
        /// Why.
        reason: String,
        /// Whose failure or loss caused it, if known.
        culprit: Option<LocalityId>,
    },
}

/// One thing to do, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Take the requests waiting on this locality out of the table before
    /// an abort fails the rest: they fail with its loss
    /// ([`Step::FailWithdrawn`]).
    Withdraw(LocalityId),
    /// Send this to the root.
    ToRoot(Control),
    /// Send this to every other locality (the root's orders).
    ToOthers(Control),
    /// Report for query wave `wave` once no received work runs here (the
    /// root asks itself as it asks the others).
    AnswerQuery {
        /// The wave.
        wave: u64,
    },
    /// Publish the end of the job; an abort fails every request still
    /// waiting with its reason.
    End(Phase),
    /// Publish the loss of `locality`: the one loss signal.
    Lost {
        /// The lost locality.
        locality: LocalityId,
        /// Why.
        reason: String,
    },
    /// Fail the requests withdrawn from `locality` with its loss.
    FailWithdrawn {
        /// The lost locality.
        locality: LocalityId,
        /// Why.
        reason: String,
    },
}

/// One locality's view of where the job stands.
#[derive(Debug)]
pub(super) struct Lifecycle {
    /// This locality.
    here: LocalityId,
    /// Where the job stands.
    phase: Phase,
    /// Whose failure or loss aborted the job, once known.
    culprit: Option<LocalityId>,
    /// For each locality, why it was lost, once it is.
    lost: Vec<Option<String>>,
    /// The end-of-job protocol (used on the root only).
    termination: Termination,
}

impl Lifecycle {
    /// Locality `here` of a job of `n` localities, running.
    pub(super) fn new(here: LocalityId, n: u32) -> Lifecycle {
        Lifecycle {
            here,
            phase: Phase::Running,
            culprit: None,
            lost: vec![None; n as usize],
            termination: Termination::new(n),
        }
    }

    /// The locality whose failure or loss aborted the job, if known.
    pub(super) fn culprit(&self) -> Option<LocalityId> {
        self.culprit
    }

    /// Takes in one input; returns what to do, in order.
    pub(super) fn on(&mut self, input: Input) -> Vec<Step> {
        let mut steps = Vec::new();
        let root = self.here.is_root();
        match input {
            Input::MainDone { failure } if root => {
                let from = self.here;
                self.root_event(Event::MainDone { from, failure }, &mut steps);
            }
            Input::MainDone { failure } => steps.push(Step::ToRoot(Control::MainDone { failure })),
            Input::Root(event) if root => self.root_event(event, &mut steps),
            Input::Root(_) => {}
            Input::Lost { locality, reason } => self.lose(locality, reason, &mut steps),
            Input::Stop { reason } if root => {
                let from = self.here;
                self.root_event(Event::Failed { from, reason }, &mut steps);
            }
            Input::Stop { reason } => {
                steps.push(Step::ToRoot(Control::Failed {
                    reason: reason.clone(),
                }));
                let here = self.here;
                self.abort(format!("locality {here}: {reason}"), Some(here), &mut steps);
            }
            Input::Shutdown => self.end(Phase::Shutdown, &mut steps),
            Input::Abort { reason, culprit } => self.abort(reason, culprit, &mut steps),
        }
        steps
    }

    /// On the root: feeds the end-of-job protocol and carries out what it
    /// says.
    fn root_event(&mut self, event: Event, steps: &mut Vec<Step>) {
        match self.termination.on(event) {
            None => {}
            Some(Command::Query { wave }) => {
                steps.push(Step::ToOthers(Control::Query { wave }));
                steps.push(Step::AnswerQuery { wave });
            }
            Some(Command::Shutdown) => {
                steps.push(Step::ToOthers(Control::Shutdown));
                self.end(Phase::Shutdown, steps);
            }
            Some(Command::Abort { reason, culprit }) => {
                // Sent before this locality ends: once it has, it may close
                // its connections before anything more goes out.
                steps.push(Step::ToOthers(Control::Abort {
                    reason: reason.clone(),
                    culprit,
                }));
                self.abort(reason, culprit, steps);
            }
        }
    }

    /// The transport lost `locality`.
    fn lose(&mut self, locality: LocalityId, reason: String, steps: &mut Vec<Step>) {
        if self.lost.get(locality.index()).is_some_and(Option::is_some) {
            return;
        }
        // Once the job is aborted, peers close their connections as they
        // end: a loss noticed now is a consequence, and what waits gets the
        // abort's reason (requests were failed with it already).
        if matches!(self.phase, Phase::Aborted(_)) {
            return;
        }
        // Requests to the lost locality fail with the loss itself.
        steps.push(Step::Withdraw(locality));
        if self.here.is_root() {
            let lost = Event::Lost {
                locality,
                reason: reason.clone(),
            };
            self.root_event(lost, steps);
        } else {
            if !locality.is_root() {
                steps.push(Step::ToRoot(Control::Lost {
                    locality,
                    reason: reason.clone(),
                }));
            }
            let why = format!("locality {locality} was lost: {reason}");
            self.abort(why, Some(locality), steps);
        }
        if let Some(slot @ None) = self.lost.get_mut(locality.index()) {
            *slot = Some(reason.clone());
            steps.push(Step::Lost {
                locality,
                reason: reason.clone(),
            });
        }
        steps.push(Step::FailWithdrawn { locality, reason });
    }

    /// Aborts the job here, `culprit` being the locality that caused it.
    fn abort(&mut self, reason: String, culprit: Option<LocalityId>, steps: &mut Vec<Step>) {
        if let Some(culprit) = culprit {
            self.culprit.get_or_insert(culprit);
        }
        self.end(Phase::Aborted(reason), steps);
    }

    /// Ends the job here (only the first end counts).
    fn end(&mut self, phase: Phase, steps: &mut Vec<Step>) {
        if self.phase == Phase::Running {
            self.phase = phase.clone();
            steps.push(Step::End(phase));
        }
    }
}

/// The first of `localities` (in their order) that `lost` says is lost,
/// with why.
fn loss_among<'a>(
    lost: &'a [Option<String>],
    localities: &[LocalityId],
) -> Option<(LocalityId, &'a str)> {
    localities
        .iter()
        .find_map(|l| lost.get(l.index())?.as_deref().map(|reason| (*l, reason)))
}

impl Locality {
    /// Feeds the lifecycle and carries out its steps, in order. Outside its
    /// lock: a send may report a loss, which feeds it again.
    fn live(self: &Arc<Self>, input: Input) {
        let steps = self.lifecycle.lock().on(input);
        let mut withdrawn = None;
        for step in steps {
            match step {
                Step::Withdraw(locality) => withdrawn = Some(self.requests.withdraw(locality)),
                Step::ToRoot(control) => self.control(LocalityId::ROOT, &control),
                Step::ToOthers(control) => {
                    for i in 1..self.n {
                        self.control(LocalityId(i), &control);
                    }
                }
                Step::AnswerQuery { wave } => self.answer_query(wave),
                Step::End(phase) => {
                    let aborted = match &phase {
                        Phase::Aborted(reason) => Some(Error::Aborted(reason.clone())),
                        _ => None,
                    };
                    self.phase.send_replace(phase);
                    if let Some(error) = aborted {
                        self.requests.fail_all(&error);
                    }
                }
                Step::Lost { locality, reason } => self.lost.send_modify(|lost| {
                    if let Some(slot) = lost.get_mut(locality.index()) {
                        *slot = Some(reason);
                    }
                }),
                Step::FailWithdrawn { locality, reason } => {
                    if let Some(withdrawn) = withdrawn.take() {
                        withdrawn.fail(&Error::LocalityLost { locality, reason });
                    }
                }
            }
        }
    }

    /// The transport lost `locality`: fail what waits on it, publish the
    /// loss, and end the job.
    pub(super) fn on_peer_lost(self: &Arc<Self>, locality: LocalityId, reason: &str) {
        self.live(Input::Lost {
            locality,
            reason: reason.to_owned(),
        });
    }

    /// On the root: a locality's news for the end-of-job protocol.
    pub(super) fn root_event(self: &Arc<Self>, event: Event) {
        self.live(Input::Root(event));
    }

    /// The root ended the job normally.
    pub(super) fn shut_down_by_root(self: &Arc<Self>) {
        self.live(Input::Shutdown);
    }

    /// The root aborted the job, `culprit` having caused it.
    pub(super) fn abort_by_root(self: &Arc<Self>, reason: String, culprit: Option<LocalityId>) {
        self.live(Input::Abort { reason, culprit });
    }

    /// Tells the root that this locality's main returned.
    pub(crate) fn main_done(self: &Arc<Self>, failure: Option<String>) {
        self.live(Input::MainDone { failure });
    }

    /// Ends the job from here (a stop signal, the launcher gone): the root
    /// is told and tells everyone; this locality ends at once.
    pub(crate) fn abort(self: &Arc<Self>, reason: String) {
        self.live(Input::Stop { reason });
    }

    /// The abort's reason, once the job is aborted.
    pub(super) fn aborted(&self) -> Option<String> {
        match &*self.phase.borrow() {
            Phase::Aborted(reason) => Some(reason.clone()),
            _ => None,
        }
    }

    /// Why `locality` was lost, once it is.
    pub(super) fn lost_reason(&self, locality: LocalityId) -> Option<String> {
        self.lost.borrow().get(locality.index()).cloned().flatten()
    }

    /// The locality whose failure or loss aborted the job, if known.
    pub(crate) fn culprit(&self) -> Option<LocalityId> {
        self.lifecycle.lock().culprit()
    }

    /// Resolves with [`Error::LocalityLost`] for the first of `localities`
    /// found lost, or with [`Error::Aborted`] when the job is aborted; never
    /// while they all live and the job runs.
    pub(crate) fn first_lost(
        &self,
        localities: Arc<[LocalityId]>,
    ) -> impl Future<Output = Error> + Send + 'static {
        let mut rx = self.lost.subscribe();
        let mut phase = self.phase.subscribe();
        let aborted = async move {
            match phase
                .wait_for(|p| matches!(p, Phase::Aborted(_)))
                .await
                .map(|p| p.clone())
            {
                Ok(Phase::Aborted(reason)) => Error::Aborted(reason),
                _ => std::future::pending().await,
            }
        };
        let lost = async move {
            let found = match rx
                .wait_for(|lost| loss_among(lost, &localities).is_some())
                .await
            {
                Ok(lost) => {
                    loss_among(&lost, &localities).map(|(locality, reason)| Error::LocalityLost {
                        locality,
                        reason: reason.to_owned(),
                    })
                }
                Err(_) => None,
            };
            match found {
                Some(error) => error,
                // The runtime ended: nothing more will be lost.
                None => std::future::pending().await,
            }
        };
        async move {
            tokio::select! {
                biased;
                error = lost => error,
                error = aborted => error,
            }
        }
    }

    /// Waits for the end of the job.
    pub(crate) async fn until_end(&self) -> Phase {
        let mut rx = self.phase.subscribe();
        let phase = match rx.wait_for(|p| *p != Phase::Running).await {
            Ok(p) => p.clone(),
            Err(_) => Phase::Aborted("the runtime was dropped".into()),
        };
        phase
    }

    /// Sends what is queued and closes the transport.
    ///
    /// After an abort what is queued gets [`ABORT_FLUSH`] to go out, then
    /// the connections are closed with the reason, so that every peer sees
    /// this locality go and why, even one that did not hear the abort.
    pub(crate) async fn close(&self) {
        let phase = self.phase.borrow().clone();
        match phase {
            Phase::Aborted(reason) => {
                let _ = tokio::time::timeout(ABORT_FLUSH, self.port.flush_and_close()).await;
                self.port.abort(&reason);
            }
            _ => self.port.flush_and_close().await,
        }
    }

    /// Closes the transport at once (and removes its files): the process
    /// is about to exit without ending the job in order.
    pub(crate) fn abort_transport(&self, reason: &str) {
        self.port.abort(reason);
    }

    /// The launcher saw `locality` end with a failure.
    pub(crate) fn declare_lost(&self, locality: LocalityId, reason: String) {
        self.port.declare_lost(locality, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ROOT: LocalityId = LocalityId::ROOT;

    fn l(i: u32) -> LocalityId {
        LocalityId(i)
    }

    fn lost(i: u32, reason: &str) -> Input {
        Input::Lost {
            locality: l(i),
            reason: reason.into(),
        }
    }

    fn abort(reason: &str, culprit: Option<u32>) -> Input {
        Input::Abort {
            reason: reason.into(),
            culprit: culprit.map(l),
        }
    }

    fn aborted(reason: &str) -> Step {
        Step::End(Phase::Aborted(reason.into()))
    }

    fn abort_all(reason: &str, culprit: u32) -> Step {
        Step::ToOthers(Control::Abort {
            reason: reason.into(),
            culprit: Some(l(culprit)),
        })
    }

    fn published(i: u32, reason: &str) -> Step {
        Step::Lost {
            locality: l(i),
            reason: reason.into(),
        }
    }

    fn fail_withdrawn(i: u32, reason: &str) -> Step {
        Step::FailWithdrawn {
            locality: l(i),
            reason: reason.into(),
        }
    }

    fn report(from: u32, wave: u64) -> Input {
        Input::Root(Event::Report {
            from: l(from),
            wave,
            sent: 0,
            done: 0,
        })
    }

    fn main_done_at(from: u32) -> Input {
        Input::Root(Event::MainDone {
            from: l(from),
            failure: None,
        })
    }

    /// The root of a job of two that has shut down.
    fn shut_down_root() -> Lifecycle {
        let mut life = Lifecycle::new(ROOT, 2);
        life.on(Input::MainDone { failure: None });
        life.on(main_done_at(1));
        for wave in 1..=2 {
            life.on(report(0, wave));
            life.on(report(1, wave));
        }
        assert_eq!(life.phase, Phase::Shutdown);
        life
    }

    #[test]
    fn a_locality_starts_running() {
        let life = Lifecycle::new(l(1), 3);
        assert_eq!(life.phase, Phase::Running);
        assert_eq!(life.culprit(), None);
        assert_eq!(life.lost, vec![None; 3]);
    }

    #[test]
    fn a_main_done_elsewhere_is_told_to_the_root() {
        let mut life = Lifecycle::new(l(1), 2);
        assert_eq!(
            life.on(Input::MainDone { failure: None }),
            [Step::ToRoot(Control::MainDone { failure: None })]
        );
        let failed = Some("boom".to_owned());
        assert_eq!(
            life.on(Input::MainDone {
                failure: failed.clone()
            }),
            [Step::ToRoot(Control::MainDone { failure: failed })],
            "the root judges a failure, not this locality"
        );
        assert_eq!(life.phase, Phase::Running);
    }

    #[test]
    fn the_roots_own_main_done_starts_the_waves_of_a_job_of_one() {
        let mut life = Lifecycle::new(ROOT, 1);
        assert_eq!(
            life.on(Input::MainDone { failure: None }),
            [
                Step::ToOthers(Control::Query { wave: 1 }),
                Step::AnswerQuery { wave: 1 }
            ]
        );
    }

    #[test]
    fn a_quiet_job_shuts_down_on_the_root_after_two_equal_waves() {
        let mut life = Lifecycle::new(ROOT, 2);
        assert_eq!(life.on(Input::MainDone { failure: None }), []);
        let query = |wave| {
            vec![
                Step::ToOthers(Control::Query { wave }),
                Step::AnswerQuery { wave },
            ]
        };
        assert_eq!(life.on(main_done_at(1)), query(1));
        assert_eq!(life.on(report(1, 1)), []);
        assert_eq!(life.on(report(0, 1)), query(2));
        assert_eq!(life.on(report(0, 2)), []);
        assert_eq!(
            life.on(report(1, 2)),
            [
                Step::ToOthers(Control::Shutdown),
                Step::End(Phase::Shutdown)
            ]
        );
        assert_eq!(life.phase, Phase::Shutdown);
        assert_eq!(life.on(report(1, 3)), [], "nothing after the end");
        assert_eq!(life.culprit(), None);
    }

    #[test]
    fn news_for_the_root_is_ignored_elsewhere() {
        let mut life = Lifecycle::new(l(1), 3);
        assert_eq!(life.on(main_done_at(2)), []);
        assert_eq!(life.on(report(2, 1)), []);
        let failed = Event::Failed {
            from: l(2),
            reason: "stopped".into(),
        };
        assert_eq!(life.on(Input::Root(failed)), []);
        assert_eq!(life.phase, Phase::Running);
    }

    #[test]
    fn a_failed_main_on_the_root_aborts_everyone() {
        let mut life = Lifecycle::new(ROOT, 3);
        let why = "locality 0 failed: boom";
        assert_eq!(
            life.on(Input::MainDone {
                failure: Some("boom".into())
            }),
            [abort_all(why, 0), aborted(why)]
        );
        assert_eq!(life.culprit(), Some(ROOT));
        assert_eq!(life.on(main_done_at(1)), [], "nothing after the end");
    }

    #[test]
    fn a_failure_told_to_the_root_aborts_everyone() {
        let mut life = Lifecycle::new(ROOT, 3);
        let failed = Event::Failed {
            from: l(2),
            reason: "stopped".into(),
        };
        let why = "locality 2: stopped";
        assert_eq!(
            life.on(Input::Root(failed)),
            [abort_all(why, 2), aborted(why)]
        );
        assert_eq!(life.culprit(), Some(l(2)));
    }

    #[test]
    fn a_loss_elsewhere_is_told_to_the_root_and_aborts_here() {
        let mut life = Lifecycle::new(l(1), 3);
        assert_eq!(
            life.on(lost(2, "killed")),
            [
                Step::Withdraw(l(2)),
                Step::ToRoot(Control::Lost {
                    locality: l(2),
                    reason: "killed".into()
                }),
                aborted("locality 2 was lost: killed"),
                published(2, "killed"),
                fail_withdrawn(2, "killed"),
            ]
        );
        assert_eq!(life.culprit(), Some(l(2)));
        assert_eq!(life.lost[2].as_deref(), Some("killed"));
    }

    #[test]
    fn a_loss_of_the_root_is_not_told_to_it() {
        let mut life = Lifecycle::new(l(1), 2);
        assert_eq!(
            life.on(lost(0, "gone")),
            [
                Step::Withdraw(ROOT),
                aborted("locality 0 was lost: gone"),
                published(0, "gone"),
                fail_withdrawn(0, "gone"),
            ]
        );
        assert_eq!(life.culprit(), Some(ROOT));
    }

    #[test]
    fn a_loss_on_the_root_aborts_everyone() {
        let mut life = Lifecycle::new(ROOT, 3);
        let why = "locality 2 was lost: killed";
        assert_eq!(
            life.on(lost(2, "killed")),
            [
                Step::Withdraw(l(2)),
                abort_all(why, 2),
                aborted(why),
                published(2, "killed"),
                fail_withdrawn(2, "killed"),
            ]
        );
        assert_eq!(life.culprit(), Some(l(2)));
    }

    #[test]
    fn a_locality_is_lost_once() {
        let mut life = Lifecycle::new(ROOT, 3);
        life.on(lost(2, "first"));
        assert_eq!(life.on(lost(2, "second")), []);
        assert_eq!(life.lost[2].as_deref(), Some("first"));
        let mut life = shut_down_root();
        assert_eq!(life.on(lost(1, "first")).len(), 3);
        assert_eq!(life.on(lost(1, "second")), []);
        assert_eq!(life.lost[1].as_deref(), Some("first"));
    }

    #[test]
    fn losses_after_an_abort_are_consequences() {
        let mut life = Lifecycle::new(l(1), 3);
        assert_eq!(life.on(abort("stop", Some(0))), [aborted("stop")]);
        assert_eq!(life.on(lost(2, "closed")), []);
        assert_eq!(life.lost, vec![None; 3], "not published");
        let mut root = Lifecycle::new(ROOT, 3);
        root.on(lost(1, "killed"));
        assert_eq!(root.on(lost(2, "closed")), []);
        assert_eq!(root.lost[2], None);
        assert_eq!(root.culprit(), Some(l(1)));
    }

    #[test]
    fn a_loss_after_the_shutdown_is_published_but_ends_nothing() {
        let mut root = shut_down_root();
        assert_eq!(
            root.on(lost(1, "gone")),
            [
                Step::Withdraw(l(1)),
                published(1, "gone"),
                fail_withdrawn(1, "gone")
            ]
        );
        assert_eq!(root.phase, Phase::Shutdown);
        assert_eq!(root.culprit(), None);

        let mut life = Lifecycle::new(l(1), 3);
        life.on(Input::Shutdown);
        assert_eq!(
            life.on(lost(2, "gone")),
            [
                Step::Withdraw(l(2)),
                Step::ToRoot(Control::Lost {
                    locality: l(2),
                    reason: "gone".into()
                }),
                published(2, "gone"),
                fail_withdrawn(2, "gone"),
            ]
        );
        assert_eq!(life.phase, Phase::Shutdown);
        // As before the split: the abort that does not take still names
        // its culprit (read only once the job is aborted).
        assert_eq!(life.culprit(), Some(l(2)));
    }

    #[test]
    fn a_loss_of_a_locality_out_of_the_job_is_not_published() {
        let mut life = Lifecycle::new(l(1), 2);
        assert_eq!(
            life.on(lost(7, "what")),
            [
                Step::Withdraw(l(7)),
                Step::ToRoot(Control::Lost {
                    locality: l(7),
                    reason: "what".into()
                }),
                aborted("locality 7 was lost: what"),
                fail_withdrawn(7, "what"),
            ]
        );
        let mut root = Lifecycle::new(ROOT, 2);
        assert_eq!(
            root.on(lost(7, "what")),
            [Step::Withdraw(l(7)), fail_withdrawn(7, "what")]
        );
        assert_eq!(root.phase, Phase::Running);
    }

    #[test]
    fn a_stop_elsewhere_is_told_to_the_root_and_aborts_here() {
        let mut life = Lifecycle::new(l(2), 3);
        assert_eq!(
            life.on(Input::Stop {
                reason: "SIGTERM".into()
            }),
            [
                Step::ToRoot(Control::Failed {
                    reason: "SIGTERM".into()
                }),
                aborted("locality 2: SIGTERM"),
            ]
        );
        assert_eq!(life.culprit(), Some(l(2)));
    }

    #[test]
    fn a_stop_on_the_root_aborts_everyone() {
        let mut life = Lifecycle::new(ROOT, 2);
        let why = "locality 0: SIGINT";
        assert_eq!(
            life.on(Input::Stop {
                reason: "SIGINT".into()
            }),
            [abort_all(why, 0), aborted(why)]
        );
        assert_eq!(life.culprit(), Some(ROOT));
    }

    #[test]
    fn a_stop_after_the_end_ends_nothing() {
        let mut root = shut_down_root();
        let stop = Input::Stop {
            reason: "late".into(),
        };
        assert_eq!(root.on(stop.clone()), []);
        let mut life = Lifecycle::new(l(1), 2);
        life.on(Input::Shutdown);
        assert_eq!(
            life.on(stop),
            [Step::ToRoot(Control::Failed {
                reason: "late".into()
            })]
        );
        assert_eq!(life.phase, Phase::Shutdown);
    }

    #[test]
    fn the_roots_shutdown_ends_the_job_once() {
        let mut life = Lifecycle::new(l(1), 2);
        assert_eq!(life.on(Input::Shutdown), [Step::End(Phase::Shutdown)]);
        assert_eq!(life.on(Input::Shutdown), []);
        assert_eq!(life.on(abort("late", None)), []);
        assert_eq!(life.phase, Phase::Shutdown);
    }

    #[test]
    fn the_first_end_wins() {
        let mut life = Lifecycle::new(l(1), 4);
        assert_eq!(life.on(abort("first", Some(2))), [aborted("first")]);
        assert_eq!(life.on(abort("second", Some(3))), []);
        assert_eq!(life.on(Input::Shutdown), []);
        assert_eq!(life.phase, Phase::Aborted("first".into()));
        assert_eq!(life.culprit(), Some(l(2)));
    }

    #[test]
    fn the_first_culprit_known_wins() {
        let mut life = Lifecycle::new(l(1), 4);
        assert_eq!(life.on(abort("unknown", None)), [aborted("unknown")]);
        assert_eq!(life.culprit(), None);
        assert_eq!(life.on(abort("known", Some(3))), []);
        assert_eq!(life.culprit(), Some(l(3)));
        life.on(abort("later", Some(2)));
        assert_eq!(life.culprit(), Some(l(3)));
        assert_eq!(life.phase, Phase::Aborted("unknown".into()));
    }

    #[test]
    fn the_loss_waited_on_is_the_first_in_the_callers_order() {
        let lost = [None, Some("a".to_owned()), Some("b".to_owned())];
        assert_eq!(loss_among(&lost, &[l(0)]), None);
        assert_eq!(loss_among(&lost, &[]), None);
        assert_eq!(loss_among(&lost, &[l(0), l(2), l(1)]), Some((l(2), "b")));
        assert_eq!(loss_among(&lost, &[l(1), l(2)]), Some((l(1), "a")));
        assert_eq!(loss_among(&lost, &[l(9), l(2)]), Some((l(2), "b")));
        assert_eq!(loss_among(&lost, &[l(9)]), None, "not in the job");
    }

    /// An input of a job of `n` localities from three numbers.
    fn input(n: u32, kind: u8, a: u32, b: u32) -> Input {
        let who = l(a % (n + 1));
        let reason = format!("r{b}");
        match kind % 8 {
            0 => Input::MainDone {
                failure: (b % 4 == 0).then_some(reason),
            },
            1 => Input::Root(Event::MainDone {
                from: who,
                failure: (b % 5 == 0).then_some(reason),
            }),
            2 => Input::Root(Event::Report {
                from: who,
                wave: u64::from(b % 4),
                sent: 0,
                done: 0,
            }),
            3 => Input::Root(Event::Failed { from: who, reason }),
            4 => Input::Lost {
                locality: who,
                reason,
            },
            5 => Input::Stop { reason },
            6 => Input::Shutdown,
            _ => Input::Abort {
                reason,
                culprit: (b % 2 == 0).then_some(l(a % n)),
            },
        }
    }

    proptest! {
        /// Whatever comes in, in whatever order: the job ends once, a
        /// locality is lost once and never after an abort, any loss while
        /// running aborts (and the abort comes before the loss), the first
        /// culprit stays, and each side sends only its own messages.
        #[test]
        fn the_rules_hold_whatever_the_order(
            n in 1u32..5,
            here in 0u32..5,
            inputs in proptest::collection::vec((any::<u8>(), any::<u32>(), any::<u32>()), 0..40),
        ) {
            let here = l(here % n);
            let mut life = Lifecycle::new(here, n);
            let mut ends = 0;
            let mut losses = vec![0; n as usize];
            let mut culprit = None;
            for (kind, a, b) in inputs {
                let before = life.phase.clone();
                let steps = life.on(input(n, kind, a, b));
                let position = |wanted: fn(&Step) -> bool| steps.iter().position(wanted);
                let end = position(|s| matches!(s, Step::End(_)));
                let loss = position(|s| matches!(s, Step::Lost { .. }));
                for step in &steps {
                    match step {
                        Step::End(phase) => {
                            ends += 1;
                            prop_assert_eq!(&before, &Phase::Running);
                            prop_assert_eq!(&life.phase, phase);
                        }
                        Step::Lost { locality, reason } => {
                            losses[locality.index()] += 1;
                            prop_assert_eq!(life.lost[locality.index()].as_deref(), Some(reason.as_str()));
                            prop_assert!(!matches!(before, Phase::Aborted(_)), "a loss after the abort");
                        }
                        Step::ToRoot(_) => prop_assert!(!here.is_root()),
                        Step::ToOthers(_) | Step::AnswerQuery { .. } => prop_assert!(here.is_root()),
                        Step::Withdraw(_) | Step::FailWithdrawn { .. } => {}
                    }
                }
                if end.is_none() {
                    prop_assert_eq!(&life.phase, &before);
                }
                if let Some(loss) = loss {
                    if before == Phase::Running {
                        prop_assert!(matches!(life.phase, Phase::Aborted(_)), "a loss while running aborts");
                        prop_assert!(end.is_some_and(|end| end < loss), "the abort comes first");
                    }
                }
                // A loss: withdraw first, fail the withdrawn last, and only then.
                let withdrawn = steps.iter().filter(|s| matches!(s, Step::Withdraw(_))).count();
                let failed = steps.iter().filter(|s| matches!(s, Step::FailWithdrawn { .. })).count();
                prop_assert_eq!(withdrawn, failed);
                if withdrawn > 0 {
                    prop_assert_eq!(withdrawn, 1);
                    prop_assert!(
                        matches!(steps.first(), Some(Step::Withdraw(_))),
                        "withdrawn first"
                    );
                    prop_assert!(
                        matches!(steps.last(), Some(Step::FailWithdrawn { .. })),
                        "the withdrawn fail last"
                    );
                }
                // The root's orders go out before it ends.
                if let (Some(end), Some(order)) = (end, position(|s| matches!(s, Step::ToOthers(_)))) {
                    prop_assert!(order < end);
                }
                if culprit.is_some() {
                    prop_assert_eq!(life.culprit(), culprit);
                }
                culprit = life.culprit();
            }
            prop_assert!(ends <= 1, "the job ended {} times", ends);
            prop_assert!(losses.iter().all(|l| *l <= 1), "losses {:?}", losses);
        }
    }
}

//! The end-of-job protocol as a state machine without I/O: events in,
//! commands out ([`Termination::on`]), so it is tested without sockets.
//!
//! Each locality tells the root when its main has returned (or, in root-only
//! mode, at once). When all have, the root runs termination detection in
//! waves: it asks every locality (itself included) to wait until it runs no
//! received work and report how many calls it has sent and how many it has
//! finished. Two complete waves in a row with equal totals, sent equal to
//! finished, mean nothing is in flight anywhere: the job shuts down. A failed
//! main or a lost locality aborts the job at once, wherever the others are
//! (in a collective, waiting for a reply), so no locality hangs.

use hpx_parcelport::LocalityId;

/// What the root learns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A locality's main returned (with the failure, if it failed).
    MainDone {
        /// The locality.
        from: LocalityId,
        /// Why its main failed.
        failure: Option<String>,
    },
    /// A locality failed for a reason other than its main (it was told
    /// to stop, say).
    Failed {
        /// The locality.
        from: LocalityId,
        /// Why.
        reason: String,
    },
    /// A locality was lost.
    Lost {
        /// The locality.
        locality: LocalityId,
        /// Why.
        reason: String,
    },
    /// A locality answered a query of wave `wave`.
    Report {
        /// The locality.
        from: LocalityId,
        /// The wave it answers.
        wave: u64,
        /// Calls it has sent.
        sent: u64,
        /// Received calls it has finished.
        done: u64,
    },
}

/// What the root must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Ask every locality, the root included, for a report of wave `wave`.
    Query {
        /// The wave.
        wave: u64,
    },
    /// End the job normally everywhere.
    Shutdown,
    /// End the job with an error everywhere.
    Abort {
        /// Why.
        reason: String,
        /// The locality whose failure or loss came first: the cause; the
        /// others only ended with it.
        culprit: Option<LocalityId>,
    },
}

/// The root's view of the end of the job.
#[derive(Debug)]
pub(crate) struct Termination {
    finished: Vec<bool>,
    failures: Vec<String>,
    lost: Vec<Option<String>>,
    wave: u64,
    reports: Vec<Option<(u64, u64)>>,
    previous: Option<(u64, u64)>,
    ended: bool,
    culprit: Option<LocalityId>,
}

impl Termination {
    /// The state of a job of `n` localities that has just started.
    pub(crate) fn new(n: u32) -> Termination {
        let n = n as usize;
        Termination {
            finished: vec![false; n],
            failures: Vec::new(),
            lost: vec![None; n],
            wave: 0,
            reports: vec![None; n],
            previous: None,
            ended: false,
            culprit: None,
        }
    }

    /// Takes in one event; returns what to do (at most one command). Events
    /// from unknown localities, stale waves and anything after the end are
    /// ignored.
    pub(crate) fn on(&mut self, event: Event) -> Option<Command> {
        if self.ended {
            return None;
        }
        match event {
            Event::MainDone { from, failure } => {
                let slot = self.finished.get_mut(from.index())?;
                *slot = true;
                if let Some(f) = failure {
                    self.failures.push(format!("locality {from} failed: {f}"));
                    self.culprit.get_or_insert(from);
                }
            }
            Event::Failed { from, reason } => {
                self.failures.push(format!("locality {from}: {reason}"));
                self.culprit.get_or_insert(from);
            }
            Event::Lost { locality, reason } => {
                let slot = self.lost.get_mut(locality.index())?;
                slot.get_or_insert(reason);
                self.culprit.get_or_insert(locality);
            }
            Event::Report {
                from,
                wave,
                sent,
                done,
            } => {
                if wave != self.wave {
                    return None;
                }
                let slot = self.reports.get_mut(from.index())?;
                *slot = Some((sent, done));
            }
        }
        self.step()
    }

    fn step(&mut self) -> Option<Command> {
        let reasons = self.reasons();
        if !reasons.is_empty() {
            // A failure ends the job at once: the others may be waiting for
            // the failed locality (in a collective, say) and would wait forever.
            self.ended = true;
            return Some(Command::Abort {
                reason: reasons.join("; "),
                culprit: self.culprit,
            });
        }
        if !self.finished.iter().all(|f| *f) {
            return None;
        }
        let complete = self.wave > 0 && self.reports.iter().all(Option::is_some);
        if self.wave > 0 && !complete {
            return None;
        }
        if complete {
            let totals = self
                .reports
                .iter()
                .flatten()
                .fold((0u64, 0u64), |(s, d), (rs, rd)| {
                    (s.saturating_add(*rs), d.saturating_add(*rd))
                });
            if totals.0 == totals.1 && self.previous == Some(totals) {
                self.ended = true;
                return Some(Command::Shutdown);
            }
            self.previous = Some(totals);
        }
        self.wave += 1;
        self.reports.iter_mut().for_each(|r| *r = None);
        Some(Command::Query { wave: self.wave })
    }

    /// Why the job failed: failed mains, then lost localities.
    fn reasons(&self) -> Vec<String> {
        let lost = self
            .lost
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_ref().map(|r| format!("locality {i} was lost: {r}")));
        self.failures.iter().cloned().chain(lost).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(i: u32) -> Event {
        Event::MainDone {
            from: LocalityId(i),
            failure: None,
        }
    }

    fn report(i: u32, wave: u64, sent: u64, finished: u64) -> Event {
        Event::Report {
            from: LocalityId(i),
            wave,
            sent,
            done: finished,
        }
    }

    #[test]
    fn quiet_job_ends_after_two_equal_waves() {
        let mut t = Termination::new(2);
        assert_eq!(t.on(done(1)), None);
        assert_eq!(t.on(done(0)), Some(Command::Query { wave: 1 }));
        assert_eq!(t.on(report(0, 1, 3, 2)), None);
        assert_eq!(t.on(report(1, 1, 2, 3)), Some(Command::Query { wave: 2 }));
        assert_eq!(t.on(report(1, 2, 2, 3)), None);
        assert_eq!(t.on(report(0, 2, 3, 2)), Some(Command::Shutdown));
        assert_eq!(t.on(done(0)), None, "nothing after the end");
    }

    #[test]
    fn work_in_flight_needs_another_wave() {
        let mut t = Termination::new(2);
        t.on(done(0));
        t.on(done(1));
        t.on(report(0, 1, 1, 0));
        // One call sent, none finished: not quiet.
        assert_eq!(t.on(report(1, 1, 0, 0)), Some(Command::Query { wave: 2 }));
        t.on(report(0, 2, 1, 0));
        assert_eq!(t.on(report(1, 2, 0, 1)), Some(Command::Query { wave: 3 }));
        t.on(report(0, 3, 1, 0));
        assert_eq!(t.on(report(1, 3, 0, 1)), Some(Command::Shutdown));
    }

    #[test]
    fn stale_reports_are_ignored() {
        let mut t = Termination::new(1);
        assert_eq!(t.on(done(0)), Some(Command::Query { wave: 1 }));
        assert_eq!(t.on(report(0, 7, 0, 0)), None);
        assert_eq!(t.on(report(5, 1, 0, 0)), None, "unknown locality");
        assert_eq!(t.on(report(0, 1, 0, 0)), Some(Command::Query { wave: 2 }));
    }

    #[test]
    fn a_failure_aborts_at_once_while_others_still_run() {
        let mut t = Termination::new(3);
        let failed = Event::MainDone {
            from: LocalityId(1),
            failure: Some("boom".into()),
        };
        match t.on(failed) {
            Some(Command::Abort { reason, culprit }) => {
                assert!(reason.contains("locality 1 failed: boom"), "{reason}");
                assert_eq!(culprit, Some(LocalityId(1)));
            }
            other => panic!("expected an abort, got {other:?}"),
        }
        assert_eq!(t.on(done(0)), None, "nothing after the end");
    }

    #[test]
    fn a_loss_aborts_at_once() {
        let mut t = Termination::new(3);
        assert_eq!(t.on(done(0)), None);
        let lost = Event::Lost {
            locality: LocalityId(2),
            reason: "killed".into(),
        };
        match t.on(lost) {
            Some(Command::Abort { reason, culprit }) => {
                assert!(reason.contains("locality 2 was lost: killed"), "{reason}");
                assert_eq!(culprit, Some(LocalityId(2)));
            }
            other => panic!("expected an abort, got {other:?}"),
        }
        assert_eq!(t.on(done(1)), None, "nothing after the end");
    }

    proptest! {
        /// Whatever the order of events, the machine ends exactly once, and
        /// only with a shutdown when nothing failed and all counts balance.
        #[test]
        fn ends_once_and_correctly(
            n in 1u32..6,
            order in proptest::collection::vec(any::<u32>(), 0..12),
            fail in proptest::option::of(0u32..6),
            in_flight in 0u64..3,
        ) {
            let mut t = Termination::new(n);
            let mut pending: Vec<Event> = (0..n)
                .map(|i| Event::MainDone {
                    from: LocalityId(i),
                    failure: (fail == Some(i)).then(|| "failed".to_owned()),
                })
                .collect();
            let mut ends = 0;
            let mut last = None;
            let mut rounds = 0;
            let mut outstanding = in_flight;
            while let Some(event) = {
                let pick = order.get(rounds % order.len().max(1)).copied().unwrap_or(0) as usize;
                (!pending.is_empty()).then(|| pending.remove(pick % pending.len()))
            } {
                rounds += 1;
                prop_assert!(rounds < 1000, "no end in sight");
                match t.on(event) {
                    Some(Command::Query { wave }) => {
                        // Localities answer; work in flight finishes one call per wave.
                        let finished = in_flight - outstanding;
                        outstanding = outstanding.saturating_sub(1);
                        for i in 0..n {
                            let (sent, done) = if i == 0 { (in_flight, 0) } else if i == n - 1 { (0, finished) } else { (0, 0) };
                            let (sent, done) = if n == 1 { (in_flight, finished) } else { (sent, done) };
                            pending.push(report(i, wave, sent, done));
                        }
                    }
                    Some(end) => {
                        ends += 1;
                        last = Some(end);
                    }
                    None => {}
                }
            }
            prop_assert_eq!(ends, 1);
            match (fail.filter(|f| *f < n), last) {
                (Some(_), Some(Command::Abort { .. })) | (None, Some(Command::Shutdown)) => {}
                (f, other) => prop_assert!(false, "fail {:?} ended with {:?}", f, other),
            }
        }
    }
}

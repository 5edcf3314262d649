//! The counters' clock: cheap to read, converted to time only when the
//! counters are read.
//!
//! Timing every collective call and every action with `Instant` costs two
//! reads of the kernel's clock, about 25 ns each on this project's VMs: a
//! tenth of a collective between two localities of one host. Where the
//! kernel itself keeps time with the CPU's time stamp counter (its
//! clocksource is `tsc`, which it picks only when the counter runs at a
//! constant rate and in step on every CPU), the counters read that counter
//! directly (about 10 ns) and sum ticks; a snapshot converts ticks to
//! nanoseconds at the rate the counter ran since the clock was made.
//! Elsewhere a tick is a nanosecond of [`Instant`].

use std::sync::OnceLock;
use std::time::Instant;

/// Where the kernel names the clocksource it keeps time with.
const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";

/// Whether this process reads the time stamp counter (decided once).
fn use_tsc() -> bool {
    static TSC: OnceLock<bool> = OnceLock::new();
    *TSC.get_or_init(|| {
        cfg!(target_arch = "x86_64")
            && std::fs::read_to_string(CLOCKSOURCE).is_ok_and(|s| s.trim() == "tsc")
    })
}

/// A clock of ticks, and the rate to convert them.
#[derive(Debug)]
pub(crate) struct Clock {
    tsc: bool,
    /// When the clock was made, on both scales.
    base: Instant,
    base_ticks: u64,
}

impl Clock {
    /// A clock that starts now.
    pub(crate) fn new() -> Clock {
        Clock::with_tsc(use_tsc())
    }

    fn with_tsc(tsc: bool) -> Clock {
        let base = Instant::now();
        let mut clock = Clock {
            tsc,
            base,
            base_ticks: 0,
        };
        clock.base_ticks = clock.ticks();
        clock
    }

    /// The ticks now.
    #[inline]
    pub(crate) fn ticks(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.tsc {
            // SAFETY: `rdtsc` has no preconditions on x86_64; it only
            // reads the time stamp counter.
            return unsafe { core::arch::x86_64::_rdtsc() };
        }
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A converter of tick counts to nanoseconds at the rate the clock ran
    /// from its start until now.
    pub(crate) fn rate(&self) -> Rate {
        if !self.tsc {
            return Rate::NANOSECONDS;
        }
        let ticks = self.ticks().saturating_sub(self.base_ticks);
        let ns = self.base.elapsed().as_nanos();
        match ticks {
            0 => Rate::NANOSECONDS,
            ticks => Rate {
                ns,
                ticks: u128::from(ticks),
            },
        }
    }
}

/// Nanoseconds per tick, as a fraction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rate {
    ns: u128,
    ticks: u128,
}

impl Rate {
    /// The rate of ticks that are nanoseconds.
    pub(crate) const NANOSECONDS: Rate = Rate { ns: 1, ticks: 1 };

    /// `ticks` in nanoseconds.
    pub(crate) fn nanos(self, ticks: u64) -> u64 {
        u64::try_from(u128::from(ticks) * self.ns / self.ticks).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn measures_a_span(clock: &Clock) {
        let start = clock.ticks();
        let wall = Instant::now();
        while wall.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let took = clock.ticks() - start;
        let wall = wall.elapsed().as_nanos() as f64;
        let ns = clock.rate().nanos(took) as f64;
        assert!(
            (ns - wall).abs() < wall * 0.1,
            "the clock measured {ns} ns of {wall}"
        );
    }

    #[test]
    fn the_clock_measures_what_instant_measures() {
        measures_a_span(&Clock::new());
        measures_a_span(&Clock::with_tsc(false));
    }

    #[test]
    fn rates_convert_in_proportion() {
        let rate = Rate { ns: 1, ticks: 3 };
        assert_eq!(rate.nanos(300), 100);
        assert_eq!(Rate::NANOSECONDS.nanos(u64::MAX), u64::MAX);
        assert_eq!(Rate { ns: 3, ticks: 1 }.nanos(u64::MAX), u64::MAX);
    }
}

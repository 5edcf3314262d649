//! Admission of unauthenticated connections: how many may be in their
//! handshake at once (in all and from one address), how long a handshake may
//! take, and how refusals are counted and logged.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// Unauthenticated incoming connections allowed at once, besides two per
/// locality of the job.
const MAX_HANDSHAKES: usize = 64;
/// Unauthenticated incoming connections allowed at once from one address,
/// besides two per locality of the job (localities of one host share one).
const MAX_HANDSHAKES_PER_SOURCE: usize = 16;
/// Time allowed for one connection's handshake and authentication, plus
/// [`HANDSHAKE_TIME_PER_LOCALITY`] for each locality of the job: a large job
/// on few cores makes N(N-1) handshakes at start-up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// See [`HANDSHAKE_TIMEOUT`].
const HANDSHAKE_TIME_PER_LOCALITY: Duration = Duration::from_millis(100);

/// The time allowed for one handshake in a job of `n` localities.
pub(crate) fn handshake_timeout(n: u32) -> Duration {
    HANDSHAKE_TIMEOUT + HANDSHAKE_TIME_PER_LOCALITY * n
}

/// Unauthenticated incoming connections in progress.
#[derive(Default)]
struct Handshakes {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// The gate of a locality's listener: unauthenticated connections in
/// progress, and the connections refused so far.
pub(crate) struct Admission {
    /// Localities in the job (each may have two handshakes in progress).
    n: u32,
    handshaking: Mutex<Handshakes>,
    /// Connections refused so far (failed authentication or handshake).
    rejected: AtomicU64,
}

/// Counts a handshake in progress for as long as it lives.
pub(crate) struct Handshaking(Arc<Admission>, IpAddr);

impl Admission {
    /// The gate of a locality in a job of `n` localities.
    pub(crate) fn new(n: u32) -> Arc<Admission> {
        Arc::new(Admission {
            n,
            handshaking: Mutex::new(Handshakes::default()),
            rejected: AtomicU64::new(0),
        })
    }

    /// Counts a new handshake from `source`, or says why it is refused.
    pub(crate) fn begin(self: &Arc<Self>, source: IpAddr) -> Result<Handshaking, &'static str> {
        let per_locality = 2 * self.n as usize;
        let mut h = self.handshaking.lock();
        if h.total >= MAX_HANDSHAKES + per_locality {
            return Err("too many handshakes at once");
        }
        let from_source = h.by_source.entry(source).or_insert(0);
        if *from_source >= MAX_HANDSHAKES_PER_SOURCE + per_locality {
            return Err("too many handshakes at once from one address");
        }
        *from_source += 1;
        h.total += 1;
        Ok(Handshaking(self.clone(), source))
    }

    /// Counts a refused connection. A flood of outsiders must not flood the
    /// log: the 1st, 2nd, 4th, 8th, ... rejection is a warning with the
    /// count so far.
    pub(crate) fn reject(&self, addr: SocketAddr, reason: &str) {
        let count = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_power_of_two() {
            tracing::warn!(%addr, %reason, rejected_so_far = count, "rejected connection");
        } else {
            tracing::debug!(%addr, %reason, "rejected connection");
        }
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        let mut h = self.0.handshaking.lock();
        h.total -= 1;
        if let Some(n) = h.by_source.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                h.by_source.remove(&self.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_capped_per_source_and_in_all_and_released() {
        let gate = Admission::new(1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let per_source = MAX_HANDSHAKES_PER_SOURCE + 2;
        let mut held: Vec<Handshaking> = (0..per_source).map(|_| gate.begin(a).unwrap()).collect();
        assert!(gate.begin(a).is_err(), "one address beyond its share");
        held.pop();
        held.push(gate.begin(a).expect("a share came back"));
        let mut others = 2u8;
        while held.len() < MAX_HANDSHAKES + 2 {
            let source = IpAddr::from([10, 0, 0, others]);
            others += 1;
            while held.len() < MAX_HANDSHAKES + 2 {
                match gate.begin(source) {
                    Ok(h) => held.push(h),
                    Err(_) => break,
                }
            }
        }
        assert!(
            gate.begin(IpAddr::from([10, 0, 1, 1])).is_err(),
            "beyond the total"
        );
        held.clear();
        assert_eq!(gate.handshaking.lock().total, 0);
        assert!(gate.handshaking.lock().by_source.is_empty());
    }
}

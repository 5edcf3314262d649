//! Liveness that compute cannot starve: every locality sends a small
//! authenticated heartbeat datagram to every peer from an OS thread of its
//! own, and declares a peer lost when nothing was heard from it for the peer
//! timeout. Workers that compute for minutes, or block writing to a slow
//! pipe, do not stop this thread; a stopped (SIGSTOP), hung or unreachable
//! process does.
//!
//! A heartbeat is [`BEAT_LEN`] bytes: magic, sender, receiver, a sequence
//! number and a truncated HMAC-SHA256 over the rest, keyed from the job
//! secret. Datagrams that are not well-formed, not for this locality, not
//! authentic, or replayed (sequence not increasing) are dropped unread; nothing
//! a datagram says can declare a peer lost, only silence can.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::hmac;

use crate::{LocalityId, TransportError};

/// Bytes of one heartbeat.
pub const BEAT_LEN: usize = 4 + 4 + 4 + 8 + TAG_LEN;
const MAGIC: [u8; 4] = *b"HPXB";
const TAG_LEN: usize = 16;
/// Label that turns the job secret into the heartbeat key.
const KEY_LABEL: &[u8] = b"hpx-rs heartbeat key v1";

/// How a locality watches its peers.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// This locality.
    pub here: LocalityId,
    /// Every locality's heartbeat address, indexed by id (this one's included).
    pub peers: Vec<SocketAddr>,
    /// The job secret.
    pub secret: Vec<u8>,
    /// Silence after which a peer is lost.
    pub timeout: Duration,
}

/// The heartbeat key of a job.
fn key(secret: &[u8]) -> hmac::Key {
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), KEY_LABEL);
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// Encodes the heartbeat `from` → `to` number `seq`.
fn encode(key: &hmac::Key, from: LocalityId, to: LocalityId, seq: u64) -> [u8; BEAT_LEN] {
    let mut out = [0u8; BEAT_LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4..8].copy_from_slice(&from.0.to_le_bytes());
    out[8..12].copy_from_slice(&to.0.to_le_bytes());
    out[12..20].copy_from_slice(&seq.to_le_bytes());
    let tag = hmac::sign(key, &out[..20]);
    out[20..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
    out
}

/// The sender and sequence number of an authentic heartbeat for `here`.
fn decode(key: &hmac::Key, here: LocalityId, datagram: &[u8]) -> Option<(LocalityId, u64)> {
    if datagram.len() != BEAT_LEN || datagram[..4] != MAGIC {
        return None;
    }
    let word = |at: usize| {
        u32::from_le_bytes([
            datagram[at],
            datagram[at + 1],
            datagram[at + 2],
            datagram[at + 3],
        ])
    };
    let (from, to) = (LocalityId(word(4)), LocalityId(word(8)));
    if to != here {
        return None;
    }
    let tag = hmac::sign(key, &datagram[..20]);
    let same = tag.as_ref()[..TAG_LEN]
        .iter()
        .zip(&datagram[20..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0;
    if !same {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&datagram[12..20]);
    Some((from, u64::from_le_bytes(seq)))
}

/// A bound heartbeat socket, not yet beating (its port goes into the
/// bootstrap so that peers know where to send).
#[derive(Debug)]
pub struct Beacon {
    socket: UdpSocket,
}

impl Beacon {
    /// Binds a heartbeat socket on `ip`, any port.
    pub fn bind(ip: IpAddr) -> Result<Beacon, TransportError> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| {
            TransportError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot bind a heartbeat socket on {ip}: {e}"),
            ))
        })?;
        Ok(Beacon { socket })
    }

    /// The port peers send heartbeats to.
    pub fn port(&self) -> u16 {
        self.socket.local_addr().map_or(0, |a| a.port())
    }

    /// Starts beating and watching on a thread of its own. `on_lost` is
    /// called from that thread, once per lost peer; it must not block.
    /// Returns a handle that stops the thread when dropped.
    pub fn start(
        self,
        cfg: WatchConfig,
        on_lost: impl Fn(LocalityId, String) + Send + 'static,
    ) -> Result<Watch, TransportError> {
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = Watcher::new(self.socket, cfg, stop.clone());
        std::thread::Builder::new()
            .name("hpx-liveness".into())
            .spawn(move || watcher.run(on_lost))
            .map_err(TransportError::Io)?;
        Ok(Watch { stop })
    }
}

/// The running heartbeat thread; dropping it stops the thread (within one
/// beat interval).
#[derive(Debug)]
pub struct Watch {
    stop: Arc<AtomicBool>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct PeerState {
    addr: SocketAddr,
    last_heard: Instant,
    last_seq: u64,
    lost: bool,
}

struct Watcher {
    socket: UdpSocket,
    here: LocalityId,
    key: hmac::Key,
    peers: Vec<Option<PeerState>>,
    timeout: Duration,
    interval: Duration,
    stop: Arc<AtomicBool>,
    seq: u64,
}

impl Watcher {
    fn new(socket: UdpSocket, cfg: WatchConfig, stop: Arc<AtomicBool>) -> Watcher {
        let now = Instant::now();
        let peers = cfg
            .peers
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                (i != cfg.here.index()).then_some(PeerState {
                    addr: *addr,
                    last_heard: now,
                    last_seq: 0,
                    lost: false,
                })
            })
            .collect();
        Watcher {
            socket,
            here: cfg.here,
            key: key(&cfg.secret),
            peers,
            timeout: cfg.timeout,
            interval: beat_interval(cfg.timeout),
            stop,
            seq: 0,
        }
    }

    fn run(mut self, on_lost: impl Fn(LocalityId, String)) {
        let mut next_beat = Instant::now();
        let mut last_round = Instant::now();
        let mut buf = [0u8; 64];
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            // This thread itself was not scheduled for a while (the whole
            // process was stopped, or the host overloaded): what peers sent
            // meanwhile waits in the socket, so give them one more interval
            // to be read before judging them.
            if now.duration_since(last_round) > 2 * self.interval {
                let floor = now + self.interval - self.timeout;
                for p in self.peers.iter_mut().flatten() {
                    p.last_heard = p.last_heard.max(floor);
                }
            }
            last_round = now;
            if now >= next_beat {
                self.beat();
                next_beat = (next_beat + self.interval).max(now);
            }
            let mut wake = next_beat;
            for (i, p) in self.peers.iter_mut().enumerate() {
                let Some(p) = p.as_mut().filter(|p| !p.lost) else {
                    continue;
                };
                let deadline = p.last_heard + self.timeout;
                if now >= deadline {
                    p.lost = true;
                    let silent = now.duration_since(p.last_heard);
                    on_lost(
                        LocalityId(i as u32),
                        format!(
                            "no sign of life for {:.1} s (the process is stopped, hung or unreachable)",
                            silent.as_secs_f64()
                        ),
                    );
                } else {
                    wake = wake.min(deadline);
                }
            }
            let wait = wake
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            if self.socket.set_read_timeout(Some(wait)).is_err() {
                std::thread::sleep(wait);
                continue;
            }
            match self.socket.recv_from(&mut buf) {
                Ok((len, _)) => self.heard(&buf[..len]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // ICMP errors from a peer that is gone surface here on some
                // systems; silence will tell.
                Err(_) => {}
            }
        }
    }

    fn beat(&mut self) {
        self.seq += 1;
        for (i, p) in self.peers.iter().enumerate() {
            if let Some(p) = p.as_ref().filter(|p| !p.lost) {
                let beat = encode(&self.key, self.here, LocalityId(i as u32), self.seq);
                // A full socket buffer or an unreachable peer: the next beat
                // tries again, and silence decides.
                let _ = self.socket.send_to(&beat, p.addr);
            }
        }
    }

    fn heard(&mut self, datagram: &[u8]) {
        let Some((from, seq)) = decode(&self.key, self.here, datagram) else {
            return;
        };
        if let Some(Some(p)) = self.peers.get_mut(from.index()) {
            if seq > p.last_seq {
                p.last_seq = seq;
                p.last_heard = Instant::now();
            }
        }
    }
}

/// Heartbeats go out five times per peer timeout (at least every 20 ms).
pub fn beat_interval(timeout: Duration) -> Duration {
    (timeout / 5).max(Duration::from_millis(20))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::mpsc;

    #[test]
    fn beats_round_trip_and_forgeries_are_dropped() {
        let k = key(b"secret");
        let beat = encode(&k, LocalityId(3), LocalityId(1), 42);
        assert_eq!(decode(&k, LocalityId(1), &beat), Some((LocalityId(3), 42)));
        assert_eq!(decode(&k, LocalityId(2), &beat), None, "not for us");
        assert_eq!(decode(&key(b"other"), LocalityId(1), &beat), None);
        for i in 0..BEAT_LEN {
            let mut bad = beat;
            bad[i] ^= 1;
            assert_eq!(decode(&k, LocalityId(1), &bad), None, "byte {i} flipped");
        }
        assert_eq!(decode(&k, LocalityId(1), &beat[..BEAT_LEN - 1]), None);
    }

    fn watch(
        here: u32,
        addrs: &[SocketAddr],
        beacon: Beacon,
    ) -> (Watch, mpsc::Receiver<(LocalityId, String)>) {
        let (tx, rx) = mpsc::channel();
        let cfg = WatchConfig {
            here: LocalityId(here),
            peers: addrs.to_vec(),
            secret: b"job".to_vec(),
            timeout: Duration::from_millis(400),
        };
        let w = beacon
            .start(cfg, move |l, why| {
                let _ = tx.send((l, why));
            })
            .unwrap();
        (w, rx)
    }

    #[test]
    fn a_silent_peer_is_lost_within_the_timeout_and_a_beating_one_never() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let beacons: Vec<Beacon> = (0..3).map(|_| Beacon::bind(ip).unwrap()).collect();
        let addrs: Vec<SocketAddr> = beacons
            .iter()
            .map(|b| SocketAddr::new(ip, b.port()))
            .collect();
        let mut it = beacons.into_iter();
        let (w0, rx0) = watch(0, &addrs, it.next().unwrap());
        let (w1, rx1) = watch(1, &addrs, it.next().unwrap());
        // Locality 2 never beats: both others lose it, and only it.
        drop(it);
        let start = Instant::now();
        for rx in [&rx0, &rx1] {
            let (l, why) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(l, LocalityId(2), "{why}");
            assert!(why.contains("no sign of life"), "{why}");
        }
        let waited = start.elapsed();
        assert!(waited < Duration::from_millis(1500), "{waited:?}");
        // Three more timeouts: 0 and 1 keep hearing each other.
        assert!(rx0.recv_timeout(Duration::from_millis(1200)).is_err());
        assert!(rx1.try_recv().is_err());
        // Stop 1: 0 loses it.
        drop(w1);
        let (l, _) = rx0.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(l, LocalityId(1));
        drop(w0);
    }
}

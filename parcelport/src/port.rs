//! Choosing a free port for a job's rendezvous before any locality binds it.

use std::collections::HashSet;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::sync::Mutex;

use ring::rand::{SecureRandom, SystemRandom};

/// Ports this process has handed out: several in-process jobs starting at
/// once must not be given the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Ports tried first: below Linux's default range for automatically
/// assigned ports (32768-60999), so a socket some other program binds to
/// port 0 between our check and the locality's bind cannot land on it.
const QUIET_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// Random candidates tried before falling back to a port the kernel assigns.
const TRIES: usize = 64;

/// A port that is free on `ip` now for both UDP and TCP: the rendezvous is a
/// UDP socket under QUIC and a TCP listener under TCP. The sockets used to
/// check are closed again, so a race remains possible, but only with programs
/// that pick explicit ports in the same range (another job's launcher), not
/// with the many sockets that bind port 0.
pub fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    let random = SystemRandom::new();
    for _ in 0..TRIES {
        let mut bytes = [0u8; 2];
        if random.fill(&mut bytes).is_err() {
            break;
        }
        let span = QUIET_PORTS.end - QUIET_PORTS.start;
        let port = QUIET_PORTS.start + u16::from_le_bytes(bytes) % span;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        let taken = handed_out.get_or_insert_with(HashSet::new);
        if !taken.contains(&port) && is_free(ip, port) {
            taken.insert(port);
            return Ok(port);
        }
    }
    for _ in 0..TRIES {
        let port = UdpSocket::bind((ip, 0))?.local_addr()?.port();
        if is_free(ip, port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no port free for both UDP and TCP on {ip}"),
    ))
}

/// Whether `port` on `ip` can be bound now by a UDP socket and a TCP listener.
fn is_free(ip: IpAddr, port: u16) -> bool {
    UdpSocket::bind((ip, port)).is_ok() && TcpListener::bind((ip, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_free_port_is_free_for_udp_and_tcp_and_outside_the_automatic_range() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let port = free_port(ip).unwrap();
        assert!(QUIET_PORTS.contains(&port), "{port}");
        UdpSocket::bind((ip, port)).unwrap();
        TcpListener::bind((ip, port)).unwrap();
    }
}

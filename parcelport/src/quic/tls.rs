//! QUIC configuration: the transport parameters (windows, streams, MTU on
//! loopback) around the TLS configuration of [`crate::tls`].

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    ClientConfig, EndpointConfig, MtuDiscoveryConfig, ServerConfig, TransportConfig, VarInt,
};

use crate::tls::config_err;
use crate::TransportError;

/// Largest UDP payload used on loopback (kept below the GSO limit, see
/// PERFORMANCE.md: larger packets with segmentation offload fail silently).
const LOOPBACK_MTU: u16 = 6500;

/// Bytes a connection may buffer here before its peer is authenticated.
const PRE_AUTH_WINDOW: u32 = 256 << 10;
/// Bytes an authenticated connection may buffer here.
const RECEIVE_WINDOW: u32 = 64 << 20;
/// Data streams an authenticated peer may have open at once.
const DATA_STREAMS: u32 = 64;

/// Gives an authenticated connection its full window and data streams.
pub(super) fn authenticated(conn: &quinn::Connection) {
    conn.set_receive_window(VarInt::from_u32(RECEIVE_WINDOW));
    conn.set_max_concurrent_uni_streams(VarInt::from_u32(DATA_STREAMS));
}

/// The round-trip estimate of a loopback connection before it has measured one.
const LOOPBACK_INITIAL_RTT: std::time::Duration = std::time::Duration::from_millis(5);

fn transport_config(loopback: bool) -> TransportConfig {
    let mut t = TransportConfig::default();
    // Connections never time out by themselves: a peer whose workers
    // compute for minutes does not drive its QUIC stack, yet is alive.
    // Loss is decided by the heartbeats (crate::liveness), which run on a
    // thread of their own; before authentication by the handshake timeout.
    t.max_idle_timeout(None);
    t.keep_alive_interval(None);
    // Until a peer has proven the job secret it gets one stream for the
    // handshake and a small window: an outsider cannot make this locality
    // buffer more than PRE_AUTH_WINDOW per connection. `authenticated`
    // opens the connection up.
    t.max_concurrent_bidi_streams(VarInt::from_u32(1));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.stream_receive_window(VarInt::from_u32(16 << 20));
    t.receive_window(VarInt::from_u32(PRE_AUTH_WINDOW));
    t.send_window(64 << 20);
    t.datagram_receive_buffer_size(None);
    if loopback {
        // A first packet sent before the root listens is lost: with the
        // default 333 ms estimate its resend (and the 500 ms dial attempt)
        // made one start in four take half a second more.
        t.initial_rtt(LOOPBACK_INITIAL_RTT);
        t.initial_mtu(LOOPBACK_MTU);
        let mut mtu = MtuDiscoveryConfig::default();
        mtu.upper_bound(LOOPBACK_MTU);
        t.mtu_discovery_config(Some(mtu));
        let mut cc = quinn::congestion::CubicConfig::default();
        cc.initial_window(64 * u64::from(LOOPBACK_MTU));
        t.congestion_controller_factory(Arc::new(cc));
    }
    t
}

/// Server, client and endpoint configuration of one locality.
pub(crate) struct Configs {
    pub server: ServerConfig,
    pub client: ClientConfig,
    pub endpoint: EndpointConfig,
}

/// Builds the configuration for an endpoint bound to `bind`.
pub(crate) fn configs(bind: SocketAddr) -> Result<Configs, TransportError> {
    let loopback = bind.ip().is_loopback();
    let crypto = crate::tls::crypto()?;
    let transport = Arc::new(transport_config(loopback));
    let mut server = ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(crypto.server).map_err(config_err)?,
    ));
    server.transport_config(transport.clone());
    let mut client = ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(crypto.client).map_err(config_err)?,
    ));
    client.transport_config(transport);
    let mut endpoint = EndpointConfig::default();
    if loopback {
        endpoint
            .max_udp_payload_size(LOOPBACK_MTU + 100)
            .map_err(config_err)?;
    }
    Ok(Configs {
        server,
        client,
        endpoint,
    })
}

/// Binds a UDP socket with buffers large enough for bulk transfers.
pub(crate) fn bind_socket(addr: SocketAddr) -> Result<std::net::UdpSocket, TransportError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel may cap these; small buffers only cost speed.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into()).map_err(|e| {
        TransportError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot bind {addr}: {e}"),
        ))
    })?;
    Ok(socket.into())
}

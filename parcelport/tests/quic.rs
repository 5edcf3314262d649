//! QUIC parcelports in one process, on 127.0.0.1: the tests of `common`.

mod common;

use common::{Port, Transport};
use futures::future::BoxFuture;
use hpx_parcelport::{NetConfig, QuicParcelport, TransportError};

fn start(cfg: NetConfig) -> BoxFuture<'static, Result<Port, TransportError>> {
    Box::pin(async move { QuicParcelport::start(cfg).await.map(|p| p as Port) })
}

fn free_addr() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
}

const QUIC: Transport = Transport { start, free_addr };

crate::transport_tests!(QUIC);

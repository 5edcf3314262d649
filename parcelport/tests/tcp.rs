//! TCP parcelports in one process, on 127.0.0.1: the tests of `common`, and
//! what only TCP has: outsiders on the listener, and a locality whose
//! connections end without a goodbye.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{next_loss, next_parcel, parcel, within, Event, Port, Transport};
use futures::future::BoxFuture;
use hpx_parcelport::handshake::{Hello, Purpose, TOKEN_LEN};
use hpx_parcelport::{LocalityId, NetConfig, TcpParcelport, TransportError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

fn start(cfg: NetConfig) -> BoxFuture<'static, Result<Port, TransportError>> {
    Box::pin(async move { TcpParcelport::start(cfg).await.map(|p| p as Port) })
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
}

const TCP: Transport = Transport { start, free_addr };

crate::transport_tests!(TCP);

/// Sends one parcel each way between localities 0 and 1 and waits for both.
async fn exchange(job: &mut [(Port, mpsc::UnboundedReceiver<Event>)], seq: u64) {
    job[0]
        .0
        .send(parcel(0, 1, seq, Bytes::from_static(b"ping")))
        .expect("send");
    job[1]
        .0
        .send(parcel(1, 0, seq, Bytes::from_static(b"pong")))
        .expect("send");
    assert_eq!(next_parcel(&mut job[1].1).await.0.payload.as_ref(), b"ping");
    assert_eq!(next_parcel(&mut job[0].1).await.0.payload.as_ref(), b"pong");
}

/// Fails the test unless the locality ends `stream` within a few seconds
/// (well before its handshake timeout).
async fn closed_soon(stream: &mut (impl AsyncRead + Unpin)) {
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the locality kept an outsider's connection");
}

/// Accepts any certificate: an outsider who completes TLS with a locality.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS session with the locality at `addr`, without the job secret.
async fn tls_outsider(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("hpx-rs").expect("name"), tcp)
        .await
        .expect("TLS handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_are_turned_away_and_the_job_goes_on() {
    within(outsiders_are_turned_away_and_the_job_goes_on_body()).await;
}

async fn outsiders_are_turned_away_and_the_job_goes_on_body() {
    let mut job = common::job(TCP, 2, 1 << 20).await;
    // Connections both ways first: the flood below takes every handshake
    // slot of 127.0.0.1 for a while.
    exchange(&mut job, 0).await;
    let target = job[1].0.addresses()[1];

    // Not TLS at all.
    let mut raw = TcpStream::connect(target).await.expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: hpx\r\n\r\n")
        .await
        .expect("write");
    closed_soon(&mut raw).await;
    // A TLS record header announcing more than TLS allows.
    let mut raw = TcpStream::connect(target).await.expect("connect");
    raw.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .await
        .expect("write");
    closed_soon(&mut raw).await;

    // Records (kind byte, u32 length) after TLS, before authentication: a
    // handshake message announcing 4 GiB is refused without being read...
    let mut tls = tls_outsider(target).await;
    tls.write_all(&[1, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    tls.flush().await.expect("flush");
    closed_soon(&mut tls).await;
    // ... and so are parcels before the handshake.
    let mut tls = tls_outsider(target).await;
    tls.write_all(&[2, 16, 0, 0, 0]).await.expect("write");
    tls.write_all(&[0u8; 16]).await.expect("write");
    tls.flush().await.expect("flush");
    closed_soon(&mut tls).await;
    // A hello with a forged token is answered with a close record saying
    // that authentication failed (code 1).
    let mut tls = tls_outsider(target).await;
    let hello = Hello {
        purpose: Purpose::Peer,
        locality: LocalityId(0),
        num_localities: 2,
        token: [7; TOKEN_LEN],
        listen_addr: "127.0.0.1:1".into(),
        beat_port: 1,
    }
    .encode()
    .expect("hello");
    let mut msg = vec![1];
    msg.extend_from_slice(&(hello.len() as u32).to_le_bytes());
    msg.extend_from_slice(&hello);
    tls.write_all(&msg).await.expect("write");
    tls.flush().await.expect("flush");
    let mut header = [0u8; 5];
    tls.read_exact(&mut header).await.expect("an answer");
    assert_eq!(header[0], 3, "a close record");
    let mut code = [0u8; 4];
    tls.read_exact(&mut code).await.expect("a close code");
    assert_eq!(u32::from_le_bytes(code), 1, "authentication failed");
    closed_soon(&mut tls).await;

    // Many idle connections, beyond the limit for one address: some wait
    // for their handshake timeout, the others are refused at once.
    let idle: Vec<TcpStream> =
        futures::future::join_all((0..40).map(|_| TcpStream::connect(target)))
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect();

    // The job goes on: parcels both ways, and no loss.
    exchange(&mut job, 1).await;
    for (_, rx) in &mut job {
        assert!(rx.try_recv().is_err(), "no loss, nothing else");
    }
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locality_gone_without_a_goodbye_is_lost_at_once() {
    within(a_locality_gone_without_a_goodbye_is_lost_at_once_body()).await;
}

async fn a_locality_gone_without_a_goodbye_is_lost_at_once_body() {
    let rendezvous = free_addr();
    // Long enough that the heartbeats cannot be what notices.
    let peer_timeout = Duration::from_secs(30);
    let config = |i| NetConfig {
        peer_timeout,
        ..common::config(i, 3, rendezvous, 1 << 20)
    };
    // Locality 2 runs on a runtime of its own, which the test then drops:
    // its connections end as a killed process's do, without a close record.
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let (die_tx, die_rx) = oneshot::channel::<()>();
    let victim = config(2);
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let port = TcpParcelport::start(victim).await.expect("bootstrap");
            let (port, mut rx) = common::attach(port as Port);
            for dest in 0..2 {
                port.send(parcel(2, dest, 0, Bytes::from_static(b"alive")))
                    .expect("send");
            }
            for _ in 0..2 {
                next_parcel(&mut rx).await;
            }
            let _ = ready_tx.send(());
            let _ = die_rx.await;
        });
        drop(runtime);
    });
    let (p0, p1) = tokio::join!(start(config(0)), start(config(1)));
    let mut job = vec![
        common::attach(p0.expect("bootstrap")),
        common::attach(p1.expect("bootstrap")),
    ];
    // Connections each way between the survivors and locality 2.
    for (i, (port, rx)) in job.iter_mut().enumerate() {
        port.send(parcel(i as u32, 2, 0, Bytes::from_static(b"hello")))
            .expect("send");
        assert_eq!(next_parcel(rx).await.0.payload.as_ref(), b"alive");
    }
    ready_rx.await.expect("locality 2 heard from both");
    let gone = Instant::now();
    let _ = die_tx.send(());
    for (_, rx) in &mut job {
        let (l, reason) = next_loss(rx, Duration::from_secs(10)).await;
        assert_eq!(l, LocalityId(2));
        assert!(
            reason.contains("without a goodbye") || reason.contains("broke"),
            "{reason}"
        );
    }
    assert!(gone.elapsed() < peer_timeout / 3, "{:?}", gone.elapsed());
    thread.join().expect("locality 2's thread");
    // The others go on.
    exchange(&mut job, 1).await;
    for (_, rx) in &mut job {
        assert!(rx.try_recv().is_err(), "one loss each, nothing else");
    }
}

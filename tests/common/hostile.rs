//! What an intruder does: TLS clients that trust any certificate and open
//! connections that never authenticate (used by the security and chaos suites).

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// A TLS client that trusts anything: what an intruder would use.
#[derive(Debug)]
struct TrustAll(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for TrustAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn intruder_endpoint() -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAll(provider)))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![b"hpx-rs/1".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(crypto).expect("QUIC client config"),
    ));
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(config);
    endpoint
}

/// One hostile connection: `kind` 0 claims a 4 MiB hello and pushes 1 MiB,
/// 1 sends most of a hello and stalls, 2 opens a stream and says nothing.
/// The streams are returned with the connection: dropping them would end
/// them, and the connection with them.
pub async fn attack(
    endpoint: quinn::Endpoint,
    addr: std::net::SocketAddr,
    kind: usize,
) -> Option<(quinn::Connection, quinn::SendStream, quinn::RecvStream)> {
    let conn = endpoint.connect(addr, "hpx-rs").ok()?.await.ok()?;
    let (mut send, recv) = conn.open_bi().await.ok()?;
    let push = async {
        match kind {
            0 => {
                send.write_all(&((4u32 << 20) - 1).to_le_bytes())
                    .await
                    .ok()?;
                for _ in 0..16 {
                    send.write_all(&[0x5a; 64 << 10]).await.ok()?;
                }
            }
            1 => {
                send.write_all(&1000u32.to_le_bytes()).await.ok()?;
                send.write_all(&[0x5a; 999]).await.ok()?;
            }
            _ => {}
        }
        Some(())
    };
    // A stalled write (flow control) is what an attacker gets: stop there.
    let _ = tokio::time::timeout(Duration::from_secs(3), push).await;
    Some((conn, send, recv))
}

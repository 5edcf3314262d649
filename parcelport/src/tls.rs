//! TLS 1.3 configuration shared by the QUIC and TCP parcelports: a fresh
//! self-signed certificate per locality, and a client verifier that accepts
//! any certificate (identity is proven by the job secret over the TLS
//! exporter, see [`crate::handshake`]).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::TransportError;

/// ALPN protocol id; both sides must agree.
const ALPN: &[u8] = b"hpx-rs/1";
/// Server name used for every connection (certificates are not checked by name).
pub(crate) const SERVER_NAME: &str = "hpx-rs";

/// A configuration error, as the transport reports it.
pub(crate) fn config_err(e: impl std::fmt::Display) -> TransportError {
    TransportError::Config(e.to_string())
}

/// Accepts the peer's certificate but checks its handshake signatures, so the
/// TLS session is sound; authentication happens over the exporter afterwards.
#[derive(Debug)]
struct ExporterAuthenticated(Arc<CryptoProvider>);

impl ServerCertVerifier for ExporterAuthenticated {
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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS 1.3 server and client configuration of one locality.
pub(crate) struct Crypto {
    /// For connections this locality accepts: its own new certificate.
    pub(crate) server: rustls::ServerConfig,
    /// For connections this locality opens: any certificate, checked signatures.
    pub(crate) client: rustls::ClientConfig,
}

/// Makes a new certificate and the TLS configuration around it (ring, TLS 1.3 only).
pub(crate) fn crypto() -> Result<Crypto, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified =
        rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()]).map_err(config_err)?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(config_err)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ExporterAuthenticated(provider)))
        .with_no_client_auth();
    client.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Crypto { server, client })
}

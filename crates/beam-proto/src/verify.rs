//! Certificate verification by pinned fingerprint, for self-hosted servers whose
//! self-signed certificate the user got from `beam server --dev` (or copied by hand).
//! Signatures are still checked, so a peer must hold the pinned certificate's key.

use std::sync::Arc;

use crate::fingerprint;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Accepts exactly one certificate, or with no fingerprint any certificate
/// (`--insecure-upstream`: a local service with a self-signed certificate).
#[derive(Debug)]
pub struct Pinned {
    expected: Option<String>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    /// Accepts only the certificate with fingerprint `expected` (`sha256:…`).
    pub fn new(expected: &str, provider: Arc<CryptoProvider>) -> Self {
        Self {
            expected: Some(expected.trim().to_ascii_lowercase()),
            provider,
        }
    }

    /// Any certificate whose key signs the handshake.
    pub fn any(provider: Arc<CryptoProvider>) -> Self {
        Self {
            expected: None,
            provider,
        }
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(expected) = &self.expected else {
            return Ok(ServerCertVerified::assertion());
        };
        let got = fingerprint(end_entity);
        if got == *expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate {got} does not match the pinned {expected}; if the server was reinstalled, update `fingerprint` in your beam config"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

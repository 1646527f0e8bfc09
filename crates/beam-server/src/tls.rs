//! TLS for the tunnel listener: a self-signed certificate kept in the data directory
//! (made with rcgen on first start) and the rustls server configuration.
//!
//! Clients pin the certificate by its SHA-256 fingerprint, which `beam server --dev`
//! writes into the local user's config, so no CA is involved on a dev machine.

use std::path::Path;
use std::sync::Arc;

use beam_proto::fingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors while loading or creating the certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing the PEM files failed.
    #[error("certificate file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM files could not be parsed.
    #[error("certificate file {path} is not valid PEM: {message}")]
    Pem {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rcgen or rustls refused the key material.
    #[error("certificate error: {0}")]
    Crypto(String),
}

/// A certificate chain and key ready for rustls, plus the leaf's fingerprint.
#[derive(Debug)]
pub struct TunnelCert {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
    /// `sha256:` + hex of the leaf's DER, what clients pin.
    pub fingerprint: String,
}

impl TunnelCert {
    /// Loads `tunnel-cert.pem` / `tunnel-key.pem` from `dir`, creating a self-signed
    /// pair for `names` when they do not exist. The key file is written 0600.
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Self, TlsError> {
        Self::load_or_create_as(dir, "tunnel", names)
    }

    /// Loads `<stem>-cert.pem` / `<stem>-key.pem` from `dir`, creating a
    /// self-signed pair for `names` when they do not exist (kept, so a
    /// browser's exception for it survives restarts).
    pub fn load_or_create_as(dir: &Path, stem: &str, names: &[String]) -> Result<Self, TlsError> {
        let cert_path = dir.join(format!("{stem}-cert.pem"));
        let key_path = dir.join(format!("{stem}-key.pem"));
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| TlsError::Io { path, source }
        };
        if !cert_path.exists() || !key_path.exists() {
            let ck = rcgen::generate_simple_self_signed(names.to_vec())
                .map_err(|e| TlsError::Crypto(e.to_string()))?;
            std::fs::write(&cert_path, ck.cert.pem()).map_err(io(&cert_path))?;
            write_private(&key_path, ck.signing_key.serialize_pem().as_bytes())
                .map_err(io(&key_path))?;
        }
        Self::load(&cert_path, &key_path)
    }

    /// Loads a PEM certificate chain and key.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let pem = |path: &Path| {
            let path = path.display().to_string();
            move |e: rustls::pki_types::pem::Error| TlsError::Pem {
                path,
                message: e.to_string(),
            }
        };
        let chain = CertificateDer::pem_file_iter(cert_path)
            .map_err(pem(cert_path))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem(cert_path))?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(pem(key_path))?;
        let leaf = chain.first().ok_or_else(|| TlsError::Pem {
            path: cert_path.display().to_string(),
            message: "no certificate in file".into(),
        })?;
        let fingerprint = fingerprint(leaf);
        Ok(Self {
            chain,
            key,
            fingerprint,
        })
    }

    /// rustls server config for the tunnel listener: TLS 1.2/1.3 on ring, ALPN `beam/1`.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Crypto(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Crypto(e.to_string()))?;
        cfg.alpn_protocols = vec![beam_proto::ALPN.to_vec(), beam_proto::API_ALPN.to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The mode above applies only when the file is created; tighten an old one too.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)
}

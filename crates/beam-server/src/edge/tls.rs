//! TLS on the public edge: an SNI certificate resolver that serves the wildcard
//! certificate of `*.<domain>` (from files, hot-reloaded when they change, or
//! self-signed for local development) and per-host certificates of custom
//! domains (from the store, so every node serves what any node issued).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::tls::TlsError;

/// Where the wildcard certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WildcardFiles {
    /// PEM chain, leaf first, for `<domain>` and `*.<domain>`.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The edge's certificates, looked up by SNI on every handshake.
pub struct EdgeCerts {
    domain: String,
    wildcard: RwLock<Arc<CertifiedKey>>,
    custom: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// Custom hosts seen in SNI without a certificate (ACME issues on demand).
    misses: Option<tokio::sync::mpsc::Sender<String>>,
}

impl std::fmt::Debug for EdgeCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeCerts")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// Builds a rustls signing key pair from PEM text or files.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    if chain.is_empty() {
        return Err(TlsError::Crypto("no certificate in the chain".into()));
    }
    let signer = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| TlsError::Crypto(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Parses a PEM chain and key held in memory.
pub fn certified_key_from_pem(
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let pem = |e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: "(store)".into(),
        message: e.to_string(),
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem)?;
    certified_key(chain, &key)
}

fn load_files(files: &WildcardFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let c = crate::tls::TunnelCert::load(&files.cert, &files.key)?;
    certified_key(c.chain, &c.key)
}

/// A self-signed certificate for `<domain>` and `*.<domain>` (development).
fn self_signed(domain: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let ck = rcgen::generate_simple_self_signed(vec![domain.to_string(), format!("*.{domain}")])
        .map_err(|e| TlsError::Crypto(e.to_string()))?;
    let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
        .map_err(|e| TlsError::Crypto(e.to_string()))?;
    certified_key(vec![ck.cert.der().clone()], &key)
}

impl EdgeCerts {
    /// Loads the wildcard certificate (files, or self-signed when `None`).
    /// `misses` receives custom host names that have no certificate yet.
    pub fn new(
        domain: &str,
        files: Option<&WildcardFiles>,
        misses: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Result<Self, TlsError> {
        let wildcard = match files {
            Some(f) => load_files(f)?,
            None => self_signed(domain)?,
        };
        Ok(Self {
            domain: domain.to_ascii_lowercase(),
            wildcard: RwLock::new(wildcard),
            custom: RwLock::new(HashMap::new()),
            misses,
        })
    }

    /// rustls configuration of the HTTPS listener: TLS 1.2 and 1.3, HTTP/2
    /// preferred over HTTP/1.1.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Crypto(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// Serves `key` for `host` (a custom domain).
    pub fn insert(&self, host: &str, key: Arc<CertifiedKey>) {
        self.custom
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_ascii_lowercase(), key);
    }

    /// Whether `host` has a certificate of its own.
    pub fn has(&self, host: &str) -> bool {
        self.custom
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(host)
    }

    fn is_ours(&self, host: &str) -> bool {
        host == self.domain
            || host
                .strip_suffix(self.domain.as_str())
                .and_then(|h| h.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
    }

    /// Loads certificates the store got since `since` (this node's or another's).
    /// Returns the newest `updated_at` seen.
    pub async fn refresh(&self, store: &Store, since: i64) -> i64 {
        let rows = match store.certificates_since(since).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "loading edge certificates failed");
                return since;
            }
        };
        let mut newest = since;
        for row in rows {
            newest = newest.max(row.updated_at);
            match certified_key_from_pem(&row.cert_pem, &row.key_pem) {
                Ok(key) => self.insert(&row.hostname, key),
                Err(e) => {
                    tracing::warn!(host = %row.hostname, error = %e, "stored certificate is unusable")
                }
            }
        }
        newest
    }
}

impl ResolvesServerCert for EdgeCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let wildcard = || {
            Some(
                self.wildcard
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            )
        };
        // No SNI (an IP address was dialled): the wildcard is the best guess.
        let Some(sni) = hello.server_name() else {
            return wildcard();
        };
        let host = sni.trim_end_matches('.').to_ascii_lowercase();
        if self.is_ours(&host) {
            return wildcard();
        }
        if let Some(k) = self
            .custom
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&host)
        {
            return Some(k.clone());
        }
        // Unknown here: maybe a verified domain's first visit. The ACME worker
        // decides; a full queue only delays issuance to the next visit.
        if let Some(tx) = &self.misses {
            let _ = tx.try_send(host);
        }
        None
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads the wildcard files when their modification time changes, and picks
/// up custom-domain certificates from the store, until `stop`.
pub(crate) async fn reload_loop(
    certs: Arc<EdgeCerts>,
    files: Option<WildcardFiles>,
    store: Store,
    every: Duration,
    stop: CancellationToken,
) {
    let stamp = |f: &WildcardFiles| (modified(&f.cert), modified(&f.key));
    let mut seen = files.as_ref().map(stamp);
    let mut since = certs.refresh(&store, 0).await;
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Some(f) = &files {
            let now = stamp(f);
            if Some(now) != seen {
                match load_files(f) {
                    Ok(key) => {
                        *certs.wildcard.write().unwrap_or_else(|e| e.into_inner()) = key;
                        seen = Some(now);
                        tracing::info!(cert = %f.cert.display(), "edge certificate reloaded");
                    }
                    // Half-written files (a renewal in progress): keep serving the
                    // old certificate and try again on the next tick.
                    Err(e) => {
                        tracing::warn!(error = %e, "edge certificate reload failed; keeping the previous one")
                    }
                }
            }
        }
        since = certs.refresh(&store, since).await;
    }
}

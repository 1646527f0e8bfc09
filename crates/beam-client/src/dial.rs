//! One connection to a `host:port`: TCP with `TCP_NODELAY` (through an HTTP
//! proxy when one is given), then TLS unless plaintext was asked for, with a
//! pinned fingerprint or the web PKI. Used for the server (tunnels, API) and,
//! always directly, for the local service.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::config::TlsMode;
use crate::egress::HttpProxy;
use crate::error::ConnectError;
use beam_proto::verify::Pinned;

/// A connection after TCP (and TLS unless plaintext).
pub type TunnelStream = Either<TcpStream, TlsStream<TcpStream>>;

/// rustls client configuration for `mode`, offering `alpn`.
pub(crate) fn tls_config(mode: &TlsMode, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let mut cfg = match mode {
        TlsMode::Pinned(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::new(fp, provider)))
            .with_no_client_auth(),
        TlsMode::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned::any(provider)))
            .with_no_client_auth(),
        _ => {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

/// TCP (with `TCP_NODELAY`) and, unless plaintext, TLS offering `alpn`: the
/// tunnel protocol (`beam/1`) or the API over HTTP/1.1 (`http/1.1`). Always
/// direct: the local service is dialled with this too.
pub async fn dial(
    server: &str,
    tls: &TlsMode,
    alpn: &[&[u8]],
) -> Result<TunnelStream, ConnectError> {
    dial_via(server, tls, alpn, None).await
}

/// [`dial`], through `proxy` when there is one.
pub async fn dial_via(
    server: &str,
    tls: &TlsMode,
    alpn: &[&[u8]],
    proxy: Option<&HttpProxy>,
) -> Result<TunnelStream, ConnectError> {
    let unreachable = |source| ConnectError::Unreachable {
        server: server.to_string(),
        source,
    };
    let tcp = match proxy {
        Some(p) => p.connect(server).await?,
        None => TcpStream::connect(server).await.map_err(unreachable)?,
    };
    tcp.set_nodelay(true).map_err(unreachable)?;
    match tls {
        TlsMode::Plaintext => Ok(Either::Left(tcp)),
        mode => {
            let host = server
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(server)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let name = ServerName::try_from(host).map_err(|e| ConnectError::Tls {
                server: server.to_string(),
                message: e.to_string(),
                fatal: true,
            })?;
            let connector = tokio_rustls::TlsConnector::from(tls_config(mode, alpn));
            let tls = connector.connect(name, tcp).await.map_err(|e| {
                let r = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>());
                // A certificate problem will not fix itself; a reset might.
                // Plain HTTP where TLS was expected will not either.
                let fatal = r.is_some_and(|r| {
                    matches!(
                        r,
                        rustls::Error::General(_)
                            | rustls::Error::InvalidCertificate(_)
                            | rustls::Error::InvalidMessage(_)
                    )
                });
                ConnectError::Tls {
                    server: server.to_string(),
                    message: tls_advice(server, mode, r).unwrap_or_else(|| e.to_string()),
                    fatal,
                }
            })?;
            Ok(Either::Right(tls))
        }
    }
}

/// What to do about the TLS failures users meet most, instead of rustls'
/// own words: an HTTP port given as the tunnel port, and a self-signed server
/// with no pinned fingerprint.
fn tls_advice(server: &str, mode: &TlsMode, e: Option<&rustls::Error>) -> Option<String> {
    match e? {
        rustls::Error::InvalidMessage(_) => Some(format!(
            "{server} did not answer with TLS: this looks like an HTTP port (a server's --http or \
             --https listener, or another service). Give the tunnel port: `beam server` prints it \
             as \"tunnel listener\" (default 8081)"
        )),
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature,
        ) if matches!(mode, TlsMode::WebPki) => Some(format!(
            "the certificate of {server} is not signed by a public authority and no fingerprint \
             is pinned: a self-hosted or --dev server's certificate is pinned by its fingerprint. \
             Pass --fingerprint sha256:… (the server prints it at start) or BEAM_FINGERPRINT, or \
             use the config file `beam server --dev` wrote"
        )),
        _ => None,
    }
}

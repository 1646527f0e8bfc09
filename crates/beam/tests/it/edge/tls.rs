//! The HTTPS edge: SNI picks the wildcard or a custom domain's certificate (from
//! the store), wildcard files are hot-reloaded, TLS 1.2 and 1.3 both work, and
//! plain HTTP redirects to HTTPS except ACME challenges.

use std::sync::Arc;
use std::time::Duration;

use beam_server::store::{CertRow, now_ms};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use crate::support::*;

/// A throwaway CA that signs leaf certificates for the test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn leaf(&self, names: &[&str]) -> Leaf {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
    }
}

/// TLS handshake with `sni`; the certificate the server presented, or the error.
async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    sni: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
}

fn presented(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// One HTTPS request over an established TLS stream.
async fn https_get(
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    host: &str,
    path: &str,
) -> (StatusCode, String) {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", host)
        .body(full(""))
        .unwrap();
    let resp = within("https response", sender.send_request(req))
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn write_wildcard(dir: &std::path::Path, leaf: &Leaf) -> beam_server::edge::tls::WildcardFiles {
    let files = beam_server::edge::tls::WildcardFiles {
        cert: dir.join("edge-cert.pem"),
        key: dir.join("edge-key.pem"),
    };
    // Write to a temporary name and rename, as certificate tools do.
    std::fs::write(dir.join("tmp-key.pem"), &leaf.key_pem).unwrap();
    std::fs::rename(dir.join("tmp-key.pem"), &files.key).unwrap();
    std::fs::write(dir.join("tmp-cert.pem"), &leaf.cert_pem).unwrap();
    std::fs::rename(dir.join("tmp-cert.pem"), &files.cert).unwrap();
    files
}

#[tokio::test]
async fn sni_serves_the_wildcard_and_custom_domain_certificates_and_reloads_files() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.leaf(&["beam.test", "*.beam.test"]);
    let files = write_wildcard(dir.path(), &first);
    let server = TestServer::start_with(|c| {
        c.domain = "beam.test".into();
        c.edge_cert = Some(files.clone());
        c.cert_reload = Duration::from_millis(100);
    })
    .await;
    let origin = Origin::start().await;
    let (_client, w) = server.http_client(origin.addr).await;
    let host = format!("{}.beam.test", w.name);
    let tls13 = ca.client(&[&rustls::version::TLS13]);
    let tls12 = ca.client(&[&rustls::version::TLS12]);

    // Wildcard, over TLS 1.3 and 1.2, through the tunnel.
    let tls = handshake(&tls13, server.https, &host).await.unwrap();
    assert_eq!(presented(&tls), first.der);
    let (status, body) = https_get(tls, &host, "/headers").await;
    assert_eq!(status, StatusCode::OK);
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["x-forwarded-proto"], "https");
    let tls = handshake(&tls12, server.https, &host).await.unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(https_get(tls, &host, "/hello").await.1, "hello from origin");

    // A name that is neither ours nor a custom domain with a certificate: no handshake.
    assert!(
        handshake(&tls13, server.https, "shop.example")
            .await
            .is_err()
    );
    // A custom domain's certificate in the store is picked up and served by SNI.
    let custom = ca.leaf(&["shop.example"]);
    server
        .store
        .put_certificate(&CertRow {
            hostname: "shop.example".into(),
            cert_pem: custom.cert_pem.clone(),
            key_pem: custom.key_pem.clone(),
            not_after: now_ms() + 86_400_000,
            updated_at: now_ms(),
        })
        .await
        .unwrap();
    let tls = eventually("custom certificate served", || async {
        handshake(&tls13, server.https, "shop.example").await.ok()
    })
    .await;
    assert_eq!(presented(&tls), custom.der);

    // New wildcard files are served without a restart.
    let second = ca.leaf(&["beam.test", "*.beam.test"]);
    write_wildcard(dir.path(), &second);
    eventually("reloaded wildcard", || async {
        let tls = handshake(&tls13, server.https, &host).await.ok()?;
        (presented(&tls) == second.der).then_some(())
    })
    .await;
}

#[tokio::test]
async fn plain_http_redirects_to_https_except_acme_challenges() {
    let server = TestServer::start_with(|c| c.https_redirect = true).await;
    let origin = Origin::start().await;
    let (_client, w) = server.http_client(origin.addr).await;
    let host = server.host(&w.name);
    let resp = visit(
        server.public,
        &host,
        Request::get("/path?q=1").body(full("")).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers()["location"],
        format!(
            "https://{}.localhost:{}/path?q=1",
            w.name,
            server.https.port()
        )
        .as_str()
    );

    let (status, body) = get(server.public, &host, "/.well-known/acme-challenge/tok123").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("No ACME challenge"), "{body}");
    server
        .store
        .put_challenge("tok123", "tok123.thumbprint", now_ms() + 60_000)
        .await
        .unwrap();
    let (status, body) = get(
        server.public,
        "shop.example",
        "/.well-known/acme-challenge/tok123",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "tok123.thumbprint");
    // Expired answers are not served.
    server
        .store
        .put_challenge("old", "old.thumbprint", now_ms() - 1)
        .await
        .unwrap();
    assert_eq!(
        get(server.public, &host, "/.well-known/acme-challenge/old")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_dropped_within_the_header_timeout() {
    let server = TestServer::start_with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let mut s = TcpStream::connect(server.https).await.unwrap();
    // Half a ClientHello record header, then nothing.
    tokio::io::AsyncWriteExt::write_all(&mut s, &[0x16, 0x03, 0x01])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(
        Duration::from_secs(4),
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "still open: {r:?}");
}

//! ACME against a real RFC 8555 server running on this machine: pebble (Let's
//! Encrypt's test CA, Debian package `pebble`, installed by `.ci/run`). The test
//! starts pebble with its own HTTPS certificate (a throwaway CA made here), its
//! HTTP-01 validations aimed at the test server's public HTTP port, and its DNS
//! lookups answered by the test's DNS server, so custom domains resolve to
//! 127.0.0.1 without touching the system resolver.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use beam_server::edge::acme::AcmeConfig;
use beam_server::store::{CertRow, NewDomain, now_ms};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::CertificateDer;

use crate::support::DnsServer;
use crate::support::*;

/// A running pebble, killed on drop.
struct Pebble {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes pebble's HTTPS certificate (signed by a new CA) into `dir`; returns
/// the CA file the ACME client must trust.
fn pebble_certs(dir: &Path) -> PathBuf {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    dir.join("ca.pem")
}

impl Pebble {
    async fn start(
        dir: tempfile::TempDir,
        port: u16,
        http_port: u16,
        dns: std::net::SocketAddr,
    ) -> Self {
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{}", free_port()),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let path = dir.path().join("pebble.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&path)
            .arg("-dnsserver")
            .arg(dns.to_string())
            // No random validation delays, no random nonce rejections.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "pebble is not installed (Debian: apt-get install pebble); .ci/run installs it",
            );
        let pebble = Self { child, _dir: dir };
        eventually("pebble listening", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        pebble
    }
}

/// The leaf the HTTPS edge presents for `sni`, if the handshake succeeds.
async fn presented(addr: std::net::SocketAddr, sni: &str) -> Option<CertificateDer<'static>> {
    let tls = tls_connect(addr, sni, &[]).await.ok()?;
    Some(tls.get_ref().1.peer_certificates()?[0].clone().into_owned())
}

async fn stored(server: &TestServer, host: &str) -> Option<CertRow> {
    server
        .store
        .certificates_since(0)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.hostname == host)
}

fn leaf_der(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn certificates_are_issued_on_first_visit_and_renewed_before_expiry() {
    let dns = DnsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = pebble_certs(dir.path());
    let port = free_port();
    let server = TestServer::start_with(|c| {
        let mut acme = AcmeConfig::new(format!("https://127.0.0.1:{port}/dir"));
        acme.ca_file = Some(ca_file);
        acme.contact = vec!["mailto:ops@beam.test".into()];
        acme.check_every = Duration::from_millis(500);
        acme.retry_after_failure = Duration::from_millis(300);
        c.acme = Some(acme);
        c.cert_reload = Duration::from_millis(200);
    })
    .await;
    let _pebble = Pebble::start(dir, port, server.public.port(), dns.addr).await;
    let now = now_ms();
    for host in ["shop.example", "old.example"] {
        dns.set_a(host, Ipv4Addr::LOCALHOST);
        server
            .store
            .create_domain(
                NewDomain {
                    org_id: server.operator.org_id,
                    hostname: host,
                    kind: beam_server::store::DomainKind::Custom,
                    status: beam_server::store::DomainStatus::Active,
                    verification_token: "t",
                },
                now,
            )
            .await
            .unwrap()
            .unwrap();
    }
    // old.example holds a certificate that expires tomorrow: due for renewal.
    let mut params = CertificateParams::new(vec!["old.example".to_string()]).unwrap();
    let tomorrow = time_of(now + 86_400_000);
    params.not_after = tomorrow;
    let key = KeyPair::generate().unwrap();
    let old = params.self_signed(&key).unwrap();
    server
        .store
        .put_certificate(&CertRow {
            hostname: "old.example".into(),
            cert_pem: old.pem(),
            key_pem: key.serialize_pem(),
            not_after: now + 86_400_000,
            updated_at: now,
        })
        .await
        .unwrap();

    // First visit to shop.example: no certificate yet, so the handshake fails and
    // issuance starts; soon the edge serves the certificate the CA issued.
    assert!(presented(server.https, "shop.example").await.is_none());
    let served = eventually("certificate issued for shop.example", || async {
        presented(server.https, "shop.example").await
    })
    .await;
    let row = stored(&server, "shop.example")
        .await
        .expect("stored in the store");
    assert_eq!(
        served,
        leaf_der(&row.cert_pem),
        "the edge serves the stored certificate"
    );
    assert!(
        row.not_after > now + 7 * 86_400_000,
        "valid for more than a week"
    );
    assert!(
        server
            .store
            .acme_account(&format!("https://127.0.0.1:{port}/dir"))
            .await
            .unwrap()
            .is_some(),
        "the account is kept in the store for every node"
    );

    // Renewal: the expiring certificate is replaced by a fresh one and served.
    let renewed = eventually("old.example renewed", || async {
        let row = stored(&server, "old.example").await?;
        (row.not_after > now + 7 * 86_400_000).then_some(row)
    })
    .await;
    let served = eventually("renewed certificate served", || async {
        let der = presented(server.https, "old.example").await?;
        (der != *old.der()).then_some(der)
    })
    .await;
    assert_eq!(served, leaf_der(&renewed.cert_pem));
    // Challenge answers are cleaned up once used.
    assert_eq!(
        get(
            server.public,
            "shop.example",
            "/.well-known/acme-challenge/x"
        )
        .await
        .0,
        http::StatusCode::NOT_FOUND
    );
}

/// An rcgen time for unix ms.
fn time_of(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap()
}

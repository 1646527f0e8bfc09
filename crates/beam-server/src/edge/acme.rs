//! Automatic certificates for verified custom domains, with ACME (RFC 8555,
//! instant-acme) and HTTP-01 challenges.
//!
//! - Issued on demand: the first TLS handshake (or plain HTTP request) for an
//!   active custom domain without a certificate queues the host here.
//! - Renewed `renew_before` expiry (30 days by default), checked every
//!   `check_every`.
//! - Certificates, the account's credentials and the challenge answers live in
//!   the store, so every node serves the certificate and can answer the
//!   challenge whichever node the CA reaches.
//!
//! Orders run one at a time: issuance is rare, and a burst of new domains must
//! not turn into a burst against the CA's rate limits. A host that failed is not
//! tried again for `retry_after_failure`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::edge::tls::{EdgeCerts, certified_key_from_pem};
use crate::store::{CertRow, now_ms};
use crate::store::{Store, StoreError};

/// How the server gets certificates from an ACME CA.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// Directory URL, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory: String,
    /// Account contacts (`mailto:ops@example.com`).
    pub contact: Vec<String>,
    /// Extra CA (PEM) trusted for the directory's own HTTPS: private or test CAs.
    pub ca_file: Option<PathBuf>,
    /// Renew certificates that expire within this.
    pub renew_before: Duration,
    /// How often expiring certificates are looked for.
    pub check_every: Duration,
    /// A host whose issuance failed waits this long before the next attempt.
    pub retry_after_failure: Duration,
}

impl AcmeConfig {
    /// Defaults for a directory: renew 30 days before expiry, check twice a day,
    /// retry a failed host after 10 minutes.
    pub fn new(directory: impl Into<String>) -> Self {
        Self {
            directory: directory.into(),
            contact: Vec::new(),
            ca_file: None,
            renew_before: Duration::from_secs(30 * 86_400),
            check_every: Duration::from_secs(12 * 3600),
            retry_after_failure: Duration::from_secs(600),
        }
    }
}

/// Why an issuance failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA or the ACME exchange failed.
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The issued certificate could not be used.
    #[error("issued certificate: {0}")]
    Cert(String),
    /// The order did not go as RFC 8555 says it should.
    #[error("{0}")]
    Order(String),
}

/// The issuing side: account (created once, shared through the store) and the
/// memory of recent failures.
struct Issuer {
    cfg: AcmeConfig,
    store: Store,
    certs: Arc<EdgeCerts>,
    account: Option<Account>,
    failed: HashMap<String, Instant>,
}

/// Runs until `stop`: issues for hosts from `misses`, renews what expires soon.
pub(crate) async fn run(
    cfg: AcmeConfig,
    store: Store,
    certs: Arc<EdgeCerts>,
    mut misses: mpsc::Receiver<String>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(cfg.check_every);
    let mut issuer = Issuer {
        cfg,
        store,
        certs,
        account: None,
        failed: HashMap::new(),
    };
    loop {
        tokio::select! {
            Some(host) = misses.recv() => issuer.on_demand(&host).await,
            _ = tick.tick() => issuer.renew_due().await,
            () = stop.cancelled() => return,
        }
    }
}

impl Issuer {
    /// Issues for `host` if it is an active custom domain without a certificate.
    async fn on_demand(&mut self, host: &str) {
        if self.certs.has(host) || self.recently_failed(host) {
            return;
        }
        if self.is_active_custom(host).await {
            self.issue_logged(host, "first visit").await;
        }
    }

    /// Renews certificates that expire within `renew_before`.
    async fn renew_due(&mut self) {
        let before = now_ms() + self.cfg.renew_before.as_millis() as i64;
        let due = match self.store.certificates_expiring(before).await {
            Ok(hosts) => hosts,
            Err(e) => {
                tracing::warn!(error = %e, "looking for expiring certificates failed");
                return;
            }
        };
        for host in due {
            // A domain that was removed or suspended keeps its old certificate
            // until it expires, but is not renewed.
            if !self.recently_failed(&host) && self.is_active_custom(&host).await {
                self.issue_logged(&host, "renewal").await;
            }
        }
    }

    fn recently_failed(&self, host: &str) -> bool {
        self.failed
            .get(host)
            .is_some_and(|t| t.elapsed() < self.cfg.retry_after_failure)
    }

    async fn is_active_custom(&self, host: &str) -> bool {
        match self.store.domain_by_host(host).await {
            Ok(Some(d)) => {
                d.kind == crate::store::DomainKind::Custom
                    && d.status == crate::store::DomainStatus::Active
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "domain lookup for ACME failed");
                false
            }
        }
    }

    async fn issue_logged(&mut self, host: &str, why: &'static str) {
        match self.issue(host).await {
            Ok(not_after) => {
                self.failed.remove(host);
                tracing::info!(host, why, not_after, "certificate issued");
            }
            Err(e) => {
                self.failed.insert(host.to_string(), Instant::now());
                tracing::warn!(host, why, error = %e, "certificate issuance failed");
            }
        }
    }

    /// The ACME account: from the store, or created and stored (the first node
    /// to store one wins; the others use it).
    async fn account(&mut self) -> Result<Account, AcmeError> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let dir = self.cfg.directory.clone();
        let builder = || match &self.cfg.ca_file {
            Some(p) => Account::builder_with_root(p),
            None => Account::builder(),
        };
        let json = match self.store.acme_account(&dir).await? {
            Some(json) => json,
            None => {
                let contact: Vec<&str> = self.cfg.contact.iter().map(String::as_str).collect();
                let new = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (_, creds) = builder()?.create(&new, dir.clone(), None).await?;
                let json = serde_json::to_string(&creds)
                    .map_err(|e| AcmeError::Order(format!("account credentials: {e}")))?;
                self.store.put_acme_account(&dir, &json, now_ms()).await?;
                self.store.acme_account(&dir).await?.unwrap_or(json)
            }
        };
        let creds: AccountCredentials = serde_json::from_str(&json)
            .map_err(|e| AcmeError::Order(format!("stored account credentials: {e}")))?;
        let account = builder()?.from_credentials(creds).await?;
        self.account = Some(account.clone());
        Ok(account)
    }

    /// One order for `host` over HTTP-01. Returns the new certificate's expiry.
    async fn issue(&mut self, host: &str) -> Result<i64, AcmeError> {
        let account = self.account().await?;
        let ids = [Identifier::Dns(host.to_string())];
        let mut order = account.new_order(&NewOrder::new(&ids)).await?;
        let mut tokens = Vec::new();
        let answer_until = now_ms() + 15 * 60 * 1000;
        {
            let mut auths = order.authorizations();
            while let Some(auth) = auths.next().await {
                let mut auth = auth?;
                match auth.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(AcmeError::Order(format!(
                            "authorization for {host} is {other:?}"
                        )));
                    }
                }
                let mut challenge = auth.challenge(ChallengeType::Http01).ok_or_else(|| {
                    AcmeError::Order("the CA offered no http-01 challenge".into())
                })?;
                let answer = challenge.key_authorization();
                self.store
                    .put_challenge(&challenge.token, answer.as_str(), answer_until)
                    .await?;
                tokens.push(challenge.token.clone());
                challenge.set_ready().await?;
            }
        }
        let retries = RetryPolicy::new().timeout(Duration::from_secs(90));
        let status = order.poll_ready(&retries).await;
        let cleanup = async {
            for t in &tokens {
                let _ = self.store.delete_challenge(t, now_ms()).await;
            }
        };
        match status {
            Ok(OrderStatus::Ready) => {}
            Ok(other) => {
                cleanup.await;
                return Err(AcmeError::Order(format!(
                    "order for {host} ended {other:?} (is http://{host}/.well-known/acme-challenge/ reaching this server on port 80?)"
                )));
            }
            Err(e) => {
                cleanup.await;
                return Err(e.into());
            }
        }
        cleanup.await;
        let key_pem = order.finalize().await?;
        let cert_pem = order.poll_certificate(&retries).await?;
        let key = certified_key_from_pem(&cert_pem, &key_pem)
            .map_err(|e| AcmeError::Cert(e.to_string()))?;
        let not_after = key
            .cert
            .first()
            .and_then(|leaf| crate::edge::x509::not_after_ms(leaf.as_ref()))
            .ok_or_else(|| AcmeError::Cert("cannot read the certificate's expiry".into()))?;
        self.store
            .put_certificate(&CertRow {
                hostname: host.to_string(),
                cert_pem,
                key_pem,
                not_after,
                updated_at: now_ms(),
            })
            .await?;
        self.certs.insert(host, key);
        Ok(not_after)
    }
}

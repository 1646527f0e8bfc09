//! Edge certificates of custom domains, ACME account credentials and pending
//! HTTP-01 answers. In the store (not on disk) so every node serves the same
//! certificates and can answer a challenge another node started.

use sqlx::Row;

use super::{Pool, Store, StoreError, on_pool};

/// A stored certificate chain and key (PEM).
#[derive(Clone)]
pub struct CertRow {
    /// Lower-cased host name.
    pub hostname: String,
    /// Leaf first.
    pub cert_pem: String,
    /// Private key.
    pub key_pem: String,
    /// Leaf's notAfter, unix ms.
    pub not_after: i64,
    /// Unix ms.
    pub updated_at: i64,
}

impl std::fmt::Debug for CertRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches logs.
        f.debug_struct("CertRow")
            .field("hostname", &self.hostname)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Inserts or replaces the certificate of `row.hostname`.
    pub async fn put_certificate(&self, row: &CertRow) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO certificates (hostname, cert_pem, key_pem, not_after, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hostname) DO UPDATE SET \
             cert_pem = excluded.cert_pem, key_pem = excluded.key_pem, \
             not_after = excluded.not_after, updated_at = excluded.updated_at")
            .bind(&row.hostname).bind(&row.cert_pem).bind(&row.key_pem)
            .bind(row.not_after).bind(row.updated_at)
            .execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Certificates updated after `since` (unix ms), for incremental refresh.
    pub async fn certificates_since(&self, since: i64) -> Result<Vec<CertRow>, StoreError> {
        on_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT hostname, cert_pem, key_pem, not_after, updated_at FROM certificates \
                 WHERE updated_at > $1 ORDER BY updated_at")
                .bind(since).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok(CertRow {
                        hostname: r.try_get("hostname")?,
                        cert_pem: r.try_get("cert_pem")?,
                        key_pem: r.try_get("key_pem")?,
                        not_after: r.try_get("not_after")?,
                        updated_at: r.try_get("updated_at")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
        })
        .map_err(Into::into)
    }

    /// Host names whose certificate expires before `before` (unix ms).
    pub async fn certificates_expiring(&self, before: i64) -> Result<Vec<String>, StoreError> {
        on_pool!(self, p => {
            let rows = sqlx::query(
                "SELECT hostname FROM certificates WHERE not_after < $1 ORDER BY not_after")
                .bind(before).fetch_all(p).await?;
            rows.iter().map(|r| r.try_get("hostname")).collect::<Result<Vec<String>, sqlx::Error>>()
        })
        .map_err(Into::into)
    }

    /// When the certificate of `hostname` expires (unix ms), if one is stored.
    pub async fn certificate_expiry(&self, hostname: &str) -> Result<Option<i64>, StoreError> {
        on_pool!(self, p => {
            sqlx::query("SELECT not_after FROM certificates WHERE hostname = $1")
                .bind(hostname).fetch_optional(p).await?
                .map(|r| r.try_get("not_after")).transpose()
        })
        .map_err(Into::into)
    }

    /// The stored ACME account credentials (JSON) for `directory`.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>, StoreError> {
        on_pool!(self, p => {
            let row = sqlx::query("SELECT credentials FROM acme_accounts WHERE directory = $1")
                .bind(directory).fetch_optional(p).await?;
            row.map(|r| r.try_get("credentials")).transpose()
        })
        .map_err(Into::into)
    }

    /// Saves ACME account credentials; the first writer wins, so nodes racing to
    /// create an account end up using the same one.
    pub async fn put_acme_account(
        &self,
        directory: &str,
        credentials: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO acme_accounts (directory, credentials, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (directory) DO NOTHING")
            .bind(directory).bind(credentials).bind(now).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Publishes an HTTP-01 answer until `expires_at`.
    pub async fn put_challenge(
        &self,
        token: &str,
        key_authorization: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO acme_challenges (token, key_authorization, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization, \
             expires_at = excluded.expires_at")
            .bind(token).bind(key_authorization).bind(expires_at).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The live HTTP-01 answer for `token`.
    pub async fn challenge(&self, token: &str, now: i64) -> Result<Option<String>, StoreError> {
        on_pool!(self, p => {
            let row = sqlx::query(
                "SELECT key_authorization FROM acme_challenges WHERE token = $1 AND expires_at > $2")
                .bind(token).bind(now).fetch_optional(p).await?;
            row.map(|r| r.try_get("key_authorization")).transpose()
        })
        .map_err(Into::into)
    }

    /// Removes an answer once its challenge is done, and any that expired.
    pub async fn delete_challenge(&self, token: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "DELETE FROM acme_challenges WHERE token = $1 OR expires_at <= $2")
            .bind(token).bind(now).execute(p).await.map(|_| ()))?;
        Ok(())
    }
}

//! Webhook events, kept durably with their raw bytes, and developer
//! subscriptions with per-event acknowledgements: an event stays pending for a
//! subscription until its developer's local app answered 2xx.

use beam_proto::webhook::{Provider, WebhookEvent};
use sqlx::Row;

use super::{Pool, Store, StoreError, on_pool};

/// An event to store.
#[derive(Debug)]
pub struct NewWebhook<'a> {
    /// The environment it is for.
    pub environment_id: i64,
    /// Sender.
    pub provider: Provider,
    /// Provider event id (dedupe key).
    pub event_id: Option<&'a str>,
    /// Event type.
    pub event_type: Option<&'a str>,
    /// Method, path and query as received.
    pub method: &'a str,
    /// Path as received.
    pub path: &'a str,
    /// Query as received.
    pub query: Option<&'a str>,
    /// Ordered headers.
    pub headers: &'a [(String, String)],
    /// Raw body.
    pub body: &'a [u8],
    /// Whether the production signature matched.
    pub verified: bool,
    /// The generic HMAC scheme it is signed in (provider `hmac` only).
    pub hmac: Option<&'a beam_proto::webhook::HmacScheme>,
    /// Unix ms.
    pub received_at: i64,
}

/// An event in the history: everything but headers and body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookSummary {
    /// Server-side id.
    pub id: i64,
    /// Sender (`stripe`, `svix`, `github`, `shopify`, `slack`, `twilio`,
    /// `paddle`, `linear`, `hmac`, `paypal`).
    #[schema(value_type = String)]
    pub provider: Provider,
    /// Provider event id.
    pub event_id: Option<String>,
    /// Event type.
    pub event_type: Option<String>,
    /// Method as received.
    pub method: String,
    /// Path as received.
    pub path: String,
    /// Body bytes.
    pub size: i64,
    /// Production signature checked.
    pub verified: bool,
    /// Unix ms.
    pub received_at: i64,
    /// The highest local status the user's subscriptions acknowledged.
    pub delivered_status: Option<u16>,
}

/// A developer's subscription to an environment's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// Subscription id.
    pub id: i64,
    /// Events with a larger id belong to it.
    pub start_after: i64,
}

const COLUMNS: &str = "e.id, e.provider, e.event_id, e.event_type, e.method, e.path, e.query, \
                       e.headers, e.body, e.verified, e.received_at, e.hmac";

macro_rules! event_of {
    ($r:expr) => {{
        let r = $r;
        let provider: String = r.try_get("provider")?;
        let headers: String = r.try_get("headers")?;
        WebhookEvent {
            id: r.try_get("id")?,
            provider: Provider::parse(&provider)
                .ok_or_else(|| StoreError::Corrupt(format!("webhook provider {provider}")))?,
            event_id: r.try_get("event_id")?,
            event_type: r.try_get("event_type")?,
            method: r.try_get("method")?,
            path: r.try_get("path")?,
            query: r.try_get("query")?,
            headers: serde_json::from_str(&headers)
                .map_err(|_| StoreError::Corrupt("webhook headers".into()))?,
            body: r.try_get("body")?,
            verified: r.try_get("verified")?,
            received_at: r.try_get("received_at")?,
            hmac: r
                .try_get::<Option<String>, _>("hmac")?
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(|_| StoreError::Corrupt("webhook hmac scheme".into()))?,
        }
    }};
}

impl Store {
    /// Stores an event; returns its id and whether it was a duplicate of one
    /// already stored with the same provider event id (then nothing is written).
    pub async fn insert_webhook(&self, e: &NewWebhook<'_>) -> Result<(i64, bool), StoreError> {
        let headers = serde_json::to_string(e.headers)
            .map_err(|_| StoreError::Corrupt("webhook headers".into()))?;
        let hmac = e
            .hmac
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| StoreError::Corrupt("webhook hmac scheme".into()))?;
        let inserted: Option<i64> = on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO webhook_events (environment_id, provider, event_id, event_type, method, \
                 path, query, headers, body, verified, received_at, size, hmac) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (environment_id, provider, event_id) DO NOTHING RETURNING id")
                .bind(e.environment_id).bind(e.provider.as_str()).bind(e.event_id)
                .bind(e.event_type).bind(e.method).bind(e.path).bind(e.query)
                .bind(&headers).bind(e.body).bind(e.verified).bind(e.received_at)
                .bind(e.body.len() as i64).bind(&hmac)
                .fetch_all(p).await?.into_iter().next()
                .map(|r| r.try_get("id")).transpose()?
        });
        if let Some(id) = inserted {
            return Ok((id, false));
        }
        let id: i64 = on_pool!(self, p => {
            sqlx::query(
                "SELECT id FROM webhook_events WHERE environment_id = $1 AND provider = $2 AND event_id = $3")
                .bind(e.environment_id).bind(e.provider.as_str()).bind(e.event_id)
                .fetch_one(p).await?.try_get("id")?
        });
        Ok((id, true))
    }

    /// The subscription `name` of a user on an environment, created on first
    /// use; a new one receives events stored after this moment.
    pub async fn webhook_subscription(
        &self,
        environment_id: i64,
        user_id: i64,
        name: &str,
        now: i64,
    ) -> Result<SubscriptionRow, StoreError> {
        on_pool!(self, p => {
            sqlx::query(
                "INSERT INTO webhook_subscriptions (environment_id, user_id, name, start_after, created_at) \
                 VALUES ($1, $2, $3, (SELECT COALESCE(MAX(id), 0) FROM webhook_events WHERE environment_id = $1), $4) \
                 ON CONFLICT (environment_id, user_id, name) DO NOTHING")
                .bind(environment_id).bind(user_id).bind(name).bind(now).execute(p).await?;
            let r = sqlx::query(
                "SELECT id, start_after FROM webhook_subscriptions \
                 WHERE environment_id = $1 AND user_id = $2 AND name = $3")
                .bind(environment_id).bind(user_id).bind(name).fetch_one(p).await?;
            Ok(SubscriptionRow { id: r.try_get("id")?, start_after: r.try_get("start_after")? })
        })
    }

    /// Events of the environment after id `after`, received at or after
    /// `min_received`, that subscription `sub` has not acknowledged; oldest first.
    pub async fn pending_webhooks(
        &self,
        environment_id: i64,
        sub: i64,
        after: i64,
        min_received: i64,
        limit: i64,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_events e WHERE e.environment_id = $1 AND e.id > $2 \
             AND e.received_at >= $3 AND NOT EXISTS (SELECT 1 FROM webhook_acks a \
             WHERE a.subscription_id = $4 AND a.event_id = e.id) ORDER BY e.id LIMIT $5"
        );
        on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(environment_id).bind(after).bind(min_received).bind(sub).bind(limit)
                .fetch_all(p).await? {
                out.push(event_of!(r));
            }
            Ok(out)
        })
    }

    /// Records that subscription `sub` delivered these events (of the same
    /// environment) with the given local statuses, in one transaction. Returns
    /// the ids that are not events of the environment.
    pub async fn ack_webhooks(
        &self,
        environment_id: i64,
        sub: i64,
        acks: &[(i64, u16)],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let mut unknown = Vec::new();
            for &(event, status) in acks {
                let n = sqlx::query(
                    "INSERT INTO webhook_acks (subscription_id, event_id, status, acked_at) \
                     SELECT $1, id, $2, $3 FROM webhook_events WHERE id = $4 AND environment_id = $5 \
                     ON CONFLICT (subscription_id, event_id) DO NOTHING")
                    .bind(sub).bind(i32::from(status)).bind(now).bind(event).bind(environment_id)
                    .execute(&mut *tx).await?.rows_affected();
                // Zero rows: unknown, or already acknowledged (a retried ack).
                if n == 0 && sqlx::query(
                        "SELECT 1 AS one FROM webhook_events WHERE id = $1 AND environment_id = $2")
                        .bind(event).bind(environment_id).fetch_optional(&mut *tx).await?.is_none() {
                    unknown.push(event);
                }
            }
            tx.commit().await?;
            Ok(unknown)
        })
    }

    /// One event of the environment.
    pub async fn webhook_event(
        &self,
        environment_id: i64,
        id: i64,
    ) -> Result<Option<WebhookEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhook_events e WHERE e.environment_id = $1 AND e.id = $2"
        );
        on_pool!(self, p => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(environment_id).bind(id).fetch_optional(p).await? {
                Some(r) => Ok(Some(event_of!(r))),
                None => Ok(None),
            }
        })
    }

    /// The environment's newest events (before id `before` when given), newest
    /// first, with the local status the user's subscriptions acknowledged.
    /// Bodies are not read: the size is stored.
    pub async fn recent_webhooks(
        &self,
        environment_id: i64,
        user_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<WebhookSummary>, StoreError> {
        on_pool!(self, p => {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT e.id, e.provider, e.event_id, e.event_type, e.method, e.path, e.size, \
                 e.verified, e.received_at, (SELECT MAX(a.status) FROM webhook_acks a \
                 JOIN webhook_subscriptions s ON s.id = a.subscription_id \
                 WHERE a.event_id = e.id AND s.user_id = $2) AS local_status \
                 FROM webhook_events e WHERE e.environment_id = $1 AND e.id < $3 \
                 ORDER BY e.id DESC LIMIT $4")
                .bind(environment_id).bind(user_id).bind(before.unwrap_or(i64::MAX)).bind(limit)
                .fetch_all(p).await? {
                let provider: String = r.try_get("provider")?;
                let status: Option<i32> = r.try_get("local_status")?;
                out.push(WebhookSummary {
                    id: r.try_get("id")?,
                    provider: Provider::parse(&provider)
                        .ok_or_else(|| StoreError::Corrupt(format!("webhook provider {provider}")))?,
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("event_type")?,
                    method: r.try_get("method")?,
                    path: r.try_get("path")?,
                    size: r.try_get("size")?,
                    verified: r.try_get("verified")?,
                    received_at: r.try_get("received_at")?,
                    delivered_status: status.and_then(|s| u16::try_from(s).ok()),
                });
            }
            Ok(out)
        })
    }

    /// Deletes events received before `before` (retention); returns how many.
    pub async fn purge_webhooks(&self, before: i64) -> Result<u64, StoreError> {
        Ok(on_pool!(self, p => {
            sqlx::query("DELETE FROM webhook_events WHERE received_at < $1")
                .bind(before).execute(p).await?.rows_affected()
        }))
    }
}

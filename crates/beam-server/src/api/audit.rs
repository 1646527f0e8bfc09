//! `GET /api/audit` and `GET /api/audit/export`: reading the audit log.
//! Admins (a token with the `admin` scope) read their organization's entries,
//! everyone else only their own. There is no route that changes an entry.

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Auth, Query};
use crate::accounts::auth::Principal;
use crate::accounts::scope::Scope;
use crate::audit::Entry;
use crate::state::State;
use crate::store::{AuditFilter, AuditRow};

/// Filters shared by listing and export.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this user's entries (e-mail; admins only, unless it is yours).
    #[serde(default)]
    pub user: Option<String>,
    /// Only this kind: `sync` also matches `sync.*` (`logs`, `sync`,
    /// `env.check`, `flags.read`, `flags.eval`, `health`, `webhook.replay`,
    /// `token`, `member`, `invitation`, `domain`, `project`, `signin`, …).
    #[serde(default)]
    pub kind: Option<String>,
    /// Only `PROJECT` or `PROJECT/ENVIRONMENT`.
    #[serde(default)]
    pub environment: Option<String>,
    /// From (unix ms, inclusive).
    #[serde(default)]
    pub since: Option<i64>,
    /// Until (unix ms, exclusive).
    #[serde(default)]
    pub until: Option<i64>,
    /// Listing: the `next_cursor` of the previous page (entries older than it).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Export: only entries after this id (for incremental pulls into a SIEM).
    #[serde(default)]
    pub after: Option<i64>,
    /// Listing: entries per page, 1-1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One page of entries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditRow>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The filter `q` means for `p`: its organization always; its own entries
/// unless it holds `admin`.
fn filter_for(p: &Principal, q: &AuditParams) -> Result<AuditFilter, ApiError> {
    let admin = p.allows(Scope::Admin);
    let mut f = AuditFilter {
        org_id: p.org_id,
        since: q.since,
        until: q.until,
        ..AuditFilter::default()
    };
    if !admin {
        f.user_id = Some(p.user_id);
    }
    // A member naming someone else gets nothing rather than an error: their
    // own id is already the filter, so no other person's entry can match.
    f.user_email = q.user.as_ref().map(|u| u.trim().to_ascii_lowercase());
    if let Some(kind) = &q.kind {
        if kind.is_empty()
            || kind.len() > 64
            || !kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
        {
            return Err(ApiError::bad_request(
                "kind is a word like sync, logs, env.check or token.create",
            ));
        }
        f.kind = Some(kind.clone());
    }
    if let Some(env) = &q.environment {
        match env.split_once('/') {
            Some((p, e)) if !p.is_empty() && !e.is_empty() => {
                f.project = Some(p.into());
                f.environment = Some(e.into());
            }
            None if !env.is_empty() => f.project = Some(env.clone()),
            _ => {
                return Err(ApiError::bad_request(
                    "environment is PROJECT or PROJECT/ENVIRONMENT",
                ));
            }
        }
    }
    Ok(f)
}

/// The audit log, newest first: parity access (logs, sync, env checks,
/// flags, health, webhook replays) and administrative changes (tokens,
/// members, invitations, domains, projects, sign-ins). Each entry: time,
/// user, token, organization, project/environment, source address, outcome
/// (`ok`, `denied`, `refused`, `failed`) and details (names, counts and
/// verdicts; never values). Admins see their organization's entries, others
/// their own.
#[utoipa::path(get, path = "/api/audit", tag = "audit", security(("bearer" = [])), params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn list(
    AxumState(state): AxumState<Arc<State>>,
    Auth(p): Auth,
    Query(q): Query<AuditParams>,
) -> ApiResult<axum::Json<AuditPage>> {
    let f = filter_for(&p, &q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1-1000"));
    }
    let before = match &q.cursor {
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request("cursor is the next_cursor of a page"))?,
        ),
        None => None,
    };
    let mut entries = state
        .store
        .audit_entries(&f, before, None, limit + 1)
        .await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    let next_cursor = more
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(axum::Json(AuditPage {
        entries,
        next_cursor,
    }))
}

/// Every matching entry as NDJSON, oldest first (one entry per line), for a
/// SIEM; `after=ID` continues from the last id read. The export itself is
/// recorded.
#[utoipa::path(get, path = "/api/audit/export", tag = "audit", security(("bearer" = [])), params(AuditParams),
    responses((status = 200, description = "NDJSON: one AuditRow per line", content_type = "application/x-ndjson"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn export(
    AxumState(state): AxumState<Arc<State>>,
    Auth(p): Auth,
    Query(q): Query<AuditParams>,
) -> ApiResult<Response> {
    let f = filter_for(&p, &q)?;
    if q.cursor.is_some() || q.limit.is_some() {
        return Err(ApiError::bad_request(
            "export streams every matching entry: use after=ID to continue, not cursor or limit",
        ));
    }
    let entry = Entry::by(&p, "audit.export")
        .with("kind", q.kind.clone())
        .with("user", q.user.clone());
    let store = state.store.clone();
    // Pages of 1000 in id order, fetched as the reader takes them.
    let pages = futures_util::stream::unfold(
        (store, f, q.after.unwrap_or(0), false),
        |(store, f, after, done)| async move {
            if done {
                return None;
            }
            match store.audit_entries(&f, None, Some(after), 1000).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map_or(after, |r| r.id);
                    let full = rows.len() == 1000;
                    let mut buf = Vec::with_capacity(rows.len() * 256);
                    for r in &rows {
                        // Serializing a plain struct of strings and numbers cannot fail.
                        let _ = serde_json::to_writer(&mut buf, r);
                        buf.push(b'\n');
                    }
                    Some((Ok(bytes::Bytes::from(buf)), (store, f, last, !full)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    let line = format!(
                        "{{\"error\":\"the store failed; continue with after={after}\"}}\n"
                    );
                    Some((
                        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line)),
                        (store, f, after, true),
                    ))
                }
            }
        },
    );
    let body = state
        .audit
        .stream(entry, "entries", axum::body::Body::from_stream(pages));
    let mut out = Response::new(body);
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    out.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(out.into_response())
}

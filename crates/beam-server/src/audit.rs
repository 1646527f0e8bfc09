//! The audit log: who looked at what in production and who changed what.
//!
//! Handlers describe what happened as an [`Entry`] and hand it to [`Audit`],
//! which queues it; one writer task appends queued entries in batches (one
//! transaction per batch, at most every [`FLUSH_EVERY`]), so recording costs a
//! channel send on the path it records. Nothing is dropped: when the queue is
//! full, the entry waits in a task of its own for room. Entries carry names,
//! counts and verdicts, never values, fingerprints or secrets.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use axum::http::StatusCode;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::accounts::auth::Principal;
use crate::store::{NewAuditEntry, Store, now_ms};

/// How long entries wait to be written together.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Entries per transaction at most.
const BATCH: usize = 512;
/// Entries queued before [`Audit::record`] parks one in a task.
const QUEUE: usize = 8192;

/// One thing that happened, before it is written.
#[derive(Debug, Clone)]
pub(crate) struct Entry(NewAuditEntry);

impl Entry {
    /// `kind` done by `p` (its user, token, organization and address).
    pub(crate) fn by(p: &Principal, kind: &str) -> Self {
        Entry(NewAuditEntry {
            at: now_ms(),
            org_id: p.org_id,
            user_id: Some(p.user_id),
            token_id: Some(p.token_id),
            kind: kind.to_string(),
            project: None,
            environment: None,
            source: p.ip.to_string(),
            outcome: "ok".into(),
            detail: json!({}),
        })
    }

    /// `kind` in `org_id` by `user_id` without a token (sign-ins).
    pub(crate) fn user(org_id: i64, user_id: i64, ip: IpAddr, kind: &str) -> Self {
        Entry(NewAuditEntry {
            at: now_ms(),
            org_id,
            user_id: Some(user_id),
            token_id: None,
            kind: kind.to_string(),
            project: None,
            environment: None,
            source: ip.to_string(),
            outcome: "ok".into(),
            detail: json!({}),
        })
    }

    /// In `project/environment`.
    pub(crate) fn env(mut self, project: &str, environment: &str) -> Self {
        self.0.project = Some(project.to_string());
        self.0.environment = Some(environment.to_string());
        self
    }

    /// Sets a detail field.
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(m) = &mut self.0.detail {
            m.insert(key.to_string(), value.into());
        }
        self
    }

    /// The token that made the call (a sign-in's new session).
    pub(crate) fn token(mut self, token_id: i64) -> Self {
        self.0.token_id = Some(token_id);
        self
    }

    /// The outcome of an answer with `status`: `ok`, `denied` (401/403),
    /// `refused` (another 4xx, or 429) or `failed` (5xx); the status is kept
    /// in the details when it is not a success.
    pub(crate) fn status(mut self, status: StatusCode) -> Self {
        self.0.outcome = outcome_of(status).into();
        if !status.is_success() {
            self = self.with("status", status.as_u16());
        }
        self
    }
}

/// An entry's details in one short line: `key=value` pairs (the dashboard's
/// audit table; `beam audit` prints the same).
pub fn summary(detail: &Value) -> String {
    let Some(m) = detail.as_object() else {
        return String::new();
    };
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The outcome word for an HTTP status.
pub(crate) fn outcome_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=399 => "ok",
        401 | 403 => "denied",
        400..=499 => "refused",
        _ => "failed",
    }
}

/// The queue into the audit log (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Audit {
    tx: mpsc::Sender<NewAuditEntry>,
}

impl Audit {
    /// A queue and the receiving end for [`writer`].
    pub(crate) fn new() -> (Self, mpsc::Receiver<NewAuditEntry>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Audit { tx }, rx)
    }

    /// Queues `entry`; never blocks the caller and never drops it (a full
    /// queue parks it in a task until the writer catches up).
    pub(crate) fn record(&self, entry: Entry) {
        match self.tx.try_send(entry.0) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(e)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(e).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(e)) => {
                // Only after shutdown: say so rather than lose it silently.
                tracing::warn!(kind = %e.kind, org = e.org_id, "audit entry after the audit writer stopped");
            }
        }
    }

    /// Records `entry` with the outcome of `result`, and returns `result`.
    pub(crate) fn outcome<T>(
        &self,
        entry: Entry,
        result: Result<T, crate::api::error::ApiError>,
    ) -> Result<T, crate::api::error::ApiError> {
        let status = match &result {
            Ok(_) => StatusCode::OK,
            Err(e) => e.status,
        };
        self.record(entry.status(status));
        result
    }

    /// Records a streamed answer: on success, when its body ends (see
    /// [`Audit::stream`]); on an error, at once.
    pub(crate) fn streamed(
        &self,
        entry: Entry,
        count_as: &'static str,
        result: Result<axum::response::Response, crate::api::error::ApiError>,
    ) -> Result<axum::response::Response, crate::api::error::ApiError> {
        match result {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let entry = entry.status(parts.status);
                Ok(axum::response::Response::from_parts(
                    parts,
                    self.stream(entry, count_as, body),
                ))
            }
            Err(e) => {
                self.record(entry.status(e.status));
                Err(e)
            }
        }
    }

    /// A streamed answer's body that records `entry` when the stream ends
    /// (finished, cut by the reader, or revoked), with how long it was open
    /// and how many lines (`count_as`: `lines`, `rows`) it carried.
    pub(crate) fn stream(
        &self,
        entry: Entry,
        count_as: &'static str,
        body: axum::body::Body,
    ) -> axum::body::Body {
        axum::body::Body::new(Counted {
            inner: body,
            lines: Arc::new(AtomicU64::new(0)),
            last: b'\n',
            on_end: Some((self.clone(), entry, count_as, Instant::now())),
        })
    }
}

pin_project_lite::pin_project! {
    /// Counts non-empty lines of a body (keep-alive empty lines are not
    /// lines of content); records the entry on drop.
    struct Counted {
        #[pin]
        inner: axum::body::Body,
        lines: Arc<AtomicU64>,
        last: u8,
        on_end: Option<(Audit, Entry, &'static str, Instant)>,
    }

    impl PinnedDrop for Counted {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some((audit, entry, count_as, opened)) = this.on_end.take() {
                let n = this.lines.load(Ordering::Relaxed);
                audit.record(
                    entry
                        .with(count_as, n)
                        .with("duration_ms", opened.elapsed().as_millis() as u64),
                );
            }
        }
    }
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let mut n = 0u64;
            for b in data.iter() {
                if *b == b'\n' && *this.last != b'\n' {
                    n += 1;
                }
                *this.last = *b;
            }
            this.lines.fetch_add(n, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Appends queued entries in batches until `shutdown`, then writes what is
/// left. A failed write is retried (the entries are kept) with a pause, so a
/// database restart delays entries without losing them.
pub(crate) async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<NewAuditEntry>,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<NewAuditEntry> = Vec::with_capacity(BATCH);
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n == 0,
            () = shutdown.cancelled() => true,
        };
        if !stopping {
            // Let a burst gather into one transaction.
            tokio::select! {
                () = tokio::time::sleep(FLUSH_EVERY) => {}
                () = shutdown.cancelled() => {}
            }
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let mut tries = 0u32;
        while !batch.is_empty() {
            match store.append_audit(&batch).await {
                Ok(()) => batch.clear(),
                Err(e) => {
                    tries += 1;
                    tracing::warn!(error = %e, entries = batch.len(), "could not write the audit log; retrying");
                    if stopping && tries >= 3 {
                        tracing::error!(
                            entries = batch.len(),
                            "audit entries not written at shutdown"
                        );
                        batch.clear();
                    } else {
                        tokio::time::sleep(Duration::from_secs(1).min(FLUSH_EVERY * tries)).await;
                    }
                }
            }
        }
        if stopping {
            // Whatever arrived while stopping, then done.
            while let Ok(e) = rx.try_recv() {
                batch.push(e);
            }
            if !batch.is_empty()
                && let Err(e) = store.append_audit(&batch).await
            {
                tracing::error!(error = %e, entries = batch.len(), "audit entries not written at shutdown");
            }
            return;
        }
    }
}

//! `GET /events/tunnels`: the live tunnel list as server-sent events. Every
//! two seconds the stream reads the organization's tunnels through the same
//! API handler as `GET /api/tunnels` (the store is shared by every node, so
//! the list is cluster-wide) and sends only what changed: `tunnel` with a
//! row's cells, `gone` with the id of a row that left. The session is checked
//! again on every round, so a signed-out or revoked session's stream ends
//! with an `expired` event within two seconds.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::session::Viewer;
use super::view::TunnelLine;
use crate::api::extract::client_ip;
use crate::state::State;
use crate::store::TokenKind;

/// How often a stream looks for changes.
const EVERY: Duration = Duration::from_secs(2);
/// Open streams per user at most: each costs a query per round, and one
/// person's forgotten tabs must not load the store for everyone.
const PER_USER: u32 = 8;

/// One SSE message.
fn event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// `GET /events/tunnels`.
pub(crate) async fn tunnels(
    AxumState(state): AxumState<Arc<State>>,
    viewer: Viewer,
    parts: axum::http::request::Parts,
) -> Response {
    let Some(slot) = state.live.acquire(viewer.principal.user_id, PER_USER) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many live views are open for your account; close some dashboard tabs",
        )
            .into_response();
    };
    let ip = client_ip(&parts);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(16);
    let shutdown = state.shutdown.clone();
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let _slot = slot;
        let mut seen: HashMap<i64, TunnelLine> = HashMap::new();
        let mut tick = tokio::time::interval(EVERY);
        let mut rounds = 0u32;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
                () = tx.closed() => return,
            }
            rounds += 1;
            let live = state
                .auth
                .authenticate(viewer.token.expose(), ip, &[TokenKind::Session])
                .await
                .is_ok();
            if !live {
                let _ = tx
                    .send(Ok(event("expired", "your session has ended")))
                    .await;
                return;
            }
            let lines = match super::pages::tunnel_lines(&state, &viewer, false).await {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Ok(event("trouble", &e.message))).await;
                    continue;
                }
            };
            let mut out = Vec::new();
            let mut now: HashMap<i64, TunnelLine> = HashMap::with_capacity(lines.len());
            for l in lines {
                if seen.get(&l.id) != Some(&l) {
                    out.push(event(
                        "tunnel",
                        &serde_json::to_string(&l).unwrap_or_default(),
                    ));
                }
                now.insert(l.id, l);
            }
            for id in seen.keys().filter(|id| !now.contains_key(id)) {
                out.push(event("gone", &id.to_string()));
            }
            seen = now;
            if out.is_empty() && rounds.is_multiple_of(8) {
                // A comment keeps proxies from closing an idle stream.
                out.push(Bytes::from_static(b": idle\n\n"));
            }
            for b in out {
                if tx.send(Ok(b)).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

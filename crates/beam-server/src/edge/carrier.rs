//! A tunnel connection carried inside a WebSocket on the edge
//! (`GET /_beam/tunnel`, upgraded): for clients whose network lets only
//! HTTPS to the server's web port out, or who reach the server through an
//! HTTP-only intermediary. After the upgrade the WebSocket's bytes are
//! exactly a tunnel connection's (preamble, hello, HTTP/2), served by the
//! tunnel acceptor like one that arrived on the tunnel port.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::error::EdgeError;
use super::proxy::VisitorConn;
use crate::body::{Body, empty};
use crate::state::State;

/// Answers the WebSocket upgrade and hands the carried connection to the
/// tunnel acceptor. Plain-HTTP carriers follow the rule of plaintext tunnels:
/// loopback peers only, unless the server runs with `--insecure`.
pub(super) fn accept(
    state: &Arc<State>,
    conn: &VisitorConn,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, EdgeError> {
    if !conn.secure && !crate::tunnel::plaintext_allowed(conn.peer, state.cfg.insecure) {
        return Err(EdgeError::PlaintextCarrier);
    }
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(EdgeError::BadCarrier)?;
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|_| EdgeError::BadCarrier)?;
    let upgrade = hyper::upgrade::on(&mut req);
    let (state, peer) = (state.clone(), conn.peer);
    state.tasks.clone().spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(%peer, error = %e, "carrier upgrade failed"),
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let io = beam_proto::ws::WsIo::new(ws);
        let deadline = Instant::now() + beam_proto::HANDSHAKE_TIMEOUT;
        let shutdown = state.shutdown.clone();
        crate::tunnel::handshake(state, io, peer, deadline, shutdown).await;
    });
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    beam_proto::headers::set_websocket_upgrade(resp.headers_mut());
    resp.headers_mut()
        .insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(resp)
}

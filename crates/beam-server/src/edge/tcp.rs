//! Public side of a TCP tunnel: each visitor connection on the tunnel's port becomes
//! one HTTP/2 `CONNECT` stream to the client, spliced both ways.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body::empty;
use crate::registry::Tunnel;
use crate::state::State;

/// Accepts visitors on `listener` until the tunnel ends (`stop`).
pub(crate) async fn serve(
    listener: Arc<TcpListener>,
    tunnel: Arc<Tunnel>,
    state: Arc<State>,
    stop: CancellationToken,
) {
    while let Some((visitor, peer)) = crate::accept::next(&listener, &stop, "tcp tunnel").await {
        // Paused or over its bandwidth: the connection is closed at once.
        if tunnel.is_paused() {
            state.metrics.error("paused");
            continue;
        }
        if state.over_quota(tunnel.org_id) {
            state.metrics.error("over_quota");
            continue;
        }
        let public = visitor.local_addr().unwrap_or(peer);
        let (tunnel, state, stop) = (tunnel.clone(), state.clone(), stop.clone());
        state.tasks.clone().spawn(async move {
            relay(&state, &tunnel, visitor, (peer, public), stop).await;
        });
    }
}

/// One visitor connection of TCP tunnel `tunnel` (arrived at `public` from
/// `peer`, here or on another node) as a `CONNECT` stream to its client,
/// spliced until either side closes or `stop` fires.
pub(crate) async fn relay<IO>(
    state: &State,
    tunnel: &Tunnel,
    mut visitor: IO,
    (peer, public): (SocketAddr, SocketAddr),
    stop: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut sender = tunnel.sender.clone();
    let name = &tunnel.name;
    // The client ignores the authority and connects to its own configured
    // target: the server can never steer a client to another address.
    let req = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("tcp.beam:{name}"))
        .header(beam_proto::headers::FORWARDED_FOR, peer.ip().to_string())
        .header(beam_proto::headers::PEER_ADDR, peer.to_string())
        .header(beam_proto::headers::PUBLIC_ADDR, public.to_string())
        .body(empty());
    let Ok(req) = req else { return };
    let resp = match sender.send_request(req).await {
        Ok(r) if r.status() == StatusCode::OK => r,
        Ok(r) => {
            tracing::debug!(port = %name, status = %r.status(), "client refused tcp stream");
            state.metrics.error("local_refused");
            return;
        }
        Err(e) => {
            tracing::debug!(port = %name, error = %e, "tcp stream open failed");
            state.metrics.error("tunnel_gone");
            return;
        }
    };
    let upgraded = match hyper::upgrade::on(resp).await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "tcp stream upgrade failed");
            return;
        }
    };
    let mut tunnel_io = TokioIo::new(upgraded);
    let copy = beam_proto::splice_idle(&mut visitor, &mut tunnel_io, state.cfg.idle_timeout);
    tokio::select! {
        done = copy => {
            state.metrics.bytes_in().inc_by(done.up);
            state.metrics.bytes_out().inc_by(done.down);
            state.recorder.add_bytes(tunnel.id, tunnel.org_id, done.up, done.down);
            if let Err(e) = done.result {
                tracing::debug!(error = %e, "tcp stream ended");
            }
        }
        () = stop.cancelled() => {}
    }
}

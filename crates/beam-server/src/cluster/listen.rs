//! The node listener (`--node-addr`): other nodes of the cluster dial it to
//! reach tunnels this node holds. Each connection is TLS, then the secret's
//! proofs (`auth`), then HTTP/2 where the dialing node opens one stream per
//! forwarded visitor connection or TCP stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::wire::{NODE_AGENT, NODE_HOPS, NODE_PEER, NODE_SECURE, TCP, VISITOR};
use crate::body::{Body, bare};
use crate::edge::route::{Route, route};
use crate::state::State;

/// How long TLS and the proofs may take on an accepted connection.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// Accepts node connections until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    state: Arc<State>,
    api: axum::Router,
    shutdown: CancellationToken,
) {
    while let Some((tcp, peer)) = crate::accept::next(&listener, &shutdown, "node").await {
        let (state, api, tls, shutdown) =
            (state.clone(), api.clone(), tls.clone(), shutdown.clone());
        state.tasks.clone().spawn(async move {
            match tokio::time::timeout(HANDSHAKE, trust(&state, &tls, tcp)).await {
                Ok(Ok(io)) => serve_node(state, api, io, peer, shutdown).await,
                Ok(Err(e)) => {
                    state.metrics.error("node_refused");
                    tracing::warn!(%peer, error = %e, "node connection refused");
                }
                Err(_) => tracing::debug!(%peer, "node handshake timed out"),
            }
        });
    }
}

/// TLS, then the cluster secret's proofs.
async fn trust(
    state: &State,
    tls: &TlsAcceptor,
    tcp: TcpStream,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, super::auth::AuthError> {
    let mut io = tls.accept(tcp).await?;
    let ekm = super::auth::exporter(io.get_ref().1)?;
    let secret = state
        .cluster
        .as_ref()
        .map(|c| c.cfg.secret.expose().as_bytes().to_vec())
        .unwrap_or_default();
    super::auth::accept(&mut io, &secret, &ekm).await?;
    Ok(io)
}

/// HTTP/2 from a trusted node.
async fn serve_node(
    state: Arc<State>,
    api: axum::Router,
    io: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let svc = {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        service_fn(move |req| {
            let (state, api, shutdown) = (state.clone(), api.clone(), shutdown.clone());
            async move {
                let resp = match req.headers().get(NODE_AGENT).cloned() {
                    Some(env) => super::agents::serve(&state, req, &env).await,
                    None => stream(state, api, req, shutdown),
                };
                Ok::<_, std::convert::Infallible>(resp)
            }
        })
    };
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(beam_proto::H2_STREAM_WINDOW)
        .initial_connection_window_size(beam_proto::H2_CONNECTION_WINDOW)
        .max_frame_size(beam_proto::MAX_H2_FRAME)
        .enable_connect_protocol()
        // Every visitor connection forwarded here is a stream: allow as many
        // as a busy edge has, and their resets (visitors hanging up).
        .max_concurrent_streams(16_384)
        .max_pending_accept_reset_streams(16_384)
        .max_local_error_reset_streams(None)
        .max_send_buf_size(1 << 20)
        .keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r {
            tracing::debug!(%peer, error = %e, "node connection ended");
        },
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// One stream from another node: a visitor connection (`beam-visitor`) or
/// a TCP tunnel stream (`beam-tcp`) for a tunnel this node holds; `404` when
/// it holds no such tunnel (the other node looks again). (Relayed agent
/// requests, marked `beam-node-agent`, go to `agents::serve` instead.)
fn stream(
    state: Arc<State>,
    api: axum::Router,
    mut req: Request<Incoming>,
    shutdown: CancellationToken,
) -> Response<Body> {
    let protocol = req
        .extensions()
        .get::<hyper::ext::Protocol>()
        .map(|p| p.as_str().to_string());
    if req.method() != Method::CONNECT {
        return bare(StatusCode::BAD_REQUEST);
    }
    let peer = req
        .headers()
        .get(NODE_PEER)
        .and_then(|v| v.to_str().ok()?.parse::<SocketAddr>().ok());
    let Some(peer) = peer else {
        return bare(StatusCode::BAD_REQUEST);
    };
    match protocol.as_deref() {
        Some(VISITOR) => {
            let host = req
                .uri()
                .authority()
                .map(|a| a.host().trim_end_matches('.').to_ascii_lowercase())
                .unwrap_or_default();
            let held = match route(&host, &state.cfg.domain) {
                Route::Tunnel(name) => state.registry.http(&name).is_some_and(|t| !t.is_moving()),
                Route::Unknown => state.registry.domain(&host).is_some_and(|t| !t.is_moving()),
                Route::Api => false,
            };
            if !held {
                return bare(StatusCode::NOT_FOUND);
            }
            let secure = req.headers().get(NODE_SECURE).is_some_and(|v| v == "1");
            let hops = req
                .headers()
                .get(NODE_HOPS)
                .and_then(|v| v.to_str().ok()?.parse::<u8>().ok())
                .unwrap_or(super::MAX_HOPS);
            let on = hyper::upgrade::on(&mut req);
            state.tasks.clone().spawn(async move {
                match on.await {
                    Ok(io) => {
                        let io = TokioIo::new(io);
                        crate::edge::accept::serve_forwarded(
                            state, api, io, peer, secure, hops, shutdown,
                        )
                        .await
                    }
                    Err(e) => tracing::debug!(error = %e, "forwarded visitor stream failed"),
                }
            });
            bare(StatusCode::OK)
        }
        Some(TCP) => super::tcp::accept_stream(&state, req, peer),
        _ => bare(StatusCode::BAD_REQUEST),
    }
}

//! Accepting visitors: one task per connection, TLS first on the HTTPS
//! listener, HTTP/1.1 with header limits and timeouts, graceful at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::State;

/// Accepts visitor connections until `shutdown`; each connection is served on its
/// own task (after a TLS handshake when `tls` is set), and asked to finish
/// gracefully at shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    api: axum::Router,
    shutdown: CancellationToken,
) {
    let what = if tls.is_some() { "https" } else { "public" };
    while let Some((stream, peer)) = crate::accept::next(&listener, &shutdown, what).await {
        let state = state.clone();
        let api = api.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        state.tasks.clone().spawn(async move {
            match tls {
                None => serve_conn(state, api, stream, peer, false, shutdown).await,
                Some(acceptor) => {
                    // The handshake gets the same budget as request headers.
                    let limit = state.cfg.header_read_timeout;
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_conn(state, api, tls, peer, true, shutdown).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "visitor TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "visitor TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves HTTP/1.1 on one visitor connection.
async fn serve_conn<IO>(
    state: Arc<State>,
    api: axum::Router,
    io: IO,
    peer: SocketAddr,
    secure: bool,
    shutdown: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc_state = state.clone();
    let conn = Arc::new(super::proxy::VisitorConn {
        peer,
        secure,
        link: Default::default(),
    });
    let svc = service_fn(move |req| {
        super::route::handle(svc_state.clone(), api.clone(), conn.clone(), req)
    });
    let (io, watcher) = crate::edge::io::watch(io);
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.cfg.header_read_timeout)
        .max_header_size(state.cfg.max_header_bytes)
        .max_headers(128)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r {
            if e.is_timeout() {
                state.metrics.error("header_timeout");
                watcher.timed_out(std::time::Duration::from_secs(1)).await;
            } else {
                tracing::debug!(%peer, error = %e, "visitor connection ended with error");
            }
        },
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

//! The tunnel listener: accepts client connections (TLS or, on loopback,
//! plaintext), runs the handshake, claims the public name, then turns the
//! connection into reverse HTTP/2 (this server is the HTTP/2 client) and keeps
//! the tunnel registered until the connection ends.
//!
//! - [`accept`]: sniffs TLS, plaintext or the API, reads and authenticates the hello.
//! - [`session`]: an HTTP or TCP tunnel's life: admit → claim → record →
//!   welcome → register → serve → finish.
//! - [`agent`]: a production agent's session (no public name).
//! - [`claim`]: claiming a subdomain or port through the store, released once.
//! - [`names`]: validating requested subdomains and proposing random ones.

mod accept;
pub(crate) mod agent;
mod claim;
pub mod names;
mod session;

pub(crate) use accept::{handshake, plaintext_allowed, serve};

use beam_proto::{Refusal, Reply, write_frame};
use hyper::client::conn::http2::{Connection, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::body::{Body, empty};
use crate::state::State;

/// Writes a refusal and closes. Errors are ignored: the peer may already be gone.
async fn refuse<IO: AsyncWrite + Unpin>(io: &mut IO, refusal: Refusal) {
    tracing::debug!(code = ?refusal.code, message = %refusal.message, "tunnel refused");
    let _ = write_frame(io, &Reply::Refused(refusal)).await;
    let _ = io.shutdown().await;
}

/// The reverse HTTP/2 connection over a tunnel stream.
type H2<IO> = (
    SendRequest<Body>,
    Connection<TokioIo<IO>, Body, TokioExecutor>,
);

/// Roles flip after the Welcome: this side becomes the HTTP/2 client of the
/// connection.
async fn h2_handshake<IO>(state: &State, io: IO) -> hyper::Result<H2<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .initial_stream_window_size(beam_proto::H2_STREAM_WINDOW)
        .initial_connection_window_size(beam_proto::H2_CONNECTION_WINDOW)
        .max_frame_size(beam_proto::MAX_H2_FRAME)
        // Every visitor that hangs up mid-request makes us reset its stream; h2's
        // guard against peers provoking resets (1024) would then close the whole
        // tunnel under ordinary load. The resets are ours, caused by visitors.
        .max_local_error_reset_streams(None)
        .keep_alive_interval(state.cfg.keepalive_interval)
        .keep_alive_timeout(state.cfg.keepalive_timeout)
        .keep_alive_while_idle(true)
        .max_send_buf_size(1 << 20)
        .handshake(TokioIo::new(io))
        .await
}

/// Tells the client it is routable, so it reports "online" only when it is.
async fn send_ready(mut sender: SendRequest<Body>) {
    let _ = sender
        .send_request(beam_proto::Control::Ready.request(empty()))
        .await;
}

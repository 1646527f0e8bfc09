//! The accept step shared by every listener: next connection with `TCP_NODELAY`, or
//! `None` once the stop signal fires. Accept errors (out of file descriptors and the
//! like) are logged and retried after a short pause instead of ending the listener.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Waits for the next connection on `listener`, or `None` when `stop` is cancelled.
pub(crate) async fn next(
    listener: &TcpListener,
    stop: &CancellationToken,
    what: &'static str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    // Nagle + delayed ACK costs 40 ms per small write on every hop.
                    let _ = stream.set_nodelay(true);
                    return Some((stream, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, listener = what, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stop.cancelled() => return None,
        }
    }
}

//! Connections to the local service: TCP with `TCP_NODELAY`, plus TLS when the
//! target is `https` (`--https`, verified against the web PKI unless
//! `--insecure-upstream`). The same dialer serves plain requests (as a hyper
//! connector), WebSocket upgrades and TCP streams, so all three honour `--https`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;

use crate::config::{LocalTarget, TlsMode};
use crate::dial::{TunnelStream, dial};
use crate::error::ConnectError;

/// Dials the configured local target, never another address.
#[derive(Debug, Clone)]
pub struct LocalDialer {
    target: Arc<LocalTarget>,
    tls: TlsMode,
}

impl LocalDialer {
    /// A dialer for `target`; `insecure` accepts any certificate from an https target.
    pub fn new(target: LocalTarget, insecure: bool) -> Self {
        let tls = match (target.https, insecure) {
            (false, _) => TlsMode::Plaintext,
            (true, false) => TlsMode::WebPki,
            (true, true) => TlsMode::AnyCertificate,
        };
        Self {
            target: Arc::new(target),
            tls,
        }
    }

    /// Opens one connection (TLS offering `http/1.1` for https targets).
    pub async fn dial(&self) -> Result<TunnelStream, ConnectError> {
        self.dial_alpn(&[b"http/1.1"]).await
    }

    /// Opens one connection, offering `alpn` when the target speaks TLS.
    pub async fn dial_alpn(&self, alpn: &[&[u8]]) -> Result<TunnelStream, ConnectError> {
        dial(&self.target.authority(), &self.tls, alpn).await
    }
}

/// A local connection as hyper's client wants it.
pub struct LocalIo(TokioIo<TunnelStream>);

impl Connection for LocalIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for LocalIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for LocalIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The dialer as a connector for hyper's pooled client. The request URI is
/// ignored: the destination is always the configured target.
impl tower_service::Service<http::Uri> for LocalDialer {
    type Response = LocalIo;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<LocalIo, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let me = self.clone();
        Box::pin(async move { me.dial().await.map(|s| LocalIo(TokioIo::new(s))) })
    }
}

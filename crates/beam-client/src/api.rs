//! A small client for the server's REST API, used by the CLI (`beam login`,
//! `beam list`, `beam domains`, …). It reaches the API on the tunnel port over the
//! same TLS (and pinned certificate) as tunnels, so the bearer token never
//! travels unencrypted, with one HTTP/1.1 connection per call.

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use beam_proto::Secret;

use crate::config::TlsMode;
use crate::dial::dial_via;
use crate::egress::HttpProxy;
use crate::error::ConnectError;

/// Largest API response the client reads.
const MAX_RESPONSE: usize = 8 << 20;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The server answered with an error; `message` is meant for the user.
    #[error("{message} ({status}, {code})")]
    Status {
        /// HTTP status.
        status: StatusCode,
        /// Machine-readable code from the error body.
        code: String,
        /// Human-readable message from the error body.
        message: String,
    },
    /// The exchange failed below HTTP, or the body was not what the API returns.
    #[error("API call failed: {0}")]
    Protocol(String),
}

/// Where and how to reach the API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// Tunnel listener address, `host:port`, or several separated by commas.
    pub server: String,
    /// Transport protection (same as tunnels).
    pub tls: TlsMode,
    /// Bearer token.
    pub token: Option<Secret>,
    /// The HTTP proxy to reach the server through, if any.
    pub egress: Option<HttpProxy>,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl ApiClient {
    /// Calls `method path` with an optional JSON body and decodes the JSON answer.
    /// `204 No Content` decodes as JSON `null`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ApiError> {
        read_json(self.send(method, path, body).await?).await
    }

    /// `GET path` for a streamed answer (NDJSON logs): the response with its
    /// body unread, or the API's error.
    pub async fn stream(
        &self,
        path: &str,
    ) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
        self.send(Method::GET, path, None::<&()>).await
    }

    /// Connects to the first address of `server` that answers (several when
    /// the server runs as a cluster); the first failure when none does.
    async fn dial(&self) -> Result<crate::dial::TunnelStream, ConnectError> {
        let alpn = [beam_proto::API_ALPN];
        let mut first_error = None;
        for server in crate::config::servers(&self.server) {
            match dial_via(server, &self.tls, &alpn, self.egress.as_ref()).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| ConnectError::Unreachable {
            server: self.server.clone(),
            source: std::io::ErrorKind::InvalidInput.into(),
        }))
    }

    /// Opens one HTTP/1.1 connection to the API.
    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, ApiError> {
        let stream = self.dial().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ApiError::Protocol(e.to_string()))?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Sends one request on a new connection; a non-2xx answer becomes
    /// [`ApiError::Status`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
        let mut sender = self.open().await?;
        self.request(&mut sender, method, path, body).await
    }

    /// Sends one request on `sender`.
    async fn request(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
        let proto = |e: &dyn std::fmt::Display| ApiError::Protocol(e.to_string());
        let payload = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(|e| proto(&e))?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "beam-api")
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", t.expose()));
        }
        let req = req.body(Full::new(payload)).map_err(|e| proto(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| proto(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE);
        let bytes = limited.collect().await.map_err(|e| proto(&e))?.to_bytes();
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Err(ApiError::Status {
                status,
                code: b.error.code,
                message: b.error.message,
            }),
            Err(_) => Err(ApiError::Status {
                status,
                code: "http".into(),
                message: format!("the server answered {status}"),
            }),
        }
    }

    /// A client that keeps one connection open across calls (many small calls
    /// in a row, like webhook acknowledgements, skip a TLS handshake each).
    pub fn keep_alive(&self) -> KeptConnection {
        KeptConnection {
            client: self.clone(),
            sender: None,
        }
    }
}

/// One API connection reused across calls, reopened when it breaks.
#[derive(Debug)]
pub struct KeptConnection {
    client: ApiClient,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl KeptConnection {
    /// Like [`ApiClient::call`], on the kept connection. A call that fails
    /// below HTTP on a reused connection is retried once on a fresh one, so
    /// only idempotent calls should go through here.
    pub async fn call<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ApiError> {
        let reused = self.sender.as_mut().is_some_and(|s| s.is_ready());
        if !reused {
            self.sender = Some(self.client.open().await?);
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(ApiError::Protocol("no connection".into()));
        };
        let resp = match self
            .client
            .request(sender, method.clone(), path, body)
            .await
        {
            Err(ApiError::Protocol(_)) if reused => {
                // The server closed the idle connection: once more on a new one.
                let mut fresh = self.client.open().await?;
                let r = self.client.request(&mut fresh, method, path, body).await;
                self.sender = Some(fresh);
                r
            }
            other => other,
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                if !matches!(e, ApiError::Status { .. }) {
                    self.sender = None;
                }
                return Err(e);
            }
        };
        read_json(resp).await
    }
}

/// Reads a JSON answer (at most [`MAX_RESPONSE`] bytes); an empty body (204)
/// decodes as JSON `null`.
async fn read_json<T: DeserializeOwned>(
    resp: http::Response<hyper::body::Incoming>,
) -> Result<T, ApiError> {
    let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| ApiError::Protocol(e.to_string()))?
        .to_bytes();
    let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
    serde_json::from_slice(text).map_err(|e| ApiError::Protocol(format!("bad response: {e}")))
}

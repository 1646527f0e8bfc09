//! The agent's local ingest port (`beam agent --listen 127.0.0.1:7070`), for
//! apps that ship their own logs or forward a copy of the webhooks they
//! receive:
//! - `POST /ingest/logs`: NDJSON (or plain lines), parsed like captured output;
//!   answers `202 {"accepted": N}`.
//! - `POST /ingest/webhooks/{provider}`: the provider's request as the app got
//!   it (headers and raw body). When the agent holds that provider's signing
//!   secret the signature is verified here, in production; the event is then
//!   published to the server for developers.
//!
//! Bind it to loopback: anything that can reach it can publish.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use base64::Engine;
use beam_proto::Secret;
use beam_proto::logs::Source;
use beam_proto::webhook::{self, Provider};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::logs::LogBuffer;
use crate::logs::capture::emit;
use crate::logs::lines::LineSplitter;
use beam_client::ApiClient;

/// Largest forwarded webhook body (the server's default limit).
pub const MAX_WEBHOOK_BODY: usize = 1 << 20;

/// Where forwarded webhooks go, and the secrets that verify them.
#[derive(Debug, Clone)]
pub struct WebhookPublisher {
    /// The server's API, with the agent token.
    pub api: ApiClient,
    /// Project name.
    pub project: String,
    /// Environment name.
    pub environment: String,
    /// Production signing secrets by provider.
    pub secrets: HashMap<Provider, Secret>,
    /// How the generic `hmac` provider signs (its header, hash, encoding,
    /// prefix); the default scheme when `None`.
    pub hmac: Option<webhook::HmacScheme>,
}

/// What the ingest port feeds.
#[derive(Clone)]
pub struct Ingest {
    /// The agent's log buffer.
    pub logs: Arc<LogBuffer>,
    /// Webhook publishing, set once the agent has its token and secrets;
    /// until then the webhook route answers 503 and stores nothing.
    pub webhooks: Arc<std::sync::OnceLock<WebhookPublisher>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string() + "\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    reply(status, json!({ "error": message.into() }))
}

impl Ingest {
    /// Serves the ingest port on `listener` until `shutdown`.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let me = Arc::new(self);
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                () = &mut shutdown => return,
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "ingest accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let me = me.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move { Ok::<_, std::convert::Infallible>(me.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }

    /// One request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::POST, "/ingest/logs") => self.logs(req.into_body()).await,
            (&Method::POST, p) if p.starts_with("/ingest/webhooks/") => {
                let provider = &p["/ingest/webhooks/".len()..];
                self.webhook(provider.to_string(), req).await
            }
            (_, "/ingest/logs") => error(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
            _ => error(
                StatusCode::NOT_FOUND,
                "this agent serves POST /ingest/logs and POST /ingest/webhooks/{provider}",
            ),
        }
    }

    async fn logs(&self, mut body: Incoming) -> Response<Body> {
        let mut split = LineSplitter::default();
        let mut accepted = 0usize;
        let mut count = |line: &[u8]| {
            if !line.iter().all(u8::is_ascii_whitespace) {
                accepted += 1;
            }
            emit(&self.logs, line, Source::Ingest);
        };
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(data) = f.into_data() {
                        split.feed(&data, &mut count);
                    }
                }
                Err(e) => {
                    // Lines received before the break are kept.
                    split.finish(&mut count);
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("the request body broke off after {accepted} lines: {e}"),
                    );
                }
            }
        }
        split.finish(&mut count);
        reply(StatusCode::ACCEPTED, json!({ "accepted": accepted }))
    }

    async fn webhook(&self, provider: String, req: Request<Incoming>) -> Response<Body> {
        let Some(publisher) = self.webhooks.get() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent is not publishing yet (see its log); the event was not stored",
            );
        };
        let Some(provider) = Provider::parse(&provider) else {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "'{provider}' is not a provider beam knows ({})",
                    Provider::NAMES
                ),
            );
        };
        let (parts, body) = req.into_parts();
        let body = match http_body_util::Limited::new(body, MAX_WEBHOOK_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("webhook bodies are limited to {MAX_WEBHOOK_BODY} bytes"),
                );
            }
        };
        let headers = beam_proto::webhook::header_pairs(&parts.headers);
        // Twilio signs the URL it called, which only the app knows: it passes
        // it along in Beam-Request-Url.
        let urls: Vec<String> = webhook::header(&headers, "beam-request-url")
            .map(|u| vec![u.to_string()])
            .unwrap_or_default();
        let ctx = webhook::Context {
            urls: &urls,
            hmac: publisher.hmac.as_ref(),
        };
        let verified = match publisher.secrets.get(&provider) {
            Some(secret) => {
                let now_s = beam_proto::time::now_s();
                if let Err(e) =
                    webhook::verify_with(provider, secret.expose(), &headers, &body, now_s, &ctx)
                {
                    let e = match e {
                        webhook::SignatureError::NeedsUrl => {
                            "twilio signs the URL it called: send it in the Beam-Request-Url header"
                                .to_string()
                        }
                        e => e.to_string(),
                    };
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("signature check failed: {e}"),
                    );
                }
                true
            }
            None => false,
        };
        let event = json!({
            "provider": provider.as_str(),
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body": base64::engine::general_purpose::STANDARD.encode(&body),
            "verified": verified,
            "hmac": publisher.hmac.as_ref().filter(|_| provider == Provider::Hmac),
        });
        let path = format!(
            "/api/projects/{}/{}/webhooks/events",
            publisher.project, publisher.environment
        );
        match publisher
            .api
            .call::<serde_json::Value>(Method::POST, &path, Some(&event))
            .await
        {
            Ok(v) => reply(StatusCode::OK, v),
            Err(e) => error(
                StatusCode::BAD_GATEWAY,
                format!("the beam server did not take the event: {e}"),
            ),
        }
    }
}

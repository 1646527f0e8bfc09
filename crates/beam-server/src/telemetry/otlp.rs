//! The OTLP exporter: finished spans go into a bounded queue (a request never
//! waits for tracing, and a full queue drops spans, counted in
//! `beam_trace_spans_dropped_total`), and a background task sends them in
//! batches to an OpenTelemetry collector as OTLP/HTTP JSON
//! (`POST …/v1/traces`). Off unless an endpoint is configured.

use std::sync::Arc;
use std::time::Duration;

use beam_proto::Secret;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::trace::{Span, encode};

/// Most spans waiting to be sent.
const QUEUE: usize = 8192;
/// Most spans per request to the collector.
const BATCH: usize = 512;
/// How often a partial batch is sent.
const FLUSH: Duration = Duration::from_secs(1);
/// Longest wait for the collector's answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how traces are sent.
#[derive(Clone)]
pub struct OtlpConfig {
    /// The collector's traces URL (`http://HOST:4318/v1/traces`).
    pub endpoint: Uri,
    /// Extra request headers (a vendor's API key): values are secrets.
    pub headers: Vec<(HeaderName, Secret)>,
    /// `service.name` of the spans.
    pub service: String,
    /// Share of new traces recorded, 0.0 to 1.0.
    pub ratio: f64,
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint.to_string())
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("service", &self.service)
            .field("ratio", &self.ratio)
            .finish()
    }
}

/// Why an OTLP setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The endpoint is not an `http://` URL.
    #[error(
        "OTLP endpoint '{0}': give an http:// URL of a collector (e.g. http://127.0.0.1:4318); beam sends OTLP/HTTP JSON without TLS, so run the collector next to the server"
    )]
    Endpoint(String),
    /// A header is not `name=value`.
    #[error("OTEL_EXPORTER_OTLP_HEADERS: '{0}' is not name=value")]
    Header(String),
    /// The sampling ratio is not between 0 and 1.
    #[error("OTEL_TRACES_SAMPLER_ARG '{0}' is not a ratio between 0 and 1")]
    Ratio(String),
}

impl OtlpConfig {
    /// From the standard OpenTelemetry variables (`get` reads one):
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` is appended),
    /// `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k=v`), `OTEL_SERVICE_NAME`
    /// (default `beam-server`), `OTEL_TRACES_SAMPLER_ARG` (default 1.0) and
    /// `OTEL_SDK_DISABLED=true`. `None`: tracing is off.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, OtlpError> {
        let set = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let url = match (
            set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            set("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(full), _) => full,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        let endpoint: Uri = url
            .trim()
            .parse()
            .map_err(|_| OtlpError::Endpoint(url.clone()))?;
        if endpoint.scheme_str() != Some("http") || endpoint.host().is_none() {
            return Err(OtlpError::Endpoint(url));
        }
        let mut headers = Vec::new();
        for pair in set("OTEL_EXPORTER_OTLP_HEADERS")
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            // Only the name is ever shown: the value is usually a key.
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                OtlpError::Header(pair.split('=').next().unwrap_or("").trim().to_string())
            })?;
            let name = HeaderName::from_bytes(k.trim().as_bytes())
                .map_err(|_| OtlpError::Header(k.trim().to_string()))?;
            if HeaderValue::from_str(v.trim()).is_err() {
                return Err(OtlpError::Header(k.trim().to_string()));
            }
            headers.push((name, Secret::new(v.trim())));
        }
        let ratio = match set("OTEL_TRACES_SAMPLER_ARG") {
            Some(r) => r
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or(OtlpError::Ratio(r))?,
            None => 1.0,
        };
        Ok(Some(Self {
            endpoint,
            headers,
            service: set("OTEL_SERVICE_NAME").unwrap_or_else(|| "beam-server".into()),
            ratio,
        }))
    }
}

/// Records spans for export. Cheap to share.
#[derive(Debug)]
pub struct Tracer {
    tx: mpsc::Sender<Span>,
    ratio: f64,
    counts: Counts,
}

/// What became of spans (`beam_trace_spans_total{outcome}`).
#[derive(Debug, Clone)]
pub struct Counts {
    /// Taken by the collector.
    pub exported: Counter,
    /// Dropped because the queue was full.
    pub dropped: Counter,
    /// Not taken by the collector (it failed or was unreachable).
    pub failed: Counter,
}

impl Tracer {
    /// Starts the export task for `cfg` on `tasks`; it sends what is queued
    /// when `shutdown` is cancelled, then ends.
    pub fn start(
        cfg: OtlpConfig,
        node: String,
        counts: Counts,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let tracer = Arc::new(Self {
            tx,
            ratio: cfg.ratio,
            counts: counts.clone(),
        });
        tasks.spawn(export(cfg, node, rx, counts, shutdown));
        tracer
    }

    /// Whether a new trace is recorded (the sampling ratio).
    pub fn sample(&self) -> bool {
        self.ratio >= 1.0 || rand::random::<f64>() < self.ratio
    }

    /// Queues a finished span; never waits.
    pub fn record(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            self.counts.dropped.inc();
        }
    }
}

async fn export(
    cfg: OtlpConfig,
    node: String,
    mut rx: mpsc::Receiver<Span>,
    counts: Counts,
    shutdown: CancellationToken,
) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut batch: Vec<Span> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        let stop = tokio::select! {
            got = rx.recv() => match got {
                Some(span) => {
                    batch.push(span);
                    if batch.len() < BATCH {
                        continue;
                    }
                    false
                }
                None => true,
            },
            _ = tick.tick() => false,
            () = shutdown.cancelled() => {
                while let Ok(span) = rx.try_recv() {
                    batch.push(span);
                }
                true
            }
        };
        for chunk in batch.chunks(BATCH) {
            let body = encode(&cfg.service, &node, chunk);
            let mut req = Request::post(cfg.endpoint.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("a valid request");
            for (k, v) in &cfg.headers {
                if let Ok(v) = HeaderValue::from_str(v.expose()) {
                    req.headers_mut().insert(k.clone(), v);
                }
            }
            let sent = tokio::time::timeout(SEND_TIMEOUT, client.request(req)).await;
            let ok = matches!(&sent, Ok(Ok(r)) if r.status().is_success());
            if ok {
                counts.exported.inc_by(chunk.len() as u64);
            } else {
                counts.failed.inc_by(chunk.len() as u64);
                // One warning a minute at most: a collector that is down must
                // not flood the server's own log.
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|t| now.duration_since(t) > Duration::from_secs(60)) {
                    last_warning = Some(now);
                    let why = match sent {
                        Ok(Ok(r)) => format!("status {}", r.status()),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "timed out".into(),
                    };
                    tracing::warn!(endpoint = %cfg.endpoint, error = why, "sending traces failed; spans dropped");
                }
            }
        }
        batch.clear();
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_standard_variables_configure_tracing_and_bad_ones_are_explained() {
        assert!(OtlpConfig::from_env(env(&[])).unwrap().is_none());
        let c = OtlpConfig::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret,x-team=a"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint.to_string(), "http://collector:4318/v1/traces");
        assert_eq!((c.service.as_str(), c.ratio), ("beam-server", 0.25));
        let shown = format!("{c:?}");
        assert!(
            shown.contains("x-api-key") && !shown.contains("s3cret"),
            "{shown}"
        );
        let full = OtlpConfig::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:1"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
            ("OTEL_SERVICE_NAME", "edge-eu"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(full.endpoint.to_string(), "http://c:4318/custom");
        assert_eq!(full.service, "edge-eu");
        assert!(
            OtlpConfig::from_env(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_SDK_DISABLED", "true"),
            ]))
            .unwrap()
            .is_none()
        );
        let e = OtlpConfig::from_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http:// URL"), "{e}");
        let e = OtlpConfig::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("x-api-key"), "{e}");
        let e = OtlpConfig::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("between 0 and 1"), "{e}");
    }
}

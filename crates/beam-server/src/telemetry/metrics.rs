//! Prometheus metrics with the seed's names, in an explicit registry per server so
//! several servers in one test process never mix their numbers.
//!
//! No metric carries a tunnel label: per-tunnel labels explode cardinality (seed
//! defect D-44). Per-tunnel numbers belong to the analytics API instead.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// HTTP method label; unknown methods collapse into `OTHER` so a visitor cannot
/// create new series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
enum MethodLabel {
    GET,
    POST,
    PUT,
    DELETE,
    PATCH,
    HEAD,
    OPTIONS,
    CONNECT,
    TRACE,
    OTHER,
}

/// Labels of `beam_requests_total`: built without allocating, per request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    status_code: u16,
}

/// The seed's latency buckets, in seconds.
pub const DURATION_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0];

/// All server metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    tunnels_active: Family<Labels, Gauge>,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    bytes_in: Counter,
    bytes_out: Counter,
    errors: Family<Labels, Counter>,
    /// Nodes with a current lease in the store, this one included.
    pub(crate) cluster_nodes: Gauge,
    /// Whether the store took this node's last heartbeat (1) or not (0).
    pub(crate) node_heartbeat_ok: Gauge,
    forwarded: Family<Labels, Counter>,
    forward_duration: Histogram,
    trace_spans: Family<Labels, Counter>,
    /// Live async tasks of the process, read when the metrics are rendered.
    runtime_tasks: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let tunnels_active = Family::<Labels, Gauge>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Histogram::new(DURATION_BUCKETS);
        let bytes = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        registry.register(
            "beam_tunnels_active",
            "Tunnels currently connected",
            tunnels_active.clone(),
        );
        // prometheus-client appends `_total` to counters.
        registry.register(
            "beam_requests",
            "HTTP requests answered at the edge",
            requests.clone(),
        );
        registry.register(
            "beam_request_duration_seconds",
            "Time from request to response headers at the edge",
            duration.clone(),
        );
        registry.register(
            "beam_bytes_transferred",
            "Body and stream bytes through tunnels (in = from visitors, out = to visitors)",
            bytes.clone(),
        );
        registry.register("beam_errors", "Edge errors by type", errors.clone());
        let cluster_nodes = Gauge::default();
        registry.register(
            "beam_cluster_nodes",
            "Server nodes with a current lease in the store, this one included",
            cluster_nodes.clone(),
        );
        let node_heartbeat_ok = Gauge::default();
        registry.register(
            "beam_node_heartbeat_ok",
            "1 when the store took this node's last heartbeat, else 0",
            node_heartbeat_ok.clone(),
        );
        let forwarded = Family::<Labels, Counter>::default();
        registry.register(
            "beam_forwarded_requests",
            "Visitor requests this node forwarded to the node holding their tunnel, by status class",
            forwarded.clone(),
        );
        let forward_duration = Histogram::new(DURATION_BUCKETS);
        registry.register(
            "beam_forward_duration_seconds",
            "Time from forwarding a request to another node to its response headers",
            forward_duration.clone(),
        );
        let trace_spans = Family::<Labels, Counter>::default();
        registry.register(
            "beam_trace_spans",
            "Trace spans by outcome: exported to the OTLP collector, dropped (queue full) or failed (the collector did not take them)",
            trace_spans.clone(),
        );
        let runtime_tasks = Gauge::default();
        registry.register(
            "beam_runtime_tasks",
            "Async tasks alive in this process (a number that keeps growing is a leak)",
            runtime_tasks.clone(),
        );
        // The two directions are fixed: resolve them once instead of per request.
        let bytes_in = bytes
            .get_or_create(&vec![("direction", "in".into())])
            .clone();
        let bytes_out = bytes
            .get_or_create(&vec![("direction", "out".into())])
            .clone();
        Self {
            registry,
            tunnels_active,
            requests,
            duration,
            bytes_in,
            bytes_out,
            errors,
            cluster_nodes,
            node_heartbeat_ok,
            forwarded,
            forward_duration,
            trace_spans,
            runtime_tasks,
        }
    }

    /// The trace span counter for `outcome` (`exported`, `dropped`, `failed`).
    pub fn trace_spans(&self, outcome: &'static str) -> Counter {
        self.trace_spans
            .get_or_create(&vec![("outcome", outcome.into())])
            .clone()
    }

    /// Gauge of active tunnels for `protocol` (`http` / `tcp`).
    pub fn tunnels(&self, protocol: &'static str) -> Gauge {
        self.tunnels_active
            .get_or_create(&vec![("protocol", protocol.to_string())])
            .clone()
    }

    /// Counts one answered request and its latency.
    pub fn request(&self, method: &http::Method, status: u16, seconds: f64) {
        let method = match *method {
            http::Method::GET => MethodLabel::GET,
            http::Method::POST => MethodLabel::POST,
            http::Method::PUT => MethodLabel::PUT,
            http::Method::DELETE => MethodLabel::DELETE,
            http::Method::PATCH => MethodLabel::PATCH,
            http::Method::HEAD => MethodLabel::HEAD,
            http::Method::OPTIONS => MethodLabel::OPTIONS,
            http::Method::CONNECT => MethodLabel::CONNECT,
            http::Method::TRACE => MethodLabel::TRACE,
            _ => MethodLabel::OTHER,
        };
        self.requests
            .get_or_create(&RequestLabels {
                method,
                status_code: status,
            })
            .inc();
        self.duration.observe(seconds);
    }

    /// Counter of bytes from visitors (`direction="in"`).
    pub fn bytes_in(&self) -> Counter {
        self.bytes_in.clone()
    }

    /// Counter of bytes to visitors (`direction="out"`).
    pub fn bytes_out(&self) -> Counter {
        self.bytes_out.clone()
    }

    /// Counts a request forwarded to another node, answered with `status`
    /// after `seconds`.
    pub fn forwarded(&self, status: u16, seconds: f64) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.forwarded
            .get_or_create(&vec![("status", class.to_string())])
            .inc();
        self.forward_duration.observe(seconds);
    }

    /// Counts one error of `kind`.
    pub fn error(&self, kind: &'static str) {
        self.errors
            .get_or_create(&vec![("type", kind.to_string())])
            .inc();
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let tasks = i64::try_from(rt.metrics().num_alive_tasks()).unwrap_or(i64::MAX);
            self.runtime_tasks.set(tasks);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

//! What the server tells its operator about traffic: Prometheus metrics
//! (`metrics`), per-tunnel request analytics (`recorder`), and distributed
//! traces (`trace`: the W3C context and spans; `otlp`: their export).

pub mod metrics;
pub mod otlp;
pub mod recorder;
pub mod trace;

//! What the server tells its operator about traffic: Prometheus metrics
//! (`metrics`) and per-tunnel request analytics (`recorder`).

pub mod metrics;
pub mod recorder;

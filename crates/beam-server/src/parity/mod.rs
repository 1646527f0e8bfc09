//! The server's side of parity (production ↔ laptop): webhook sources and
//! the hub behind `/hooks/…` and developer streams (`webhooks`), who has a
//! live parity stream open (`developers`), and the daily caps on env checks
//! (`envcap`). Requests to the agent itself are relayed by `api::projects`.

pub(crate) mod developers;
pub(crate) mod envcap;
pub mod webhooks;

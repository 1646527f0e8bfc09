//! The server's side of parity (production ↔ laptop): webhook sources and
//! the hub behind `/hooks/…` and developer streams (`webhooks`), who has a
//! live parity stream open (`developers`), and the daily caps on env checks
//! (`envcap`), the agent's replicas wherever they are connected
//! (`replicas`), the merge of their log streams (`logmerge`) and of their
//! health and env check answers (`fanout`). The routes
//! themselves are in `api::parity`.

pub(crate) mod developers;
pub(crate) mod envcap;
pub(crate) mod fanout;
pub(crate) mod logmerge;
pub(crate) mod replicas;
pub mod webhooks;

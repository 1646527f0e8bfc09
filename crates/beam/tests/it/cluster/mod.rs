//! Several server nodes on one PostgreSQL database: API calls through any
//! node reach tunnels on any other (`nodes`), visitors reach every tunnel
//! through every node over authenticated node-to-node links (`forwarding`),
//! and a visitor request is one trace across the node hop (`traces`).

mod failover;
mod forwarding;
mod nodes;
mod rolling;
mod traces;

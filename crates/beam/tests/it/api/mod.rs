//! The REST API against a live server, every test on SQLite and on PostgreSQL:
//! accounts and tokens, tunnels and plan limits and analytics, the OpenAPI document.

mod accounts;
mod audit;
mod members;
mod membership;
mod openapi;
mod revocation;
mod tcp;
mod tokens;
mod tunnels;

use beam_proto::TunnelRequest;

const PASSWORD: &str = "correct horse battery";

fn http(subdomain: Option<&str>) -> TunnelRequest {
    TunnelRequest::Http {
        subdomain: subdomain.map(String::from),
        domain: None,
    }
}

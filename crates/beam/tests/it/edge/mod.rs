//! The public edge: visitor protection and limits, TLS, ACME certificates and
//! custom domains; HTTP/2 and its attacks.

mod acme;
mod auth;
mod domains;
mod helpers;
mod http2;
mod limits;
mod tls;
mod upstream;

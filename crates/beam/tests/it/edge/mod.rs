//! The public edge: visitor protection and limits, TLS, ACME certificates and
//! custom domains.

mod acme;
mod auth;
mod domains;
mod helpers;
mod limits;
mod tls;
mod upstream;

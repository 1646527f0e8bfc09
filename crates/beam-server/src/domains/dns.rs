//! Custom-domain ownership: the owner publishes a random per-domain token as TXT
//! `_beam-challenge.<hostname>`; the server looks it up (on `verify`, and again
//! periodically) with hickory-resolver. Lookups have a deadline and are never
//! cached, so a record that was removed is noticed at the next check.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;

/// Label under which the challenge is published.
pub const CHALLENGE_LABEL: &str = "_beam-challenge";

/// The TXT record name for `hostname`.
pub fn challenge_name(hostname: &str) -> String {
    format!("{CHALLENGE_LABEL}.{hostname}")
}

/// Why a check failed, in words for the domain's owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No TXT record exists at the challenge name.
    #[error(
        "no TXT record found at {0}; publish it and try again (DNS changes can take a while to appear)"
    )]
    Missing(String),
    /// TXT records exist but none holds the token.
    #[error("the TXT records at {0} do not contain this domain's verification token")]
    Mismatch(String),
    /// The resolver failed (timeout, SERVFAIL, network).
    #[error("DNS lookup of {name} failed: {message}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What the resolver said.
        message: String,
    },
}

impl VerifyError {
    /// Whether the failure says something about the record (as opposed to the
    /// resolver being unreachable, which must not suspend a working domain).
    pub fn is_definitive(&self) -> bool {
        !matches!(self, VerifyError::Lookup { .. })
    }
}

/// Looks challenge records up.
#[derive(Clone)]
pub struct Verifier {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// A verifier using `server` (UDP and TCP), or the system's resolvers when `None`.
    pub fn new(server: Option<SocketAddr>) -> Result<Self, String> {
        let mut opts = ResolverOpts::default();
        // Every check must see the zone as it is now.
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        let builder = match server {
            Some(addr) => {
                let group = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], group),
                    TokioConnectionProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?,
        };
        Ok(Self {
            resolver: builder.with_options(opts).build(),
        })
    }

    /// Checks that TXT `_beam-challenge.<hostname>` holds `token`.
    pub async fn verify(&self, hostname: &str, token: &str) -> Result<(), VerifyError> {
        // A trailing dot makes the name absolute: no search-domain guesses.
        let name = challenge_name(hostname);
        let fqdn = format!("{name}.");
        match self.resolver.txt_lookup(fqdn).await {
            Ok(lookup) => {
                let found = lookup.iter().any(|txt| {
                    // A long value may be split into several strings: join them.
                    let value: Vec<u8> = txt
                        .txt_data()
                        .iter()
                        .flat_map(|s| s.iter().copied())
                        .collect();
                    value == token.as_bytes()
                });
                if found {
                    Ok(())
                } else {
                    Err(VerifyError::Mismatch(name))
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                Err(VerifyError::Missing(name))
            }
            Err(e) => Err(VerifyError::Lookup {
                name,
                message: e.to_string(),
            }),
        }
    }
}

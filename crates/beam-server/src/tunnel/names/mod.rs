//! Public names for tunnels: validating requested subdomains and generating random ones.
//!
//! Generation never looks at who asks (no names from user names or emails: they leak
//! PII into public URLs, seed defect D-35). Uniqueness is not decided here: the store's
//! primary key decides it atomically when a name is claimed, so there is no
//! check-then-set race. This module only proposes candidates.

mod words;

use rand::Rng;

pub use words::{ADJECTIVES, NOUNS};

/// Names the server keeps for itself: its API and dashboard hosts, common service
/// names that visitors would trust, and names of infrastructure.
pub const RESERVED: &[&str] = &[
    "api",
    "www",
    "admin",
    "app",
    "mail",
    "beam",
    "tunnel",
    "tunnels",
    "dashboard",
    "status",
    "docs",
    "help",
    "support",
    "static",
    "assets",
    "cdn",
    "ns",
    "ns1",
    "ns2",
    "mx",
    "smtp",
    "imap",
    "pop",
    "pop3",
    "ftp",
    "sftp",
    "ssh",
    "vpn",
    "localhost",
    "root",
    "hooks",
    "webhook",
    "webhooks",
    "auth",
    "login",
    "signin",
    "signup",
    "account",
    "accounts",
    "billing",
    "blog",
    "metrics",
    "health",
    "internal",
    "console",
    "portal-admin",
    "security",
    "abuse",
    "postmaster",
    "hostmaster",
    "webmaster",
    "autoconfig",
    "autodiscover",
    "wpad",
    "_acme-challenge",
];

/// Why a requested subdomain cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a DNS label beam accepts.
    #[error(
        "'{0}' is not a valid subdomain: use 1-63 lowercase letters, digits and hyphens, not starting or ending with a hyphen"
    )]
    Invalid(String),
    /// A reserved name.
    #[error("'{0}' is reserved by the server; pick another subdomain")]
    Reserved(String),
}

/// Checks a requested subdomain. Upper case is folded to lower case first because
/// DNS is case-insensitive and routing ignores case; the folded name is returned.
pub fn validate(requested: &str, extra_reserved: &[String]) -> Result<String, NameError> {
    let name = requested.to_ascii_lowercase();
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    // `xx--` at positions 3-4 is reserved for IDNA (punycode, e.g. `xn--`): refusing it
    // stops look-alike names from being registered through the back door.
    let idna_like = name.len() >= 4 && &name.as_bytes()[2..4] == b"--";
    if name.is_empty()
        || name.len() > 63
        || !ok_chars
        || name.starts_with('-')
        || name.ends_with('-')
        || idna_like
    {
        return Err(NameError::Invalid(requested.to_string()));
    }
    if RESERVED.contains(&name.as_str()) || extra_reserved.contains(&name) {
        return Err(NameError::Reserved(name));
    }
    Ok(name)
}

const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A random `adjective-noun-xyz` name. The suffix is always three base36
/// characters from the thread-local CSPRNG (the seed's `Math.random().toString(36)`
/// could come out short and was predictable).
pub fn random_name() -> String {
    let mut rng = rand::rng();
    let adj = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rng.random_range(0..NOUNS.len())];
    let suffix: String = (0..3)
        .map(|_| BASE36[rng.random_range(0..BASE36.len())] as char)
        .collect();
    format!("{adj}-{noun}-{suffix}")
}

/// The fallback after 100 taken random names: `tunnel-` and 10 random base36
/// characters (≈ 3.6 × 10¹⁵ values). Unlike the seed's timestamp fallback it is
/// random, and the caller claims it through the store like any other name.
pub fn fallback_name() -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..10)
        .map(|_| BASE36[rng.random_range(0..BASE36.len())] as char)
        .collect();
    format!("tunnel-{suffix}")
}

/// How many random names to try before the fallback.
pub const MAX_ATTEMPTS: usize = 100;

#[cfg(test)]
mod tests;

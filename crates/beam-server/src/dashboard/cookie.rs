//! The dashboard's session cookie and CSRF token: names, flags, reading the
//! cookie back, and the token derived from it. No dependency on the rest of
//! the server, so the API's extractor can read the cookie too.

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use beam_proto::Secret;
use sha2::{Digest, Sha256};

/// The cookie's name over plain HTTP.
pub(crate) const COOKIE: &str = "beam_session";
/// The cookie's name over HTTPS: `__Host-` makes the browser refuse it with a
/// `Domain` attribute, without `Secure`, or from another host.
pub(crate) const SECURE_COOKIE: &str = "__Host-beam_session";

/// Whether the request reached the server over TLS, put into request
/// extensions by whoever serves the API (the cookie's flags depend on it).
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    /// Over TLS.
    pub secure: bool,
}

/// Whether `parts` came over TLS.
pub(crate) fn is_secure(parts: &Parts) -> bool {
    parts
        .extensions
        .get::<Transport>()
        .is_some_and(|t| t.secure)
}

/// The session token in the request's cookies, if any. Over HTTPS only the
/// `__Host-` cookie counts.
pub(crate) fn session_cookie(headers: &HeaderMap, secure: bool) -> Option<Secret> {
    let name = if secure { SECURE_COOKIE } else { COOKIE };
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| Secret::new(v.to_string()))
}

/// `Set-Cookie` for a new session that lives `max_age_s` seconds.
pub(crate) fn set_cookie(token: &Secret, max_age_s: i64, secure: bool) -> HeaderValue {
    let value = if secure {
        format!(
            "{SECURE_COOKIE}={}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict; Secure",
            token.expose()
        )
    } else {
        format!(
            "{COOKIE}={}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict",
            token.expose()
        )
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> HeaderValue {
    HeaderValue::from_static(if secure {
        "__Host-beam_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure"
    } else {
        "beam_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    })
}

/// The CSRF token of a session: derived from the session token by a one-way
/// hash, so it needs no storage, changes with every session, and reveals
/// nothing about the cookie it belongs to.
pub(crate) fn csrf_of(session: &Secret) -> String {
    let digest = Sha256::new()
        .chain_update(b"beam dashboard csrf\0")
        .chain_update(session.expose().as_bytes())
        .finalize();
    beam_proto::hex::encode(&digest[..20])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_read_by_its_name_only_and_csrf_is_per_session() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("other=1; beam_session=abc; __Host-beam_session=def"),
        );
        assert_eq!(session_cookie(&h, false).unwrap().expose(), "abc");
        assert_eq!(session_cookie(&h, true).unwrap().expose(), "def");
        let a = csrf_of(&Secret::new("abc"));
        assert_eq!(a.len(), 40);
        assert_ne!(a, csrf_of(&Secret::new("abd")));
    }

    #[test]
    fn cookies_carry_their_flags() {
        let t = Secret::new("tok");
        let plain = set_cookie(&t, 60, false);
        assert_eq!(
            plain.to_str().unwrap(),
            "beam_session=tok; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        let tls = set_cookie(&t, 60, true);
        assert!(
            tls.to_str()
                .unwrap()
                .starts_with("__Host-beam_session=tok; Path=/;")
        );
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }
}

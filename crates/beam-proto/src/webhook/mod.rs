//! Webhook events between the server and `beam webhook`, and the providers'
//! signature schemes: verifying the production signature (server or agent) and
//! re-signing for a developer's local secret (CLI).
//!
//! Schemes (all HMAC-SHA256, verified in constant time by `ring`):
//! - **stripe**: `Stripe-Signature: t=<unix s>,v1=<hex>` over `"{t}.{body}"`,
//!   the key being the `whsec_…` string itself.
//! - **svix** (also Resend, Clerk; Standard Webhooks `webhook-*` headers too):
//!   `svix-signature: v1,<base64>` over `"{id}.{timestamp}.{body}"`, the key
//!   being the base64 after `whsec_`.
//! - **custom**: `X-Hub-Signature-256: sha256=<hex>` over the body (GitHub's
//!   scheme, which many generic senders copy).
//! - **paypal**: RSA with a certificate URL; it cannot be verified offline or
//!   re-signed, so it is forwarded as received.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// How far a signed timestamp may be from now (Stripe's and svix's default).
pub const TOLERANCE_SECS: i64 = 300;

/// A webhook sender whose signature scheme beam knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Stripe.
    Stripe,
    /// Svix and senders built on it (Resend, Clerk), and Standard Webhooks.
    Svix,
    /// Generic HMAC-SHA256 of the body (`X-Hub-Signature-256`).
    Custom,
    /// PayPal: forwarded as is, never re-signed.
    Paypal,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 4] = [
        Provider::Stripe,
        Provider::Svix,
        Provider::Custom,
        Provider::Paypal,
    ];

    /// The URL and CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Svix => "svix",
            Provider::Custom => "custom",
            Provider::Paypal => "paypal",
        }
    }

    /// Parses a provider name; `resend`, `clerk` and `github` are aliases.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "stripe" => Some(Provider::Stripe),
            "svix" | "resend" | "clerk" | "standardwebhooks" => Some(Provider::Svix),
            "custom" | "github" | "hmac" => Some(Provider::Custom),
            "paypal" => Some(Provider::Paypal),
            _ => None,
        }
    }

    /// Whether beam can re-sign this provider's events for a developer.
    pub fn resignable(self) -> bool {
        self != Provider::Paypal
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored webhook event as the server streams and lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Server-side id (what `beam webhook replay` takes).
    pub id: i64,
    /// Who sent it.
    pub provider: Provider,
    /// The provider's own event id (Stripe `evt_…`, `svix-id`), used for dedupe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Event type (`payment_intent.succeeded`), when the body or headers name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Request method as received.
    pub method: String,
    /// Request path as received.
    pub path: String,
    /// Query string as received, without `?`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Headers in received order, repeated names kept.
    pub headers: Vec<(String, String)>,
    /// The raw body, byte for byte (base64 in JSON).
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    /// Whether the production signature was checked and matched.
    pub verified: bool,
    /// Unix ms of receipt.
    pub received_at: i64,
}

mod b64 {
    use super::{B64, Engine};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        B64.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// Why a signature did not verify. Messages never contain secrets or tags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header is absent.
    #[error("the {0} header is missing")]
    Missing(&'static str),
    /// The header is not in the provider's format.
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    /// The signed timestamp is outside the tolerance (replay or clock skew).
    #[error("the signed timestamp is {0} s away from now (more than {TOLERANCE_SECS} s)")]
    Stale(i64),
    /// No signature matched the secret.
    #[error("no signature matches the configured secret")]
    Mismatch,
    /// The configured secret is not in the provider's format.
    #[error("the configured signing secret is not a valid {0} secret")]
    BadSecret(&'static str),
    /// The provider cannot be verified by beam.
    #[error("{0} signatures cannot be verified offline")]
    Unsupported(&'static str),
}

/// First value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    match headers
        .iter()
        .position(|(k, _)| k.eq_ignore_ascii_case(name))
    {
        Some(i) => {
            headers[i].1 = value;
            // Drop any repeats so only the fresh signature remains.
            let mut seen = false;
            headers.retain(|(k, _)| {
                if k.eq_ignore_ascii_case(name) {
                    let keep = !seen;
                    seen = true;
                    keep
                } else {
                    true
                }
            });
        }
        None => headers.push((name.to_string(), value)),
    }
}

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn svix_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let b = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(b).map_err(|_| SignatureError::BadSecret("svix"))
}

/// Names of the svix headers in use: `svix-*`, or Standard Webhooks' `webhook-*`.
fn svix_names(headers: &[(String, String)]) -> [&'static str; 3] {
    if header(headers, "svix-signature").is_none() && header(headers, "webhook-signature").is_some()
    {
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    } else {
        ["svix-id", "svix-timestamp", "svix-signature"]
    }
}

fn check_time(ts: i64, now_s: i64) -> Result<(), SignatureError> {
    let skew = now_s.abs_diff(ts);
    if skew > TOLERANCE_SECS.unsigned_abs() {
        Err(SignatureError::Stale(
            i64::try_from(skew).unwrap_or(i64::MAX),
        ))
    } else {
        Ok(())
    }
}

/// Verifies the production signature of an event received at `now_s`.
pub fn verify(
    provider: Provider,
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_s: i64,
) -> Result<(), SignatureError> {
    match provider {
        Provider::Stripe => {
            const H: &str = "Stripe-Signature";
            let v = header(headers, H).ok_or(SignatureError::Missing(H))?;
            let mut t = None;
            let mut sigs = Vec::new();
            for part in v.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", x)) => t = x.parse::<i64>().ok(),
                    Some(("v1", x)) => sigs.push(x),
                    _ => {}
                }
            }
            let t = t.ok_or(SignatureError::Malformed(H))?;
            if sigs.is_empty() {
                return Err(SignatureError::Malformed(H));
            }
            let k = key(secret.as_bytes());
            let mut msg = format!("{t}.").into_bytes();
            msg.extend_from_slice(body);
            let ok = sigs
                .iter()
                .filter_map(|s| crate::hex::decode(s))
                .any(|tag| hmac::verify(&k, &msg, &tag).is_ok());
            if !ok {
                return Err(SignatureError::Mismatch);
            }
            check_time(t, now_s)
        }
        Provider::Svix => {
            let [hid, hts, hsig] = svix_names(headers);
            let id = header(headers, hid).ok_or(SignatureError::Missing(hid))?;
            let ts = header(headers, hts).ok_or(SignatureError::Missing(hts))?;
            let sig = header(headers, hsig).ok_or(SignatureError::Missing(hsig))?;
            let t: i64 = ts.parse().map_err(|_| SignatureError::Malformed(hts))?;
            let k = key(&svix_key(secret)?);
            let mut msg = format!("{id}.{ts}.").into_bytes();
            msg.extend_from_slice(body);
            let ok = sig
                .split(' ')
                .filter_map(|s| s.strip_prefix("v1,"))
                .filter_map(|s| B64.decode(s).ok())
                .any(|tag| hmac::verify(&k, &msg, &tag).is_ok());
            if !ok {
                return Err(SignatureError::Mismatch);
            }
            check_time(t, now_s)
        }
        Provider::Custom => {
            const H: &str = "X-Hub-Signature-256";
            let v = header(headers, H).ok_or(SignatureError::Missing(H))?;
            let tag = crate::hex::decode(v.strip_prefix("sha256=").unwrap_or(v))
                .ok_or(SignatureError::Malformed(H))?;
            hmac::verify(&key(secret.as_bytes()), body, &tag).map_err(|_| SignatureError::Mismatch)
        }
        Provider::Paypal => Err(SignatureError::Unsupported("paypal")),
    }
}

/// Replaces the event's signature headers with ones made with `secret` at
/// `now_s`, in the provider's own scheme, so the local app verifies it with the
/// developer's secret. PayPal events are left untouched.
pub fn resign(
    provider: Provider,
    secret: &str,
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    now_s: i64,
) -> Result<(), SignatureError> {
    match provider {
        Provider::Stripe => {
            let mut msg = format!("{now_s}.").into_bytes();
            msg.extend_from_slice(body);
            let tag = hmac::sign(&key(secret.as_bytes()), &msg);
            set_header(
                headers,
                "Stripe-Signature",
                format!("t={now_s},v1={}", crate::hex::encode(tag.as_ref())),
            );
        }
        Provider::Svix => {
            let key = key(&svix_key(secret)?);
            // Re-sign every header family present (svix-* and webhook-*), or
            // svix-* when neither is, so no stale production signature remains.
            let families: Vec<[&str; 3]> = [
                ["svix-id", "svix-timestamp", "svix-signature"],
                ["webhook-id", "webhook-timestamp", "webhook-signature"],
            ]
            .into_iter()
            .filter(|f| f.iter().any(|h| header(headers, h).is_some()))
            .collect();
            let families = if families.is_empty() {
                vec![["svix-id", "svix-timestamp", "svix-signature"]]
            } else {
                families
            };
            for [hid, hts, hsig] in families {
                let id = header(headers, hid)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("msg_beam_{now_s}"));
                let mut msg = format!("{id}.{now_s}.").into_bytes();
                msg.extend_from_slice(body);
                let tag = hmac::sign(&key, &msg);
                set_header(headers, hid, id);
                set_header(headers, hts, now_s.to_string());
                set_header(headers, hsig, format!("v1,{}", B64.encode(tag.as_ref())));
            }
        }
        Provider::Custom => {
            let tag = hmac::sign(&key(secret.as_bytes()), body);
            set_header(
                headers,
                "X-Hub-Signature-256",
                format!("sha256={}", crate::hex::encode(tag.as_ref())),
            );
        }
        Provider::Paypal => {}
    }
    Ok(())
}

/// Checks that `secret` can sign for `provider` (an svix secret must be
/// base64 after `whsec_`; PayPal cannot be verified at all).
pub fn check_secret(provider: Provider, secret: &str) -> Result<(), SignatureError> {
    match provider {
        Provider::Svix => svix_key(secret).map(|_| ()),
        Provider::Paypal => Err(SignatureError::Unsupported("paypal")),
        Provider::Stripe | Provider::Custom => Ok(()),
    }
}

/// Headers never stored or forwarded to laptops: credentials meant for the
/// production endpoint, and the production signatures themselves. A
/// production signature is a credential for its body (whoever holds it can
/// replay the event to production within the tolerance), so only the
/// developer's re-signed headers ever exist outside the receiver.
pub const DROPPED_HEADERS: [&str; 9] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "stripe-signature",
    "svix-signature",
    "webhook-signature",
    "x-hub-signature",
    "x-hub-signature-256",
    "paypal-transmission-sig",
];

/// A fresh developer secret: `whsec_` and 32 random bytes in base64, which both
/// Stripe's libraries (the whole string is the key) and svix's (the base64 part)
/// accept.
pub fn new_dev_secret(random: [u8; 32]) -> String {
    format!("whsec_{}", B64.encode(random))
}

/// The provider's event id and type, from the headers or the JSON body.
pub fn describe(
    provider: Provider,
    headers: &[(String, String)],
    body: &[u8],
) -> (Option<String>, Option<String>) {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let clip = |s: Option<String>| s.filter(|s| !s.is_empty() && s.len() <= 255);
    let (id, ty) = match provider {
        Provider::Stripe => (field("id"), field("type")),
        Provider::Svix => (
            header(headers, svix_names(headers)[0]).map(str::to_string),
            field("type").or_else(|| field("eventType")),
        ),
        // The custom scheme signs the body only: a delivery-id header is not
        // signed, so one captured request could be replayed under new ids as
        // "new" verified events. The id is the signed content itself.
        Provider::Custom => (
            Some(format!(
                "sha256:{}",
                &crate::hex::encode(&sha256(body))[..32]
            )),
            header(headers, "X-GitHub-Event")
                .or_else(|| header(headers, "X-Event-Type"))
                .map(str::to_string)
                .or_else(|| field("type")),
        ),
        Provider::Paypal => (field("id"), field("event_type")),
    };
    (clip(id), clip(ty))
}

/// Whether `event_type` matches one of `patterns` (`*` matches any run of
/// characters, so `payment_intent.*` matches `payment_intent.succeeded`). An
/// empty pattern list matches everything; an event without a type matches only
/// `*`.
pub fn type_matches(patterns: &[String], event_type: Option<&str>) -> bool {
    if patterns.is_empty() {
        return true;
    }
    patterns.iter().any(|p| match event_type {
        Some(t) => glob(p, t),
        None => p == "*",
    })
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    // Both ends matched whole strings, so these are character boundaries;
    // `get` keeps it panic-free regardless.
    let Some(mut rest) = text.get(first.len()..text.len() - last.len()) else {
        return false;
    };
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A request's headers as `(name, value)` pairs, the form events are stored
/// and verified in (a value that is not UTF-8 is kept lossily).
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;

//! Webhook events between the server and `beam webhook`, and the providers
//! beam knows. Each provider's signature is verified in production (server
//! or agent) and re-signed with the developer's own secret on the laptop
//! ([`signature`]):
//!
//! | provider | header | signed | key |
//! |---|---|---|---|
//! | stripe | `Stripe-Signature: t=…,v1=<hex>` | `"{t}.{body}"`, HMAC-SHA256, 300 s | the `whsec_…` string |
//! | svix (Resend, Clerk, Standard Webhooks) | `svix-signature: v1,<base64>` | `"{id}.{ts}.{body}"`, 300 s | base64 after `whsec_` |
//! | github (`custom`) | `X-Hub-Signature-256: sha256=<hex>` | body | the secret |
//! | shopify | `X-Shopify-Hmac-Sha256: <base64>` | body | the app's client secret |
//! | slack | `X-Slack-Signature: v0=<hex>` | `"v0:{ts}:{body}"`, 300 s | the signing secret |
//! | twilio | `X-Twilio-Signature: <base64>` | URL + sorted form parameters, HMAC-SHA1 | the auth token |
//! | paddle | `Paddle-Signature: ts=…;h1=<hex>` | `"{ts}:{body}"`, 5 s | the notification secret |
//! | linear | `Linear-Signature: <hex>` | body (with `webhookTimestamp`, 60 s) | the signing secret |
//! | hmac | configurable ([`HmacScheme`]) | body | the secret |
//! | paypal | RSA with a certificate URL | — | cannot be verified offline or re-signed |

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

mod generic;
pub mod signature;

pub use generic::{HmacAlgorithm, HmacScheme, TagEncoding};
pub use signature::{
    Context, check_secret, resign, resign_warning, resign_with, tolerance, verify, verify_with,
};

/// A webhook sender whose signature scheme beam knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Stripe.
    Stripe,
    /// Svix and senders built on it (Resend, Clerk), and Standard Webhooks.
    Svix,
    /// GitHub (`X-Hub-Signature-256`); `custom` is its old name.
    #[serde(alias = "custom")]
    Github,
    /// Shopify.
    Shopify,
    /// Slack (Events API, slash commands, interactivity).
    Slack,
    /// Twilio (signs the URL it called and the form parameters).
    Twilio,
    /// Paddle Billing.
    Paddle,
    /// Linear.
    Linear,
    /// Generic HMAC of the body with a configurable header, hash, encoding
    /// and prefix ([`HmacScheme`]).
    Hmac,
    /// PayPal: forwarded as is, never re-signed.
    Paypal,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 10] = [
        Provider::Stripe,
        Provider::Svix,
        Provider::Github,
        Provider::Shopify,
        Provider::Slack,
        Provider::Twilio,
        Provider::Paddle,
        Provider::Linear,
        Provider::Hmac,
        Provider::Paypal,
    ];

    /// The names [`parse`](Self::parse) takes, for messages.
    pub const NAMES: &'static str = "stripe, svix (resend, clerk), github, shopify, slack, twilio, paddle, linear, hmac, paypal";

    /// The URL and CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Svix => "svix",
            Provider::Github => "github",
            Provider::Shopify => "shopify",
            Provider::Slack => "slack",
            Provider::Twilio => "twilio",
            Provider::Paddle => "paddle",
            Provider::Linear => "linear",
            Provider::Hmac => "hmac",
            Provider::Paypal => "paypal",
        }
    }

    /// Parses a provider name; `resend`, `clerk` and `standardwebhooks` are
    /// svix, `custom` is github (its name before named providers).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "stripe" => Some(Provider::Stripe),
            "svix" | "resend" | "clerk" | "standardwebhooks" => Some(Provider::Svix),
            "github" | "custom" => Some(Provider::Github),
            "shopify" => Some(Provider::Shopify),
            "slack" => Some(Provider::Slack),
            "twilio" => Some(Provider::Twilio),
            "paddle" => Some(Provider::Paddle),
            "linear" => Some(Provider::Linear),
            "hmac" => Some(Provider::Hmac),
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
    /// How a generic HMAC sender signs (provider `hmac` only), so the CLI
    /// re-signs in the same scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<HmacScheme>,
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
    /// A header named in configuration is absent (generic HMAC).
    #[error("the {0} header is missing")]
    MissingNamed(String),
    /// A header named in configuration is not in the configured format.
    #[error("the {0} header is malformed")]
    MalformedNamed(String),
    /// A field the signature relies on is absent from the signed body.
    #[error("the signed body has no {0}")]
    MissingField(&'static str),
    /// The provider signs the URL it called, and it is not known here.
    #[error("twilio signs the URL it called, which is not known here")]
    NeedsUrl,
    /// The signed timestamp is outside the tolerance (replay or clock skew).
    #[error("the signed timestamp is {skew} s away from now (more than {tolerance} s)")]
    Stale {
        /// Seconds between the signed time and now.
        skew: i64,
        /// What the provider allows.
        tolerance: i64,
    },
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

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Headers never stored or forwarded to laptops: credentials meant for the
/// production endpoint, and the production signatures themselves. A
/// production signature is a credential for its body (whoever holds it can
/// replay the event to production within the tolerance), so only the
/// developer's re-signed headers ever exist outside the receiver.
/// A generic HMAC source's configured header is dropped too (see
/// [`dropped`]).
pub const DROPPED_HEADERS: [&str; 17] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "stripe-signature",
    "svix-signature",
    "webhook-signature",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-shopify-hmac-sha256",
    "shopify-hmac-sha256",
    "x-slack-signature",
    "x-twilio-signature",
    "paddle-signature",
    "linear-signature",
    "x-signature",
    "paypal-transmission-sig",
    // The agent's ingest route takes Twilio's URL in it; it is not the app's.
    "beam-request-url",
];

/// Whether header `name` must be dropped before an event is stored: a
/// credential, a production signature, or the generic scheme's header.
pub fn dropped(name: &str, hmac: Option<&HmacScheme>) -> bool {
    DROPPED_HEADERS.iter().any(|d| name.eq_ignore_ascii_case(d))
        || hmac.is_some_and(|s| name.eq_ignore_ascii_case(&s.header))
}

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
    // Schemes that sign the body alone leave their delivery-id headers
    // unsigned: one captured request could be replayed under fresh ids as
    // "new" verified events. Their id is the signed content itself.
    let content_id = || {
        Some(format!(
            "sha256:{}",
            &crate::hex::encode(&sha256(body))[..32]
        ))
    };
    let hdr = |name: &str| header(headers, name).map(str::to_string);
    let (id, ty) = match provider {
        Provider::Stripe => (field("id"), field("type")),
        Provider::Svix => (
            hdr(signature::svix_names(headers)[0]),
            field("type").or_else(|| field("eventType")),
        ),
        Provider::Github => (content_id(), hdr("X-GitHub-Event")),
        Provider::Shopify => (
            content_id(),
            hdr("X-Shopify-Topic").or_else(|| hdr("Shopify-Topic")),
        ),
        Provider::Slack => {
            // Events API bodies carry a signed event_id; slash commands and
            // interactivity are forms.
            let inner = json
                .as_ref()
                .and_then(|j| j.get("event"))
                .and_then(|e| e.get("type"))
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let form = form_field(body, "command");
            (
                field("event_id").or_else(content_id),
                inner.or_else(|| field("type")).or(form),
            )
        }
        Provider::Twilio => {
            let ty = if form_field(body, "CallSid").is_some() {
                form_field(body, "CallStatus").map(|s| format!("call.{s}"))
            } else if form_field(body, "MessageSid").is_some() {
                form_field(body, "MessageStatus")
                    .or_else(|| form_field(body, "SmsStatus"))
                    .map(|s| format!("message.{s}"))
            } else {
                None
            };
            (content_id(), ty)
        }
        Provider::Paddle => (field("event_id"), field("event_type")),
        Provider::Linear => {
            let ty = match (field("type"), field("action")) {
                (Some(t), Some(a)) => Some(format!("{t}.{a}")),
                (t, _) => t.or_else(|| hdr("Linear-Event")),
            };
            (content_id(), ty)
        }
        Provider::Hmac => (
            content_id(),
            field("type")
                .or_else(|| field("event_type"))
                .or_else(|| field("event")),
        ),
        Provider::Paypal => (field("id"), field("event_type")),
    };
    (clip(id), clip(ty))
}

/// The first value of form field `name` in a form body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    crate::urlenc::form_pairs(text)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
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

//! The providers' signature schemes: verifying the production signature
//! (server or agent) and re-signing an event with a developer's secret (CLI).
//! Every comparison is constant time (`ring::hmac::verify`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::hmac;

use super::generic::{HmacScheme, TagEncoding};
use super::{Provider, SignatureError, header, set_header, sha256};
use crate::hex;

/// What a signature may cover besides the headers and the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Twilio signs the full URL it called. When verifying, every candidate
    /// is tried (the receiver may not know whether it was reached over http
    /// or https); when re-signing, the first is the URL the local app sees.
    pub urls: &'a [String],
    /// The generic HMAC scheme (header, hash, encoding, prefix); the default
    /// scheme when absent.
    pub hmac: Option<&'a HmacScheme>,
}

/// How far a signed timestamp may be from now, per provider: what each
/// provider's official library enforces. `None`: nothing timestamped is signed.
pub fn tolerance(provider: Provider) -> Option<i64> {
    match provider {
        Provider::Stripe | Provider::Svix | Provider::Slack => Some(300),
        Provider::Linear => Some(60),
        Provider::Paddle => Some(5),
        Provider::Github
        | Provider::Shopify
        | Provider::Twilio
        | Provider::Hmac
        | Provider::Paypal => None,
    }
}

fn check_time(provider: Provider, ts: i64, now_s: i64) -> Result<(), SignatureError> {
    let Some(tolerance) = tolerance(provider) else {
        return Ok(());
    };
    let skew = now_s.abs_diff(ts);
    if skew > tolerance.unsigned_abs() {
        Err(SignatureError::Stale {
            skew: i64::try_from(skew).unwrap_or(i64::MAX),
            tolerance,
        })
    } else {
        Ok(())
    }
}

fn key(alg: hmac::Algorithm, secret: &[u8]) -> hmac::Key {
    hmac::Key::new(alg, secret)
}

fn sign256(secret: &[u8], msg: &[u8]) -> hmac::Tag {
    hmac::sign(&key(hmac::HMAC_SHA256, secret), msg)
}

/// Whether any of `tags` is the HMAC of `msg`.
fn any_matches(k: &hmac::Key, msg: &[u8], tags: impl IntoIterator<Item = Vec<u8>>) -> bool {
    tags.into_iter().any(|t| hmac::verify(k, msg, &t).is_ok())
}

fn joined(prefix: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = prefix.as_bytes().to_vec();
    msg.extend_from_slice(body);
    msg
}

fn svix_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let b = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(b).map_err(|_| SignatureError::BadSecret("svix"))
}

/// Names of the svix headers in use: `svix-*`, or Standard Webhooks' `webhook-*`.
pub(super) fn svix_names(headers: &[(String, String)]) -> [&'static str; 3] {
    if header(headers, "svix-signature").is_none() && header(headers, "webhook-signature").is_some()
    {
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    } else {
        ["svix-id", "svix-timestamp", "svix-signature"]
    }
}

/// Shopify's classic webhooks sign in `X-Shopify-Hmac-Sha256`, its newer
/// events in `Shopify-Hmac-Sha256`: the one the event uses (its topic header
/// survives storage and tells, since the signature itself is dropped).
fn shopify_header(headers: &[(String, String)]) -> &'static str {
    let events = header(headers, "shopify-hmac-sha256").is_some()
        || (header(headers, "x-shopify-hmac-sha256").is_none()
            && header(headers, "shopify-topic").is_some());
    if events {
        "Shopify-Hmac-Sha256"
    } else {
        "X-Shopify-Hmac-Sha256"
    }
}

/// `key=value` items of a header split on `sep` (`t=1,v1=ab` or `ts=1;h1=ab`).
fn items(v: &str, sep: char) -> impl Iterator<Item = (&str, &str)> {
    v.split(sep).filter_map(|p| p.trim().split_once('='))
}

/// The Linear body's signed `webhookTimestamp`, in unix seconds.
fn linear_timestamp(body: &[u8]) -> Option<i64> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    json.get("webhookTimestamp")?.as_i64().map(|ms| ms / 1000)
}

/// What Twilio signs after the URL: for a form body, every parameter name
/// (sorted) followed by each of its distinct values (sorted), as Twilio's
/// official libraries compute it. Other bodies are covered by the URL's
/// `bodySHA256` parameter instead.
fn twilio_params(headers: &[(String, String)], body: &[u8], url: &str) -> Option<String> {
    if twilio_body_hash(url).is_some() {
        return Some(String::new());
    }
    let form = header(headers, "content-type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if !form {
        return Some(String::new());
    }
    let text = std::str::from_utf8(body).ok()?;
    let mut pairs = crate::urlenc::form_pairs(text);
    pairs.sort();
    pairs.dedup();
    Some(pairs.into_iter().map(|(k, v)| k + &v).collect())
}

/// The `bodySHA256` query parameter of a Twilio URL (JSON bodies).
fn twilio_body_hash(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    crate::urlenc::form_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v)
}

/// The URL with and without its scheme's default port, as Twilio's libraries
/// try both (a proxy may add or drop `:443`).
fn twilio_url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let (authority, tail) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |i| rest.split_at(i));
    let other = match authority.strip_suffix(&format!(":{port}")) {
        Some(bare) => format!("{scheme}://{bare}{tail}"),
        None if !authority.contains(':') || authority.ends_with(']') => {
            format!("{scheme}://{authority}:{port}{tail}")
        }
        None => return out,
    };
    out.push(other);
    out
}

/// Twilio's hash: HMAC-SHA1 with the auth token, unless the request names
/// another in `X-Twilio-Webhooks-Signature-Settings: key=…,algorithm=HMAC_SHA256`
/// (then the secret is that shared key's).
fn twilio_algorithm(headers: &[(String, String)]) -> Result<hmac::Algorithm, SignatureError> {
    const H: &str = "X-Twilio-Webhooks-Signature-Settings";
    let named = header(headers, H).and_then(|v| {
        items(v, ',')
            .find(|(k, _)| k.trim() == "algorithm")
            .map(|(_, a)| a.trim().to_ascii_uppercase())
    });
    match named.as_deref() {
        None | Some("") | Some("HMAC_SHA1") => Ok(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        Some("HMAC_SHA256") => Ok(hmac::HMAC_SHA256),
        Some(_) => Err(SignatureError::Malformed(H)),
    }
}

fn encode_tag(enc: TagEncoding, tag: &[u8]) -> String {
    match enc {
        TagEncoding::Hex => hex::encode(tag),
        TagEncoding::Base64 => B64.encode(tag),
    }
}

fn decode_tag(enc: TagEncoding, s: &str) -> Option<Vec<u8>> {
    match enc {
        TagEncoding::Hex => hex::decode(s.trim()),
        TagEncoding::Base64 => B64.decode(s.trim()).ok(),
    }
}

/// Verifies the production signature of an event received at `now_s`, for
/// providers that sign only headers and body (see [`verify_with`]).
pub fn verify(
    provider: Provider,
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_s: i64,
) -> Result<(), SignatureError> {
    verify_with(provider, secret, headers, body, now_s, &Context::default())
}

/// Verifies the production signature of an event received at `now_s`.
pub fn verify_with(
    provider: Provider,
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_s: i64,
    ctx: &Context<'_>,
) -> Result<(), SignatureError> {
    let need = |h: &'static str| header(headers, h).ok_or(SignatureError::Missing(h));
    let k256 = || key(hmac::HMAC_SHA256, secret.as_bytes());
    let outcome = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    };
    match provider {
        Provider::Stripe => {
            const H: &str = "Stripe-Signature";
            let v = need(H)?;
            let t = items(v, ',')
                .find(|(k, _)| *k == "t")
                .and_then(|(_, t)| t.parse::<i64>().ok())
                .ok_or(SignatureError::Malformed(H))?;
            let sigs: Vec<Vec<u8>> = items(v, ',')
                .filter(|(k, _)| *k == "v1")
                .filter_map(|(_, s)| hex::decode(s))
                .collect();
            if sigs.is_empty() {
                return Err(SignatureError::Malformed(H));
            }
            outcome(any_matches(&k256(), &joined(&format!("{t}."), body), sigs))?;
            check_time(provider, t, now_s)
        }
        Provider::Svix => {
            let [hid, hts, hsig] = svix_names(headers);
            let id = need(hid)?;
            let ts = need(hts)?;
            let sig = need(hsig)?;
            let t: i64 = ts.parse().map_err(|_| SignatureError::Malformed(hts))?;
            let k = key(hmac::HMAC_SHA256, &svix_key(secret)?);
            let tags = sig
                .split(' ')
                .filter_map(|s| s.strip_prefix("v1,"))
                .filter_map(|s| B64.decode(s).ok());
            outcome(any_matches(&k, &joined(&format!("{id}.{ts}."), body), tags))?;
            check_time(provider, t, now_s)
        }
        Provider::Github => {
            const H: &str = "X-Hub-Signature-256";
            let v = need(H)?;
            let tag = hex::decode(v.strip_prefix("sha256=").unwrap_or(v))
                .ok_or(SignatureError::Malformed(H))?;
            outcome(any_matches(&k256(), body, [tag]))
        }
        Provider::Shopify => {
            let h = shopify_header(headers);
            let tag = B64
                .decode(need(h)?.trim())
                .map_err(|_| SignatureError::Malformed(h))?;
            outcome(any_matches(&k256(), body, [tag]))
        }
        Provider::Slack => {
            const HTS: &str = "X-Slack-Request-Timestamp";
            const H: &str = "X-Slack-Signature";
            let ts = need(HTS)?;
            let t: i64 = ts.parse().map_err(|_| SignatureError::Malformed(HTS))?;
            let tag = need(H)?
                .strip_prefix("v0=")
                .and_then(hex::decode)
                .ok_or(SignatureError::Malformed(H))?;
            outcome(any_matches(
                &k256(),
                &joined(&format!("v0:{ts}:"), body),
                [tag],
            ))?;
            check_time(provider, t, now_s)
        }
        Provider::Twilio => {
            const H: &str = "X-Twilio-Signature";
            let tag = B64
                .decode(need(H)?.trim())
                .map_err(|_| SignatureError::Malformed(H))?;
            if ctx.urls.is_empty() {
                return Err(SignatureError::NeedsUrl);
            }
            for url in ctx.urls {
                if let Some(hash) = twilio_body_hash(url)
                    && !hash.eq_ignore_ascii_case(&hex::encode(&sha256(body)))
                {
                    continue;
                }
                let Some(params) = twilio_params(headers, body, url) else {
                    return Err(SignatureError::Malformed("form body"));
                };
                let k = key(twilio_algorithm(headers)?, secret.as_bytes());
                for candidate in twilio_url_variants(url) {
                    let data = format!("{candidate}{params}");
                    if hmac::verify(&k, data.as_bytes(), &tag).is_ok() {
                        return Ok(());
                    }
                }
            }
            Err(SignatureError::Mismatch)
        }
        Provider::Paddle => {
            const H: &str = "Paddle-Signature";
            let v = need(H)?;
            let ts = items(v, ';')
                .find(|(k, _)| *k == "ts")
                .map(|(_, t)| t)
                .ok_or(SignatureError::Malformed(H))?;
            let t: i64 = ts.parse().map_err(|_| SignatureError::Malformed(H))?;
            let tags: Vec<Vec<u8>> = items(v, ';')
                .filter(|(k, _)| *k == "h1")
                .filter_map(|(_, s)| hex::decode(s))
                .collect();
            if tags.is_empty() {
                return Err(SignatureError::Malformed(H));
            }
            outcome(any_matches(&k256(), &joined(&format!("{ts}:"), body), tags))?;
            check_time(provider, t, now_s)
        }
        Provider::Linear => {
            const H: &str = "Linear-Signature";
            let tag = hex::decode(need(H)?.trim()).ok_or(SignatureError::Malformed(H))?;
            outcome(any_matches(&k256(), body, [tag]))?;
            // The timestamp is inside the signed body, so it is trustworthy
            // only after the signature matched.
            let t =
                linear_timestamp(body).ok_or(SignatureError::MissingField("webhookTimestamp"))?;
            check_time(provider, t, now_s)
        }
        Provider::Hmac => {
            let default = HmacScheme::default();
            let scheme = ctx.hmac.unwrap_or(&default);
            let name = scheme.header.as_str();
            let v = header(headers, name).ok_or(SignatureError::MissingNamed(name.to_string()))?;
            let malformed = || SignatureError::MalformedNamed(name.to_string());
            let tag = v
                .trim()
                .strip_prefix(scheme.prefix.as_str())
                .and_then(|t| decode_tag(scheme.encoding, t))
                .ok_or_else(malformed)?;
            let k = key(scheme.ring_algorithm(), secret.as_bytes());
            outcome(any_matches(&k, body, [tag]))
        }
        Provider::Paypal => Err(SignatureError::Unsupported("paypal")),
    }
}

/// Replaces an event's signature headers with ones made with `secret` at
/// `now_s`, for providers that sign only headers and body (see [`resign_with`]).
pub fn resign(
    provider: Provider,
    secret: &str,
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    now_s: i64,
) -> Result<(), SignatureError> {
    resign_with(provider, secret, headers, body, now_s, &Context::default())
}

/// Replaces an event's signature headers with ones made with `secret` at
/// `now_s`, in the provider's own scheme, so the local app verifies it with
/// the developer's secret. PayPal events are left untouched. The body is never
/// changed (deliveries are byte for byte), so a timestamp signed inside it
/// (Linear) stays what the provider sent: see [`resign_warning`].
pub fn resign_with(
    provider: Provider,
    secret: &str,
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    now_s: i64,
    ctx: &Context<'_>,
) -> Result<(), SignatureError> {
    let s = secret.as_bytes();
    match provider {
        Provider::Stripe => {
            let tag = sign256(s, &joined(&format!("{now_s}."), body));
            let v = format!("t={now_s},v1={}", hex::encode(tag.as_ref()));
            set_header(headers, "Stripe-Signature", v);
        }
        Provider::Svix => {
            let key = key(hmac::HMAC_SHA256, &svix_key(secret)?);
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
                let tag = hmac::sign(&key, &joined(&format!("{id}.{now_s}."), body));
                set_header(headers, hid, id);
                set_header(headers, hts, now_s.to_string());
                set_header(headers, hsig, format!("v1,{}", B64.encode(tag.as_ref())));
            }
        }
        Provider::Github => {
            let v = format!("sha256={}", hex::encode(sign256(s, body).as_ref()));
            set_header(headers, "X-Hub-Signature-256", v);
        }
        Provider::Shopify => {
            let v = B64.encode(sign256(s, body).as_ref());
            let h = shopify_header(headers);
            set_header(headers, h, v);
        }
        Provider::Slack => {
            let tag = sign256(s, &joined(&format!("v0:{now_s}:"), body));
            set_header(headers, "X-Slack-Request-Timestamp", now_s.to_string());
            set_header(
                headers,
                "X-Slack-Signature",
                format!("v0={}", hex::encode(tag.as_ref())),
            );
        }
        Provider::Twilio => {
            let url = ctx.urls.first().ok_or(SignatureError::NeedsUrl)?;
            let params =
                twilio_params(headers, body, url).ok_or(SignatureError::Malformed("form body"))?;
            let k = key(twilio_algorithm(headers)?, s);
            let tag = hmac::sign(&k, format!("{url}{params}").as_bytes());
            set_header(headers, "X-Twilio-Signature", B64.encode(tag.as_ref()));
        }
        Provider::Paddle => {
            let tag = sign256(s, &joined(&format!("{now_s}:"), body));
            let v = format!("ts={now_s};h1={}", hex::encode(tag.as_ref()));
            set_header(headers, "Paddle-Signature", v);
        }
        Provider::Linear => {
            set_header(
                headers,
                "Linear-Signature",
                hex::encode(sign256(s, body).as_ref()),
            );
        }
        Provider::Hmac => {
            let default = HmacScheme::default();
            let scheme = ctx.hmac.unwrap_or(&default);
            let tag = hmac::sign(&key(scheme.ring_algorithm(), s), body);
            let v = format!(
                "{}{}",
                scheme.prefix,
                encode_tag(scheme.encoding, tag.as_ref())
            );
            set_header(headers, &scheme.header, v);
        }
        Provider::Paypal => {}
    }
    Ok(())
}

/// Why the local app may still refuse a correctly re-signed event, if it may:
/// Linear signs its timestamp inside the body, which beam never changes.
pub fn resign_warning(provider: Provider, body: &[u8], now_s: i64) -> Option<String> {
    match provider {
        Provider::Linear => {
            let t = linear_timestamp(body)?;
            let age = now_s - t;
            (age > 60).then(|| {
                format!(
                    "Linear signs webhookTimestamp inside the body, which beam delivers unchanged: this event is {age} s old and Linear's SDK refuses events older than 60 s"
                )
            })
        }
        Provider::Paypal => Some(
            "PayPal signatures cannot be re-signed: the event is delivered without a signature your app can check".into(),
        ),
        _ => None,
    }
}

/// Checks that `secret` can sign for `provider` (an svix secret must be
/// base64 after `whsec_`; PayPal cannot be verified at all).
pub fn check_secret(provider: Provider, secret: &str) -> Result<(), SignatureError> {
    match provider {
        Provider::Svix => svix_key(secret).map(|_| ()),
        Provider::Paypal => Err(SignatureError::Unsupported("paypal")),
        _ => Ok(()),
    }
}

//! Delivering a stored webhook event to a developer's local app: routes by
//! event type, the byte-exact request (hop-by-hop headers stripped,
//! `Content-Length` recomputed, `Host` rewritten), re-signing with the
//! developer's own secret, and retries with backoff.

use std::time::Duration;

use tokio::time::Instant;

use beam_proto::Secret;
use beam_proto::webhook::{self, WebhookEvent};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::LocalTarget;
use crate::local::LocalDialer;

/// How long one local delivery may take before it counts as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A `--forward` value that is not usable.
#[derive(Debug, thiserror::Error)]
#[error("--forward '{0}': {1}")]
pub struct RouteError(String, &'static str);

/// One forward target, optionally for matching event types only.
pub struct Route {
    /// Event type pattern (`invoice.*`); `None` takes every event.
    pub pattern: Option<String>,
    /// Where events go.
    pub url: Uri,
    client: Client<LocalDialer, Full<Bytes>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("pattern", &self.pattern)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// Parses `URL` or `TYPE=URL`.
    pub fn parse(spec: &str, insecure: bool) -> Result<Self, RouteError> {
        let err = |m| RouteError(spec.to_string(), m);
        let (pattern, url) = match spec.split_once('=') {
            // `=` inside the URL's query is not a type separator.
            Some((p, u)) if !p.contains("://") => (Some(p.trim().to_string()), u),
            _ => (None, spec),
        };
        if pattern.as_deref() == Some("") {
            return Err(err("the event type before '=' is empty"));
        }
        let url: Uri = url
            .parse()
            .map_err(|_| err("not a URL like http://localhost:3000/webhooks"))?;
        let https = match url.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(err("the URL must start with http:// or https://")),
        };
        let host = url
            .host()
            .ok_or_else(|| err("the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let dialer = LocalDialer::new(LocalTarget { host, port, https }, insecure);
        let client = Client::builder(TokioExecutor::new()).build(dialer);
        Ok(Self {
            pattern,
            url,
            client,
        })
    }

    fn matches(&self, event_type: Option<&str>) -> bool {
        match &self.pattern {
            None => true,
            Some(p) => webhook::type_matches(std::slice::from_ref(p), event_type),
        }
    }
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The local app's status, when it answered.
    pub status: Option<StatusCode>,
    /// Why there is no status.
    pub error: Option<String>,
    /// Time to the local answer.
    pub elapsed: Duration,
    /// Where it went.
    pub url: String,
}

impl Delivery {
    /// A 2xx answer: the event may be acknowledged.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.is_success())
    }
}

/// Delivers events to the routes, re-signed with the developer's secret.
#[derive(Debug)]
pub struct Forwarder {
    routes: Vec<Route>,
    secret: Secret,
}

impl Forwarder {
    /// A forwarder over parsed routes.
    pub fn new(routes: Vec<Route>, secret: Secret) -> Self {
        Self { routes, secret }
    }

    /// The route an event type goes to: the first typed route that matches,
    /// else the first untyped one.
    pub fn route_for(&self, event_type: Option<&str>) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.pattern.is_some() && r.matches(event_type))
            .or_else(|| self.routes.iter().find(|r| r.pattern.is_none()))
    }

    /// Builds the local request for `ev`. Verified events of re-signable
    /// providers get fresh signature headers made with the developer's secret;
    /// others (PayPal, unverified) keep what the provider sent.
    pub fn request(&self, ev: &WebhookEvent, url: &Uri, now_s: i64) -> Request<Full<Bytes>> {
        let mut headers = ev.headers.clone();
        let path = match (url.path_and_query(), &ev.query) {
            (Some(pq), _) if pq.query().is_some() => pq.to_string(),
            (Some(pq), Some(q)) => format!("{}?{q}", pq.path()),
            (Some(pq), None) => pq.path().to_string(),
            (None, Some(q)) => format!("/?{q}"),
            (None, None) => "/".into(),
        };
        let uri = format!(
            "{}://{}{path}",
            url.scheme_str().unwrap_or("http"),
            url.authority().map_or("localhost", |a| a.as_str())
        );
        if ev.verified && ev.provider.resignable() {
            // Twilio signs the URL: the one the local app is called at.
            let urls = [uri.clone()];
            let ctx = webhook::Context {
                urls: &urls,
                hmac: ev.hmac.as_ref(),
            };
            // The only failure is a malformed developer secret, which the CLI
            // generated itself; the event then goes out with its old signature.
            let _ = webhook::resign_with(
                ev.provider,
                self.secret.expose(),
                &mut headers,
                &ev.body,
                now_s,
                &ctx,
            );
        }
        let connection_named: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
            .collect();
        let mut req = Request::new(Full::new(Bytes::from(ev.body.clone())));
        *req.method_mut() = ev.method.parse().unwrap_or(http::Method::POST);
        *req.uri_mut() = uri.parse().unwrap_or_else(|_| url.clone());
        let h = req.headers_mut();
        for (k, v) in &headers {
            let lower = k.to_ascii_lowercase();
            if beam_proto::headers::HOP_BY_HOP.contains(&lower.as_str())
                || connection_named.contains(&lower)
                || lower == "host"
                || lower == "content-length"
            {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.append(name, value);
            }
        }
        if let Some(a) = url.authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            h.insert(header::HOST, v);
        }
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(ev.body.len()));
        req
    }

    /// One delivery attempt of `ev` to its route.
    pub async fn deliver(&self, ev: &WebhookEvent, now_s: i64) -> Option<Delivery> {
        let route = self.route_for(ev.event_type.as_deref())?;
        let req = self.request(ev, &route.url, now_s);
        let url = route.url.to_string();
        let start = Instant::now();
        let result = tokio::time::timeout(DELIVERY_TIMEOUT, async {
            let resp = route.client.request(req).await?;
            let status = resp.status();
            // Read the answer so the connection can be reused.
            let _ = resp.into_body().collect().await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        })
        .await;
        let elapsed = start.elapsed();
        let (status, error) = match result {
            Ok(Ok(s)) => (Some(s), None),
            Ok(Err(e)) => (None, Some(describe_error(&e))),
            Err(_) => (
                None,
                Some(format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())),
            ),
        };
        Some(Delivery {
            status,
            error,
            elapsed,
            url,
        })
    }
}

fn describe_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Backoff between attempts of one event: 0.5 s doubling up to 8 s.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(500u64 << attempt.min(4))
}

#[cfg(test)]
mod tests {
    use super::*;
    use beam_proto::webhook::Provider;

    fn event() -> WebhookEvent {
        WebhookEvent {
            id: 1,
            provider: Provider::Stripe,
            event_id: Some("evt_1".into()),
            event_type: Some("invoice.paid".into()),
            method: "POST".into(),
            path: "/hooks/1/shop/production/stripe".into(),
            query: Some("a=1".into()),
            headers: vec![
                ("Host".into(), "beam.example".into()),
                ("Content-Length".into(), "999".into()),
                ("Connection".into(), "keep-alive, x-hop".into()),
                ("x-hop".into(), "1".into()),
                ("Stripe-Signature".into(), "t=1,v1=00".into()),
                ("X-Multi".into(), "a".into()),
                ("X-Multi".into(), "b".into()),
            ],
            body: b"{ \"id\" : \"evt_1\" }\n".to_vec(),
            verified: true,
            received_at: 0,
            hmac: None,
        }
    }

    #[tokio::test]
    async fn requests_are_byte_exact_resigned_and_cleaned() {
        let f = Forwarder::new(
            vec![
                Route::parse("invoice.*=http://127.0.0.1:1/inv", false).unwrap(),
                Route::parse("http://127.0.0.1:1/all?x=y=z", false).unwrap(),
            ],
            Secret::new("whsec_dev"),
        );
        let ev = event();
        assert_eq!(
            f.route_for(Some("invoice.paid")).unwrap().url.path(),
            "/inv"
        );
        assert_eq!(
            f.route_for(Some("charge.failed")).unwrap().url.path(),
            "/all"
        );
        let req = f.request(&ev, &f.routes[0].url, 77);
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:1/inv?a=1");
        let h = req.headers();
        assert_eq!(h["host"], "127.0.0.1:1");
        assert_eq!(h["content-length"], ev.body.len().to_string().as_str());
        assert!(h.get("connection").is_none() && h.get("x-hop").is_none());
        let multi: Vec<_> = h.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["a", "b"]);
        let sig: Vec<(String, String)> = vec![(
            "stripe-signature".into(),
            h["stripe-signature"].to_str().unwrap().into(),
        )];
        assert_eq!(
            webhook::verify(Provider::Stripe, "whsec_dev", &sig, &ev.body, 77),
            Ok(())
        );
        let body = req.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], &ev.body[..]);

        // The forward URL's own query wins over the event's.
        let req = f.request(&ev, &f.routes[1].url, 77);
        assert_eq!(req.uri().path_and_query().unwrap().as_str(), "/all?x=y=z");

        // Unverified events are not re-signed.
        let mut unverified = event();
        unverified.verified = false;
        let req = f.request(&unverified, &f.routes[0].url, 77);
        assert_eq!(req.headers()["stripe-signature"], "t=1,v1=00");
    }

    #[test]
    fn bad_routes_are_explained() {
        for (spec, want) in [
            ("localhost:3000", "must start with http"),
            ("=http://x/", "empty"),
            ("ftp://x/", "must start with http"),
            ("http://", "not a URL"),
        ] {
            let e = Route::parse(spec, false).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
        assert_eq!(retry_delay(0), Duration::from_millis(500));
        assert_eq!(retry_delay(9), Duration::from_secs(8));
    }
}

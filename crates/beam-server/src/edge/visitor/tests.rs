//! Tests of visitor protection.

use super::*;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

fn policy(p: Protection) -> Policy {
    Policy::new(&p, &ServerConfig::dev()).unwrap()
}

#[test]
fn cidr_allow_and_deny_with_mapped_addresses() {
    let p = policy(Protection {
        allow_cidr: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
        deny_cidr: vec!["10.9.0.0/16".into()],
        ..Default::default()
    });
    let ok = |s: &str| p.admit(s.parse().unwrap()).is_ok();
    assert!(ok("10.1.2.3"));
    assert!(ok("::ffff:10.1.2.3"));
    assert!(ok("2001:db8::5"));
    assert!(!ok("10.9.1.1"), "deny wins over allow");
    assert!(!ok("192.168.1.1"));
    let e = Policy::new(
        &Protection {
            deny_cidr: vec!["10.0.0.0/33".into()],
            ..Default::default()
        },
        &ServerConfig::dev(),
    )
    .err()
    .unwrap();
    assert!(
        e.contains("--deny-cidr: '10.0.0.0/33' is not a network"),
        "{e}"
    );
}

#[test]
fn per_visitor_rate_limit_gives_whole_seconds() {
    let p = policy(Protection {
        rate_per_minute: Some(2),
        ..Default::default()
    });
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    assert!(p.admit(ip).is_ok());
    assert!(p.admit(ip).is_ok());
    match p.admit(ip) {
        Err(Refused::Rate { scope, retry_after }) => {
            assert_eq!(scope, "visitor");
            // 2 per minute: the next cell frees up in about 30 s.
            assert!((29..=30).contains(&retry_after), "{retry_after}");
        }
        other => panic!("expected a rate refusal, got {other:?}"),
    }
    assert!(p.admit("192.0.2.2".parse().unwrap()).is_ok(), "per address");
    assert_eq!(retry_after(Duration::from_millis(1)), 1);
    assert_eq!(retry_after(Duration::from_millis(1001)), 2);
}

#[test]
fn cors_origins_are_validated_and_matched_exactly() {
    assert!(parse_cors(&["app.example.com".into()]).is_err());
    assert!(parse_cors(&["https://a.example/path".into()]).is_err());
    let p = policy(Protection {
        cors: vec!["https://App.Example.com/".into()],
        ..Default::default()
    });
    let mut h = HeaderMap::new();
    h.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://app.example.com"),
    );
    h.insert(
        header::ACCESS_CONTROL_REQUEST_METHOD,
        HeaderValue::from_static("PUT"),
    );
    let (status, out) = p.cors.preflight(&Method::OPTIONS, &h).unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        out[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    h.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.example"),
    );
    assert_eq!(
        p.cors.preflight(&Method::OPTIONS, &h).unwrap().0,
        StatusCode::FORBIDDEN
    );
    assert!(!p.cors.upgrade_allowed(h.get(header::ORIGIN)));
    assert!(
        p.cors.upgrade_allowed(None),
        "non-browser clients send no Origin"
    );
    assert!(
        policy(Protection::default())
            .cors
            .preflight(&Method::OPTIONS, &h)
            .is_none()
    );
}

//! Tests of webhook events and the providers' signature schemes.

use super::*;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn stripe_signatures_verify_resign_and_refuse_stale_or_wrong() {
    let body = br#"{ "id":"evt_1",  "type":"payment_intent.succeeded" }"#;
    let prod = "whsec_prod";
    let mut headers = h(&[("content-type", "application/json")]);
    resign(Provider::Stripe, prod, &mut headers, body, 1_000).unwrap();
    assert_eq!(
        verify(Provider::Stripe, prod, &headers, body, 1_100),
        Ok(())
    );
    assert_eq!(
        verify(Provider::Stripe, "whsec_other", &headers, body, 1_100),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(Provider::Stripe, prod, &headers, body, 2_000),
        Err(SignatureError::Stale {
            skew: 1_000,
            tolerance: 300
        })
    );
    let mut tampered = body.to_vec();
    tampered[3] = b'X';
    assert_eq!(
        verify(Provider::Stripe, prod, &headers, &tampered, 1_000),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(Provider::Stripe, prod, &h(&[]), body, 1_000),
        Err(SignatureError::Missing("Stripe-Signature"))
    );
    // Re-signing replaces the old signature rather than adding one.
    resign(Provider::Stripe, "whsec_dev", &mut headers, body, 5_000).unwrap();
    assert_eq!(headers.len(), 2);
    assert_eq!(
        verify(Provider::Stripe, "whsec_dev", &headers, body, 5_000),
        Ok(())
    );
    assert_eq!(
        describe(Provider::Stripe, &headers, body),
        (
            Some("evt_1".into()),
            Some("payment_intent.succeeded".into())
        )
    );
}

#[test]
fn stripe_signature_matches_openssl() {
    // printf '1.{}' | openssl dgst -sha256 -hmac whsec_test
    let mut mine = Vec::new();
    resign(Provider::Stripe, "whsec_test", &mut mine, b"{}", 1).unwrap();
    assert_eq!(
        header(&mine, "stripe-signature").unwrap(),
        "t=1,v1=7500d5d4be4b3ef07af1fe56f7d522d135cdaa7530de557e67cc1049c52de094"
    );
}

#[test]
fn svix_and_standard_webhooks_and_github() {
    let secret = new_dev_secret([7; 32]);
    let body = b"{\"type\":\"email.sent\"}";
    let mut headers = h(&[("svix-id", "msg_1")]);
    resign(Provider::Svix, &secret, &mut headers, body, 10).unwrap();
    assert_eq!(verify(Provider::Svix, &secret, &headers, body, 10), Ok(()));
    assert_eq!(
        describe(Provider::Svix, &headers, body),
        (Some("msg_1".into()), Some("email.sent".into()))
    );
    let mut std_hooks = h(&[("webhook-id", "m2"), ("webhook-signature", "v1,x")]);
    resign(Provider::Svix, &secret, &mut std_hooks, body, 10).unwrap();
    assert!(header(&std_hooks, "svix-signature").is_none());
    assert_eq!(
        verify(Provider::Svix, &secret, &std_hooks, body, 10),
        Ok(())
    );
    // Both families present: both are re-signed, no stale signature stays.
    let mut both = h(&[
        ("svix-id", "m3"),
        ("svix-signature", "v1,stale"),
        ("webhook-id", "m3"),
        ("webhook-signature", "v1,stale"),
    ]);
    resign(Provider::Svix, &secret, &mut both, body, 10).unwrap();
    assert_ne!(header(&both, "webhook-signature"), Some("v1,stale"));
    assert_eq!(
        header(&both, "svix-signature"),
        header(&both, "webhook-signature")
    );
    assert_eq!(
        verify(Provider::Svix, "whsec_!!", &headers, body, 10),
        Err(SignatureError::BadSecret("svix"))
    );

    let mut c = Vec::new();
    resign(Provider::Github, "s3cret", &mut c, b"hello", 0).unwrap();
    assert_eq!(verify(Provider::Github, "s3cret", &c, b"hello", 0), Ok(()));
    assert_eq!(
        verify(Provider::Github, "s3cret", &c, b"hellO", 0),
        Err(SignatureError::Mismatch)
    );
    assert!(verify(Provider::Paypal, "x", &c, b"", 0).is_err());
    assert!(!Provider::Paypal.resignable());
}

#[test]
fn github_signature_matches_openssl() {
    // printf 'hello' | openssl dgst -sha256 -hmac key
    let mut c = Vec::new();
    resign(Provider::Github, "key", &mut c, b"hello", 0).unwrap();
    assert_eq!(
        header(&c, "x-hub-signature-256").unwrap(),
        "sha256=9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"
    );
}

#[test]
fn event_type_globs() {
    let p = vec!["payment_intent.*".to_string(), "invoice.paid".to_string()];
    assert!(type_matches(&p, Some("payment_intent.succeeded")));
    assert!(type_matches(&p, Some("invoice.paid")));
    assert!(!type_matches(&p, Some("invoice.created")));
    assert!(!type_matches(&p, None));
    assert!(type_matches(&[], None));
    assert!(type_matches(&["*".into()], None));
    assert!(type_matches(&["a*c*e".into()], Some("abcde")));
    assert!(!type_matches(&["a*c*e".into()], Some("ace_")));
    assert!(!type_matches(&["ab*ba".into()], Some("aba")));
    // Multi-byte characters never split (this pattern once panicked).
    assert!(!type_matches(&["a*é".into()], Some("aéb")));
    assert!(type_matches(&["é*é".into()], Some("ééé")));
    assert!(!type_matches(&["é*é".into()], Some("é")));
}

#[test]
fn events_round_trip_with_raw_bodies() {
    let e = WebhookEvent {
        id: 1,
        provider: Provider::Stripe,
        event_id: None,
        event_type: None,
        method: "POST".into(),
        path: "/hooks/x".into(),
        query: None,
        headers: h(&[("a", "1"), ("a", "2")]),
        body: vec![0, 255, b' ', b'\n'],
        verified: true,
        received_at: 5,
        hmac: None,
    };
    let s = serde_json::to_string(&e).unwrap();
    assert_eq!(serde_json::from_str::<WebhookEvent>(&s).unwrap(), e);
    assert_eq!(Provider::parse("Resend"), Some(Provider::Svix));
    assert_eq!(Provider::parse("x"), None);
    // `custom` was GitHub's scheme before providers had names: stored events,
    // sources files and receiver URLs that say so keep working.
    assert_eq!(Provider::parse("custom"), Some(Provider::Github));
    let old = s.replace("\"stripe\"", "\"custom\"");
    assert_eq!(
        serde_json::from_str::<WebhookEvent>(&old).unwrap().provider,
        Provider::Github
    );
    for p in Provider::ALL {
        assert_eq!(Provider::parse(p.as_str()), Some(p));
        assert!(Provider::NAMES.contains(p.as_str()));
    }
}

#[test]
fn github_documented_test_vector() {
    // docs.github.com, "Validating webhook deliveries": testing the
    // implementation with this secret, payload and signature.
    let headers = h(&[(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    let secret = "It's a Secret to Everybody";
    assert_eq!(
        verify(Provider::Github, secret, &headers, b"Hello, World!", 0),
        Ok(())
    );
    let mut mine = Vec::new();
    resign(Provider::Github, secret, &mut mine, b"Hello, World!", 0).unwrap();
    assert_eq!(mine, headers);
}

#[test]
fn slack_documented_example() {
    // api.slack.com, "Verifying requests from Slack": the worked example.
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let headers = h(&[
        ("X-Slack-Request-Timestamp", "1531420618"),
        (
            "X-Slack-Signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
    ]);
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    assert_eq!(
        verify(Provider::Slack, secret, &headers, body, 1531420618),
        Ok(())
    );
    assert_eq!(
        verify(Provider::Slack, secret, &headers, body, 1531420618 + 301),
        Err(SignatureError::Stale {
            skew: 301,
            tolerance: 300
        })
    );
    assert_eq!(
        describe(Provider::Slack, &headers, body).1.as_deref(),
        Some("/webhook-collect")
    );
}

#[test]
fn twilio_signs_the_url_and_sorted_form_parameters() {
    // The example of Twilio's security documentation and of its libraries'
    // tests: auth token 12345, this URL and these parameters.
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2".to_string();
    let body = b"To=%2B18005551212&From=%2B14158675309&Digits=1234&Caller=%2B14158675309&CallSid=CA1234567890ABCDE";
    let mut headers = h(&[("Content-Type", "application/x-www-form-urlencoded")]);
    let ctx = Context {
        urls: std::slice::from_ref(&url),
        hmac: None,
    };
    resign_with(Provider::Twilio, "12345", &mut headers, body, 0, &ctx).unwrap();
    assert_eq!(
        header(&headers, "X-Twilio-Signature"),
        Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    );
    assert_eq!(
        verify_with(Provider::Twilio, "12345", &headers, body, 0, &ctx),
        Ok(())
    );
    // The same URL with its default port (a proxy may add it) still verifies.
    let with_port = ["https://mycompany.com:443/myapp.php?foo=1&bar=2".to_string()];
    let ported = Context {
        urls: &with_port,
        hmac: None,
    };
    assert_eq!(
        verify_with(Provider::Twilio, "12345", &headers, body, 0, &ported),
        Ok(())
    );
    // Another URL, a changed parameter, or no URL at all does not.
    let other = ["https://mycompany.com/other.php?foo=1&bar=2".to_string()];
    let elsewhere = Context {
        urls: &other,
        hmac: None,
    };
    assert_eq!(
        verify_with(Provider::Twilio, "12345", &headers, body, 0, &elsewhere),
        Err(SignatureError::Mismatch)
    );
    let changed = b"To=%2B18005551212&From=%2B14158675309&Digits=9999&Caller=%2B14158675309&CallSid=CA1234567890ABCDE";
    assert_eq!(
        verify_with(Provider::Twilio, "12345", &headers, changed, 0, &ctx),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(Provider::Twilio, "12345", &headers, body, 0),
        Err(SignatureError::NeedsUrl)
    );
    assert_eq!(
        describe(Provider::Twilio, &headers, body).1,
        None,
        "a call without CallStatus has no type"
    );
    // A shared key with HMAC-SHA256, when the request says so.
    let mut sha256_headers = h(&[
        ("Content-Type", "application/x-www-form-urlencoded"),
        (
            "X-Twilio-Webhooks-Signature-Settings",
            "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
        ),
    ]);
    resign_with(
        Provider::Twilio,
        "shared",
        &mut sha256_headers,
        body,
        0,
        &ctx,
    )
    .unwrap();
    let tag = header(&sha256_headers, "X-Twilio-Signature").unwrap();
    assert_eq!(B64.decode(tag).unwrap().len(), 32, "a SHA-256 tag");
    assert_eq!(
        verify_with(Provider::Twilio, "shared", &sha256_headers, body, 0, &ctx),
        Ok(())
    );
    // JSON bodies are covered by the URL's bodySHA256 parameter instead.
    let json = br#"{"a":1}"#;
    let hash = crate::hex::encode(&sha256(json));
    let jurl = [format!("https://example.com/hook?bodySHA256={hash}")];
    let jctx = Context {
        urls: &jurl,
        hmac: None,
    };
    let mut jh = h(&[("Content-Type", "application/json")]);
    resign_with(Provider::Twilio, "tok", &mut jh, json, 0, &jctx).unwrap();
    assert_eq!(
        verify_with(Provider::Twilio, "tok", &jh, json, 0, &jctx),
        Ok(())
    );
    assert_eq!(
        verify_with(Provider::Twilio, "tok", &jh, br#"{"a":2}"#, 0, &jctx),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn shopify_paddle_linear_round_trip_and_refuse_tampering() {
    let body = br#"{"event_id":"evt_01","event_type":"transaction.completed","type":"Issue","action":"create","webhookTimestamp":1700000000000}"#;
    for (p, now) in [
        (Provider::Shopify, 0),
        (Provider::Paddle, 1_700_000_000),
        (Provider::Linear, 1_700_000_000),
    ] {
        let mut headers = Vec::new();
        resign(p, "sek", &mut headers, body, now).unwrap();
        assert_eq!(verify(p, "sek", &headers, body, now), Ok(()), "{p}");
        assert_eq!(
            verify(p, "other", &headers, body, now),
            Err(SignatureError::Mismatch),
            "{p}"
        );
        let mut tampered = body.to_vec();
        tampered[5] ^= 1;
        assert_eq!(
            verify(p, "sek", &headers, &tampered, now),
            Err(SignatureError::Mismatch),
            "{p}"
        );
    }
    // Paddle allows 5 s, Linear 60 s (their SDKs' defaults).
    let mut ph = Vec::new();
    resign(Provider::Paddle, "sek", &mut ph, body, 100).unwrap();
    assert!(matches!(
        verify(Provider::Paddle, "sek", &ph, body, 106),
        Err(SignatureError::Stale { tolerance: 5, .. })
    ));
    let mut lh = Vec::new();
    resign(Provider::Linear, "sek", &mut lh, body, 0).unwrap();
    assert!(matches!(
        verify(Provider::Linear, "sek", &lh, body, 1_700_000_061),
        Err(SignatureError::Stale { tolerance: 60, .. })
    ));
    assert!(resign_warning(Provider::Linear, body, 1_700_000_061).is_some());
    assert!(resign_warning(Provider::Linear, body, 1_700_000_010).is_none());
    assert_eq!(
        describe(Provider::Paddle, &ph, body),
        (Some("evt_01".into()), Some("transaction.completed".into()))
    );
    assert_eq!(
        describe(Provider::Linear, &lh, body).1.as_deref(),
        Some("Issue.create")
    );
    // Shopify's tag is base64 of the HMAC-SHA256 of the body:
    // printf 'hello' | openssl dgst -sha256 -hmac key -binary | base64
    let mut sh = Vec::new();
    resign(Provider::Shopify, "key", &mut sh, b"hello", 0).unwrap();
    assert_eq!(
        header(&sh, "X-Shopify-Hmac-Sha256"),
        Some("kwezuRXvtRcf8U2MtV+8x5jGwO8UVtZt7RpqpyOli3s=")
    );
}

#[test]
fn generic_hmac_follows_its_configured_scheme() {
    let scheme = HmacScheme::parse(
        "header=X-Acme-Signature,algorithm=sha512,encoding=base64,prefix=sha512=",
    )
    .unwrap();
    let ctx = Context {
        urls: &[],
        hmac: Some(&scheme),
    };
    let mut headers = Vec::new();
    resign_with(Provider::Hmac, "k", &mut headers, b"payload", 0, &ctx).unwrap();
    let v = header(&headers, "x-acme-signature").unwrap();
    assert!(
        v.starts_with("sha512=") && v.len() == "sha512=".len() + 88,
        "{v}"
    );
    assert_eq!(
        verify_with(Provider::Hmac, "k", &headers, b"payload", 0, &ctx),
        Ok(())
    );
    assert_eq!(
        verify_with(Provider::Hmac, "k", &headers, b"payloaD", 0, &ctx),
        Err(SignatureError::Mismatch)
    );
    // Without the prefix, or under the default scheme, it is refused clearly.
    let bare = h(&[("X-Acme-Signature", v.trim_start_matches("sha512="))]);
    assert_eq!(
        verify_with(Provider::Hmac, "k", &bare, b"payload", 0, &ctx),
        Err(SignatureError::MalformedNamed("X-Acme-Signature".into()))
    );
    assert_eq!(
        verify(Provider::Hmac, "k", &headers, b"payload", 0),
        Err(SignatureError::MissingNamed("X-Signature".into()))
    );
    // The default: hex HMAC-SHA256 in X-Signature.
    // printf 'hello' | openssl dgst -sha256 -hmac key
    let mut d = Vec::new();
    resign(Provider::Hmac, "key", &mut d, b"hello", 0).unwrap();
    assert_eq!(
        d,
        h(&[(
            "X-Signature",
            "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"
        )])
    );
    for (bad, why) in [
        ("header=Bad Header", "not a valid header name"),
        ("header=Authorization", "cannot carry a signature"),
        ("algorithm=md5", "not sha256, sha512 or sha1"),
        ("encoding=base32", "not hex or base64"),
        ("colour=red", "not one of header"),
        ("header", "not NAME=VALUE"),
    ] {
        let e = HmacScheme::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    assert!(dropped("x-acme-signature", Some(&scheme)));
    assert!(dropped("X-Twilio-Signature", None));
    assert!(!dropped("x-acme-signature", None));
}

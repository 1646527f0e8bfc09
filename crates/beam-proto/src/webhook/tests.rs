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
        Err(SignatureError::Stale(1_000))
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
fn svix_and_standard_webhooks_and_custom() {
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
    resign(Provider::Custom, "s3cret", &mut c, b"hello", 0).unwrap();
    assert_eq!(verify(Provider::Custom, "s3cret", &c, b"hello", 0), Ok(()));
    assert_eq!(
        verify(Provider::Custom, "s3cret", &c, b"hellO", 0),
        Err(SignatureError::Mismatch)
    );
    assert!(verify(Provider::Paypal, "x", &c, b"", 0).is_err());
    assert!(!Provider::Paypal.resignable());
}

#[test]
fn custom_signature_matches_openssl() {
    // printf 'hello' | openssl dgst -sha256 -hmac key
    let mut c = Vec::new();
    resign(Provider::Custom, "key", &mut c, b"hello", 0).unwrap();
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
    };
    let s = serde_json::to_string(&e).unwrap();
    assert_eq!(serde_json::from_str::<WebhookEvent>(&s).unwrap(), e);
    assert_eq!(Provider::parse("Resend"), Some(Provider::Svix));
    assert_eq!(Provider::parse("x"), None);
}

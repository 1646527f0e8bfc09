//! Accounts (register, login, logout, password reset) and rate limits on the
//! auth routes.

use beam_server::store::now_ms;
use http::StatusCode;
use serde_json::json;

use super::PASSWORD;
use crate::support::*;

crate::both!(
    accounts_never_reveal_emails_and_sessions_end,
    |backend| async move {
        let mail = MailCatcher::new();
        let server = TestServer::start_on(backend, |c| {
            c.mailer = Some(beam_server::accounts::mail::Mailer {
                command: mail.program.clone(),
                from: "beam@localhost".into(),
            })
        })
        .await;
        let body = |email: &str, pw: &str| Some(json!({ "email": email, "password": pw }));

        let first = server
            .api(
                "POST",
                "/api/auth/register",
                None,
                body("a@example.com", PASSWORD),
            )
            .await;
        let again = server
            .api(
                "POST",
                "/api/auth/register",
                None,
                body("A@Example.com", "another password!"),
            )
            .await;
        assert_eq!(first.status, StatusCode::ACCEPTED);
        assert_eq!(
            (again.status, &again.json),
            (first.status, &first.json),
            "same answer for a taken email"
        );

        let r = server
            .api(
                "POST",
                "/api/auth/register",
                None,
                body("not-an-email", PASSWORD),
            )
            .await;
        assert_eq!(
            (r.status, r.message()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "'email' is not a valid email address"
            )
        );
        let r = server
            .api(
                "POST",
                "/api/auth/register",
                None,
                body("b@example.com", "short"),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.message().contains("at least 10 characters"), "{r:?}");

        // Wrong password and unknown email look the same.
        let wrong = server
            .api(
                "POST",
                "/api/auth/login",
                None,
                body("a@example.com", "wrong password"),
            )
            .await;
        let unknown = server
            .api(
                "POST",
                "/api/auth/login",
                None,
                body("nobody@example.com", PASSWORD),
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!((unknown.status, &unknown.json), (wrong.status, &wrong.json));
        assert_eq!(wrong.message(), "wrong email or password");

        // The second registration did not change the password.
        let login = server
            .api(
                "POST",
                "/api/auth/login",
                None,
                body("a@example.com", PASSWORD),
            )
            .await;
        assert_eq!(login.status, StatusCode::OK, "{login:?}");
        let session = login.json["token"].as_str().unwrap().to_string();
        assert!(session.starts_with("beamsess_"));
        assert!(login.json["expires_at"].as_i64().unwrap() > now_ms());
        let me = server.api("GET", "/api/me", Some(&session), None).await;
        assert_eq!(me.json["user"]["email"], "a@example.com");
        assert_eq!(me.json["org"]["role"], "owner");
        assert_eq!(me.json["token_kind"], "session");
        assert!(
            me.json["scopes"]
                .as_array()
                .unwrap()
                .contains(&json!("admin"))
        );

        let r = server
            .api("POST", "/api/auth/logout", Some(&session), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = server.api("GET", "/api/me", Some(&session), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.message().contains("revoked"), "{r:?}");
        assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"beam\"");

        // forgot-password: same answer for known and unknown addresses.
        let known = server
            .api(
                "POST",
                "/api/auth/forgot-password",
                None,
                Some(json!({ "email": "a@example.com" })),
            )
            .await;
        let unknown = server
            .api(
                "POST",
                "/api/auth/forgot-password",
                None,
                Some(json!({ "email": "zz@example.com" })),
            )
            .await;
        assert_eq!(known.status, StatusCode::ACCEPTED);
        assert_eq!((known.status, &known.json), (unknown.status, &unknown.json));

        // The reset token arrives by mail (one message: none for the unknown address).
        let session2 = server
            .api(
                "POST",
                "/api/auth/login",
                None,
                body("a@example.com", PASSWORD),
            )
            .await
            .json["token"]
            .as_str()
            .unwrap()
            .to_string();
        let message = eventually("reset mail", || async {
            mail.read_subject("Reset your beam password")
        })
        .await;
        assert!(
            message.starts_with(
                "From: beam@localhost\r\nTo: a@example.com\r\nSubject: Reset your beam password\r\n"
            ),
            "{message}"
        );
        assert!(!message.contains("zz@example.com"));
        let reset = message
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .find(|w| w.starts_with("beamreset_"))
            .expect("a reset token in the mail")
            .to_string();
        let reset = reset.as_str();
        // A reset token is not an API credential.
        assert_eq!(
            server.api("GET", "/api/me", Some(reset), None).await.status,
            StatusCode::UNAUTHORIZED
        );
        let new_pw = json!({ "token": reset, "password": "a brand new password" });
        let r = server
            .api(
                "POST",
                "/api/auth/reset-password",
                None,
                Some(new_pw.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        let r = server
            .api("POST", "/api/auth/reset-password", None, Some(new_pw))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "invalid_token"),
            "used once"
        );
        assert_eq!(
            server
                .api("GET", "/api/me", Some(&session2), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            server
                .api(
                    "POST",
                    "/api/auth/login",
                    None,
                    body("a@example.com", PASSWORD)
                )
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            server
                .api(
                    "POST",
                    "/api/auth/login",
                    None,
                    body("a@example.com", "a brand new password")
                )
                .await
                .status,
            StatusCode::OK
        );
    }
);

crate::both!(auth_endpoints_are_rate_limited, |backend| async move {
    let server = TestServer::start_on(backend, |c| c.auth_rate_per_minute = 3).await;
    let body = Some(json!({ "email": "x@example.com", "password": "wrong password!" }));
    for _ in 0..3 {
        assert_eq!(
            server
                .api("POST", "/api/auth/login", None, body.clone())
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = server.api("POST", "/api/auth/login", None, body).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1..=60).contains(&retry),
        "Retry-After is a delta in seconds: {retry}"
    );
    let r = server
        .api(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({ "email": "y@example.com", "password": PASSWORD })),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "per address, across auth routes"
    );
});

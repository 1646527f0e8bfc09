//! The REST API against a live server, every test on SQLite and on PostgreSQL:
//! accounts, scoped tokens, tunnels (pause, resume, stop), plan limits, analytics,
//! rate limits, malformed requests, and the OpenAPI document.

use std::time::Duration;

use beam_agent::ClientError;
use beam_proto::{ErrorCode, TunnelRequest};
use beam_server::auth::hash_secret;
use beam_server::scope::Scopes;
use beam_server::store::{NewToken, TokenKind, now_ms};
use http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const PASSWORD: &str = "correct horse battery";

fn http(subdomain: Option<&str>) -> TunnelRequest {
    TunnelRequest::Http {
        subdomain: subdomain.map(String::from),
        domain: None,
    }
}

/// Polls `f` until it returns `Some`, for state that changes in the background
/// (analytics flushes, quota refreshes). Bounded by [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(v) = f().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
}

crate::both!(
    accounts_never_reveal_emails_and_sessions_end,
    |backend| async move {
        let server = TestServer::start_on(backend, |_| {}).await;
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

        // A reset token (delivered out of band) sets a new password once and ends sessions.
        let user = server
            .store
            .user_by_email("a@example.com")
            .await
            .unwrap()
            .unwrap();
        let (org, _) = server.store.home_org(user.id).await.unwrap().unwrap();
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
        let reset = "beamreset_test_token_value";
        server
            .store
            .insert_token(
                &NewToken {
                    hash: &hash_secret(reset),
                    description: "reset",
                    user_id: user.id,
                    org_id: org,
                    scopes: Scopes::default(),
                    kind: TokenKind::Reset,
                    expires_at: Some(now_ms() + 60_000),
                },
                now_ms(),
            )
            .await
            .unwrap();
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

crate::both!(
    tokens_are_scoped_revocable_and_expire,
    |backend| async move {
        let server = TestServer::start_on(backend, |_| {}).await;
        let origin = Origin::start().await;
        let alice = server.user("alice@example.com").await;
        let bob = server.user("bob@example.com").await;

        let created = server
            .api(
                "POST",
                "/api/tokens",
                Some(&alice),
                Some(json!({ "description": "ci", "scopes": ["tunnels:read"] })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        let read_only = created.json["token"].as_str().unwrap().to_string();
        assert!(read_only.starts_with("beam_"));
        let id = created.json["id"].as_i64().unwrap();

        // The token is shown once: listings never contain it.
        let list = server.api("GET", "/api/tokens", Some(&alice), None).await;
        assert_eq!(list.json.as_array().unwrap().len(), 1);
        assert!(!list.json.to_string().contains(&read_only));
        let stored = server
            .store
            .find_token(&hash_secret(&read_only))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.hash,
            hash_secret(&read_only).to_vec(),
            "only the hash is stored"
        );

        // Scopes: reading works, writing is 403, managing tokens is 403.
        assert_eq!(
            server
                .api("GET", "/api/tunnels", Some(&read_only), None)
                .await
                .status,
            StatusCode::OK
        );
        let r = server
            .api(
                "POST",
                "/api/tunnels",
                Some(&read_only),
                Some(json!({ "kind": "http" })),
            )
            .await;
        assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
        assert!(
            r.message().contains("lacks the 'tunnels:write' scope"),
            "{r:?}"
        );
        assert_eq!(
            server
                .api("GET", "/api/tokens", Some(&read_only), None)
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        // A read-only token cannot open a tunnel either.
        let refusal = TestClient::start(server.client_with(&read_only, http(None), origin.addr))
            .refused()
            .await;
        assert_eq!(refusal.code, ErrorCode::Unauthorized);
        assert!(
            refusal.message.contains("tunnels:write"),
            "{}",
            refusal.message
        );

        let r = server
            .api(
                "POST",
                "/api/tokens",
                Some(&alice),
                Some(json!({ "description": "x", "scopes": ["tunnels:rw"] })),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown scope: {r:?}"
        );
        let r = server
            .api(
                "POST",
                "/api/tokens",
                Some(&alice),
                Some(json!({ "description": "", "scopes": ["tunnels:read"] })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Bob cannot revoke Alice's token: 404, not 403, so ids are not probed.
        let r = server
            .api("DELETE", &format!("/api/tokens/{id}"), Some(&bob), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        // Revoking a token disconnects its tunnel, and the client stops with the reason.
        let writer = server.api_token(&alice, &["tunnels:write"]).await;
        let mut client = TestClient::start(server.client_with(&writer, http(None), origin.addr));
        client.connected().await;
        let writer_id = server
            .store
            .find_token(&hash_secret(&writer))
            .await
            .unwrap()
            .unwrap()
            .id;
        let r = server
            .api(
                "DELETE",
                &format!("/api/tokens/{writer_id}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let err = client.result().await.unwrap_err();
        let refusal = refusal_of(err);
        assert_eq!(refusal.code, ErrorCode::Unauthorized);
        assert!(refusal.message.contains("revoked"), "{}", refusal.message);
        let r = server.api("GET", "/api/tunnels", Some(&writer), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.message().contains("revoked"));

        // Expired tokens: 401 with their own code.
        let (user, org) = {
            let u = server
                .store
                .user_by_email("alice@example.com")
                .await
                .unwrap()
                .unwrap();
            (u.id, server.store.home_org(u.id).await.unwrap().unwrap().0)
        };
        let old = "beam_expired_api_token_for_the_api_test";
        server
            .store
            .insert_token(
                &NewToken {
                    hash: &hash_secret(old),
                    description: "old",
                    user_id: user,
                    org_id: org,
                    scopes: Scopes::all(),
                    kind: TokenKind::Api,
                    expires_at: Some(now_ms() - 1),
                },
                now_ms(),
            )
            .await
            .unwrap();
        let r = server.api("GET", "/api/tunnels", Some(old), None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "token_expired")
        );

        // Missing or malformed credentials.
        let r = server.api("GET", "/api/tunnels", None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.message().contains("missing Authorization"));
        let r = server
            .api_raw("GET", "/api/tunnels?token=beam_x", None, None, vec![])
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "tokens are never read from the URL"
        );
    }
);

crate::both!(
    tunnels_pause_resume_and_stop_on_the_edge_at_once,
    |backend| async move {
        let server = TestServer::start_on(backend, |_| {}).await;
        let origin = Origin::start().await;
        let alice = server.user("alice@example.com").await;
        let bob = server.user("bob@example.com").await;
        let alice_cli = server
            .api_token(&alice, &["tunnels:write", "tunnels:read"])
            .await;
        let bob_cli = server
            .api_token(&bob, &["tunnels:write", "tunnels:read"])
            .await;

        // Reserve a name: it is Alice's organization's now.
        let r = server
            .api(
                "POST",
                "/api/tunnels",
                Some(&alice_cli),
                Some(json!({ "kind": "http", "subdomain": "alice-app" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.json["id"].as_i64().unwrap();
        assert_eq!(
            (r.json["status"].as_str(), r.json["reserved"].as_bool()),
            (Some("disconnected"), Some(true))
        );
        let r = server
            .api(
                "POST",
                "/api/tunnels",
                Some(&bob_cli),
                Some(json!({ "kind": "http", "subdomain": "alice-app" })),
            )
            .await;
        assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
        let refusal =
            TestClient::start(server.client_with(&bob_cli, http(Some("alice-app")), origin.addr))
                .refused()
                .await;
        assert_eq!(refusal.code, ErrorCode::NameTaken);

        // Bad input.
        for (body, status) in [
            (
                json!({ "kind": "http", "subdomain": "api" }),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                json!({ "kind": "http", "subdomain": "no_underscores" }),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                json!({ "kind": "tcp", "port": 1 }),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (json!({ "kind": "ftp" }), StatusCode::UNPROCESSABLE_ENTITY),
            (
                json!({ "kind": "http", "extra": 1 }),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let r = server
                .api("POST", "/api/tunnels", Some(&alice_cli), Some(body.clone()))
                .await;
            assert_eq!(r.status, status, "{body}: {r:?}");
            assert!(!r.message().is_empty());
        }
        let r = server
            .api_raw(
                "POST",
                "/api/tunnels",
                Some(&alice_cli),
                Some("application/json"),
                b"{\"kind\":".to_vec(),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "bad_request")
        );
        let r = server
            .api_raw(
                "POST",
                "/api/tunnels",
                Some(&alice_cli),
                Some("text/plain"),
                b"{}".to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let r = server
            .api("GET", "/api/tunnels/not-a-number", Some(&alice_cli), None)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = server
            .api("PATCH", "/api/tunnels", Some(&alice_cli), None)
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        );

        // Alice connects to her reserved name; the record shows it connected.
        let mut client =
            TestClient::start(server.client_with(&alice_cli, http(Some("alice-app")), origin.addr));
        client.connected().await;
        let host = server.host("alice-app");
        assert_eq!(
            get(server.public, &host, "/hello").await,
            (StatusCode::OK, "hello from origin".into())
        );
        let r = server
            .api("GET", &format!("/api/tunnels/{id}"), Some(&alice_cli), None)
            .await;
        assert_eq!(r.json["status"], "connected");
        assert_eq!(
            server
                .api("GET", &format!("/api/tunnels/{id}"), Some(&bob_cli), None)
                .await
                .status,
            StatusCode::NOT_FOUND,
            "other org"
        );
        assert_eq!(
            server
                .api(
                    "PUT",
                    &format!("/api/tunnels/{id}"),
                    Some(&bob_cli),
                    Some(json!({ "paused": true }))
                )
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            server
                .api(
                    "DELETE",
                    &format!("/api/tunnels/{id}"),
                    Some(&bob_cli),
                    None
                )
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        let list = server
            .api("GET", "/api/tunnels", Some(&bob_cli), None)
            .await;
        assert_eq!(list.json, json!([]), "Bob sees none of Alice's tunnels");

        // Pause: visitors get 503 at once; resume: back.
        let r = server
            .api(
                "PUT",
                &format!("/api/tunnels/{id}"),
                Some(&alice_cli),
                Some(json!({ "paused": true })),
            )
            .await;
        assert_eq!(
            (r.status, r.json["status"].as_str()),
            (StatusCode::OK, Some("paused"))
        );
        let (status, page) = get(server.public, &host, "/hello").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(page.contains("is paused by its owner"), "{page}");
        let r = server
            .api(
                "PUT",
                &format!("/api/tunnels/{id}"),
                Some(&alice_cli),
                Some(json!({ "paused": false })),
            )
            .await;
        assert_eq!(r.json["status"], "connected");
        assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);

        // Stop: the client exits (no reconnect), the name is free for others at once.
        let r = server
            .api(
                "DELETE",
                &format!("/api/tunnels/{id}"),
                Some(&alice_cli),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        match client.result().await {
            Err(ClientError::Stopped(reason)) => {
                assert!(reason.contains("stopped through the API"), "{reason}")
            }
            other => panic!("expected Stopped, got {other:?}"),
        }
        assert_eq!(
            get(server.public, &host, "/hello").await.0,
            StatusCode::NOT_FOUND
        );
        let mut bobs =
            TestClient::start(server.client_with(&bob_cli, http(Some("alice-app")), origin.addr));
        assert_eq!(bobs.connected().await.name, "alice-app");
        assert_eq!(
            server
                .api("GET", &format!("/api/tunnels/{id}"), Some(&alice_cli), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
);

crate::both!(
    plan_limits_are_enforced_with_clear_messages,
    |backend| async move {
        let server =
            TestServer::start_on(backend, |c| c.analytics_flush = Duration::from_millis(20)).await;
        let origin = Origin::start().await;
        let alice = server.user("alice@example.com").await;
        let alice_cli = server
            .api_token(
                &alice,
                &[
                    "tunnels:write",
                    "tunnels:read",
                    "domains:write",
                    "domains:read",
                ],
            )
            .await;
        let org = server.api("GET", "/api/org", Some(&alice), None).await.json["id"]
            .as_i64()
            .unwrap();
        let limits = json!({ "max_tunnels": 1, "max_custom_domains": 1, "max_members": 1, "max_bandwidth_bytes": 1000 });

        // Only the operator sets limits.
        let r = server
            .api(
                "PUT",
                &format!("/api/orgs/{org}/limits"),
                Some(&alice),
                Some(limits.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = server
            .api(
                "PUT",
                &format!("/api/orgs/{org}/limits"),
                Some(server.token.expose()),
                Some(json!({ "max_tunnels": -1 })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = server
            .api(
                "PUT",
                &format!("/api/orgs/{org}/limits"),
                Some(server.token.expose()),
                Some(limits.clone()),
            )
            .await;
        assert_eq!((r.status, &r.json), (StatusCode::OK, &limits));
        let r = server.api("GET", "/api/org", Some(&alice), None).await;
        assert_eq!(r.json["limits"], limits);

        // One tunnel at a time.
        let mut first = TestClient::start(server.client_with(&alice_cli, http(None), origin.addr));
        let w = first.connected().await;
        let refusal = TestClient::start(server.client_with(&alice_cli, http(None), origin.addr))
            .refused()
            .await;
        assert_eq!(refusal.code, ErrorCode::LimitReached);
        assert!(
            refusal.message.contains("allows 1 tunnels at once"),
            "{}",
            refusal.message
        );

        // One custom domain.
        let r = server
            .api(
                "POST",
                "/api/domains",
                Some(&alice_cli),
                Some(json!({ "hostname": "one.example.com" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = server
            .api(
                "POST",
                "/api/domains",
                Some(&alice_cli),
                Some(json!({ "hostname": "two.example.com" })),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded")
        );
        assert!(r.message().contains("allows 1 custom domains"), "{r:?}");

        // One member: adding another is refused.
        server.user("carol@example.com").await;
        let r = server
            .api(
                "POST",
                "/api/org/members",
                Some(&alice),
                Some(json!({ "email": "carol@example.com", "role": "member" })),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded")
        );

        // Bandwidth: once the month's bytes pass the limit, visitors get 429.
        let host = server.host(&w.name);
        assert_eq!(
            get(server.public, &host, "/bytes/4000").await.0,
            StatusCode::OK
        );
        let page = eventually("bandwidth limit applied", || async {
            let (status, page) = get(server.public, &host, "/hello").await;
            (status == StatusCode::TOO_MANY_REQUESTS).then_some(page)
        })
        .await;
        assert!(page.contains("used its plan's bandwidth"), "{page}");
        first.shutdown.cancel();
    }
);

crate::both!(
    analytics_count_every_request_in_integers,
    |backend| async move {
        let server = TestServer::start_on(backend, |_| {}).await;
        let origin = Origin::start().await;
        let alice = server.user("alice@example.com").await;
        let bob = server.user("bob@example.com").await;
        let cli = server
            .api_token(&alice, &["tunnels:write", "tunnels:read"])
            .await;
        let mut client = TestClient::start(server.client_with(&cli, http(None), origin.addr));
        let w = client.connected().await;
        let host = server.host(&w.name);
        for _ in 0..6 {
            assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
        }
        assert_eq!(
            get(server.public, &host, "/bytes/1000").await.0,
            StatusCode::OK
        );
        assert_eq!(
            get(server.public, &host, "/fail").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        // A secret in a header and in the query string must not be stored.
        let req = http::Request::get("/hello?api_key=supersecret")
            .header("authorization", "Bearer visitor-secret")
            .header("cookie", "session=visitor-cookie")
            .body(full(""))
            .unwrap();
        assert_eq!(
            visit(server.public, &host, req).await.status(),
            StatusCode::OK
        );

        let id = server
            .api("GET", "/api/tunnels", Some(&cli), None)
            .await
            .json[0]["id"]
            .as_i64()
            .unwrap();
        let url = format!("/api/analytics/tunnels/{id}?period=1h");
        let a: Value = eventually("analytics flushed", || async {
            let r = server.api("GET", &url, Some(&cli), None).await;
            (r.json["requests"] == 9).then_some(r.json)
        })
        .await;
        assert_eq!(a["period"], "1h");
        assert_eq!(a["errors"], 1);
        assert!(a["bytes_out"].as_i64().unwrap() >= 1000 + 6 * 17, "{a}");
        assert!(
            a["bytes_out"].is_i64() && a["bytes_in"].is_i64(),
            "integers, not strings: {a}"
        );
        assert_eq!(a["status_codes"]["200"], 8);
        assert_eq!(a["status_codes"]["500"], 1);
        assert_eq!(
            a["top_paths"][0],
            json!({ "path": "/hello", "requests": 7 })
        );
        assert!(a["latency_p95_ms"].as_i64().unwrap() >= a["latency_p50_ms"].as_i64().unwrap());
        assert!((a["error_rate"].as_f64().unwrap() - 1.0 / 9.0).abs() < 1e-9);
        let user = server
            .api("GET", "/api/analytics/user?period=24h", Some(&cli), None)
            .await;
        assert_eq!(user.json["requests"], 9);

        let records = server.store.recent_requests(id, 20).await.unwrap();
        let all = format!("{records:?}");
        for secret in [
            "supersecret",
            "visitor-secret",
            "visitor-cookie",
            "127.0.0.1\"",
        ] {
            assert!(!all.contains(secret), "{secret} stored: {all}");
        }
        assert!(records.iter().all(|r| r.client_net == "127.0.0.0/24"));
        assert!(all.contains("[redacted]"));

        // Bad period → 400; another organization's tunnel → 404.
        let r = server
            .api(
                "GET",
                &format!("/api/analytics/tunnels/{id}?period=2y"),
                Some(&cli),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let bob_cli = server.api_token(&bob, &["tunnels:read"]).await;
        assert_eq!(
            server.api("GET", &url, Some(&bob_cli), None).await.status,
            StatusCode::NOT_FOUND
        );
        client.shutdown.cancel();
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

crate::both!(
    openapi_document_describes_served_routes,
    |backend| async move {
        let server = TestServer::start_on(backend, |_| {}).await;
        let r = server.api("GET", "/api/openapi.json", None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        let doc = r.json;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 19, "{}", paths.len());
        for required in [
            "/api/auth/login",
            "/api/tunnels/{id}",
            "/api/domains/{id}/verify",
            "/api/analytics/tunnels/{id}",
            "/api/analytics/user",
        ] {
            assert!(paths.contains_key(required), "{required} missing");
        }
        // Every documented operation is served: without credentials it answers with
        // a documented status, never "no such API route" or 405.
        for (path, ops) in paths {
            let concrete = path.replace("{id}", "1").replace("{user_id}", "1");
            for (method, op) in ops.as_object().unwrap() {
                let r = server
                    .api(&method.to_uppercase(), &concrete, None, None)
                    .await;
                assert!(
                    r.status != StatusCode::METHOD_NOT_ALLOWED
                        && r.message() != "no such API route",
                    "{method} {path} is not served: {r:?}"
                );
                let documented = op["responses"].as_object().unwrap();
                assert!(
                    documented.contains_key(r.status.as_str()),
                    "{method} {path} answered {} which is not documented",
                    r.status
                );
            }
        }
    }
);

crate::both!(members_are_managed_by_admins_only, |backend| async move {
    let server = TestServer::start_on(backend, |_| {}).await;
    let alice = server.user("alice@example.com").await;
    server.user("carol@example.com").await;
    let add = |role: &str| Some(json!({ "email": "Carol@Example.com", "role": role }));

    // A token without `admin` cannot manage members, whatever the role.
    let narrow = server.api_token(&alice, &["tunnels:read"]).await;
    let r = server
        .api("POST", "/api/org/members", Some(&narrow), add("member"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.message().contains("'admin' scope"), "{r:?}");

    let r = server
        .api("POST", "/api/org/members", Some(&alice), add("member"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(
        (r.json["email"].as_str(), r.json["role"].as_str()),
        (Some("carol@example.com"), Some("member"))
    );
    let carol_id = r.json["user_id"].as_i64().unwrap();
    assert_eq!(
        server
            .api("POST", "/api/org/members", Some(&alice), add("viewer"))
            .await
            .status,
        StatusCode::CONFLICT
    );
    let r = server
        .api(
            "POST",
            "/api/org/members",
            Some(&alice),
            Some(json!({ "email": "nobody@example.com", "role": "member" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = server
        .api(
            "POST",
            "/api/org/members",
            Some(&alice),
            Some(json!({ "email": "carol@example.com", "role": "superuser" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    let list = server
        .api("GET", "/api/org/members", Some(&narrow), None)
        .await;
    let roles: Vec<_> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["owner", "member"]);

    let me = server.api("GET", "/api/me", Some(&alice), None).await;
    let alice_id = me.json["user"]["id"].as_i64().unwrap();
    let r = server
        .api(
            "DELETE",
            &format!("/api/org/members/{alice_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cannot remove yourself"
    );
    let r = server
        .api(
            "DELETE",
            &format!("/api/org/members/{carol_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = server
        .api(
            "DELETE",
            &format!("/api/org/members/{carol_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
});

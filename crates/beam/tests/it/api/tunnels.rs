//! Tunnels through the API: pause, resume and stop on the edge at once, plan
//! limits, and analytics.

use std::time::Duration;

use beam_client::ClientError;
use beam_proto::ErrorCode;
use http::StatusCode;
use serde_json::{Value, json};

use super::http;
use crate::support::*;

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
        let limits = json!({ "max_tunnels": 1, "max_custom_domains": 1, "max_members": 1, "max_bandwidth_bytes": 1000, "max_tcp_ports": null, "max_reserved_names": null });

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

//! Revocation is immediate and complete: revoking a token, a token
//! expiring, lowering a role, removing a member or a password reset ends
//! everything the token held — tunnels, production agents, log streams and
//! webhook streams — within seconds (the server re-checks every 200 ms here;
//! expiry is tested by advancing the server's clock, not by waiting).

use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::support::parity::setup;
use crate::support::*;

/// How long a revoked holder may live on: the promise.
const PROMISE: Duration = Duration::from_secs(5);

/// A streaming GET on the API host with `token`.
async fn open(server: &TestServer, token: &str, path: &str) -> Incoming {
    let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", format!("localhost:{}", server.public.port()))
        .header("authorization", format!("Bearer {token}"))
        .body(full(Vec::new()))
        .unwrap();
    let resp = within("stream response", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.into_body()
}

/// Everything one token can hold open: a tunnel, a log stream and a
/// webhook stream (the agent is held by the agent token).
struct Holdings {
    tunnel: TestClient,
    logs: Incoming,
    webhooks: Incoming,
}

impl Holdings {
    async fn open(server: &TestServer, token: &str, origin: &Origin) -> Self {
        let mut tunnel = TestClient::start(server.client_with(
            token,
            beam_proto::TunnelRequest::Http {
                subdomain: None,
                domain: None,
            },
            origin.addr,
        ));
        tunnel.connected().await;
        let logs = open(
            server,
            token,
            "/api/projects/shop/production/logs?follow=true",
        )
        .await;
        let webhooks = open(
            server,
            token,
            "/api/projects/shop/production/webhooks/stream",
        )
        .await;
        Self {
            tunnel,
            logs,
            webhooks,
        }
    }
}

/// Reads `body` to its end; fails if that takes longer than the promise.
async fn ends(what: &str, mut body: Incoming) {
    let ended = tokio::time::timeout(PROMISE, async {
        while let Some(f) = body.frame().await {
            if f.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "{what} still open {PROMISE:?} after revocation"
    );
}

/// The tunnel was disconnected and its reconnect refused.
async fn tunnel_ends(what: &str, tunnel: TestClient) {
    let refused = tokio::time::timeout(PROMISE, tunnel.refused()).await;
    let r = refused.unwrap_or_else(|_| panic!("{what}: tunnel still up {PROMISE:?} later"));
    assert!(
        matches!(
            r.code,
            beam_proto::ErrorCode::Unauthorized | beam_proto::ErrorCode::TokenExpired
        ),
        "{what}: {r:?}"
    );
}

/// A member of the operator's organization (where shop/production lives),
/// joined by invitation; returns (session, user id).
async fn member(
    server: &TestServer,
    mail: &MailCatcher,
    admin: &str,
    email: &str,
    role: &str,
) -> (String, i64) {
    let session = server.user(email).await;
    let r = server
        .api(
            "POST",
            "/api/org/invitations",
            Some(admin),
            Some(json!({ "email": email, "role": role })),
        )
        .await;
    assert_eq!(r.json["delivery"], "mailed", "{r:?}");
    let message = eventually("invitation mail", || async {
        mail.read_to(email, "You are invited to a beam organization")
    })
    .await;
    let invite = message
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .find(|w| w.starts_with("beaminvite_"))
        .unwrap()
        .to_string();
    let r = server
        .api(
            "POST",
            "/api/invitations/accept",
            Some(&session),
            Some(json!({ "token": invite })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    (session, r.json["user_id"].as_i64().unwrap())
}

/// A token of `session`'s user in the operator's organization.
async fn token_in_org(server: &TestServer, session: &str, days: Option<u32>) -> (String, i64) {
    let r = server
        .api(
            "POST",
            "/api/tokens",
            Some(session),
            Some(
                json!({ "description": "laptop", "org_id": server.operator.org_id,
                "scopes": ["tunnels:write", "logs:read", "webhooks:read"],
                "expires_in_days": days }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    (
        r.json["token"].as_str().unwrap().to_string(),
        r.json["id"].as_i64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_ends_tunnels_streams_and_agents_within_seconds() {
    let mail = MailCatcher::new();
    let server = TestServer::start_with(|c| {
        c.revalidate_every = Duration::from_millis(200);
        c.mailer = Some(beam_server::accounts::mail::Mailer {
            command: mail.program.clone(),
            from: "beam@localhost".into(),
        });
    })
    .await;
    let (admin, agent_token) = setup(&server).await;
    let origin = Origin::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut agent = crate::support::parity::start_agent(
        &server,
        home.path(),
        &agent_token,
        &["--listen", "127.0.0.1:0"],
        &[],
    )
    .await;

    // 1. A revoked token.
    let (carol, _) = member(&server, &mail, &admin, "carol@example.com", "member").await;
    let (t, id) = token_in_org(&server, &carol, None).await;
    let h = Holdings::open(&server, &t, &origin).await;
    let r = server
        .api("DELETE", &format!("/api/tokens/{id}"), Some(&carol), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    ends("log stream (revoked)", h.logs).await;
    ends("webhook stream (revoked)", h.webhooks).await;
    tunnel_ends("revoked", h.tunnel).await;

    // 2. A lower role: a viewer may read logs, but not open tunnels or
    // read webhooks.
    let (dave, dave_id) = member(&server, &mail, &admin, "dave@example.com", "member").await;
    let (t, _) = token_in_org(&server, &dave, None).await;
    let mut h = Holdings::open(&server, &t, &origin).await;
    let r = server
        .api(
            "PUT",
            &format!("/api/org/members/{dave_id}"),
            Some(&admin),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(
        (r.status, r.json["role"].as_str()),
        (StatusCode::OK, Some("viewer"))
    );
    ends("webhook stream (role lowered)", h.webhooks).await;
    tunnel_ends("role lowered", h.tunnel).await;
    // The log stream is still allowed: it is still open.
    let still = tokio::time::timeout(Duration::from_millis(600), h.logs.frame()).await;
    assert!(still.is_err(), "a viewer's log stream must stay open");

    // 3. A removed member.
    let (erin, erin_id) = member(&server, &mail, &admin, "erin@example.com", "member").await;
    let (t, _) = token_in_org(&server, &erin, None).await;
    let h = Holdings::open(&server, &t, &origin).await;
    let r = server
        .api(
            "DELETE",
            &format!("/api/org/members/{erin_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    ends("log stream (removed)", h.logs).await;
    ends("webhook stream (removed)", h.webhooks).await;
    tunnel_ends("removed", h.tunnel).await;

    // 4. A password reset signs the user out everywhere.
    let (frank, _) = member(&server, &mail, &admin, "frank@example.com", "member").await;
    let (t, _) = token_in_org(&server, &frank, None).await;
    let h = Holdings::open(&server, &t, &origin).await;
    let r = server
        .api(
            "POST",
            "/api/auth/forgot-password",
            None,
            Some(json!({ "email": "frank@example.com" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let message = eventually("reset mail", || async {
        mail.read_subject("Reset your beam password")
    })
    .await;
    assert!(message.contains("signs you out everywhere"), "{message}");
    let reset = message
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .find(|w| w.starts_with("beamreset_"))
        .unwrap()
        .to_string();
    let r = server
        .api(
            "POST",
            "/api/auth/reset-password",
            None,
            Some(json!({ "token": reset, "password": "a fresh password 1" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    ends("log stream (reset)", h.logs).await;
    ends("webhook stream (reset)", h.webhooks).await;
    tunnel_ends("reset", h.tunnel).await;
    let r = server.api("GET", "/api/me", Some(&frank), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the old session too");

    // 5. An expired token: the clock moves past its expiry (sessions made
    // from here on would be expired too); nothing calls the API.
    let (t, _) = token_in_org(&server, &carol, Some(1)).await;
    let h = Holdings::open(&server, &t, &origin).await;
    server.clock.advance(Duration::from_secs(25 * 3600));
    ends("log stream (expired)", h.logs).await;
    ends("webhook stream (expired)", h.webhooks).await;
    tunnel_ends("expired", h.tunnel).await;

    // 6. An agent token revoked (while a log stream relays from it) by any admin: listed with its last use,
    // revoked from the CLI, and the agent is off within seconds.
    let conn = [
        "--server".to_string(),
        server.tunnel.to_string(),
        "--fingerprint".to_string(),
        server.fingerprint.clone(),
    ];
    let cli = |args: &[&str]| {
        let mut c = crate::support::beam(home.path());
        c.args(args).args(&conn).env("BEAM_TOKEN", &admin);
        crate::support::output(c)
    };
    let (code, out, err) = cli(&["projects", "tokens", "shop/production"]);
    assert_eq!(code, 0, "{err}");
    let line = out.lines().nth(1).unwrap_or_default().to_string();
    assert!(line.contains("active") && line.contains(" ago"), "{out}");
    let id = line.split_whitespace().next().unwrap().to_string();
    let (code, _, err) = cli(&["projects", "tokens", "shop/production", "revoke", &id]);
    assert_eq!(code, 0, "{err}");
    tokio::time::timeout(PROMISE, agent.wait_for("NOT PUBLISHING"))
        .await
        .expect("the agent was not disconnected");
    let r = server
        .api(
            "GET",
            "/api/projects/shop/production/health",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "no agent: {r:?}");
    let (_, out, _) = cli(&["projects", "tokens", "shop/production"]);
    assert!(
        out.lines().nth(1).unwrap_or_default().contains("revoked"),
        "{out}"
    );
}

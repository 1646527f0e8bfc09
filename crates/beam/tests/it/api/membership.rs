//! Accounts prove their address, and membership is an invitation: a
//! pre-registered `victim@company.com` cannot create tokens or join the
//! company's organization, the invited owner of the address takes the account
//! over, and inviting never says whether an address has an account. New
//! organizations get default plan limits, including TCP ports and reserved
//! names.

use http::StatusCode;
use serde_json::json;

use super::{PASSWORD, http};
use crate::support::*;

/// The one-time token in a message (`prefix…`).
fn token_in(message: &str, prefix: &str) -> String {
    message
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .find(|w| w.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} token in {message}"))
        .to_string()
}

crate::both!(
    pre_registration_cannot_take_over_an_invited_address,
    |backend| async move {
        let mail = MailCatcher::new();
        let server = TestServer::start_on(backend, |c| {
            c.mailer = Some(beam_server::accounts::mail::Mailer {
                command: mail.program.clone(),
                from: "beam@localhost".into(),
            });
        })
        .await;
        let login = |email: &str, password: &str| {
            let server = &server;
            let body = json!({ "email": email, "password": password });
            async move {
                server
                    .api("POST", "/api/auth/login", None, Some(body))
                    .await
            }
        };

        // The attacker registers the victim's address first. They can log in,
        // but an unproven account makes no tokens.
        let r = server
            .api(
                "POST",
                "/api/auth/register",
                None,
                Some(json!({ "email": "victim@company.com", "password": "attacker password" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let attacker = login("victim@company.com", "attacker password").await.json["token"]
            .as_str()
            .unwrap()
            .to_string();
        let r = server
            .api(
                "POST",
                "/api/tokens",
                Some(&attacker),
                Some(json!({ "description": "x" })),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "email_unverified"),
            "{r:?}"
        );
        // The verification mail went to the real owner's inbox, not the attacker.
        let verify = eventually("verification mail", || async {
            mail.read_to("victim@company.com", "Confirm your beam address")
        })
        .await;
        assert!(verify.contains("/api/auth/verify-email"), "{verify}");
        // The real owner cannot confirm an account whose password they do not
        // know (so the pre-registrant's account never becomes verified this way).
        let r = server
        .api(
            "POST",
            "/api/auth/verify-email",
            None,
            Some(json!({ "token": token_in(&verify, "beamverify_"), "password": "the owner's guess" })),
        )
        .await;
        assert_eq!(r.code(), "invalid_token", "{r:?}");

        // The company's admin invites the address. The answer is the same as
        // for an address nobody registered.
        let admin = server.token.expose().to_string();
        let invite = |email: &str| {
            let server = &server;
            let body = json!({ "email": email, "role": "member" });
            let admin = admin.clone();
            async move {
                server
                    .api("POST", "/api/org/invitations", Some(&admin), Some(body))
                    .await
            }
        };
        let a = invite("victim@company.com").await;
        let b = invite("nobody@company.com").await;
        assert_eq!(
            (a.status, b.status),
            (StatusCode::CREATED, StatusCode::CREATED)
        );
        let shape = |r: &Reply| {
            let mut k: Vec<String> = r.json.as_object().unwrap().keys().cloned().collect();
            k.sort();
            (k, r.json["delivery"].clone())
        };
        assert_eq!(shape(&a), shape(&b));
        assert!(a.json.get("token").is_none(), "mailed, not shown: {a:?}");
        let message = eventually("invitation mail", || async {
            mail.read_to(
                "victim@company.com",
                "You are invited to a beam organization",
            )
        })
        .await;
        let token = token_in(&message, "beaminvite_");

        // Nothing the attacker holds joins them: no token, and their session
        // cannot accept without it.
        let r = server
            .api(
                "POST",
                "/api/invitations/accept",
                Some(&attacker),
                Some(json!({ "token": "beaminvite_guess" })),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "invalid_invitation")
        );

        // The owner of the address accepts: the link proves the address, so the
        // unverified registration becomes theirs, with their password, and the
        // attacker's session ends.
        let r = server
            .api(
                "POST",
                "/api/invitations/accept",
                None,
                Some(json!({ "token": token })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.message().contains("choose a password"), "{r:?}");
        let r = server
            .api(
                "POST",
                "/api/invitations/accept",
                None,
                Some(json!({ "token": token, "password": "the real owner's password" })),
            )
            .await;
        assert_eq!(
            (r.status, r.json["role"].as_str()),
            (StatusCode::CREATED, Some("member")),
            "{r:?}"
        );
        assert_eq!(r.json["org_id"].as_i64(), Some(server.operator.org_id));
        assert_eq!(
            server
                .api("GET", "/api/me", Some(&attacker), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED,
            "the attacker's session was revoked"
        );
        assert_eq!(
            login("victim@company.com", "attacker password")
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        let owner = login("victim@company.com", "the real owner's password").await;
        assert_eq!(owner.status, StatusCode::OK);
        let session = owner.json["token"].as_str().unwrap().to_string();
        // Proven now: tokens work, and the invitation cannot be used twice.
        let r = server
            .api(
                "POST",
                "/api/tokens",
                Some(&session),
                Some(json!({ "description": "laptop" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let r = server
            .api(
                "POST",
                "/api/invitations/accept",
                None,
                Some(json!({ "token": token, "password": "x1234567890" })),
            )
            .await;
        assert_eq!(r.code(), "invalid_invitation");
    }
);

crate::both!(
    registration_sends_a_verification_that_unlocks_tokens,
    |backend| async move {
        let mail = MailCatcher::new();
        let server = TestServer::start_on(backend, |c| {
            c.mailer = Some(beam_server::accounts::mail::Mailer {
                command: mail.program.clone(),
                from: "beam@localhost".into(),
            });
        })
        .await;
        let session = server.unverified_user("ada@example.com").await;
        let create = || {
            server.api(
                "POST",
                "/api/tokens",
                Some(&session),
                Some(json!({ "description": "laptop" })),
            )
        };
        assert_eq!(create().await.code(), "email_unverified");
        let message = eventually("verification mail", || async {
            mail.read_subject("Confirm your beam address")
        })
        .await;
        let token = token_in(&message, "beamverify_");
        // A verification token is no API credential, and a wrong one is refused.
        assert_eq!(
            server
                .api("GET", "/api/me", Some(&token), None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        let verify = |token: &str, password: &str| {
            server.api(
                "POST",
                "/api/auth/verify-email",
                None,
                Some(json!({ "token": token, "password": password })),
            )
        };
        let r = verify("beamverify_nope", PASSWORD).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "invalid_token")
        );
        // The token with the wrong password proves nothing.
        assert_eq!(
            verify(&token, "not the password").await.code(),
            "invalid_token"
        );
        let r = verify(&token, PASSWORD).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        assert_eq!(create().await.status, StatusCode::CREATED);
        assert_eq!(
            verify(&token, PASSWORD).await.code(),
            "invalid_token",
            "used once"
        );
    }
);

crate::both!(
    new_organizations_get_default_plan_limits,
    |backend| async move {
        let server = TestServer::start_on(backend, |c| {
            c.default_limits =
                beam_server::store::Limits::parse("tcp_ports=1,reserved_names=1").unwrap();
        })
        .await;
        let alice = server.user("alice@example.com").await;
        let me = server.api("GET", "/api/org", Some(&alice), None).await;
        assert_eq!(me.json["limits"]["max_tcp_ports"], 1);
        assert_eq!(me.json["limits"]["max_reserved_names"], 1);
        assert_eq!(
            me.json["limits"]["max_tunnels"], 20,
            "the other defaults stay"
        );
        let cli = server
            .api_token(&alice, &["tunnels:write", "tunnels:read", "domains:write"])
            .await;
        // One public TCP port at a time.
        let origin = Origin::start().await;
        let tcp = beam_proto::TunnelRequest::Tcp { port: None };
        let mut first = TestClient::start(server.client_with(&cli, tcp.clone(), origin.addr));
        first.connected().await;
        let second = TestClient::start(server.client_with(&cli, tcp, origin.addr));
        let refusal = second.refused().await;
        assert_eq!(refusal.code, beam_proto::ErrorCode::LimitReached);
        assert!(
            refusal.message.contains("1 public TCP ports"),
            "{}",
            refusal.message
        );
        // HTTP tunnels are not TCP ports.
        let mut web = TestClient::start(server.client_with(&cli, http(None), origin.addr));
        web.connected().await;
        // One reserved name.
        let r = server
            .api(
                "POST",
                "/api/domains",
                Some(&cli),
                Some(json!({ "hostname": "alice-one.localhost" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let r = server
            .api(
                "POST",
                "/api/domains",
                Some(&cli),
                Some(json!({ "hostname": "alice-two.localhost" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.message().contains("1 reserved names"), "{r:?}");
        // Bad limit specs are refused with the keys that exist.
        let e = beam_server::store::Limits::parse("ports=3").unwrap_err();
        assert!(e.contains("tcp_ports"), "{e}");
    }
);

/// Password hashing for logins is bounded server-wide with a short queue: a
/// burst of logins gets quick 503s with `Retry-After` instead of queueing
/// minutes of argon2 work (and memory) behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_burst_gets_503_instead_of_an_unbounded_queue() {
    let server = TestServer::start_with(|c| {
        c.hash_queue = std::time::Duration::from_millis(1);
        c.auth_rate_per_minute = 1000;
    })
    .await;
    server.user("ada@example.com").await;
    let logins = (0..16).map(|_| {
        server.api(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({ "email": "ada@example.com", "password": "wrong password!" })),
        )
    });
    let replies = futures_util::future::join_all(logins).await;
    let busy: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!busy.is_empty(), "16 logins at once on a 1 ms queue");
    for r in &busy {
        assert_eq!(r.code(), "busy");
        assert!(r.headers.contains_key("retry-after"), "{r:?}");
    }
    assert!(
        replies
            .iter()
            .all(|r| r.status == StatusCode::SERVICE_UNAVAILABLE
                || r.status == StatusCode::UNAUTHORIZED),
        "{replies:?}"
    );
}

/// On a server without mail an invitation token goes to the admin, not the
/// address, so it proves nothing: only the operator's invitations create
/// accounts, other organizations' invitations are accepted only by an
/// existing verified account logged in as itself, and an anonymous caller
/// gets the same answer whether or not the address has an account. An
/// inviter who is removed (or loses the admin role) takes their open
/// invitations with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_without_mail_prove_nothing_and_die_with_their_inviter() {
    let server = TestServer::start().await;
    let alice = server.user("alice@example.com").await;
    server.user("dave@example.com").await;
    let invite = |admin: &str, email: &str, role: &str| {
        let body = json!({ "email": email, "role": role });
        let admin = admin.to_string();
        let server = &server;
        async move {
            let r = server
                .api("POST", "/api/org/invitations", Some(&admin), Some(body))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
            r.json["token"].as_str().unwrap().to_string()
        }
    };
    let accept = |token: &str, session: Option<&str>| {
        let body = json!({ "token": token, "password": "a chosen password" });
        let session = session.map(str::to_string);
        let server = &server;
        async move {
            server
                .api(
                    "POST",
                    "/api/invitations/accept",
                    session.as_deref(),
                    Some(body),
                )
                .await
        }
    };
    // Alice's own organization cannot mint accounts for addresses.
    let ghost = accept(&invite(&alice, "ghost@example.com", "member").await, None).await;
    let dave = accept(&invite(&alice, "dave@example.com", "member").await, None).await;
    assert_eq!(
        (ghost.status, dave.status),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        ghost.message().replace("ghost@", "X@"),
        dave.message().replace("dave@", "X@"),
        "the answer does not say which address has an account"
    );
    assert!(
        server
            .store
            .user_by_email("ghost@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // The operator's invitation creates an account (the operator vouches).
    let operator = server.token.expose().to_string();
    let r = accept(&invite(&operator, "bob@example.com", "admin").await, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let bob = server
        .api(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({ "email": "bob@example.com", "password": "a chosen password", "org_id": server.operator.org_id })),
        )
        .await
        .json["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Bob invites Dave, then Bob is removed: the invitation dies with him.
    let for_dave = invite(&bob, "dave@example.com", "admin").await;
    let bob_id = r.json["user_id"].as_i64().unwrap();
    let r = server
        .api(
            "DELETE",
            &format!("/api/org/members/{bob_id}"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let dave_session = server
        .api(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({ "email": "dave@example.com", "password": PASSWORD })),
        )
        .await
        .json["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = accept(&for_dave, Some(&dave_session)).await;
    assert_eq!(r.code(), "invalid_invitation", "{r:?}");
}

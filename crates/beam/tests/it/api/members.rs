//! Organization members: managed by admins only.

use beam_proto::ErrorCode;
use http::StatusCode;
use serde_json::json;

use super::{PASSWORD, http};
use crate::support::*;

crate::both!(members_are_managed_by_admins_only, |backend| async move {
    let server = TestServer::start_on(backend, |_| {}).await;
    let alice = server.user("alice@example.com").await;
    let carol = server.user("carol@example.com").await;
    let add = |role: &str| Some(json!({ "email": "Carol@Example.com", "role": role }));

    // A token without `admin` cannot invite, whatever the role.
    let narrow = server.api_token(&alice, &["tunnels:read"]).await;
    let r = server
        .api("POST", "/api/org/invitations", Some(&narrow), add("member"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.message().contains("'admin' scope"), "{r:?}");

    // Membership is an invitation; this server sends no mail, so the admin
    // gets the one-time token to pass on. (`POST /api/org/members` is the
    // same call.)
    let r = server
        .api("POST", "/api/org/members", Some(&alice), add("member"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(
        (
            r.json["email"].as_str(),
            r.json["role"].as_str(),
            r.json["delivery"].as_str()
        ),
        (Some("carol@example.com"), Some("member"), Some("pass_on"))
    );
    let invite = r.json["token"].as_str().unwrap().to_string();
    // The answer says nothing about whether an address has an account.
    let r = server
        .api(
            "POST",
            "/api/org/invitations",
            Some(&alice),
            Some(json!({ "email": "nobody@example.com", "role": "member" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let mut keys: Vec<_> = r.json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "accept_command",
            "delivery",
            "email",
            "expires_at",
            "id",
            "role",
            "token"
        ]
    );
    let r = server
        .api(
            "POST",
            "/api/org/invitations",
            Some(&alice),
            Some(json!({ "email": "carol@example.com", "role": "superuser" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Carol has a verified account: she accepts as herself.
    let accept = |token: &str| Some(json!({ "token": token }));
    let r = server
        .api("POST", "/api/invitations/accept", None, accept(&invite))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(
        r.message().contains("log in as carol@example.com first"),
        "{r:?}"
    );
    let r = server
        .api(
            "POST",
            "/api/invitations/accept",
            Some(&alice),
            accept(&invite),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "not Alice's invitation: {r:?}"
    );
    let r = server
        .api(
            "POST",
            "/api/invitations/accept",
            Some(&carol),
            accept(&invite),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["role"], "member");
    let carol_id = r.json["user_id"].as_i64().unwrap();
    let r = server
        .api(
            "POST",
            "/api/invitations/accept",
            Some(&carol),
            accept(&invite),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_invitation"),
        "used once"
    );

    // Member emails need `org:read`.
    let r = server
        .api("GET", "/api/org/members", Some(&narrow), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.message().contains("'org:read'"), "{r:?}");
    assert_eq!(
        server
            .api("GET", "/api/org", Some(&narrow), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let list = server
        .api("GET", "/api/org/members", Some(&alice), None)
        .await;
    let roles: Vec<_> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["owner", "member"]);

    // Carol acts in Alice's organization with a token for it, capped by her role.
    let org = server.api("GET", "/api/org", Some(&alice), None).await.json["id"]
        .as_i64()
        .unwrap();
    let r = server
        .api(
            "POST",
            "/api/tokens",
            Some(&carol),
            Some(json!({ "description": "team", "org_id": org, "scopes": ["admin"] })),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a member cannot get admin: {r:?}"
    );
    let r = server.api("POST", "/api/tokens", Some(&carol), Some(json!({ "description": "team", "org_id": org, "scopes": ["tunnels:write", "tunnels:read"] }))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let carol_team = r.json["token"].as_str().unwrap().to_string();
    // Only a session (the password) reaches into another organization.
    let carol_cli = server.api_token(&carol, &["admin"]).await;
    let r = server
        .api(
            "POST",
            "/api/tokens",
            Some(&carol_cli),
            Some(json!({ "description": "x", "org_id": org })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.message().contains("needs a login session"), "{r:?}");
    let me = server.api("GET", "/api/me", Some(&carol_team), None).await;
    assert_eq!(
        (
            me.json["org"]["id"].as_i64(),
            me.json["org"]["role"].as_str()
        ),
        (Some(org), Some("member"))
    );
    assert_eq!(me.json["orgs"].as_array().unwrap().len(), 2, "{me:?}");
    let r = server
        .api(
            "POST",
            "/api/tokens",
            Some(&carol),
            Some(json!({ "description": "x", "org_id": 999_999 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "not a member there");
    let r = server
        .api(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({ "email": "carol@example.com", "password": PASSWORD, "org_id": org })),
        )
        .await;
    assert_eq!(
        (r.status, r.json["org"]["role"].as_str()),
        (StatusCode::OK, Some("member"))
    );
    let r = server
        .api(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({ "email": "carol@example.com", "password": PASSWORD, "org_id": 999_999 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let origin = Origin::start().await;
    let mut tunnel = TestClient::start(server.client_with(&carol_team, http(None), origin.addr));
    tunnel.connected().await;

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
    // Removed: her token for the organization fails, and her tunnel there ended.
    let r = server.api("GET", "/api/me", Some(&carol_team), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.message().contains("no longer a member"), "{r:?}");
    let refusal = refusal_of(tunnel.result().await.unwrap_err());
    assert_eq!(refusal.code, ErrorCode::Unauthorized);
    assert!(
        refusal.message.contains("no longer a member"),
        "{}",
        refusal.message
    );
});

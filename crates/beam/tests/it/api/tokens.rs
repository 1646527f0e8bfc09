//! API tokens: scoped, revocable and expiring.

use beam_proto::ErrorCode;
use beam_server::accounts::auth::hash_secret;
use beam_server::accounts::scope::Scopes;
use beam_server::store::{NewToken, TokenKind, now_ms};
use http::StatusCode;
use serde_json::json;

use super::http;
use crate::support::*;

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
                    environment_id: None,
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

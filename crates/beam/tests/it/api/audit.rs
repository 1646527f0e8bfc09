//! The audit log: administrative changes and sign-ins are recorded with who,
//! from where and the outcome; admins read their organization's entries,
//! members their own; nothing can change an entry; export is NDJSON.

use http::StatusCode;
use serde_json::{Value, json};

use super::PASSWORD;
use crate::support::*;

/// The audit entries `token` can see with `query`, once at least `min` are there.
async fn entries(server: &TestServer, token: &str, query: &str, min: usize) -> Vec<Value> {
    eventually("audit entries are written", || async move {
        let r = server
            .api("GET", &format!("/api/audit?{query}"), Some(token), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let list = r.json["entries"].as_array().cloned().unwrap_or_default();
        (list.len() >= min).then_some(list)
    })
    .await
}

fn kinds(list: &[Value]) -> Vec<&str> {
    list.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

crate::both!(
    the_audit_log_records_changes_and_sign_ins_and_cannot_be_changed,
    |backend| async move {
        let server = TestServer::start_on(backend, |_| {}).await;
        let alice = server.user("alice@example.com").await;
        let carol = server.user("carol@example.com").await;
        let org = server.api("GET", "/api/me", Some(&alice), None).await.json["org"]["id"]
            .as_i64()
            .unwrap();

        // Alice makes a token and revokes it; invites Carol as a member.
        let r = server
            .api(
                "POST",
                "/api/tokens",
                Some(&alice),
                Some(json!({"description": "ci deploy", "scopes": ["tunnels:read"]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let secret = r.json["token"].as_str().unwrap().to_string();
        let token_id = r.json["id"].as_i64().unwrap();
        let r = server
            .api(
                "DELETE",
                &format!("/api/tokens/{token_id}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = server
            .api(
                "POST",
                "/api/org/invitations",
                Some(&alice),
                Some(json!({"email": "carol@example.com", "role": "member"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let invite = r.json["token"].as_str().unwrap().to_string();
        let r = server
            .api(
                "POST",
                "/api/invitations/accept",
                Some(&carol),
                Some(json!({"token": invite})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        // Carol signs in to Alice's organization, and tries an admin action.
        let login = |email: &str, password: &str| json!({"email": email, "password": password, "org_id": org});
        let r = server
            .api(
                "POST",
                "/api/auth/login",
                None,
                Some(login("carol@example.com", PASSWORD)),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let carol_here = r.json["token"].as_str().unwrap().to_string();
        let r = server
            .api(
                "POST",
                "/api/org/invitations",
                Some(&carol_here),
                Some(json!({"email": "mallory@example.com", "role": "admin"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // Someone guesses Alice's password.
        let r = server
            .api(
                "POST",
                "/api/auth/login",
                None,
                Some(login("alice@example.com", "not her password")),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);

        // Alice (owner, admin scope) sees all of it, newest first.
        let list = entries(&server, &alice, "limit=100", 8).await;
        assert_eq!(list.len(), 8, "{list:#?}");
        let ks = kinds(&list);
        assert_eq!(
            &ks[..6],
            [
                "signin",
                "invitation.create",
                "signin",
                "invitation.accept",
                "invitation.create",
                "token.revoke"
            ],
            "{list:#?}"
        );
        let ids: Vec<i64> = list.iter().map(|e| e["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
        let guess = &list[0];
        assert_eq!(
            (
                guess["user_email"].as_str(),
                guess["outcome"].as_str(),
                guess["detail"]["status"].as_i64(),
                guess["token_id"].as_i64()
            ),
            (Some("alice@example.com"), Some("denied"), Some(401), None)
        );
        assert_eq!(guess["source"], "127.0.0.1");
        let refused = &list[1];
        assert_eq!(
            (
                refused["user_email"].as_str(),
                refused["outcome"].as_str(),
                refused["detail"]["email"].as_str(),
                refused["detail"]["role"].as_str()
            ),
            (
                Some("carol@example.com"),
                Some("denied"),
                Some("mallory@example.com"),
                Some("admin")
            )
        );
        let joined = &list[3];
        assert_eq!(
            (
                joined["user_email"].as_str(),
                joined["detail"]["role"].as_str(),
                joined["org_id"].as_i64()
            ),
            (Some("carol@example.com"), Some("member"), Some(org))
        );
        let carol_signin = &list[2];
        assert_eq!(carol_signin["detail"]["method"], "password");
        assert_eq!(carol_signin["outcome"], "ok");
        assert!(carol_signin["token_id"].as_i64().is_some());
        let created = list
            .iter()
            .find(|e| e["kind"] == "token.create")
            .expect("token.create");
        assert_eq!(created["detail"]["description"], "ci deploy");
        assert_eq!(created["detail"]["scopes"], json!(["tunnels:read"]));
        assert_eq!(created["org_id"].as_i64(), Some(org));
        let revoked = list.iter().find(|e| e["kind"] == "token.revoke").unwrap();
        assert_eq!(revoked["detail"]["token"].as_i64(), Some(token_id));
        // Never a secret: not the token, not a password.
        let all = serde_json::to_string(&list).unwrap();
        for secret in [secret.as_str(), PASSWORD, "not her password", &invite] {
            assert!(!all.contains(secret), "audit holds a secret");
        }

        // Carol (member) sees only her own entries, whatever she asks for.
        let mine = entries(&server, &carol_here, "", 3).await;
        assert!(
            mine.iter().all(|e| e["user_email"] == "carol@example.com"),
            "{mine:#?}"
        );
        assert!(
            entries(&server, &carol_here, "user=alice@example.com", 0)
                .await
                .is_empty()
        );

        // Filters: kind prefix, user, time window; pages with a cursor.
        let tokens = entries(&server, &alice, "kind=token", 2).await;
        assert_eq!(kinds(&tokens), ["token.revoke", "token.create"]);
        let hers = entries(&server, &alice, "user=Carol@Example.com", 3).await;
        assert!(hers.iter().all(|e| e["user_email"] == "carol@example.com"));
        let future = beam_server::store::now_ms() + 60_000;
        assert!(
            entries(&server, &alice, &format!("since={future}"), 0)
                .await
                .is_empty()
        );
        let r = server
            .api("GET", "/api/audit?limit=2", Some(&alice), None)
            .await;
        let cursor = r.json["next_cursor"].as_str().unwrap().to_string();
        let r2 = server
            .api(
                "GET",
                &format!("/api/audit?limit=2&cursor={cursor}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r2.json["entries"][0]["id"], list[2]["id"]);
        for bad in [
            "kind=DROP%20TABLE",
            "limit=0",
            "limit=5000",
            "cursor=x",
            "environment=/",
        ] {
            let r = server
                .api("GET", &format!("/api/audit?{bad}"), Some(&alice), None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {r:?}");
        }
        let r = server.api("GET", "/api/audit", None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);

        // No route changes an entry.
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let r = server
                .api(method, "/api/audit", Some(&alice), Some(json!({})))
                .await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        }

        // Export: every entry as NDJSON, oldest first; after= continues; the
        // export is itself recorded.
        let (status, text) = server.api_text("/api/audit/export", &alice).await;
        assert_eq!(status, StatusCode::OK);
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), list.len());
        assert!(
            lines
                .windows(2)
                .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64())
        );
        let third = lines[2]["id"].as_i64().unwrap();
        let (_, rest) = server
            .api_text(
                &format!("/api/audit/export?after={third}&kind=signin"),
                &alice,
            )
            .await;
        let rest_entries: Vec<Value> = rest
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            rest_entries.len(),
            2,
            "Carol's sign-in and the guess: {rest}"
        );
        assert!(
            rest_entries
                .iter()
                .all(|e| e["kind"] == "signin" && e["id"].as_i64().unwrap() > third),
            "{rest}"
        );
        let exported = entries(&server, &alice, "kind=audit.export", 2).await;
        assert_eq!(
            (
                exported[0]["detail"]["entries"].as_u64(),
                exported[1]["detail"]["entries"].as_u64()
            ),
            (Some(rest.lines().count() as u64), Some(lines.len() as u64)),
            "each export records how many entries it carried"
        );
        assert_eq!(exported[0]["detail"]["kind"], "signin");

        // `beam audit`: a table, JSON lines, an export, clear errors.
        let home = tempfile::tempdir().unwrap();
        let tunnel = server.tunnel.to_string();
        let audit = |args: &[&str]| {
            let mut all = vec!["audit"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--server", &tunnel, "--fingerprint", &server.fingerprint]);
            let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
            let (home, alice) = (home.path().to_path_buf(), alice.clone());
            async move {
                let args: Vec<&str> = all.iter().map(String::as_str).collect();
                crate::cli::cli(&home, &home, &args, &[("BEAM_TOKEN", alice.as_str())], None).await
            }
        };
        let (code, out, err) = audit(&["--kind", "token"]).await;
        assert_eq!(code, 0, "{err}");
        let rows: Vec<&str> = out.lines().collect();
        assert_eq!(rows.len(), 3, "{out}");
        assert!(
            rows[0].starts_with("TIME") && rows[0].contains("OUTCOME"),
            "{out}"
        );
        assert!(
            rows[1].contains("alice@example.com")
                && rows[1].contains("token.revoke")
                && rows[1].contains(&format!("token={token_id}")),
            "{out}"
        );
        assert!(rows[2].contains("description=ci deploy"), "{out}");
        let (code, out, _) = audit(&["--json", "--limit", "1"]).await;
        assert_eq!(code, 0);
        assert_eq!(out.lines().count(), 1, "{out}");
        let (code, out, err) = audit(&["--export", "--kind", "signin"]).await;
        assert_eq!(code, 0, "{err}");
        let exported: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(exported.len(), 3, "{out}");
        assert!(exported.iter().all(|e| e["kind"] == "signin"));
        let (code, _, err) = audit(&["--since", "yesterday"]).await;
        assert_eq!(code, 1);
        assert!(
            err.contains("--since 'yesterday' is neither a duration"),
            "{err}"
        );
        let (code, _, err) = audit(&["--kind", "Bad Kind"]).await;
        assert_eq!(code, 1);
        assert!(err.contains("kind is a word like"), "{err}");
    }
);

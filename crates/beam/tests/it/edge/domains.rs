//! Custom domains against a real DNS server started in the test: TXT
//! verification passing and failing, routing once verified, suspension when the
//! record disappears and reactivation when it returns; reserved subdomains.

use std::time::Duration;

use beam_proto::{ErrorCode, TunnelRequest};
use http::StatusCode;
use serde_json::json;

use crate::support::DnsServer;
use crate::support::*;

fn with_domain(domain: &str) -> TunnelRequest {
    TunnelRequest::Http {
        subdomain: None,
        domain: Some(domain.into()),
    }
}

/// A visitor request for a custom domain (the Host header is the domain).
async fn visit_domain(server: &TestServer, domain: &str, path: &str) -> (StatusCode, String) {
    get(
        server.public,
        &format!("{domain}:{}", server.public.port()),
        path,
    )
    .await
}

crate::both!(
    txt_verification_routes_and_suspends_domains,
    |backend| async move {
        let dns = DnsServer::start().await;
        let server = TestServer::start_on(backend, |c| {
            c.dns_resolver = Some(dns.addr);
            c.domain_recheck = Duration::from_millis(100);
        })
        .await;
        let origin = Origin::start().await;
        let alice = server.user("alice@example.com").await;
        let bob = server.user("bob@example.com").await;
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
        let bob_cli = server
            .api_token(&bob, &["tunnels:write", "domains:write", "domains:read"])
            .await;

        let r = server
            .api(
                "POST",
                "/api/domains",
                Some(&alice_cli),
                Some(json!({ "hostname": "App.Example.test." })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.json["id"].as_i64().unwrap();
        assert_eq!(r.json["hostname"], "app.example.test");
        assert_eq!(r.json["status"], "pending");
        assert_eq!(
            r.json["dns"]["txt_name"],
            "_beam-challenge.app.example.test"
        );
        assert_eq!(r.json["dns"]["cname_target"], "localhost");
        let token = r.json["dns"]["txt_value"].as_str().unwrap().to_string();
        assert!(token.len() >= 40, "random per-domain token: {token}");
        let other = server
            .api(
                "POST",
                "/api/domains",
                Some(&alice_cli),
                Some(json!({ "hostname": "other.example.test" })),
            )
            .await;
        assert_ne!(
            other.json["dns"]["txt_value"].as_str().unwrap(),
            token,
            "tokens differ per domain"
        );

        // Duplicates, bad names, scopes.
        let r = server
            .api(
                "POST",
                "/api/domains",
                Some(&bob_cli),
                Some(json!({ "hostname": "app.example.test" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        for bad in [
            "localhost",
            "bad_name.example.com",
            "10.0.0.1",
            "api.localhost",
        ] {
            let r = server
                .api(
                    "POST",
                    "/api/domains",
                    Some(&alice_cli),
                    Some(json!({ "hostname": bad })),
                )
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {r:?}");
        }

        // Not verified yet: a tunnel cannot use it, verify explains what is missing.
        let refusal = TestClient::start(server.client_with(
            &alice_cli,
            with_domain("app.example.test"),
            origin.addr,
        ))
        .refused()
        .await;
        assert_eq!(refusal.code, ErrorCode::DomainInvalid);
        assert!(
            refusal.message.contains("_beam-challenge.app.example.test"),
            "{}",
            refusal.message
        );
        let verify = format!("/api/domains/{id}/verify");
        let r = server.api("POST", &verify, Some(&alice_cli), None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "verification_failed")
        );
        assert!(
            r.message()
                .contains("no TXT record found at _beam-challenge.app.example.test"),
            "{r:?}"
        );
        dns.set(
            "_beam-challenge.app.example.test",
            &["someone-else's-token"],
        );
        let r = server.api("POST", &verify, Some(&alice_cli), None).await;
        assert!(
            r.message()
                .contains("do not contain this domain's verification token"),
            "{r:?}"
        );
        assert_eq!(
            server
                .api("POST", &verify, Some(&bob_cli), None)
                .await
                .status,
            StatusCode::NOT_FOUND,
            "other org"
        );

        // Published: verified, and the tunnel serves it.
        dns.set("_beam-challenge.app.example.test", &["unrelated", &token]);
        let r = server.api("POST", &verify, Some(&alice_cli), None).await;
        assert_eq!(
            (r.status, r.json["status"].as_str()),
            (StatusCode::OK, Some("active")),
            "{r:?}"
        );
        assert!(r.json["verified_at"].as_i64().is_some());
        let refusal = TestClient::start(server.client_with(
            &bob_cli,
            with_domain("app.example.test"),
            origin.addr,
        ))
        .refused()
        .await;
        assert_eq!(refusal.code, ErrorCode::DomainInvalid, "not Bob's domain");
        let mut client = TestClient::start(server.client_with(
            &alice_cli,
            with_domain("app.example.test"),
            origin.addr,
        ));
        let w = client.connected().await;
        // The client is told the HTTPS URL and the custom domain's, to show them.
        assert_eq!(
            w.other_urls,
            vec![
                format!("https://{}.localhost:{}", w.name, server.https.port()),
                format!("http://app.example.test:{}", server.public.port())
            ]
        );
        assert_eq!(
            visit_domain(&server, "app.example.test", "/hello").await,
            (StatusCode::OK, "hello from origin".into())
        );
        assert_eq!(
            get(server.public, &server.host(&w.name), "/hello").await.0,
            StatusCode::OK,
            "its subdomain still works"
        );
        let r = server
            .api("GET", &format!("/api/domains/{id}"), Some(&alice_cli), None)
            .await;
        assert!(r.json["tunnel_id"].as_i64().is_some(), "attached: {r:?}");

        // The record disappears: the periodic check suspends the domain and stops routing.
        dns.remove("_beam-challenge.app.example.test");
        let r = wait_for_status(&server, &alice_cli, id, "suspended").await;
        assert!(
            r["last_error"].as_str().unwrap().contains("no TXT record"),
            "{r}"
        );
        assert_eq!(
            visit_domain(&server, "app.example.test", "/hello").await.0,
            StatusCode::NOT_FOUND
        );
        // It comes back: active and routed again, without reconnecting.
        dns.set("_beam-challenge.app.example.test", &[&token]);
        wait_for_status(&server, &alice_cli, id, "active").await;
        assert_eq!(
            visit_domain(&server, "app.example.test", "/hello").await.0,
            StatusCode::OK
        );

        // Removing the domain stops routing at once.
        let r = server
            .api(
                "DELETE",
                &format!("/api/domains/{id}"),
                Some(&alice_cli),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(
            visit_domain(&server, "app.example.test", "/hello").await.0,
            StatusCode::NOT_FOUND
        );
        client.shutdown.cancel();
    }
);

async fn wait_for_status(
    server: &TestServer,
    token: &str,
    id: i64,
    status: &str,
) -> serde_json::Value {
    let path = format!("/api/domains/{id}");
    eventually("domain status", || async {
        let r = server.api("GET", &path, Some(token), None).await;
        (r.json["status"] == status).then_some(r.json)
    })
    .await
}

crate::both!(
    reserved_subdomains_belong_to_their_organization,
    |backend| async move {
        let server = TestServer::start_on(backend, |c| c.grace = Duration::from_millis(300)).await;
        let origin = Origin::start().await;
        let alice = server.user("alice@example.com").await;
        let bob = server.user("bob@example.com").await;
        let alice_cli = server
            .api_token(&alice, &["tunnels:write", "domains:write", "domains:read"])
            .await;
        let bob_cli = server
            .api_token(&bob, &["tunnels:write", "domains:write"])
            .await;
        let r = server
            .api(
                "POST",
                "/api/domains",
                Some(&alice_cli),
                Some(json!({ "hostname": "shop.localhost" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(
            (r.json["kind"].as_str(), r.json["status"].as_str()),
            (Some("subdomain"), Some("active"))
        );
        assert!(
            r.json["dns"].is_null(),
            "no DNS proof for our own subdomains"
        );
        let id = r.json["id"].as_i64().unwrap();
        let r = server
            .api(
                "POST",
                "/api/domains",
                Some(&bob_cli),
                Some(json!({ "hostname": "shop.localhost" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        let sub = TunnelRequest::Http {
            subdomain: Some("shop".into()),
            domain: None,
        };
        let refusal = TestClient::start(server.client_with(&bob_cli, sub.clone(), origin.addr))
            .refused()
            .await;
        assert_eq!(refusal.code, ErrorCode::NameTaken);
        let mut a = TestClient::start(server.client_with(&alice_cli, sub.clone(), origin.addr));
        assert_eq!(a.connected().await.name, "shop");
        // Removing the reservation while Alice is connected does not hand her live
        // name to anyone: it ends like any claim, with her grace period.
        let r = server
            .api(
                "DELETE",
                &format!("/api/domains/{id}"),
                Some(&alice_cli),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let shop = server.host("shop");
        assert_eq!(get(server.public, &shop, "/hello").await.0, StatusCode::OK);
        let refusal = TestClient::start(server.client_with(&bob_cli, sub.clone(), origin.addr))
            .refused()
            .await;
        assert_eq!(refusal.code, ErrorCode::NameTaken);
        let add = Some(json!({ "hostname": "shop.localhost" }));
        let r = server
            .api("POST", "/api/domains", Some(&bob_cli), add.clone())
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        // Once she disconnects and her grace period ends, Bob may reserve it.
        a.shutdown.cancel();
        a.result().await.unwrap();
        let r = eventually("name free after the grace period", || async {
            let r = server
                .api("POST", "/api/domains", Some(&bob_cli), add.clone())
                .await;
            (r.status != StatusCode::CONFLICT).then_some(r)
        })
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
);

crate::both!(
    unverified_domains_expire_so_nobody_can_squat_them,
    |backend| async move {
        let dns = DnsServer::start().await;
        let server = TestServer::start_on(backend, |c| {
            c.dns_resolver = Some(dns.addr);
            c.domain_recheck = Duration::from_millis(50);
            c.domain_pending_ttl = Duration::from_millis(200);
        })
        .await;
        let squatter = server.user("squatter@example.com").await;
        let owner = server.user("owner@example.com").await;
        let add = Some(json!({ "hostname": "victim.example.test" }));
        let r = server
            .api("POST", "/api/domains", Some(&squatter), add.clone())
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let id = r.json["id"].as_i64().unwrap();
        let r = server
            .api("POST", "/api/domains", Some(&owner), add.clone())
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "taken while pending");

        wait_for_status(&server, &squatter, id, "expired").await;
        let r = server.api("POST", "/api/domains", Some(&owner), add).await;
        assert_eq!(
            (r.status, r.json["status"].as_str()),
            (StatusCode::CREATED, Some("pending"))
        );
        let path = format!("/api/domains/{}", r.json["id"]);
        assert_eq!(
            server.api("GET", &path, Some(&squatter), None).await.status,
            StatusCode::NOT_FOUND
        );
        // The new owner proves it with the new token.
        dns.set(
            "_beam-challenge.victim.example.test",
            &[r.json["dns"]["txt_value"].as_str().unwrap()],
        );
        let r = server
            .api("POST", &format!("{path}/verify"), Some(&owner), None)
            .await;
        assert_eq!(r.json["status"], "active", "{r:?}");
    }
);

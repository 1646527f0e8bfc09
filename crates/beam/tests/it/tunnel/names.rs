//! Subdomain allocation under concurrency, reserved and invalid names.

use beam_proto::{ErrorCode, TunnelRequest};
use beam_server::store::{Claim, NameKind, now_ms};
use std::collections::HashSet;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_claims_of_one_name_have_one_winner() {
    let server = TestServer::start().await;
    let token_id = server
        .store
        .find_token(&beam_server::accounts::auth::hash_secret(
            server.token.expose(),
        ))
        .await
        .unwrap()
        .unwrap()
        .id;
    let org_id = server.operator.org_id;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = server.store.clone();
        tasks.push(tokio::spawn(async move {
            let lease = [i as u8; 32];
            let session = format!("s{i}");
            store
                .claim(&Claim {
                    kind: NameKind::Subdomain,
                    name: "contested",
                    token_id,
                    org_id,
                    new_lease_hash: &lease,
                    presented_lease_hash: None,
                    session: &session,
                    node: "n1",
                    now: now_ms(),
                })
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap() as usize;
    }
    assert_eq!(wins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_distinct_valid_names() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(TestClient::start(server.client_config(
            TunnelRequest::Http {
                subdomain: None,
                domain: None,
            },
            origin.addr,
        )));
    }
    let mut names = HashSet::new();
    for c in &mut clients {
        let w = c.connected().await;
        assert!(
            beam_server::tunnel::names::validate(&w.name, &[]).is_ok(),
            "{}",
            w.name
        );
        assert_eq!(w.name.split('-').count(), 3, "{}", w.name);
        names.insert(w.name);
    }
    assert_eq!(names.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_requested_name_from_many_clients_goes_to_exactly_one() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(TestClient::start(server.client_config(
            TunnelRequest::Http {
                subdomain: Some("popular".into()),
                domain: None,
            },
            origin.addr,
        )));
    }
    let mut winners = 0;
    for mut c in clients {
        match c.outcome().await {
            Ok(_) => winners += 1,
            Err(err) => assert_eq!(refusal_of(err).code, ErrorCode::NameTaken),
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn reserved_and_invalid_subdomains_are_refused() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    for (name, code, text) in [
        ("api", ErrorCode::NameReserved, "is reserved"),
        ("WWW", ErrorCode::NameReserved, "is reserved"),
        ("bad_name", ErrorCode::NameInvalid, "not a valid subdomain"),
        ("-x", ErrorCode::NameInvalid, "not a valid subdomain"),
    ] {
        let c = TestClient::start(server.client_config(
            TunnelRequest::Http {
                subdomain: Some(name.into()),
                domain: None,
            },
            origin.addr,
        ));
        let r = c.refused().await;
        assert_eq!(r.code, code, "{name}");
        assert!(r.message.contains(text), "{}", r.message);
    }
}

//! Two server nodes on one PostgreSQL database: an API call answered by one
//! node reaches a tunnel connected to the other (pause, resume, stop), and a
//! joining node leaves the first node's live tunnel alone.

use std::time::Duration;

use beam_proto::{Secret, TunnelRequest};
use http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_stop_reach_a_tunnel_on_another_node() {
    let a = TestServer::start_on(Backend::Postgres, |c| {
        c.node_heartbeat = Duration::from_millis(200);
    })
    .await;
    let origin = Origin::start().await;
    let (client, w) = a.http_client(origin.addr).await;
    let host = a.host(&w.name);
    // Node b joins: a's tunnel stays connected and keeps serving.
    let b = a.join().await;
    // The operator token opened the tunnel, and it may manage it on any node.
    let token = a.token.expose().to_string();
    let row = b.tunnel_row(&token, &w.name).await.unwrap();
    assert_eq!(row["status"], "connected", "{row}");
    let id = row["id"].as_i64().unwrap();
    assert_eq!(get(a.public, &host, "/hello").await.0, StatusCode::OK);

    // Paused through b: a's edge answers 503 soon after; resumed, 200.
    for (paused, visitors_get) in [
        (true, StatusCode::SERVICE_UNAVAILABLE),
        (false, StatusCode::OK),
    ] {
        let body = json!({ "paused": paused });
        let r = b
            .api(
                "PUT",
                &format!("/api/tunnels/{id}"),
                Some(&token),
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        eventually("pause state reaches node a", || async {
            (get(a.public, &host, "/hello").await.0 == visitors_get).then_some(())
        })
        .await;
    }

    // Stopped through b: the client on a is told to exit, visitors get 404,
    // and the name is free at once for a new client on either node.
    let r = b
        .api("DELETE", &format!("/api/tunnels/{id}"), Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    let err = within("client stopped", client.handle).await;
    let err = err.unwrap().unwrap_err().to_string();
    assert!(err.contains("stopped through the API"), "{err}");
    assert_eq!(
        get(a.public, &host, "/hello").await.0,
        StatusCode::NOT_FOUND
    );
    let mut again = b.client_config(
        TunnelRequest::Http {
            subdomain: Some(w.name.clone()),
            domain: None,
        },
        origin.addr,
    );
    again.conn.server = b.tunnel.to_string();
    let mut c2 = TestClient::start(again);
    assert_eq!(c2.connected().await.name, w.name);
    client.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_moves_its_clients_to_another_node_with_their_names() {
    let a = TestServer::start_on(Backend::Postgres, |_| {}).await;
    let b = a.join().await;
    let origin = Origin::start().await;
    let mut cfg = a.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    );
    cfg.conn.server = format!("{},{}", a.tunnel, b.tunnel);
    let mut client = TestClient::start(cfg);
    let first = client.connected().await;
    // Both nodes serve the same organization's view of the tunnel.
    let host_b = b.host(&first.name);

    // SIGTERM on a: the client is asked to move, and comes back on b under
    // the same name, without being told to exit.
    let b_tunnel = b.tunnel.to_string();
    a.stop().await;
    let (welcome, via) = within("moved to node b", async {
        loop {
            match client.events.recv().await {
                Some(beam_client::Event::Connected { welcome, via, .. }) => return (welcome, via),
                Some(_) => {}
                None => panic!("the client stopped instead of moving"),
            }
        }
    })
    .await;
    assert_eq!(welcome.name, first.name);
    assert_eq!(via, format!("tls to {b_tunnel}"));
    let (status, body) = get(b.public, &host_b, "/hello").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hello from origin")
    );
    let token = b.token.expose().to_string();
    let row = b.tunnel_row(&token, &first.name).await.unwrap();
    assert_eq!(row["status"], "connected", "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_racing_for_one_name_across_three_nodes_one_wins() {
    let a = TestServer::start_on(Backend::Postgres, |_| {}).await;
    let nodes = [a.join().await, a.join().await];
    let tunnels = [a.tunnel, nodes[0].tunnel, nodes[1].tunnel];
    let origin = Origin::start().await;
    let mut clients: Vec<TestClient> = (0..50)
        .map(|i| {
            let mut cfg = a.client_config(
                TunnelRequest::Http {
                    subdomain: Some("race".into()),
                    domain: None,
                },
                origin.addr,
            );
            cfg.conn.server = tunnels[i % 3].to_string();
            TestClient::start(cfg)
        })
        .collect();
    let mut winners = 0;
    for c in clients.iter_mut() {
        match c.outcome().await {
            Ok(w) => {
                assert_eq!(w.name, "race");
                winners += 1;
            }
            Err(e) => {
                let refusal = refusal_of(e);
                assert_eq!(
                    refusal.code,
                    beam_proto::ErrorCode::NameTaken,
                    "{}",
                    refusal.message
                );
            }
        }
    }
    assert_eq!(winners, 1, "exactly one client holds the name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_keeps_tunnels_serving_and_loses_no_request_count() {
    // PostgreSQL through a relay this test can cut: the database goes away
    // for this server only.
    let (db, url) = PgDb::create().await;
    let hostport = url
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let target = tokio::net::lookup_host(&hostport)
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(target).await;
    let relayed = url.replace(&hostport, &relay.addr.to_string());
    let store = beam_server::store::Store::connect(&relayed).await.unwrap();
    let server = TestServer::start_with_store(store, Some(std::sync::Arc::new(db)), |_| {}).await;
    let origin = Origin::start().await;
    let (_client, w) = server.http_client(origin.addr).await;
    let host = server.host(&w.name);
    let api = format!("api.localhost:{}", server.public.port());
    let mut served = 0;
    for _ in 0..5 {
        assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
        served += 1;
    }

    relay.cut();
    // Visitors keep reaching the tunnel; /ready says the store is gone.
    for _ in 0..20 {
        assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
        served += 1;
    }
    let (status, body) = get(server.public, &api, "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("store unreachable"), "{body}");
    // Long enough for several failed analytics writes.
    tokio::time::sleep(Duration::from_millis(300)).await;

    relay.restore();
    eventually("ready again", || async {
        (get(server.public, &api, "/ready").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
        served += 1;
    }
    // Every request is counted, those during the outage included.
    let token = server.token.expose().to_string();
    let counted = || async {
        let row = server.tunnel_row(&token, &w.name).await?;
        row["requests"].as_i64()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        last = counted().await;
        if last == Some(served) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{served} requests served, {last:?} counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_cluster_nodes() {
    let a = TestServer::start_on(Backend::Postgres, |c| {
        c.node_heartbeat = Duration::from_millis(100);
    })
    .await;
    eventually("a sees itself", || async {
        (a.metric("beam_cluster_nodes ") == 1.0).then_some(())
    })
    .await;
    assert_eq!(a.metric("beam_node_heartbeat_ok "), 1.0);
    let _b = a.join().await;
    eventually("a sees b", || async {
        (a.metric("beam_cluster_nodes ") == 2.0).then_some(())
    })
    .await;
}

/// A developer whose calls reach another node than the production agent's
/// gets the same answers: the node relays to the agent's node. Once the
/// agent is gone, every node says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_calls_on_any_node_reach_the_agent_on_another() {
    let a = TestServer::cluster(|_| {}).await;
    let c = a.join().await;
    let (admin, agent_token) = crate::support::parity::setup(&a).await;
    let dev = a.api_token(&admin, &["flags:read", "logs:read"]).await;
    let work = tempfile::tempdir().unwrap();
    let flags = work.path().join("flags.toml");
    std::fs::write(&flags, "[flags.new-checkout]\nenabled = true\n").unwrap();
    let flags_arg = flags.display().to_string();
    let home = tempfile::tempdir().unwrap();
    let agent = crate::support::parity::start_agent(
        &a,
        home.path(),
        &agent_token,
        &["--listen", "127.0.0.1:0", "--flags-file", &flags_arg],
        &[],
    )
    .await;
    let path = "/api/projects/shop/production/flags";
    let here = a.api("GET", path, Some(&dev), None).await;
    assert_eq!(here.status, StatusCode::OK, "{here:?}");
    let there = c.api("GET", path, Some(&dev), None).await;
    assert_eq!(there.status, StatusCode::OK, "{there:?}");
    assert_eq!(there.json, here.json);
    assert!(there.json.to_string().contains("new-checkout"), "{there:?}");
    // A token without the scope is refused by the node it reaches, as ever.
    let weak = a.api_token(&admin, &["tunnels:read"]).await;
    let r = c.api("GET", path, Some(&weak), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    // Logs stream through the relay too.
    let r = c
        .api(
            "GET",
            "/api/projects/shop/production/logs?follow=false&tail=5",
            Some(&dev),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    drop(agent);
    eventually("every node says the agent is offline", || async {
        let r = c.api("GET", path, Some(&dev), None).await;
        (r.status == StatusCode::SERVICE_UNAVAILABLE && r.code() == "agent_offline").then_some(())
    })
    .await;
}

/// `--max-tunnels-per-token` counts the token's tunnels on every node: two
/// connected through two nodes, a third through the third node is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnels_per_token_cap_holds_across_nodes() {
    let a = TestServer::cluster(|c| c.max_tunnels_per_token = 2).await;
    let (b, c) = (a.join().await, a.join().await);
    let origin = Origin::start().await;
    let (_one, _) = a.http_client(origin.addr).await;
    let (_two, _) = b.http_client(origin.addr).await;
    let third = TestClient::start(c.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    ));
    let r = third.refused().await;
    assert_eq!(r.code, beam_proto::ErrorCode::LimitReached, "{r:?}");
    assert!(
        r.message.contains("already has 2 tunnels connected"),
        "{r:?}"
    );
}

/// Replicas of one environment connected to different nodes all serve: a
/// developer on either node reads both replicas' logs merged, health counts
/// both and lists every node, and an agent that takes a replica's name on
/// another node replaces it there within a heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_different_nodes_are_merged_and_replaced_across_nodes() {
    use crate::parity::replicas::{all_lines, entries, log, pairs, replica};
    let a = TestServer::cluster(|_| {}).await;
    let c = a.join().await;
    let (admin, agent_token) = crate::support::parity::setup(&a).await;
    let home = tempfile::tempdir().unwrap();
    let (_web1, a1) = replica(&a, home.path(), &agent_token, "web-1", &[], &[]).await;
    let (mut web2, a2) = replica(&c, home.path(), &agent_token, "web-2", &[], &[]).await;
    log(a1, "INFO first\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    log(a2, "INFO second\n").await;
    for node in [&a, &c] {
        let (status, lines) = all_lines(node, &admin, "follow=false&tail=10").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            entries(&lines),
            pairs(&[("web-1", "INFO first"), ("web-2", "INFO second")])
        );
    }
    let r = c
        .api(
            "GET",
            "/api/projects/shop/production/health",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json["summary"], "2 of 2 healthy", "{}", r.json);
    let nodes = r.json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{}", r.json);
    for n in nodes {
        assert_eq!(n["agents"].as_array().unwrap().len(), 1, "{n}");
    }

    // web-2 again, on the other node: the first one is stopped by its node.
    let (_web2b, a2b) = replica(&a, home.path(), &agent_token, "web-2", &[], &[]).await;
    let why = web2.wait_for("NOT PUBLISHING").await;
    assert!(
        why.contains("another agent connected as instance 'web-2'"),
        "{why}"
    );
    log(a2b, "INFO from the new web-2\n").await;
    let (_, lines) = all_lines(&c, &admin, "follow=false&tail=1&instance=web-2").await;
    assert_eq!(
        entries(&lines),
        pairs(&[("web-2", "INFO from the new web-2")])
    );
}

/// Admissions racing across nodes never pass a limit together: six clients
/// of one token start at once through three nodes against a cap of two per
/// token, then six through a plan of two tunnels per organization. The
/// claim is recorded before the count, so each admission sees the others:
/// at most two get in. Racers may all be refused (each saw the others'
/// claims), so clients started one by one afterwards fill the limit exactly
/// — the refused claims were released — and the next one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_admissions_never_pass_a_limit_across_nodes() {
    let a = TestServer::cluster(|c| c.max_tunnels_per_token = 2).await;
    let (b, c) = (a.join().await, a.join().await);
    let origin = Origin::start().await;
    let start = |node: &TestServer, token: &Option<String>| {
        let mut setup = node.client_config(
            TunnelRequest::Http {
                subdomain: None,
                domain: None,
            },
            origin.addr,
        );
        if let Some(t) = token {
            setup.conn.token = Secret::new(t.clone());
        }
        TestClient::start(setup)
    };
    let race = |token: Option<String>| {
        [&a, &b, &c, &a, &b, &c]
            .into_iter()
            .map(|node| start(node, &token))
            .collect::<Vec<_>>()
    };
    let settle = |clients: Vec<TestClient>| async move {
        let mut admitted = Vec::new();
        for mut client in clients {
            match client.outcome().await {
                Ok(_) => admitted.push(client),
                Err(e) => {
                    let r = refusal_of(e);
                    assert_eq!(r.code, beam_proto::ErrorCode::LimitReached, "{r:?}");
                }
            }
        }
        admitted
    };
    // Fills the limit one client at a time, then shows the next is refused.
    let top_up = |mut admitted: Vec<TestClient>, token: Option<String>| {
        let start = &start;
        let b = &b;
        async move {
            assert!(
                admitted.len() <= 2,
                "{} admitted against a limit of 2",
                admitted.len()
            );
            while admitted.len() < 2 {
                let mut client = start(b, &token);
                client
                    .outcome()
                    .await
                    .expect("a client below the limit is admitted");
                admitted.push(client);
            }
            let mut extra = start(b, &token);
            let r = refusal_of(
                extra
                    .outcome()
                    .await
                    .expect_err("a third client is refused"),
            );
            assert_eq!(r.code, beam_proto::ErrorCode::LimitReached, "{r:?}");
            admitted
        }
    };
    let admitted = top_up(settle(race(None)).await, None).await;
    for client in admitted {
        client.stop().await;
    }

    // The plan: two tunnels for the organization, over several tokens.
    let r = a
        .api(
            "PUT",
            &format!("/api/orgs/{}/limits", a.operator.org_id),
            Some(a.token.expose()),
            Some(
                json!({ "max_tunnels": 2, "max_custom_domains": null, "max_members": null,
                "max_bandwidth_bytes": null, "max_tcp_ports": null, "max_reserved_names": null }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    eventually("the first clients' names are released", || async {
        let r = a
            .api("GET", "/api/tunnels", Some(a.token.expose()), None)
            .await;
        let live = r.json.as_array().map_or(0, |t| {
            t.iter().filter(|t| t["status"] == "connected").count()
        });
        (live == 0).then_some(())
    })
    .await;
    let operator = a.token.expose().to_string();
    let mut clients = Vec::new();
    for pair in [[&a, &b], [&c, &a], [&b, &c]] {
        let token = Some(a.api_token(&operator, &["tunnels:write"]).await);
        clients.extend(pair.map(|node| start(node, &token)));
    }
    let admitted = settle(clients).await;
    let fresh = a.api_token(&operator, &["tunnels:write"]).await;
    top_up(admitted, Some(fresh)).await;
}

//! Restarting every node of a cluster, one after the other, under steady
//! load through a health-checking load balancer: no visitor request fails,
//! and the tunnel keeps its name throughout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beam_proto::TunnelRequest;
use http::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_request() {
    // Longer than the balancer's health-check interval (50 ms), as the
    // deployment guide says.
    let first = TestServer::cluster(|c| c.drain_linger = Duration::from_millis(400)).await;
    let mut nodes = vec![first.join().await, first.join().await];
    nodes.insert(0, first);
    let pairs = |f: fn(&TestServer) -> std::net::SocketAddr| {
        nodes.iter().map(|n| (f(n), n.public)).collect::<Vec<_>>()
    };
    let public = Balancer::start(&pairs(|n| n.public)).await;
    let tunnels = Balancer::start(&pairs(|n| n.tunnel)).await;

    let origin = Origin::start().await;
    let mut cfg = nodes[0].client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    );
    cfg.conn.server = tunnels.addr.to_string();
    let mut client = TestClient::start(cfg);
    let name = client.connected().await.name;
    let host = nodes[0].host(&name);

    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = CancellationToken::new();
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (ok, failures, stop, host, lb) = (
                ok.clone(),
                failures.clone(),
                stop.clone(),
                host.clone(),
                public.addr,
            );
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    match try_get(lb, &host, "/hello").await {
                        Ok((StatusCode::OK, _)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            })
        })
        .collect();
    let served_more = |n: u64| {
        let ok = ok.clone();
        async move {
            let target = ok.load(Ordering::Relaxed) + n;
            eventually("requests keep succeeding", || async {
                (ok.load(Ordering::Relaxed) >= target).then_some(())
            })
            .await
        }
    };
    served_more(100).await;
    for i in 0..nodes.len() {
        // SIGTERM's path: drain, move the clients, linger, stop; then the
        // node comes back on the same ports.
        let node = nodes.remove(i);
        nodes.insert(i, node.restart().await);
        served_more(100).await;
    }
    stop.cancel();
    for l in load {
        l.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the rolling restart: {:?}",
        failures.len(),
        failures.len() as u64 + ok.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );
    // The tunnel kept its name on whichever node holds it now.
    let (status, _) = try_get(public.addr, &host, "/hello").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(!client.handle.is_finished(), "the client kept running");
}

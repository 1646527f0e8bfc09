//! Parity logs end to end: an admin creates `shop/production` and an agent
//! token; a production agent connects with it and serves its log buffer; a
//! developer reads filtered, followed and resumed streams through the API.
//! Producer and consumer tokens keep to their roles.

use std::sync::Arc;

use beam_agent::agent::AgentServices;
use beam_agent::logs::{Limits, LogBuffer, Masker, parse_line};
use beam_proto::logs::{LogLine, Source};
use beam_proto::{ErrorCode, Secret, TunnelRequest};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::support::*;

/// Opens a log stream; returns the status and the body to read from.
async fn open_logs(
    server: &TestServer,
    token: &str,
    query: &str,
) -> (StatusCode, hyper::body::Incoming) {
    let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("/api/projects/shop/production/logs?{query}"))
        .header("host", format!("localhost:{}", server.public.port()))
        .header("authorization", format!("Bearer {token}"))
        .body(full(""))
        .unwrap();
    let resp = within("logs response", sender.send_request(req))
        .await
        .unwrap();
    let epoch = resp
        .headers()
        .get(beam_proto::logs::EPOCH_HEADER)
        .map(|v| v.to_str().unwrap().to_string());
    LAST_EPOCH.with(|e| *e.borrow_mut() = epoch);
    (resp.status(), resp.into_body())
}

thread_local! {
    /// The `beam-log-epoch` of the last stream opened on this thread.
    static LAST_EPOCH: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Reads NDJSON lines until `n` are in.
async fn read_lines(body: &mut hyper::body::Incoming, n: usize) -> Vec<LogLine> {
    let mut text = String::new();
    while text.lines().count() < n {
        let chunk = next_data(body).await.expect("stream ended early");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn messages(lines: &[LogLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l {
            LogLine::Entry(e) => e.message.clone(),
            LogLine::Dropped { dropped } => format!("dropped {dropped}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn agent_logs_are_filtered_followed_and_resumed_and_tokens_keep_their_roles() {
    let server = TestServer::start().await;
    let admin = server.user("admin@shop.test").await;
    let r = server
        .api(
            "POST",
            "/api/projects",
            Some(&admin),
            Some(json!({"project": "shop", "environment": "production"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let bad = server
        .api(
            "POST",
            "/api/projects",
            Some(&admin),
            Some(json!({"project": "Shop!", "environment": "production"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = server
        .api(
            "POST",
            "/api/projects/shop/production/agent-tokens",
            Some(&admin),
            Some(json!({"description": "web-1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let agent_token = r.json["token"].as_str().unwrap().to_string();

    // No agent yet: a clear 503.
    let (status, _) = open_logs(&server, &admin, "follow=false").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let buffer = Arc::new(LogBuffer::new(
        Limits::default(),
        Masker::new(false),
        Some("web".into()),
    ));
    let agent_request = TunnelRequest::Agent {
        project: "shop".into(),
        environment: "production".into(),
        instance: None,
    };
    let mut cfg = server.conn_config(agent_request.clone());
    cfg.token = Secret::new(agent_token.clone());
    let services = AgentServices::new(buffer.clone(), "shop/production");
    let mut agent = TestClient::serve(cfg, services.clone(), Default::default());
    let w = agent.connected().await;
    assert_eq!(w.public_url, "agent://shop/production");

    for line in [
        "INFO boot",
        "ERROR db down",
        r#"{"level":40,"msg":"slow query","service":"worker"}"#,
        "WARN retrying with Bearer abcdefghijklmnop",
    ] {
        buffer.push(parse_line(line), Source::Stdout);
    }

    // Filtered on the agent: warn and above, no follow → exactly three lines, then the end.
    let (status, body) = open_logs(&server, &admin, "level=warn&follow=false").await;
    assert_eq!(status, StatusCode::OK);
    let all = body.collect().await.unwrap().to_bytes();
    let lines: Vec<LogLine> = std::str::from_utf8(&all)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        messages(&lines),
        [
            "ERROR db down",
            "slow query",
            "WARN retrying with Bearer ****"
        ],
        "secrets are masked before they leave production"
    );
    let LogLine::Entry(worker) = &lines[1] else {
        panic!()
    };
    assert_eq!(worker.service.as_deref(), Some("worker"));

    // Service and grep filters; a bad regex is the agent's clear 400.
    let (_, body) = open_logs(&server, &admin, "service=worker&follow=false").await;
    let text = body.collect().await.unwrap().to_bytes();
    assert_eq!(std::str::from_utf8(&text).unwrap().lines().count(), 1);
    let bad = server
        .api(
            "GET",
            "/api/projects/shop/production/logs?grep=(&follow=false",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.message()
            .contains("--grep is not a valid regular expression"),
        "{bad:?}"
    );
    let bad = server
        .api(
            "GET",
            "/api/projects/shop/production/logs?levle=warn",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.message()
            .contains("unknown log query parameter 'levle'")
    );

    // Follow: tail=1 gives the newest, then new lines as they come.
    let (_, mut follow) = open_logs(&server, &admin, "tail=1").await;
    assert_eq!(
        messages(&read_lines(&mut follow, 1).await),
        ["WARN retrying with Bearer ****"]
    );
    buffer.push(parse_line("INFO new order"), Source::Stdout);
    assert_eq!(
        messages(&read_lines(&mut follow, 1).await),
        ["INFO new order"]
    );

    // Resume after seq 2: everything after, once, in order.
    let (_, body) = open_logs(&server, &admin, "after=2&follow=false").await;
    let text = body.collect().await.unwrap().to_bytes();
    let seqs: Vec<u64> = std::str::from_utf8(&text)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    // The same cursor with the stream's epoch resumes; with an epoch of another
    // buffer (the agent restarted) everything the new buffer holds is sent.
    let epoch: u64 = LAST_EPOCH
        .with(|e| e.borrow().clone())
        .unwrap()
        .parse()
        .unwrap();
    let seqs_for = |q: String| {
        let server = &server;
        let admin = admin.clone();
        async move {
            let (status, body) = open_logs(server, &admin, &q).await;
            assert_eq!(status, StatusCode::OK);
            let text = body.collect().await.unwrap().to_bytes();
            std::str::from_utf8(&text).unwrap().lines().count()
        }
    };
    assert_eq!(
        seqs_for(format!("after=2&epoch={epoch}&follow=false")).await,
        3
    );
    assert_eq!(
        seqs_for(format!("after=2&epoch={}&follow=false", epoch + 1)).await,
        5
    );

    // Producers cannot read: the agent token is refused by the API.
    let (status, _) = open_logs(&server, &agent_token, "follow=false").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A developer token without logs:read cannot either.
    let tunnels_only = server.api_token(&admin, &["tunnels:write"]).await;
    let (status, _) = open_logs(&server, &tunnels_only, "follow=false").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Consumers cannot publish: a developer token is refused as an agent…
    let mut cfg = server.conn_config(agent_request);
    cfg.token = Secret::new(
        server
            .api_token(&admin, &["logs:read", "tunnels:write"])
            .await,
    );
    let r = TestClient::serve(cfg, services.clone(), Default::default())
        .refused()
        .await;
    assert_eq!(r.code, ErrorCode::Unauthorized);
    assert!(
        r.message.contains("developer tokens cannot publish"),
        "{}",
        r.message
    );
    // …and the agent token opens no tunnel.
    let origin = Origin::start().await;
    let mut cfg = server.client_config(
        TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    );
    cfg.conn.token = Secret::new(agent_token.clone());
    let r = TestClient::start(cfg).refused().await;
    assert_eq!(r.code, ErrorCode::Unauthorized);
    assert!(
        r.message.contains("agent tokens only connect `beam agent`"),
        "{}",
        r.message
    );
    // An agent token of another environment does not fit this one.
    server
        .api(
            "POST",
            "/api/projects",
            Some(&admin),
            Some(json!({"project": "shop", "environment": "staging"})),
        )
        .await;
    let r = server
        .api(
            "POST",
            "/api/projects/shop/staging/agent-tokens",
            Some(&admin),
            Some(json!({})),
        )
        .await;
    let staging_token = r.json["token"].as_str().unwrap().to_string();
    let mut cfg = server.conn_config(TunnelRequest::Agent {
        project: "shop".into(),
        environment: "production".into(),
        instance: None,
    });
    cfg.token = Secret::new(staging_token);
    let r = TestClient::serve(cfg, services, Default::default())
        .refused()
        .await;
    assert!(
        r.message.contains("not for shop/production"),
        "{}",
        r.message
    );
}

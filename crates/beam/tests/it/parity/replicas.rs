//! Production replicas: several `beam agent` processes of one environment,
//! each with an instance name, all serving. Logs merge in time order with the
//! instance shown and resume per instance; health shows each instance and an
//! overall verdict; env check says when instances disagree; a second agent
//! with a taken name replaces the first, which stops for good.

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::webhook_helpers::post_to;
use crate::support::parity::{Watched, setup};
use crate::support::*;

/// A replica: a real `beam agent --instance NAME` with an ingest listener.
pub(crate) async fn replica(
    server: &TestServer,
    home: &std::path::Path,
    token: &str,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Watched, std::net::SocketAddr) {
    let mut c = crate::support::beam(home);
    c.args(["agent", "--project", "shop/production", "--instance", name])
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .args(["--server", &server.tunnel.to_string()])
        .args(["--fingerprint", &server.fingerprint])
        .env("BEAM_TOKEN", token);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut agent = Watched::spawn(c);
    let line = agent.wait_for("ingest on http://").await;
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    agent
        .wait_for(&format!(
            "connected, publishing shop/production as instance {name}"
        ))
        .await;
    (agent, addr)
}

/// Sends `lines` to a replica's ingest endpoint.
pub(crate) async fn log(addr: std::net::SocketAddr, lines: &str) {
    let r = post_to(addr, "/ingest/logs", &[], lines.as_bytes()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

/// Opens `GET …/logs?query`.
async fn open(
    server: &TestServer,
    token: &str,
    query: &str,
) -> (StatusCode, http::HeaderMap, hyper::body::Incoming) {
    let stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("/api/projects/shop/production/logs?{query}"))
        .header("host", format!("localhost:{}", server.public.port()))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = within("logs response", sender.send_request(req))
        .await
        .unwrap();
    let headers = resp.headers().clone();
    (resp.status(), headers, resp.into_body())
}

/// Every line of a finished stream.
pub(crate) async fn all_lines(
    server: &TestServer,
    token: &str,
    query: &str,
) -> (StatusCode, Vec<Value>) {
    let (status, _, body) = open(server, token, query).await;
    let bytes = within("logs body", body.collect())
        .await
        .unwrap()
        .to_bytes();
    if status != StatusCode::OK {
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        return (status, vec![v]);
    }
    let lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (status, lines)
}

/// `(instance, message)` of each entry.
pub(crate) fn entries(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|l| l.get("seq").is_some())
        .map(|l| {
            (
                l["instance"].as_str().unwrap_or("").to_string(),
                l["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub(crate) fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Reads lines of a followed stream until `done` says enough.
async fn follow_until(
    body: &mut hyper::body::Incoming,
    got: &mut Vec<Value>,
    done: impl Fn(&[Value]) -> bool,
) {
    let mut buf = Vec::new();
    within("followed lines", async {
        while !done(got) {
            let frame = body.frame().await.unwrap().unwrap();
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    got.push(serde_json::from_slice(&line[..line.len() - 1]).unwrap());
                }
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_merge_logs_resume_per_instance_and_report_each_instance() {
    let server = TestServer::start().await;
    let (admin, agent) = setup(&server).await;
    let home = tempfile::tempdir().unwrap();
    let env_check = ["--env-allow", "SHARED_URL"];
    let (_web1, a1) = replica(
        &server,
        home.path(),
        &agent,
        "web-1",
        &env_check,
        &[("SHARED_URL", "https://one")],
    )
    .await;
    let (web2, a2) = replica(
        &server,
        home.path(),
        &agent,
        "web-2",
        &env_check,
        &[("SHARED_URL", "https://two")],
    )
    .await;

    // Interleaved in time across the two replicas.
    for (addr, msg) in [(a1, "one"), (a2, "two"), (a1, "three"), (a2, "four")] {
        log(addr, &format!("INFO {msg}\n")).await;
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let (status, lines) = all_lines(&server, &admin, "follow=false&tail=3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        entries(&lines),
        pairs(&[
            ("web-2", "INFO two"),
            ("web-1", "INFO three"),
            ("web-2", "INFO four")
        ]),
        "the last 3 lines of both, in time order"
    );
    let (_, headers, _) = open(&server, &admin, "follow=false&tail=0").await;
    let instances = headers["beam-log-instances"].to_str().unwrap().to_string();
    assert!(
        instances.contains("web-1:") && instances.contains("web-2:"),
        "{instances}"
    );
    let epoch_of = |name: &str| -> u64 {
        instances
            .split(',')
            .find_map(|p| p.strip_prefix(&format!("{name}:")))
            .unwrap()
            .parse()
            .unwrap()
    };

    // One instance, or a clear error naming the connected ones.
    let (_, only) = all_lines(&server, &admin, "follow=false&instance=web-1").await;
    assert_eq!(
        entries(&only),
        pairs(&[("web-1", "INFO one"), ("web-1", "INFO three")])
    );
    let (status, err) = all_lines(&server, &admin, "follow=false&instance=web-9").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let msg = err[0]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("connected: web-"), "{msg}");
    let (status, err) = all_lines(&server, &admin, "follow=false&after=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = err[0]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("cursor=INSTANCE:EPOCH:SEQ"), "{msg}");

    // Resume per instance: after "three" on web-1 and "two" on web-2, with
    // more lines since, gets exactly what followed each, once.
    let seq_of = |msg: &str| -> u64 {
        lines.iter().find(|l| l["message"] == msg).unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    let cursor = format!(
        "web-1:{}:{},web-2:{}:{}",
        epoch_of("web-1"),
        seq_of("INFO three"),
        epoch_of("web-2"),
        seq_of("INFO two")
    );
    log(a1, "INFO five\n").await;
    log(a2, "INFO six\n").await;
    let (_, resumed) = all_lines(
        &server,
        &admin,
        &format!("follow=false&tail=0&cursor={cursor}"),
    )
    .await;
    let mut got = entries(&resumed);
    got.sort();
    assert_eq!(
        got,
        pairs(&[
            ("web-1", "INFO five"),
            ("web-2", "INFO four"),
            ("web-2", "INFO six")
        ])
    );

    // Following: a replica that connects is joined, one that goes is
    // announced, and lines keep coming from the rest.
    let (status, _, mut body) = open(&server, &admin, "tail=0").await;
    assert_eq!(status, StatusCode::OK);
    let (web3, a3) = replica(
        &server,
        home.path(),
        &agent,
        "web-3",
        &["--health-url", "http://127.0.0.1:9/health"],
        &[],
    )
    .await;
    let mut followed = Vec::new();
    follow_until(&mut body, &mut followed, |l| {
        l.iter().any(|l| l["joined"] == "web-3")
    })
    .await;
    log(a3, "WARN from the new one\n").await;
    follow_until(&mut body, &mut followed, |l| {
        l.iter().any(|l| l["message"] == "WARN from the new one")
    })
    .await;
    let line = followed
        .iter()
        .find(|l| l["message"] == "WARN from the new one")
        .unwrap();
    assert_eq!(line["instance"], "web-3");

    // Health: each instance, and the verdict over all of them.
    let r = server
        .api(
            "GET",
            "/api/projects/shop/production/health",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json["summary"], "2 of 3 healthy", "{}", r.json);
    assert_eq!(r.json["status"], "warn");
    let names: Vec<&str> = r.json["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let web3_report = r.json["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == "web-3")
        .unwrap();
    assert_eq!(web3_report["status"], "fail");
    assert_eq!(r.json["nodes"].as_array().unwrap().len(), 1);
    let mut c = crate::support::beam(home.path());
    c.args(["health", "--project", "shop/production"])
        .args(["--server", &server.tunnel.to_string()])
        .args(["--fingerprint", &server.fingerprint])
        .env("BEAM_TOKEN", &admin);
    let (code, out, err) = crate::support::output(c);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(2 of 3 healthy)"), "{out}");
    assert!(out.contains("Agent web-3:"), "{out}");
    assert!(out.contains("Server nodes:"), "{out}");

    // Env check: the two replicas with the variable disagree, and say so;
    // only verdicts cross.
    let mut c = crate::support::beam(home.path());
    c.args(["env", "check", "SHARED_URL", "--project", "shop/production"])
        .args(["--server", &server.tunnel.to_string()])
        .args(["--fingerprint", &server.fingerprint])
        .env("BEAM_TOKEN", &admin)
        .env("SHARED_URL", "https://one");
    let (_, out, err) = crate::support::output(c);
    assert!(out.contains("Production instances disagree"), "{out}{err}");
    assert!(out.contains("web-1: equal"), "{out}");
    assert!(out.contains("web-2: different"), "{out}");
    assert!(!out.contains("https://two"), "values never cross: {out}");

    // A replica that goes is announced to the follower.
    drop(web2);
    follow_until(&mut body, &mut followed, |l| {
        l.iter().any(|l| l["left"] == "web-2")
    })
    .await;
    log(a1, "INFO still here\n").await;
    follow_until(&mut body, &mut followed, |l| {
        l.iter().any(|l| l["message"] == "INFO still here")
    })
    .await;

    // A second agent taking web-3's name replaces it; the first says why
    // and does not come back.
    let mut web3 = web3;
    let (_web3b, _) = replica(&server, home.path(), &agent, "web-3", &[], &[]).await;
    let why = web3.wait_for("NOT PUBLISHING").await;
    assert!(
        why.contains("another agent connected as instance 'web-3'"),
        "{why}"
    );
    let r = server
        .api(
            "GET",
            "/api/projects/shop/production/health",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json["summary"], "2 of 2 healthy", "{}", r.json);
}

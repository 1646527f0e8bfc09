//! The inspector's JSON API after real traffic through a tunnel: the list and
//! one request, bodies and their caps, replay with and without changes,
//! clearing, the live event stream, HAR, and the refusals that keep other
//! sites and DNS rebinding out.

use beam_client::inspect::Limits;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use crate::support::*;

async fn post(public: std::net::SocketAddr, host: &str, path: &str, body: Vec<u8>) -> StatusCode {
    let resp = visit(
        public,
        host,
        Request::post(path)
            .header("content-type", "application/json")
            .body(full(body))
            .unwrap(),
    )
    .await;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    status
}

/// Every route on the byte-stream path (the default) and the per-request
/// path (gzip on): what went through is listed newest first with its
/// headers, bodies, status and timings, and one request can be fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_through_the_tunnel_are_listed_with_headers_bodies_and_timings() {
    for compress in [false, true] {
        let server = TestServer::start().await;
        let origin = RecordingOrigin::start().await;
        let ins = server
            .inspected(origin.addr, Limits::default(), |c| {
                c.proxy.compress = compress
            })
            .await;
        assert_eq!(
            get(server.public, &ins.host, "/json?x=1").await.0,
            StatusCode::OK
        );
        let body = br#"{"event":"invoice.paid","amount":4200}"#.to_vec();
        assert_eq!(
            post(server.public, &ins.host, "/api/webhooks/stripe", body).await,
            StatusCode::OK
        );
        ins.wait_for(2).await;

        let r = ins.call("GET", "/api/requests?limit=10", None, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let list = r.json.as_array().unwrap();
        assert_eq!(list.len(), 2, "compress {compress}: {list:?}");
        let (newest, oldest) = (&list[0], &list[1]);
        assert_eq!(newest["method"], "POST");
        assert_eq!(newest["path"], "/api/webhooks/stripe");
        assert_eq!(newest["status"], 200);
        assert_eq!(
            newest["request"]["body"],
            r#"{"event":"invoice.paid","amount":4200}"#
        );
        assert_eq!(newest["request"]["size"], 38);
        assert_eq!(newest["request"]["truncated"], false);
        assert!(newest["duration_ms"].as_f64().unwrap() > 0.0);
        assert!(newest["started_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(newest["visitor"], "127.0.0.1", "the edge's X-Real-IP");
        assert!(
            newest["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
        let headers = newest["request"]["headers"].as_array().unwrap();
        assert!(
            headers.iter().any(
                |h| h[0].as_str().unwrap().eq_ignore_ascii_case("content-type")
                    && h[1] == "application/json"
            ),
            "{headers:?}"
        );
        assert_eq!(oldest["path"], "/json?x=1");
        assert_eq!(
            oldest["response"]["body"],
            r#"{"ok":true,"items":[1,2,3],"name":"beam"}"#
        );
        assert!(
            oldest["response"]["headers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h[1] == "application/json")
        );

        let id = oldest["id"].as_u64().unwrap();
        let one = ins
            .call("GET", &format!("/api/requests/{id}"), None, &[])
            .await;
        assert_eq!(one.status, StatusCode::OK);
        assert_eq!(one.json["id"], id);
        assert_eq!(one.json["response"]["body"], oldest["response"]["body"]);
    }
}

/// A 5 MiB body reaches the local service whole while the inspector keeps
/// its first MiB and says how big it was; a gzipped response is shown
/// decompressed; binary bodies come as base64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_are_cut_in_the_inspector_not_on_the_wire() {
    let server = TestServer::start().await;
    let origin = RecordingOrigin::start().await;
    let ins = server
        .inspected(origin.addr, Limits::default(), |_| {})
        .await;
    let big: Vec<u8> = (0..5u32 << 20).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        post(server.public, &ins.host, "/upload", big.clone()).await,
        StatusCode::OK
    );
    let seen = origin.seen();
    assert_eq!(
        seen.last().unwrap().body.len(),
        5 << 20,
        "the origin got it whole"
    );
    assert_eq!(&seen.last().unwrap().body[..], &big[..]);
    assert_eq!(
        get(server.public, &ins.host, "/gzip").await.0,
        StatusCode::OK
    );
    ins.wait_for(2).await;
    let list = ins.call("GET", "/api/requests", None, &[]).await.json;
    let upload = &list[1];
    assert_eq!(upload["request"]["size"], 5 << 20);
    assert_eq!(upload["request"]["truncated"], true);
    let kept = base64_len(&upload["request"]);
    assert_eq!(kept, 1 << 20, "the default cap is 1 MiB");
    let gz = &list[0];
    assert!(
        gz["response"]["body_base64"].is_string(),
        "gzip bytes are binary"
    );
    assert_eq!(gz["response"]["decoded"], r#"{"compressed":true}"#);

    // Brotli too.
    assert_eq!(get(server.public, &ins.host, "/br").await.0, StatusCode::OK);
    ins.wait_for(3).await;
    let br = &ins
        .call("GET", "/api/requests?limit=1", None, &[])
        .await
        .json[0];
    let want = format!("{{\"compressed\":\"{}\"}}", "brotli ".repeat(40));
    assert_eq!(br["response"]["decoded"], want.as_str());
}

fn base64_len(msg: &serde_json::Value) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(msg["body_base64"].as_str().expect("binary body as base64"))
        .unwrap()
        .len()
}

/// Replay sends the recorded request to the local service again; replay
/// with changes sends the edited one; both appear in the list, marked.
/// Bad ids and bad changes get clear errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reaches_the_local_service_and_is_listed() {
    let server = TestServer::start().await;
    let origin = RecordingOrigin::start().await;
    let ins = server
        .inspected(origin.addr, Limits::default(), |_| {})
        .await;
    let body = br#"{"n":1}"#.to_vec();
    assert_eq!(
        post(server.public, &ins.host, "/hook", body).await,
        StatusCode::OK
    );
    ins.wait_for(1).await;
    let id = ins.call("GET", "/api/requests", None, &[]).await.json[0]["id"]
        .as_u64()
        .unwrap();

    let r = ins
        .call("POST", &format!("/api/requests/{id}/replay"), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.json["replay_of"], id);
    let same = r.json["id"].as_u64().unwrap();
    let changed = ins
        .call(
            "POST",
            &format!("/api/requests/{id}/replay"),
            Some(json!({ "path": "/hook/changed?try=2", "body": "{\"n\":2}" })),
            &[],
        )
        .await;
    assert_eq!(changed.status, StatusCode::CREATED, "{changed:?}");
    let changed_id = changed.json["id"].as_u64().unwrap();

    let seen = origin.seen();
    let tail: Vec<(String, String, String)> = seen
        .iter()
        .map(|s| {
            (
                s.method.clone(),
                s.path.clone(),
                String::from_utf8_lossy(&s.body).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        tail,
        vec![
            ("POST".into(), "/hook".into(), r#"{"n":1}"#.into()),
            ("POST".into(), "/hook".into(), r#"{"n":1}"#.into()),
            (
                "POST".into(),
                "/hook/changed?try=2".into(),
                r#"{"n":2}"#.into()
            ),
        ]
    );
    let list = ins.call("GET", "/api/requests", None, &[]).await.json;
    assert_eq!(list[0]["id"], changed_id);
    assert_eq!(list[0]["replay_of"], id);
    assert_eq!(list[0]["path"], "/hook/changed?try=2");
    assert_eq!(
        list[0]["response"]["body"],
        "seen POST /hook/changed?try=2 7 bytes"
    );
    assert_eq!(list[1]["id"], same);
    assert_eq!(list[1]["replay_of"], id);

    // Clear errors for what cannot be done.
    let r = ins.call("GET", "/api/requests/abc", None, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json["error"].as_str().unwrap().contains("numbers"),
        "{r:?}"
    );
    let r = ins
        .call("POST", "/api/requests/9999/replay", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.json["error"].as_str().unwrap().contains("not kept"),
        "{r:?}"
    );
    let r = ins
        .call(
            "POST",
            &format!("/api/requests/{id}/replay"),
            Some(json!({ "path": "http://elsewhere/" })),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.json["error"].as_str().unwrap().contains("start with '/'"),
        "{r:?}"
    );
    let r = ins
        .call(
            "POST",
            &format!("/api/requests/{id}/replay"),
            Some(json!({ "nonsense": 1 })),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json["error"].as_str().unwrap().contains("nonsense"),
        "{r:?}"
    );
    let r = ins.call("GET", "/api/nothing", None, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // HAR 1.2 of everything, oldest first, and of one request.
    let har = ins.call("GET", "/api/har", None, &[]).await;
    assert_eq!(har.json["log"]["version"], "1.2");
    let entries = har.json["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["request"]["method"], "POST");
    assert!(
        entries[0]["request"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/hook"),
        "{}",
        entries[0]["request"]["url"]
    );
    assert_eq!(entries[0]["request"]["postData"]["text"], r#"{"n":1}"#);
    assert_eq!(entries[2]["response"]["status"], 200);
    assert!(
        har.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".har")
    );
    let one = ins
        .call("GET", &format!("/api/requests/{id}/har"), None, &[])
        .await;
    assert_eq!(one.json["log"]["entries"].as_array().unwrap().len(), 1);

    // Clearing empties the list.
    let r = ins.call("DELETE", "/api/requests", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let list = ins.call("GET", "/api/requests", None, &[]).await.json;
    assert_eq!(list.as_array().unwrap().len(), 0);
}

/// Only requests addressed to the inspector itself are answered (a page on
/// another name that resolves to 127.0.0.1 cannot read it), and another
/// site cannot change anything through the visitor's browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_and_cross_site_requests_are_refused() {
    let server = TestServer::start().await;
    let origin = RecordingOrigin::start().await;
    let ins = server
        .inspected(origin.addr, Limits::default(), |_| {})
        .await;
    assert_eq!(
        get(server.public, &ins.host, "/secret-path").await.0,
        StatusCode::OK
    );
    ins.wait_for(1).await;

    let r = ins
        .call(
            "GET",
            "/api/requests",
            None,
            &[("host", "evil.example:4040")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.json["error"].as_str().unwrap().contains("DNS-rebinding"),
        "{r:?}"
    );
    assert!(!r.text.contains("secret-path"));
    let port = ins.addr.port();
    let local = format!("localhost:{port}");
    let r = ins
        .call("GET", "/api/requests", None, &[("host", &local)])
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "localhost at its port is its own name"
    );

    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let r = ins.call("DELETE", "/api/requests", None, &headers).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(
            r.json["error"].as_str().unwrap().contains("cross-site"),
            "{r:?}"
        );
    }
    assert_eq!(ins.rec.held().0, 1, "nothing was cleared");
    let own = format!("http://{}", ins.addr);
    let r = ins
        .call(
            "DELETE",
            "/api/requests",
            None,
            &[("origin", &own), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "its own page may");

    // A form post (not JSON) cannot carry replay changes.
    assert_eq!(
        get(server.public, &ins.host, "/again").await.0,
        StatusCode::OK
    );
    ins.wait_for(1).await;
    let id = ins.rec.list(1)[0].id;
    let r = ins
        .call(
            "POST",
            &format!("/api/requests/{id}/replay"),
            Some(json!("path=/elsewhere")),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{r:?}");

    // The page is locked down.
    let page = ins.call("GET", "/", None, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(!page.text.contains("<script>"), "no inline script");
}

/// The event stream announces each request as it completes and a clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_announces_requests_as_they_complete() {
    let server = TestServer::start().await;
    let origin = RecordingOrigin::start().await;
    let ins = server
        .inspected(origin.addr, Limits::default(), |_| {})
        .await;
    let stream = tokio::net::TcpStream::connect(ins.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/api/requests/events")
        .header("host", ins.addr.to_string())
        .body(full(""))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let first = next_data(&mut body).await.unwrap();
    assert!(first.starts_with(b": connected"));
    assert_eq!(
        get(server.public, &ins.host, "/live-one").await.0,
        StatusCode::OK
    );
    let event = String::from_utf8(next_data(&mut body).await.unwrap().to_vec()).unwrap();
    assert!(event.starts_with("event: request\ndata: "), "{event}");
    let data: serde_json::Value =
        serde_json::from_str(event.trim_start_matches("event: request\ndata: ").trim()).unwrap();
    assert_eq!(data["path"], "/live-one");
    assert_eq!(data["status"], 200);
    ins.call("DELETE", "/api/requests", None, &[]).await;
    let event = String::from_utf8(next_data(&mut body).await.unwrap().to_vec()).unwrap();
    assert!(event.starts_with("event: clear"), "{event}");
}

/// Memory stays within the limits under 10,000 requests: the count cap and
/// the byte cap each push the oldest out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_stay_within_the_memory_bounds() {
    let server = TestServer::start().await;
    let origin = RecordingOrigin::start().await;
    let limits = Limits {
        max_requests: 2_000,
        max_bytes: 4 << 20,
        body_cap: 64 << 10,
    };
    let ins = server.inspected(origin.addr, limits, |_| {}).await;
    // Keep-alive connections, 8 at a time, each sending its share.
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let (public, host) = (server.public, ins.host.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(public).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            for i in 0..1250u32 {
                // Every tenth request carries 8 KiB, so the byte cap binds.
                let body = if i % 10 == 0 {
                    vec![b'x'; 8 << 10]
                } else {
                    Vec::new()
                };
                let req = Request::post(format!("/r/{t}/{i}"))
                    .header("host", &host)
                    .body(full(body))
                    .unwrap();
                let resp = within("response", sender.send_request(req)).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                let _ = resp.into_body().collect().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eventually("all 10,000 recorded", || async {
        let newest = ins.rec.list(1).first().map_or(0, |e| e.id);
        (newest >= 10_000).then_some(())
    })
    .await;
    let (count, bytes) = ins.rec.held();
    assert!(count <= 2_000, "{count} kept");
    assert!(bytes <= 4 << 20, "{bytes} bytes kept");
    assert!(count > 100, "the newest are kept: {count}");
    assert_eq!(origin.seen().len(), 10_000);
}

/// A WebSocket through the tunnel shows as an upgrade with the bytes and
/// frames each way, readable while it lives and after it closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_are_shown_each_way() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let ins = server
        .inspected(origin.addr, Limits::default(), |_| {})
        .await;
    websocket_echo(server.public, &ins.host).await;
    let ws = eventually("the closed WebSocket in the inspector", || async {
        let list = ins.call("GET", "/api/requests", None, &[]).await.json;
        let ws = list
            .as_array()?
            .iter()
            .find(|e| e["websocket"].is_object())?
            .clone();
        (ws["websocket"]["closed"] == true).then_some(ws)
    })
    .await;
    assert_eq!(ws["status"], 101);
    assert_eq!(ws["path"], "/ws");
    let frames = ws["websocket"]["frames"].as_array().unwrap();
    let text: Vec<(&str, &str)> = frames
        .iter()
        .filter(|f| f["opcode"] == 1)
        .map(|f| {
            (
                f["direction"].as_str().unwrap(),
                f["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(text, vec![("up", "hello ws"), ("down", "hello ws")]);
    let binary: Vec<_> = frames.iter().filter(|f| f["opcode"] == 2).collect();
    assert_eq!(binary.len(), 2);
    assert!(
        binary
            .iter()
            .all(|f| f["size"] == 300_000 && f["truncated"] == true)
    );
    assert!(ws["websocket"]["up_bytes"].as_u64().unwrap() > 300_000);
    assert!(ws["websocket"]["down_bytes"].as_u64().unwrap() > 300_000);
}

/// A local service that is down: the visitor gets beam's 502 page, and the
/// inspector and request lines show each failed request with the reason,
/// on the byte-stream path too (the connection is served request by
/// request while the service is down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_service_that_is_down_shows_as_failed_requests() {
    let server = TestServer::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let ins = server.inspected(closed, Limits::default(), |_| {}).await;
    let mut events = ins.rec.subscribe();
    for path in ["/first", "/second"] {
        let (status, body) = get(server.public, &ins.host, path).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert!(
            body.contains("could not connect to the local service"),
            "{body}"
        );
    }
    for path in ["/first", "/second"] {
        let beam_client::inspect::Update::Recorded(s) =
            within("a failed request", events.recv()).await.unwrap()
        else {
            panic!("expected a request")
        };
        assert_eq!((s.path.as_str(), s.status), (path, Some(502)));
        assert!(
            s.error.as_deref().unwrap().contains("could not connect"),
            "{s:?}"
        );
    }
    let list = ins.call("GET", "/api/requests", None, &[]).await.json;
    assert_eq!(list[0]["status"], 502);
    assert!(
        list[0]["error"]
            .as_str()
            .unwrap()
            .contains(&closed.to_string()),
        "{}",
        list[0]
    );
}

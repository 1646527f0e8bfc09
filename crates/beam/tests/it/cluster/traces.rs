//! OpenTelemetry traces: a visitor request reaching a node without its tunnel
//! is one trace across the node hop, its span on each node sent to a real
//! OTLP/HTTP endpoint on loopback, and the app behind the tunnel gets the
//! holder's span as its parent. A visitor cannot force recording.

use std::net::SocketAddr;

use beam_proto::Secret;
use beam_server::telemetry::otlp::OtlpConfig;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::support::*;

/// An OTLP/HTTP receiver: every span posted to it, with the API key header
/// the request carried.
async fn collector() -> (SocketAddr, mpsc::UnboundedReceiver<(Value, String)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let key = req
                            .headers()
                            .get("x-api-key")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        assert_eq!(req.uri().path(), "/v1/traces");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let v: Value = serde_json::from_slice(&body).unwrap();
                        for rs in v["resourceSpans"].as_array().unwrap() {
                            for ss in rs["scopeSpans"].as_array().unwrap() {
                                for span in ss["spans"].as_array().unwrap() {
                                    let _ = tx.send((span.clone(), key.clone()));
                                }
                            }
                        }
                        Ok::<_, std::convert::Infallible>(Response::new(full("{}")))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map_or(&Value::Null, |a| &a["value"])
}

/// Spans of `trace` until `n` have arrived.
async fn spans_of(
    rx: &mut mpsc::UnboundedReceiver<(Value, String)>,
    trace: &str,
    n: usize,
    seen: &mut Vec<(Value, String)>,
) -> Vec<Value> {
    within("spans at the collector", async {
        loop {
            let of: Vec<Value> = seen
                .iter()
                .filter(|(s, _)| s["traceId"] == trace)
                .map(|(s, _)| s.clone())
                .collect();
            if of.len() >= n {
                return of;
            }
            seen.push(rx.recv().await.unwrap());
        }
    })
    .await
}

/// `(trace id, parent span id)` of a `traceparent` value.
fn ids(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    (p[1].to_string(), p[2].to_string(), p[3].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_request_is_one_trace_across_the_node_hop_and_into_the_app() {
    let (addr, mut rx) = collector().await;
    let otlp = OtlpConfig {
        endpoint: format!("http://{addr}/v1/traces").parse().unwrap(),
        headers: vec![(
            http::HeaderName::from_static("x-api-key"),
            Secret::new("collector-key"),
        )],
        service: "beam-test".into(),
        ratio: 1.0,
    };
    let a = TestServer::cluster(|c| c.otlp = Some(otlp.clone())).await;
    let c = a.join().await;
    let origin = Origin::start().await;
    let (_client, w) = a.http_client(origin.addr).await;
    let host = a.host(&w.name);
    let mut seen = Vec::new();

    // The visitor's own trace, reaching the node without the tunnel.
    let visitor_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let req = Request::get("/headers?card=4242")
        .header(
            "traceparent",
            format!("00-{visitor_trace}-00f067aa0ba902b7-01"),
        )
        .body(full(""))
        .unwrap();
    let resp = visit(c.public, &host, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let app: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let (app_trace, app_parent, flags) = ids(app["traceparent"].as_str().unwrap());
    assert_eq!((app_trace.as_str(), flags.as_str()), (visitor_trace, "01"));

    let spans = spans_of(&mut rx, visitor_trace, 2, &mut seen).await;
    let first = spans
        .iter()
        .find(|s| attr(s, "beam.hops")["intValue"] == "0")
        .unwrap();
    let holder = spans
        .iter()
        .find(|s| attr(s, "beam.hops")["intValue"] == "1")
        .unwrap();
    assert_eq!(first["parentSpanId"], "00f067aa0ba902b7", "{first}");
    assert_eq!(attr(first, "beam.forwarded")["intValue"], "1");
    assert_ne!(
        attr(first, "beam.node"),
        attr(holder, "beam.node"),
        "one span per node"
    );
    assert_eq!(holder["parentSpanId"], first["spanId"], "{holder}");
    assert_eq!(
        holder["spanId"],
        app_parent.as_str(),
        "the app's parent is the holder's span"
    );
    for s in [first, holder] {
        assert_eq!(s["name"], "GET");
        assert_eq!(s["kind"], 2);
        assert_eq!(attr(s, "http.response.status_code")["intValue"], "200");
        assert_eq!(
            attr(s, "url.path")["stringValue"],
            "/headers",
            "no query string"
        );
        let name = host.split(':').next().unwrap();
        assert_eq!(attr(s, "server.address")["stringValue"], name);
    }
    assert!(seen.iter().all(|(_, key)| key == "collector-key"));

    // Without a trace of its own, the request starts one, still across the hop.
    let (_, body) = get(c.public, &host, "/headers").await;
    let app: Value = serde_json::from_str(&body).unwrap();
    let (trace, parent, _) = ids(app["traceparent"].as_str().unwrap());
    let spans = spans_of(&mut rx, &trace, 2, &mut seen).await;
    assert!(spans.iter().any(|s| s["spanId"] == parent.as_str()));
    let roots = spans
        .iter()
        .filter(|s| s.get("parentSpanId").is_none())
        .count();
    assert_eq!(roots, 1, "{spans:?}");

    // A node sampling nothing: the visitor's `sampled` flag does not make it
    // (or the holder) record; the app sees the decision.
    let d = a
        .join_with(|cfg| {
            if let Some(o) = cfg.otlp.as_mut() {
                o.ratio = 0.0;
            }
        })
        .await;
    let forced = "0af7651916cd43dd8448eb211c80319c";
    let req = Request::get("/headers")
        .header("traceparent", format!("00-{forced}-b7ad6b7169203331-01"))
        .body(full(""))
        .unwrap();
    let resp = visit(d.public, &host, req).await;
    let app: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let (trace, _, flags) = ids(app["traceparent"].as_str().unwrap());
    assert_eq!((trace.as_str(), flags.as_str()), (forced, "00"));
    // A sampled request through the same holder afterwards: once its spans
    // are in, anything the holder queued before them is in too.
    let (_, body) = get(c.public, &host, "/headers").await;
    let app: Value = serde_json::from_str(&body).unwrap();
    let (marker, _, _) = ids(app["traceparent"].as_str().unwrap());
    spans_of(&mut rx, &marker, 2, &mut seen).await;
    assert!(
        seen.iter().all(|(s, _)| s["traceId"] != forced),
        "a visitor forced a span"
    );
}

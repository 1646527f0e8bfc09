//! `GET /api/analytics/tunnels/{id}/series` and `/api/analytics/series`: the
//! time series behind the dashboard's charts, on SQLite and PostgreSQL, after
//! real requests through a tunnel: exact totals per step, sampled
//! percentiles, zero-filled steps, the step rules, and organization checks.

use http::StatusCode;

use crate::support::*;

crate::both!(series_count_every_request_exactly, |backend| async move {
    let server = TestServer::start_on(backend, |_| {}).await;
    let origin = Origin::start().await;
    let alice = server.user("alice@example.com").await;
    let bob = server.user("bob@example.com").await;
    let t = server
        .api_token(&alice, &["tunnels:write", "tunnels:read"])
        .await;
    let mut client = TestClient::start(server.client_with(
        &t,
        beam_proto::TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    ));
    let w = client.connected().await;
    let host = server.host(&w.name);
    for _ in 0..6 {
        assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
    }
    assert_eq!(
        get(server.public, &host, "/fail").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let id = server.tunnel_row(&t, &w.name).await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/analytics/tunnels/{id}/series?period=1h&step=1m");
    let s = eventually("the 7 requests in the series", || async {
        let r = server.api("GET", &path, Some(&alice), None).await;
        (r.json["totals"]["requests"] == 7).then_some(r.json)
    })
    .await;
    assert_eq!(
        (s["period"].as_str(), s["step"].as_str()),
        (Some("1h"), Some("1m"))
    );
    assert_eq!(s["step_ms"], 60_000);
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 60, "one point per minute, zero-filled");
    assert_eq!(
        s["until"].as_i64().unwrap() - s["since"].as_i64().unwrap(),
        3_600_000
    );
    assert_eq!(s["totals"]["errors"], 1);
    assert!(s["totals"]["bytes_out"].as_i64().unwrap() > 0);
    assert_eq!(
        s["exact"],
        serde_json::json!(["requests", "errors", "bytes_in", "bytes_out"])
    );
    assert_eq!(
        s["sampled"],
        serde_json::json!(["p50_ms", "p95_ms", "samples"])
    );
    let busy: Vec<_> = points
        .iter()
        .filter(|p| p["requests"].as_i64() > Some(0))
        .collect();
    assert!(
        !busy.is_empty() && busy.len() <= 2,
        "the requests fall in one or two minutes"
    );
    let sum: i64 = busy.iter().map(|p| p["requests"].as_i64().unwrap()).sum();
    assert_eq!(sum, 7);
    let samples: i64 = busy.iter().map(|p| p["samples"].as_i64().unwrap()).sum();
    assert_eq!(samples, 7, "every request sampled at this rate");
    assert!(busy.iter().all(|p| p["p50_ms"].as_f64().is_some() && p["p95_ms"].as_f64() >= p["p50_ms"].as_f64()));
    assert!(
        points
            .iter()
            .filter(|p| p["requests"] == 0)
            .all(|p| p["p50_ms"].is_null())
    );

    // Org-wide, with default steps: 5-minute steps over a day, hourly over a week.
    let day = server
        .api("GET", "/api/analytics/series", Some(&alice), None)
        .await;
    assert_eq!(day.status, StatusCode::OK);
    assert_eq!(
        (day.json["period"].as_str(), day.json["step"].as_str()),
        (Some("24h"), Some("5m"))
    );
    assert_eq!(day.json["points"].as_array().unwrap().len(), 288);
    assert_eq!(day.json["totals"]["requests"], 7);
    let week = server
        .api("GET", "/api/analytics/series?period=7d", Some(&alice), None)
        .await;
    assert_eq!(week.json["step"], "1h");
    assert_eq!(week.json["points"].as_array().unwrap().len(), 168);
    assert_eq!(
        week.json["totals"]["requests"], 7,
        "the hourly table agrees"
    );
    let month = server
        .api(
            "GET",
            &format!("/api/analytics/tunnels/{id}/series?period=30d&step=1d"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (
            month.json["points"].as_array().unwrap().len(),
            &month.json["totals"]["errors"]
        ),
        (30, &serde_json::json!(1))
    );

    // Bad combinations say what to use instead.
    let r = server
        .api(
            "GET",
            "/api/analytics/series?period=7d&step=5m",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("use step=1h or longer"), "{r:?}");
    let r = server
        .api(
            "GET",
            "/api/analytics/series?period=1h&step=1d",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("longer than period=1h"), "{r:?}");
    let r = server
        .api("GET", "/api/analytics/series?step=2m", Some(&alice), None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    let r = server
        .api("GET", "/api/analytics/series?span=1h", Some(&alice), None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "unknown parameters are refused"
    );

    // Another organization sees neither the tunnel nor its traffic.
    let r = server.api("GET", &path, Some(&bob), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = server
        .api("GET", "/api/analytics/series?period=1h", Some(&bob), None)
        .await;
    assert_eq!(r.json["totals"]["requests"], 0);
    let r = server.api("GET", &path, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    client.stop().await;
});

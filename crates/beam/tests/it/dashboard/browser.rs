//! The dashboard in a real headless Chromium, after real traffic through a
//! real tunnel: sign in, a tunnel appears in the open list without a reload
//! and its request count moves, the charts are given the series the API
//! returns, the tunnel is stopped from the page and leaves the list, a token
//! is created (shown once) and revoked, a domain shows its DNS records and a
//! check result, and a viewer sees no admin actions. Screenshots of each page
//! go to target/test-artifacts/.

use http::StatusCode;
use serde_json::json;

use super::pages::member_of;
use crate::support::*;

const PASSWORD: &str = "correct horse battery";

async fn sign_in(b: &Browser, base: &str, email: &str) {
    b.goto(&format!("{base}/login")).await;
    b.type_into("#email", email).await;
    b.type_into("#password", PASSWORD).await;
    b.click("#sign-in").await;
    b.wait_text("h1", "a signed-in page", |t| t != "Sign in to beam")
        .await;
}

/// The data the chart `kind` on page `url` was given, once its first series
/// sums to `total` (the page is reloaded until the analytics are written).
async fn chart_data(b: &Browser, url: &str, kind: &str, total: &str) -> serde_json::Value {
    let script = format!(
        "const e = document.querySelector('[data-chart={kind}]'); return e && e.beamSeries ? e.beamSeries : null;"
    );
    eventually(
        &format!("the {kind} chart with a total of {total}"),
        || async {
            b.goto(url).await;
            let v = eventually("the chart's data", || async {
                let v = b.script(&script).await;
                (!v.is_null()).then_some(v)
            })
            .await;
            let sum: f64 = v["values"][0]
                .as_array()?
                .iter()
                .filter_map(|x| x.as_f64())
                .sum();
            (sum.to_string() == total).then_some(v)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_uses_the_dashboard_in_a_browser() {
    let server = TestServer::start().await;
    let origin = Origin::start().await;
    let alice = server.user("alice@example.com").await;
    let alice_org = server.api("GET", "/api/org", Some(&alice), None).await.json["id"]
        .as_i64()
        .unwrap();
    member_of(&server, &alice, "bob@example.com", "viewer").await;
    let r = server
        .api(
            "POST",
            "/api/projects",
            Some(&alice),
            Some(json!({ "project": "shop", "environment": "prod" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let t = server
        .api_token(&alice, &["tunnels:write", "tunnels:read"])
        .await;
    let base = format!("http://localhost:{}", server.public.port());
    let b = Browser::start().await;

    // Signing in from a deep link comes back to it.
    b.goto(&format!("{base}/tunnels")).await;
    b.wait_text("#notice", "why sign-in is asked", |t| {
        t == "Sign in to continue."
    })
    .await;
    let shot = b.screenshot("dashboard-sign-in").await;
    eprintln!("screenshot: {}", shot.display());
    b.type_into("#email", "alice@example.com").await;
    b.type_into("#password", PASSWORD).await;
    b.click("#sign-in").await;
    b.wait_text("h1", "the tunnel list", |t| t == "Tunnels")
        .await;
    b.wait_text("#live-state", "the live stream", |t| t == "Live")
        .await;
    assert!(b.find_all("#tunnels tbody tr").await.is_empty());

    // A tunnel started now appears in the open page, no reload.
    let mut client = TestClient::start(server.client_with(
        &t,
        beam_proto::TunnelRequest::Http {
            subdomain: None,
            domain: None,
        },
        origin.addr,
    ));
    let w = client.connected().await;
    let id = server.tunnel_row(&t, &w.name).await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let row = format!("#tunnels tr[data-id=\"{id}\"]");
    let line = b
        .wait_text(&row, "the new tunnel in the list", |t| t.contains(&w.name))
        .await;
    assert!(
        line.contains("online") && line.contains("alice@example.com"),
        "{line}"
    );
    // Its request count moves as visitors arrive.
    let host = server.host(&w.name);
    for _ in 0..5 {
        assert_eq!(get(server.public, &host, "/hello").await.0, StatusCode::OK);
    }
    b.wait_text(
        &format!("{row} [data-f=requests]"),
        "the request count",
        |t| t == "5",
    )
    .await;
    let shot = b.screenshot("dashboard-tunnels").await;
    eprintln!("screenshot: {}", shot.display());

    // The tunnel's page: the charts get the API's series (read what the
    // chart was given, not pixels).
    let requests = chart_data(&b, &format!("{base}/tunnels/{id}"), "requests", "5").await;
    assert_eq!(requests["points"], 60, "{requests}");
    assert_eq!(requests["step"], "1m");
    assert_eq!(requests["totals"]["requests"], 5);
    let latency = b
        .script("return document.querySelector('[data-chart=latency]').beamSeries")
        .await;
    assert_eq!(latency["fields"], json!(["p50_ms", "p95_ms"]));
    assert!(
        latency["values"][0]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_f64().is_some()),
        "{latency}"
    );
    let paths = b.text("#paths").await;
    assert!(paths.contains("/hello"), "{paths}");
    assert_eq!(b.find_all("#recent tbody tr").await.len(), 5);
    let shot = b.screenshot("dashboard-tunnel").await;
    eprintln!("screenshot: {}", shot.display());

    // The overview: the organization's chart and what needs attention.
    chart_data(&b, &format!("{base}/"), "requests", "5").await;
    assert_eq!(b.text("#stat-online").await, "1");
    let attention = b.text("#attention").await;
    assert!(
        attention.contains("no agent is connected for shop/prod"),
        "{attention}"
    );
    let shot = b.screenshot("dashboard-overview").await;
    eprintln!("screenshot: {}", shot.display());

    // Stopped from the page: it leaves the list and its client is told.
    b.goto(&format!("{base}/tunnels")).await;
    b.script("window.confirm = () => true; return true").await;
    b.click(&format!("{row} form[action$='/stop'] button"))
        .await;
    b.wait_text("#flash", "the stop confirmation", |t| {
        t.contains("was stopped")
    })
    .await;
    assert!(b.find_all(&row).await.is_empty());
    let why = client.result().await.unwrap_err().to_string();
    assert!(why.contains("was stopped"), "{why}");

    // Tokens: created and shown once, working, then revoked.
    b.goto(&format!("{base}/tokens")).await;
    b.type_into("#description", "ci").await;
    b.click("#create-token").await;
    let token = b
        .wait_text("#new-token", "the new token", |t| t.starts_with("beam_"))
        .await;
    assert_eq!(
        server
            .api("GET", "/api/tunnels", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
    let shot = b.screenshot("dashboard-tokens").await;
    eprintln!("screenshot: {}", shot.display());
    b.goto(&format!("{base}/tokens")).await;
    assert!(!b.text("main").await.contains(&token), "shown once");
    b.script("window.confirm = () => true; return true").await;
    b.click("button[aria-label='Revoke ci']").await;
    b.wait_text("#flash", "the revocation", |t| t.contains("revoked"))
        .await;
    assert_eq!(
        server
            .api("GET", "/api/tunnels", Some(&token), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Domains: the records to publish, and what "check now" found.
    b.goto(&format!("{base}/domains")).await;
    b.type_into("#hostname", "app.example.com").await;
    b.click("#add-domain").await;
    b.wait_text("#flash", "the new domain", |t| {
        t.contains("Publish the DNS records")
    })
    .await;
    let records = b.text("section.domain .records").await;
    assert!(
        records.contains("TXT _beam") && records.contains("CNAME app.example.com"),
        "{records}"
    );
    b.click("button[aria-label='Check app.example.com now']")
        .await;
    let found = b
        .wait_text("#flash", "the check's result", |t| {
            t.starts_with("Not verified yet")
        })
        .await;
    assert!(found.len() > "Not verified yet: ".len(), "{found}");
    let shot = b.screenshot("dashboard-domains").await;
    eprintln!("screenshot: {}", shot.display());

    // Production: environments and their (missing) agents.
    b.goto(&format!("{base}/production")).await;
    let env = b.text("section.env").await;
    assert!(
        env.contains("shop/prod") && env.contains("No agent is connected"),
        "{env}"
    );
    // Who looked at what: the audit log of the environment, from its creation.
    let access = b.text("table.access").await;
    assert!(
        access.contains("alice@example.com") && access.contains("project.create"),
        "{access}"
    );
    let shot = b.screenshot("dashboard-production").await;
    eprintln!("screenshot: {}", shot.display());

    // Phone-sized and dark: the same page, readable.
    b.color_scheme("dark").await;
    b.window(390, 844).await;
    b.goto(&format!("{base}/")).await;
    let bg = b
        .script("return getComputedStyle(document.body).backgroundColor")
        .await;
    assert_eq!(bg, "rgb(13, 17, 23)", "dark palette");
    let overflow = b
        .script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(overflow, true, "no sideways scrolling at phone width");
    let shot = b.screenshot("dashboard-overview-phone-dark").await;
    eprintln!("screenshot: {}", shot.display());
    b.color_scheme("light").await;
    b.window(1280, 860).await;

    // Signing out.
    b.click("#sign-out").await;
    b.wait_text("#notice", "the signed-out notice", |t| {
        t == "You are signed out."
    })
    .await;

    // A viewer: switches to Alice's organization and sees no admin actions.
    sign_in(&b, &base, "bob@example.com").await;
    b.click(&format!("#switch-org option[value='{alice_org}']"))
        .await;
    b.click("#switch").await;
    b.wait_text("#who-role", "the viewer role", |t| t == "viewer")
        .await;
    b.goto(&format!("{base}/team")).await;
    assert!(b.text("#members").await.contains("alice@example.com"));
    assert!(b.find_all("form[action*='/role']").await.is_empty());
    assert!(b.find_all("form[action$='/remove']").await.is_empty());
    assert!(b.find_all("#invite-email").await.is_empty());
    assert!(b.text("#no-admin").await.contains("Only owners and admins"));
    let shot = b.screenshot("dashboard-team-viewer").await;
    eprintln!("screenshot: {}", shot.display());
    b.goto(&format!("{base}/domains")).await;
    assert!(b.find_all("#add-domain").await.is_empty());
    assert!(b.text("main").await.contains("app.example.com"));
}

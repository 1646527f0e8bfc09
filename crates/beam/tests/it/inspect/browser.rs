//! The inspector's page in a real headless Chromium, after real traffic
//! through a tunnel: requests appear without a reload, the detail view shows
//! a JSON body pretty-printed, "edit & replay" with another path reaches the
//! local service and is listed, and a 5 MiB body shows as truncated while the
//! local service got it whole. Screenshots go to target/test-artifacts/.

use beam_client::inspect::Limits;
use http::{Request, StatusCode};
use http_body_util::BodyExt;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_lists_live_shows_pretty_json_and_replays_with_changes() {
    let server = TestServer::start().await;
    let origin = RecordingOrigin::start().await;
    let ins = server
        .inspected(origin.addr, Limits::default(), |_| {})
        .await;
    let browser = Browser::start().await;
    browser.goto(&ins.url).await;
    browser
        .wait_text("#live", "the page's live stream", |t| t == "live")
        .await;
    assert!(browser.find_all("#list tbody tr").await.is_empty());

    // A request through the tunnel appears in the open page, no reload.
    assert_eq!(
        get(server.public, &ins.host, "/json?page=1").await.0,
        StatusCode::OK
    );
    browser
        .wait_text("#list tbody", "the request in the list", |t| {
            t.contains("/json?page=1")
        })
        .await;
    let row = browser.text("#list tbody tr").await;
    assert!(row.contains("GET") && row.contains("200"), "{row}");

    // The detail view pretty-prints the JSON response.
    browser.click("#list tbody tr").await;
    let body = browser
        .wait_text("#resp-body", "the response body", |t| {
            t.contains("\"items\"")
        })
        .await;
    assert!(
        body.contains("{\n  \"ok\": true,\n  \"items\": ["),
        "{body}"
    );
    assert!(browser.text("#resp-meta").await.starts_with("JSON"));
    let title = browser.text("#d-title").await;
    assert_eq!(title, "GET /json?page=1 → 200");
    let shot = browser.screenshot("inspector-detail").await;
    eprintln!("screenshot: {}", shot.display());

    // Edit & replay with another path: the local service gets it, and the
    // list shows it marked as a replay.
    let resp = visit(
        server.public,
        &ins.host,
        Request::post("/api/webhooks/stripe")
            .header("content-type", "application/json")
            .body(full(r#"{"type":"invoice.paid"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.into_body().collect().await;
    browser
        .wait_text("#list tbody tr", "the webhook in the list", |t| {
            t.contains("/api/webhooks/stripe")
        })
        .await;
    browser.click("#list tbody tr").await;
    browser
        .wait_text("#d-title", "the webhook's detail", |t| {
            t.starts_with("POST")
        })
        .await;
    browser.click("#edit-replay").await;
    browser
        .type_into("#edit-path", "/api/webhooks/stripe?replayed=1")
        .await;
    browser.click("#edit-send").await;
    eventually("the replay reaches the local service", || async {
        origin
            .seen()
            .iter()
            .find(|s| s.path == "/api/webhooks/stripe?replayed=1")
            .map(|s| assert_eq!(&s.body[..], br#"{"type":"invoice.paid"}"#))
    })
    .await;
    browser
        .wait_text("#list tbody tr", "the replay in the list", |t| {
            t.contains("?replayed=1") && t.contains("replay of #")
        })
        .await;
    browser.screenshot("inspector-list").await;

    // A 5 MiB body: whole at the origin, truncated in the page.
    let big: Vec<u8> = vec![b'z'; 5 << 20];
    let resp = visit(
        server.public,
        &ins.host,
        Request::post("/upload").body(full(big)).unwrap(),
    )
    .await;
    let _ = resp.into_body().collect().await;
    assert_eq!(
        origin
            .seen()
            .iter()
            .find(|s| s.path == "/upload")
            .unwrap()
            .body
            .len(),
        5 << 20
    );
    browser
        .wait_text("#list tbody tr", "the upload in the list", |t| {
            t.contains("/upload")
        })
        .await;
    browser.click("#list tbody tr").await;
    let meta = browser
        .wait_text("#req-meta", "the upload's body note", |t| {
            t.contains("truncated")
        })
        .await;
    assert!(meta.contains("5242880 bytes"), "{meta}");

    // The keyboard moves through the list: arrow down opens the next one.
    browser
        .press("#list tbody tr[aria-selected=true]", "\u{E015}")
        .await;
    browser
        .wait_text("#d-title", "the next request, by keyboard", |t| {
            t == "POST /api/webhooks/stripe?replayed=1 → 200"
        })
        .await;

    // Copy as curl: the command (shown when the clipboard is not allowed,
    // as in a headless browser) replays the request from a shell.
    browser.click("#copy-curl").await;
    let curl = browser
        .wait_text("#d-note", "the curl command", |t| {
            t.contains("curl -X POST")
        })
        .await;
    assert!(
        curl.contains("/api/webhooks/stripe?replayed=1'")
            && curl.contains("--data-binary '{\"type\":\"invoice.paid\"}'")
            && curl.contains("-H 'content-type: application/json'"),
        "{curl}"
    );

    // Filters narrow the list without a reload.
    browser.type_into("#f-path", "webhooks").await;
    let rows = browser.find_all("#list tbody tr").await.len();
    assert_eq!(rows, 2, "the webhook and its replay");

    // Dark mode follows the system, and a phone-sized window stacks the list
    // over the detail.
    let background = "return getComputedStyle(document.body).backgroundColor";
    assert_eq!(browser.script(background).await, "rgb(255, 255, 255)");
    browser.color_scheme("dark").await;
    assert_eq!(browser.script(background).await, "rgb(13, 17, 23)");
    browser.screenshot("inspector-dark").await;
    browser.window(390, 844).await;
    let columns = browser
        .script("return getComputedStyle(document.querySelector('main')).gridTemplateColumns")
        .await;
    assert_eq!(
        columns.as_str().unwrap().split_whitespace().count(),
        1,
        "one column on a phone: {columns}"
    );
    let overflow = browser
        .script("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(overflow, true, "nothing wider than the phone's screen");
    browser.screenshot("inspector-phone").await;
}

//! The dashboard's scripts and styles, compiled into the binary: the shared
//! palette and uPlot from `beam-web`, and the dashboard's own CSS and script.
//! Served with an `ETag` and `no-cache`, so a browser revalidates cheaply and
//! never runs a stale script after an upgrade.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const DASH_CSS: &str = include_str!("assets/dash.css");
const DASH_JS: &str = include_str!("assets/dash.js");

/// `(file, content type, body)` of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    ("base.css", "text/css; charset=utf-8", beam_web::BASE_CSS),
    ("dash.css", "text/css; charset=utf-8", DASH_CSS),
    ("dash.js", "text/javascript; charset=utf-8", DASH_JS),
    (
        "uplot.js",
        "text/javascript; charset=utf-8",
        beam_web::UPLOT_JS,
    ),
    ("uplot.css", "text/css; charset=utf-8", beam_web::UPLOT_CSS),
    (
        "uplot.LICENSE.txt",
        "text/plain; charset=utf-8",
        beam_web::UPLOT_LICENSE,
    ),
];

/// FNV-1a of the body: a stable validator for a body compiled in.
fn etag(body: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// `GET /assets/{file}`.
pub(crate) async fn serve(
    axum::extract::Path(file): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((_, ctype, body)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return super::render::not_found_page();
    };
    let tag = etag(body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, *ctype)], *body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    resp
}

//! beam's shared web assets: the palette and controls both pages use (the
//! client's inspector and the server's dashboard), the vendored chart library,
//! and the security headers every page carries. Everything is compiled into
//! the binary, so the pages work offline and the build needs no Node toolchain.

/// The shared palette (light and dark from the system preference) and controls.
pub const BASE_CSS: &str = include_str!("../assets/base.css");

/// uPlot 1.6.32, minified, unchanged from its npm package (MIT, see
/// [`UPLOT_LICENSE`]).
pub const UPLOT_JS: &str = include_str!("../assets/uplot/uPlot.iife.min.js");

/// uPlot's stylesheet.
pub const UPLOT_CSS: &str = include_str!("../assets/uplot/uPlot.min.css");

/// uPlot's licence text, served next to the script.
pub const UPLOT_LICENSE: &str = include_str!("../assets/uplot/LICENSE");

/// Content-Security-Policy of every page: scripts and styles from the page's
/// own origin only (no inline script, no `eval`), nothing fetched from
/// elsewhere, no framing, forms posting only to the same origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers every page and asset carries: the [`CSP`], no framing, no MIME
/// sniffing, and the referrer only to the page's own origin (URLs carry ids;
/// `no-referrer` would also make browsers send `Origin: null` on the page's
/// own form posts, which the dashboard's same-origin check must refuse), as
/// `(name, value)`.
pub fn security_headers(csp: &'static str) -> [(&'static str, &'static str); 4] {
    [
        ("content-security-policy", csp),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_no_inline_script_and_no_framing() {
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
        assert!(CSP.contains("frame-ancestors 'none'"));
        assert!(UPLOT_LICENSE.contains("MIT License"));
        assert!(UPLOT_JS.contains("uPlot"));
    }
}

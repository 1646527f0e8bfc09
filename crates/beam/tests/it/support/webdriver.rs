//! A headless Chromium driven over WebDriver (W3C), for tests of beam's web
//! pages: a few commands over plain HTTP to `chromedriver`, which is all the
//! tests need (navigate, find, read text, click, type, run a script,
//! screenshot) without a WebDriver crate in the build.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs
//! them); `BEAM_CHROMIUM` and `BEAM_CHROMEDRIVER` point elsewhere.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use base64::Engine;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::*;

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session; the driver is killed when it drops.
pub struct Browser {
    port: u16,
    session: String,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver close Chromium; killing the
        // driver alone would leave the browser's processes running after the
        // test. Drop cannot await, so this is one blocking HTTP/1.1 request.
        if !self.session.is_empty()
            && let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port))
        {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.port
            );
            if s.write_all(req.as_bytes()).is_ok() {
                let _ = s.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where tests leave screenshots: `target/test-artifacts/` of the workspace.
pub fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    pub async fn start() -> Self {
        let driver_bin =
            std::env::var("BEAM_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium =
            std::env::var("BEAM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&driver_bin).exists() && std::path::Path::new(&chromium).exists(),
            "browser tests need {chromium} and {driver_bin} (apt-get install chromium chromium-driver; scripts/test does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {driver_bin}: {e}"));
        let mut b = Self {
            port,
            session: String::new(),
            driver,
        };
        eventually("chromedriver ready", || async {
            let (_, v) = b.raw("GET", "/status", None).await.ok()?;
            (v["value"]["ready"] == true).then_some(())
        })
        .await;
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,860",
                         "--force-color-profile=srgb"],
            },
        }}});
        let v = b.cmd("POST", "/session", Some(caps)).await;
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(http::StatusCode, Value), String> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port))
            .header("content-type", "application/json")
            .body(full(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap();
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let v = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        Ok((status, v))
    }

    /// A WebDriver command; panics with the driver's message on failure.
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = within("webdriver", self.raw(method, path, body))
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        assert!(
            status.is_success(),
            "webdriver {method} {path}: {status} {v}"
        );
        v["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await;
    }

    /// Every element matching the CSS selector.
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .cmd(
                "POST",
                &self.at("/elements"),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching, waiting for it to exist.
    pub async fn find(&self, css: &str) -> String {
        eventually(&format!("element {css}"), || async {
            self.find_all(css).await.into_iter().next()
        })
        .await
    }

    /// The rendered text of the first element matching `css`, read in one
    /// script call (the page re-renders its list live, so an element found
    /// in one command may be gone by the next), waiting for it to exist.
    pub async fn text(&self, css: &str) -> String {
        eventually(&format!("element {css}"), || async {
            let v = self
                .cmd(
                    "POST",
                    &self.at("/execute/sync"),
                    Some(json!({
                        "script": "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                        "args": [css],
                    })),
                )
                .await;
            v.as_str().map(str::to_string)
        })
        .await
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    pub async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        eventually(what, || async {
            let t = self.text(css).await;
            ok(&t).then_some(t)
        })
        .await
    }

    /// Runs an element command on the first element matching `css`, finding
    /// it again when the page re-rendered it in between (stale reference).
    async fn on_element(&self, css: &str, command: &str, body: Value) {
        for _ in 0..20 {
            let el = self.find(css).await;
            let path = self.at(&format!("/element/{el}/{command}"));
            let (status, v) = within("webdriver", self.raw("POST", &path, Some(body.clone())))
                .await
                .unwrap_or_else(|e| panic!("webdriver {command} on {css}: {e}"));
            if status.is_success() {
                return;
            }
            assert_eq!(
                v["value"]["error"], "stale element reference",
                "webdriver {command} on {css}: {status} {v}"
            );
        }
        panic!("{css} kept being re-rendered under {command}");
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        self.on_element(css, "click", json!({})).await;
    }

    /// Replaces the value of the input matching `css` with `text`, typed.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "clear", json!({})).await;
        self.on_element(css, "value", json!({ "text": text })).await;
    }

    /// Sends `keys` (WebDriver key codes such as `\u{E015}`, arrow down)
    /// to the first element matching `css`.
    pub async fn press(&self, css: &str, keys: &str) {
        self.on_element(css, "value", json!({ "text": keys })).await;
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Emulates `prefers-color-scheme: scheme` (Chrome DevTools, through
    /// chromedriver's `goog/cdp` command).
    pub async fn color_scheme(&self, scheme: &str) {
        self.cmd(
            "POST",
            &self.at("/goog/cdp/execute"),
            Some(json!({ "cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{ "name": "prefers-color-scheme", "value": scheme }] } })),
        )
        .await;
    }

    /// Resizes the window (a phone: 390 × 844).
    pub async fn window(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            &self.at("/window/rect"),
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Saves a PNG of the window under [`artifacts_dir`]; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.cmd("GET", &self.at("/screenshot"), None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

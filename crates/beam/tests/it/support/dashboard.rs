//! The dashboard over plain HTTP/1.1 (or TLS to the HTTPS edge), as a browser
//! sends it: form posts with the session cookie, pages as text, and the
//! session cookie and CSRF token read back out of answers.

use super::*;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

/// A page or a redirect.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The `Location` of a redirect.
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `Set-Cookie` values.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// `name=value` of the session cookie this answer sets.
    pub fn session_cookie(&self) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| {
                (c.starts_with("beam_session=") || c.starts_with("__Host-beam_session="))
                    && !c.contains("Max-Age=0")
            })
            .map(|c| c.split(';').next().unwrap().to_string())
    }

    /// The first CSRF token in the page's forms.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF field in the page: {}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// A request to the dashboard on the API host (`localhost`), over plain HTTP
/// (`tls` false) or the HTTPS edge.
pub struct Visit<'a> {
    pub server: &'a TestServer,
    pub method: &'a str,
    pub path: &'a str,
    pub cookie: Option<&'a str>,
    pub form: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
    pub tls: bool,
    pub host: Option<&'a str>,
}

impl<'a> Visit<'a> {
    /// A plain GET of `path` with `cookie`.
    pub fn get(server: &'a TestServer, path: &'a str, cookie: Option<&'a str>) -> Self {
        Self {
            server,
            method: "GET",
            path,
            cookie,
            form: None,
            headers: &[],
            tls: false,
            host: None,
        }
    }

    /// A form post of `form` to `path` with `cookie`.
    pub fn post(
        server: &'a TestServer,
        path: &'a str,
        cookie: Option<&'a str>,
        form: &'a str,
    ) -> Self {
        Self {
            method: "POST",
            form: Some(form),
            ..Self::get(server, path, cookie)
        }
    }

    /// Sends it.
    pub async fn send(self) -> Page {
        let port = if self.tls {
            self.server.https.port()
        } else {
            self.server.public.port()
        };
        let host = self
            .host
            .map_or_else(|| format!("localhost:{port}"), str::to_string);
        let mut req = Request::builder()
            .method(self.method)
            .uri(self.path)
            .header("host", &host);
        if let Some(c) = self.cookie {
            req = req.header("cookie", c);
        }
        if self.form.is_some() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        for (k, v) in self.headers {
            req = req.header(*k, *v);
        }
        let req = req.body(full(self.form.unwrap_or("").to_string())).unwrap();
        let resp = if self.tls {
            let io = tls_connect(self.server.https, "localhost", &[b"http/1.1"])
                .await
                .unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .unwrap();
            tokio::spawn(conn);
            within("dashboard answer", sender.send_request(req))
                .await
                .unwrap()
        } else {
            let stream = tokio::net::TcpStream::connect(self.server.public)
                .await
                .unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            within("dashboard answer", sender.send_request(req))
                .await
                .unwrap()
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// Signs `email` in through the form: the session cookie (`name=value`).
pub async fn dashboard_sign_in(server: &TestServer, email: &str, password: &str) -> String {
    let form = format!(
        "email={}&password={}&next=%2F",
        email.replace('@', "%40"),
        password.replace(' ', "+")
    );
    let page = Visit::post(server, "/login", None, &form).send().await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{page:?}");
    page.session_cookie().expect("a session cookie")
}

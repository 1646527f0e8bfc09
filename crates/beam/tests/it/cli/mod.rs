//! The real `beam` binary: the README quick start path and its error messages.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::*;

mod dev;
mod server;

use server::dev_server_cmd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_server_dev_then_beam_http() {
    let home = tempfile::tempdir().unwrap();
    // The default data directory under HOME, as in the README's quick start.
    let mut server = Kill(
        dev_server_cmd(home.path(), None)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Read the banner until the token line: by then the config file is written.
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let mut banner = String::new();
    let public_port = tokio::task::spawn_blocking(move || {
        let mut port = 0u16;
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "server exited:\n{banner}"
            );
            banner.push_str(&line);
            if let Some(rest) = line
                .trim()
                .strip_prefix("tunnels     http://<name>.localhost:")
            {
                port = rest.parse().unwrap();
            }
            if line.contains("saved to") {
                assert!(banner.contains("beam server is ready"), "{banner}");
                assert!(banner.contains("token       beam_"), "{banner}");
                // Keep draining so the server never writes into a closed pipe.
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
                return port;
            }
        }
    });
    let public_port = within("server banner", public_port).await.unwrap();
    assert_ne!(public_port, 0, "the banner shows the real bound port");
    let config = std::fs::read_to_string(home.path().join(".config/beam/config.toml")).unwrap();
    assert!(config.contains("token = \"beam_") && config.contains("fingerprint = \"sha256:"));
    // The data directory, the store and the key are the server user's only.
    {
        use std::os::unix::fs::PermissionsExt;
        let data = home.path().join(".local/share/beam");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("beam.db")), 0o600);
        assert_eq!(mode(&data.join("tunnel-key.pem")), 0o600);
    }

    let origin = Origin::start().await;
    let mut client = Kill(
        beam(home.path())
            .args(["http", &origin.addr.to_string(), "--json", "--log-requests"])
            .args(["--inspect", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = stdout_lines(&mut client.0);
    let line = within("connected line", lines.recv()).await.unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["event"], "connected");
    assert_eq!(v["protocol"], "http");
    let name = v["name"].as_str().unwrap();
    assert_eq!(v["url"], format!("http://{name}.localhost:{public_port}"));
    let public = format!("127.0.0.1:{public_port}").parse().unwrap();
    let (status, body) = get(public, &format!("{name}.localhost"), "/hello").await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(body, "hello from origin");
    // --log-requests: a JSON line per request; the inspector has it too.
    let line = within("request line", lines.recv()).await.unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(
        (&r["event"], &r["method"], &r["path"], &r["status"]),
        (
            &"request".into(),
            &"GET".into(),
            &"/hello".into(),
            &200.into()
        )
    );
    let inspector = v["inspector"].as_str().expect("the inspector's address");
    let inspector: std::net::SocketAddr = inspector.trim_start_matches("http://").parse().unwrap();
    assert_ne!(inspector.port(), 0, "the real bound port is shown");
    let resp = visit(
        inspector,
        &inspector.to_string(),
        http::Request::get("/api/requests").body(full("")).unwrap(),
    )
    .await;
    let list: serde_json::Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(list[0]["path"], "/hello");
    assert_eq!(list[0]["response"]["body"], "hello from origin");

    // Ctrl-C closes the client cleanly with exit code 0.
    let pid = client.0.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = within(
        "client exit",
        tokio::task::spawn_blocking(move || client.0.wait().map(|s| (s, client))),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(status.0.success(), "{:?}", status.0);

    // Without --sendmail no address can be verified, so registration is
    // closed by default and people join by invitation: the admin passes the
    // one-time token on, the invitee accepts and chooses a password.
    let api = format!("localhost:{public_port}");
    let register = http::Request::post("/api/auth/register")
        .header("content-type", "application/json")
        .body(full(
            r#"{"email":"new@example.com","password":"correct horse battery"}"#,
        ))
        .unwrap();
    let resp = visit(public, &api, register).await;
    assert_eq!(resp.status(), http::StatusCode::FORBIDDEN);
    let org = |args: &[&str], home: &std::path::Path, env: &[(&str, &str)]| {
        let mut c = beam(home);
        c.arg("org").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        output(c)
    };
    let (code, token, err) = org(
        &["invite", "new@example.com", "--role", "member"],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("give new@example.com this one-time token"),
        "{err}"
    );
    let token = token.trim().to_string();
    assert!(token.starts_with("beaminvite_"), "{token}");
    let invitee = tempfile::tempdir().unwrap();
    let server_addr =
        std::fs::read_to_string(home.path().join(".config/beam/config.toml")).unwrap();
    let field = |k: &str| {
        server_addr
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
            .map(|v| v.trim_end_matches('"').to_string())
            .unwrap()
    };
    let (server_arg, fp) = (field("server"), field("fingerprint"));
    let conn = [
        "--server",
        server_arg.as_str(),
        "--fingerprint",
        fp.as_str(),
    ];
    let mut args = vec!["accept", token.as_str()];
    args.extend_from_slice(&conn);
    let (code, out, err) = org(
        &args,
        invitee.path(),
        &[("BEAM_PASSWORD", "the invitee's password")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("joined organization") && out.contains("as member"),
        "{out}"
    );
    let (code, out, err) = org(&["members"], home.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("member  new@example.com"), "{out}");
    // The token worked once.
    let (code, _, err) = org(&args, invitee.path(), &[("BEAM_PASSWORD", "again 1234567")]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid, already used"), "{err}");
}

fn run(home: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = beam(home);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_gets_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let (code, err) = run(home.path(), &["http", "3000"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no token: run `beam login`, set BEAM_TOKEN"),
        "{err}"
    );

    let (code, err) = run(home.path(), &["http", "99999"], &[("BEAM_TOKEN", "beam_x")]);
    assert_eq!(code, 1);
    assert!(err.contains("'99999' is not a local address"), "{err}");

    let (code, err) = run(home.path(), &["server", "--tcp-ports", "9-1"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a port range"), "{err}");

    let (code, err) = run(home.path(), &["http", "3000", "--token", "beam_x"], &[]);
    assert_eq!(code, 2, "tokens are not accepted as flags: {err}");

    let (code, err) = run(home.path(), &["http", "3000", "--transport", "quic"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("use auto, tls or websocket"), "{err}");

    // Inspector flags.
    let (code, err) = run(home.path(), &["http", "3000", "--inspect", "nowhere"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid value 'nowhere' for '--inspect"),
        "{err}"
    );
    let both = [
        "http",
        "3000",
        "--inspect",
        "127.0.0.1:4040",
        "--no-inspect",
    ];
    let (code, err) = run(home.path(), &both, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, err) = run(
        home.path(),
        &["http", "3000", "--inspect-body-cap", "lots"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--inspect-body-cap"), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = run(
        home.path(),
        &["http", "3000", "--inspect", &addr],
        &[("BEAM_TOKEN", "beam_x")],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("the inspector cannot listen on {addr}"))
            && err.contains("--no-inspect"),
        "{err}"
    );

    // A proxy URL beam cannot use: named, explained, its password masked.
    let proxy = [
        ("BEAM_TOKEN", "beam_x"),
        ("HTTPS_PROXY", "socks5://u:hunter2@p:1080"),
    ];
    let (code, err) = run(home.path(), &["http", "3000"], &proxy);
    assert_eq!(code, 1);
    assert!(
        err.contains("HTTPS_PROXY") && err.contains("only http:// proxies"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the proxy password leaked: {err}");
}

#[tokio::test]
async fn wrong_token_exits_with_the_servers_message() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let tunnel = server.tunnel.to_string();
    let (code, err) = tokio::task::spawn_blocking(move || {
        run(
            home.path(),
            &["http", "3000", "--server", &tunnel, "--insecure"],
            &[("BEAM_TOKEN", "beam_not_a_real_token")],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("invalid token"), "{err}");
    assert!(!err.contains("beam_not_a_real_token"), "{err}");
}

/// Runs the binary off the async runtime (the server under test lives on it).
pub(crate) async fn cli(
    home: &std::path::Path,
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut c = beam(home);
    c.current_dir(cwd).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let stdin = stdin.map(String::from);
    tokio::task::spawn_blocking(move || {
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                pipe.write_all(s.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

crate::both!(
    cli_manages_accounts_tokens_tunnels_and_domains,
    |backend| async move {
        let dns = crate::support::DnsServer::start().await;
        let server = TestServer::start_on(backend, |c| c.dns_resolver = Some(dns.addr)).await;
        let origin = Origin::start().await;
        server.user("alice@example.com").await;
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let tunnel = server.tunnel.to_string();
        let conn: Vec<&str> = vec!["--server", &tunnel, "--fingerprint", &server.fingerprint];
        let run = |args: Vec<&str>, env: Vec<(&str, &str)>, stdin: Option<&str>| {
            let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            all.extend(conn.iter().map(|s| s.to_string()));
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let (home, cwd) = (home.path().to_path_buf(), cwd.path().to_path_buf());
            let stdin = stdin.map(String::from);
            async move {
                let args: Vec<&str> = all.iter().map(String::as_str).collect();
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                cli(&home, &cwd, &args, &env, stdin.as_deref()).await
            }
        };

        // Login with email and password (from the environment, never argv).
        let (code, out, err) = run(
            vec!["login", "--email", "alice@example.com"],
            vec![("BEAM_PASSWORD", "wrong password!")],
            None,
        )
        .await;
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains("login failed") && err.contains("wrong email or password"),
            "{err}"
        );
        let (code, out, err) = run(
            vec!["login", "--email", "alice@example.com"],
            vec![("BEAM_PASSWORD", "correct horse battery")],
            None,
        )
        .await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains("as alice@example.com (alice@example.com's organization, owner)"),
            "{out}"
        );
        let config = std::fs::read_to_string(home.path().join(".config/beam/config.toml")).unwrap();
        assert!(
            config.contains("token = \"beam_") && config.contains("token_from_login = true"),
            "{config}"
        );

        // Tokens: created and printed once; listed without the secret.
        let (code, out, err) = run(
            vec![
                "tokens",
                "create",
                "--description",
                "ci",
                "--scopes",
                "tunnels:read",
            ],
            vec![],
            None,
        )
        .await;
        assert_eq!(code, 0, "{err}");
        let ci_token = out.trim().to_string();
        assert!(
            ci_token.starts_with("beam_") && err.contains("shown only this once"),
            "{out}{err}"
        );
        let (_, out, _) = run(vec!["tokens", "list"], vec![], None).await;
        assert!(
            out.contains("ci") && out.contains("tunnels:read") && !out.contains(&ci_token),
            "{out}"
        );
        let (code, _, err) = run(
            vec!["tokens", "create", "--scopes", "everything"],
            vec![],
            None,
        )
        .await;
        assert_eq!(code, 1);
        assert!(err.contains("unknown variant `everything`"), "{err}");

        // A tunnel shows in `beam list`; `beam stop` ends it and the client exits.
        let token = config
            .lines()
            .find_map(|l| l.strip_prefix("token = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_string();
        let mut client = TestClient::start(server.client_with(
            &token,
            beam_proto::TunnelRequest::Http {
                subdomain: Some("cli-demo".into()),
                domain: None,
            },
            origin.addr,
        ));
        client.connected().await;
        let (code, out, _) = run(vec!["list", "--json"], vec![], None).await;
        assert_eq!(code, 0);
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list[0]["name"], "cli-demo");
        assert_eq!(list[0]["status"], "connected");
        let (_, out, _) = run(vec!["list"], vec![], None).await;
        assert!(
            out.contains("cli-demo") && out.contains("connected"),
            "{out}"
        );
        // One table writer: every column starts at the same place on every line.
        let lines: Vec<&str> = out.lines().collect();
        let at = |l: &str, col: &str| l.find(col).unwrap();
        assert_eq!(at(lines[0], "NAME"), at(lines[1], "cli-demo"), "{out}");
        assert_eq!(at(lines[0], "STATUS"), at(lines[1], "connected"), "{out}");

        // Pause and resume: visitors get 503, then the app again.
        let host = server.host("cli-demo");
        let (code, out, err) = run(vec!["pause", "cli-demo"], vec![], None).await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("paused") && out.contains("beam resume cli-demo"),
            "{out}"
        );
        assert_eq!(
            get(server.public, &host, "/hello").await.0,
            http::StatusCode::SERVICE_UNAVAILABLE
        );
        let (code, out, err) = run(vec!["resume", "cli-demo"], vec![], None).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("resumed"), "{out}");
        assert_eq!(
            get(server.public, &host, "/hello").await.0,
            http::StatusCode::OK
        );
        let (code, _, err) = run(vec!["pause", "no-such-tunnel"], vec![], None).await;
        assert_eq!(code, 1);
        assert!(err.contains("no tunnel named 'no-such-tunnel'"), "{err}");

        let (code, out, err) = run(vec!["stop", "cli-demo"], vec![], None).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("stopped"), "{out}");
        assert!(matches!(
            client.result().await,
            Err(beam_client::ClientError::Stopped(_))
        ));
        let (code, _, err) = run(vec!["stop", "no-such-tunnel"], vec![], None).await;
        assert_eq!(code, 1);
        assert!(err.contains("no tunnel named 'no-such-tunnel'"), "{err}");

        // Domains: add prints the records; verify explains a missing record; remove.
        let (code, out, _) = run(vec!["domains", "add", "app.example.com"], vec![], None).await;
        assert_eq!(code, 0);
        assert!(
            out.contains("_beam-challenge.app.example.com  TXT")
                && out.contains("CNAME  localhost"),
            "{out}"
        );
        let (code, _, err) = run(vec!["domains", "verify", "app.example.com"], vec![], None).await;
        assert_eq!(code, 1);
        assert!(
            err.contains("no TXT record found at _beam-challenge.app.example.com"),
            "{err}"
        );
        let (_, out, _) = run(vec!["domains", "list"], vec![], None).await;
        assert!(
            out.contains("app.example.com") && out.contains("pending"),
            "{out}"
        );
        let (code, out, _) = run(vec!["domains", "remove", "app.example.com"], vec![], None).await;
        assert_eq!((code, out.trim()), (0, "app.example.com removed"));

        // A project file may hold defaults but never a token.
        std::fs::write(
            cwd.path().join("beam.toml"),
            format!("token = \"{ci_token}\"\n"),
        )
        .unwrap();
        let (code, _, err) = run(vec!["list"], vec![], None).await;
        assert_eq!(code, 1);
        assert!(
            err.contains("tokens do not belong in a project file") && !err.contains(&ci_token),
            "{err}"
        );
        std::fs::remove_file(cwd.path().join("beam.toml")).unwrap();

        // Logout revokes the login-made token; then commands say how to log in.
        let (code, out, _) = run(vec!["logout"], vec![], None).await;
        assert_eq!(code, 0);
        assert!(out.contains("token revoked"), "{out}");
        assert_eq!(
            server
                .api("GET", "/api/me", Some(&token), None)
                .await
                .status,
            http::StatusCode::UNAUTHORIZED
        );
        let (code, _, err) = run(vec!["list"], vec![], None).await;
        assert_eq!(code, 1);
        assert!(err.contains("no token: run `beam login`"), "{err}");

        // Login with a pasted token (stdin, not a terminal), and with a bad one.
        let (code, _, err) = run(vec!["login"], vec![], Some("beam_not_a_real_token\n")).await;
        assert_eq!(code, 1);
        assert!(
            err.contains("the token was not accepted") && err.contains("invalid token"),
            "{err}"
        );
        assert!(
            !err.contains("beam_not_a_real_token"),
            "the token is never echoed: {err}"
        );
        let (code, out, err) = run(vec!["login"], vec![], Some(&format!("{ci_token}\n"))).await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("as alice@example.com"), "{out}");
    }
);

//! `beam server`: turns flags into a [`ServerConfig`], prepares the data directory,
//! store and certificate, creates the first token when there is none, prints what
//! a new user needs, and runs until Ctrl-C or SIGTERM.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use beam_proto::Secret;
use beam_server::accounts::auth::{generate_token, hash_secret, store_operator_token};
use beam_server::store::now_ms;
use beam_server::tls::TunnelCert;
use beam_server::{Listeners, Server, ServerConfig, Store};
use owo_colors::OwoColorize;
use tokio::net::TcpListener;

use crate::cli::ServerArgs;
use crate::signal::shutdown_signal;
use crate::term::color;
use crate::userconfig::{UserConfig, default_path};

/// `~/.local/share/beam` (or `$XDG_DATA_HOME/beam`).
fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("beam")
}

/// Builds the server configuration from flags.
/// `http_port` is the port actually bound, which differs from the flag with port 0;
/// `https_port` likewise when an HTTPS listener is bound.
pub fn config_from(args: &ServerArgs, http_port: u16, https_port: Option<u16>) -> ServerConfig {
    let mut cfg = ServerConfig::dev();
    cfg.domain = args.domain.to_ascii_lowercase();
    // Production HTTPS: URLs say https and plain HTTP redirects. In --dev the
    // HTTPS listener is extra (self-signed) and plain HTTP stays the default.
    let https_first = https_port.is_some() && !args.dev;
    cfg.https_port = https_port.filter(|p| *p != 443);
    cfg.https_redirect = https_first && !args.no_https_redirect;
    if https_first {
        cfg.public_scheme = "https".into();
    }
    let default_port = if https_first {
        cfg.https_port
    } else {
        Some(http_port)
    };
    cfg.public_port = match args.public_port {
        Some(0) => None,
        Some(p) => Some(p),
        None => default_port,
    };
    cfg.acme = args.acme_directory.as_ref().map(|dir| {
        let mut acme = beam_server::edge::acme::AcmeConfig::new(dir.clone());
        acme.contact = args
            .acme_email
            .iter()
            .map(|e| format!("mailto:{e}"))
            .collect();
        acme.ca_file = args.acme_ca_file.clone();
        acme.renew_before = args.acme_renew_before;
        acme
    });
    cfg.edge_cert = match (&args.edge_cert, &args.edge_key) {
        (Some(cert), Some(key)) => Some(beam_server::edge::tls::WildcardFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    cfg.tcp_ports = args.tcp_ports.clone();
    cfg.tcp_bind = args.tcp_bind.unwrap_or(args.http_addr.ip());
    cfg.tcp_host = args
        .tcp_host
        .clone()
        .unwrap_or_else(|| cfg.tcp_bind.to_string());
    cfg.grace = args.grace;
    cfg.upstream_timeout = args.upstream_timeout;
    cfg.insecure = args.insecure;
    cfg.registration = match args.registration {
        Some(r) => r == crate::cli::Registration::Open,
        None => args.sendmail.is_some(),
    };
    cfg.session_ttl = args.session_ttl;
    cfg.auth_rate_per_minute = args.auth_rate_limit;
    cfg.auth_failures_per_minute = args.auth_failures;
    cfg.dns_resolver = args.dns_resolver;
    cfg.domain_recheck = args.domain_recheck;
    cfg.domain_pending_ttl = args.domain_pending_ttl;
    cfg.analytics = !args.no_analytics;
    cfg.webhook_retention = args.webhook_retention;
    if let Some(l) = args.default_limits {
        cfg.default_limits = l;
    }
    cfg.webhook_max_body = usize::try_from(args.webhook_max_body).unwrap_or(usize::MAX);
    cfg.env_check_limit = args.env_check_limit;
    cfg.retention = args.retention;
    cfg.audit_retention = args.audit_retention;
    cfg.tunnel_rate_per_sec = args.tunnel_rate_limit;
    cfg.token_rate_per_sec = args.token_rate_limit;
    cfg.rate_limit_delay = args.rate_limit_delay;
    cfg.max_streams_per_tunnel = args.max_streams_per_tunnel;
    cfg.max_tunnels_per_token = args.max_tunnels_per_token;
    cfg.max_body = args.max_body;
    cfg.max_request_line = usize::try_from(args.max_request_line).unwrap_or(usize::MAX);
    cfg.max_header_bytes = usize::try_from(args.max_header_bytes).unwrap_or(usize::MAX);
    cfg.header_read_timeout = args.header_timeout;
    cfg.idle_timeout = args.idle_timeout;
    cfg.drain_linger = args.drain_linger;
    cfg.api_url = args
        .api_url
        .clone()
        .unwrap_or_else(|| match cfg.public_port {
            Some(p) => format!("{}://{}:{p}", cfg.public_scheme, cfg.domain),
            None => format!("{}://{}", cfg.public_scheme, cfg.domain),
        });
    cfg.mailer = args
        .sendmail
        .clone()
        .map(|command| beam_server::accounts::mail::Mailer {
            command,
            from: args
                .mail_from
                .clone()
                .unwrap_or_else(|| format!("beam@{}", cfg.domain)),
        });
    cfg
}

/// Runs `beam server`.
pub async fn run(mut args: ServerArgs) -> anyhow::Result<()> {
    let public = bind(args.http_addr, "public HTTP").await?;
    let tunnel = bind(args.tunnel_addr, "tunnel").await?;
    if args.dev && args.https_addr.is_none() {
        args.https_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8443)));
    }
    let https = match args.https_addr {
        Some(addr) => Some(bind(addr, "public HTTPS").await?),
        None => None,
    };
    let metrics = match args.metrics_addr {
        Some(addr) => Some(bind(addr, "metrics").await?),
        None => None,
    };
    // With port 0 the OS picks: show and save the real addresses.
    args.metrics_addr = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    args.http_addr = public.local_addr()?;
    args.tunnel_addr = tunnel.local_addr()?;
    args.https_addr = https.as_ref().map(|l| l.local_addr()).transpose()?;
    let mut cfg = config_from(
        &args,
        args.http_addr.port(),
        args.https_addr.map(|a| a.port()),
    );
    // Traces: the standard OpenTelemetry variables (their header values are
    // often vendor keys, so never flags).
    cfg.otlp = beam_server::telemetry::otlp::OtlpConfig::from_env(|k| std::env::var(k).ok())?;
    if let Some(path) = &args.webhook_sources {
        cfg.webhook_sources = beam_server::parity::webhooks::Sources::load(path)?;
        tracing::info!(
            sources = cfg.webhook_sources.len(),
            "webhook sources loaded"
        );
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    private_dir(&data_dir)?;
    // The HTTPS edge without a certificate of its own: a self-signed one,
    // made once and kept in the data directory (a new one at every start
    // would make browsers warn again each time).
    if https.is_some() && cfg.edge_cert.is_none() {
        let names = vec![cfg.domain.clone(), format!("*.{}", cfg.domain)];
        TunnelCert::load_or_create_as(&data_dir, "edge", &names)?;
        cfg.edge_cert = Some(beam_server::edge::tls::WildcardFiles {
            cert: data_dir.join("edge-cert.pem"),
            key: data_dir.join("edge-key.pem"),
        });
    }
    let db_url = match args.database.clone() {
        Some(url) => url,
        None => {
            let file = data_dir.join("beam.db");
            private_file(&file)?;
            format!("sqlite://{}", file.display())
        }
    };
    // One server per SQLite database, held until exit.
    let _lock = match crate::datalock::sqlite_file(&db_url) {
        Some(db) => {
            let about = format!(
                "pid {}, tunnel {}, http {}",
                std::process::id(),
                args.tunnel_addr,
                args.http_addr
            );
            Some(crate::datalock::lock(&db, &about)?)
        }
        None => None,
    };
    let node = match super::node::listener(&args, &db_url).await? {
        Some((listener, cluster)) => {
            cfg.cluster = Some(cluster);
            Some(listener)
        }
        None => None,
    };
    let store = Store::connect(&db_url)
        .await
        .context("cannot open the store")?;

    let cert = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => TunnelCert::load(c, k)?,
        _ => {
            let mut names = vec![cfg.domain.clone(), "localhost".to_string()];
            names.push(args.tunnel_addr.ip().to_string());
            names.dedup();
            TunnelCert::load_or_create(&data_dir, &names)?
        }
    };
    let tls = cert.server_config()?;

    let server = Server::new(cfg.clone(), store.clone(), Some(tls)).await?;

    let token_note = bootstrap(&args, &store, server.operator(), &cert.fingerprint).await?;
    // In --dev, one click from the terminal to the dashboard, signed in.
    let dashboard = if args.dev {
        format!(
            "{}{}   (one click signs you in; works once, for 30 minutes)",
            api_url(&cfg),
            server.dashboard_sign_in_path()
        )
    } else {
        format!("{}/", api_url(&cfg))
    };
    print_banner(
        &args,
        &cfg,
        &db_url,
        &store,
        &cert.fingerprint,
        token_note,
        &dashboard,
    );

    server
        .run(
            Listeners {
                public,
                tunnel,
                https,
                metrics,
                node,
                memory: None,
            },
            shutdown_signal(),
        )
        .await?;
    eprintln!("beam server stopped");
    Ok(())
}

/// Creates the data directory readable by the server's user only (0700), and
/// tightens an existing one: it holds the store (hashes of every token) and
/// the tunnel certificate's private key.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (0700)", dir.display()))?;
    }
    Ok(())
}

/// Creates the SQLite file 0600 before the store opens it (SQLite gives its
/// -wal and -shm files the same mode), and tightens an existing one.
fn private_file(file: &std::path::Path) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts
        .open(file)
        .with_context(|| format!("cannot create {}", file.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private (0600)", file.display()))?;
    }
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen for {what} on {addr} (in use? choose another with a flag)")
    })
}

/// What the banner says about credentials.
enum TokenNote {
    /// A new token was created: show it once.
    Created {
        token: Secret,
        saved_to: Option<PathBuf>,
    },
    /// The user's config already holds a valid token.
    Existing(PathBuf),
    /// Tokens exist; nothing to show.
    None,
}

/// Registers `BEAM_BOOTSTRAP_TOKEN` if set, and creates the first token when the
/// store has none (or, with `--dev`, when the user's config has no valid one).
async fn bootstrap(
    args: &ServerArgs,
    store: &Store,
    operator: beam_server::store::Operator,
    fingerprint: &str,
) -> anyhow::Result<TokenNote> {
    // From the environment only: a token in argv would show up in `ps`.
    if let Ok(t) = std::env::var("BEAM_BOOTSTRAP_TOKEN")
        && !t.is_empty()
    {
        // Once: every node of a cluster, and every restart, sees the same
        // variable (a token that was revoked since stays revoked).
        if store.find_token(&hash_secret(&t)).await?.is_none() {
            store_operator_token(store, operator, &t, "bootstrap (BEAM_BOOTSTRAP_TOKEN)").await?;
        }
    }
    let path = default_path();
    if args.dev {
        let mut user = UserConfig::load(&path)?;
        let valid = match &user.token {
            // Revoked or expired tokens are replaced, not reused.
            Some(t) => store
                .find_token(&hash_secret(t.expose()))
                .await?
                .is_some_and(|row| row.is_live(now_ms())),
            None => false,
        };
        user.server = Some(args.tunnel_addr.to_string());
        user.fingerprint = Some(fingerprint.to_string());
        let note = if valid {
            TokenNote::Existing(path.clone())
        } else {
            let token = generate_token();
            store_operator_token(
                store,
                operator,
                token.expose(),
                "local user (beam server --dev)",
            )
            .await?;
            user.token = Some(token.clone());
            TokenNote::Created {
                token,
                saved_to: Some(path.clone()),
            }
        };
        user.save(&path)?;
        return Ok(note);
    }
    if store.count_tokens().await? == 0 {
        let token = generate_token();
        store_operator_token(store, operator, token.expose(), "first token").await?;
        return Ok(TokenNote::Created {
            token,
            saved_to: None,
        });
    }
    Ok(TokenNote::None)
}

fn print_banner(
    args: &ServerArgs,
    cfg: &ServerConfig,
    db_url: &str,
    store: &Store,
    fingerprint: &str,
    note: TokenNote,
    dashboard: &str,
) {
    // Built first and written once, ignoring errors: a closed stdout (a log
    // collector that went away) must not take the server down.
    let mut out = String::new();
    let c = color();
    let b = |s: &str| {
        if c {
            s.bold().to_string()
        } else {
            s.to_string()
        }
    };
    let db = if store.backend() == "sqlite" {
        db_url.to_string()
    } else {
        // A PostgreSQL URL may carry a password: show only the back end.
        "postgres".to_string()
    };
    let _ = writeln!(out, "{}", b("beam server is ready"));
    let _ = writeln!(out, "  tunnels     {}", cfg.http_url("<name>"));
    let _ = writeln!(out, "  dashboard   {dashboard}");
    let _ = writeln!(out, "  api         {}", api_url(cfg));
    if let Some(addr) = args.https_addr {
        let source = match (&args.edge_cert, &cfg.edge_cert) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(files)) => format!("self-signed, kept in {}", files.cert.display()),
            (None, None) => "self-signed certificate".into(),
        };
        let scheme_url = format!("https://<name>.{}:{}", cfg.domain, addr.port());
        let _ = writeln!(out, "  https       {scheme_url} ({source})");
    }
    if let Some(addr) = args.metrics_addr {
        let _ = writeln!(
            out,
            "  metrics     http://{addr}/metrics (no token: keep it private)"
        );
    }
    let _ = writeln!(
        out,
        "  listen      {} (tunnel clients, TLS {})",
        args.tunnel_addr, fingerprint
    );
    if let Some(c) = &cfg.cluster {
        let _ = writeln!(
            out,
            "  node        {} (other nodes of the cluster; secret from the environment)",
            c.node_addr
        );
    }
    if let Some(o) = &cfg.otlp {
        let _ = writeln!(
            out,
            "  traces      {} (OTLP/HTTP JSON, {:.0}% of new traces, service {})",
            o.endpoint,
            o.ratio * 100.0,
            o.service
        );
    }
    let _ = writeln!(
        out,
        "  tcp ports   {}-{} on {}",
        cfg.tcp_ports.start(),
        cfg.tcp_ports.end(),
        cfg.tcp_bind
    );
    let _ = writeln!(out, "  store       {db}");
    match note {
        TokenNote::Created { token, saved_to } => {
            let _ = writeln!(out, "  token       {}   (shown once)", b(token.expose()));
            match saved_to {
                Some(p) => {
                    let _ = writeln!(out, "              saved to {}", p.display());
                }
                None => {
                    let _ = writeln!(
                        out,
                        "              give it to clients as BEAM_TOKEN; it is not shown again"
                    );
                }
            }
        }
        TokenNote::Existing(p) => {
            let _ = writeln!(out, "  token       using the one in {}", p.display());
        }
        TokenNote::None => {}
    }
    out.push('\n');
    if args.dev {
        let _ = writeln!(out, "next: run {} in another terminal", b("beam http 3000"));
    } else {
        let _ = writeln!(
            out,
            "clients: BEAM_TOKEN=… beam http 3000 --server {} --fingerprint {}",
            args.tunnel_addr, fingerprint
        );
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
}

fn api_url(cfg: &ServerConfig) -> String {
    match cfg.public_port {
        Some(p) => format!("{}://{}:{}", cfg.public_scheme, cfg.domain, p),
        None => format!("{}://{}", cfg.public_scheme, cfg.domain),
    }
}

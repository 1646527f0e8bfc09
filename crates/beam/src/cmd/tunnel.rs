//! `beam http` and `beam tcp`: build a [`ClientConfig`], run the tunnel client, and
//! show its state: a spinner while connecting, the public URL, and a live status
//! line (open streams, requests), or JSON lines with `--json`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use beam_client::{ClientConfig, Event, HostHeader, LocalProxy, LocalTarget, ProxyConfig, Stats};
use beam_proto::{BasicAuth, Protection, Secret, TunnelRequest};
use indicatif::{ProgressBar, ProgressStyle};
use owo_colors::OwoColorize;

use crate::cli::{ConnArgs, HostHeaderArg, HttpArgs, HttpOptions, InspectArgs, TcpArgs};
use crate::cmd::account::read_secret;
use crate::settings::Settings;
use crate::signal::shutdown_signal;
use crate::term::color;

/// Attempts `beam http` / `beam tcp` make before saying the server cannot be
/// reached (with the default backoff, about 10 to 20 s); once connected they
/// reconnect forever.
const FIRST_CONNECT_ATTEMPTS: u32 = 4;

/// Builds the client configuration: flags > environment > project file > global
/// file > defaults (see [`crate::settings`]).
fn client_config(
    target: &str,
    settings: &Settings,
    tunnel: TunnelRequest,
) -> anyhow::Result<(ClientConfig, ProxyConfig)> {
    let local = LocalTarget::parse(target).map_err(anyhow::Error::msg)?;
    let token = settings.require_token()?;
    Ok((
        settings.client_config(token, tunnel),
        ProxyConfig::new(local),
    ))
}

/// Runs `beam http`.
pub async fn run_http(args: HttpArgs) -> anyhow::Result<()> {
    let c = &args.common;
    http_tunnel(&c.target, &c.conn, c.json, &args.opts, Dev::default()).await
}

/// What `beam dev` adds to `beam http`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dev {
    /// Open the browser at the public URL once online.
    pub open: bool,
    /// Print a QR code of the public URL once online.
    pub qr: bool,
    /// Rewrite `Host` unless `--host-header` says otherwise (the dev
    /// server checks it).
    pub rewrite_host: bool,
}

/// An HTTP tunnel to `target` with `opts`: `beam http`, and `beam dev` once
/// it knows the port.
pub async fn http_tunnel(
    target: &str,
    conn: &ConnArgs,
    json: bool,
    opts: &HttpOptions,
    dev: Dev,
) -> anyhow::Result<()> {
    let settings = Settings::resolve(conn)?;
    let tunnel = TunnelRequest::Http {
        subdomain: opts
            .subdomain
            .clone()
            .or(settings.project.subdomain.clone()),
        domain: opts.domain.clone().or(settings.project.domain.clone()),
    };
    let (mut cfg, mut proxy) = client_config(target, &settings, tunnel)?;
    if let Some(b) = opts.reconnect.reconnect {
        cfg.backoff = b;
    }
    proxy.host_header = match (opts.host_header, dev.rewrite_host) {
        (Some(HostHeaderArg::Rewrite), _) | (None, true) => HostHeader::Rewrite,
        (Some(HostHeaderArg::Preserve), _) | (None, false) => HostHeader::Preserve,
    };
    proxy.local.https |= opts.https;
    proxy.insecure_upstream = opts.insecure_upstream;
    proxy.compress = opts.compress;
    proxy.upstream_http2 = opts.upstream_http2;
    cfg.protection = protection(opts).await?;
    let local = proxy.local.url();
    let out = Output {
        local,
        protocol: "http",
        json,
        dev,
    };
    drive(cfg, proxy, out, Some(&opts.inspect)).await
}

/// Builds the visitor protection of `beam http`. Credentials are read from the
/// environment or a prompt and hashed here: the server only gets argon2 hashes.
async fn protection(args: &HttpOptions) -> anyhow::Result<Protection> {
    let hash = |s: Secret| async move {
        beam_server::accounts::password::hash(s)
            .await
            .map_err(|e| anyhow::anyhow!("cannot hash the credential: {e}"))
    };
    let basic_auth = if args.auth {
        let pair = read_secret("BEAM_AUTH", "visitor credentials (user:password): ")?;
        let (user, password) = split_credentials(pair.expose())?;
        Some(BasicAuth {
            user,
            hash: hash(password).await?,
        })
    } else {
        None
    };
    let bearer = if args.bearer {
        Some(hash(read_secret("BEAM_BEARER", "visitor bearer token: ")?).await?)
    } else {
        None
    };
    Ok(Protection {
        basic_auth,
        bearer,
        allow_cidr: args.allow_cidr.clone(),
        deny_cidr: args.deny_cidr.clone(),
        rate_per_minute: match args.rate_limit {
            Some(crate::cli::Rate::PerMinute(n)) => Some(n),
            _ => None,
        },
        rate_per_second: match args.rate_limit {
            Some(crate::cli::Rate::PerSecond(n)) => Some(n),
            _ => None,
        },
        cors: args.cors.clone(),
        max_body: args.max_body,
    })
}

/// Splits `user:password` on the first colon (RFC 7617: user ids cannot contain
/// one; passwords can).
pub fn split_credentials(pair: &str) -> anyhow::Result<(String, Secret)> {
    let Some((user, password)) = pair.split_once(':') else {
        bail!("visitor credentials must look like user:password");
    };
    if user.is_empty() || password.is_empty() {
        bail!("visitor credentials need both a user and a password (user:password)");
    }
    Ok((user.to_string(), Secret::new(password)))
}

/// Runs `beam tcp`.
pub async fn run_tcp(args: TcpArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args.common.conn)?;
    let (mut cfg, mut proxy) = client_config(
        &args.common.target,
        &settings,
        TunnelRequest::Tcp {
            port: args.remote_port,
        },
    )?;
    if let Some(b) = args.reconnect.reconnect {
        cfg.backoff = b;
    }
    proxy.proxy_protocol = args.proxy_protocol;
    let local = proxy.local.authority();
    let out = Output {
        local,
        protocol: "tcp",
        json: args.common.json,
        dev: Dev::default(),
    };
    drive(cfg, proxy, out, None).await
}

/// What the display says about the tunnel.
struct Output {
    /// The local target, as shown.
    local: String,
    protocol: &'static str,
    /// JSON lines instead of the interactive display.
    json: bool,
    /// `beam dev`'s extras.
    dev: Dev,
}

/// Terminal display of the client's events.
struct Display {
    json: bool,
    color: bool,
    tty: bool,
    bar: ProgressBar,
    local: String,
    protocol: &'static str,
    online: bool,
    /// The URL line is printed once, and again only when the URL changes.
    shown_url: bool,
    /// The inspector's address, shown under the URL.
    inspector: Option<String>,
    /// Print a line per request where the output is not a terminal (a
    /// terminal always gets them), or a JSON line with `--json`.
    log_requests: bool,
    /// The local time zone's offset, for request times.
    offset_secs: i64,
    /// Requests that failed (no response, or 5xx), for the status line.
    failed: u64,
    /// `beam dev`'s extras, done on the first connect.
    dev: Dev,
}

impl Display {
    fn new(out: Output, inspector: Option<String>, log_requests: bool) -> Self {
        let Output {
            local,
            protocol,
            json,
            dev,
        } = out;
        let tty = std::io::stderr().is_terminal() && !json;
        let bar = if tty {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            json,
            color: color(),
            tty,
            bar,
            local,
            protocol,
            online: false,
            shown_url: false,
            inspector,
            log_requests,
            offset_secs: crate::cmd::inspect::local_offset_secs(),
            failed: 0,
            dev,
        }
    }

    /// Whether request lines are wanted at all (capture costs a little).
    fn wants_requests(&self) -> bool {
        self.tty || self.log_requests
    }

    fn request(&mut self, ex: &beam_client::inspect::Summary) {
        if ex.error.is_some() || ex.status.is_none_or(|s| s >= 500) {
            self.failed += 1;
        }
        if self.json {
            if self.log_requests {
                let line = crate::cmd::inspect::request_json(ex);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            return;
        }
        if !self.wants_requests() {
            return;
        }
        let line = crate::cmd::inspect::request_line(ex, self.offset_secs, self.color);
        if self.tty {
            self.bar.suspend(|| println!("{line}"));
        } else {
            println!("{line}");
        }
    }

    fn event(&mut self, ev: Event, server: &str) {
        match ev {
            Event::Connecting { attempt } => {
                if attempt == 0 && !self.shown_url {
                    self.bar.set_message(format!("connecting to {server}…"));
                } else {
                    self.bar.set_message(format!("reconnecting to {server}…"));
                }
            }
            Event::Connected {
                welcome,
                url_changed,
                via,
            } => {
                let first = !self.shown_url;
                self.shown_url = true;
                self.online = true;
                if self.json {
                    let line = serde_json::json!({
                        "event": "connected",
                        "url": welcome.public_url,
                        "other_urls": welcome.other_urls,
                        "name": welcome.name,
                        "local": self.local,
                        "protocol": self.protocol,
                        "reconnected": !first,
                        "url_changed": url_changed,
                        "via": via,
                        "inspector": self.inspector,
                        // Live async tasks of this process: a soak compares
                        // it across reconnects to catch leaks.
                        "tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
                    });
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                    return;
                }
                if first || url_changed {
                    let url = if self.color {
                        welcome.public_url.bold().green().to_string()
                    } else {
                        welcome.public_url.clone()
                    };
                    let note = if url_changed {
                        "   (new URL: the old one expired while offline)"
                    } else {
                        ""
                    };
                    self.bar
                        .suspend(|| println!("{url} → {}{note}", self.local));
                    for d in &welcome.other_urls {
                        let d = if self.color {
                            d.bold().green().to_string()
                        } else {
                            d.clone()
                        };
                        self.bar.suspend(|| println!("{d} → {}", self.local));
                    }
                    if self.tty {
                        self.bar.suspend(|| eprintln!("  via {via}"));
                    }
                    if let (true, Some(i)) = (first, &self.inspector) {
                        self.bar.suspend(|| eprintln!("  inspector: {i}"));
                    }
                    if first && self.dev.qr && self.tty {
                        let qr = crate::qr::render(&welcome.public_url);
                        self.bar.suspend(|| eprintln!("{qr}"));
                    }
                    if first && self.dev.open {
                        crate::term::open_browser(&welcome.public_url);
                    }
                }
                if !self.tty {
                    eprintln!("online via {via}");
                }
            }
            Event::Disconnected { reason, retry_in } => {
                self.online = false;
                let secs = retry_in.as_secs_f32();
                if self.json {
                    eprintln!(
                        "{}",
                        serde_json::json!({"event": "disconnected", "reason": reason, "retry_in_ms": retry_in.as_millis() as u64})
                    );
                } else if self.tty {
                    self.bar
                        .set_message(format!("○ offline, retrying in {secs:.1} s: {reason}"));
                } else {
                    eprintln!("offline, retrying in {secs:.1} s: {reason}");
                }
            }
        }
    }

    fn tick(&self, stats: &Stats) {
        if self.online && self.tty {
            let (open, requests) = stats.snapshot();
            let dot = if self.color {
                "●".green().to_string()
            } else {
                "●".to_string()
            };
            let failed = match (self.failed, self.color) {
                (0, _) => String::new(),
                (n, true) => format!(" · {}", format!("{n} failed").red()),
                (n, false) => format!(" · {n} failed"),
            };
            self.bar.set_message(format!(
                "{dot} online · {open} open · {requests} streams{failed} · Ctrl-C to stop"
            ));
        }
    }
}

async fn drive(
    cfg: ClientConfig,
    proxy: ProxyConfig,
    out: Output,
    inspect: Option<&InspectArgs>,
) -> anyhow::Result<()> {
    let server = cfg.server.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stats = Arc::new(Stats::default());
    let log_requests = inspect.is_some_and(|a| a.log_requests);
    let mut display = Display::new(out, None, log_requests);
    let rec = inspect.and_then(|a| {
        let lines = display.wants_requests() && !display.json || display.json && log_requests;
        crate::cmd::inspect::recorder(a, lines)
    });
    let mut cfg = cfg;
    cfg.http1_streams = proxy.streams_http1();
    // A server that is not there at the start is most likely a mistake.
    cfg.first_connect_attempts = Some(FIRST_CONNECT_ATTEMPTS);
    let handler = LocalProxy::inspected(&proxy, cfg.tunnel.kind(), stats.clone(), rec.clone());
    if let (Some(a), Some(rec)) = (inspect, &rec)
        && !a.no_inspect
    {
        let listener = crate::cmd::inspect::bind(a).await?;
        let url = crate::cmd::inspect::spawn(listener, rec.clone(), handler.clone())?;
        display.inspector = Some(url);
    }
    let mut updates = rec.as_ref().map(|r| r.subscribe());
    let client = beam_client::run(cfg, handler, tx, shutdown_signal());
    tokio::pin!(client);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        let update = async {
            match updates.as_mut() {
                Some(u) => u.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut client => break r,
            Some(ev) = rx.recv() => display.event(ev, &server),
            Ok(beam_client::inspect::Update::Recorded(ex)) = update => display.request(&ex),
            _ = tick.tick() => display.tick(&stats),
        }
    };
    display.bar.finish_and_clear();
    match result {
        Ok(()) => {
            if !display.json {
                eprintln!("tunnel closed");
            }
            Ok(())
        }
        Err(beam_client::ClientError::Stopped(reason)) => bail!("{reason}"),
        Err(e) => Err(e).context("the tunnel cannot start"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_credentials;

    #[test]
    fn credentials_split_on_the_first_colon() {
        let (user, pw) = split_credentials("ada:pa:ss:word").unwrap();
        assert_eq!(user, "ada");
        assert_eq!(pw.expose(), "pa:ss:word");
        for bad in ["ada", ":secret", "ada:"] {
            let e = split_credentials(bad).unwrap_err().to_string();
            assert!(e.contains("user:password"), "{bad}: {e}");
        }
    }
}

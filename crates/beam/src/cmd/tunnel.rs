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

use crate::cli::{HostHeaderArg, HttpArgs, TcpArgs, TunnelArgs};
use crate::cmd::account::read_secret;
use crate::settings::Settings;
use crate::signal::shutdown_signal;
use crate::term::color;

/// Builds the client configuration: flags > environment > project file > global
/// file > defaults (see [`crate::settings`]).
fn client_config(
    args: &TunnelArgs,
    settings: &Settings,
    tunnel: TunnelRequest,
) -> anyhow::Result<(ClientConfig, ProxyConfig)> {
    let local = LocalTarget::parse(&args.target).map_err(anyhow::Error::msg)?;
    let token = settings.require_token()?;
    Ok((
        settings.client_config(token, tunnel),
        ProxyConfig::new(local),
    ))
}

/// Runs `beam http`.
pub async fn run_http(args: HttpArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args.common.conn)?;
    let tunnel = TunnelRequest::Http {
        subdomain: args
            .subdomain
            .clone()
            .or(settings.project.subdomain.clone()),
        domain: args.domain.clone().or(settings.project.domain.clone()),
    };
    let (mut cfg, mut proxy) = client_config(&args.common, &settings, tunnel)?;
    proxy.host_header = match args.host_header {
        HostHeaderArg::Preserve => HostHeader::Preserve,
        HostHeaderArg::Rewrite => HostHeader::Rewrite,
    };
    proxy.local.https |= args.https;
    proxy.insecure_upstream = args.insecure_upstream;
    proxy.compress = args.compress;
    proxy.upstream_http2 = args.upstream_http2;
    cfg.protection = protection(&args).await?;
    let local = proxy.local.url();
    drive(cfg, proxy, local, "http", args.common.json).await
}

/// Builds the visitor protection of `beam http`. Credentials are read from the
/// environment or a prompt and hashed here: the server only gets argon2 hashes.
async fn protection(args: &HttpArgs) -> anyhow::Result<Protection> {
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
    let (cfg, mut proxy) = client_config(
        &args.common,
        &settings,
        TunnelRequest::Tcp {
            port: args.remote_port,
        },
    )?;
    proxy.proxy_protocol = args.proxy_protocol;
    let local = proxy.local.authority();
    drive(cfg, proxy, local, "tcp", args.common.json).await
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
}

impl Display {
    fn new(json: bool, local: String, protocol: &'static str) -> Self {
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
                        "name": welcome.name,
                        "local": self.local,
                        "protocol": self.protocol,
                        "reconnected": !first,
                        "url_changed": url_changed,
                        "via": via,
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
                    if self.tty {
                        self.bar.suspend(|| eprintln!("  via {via}"));
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
            self.bar.set_message(format!(
                "{dot} online · {open} open · {requests} requests · Ctrl-C to stop"
            ));
        }
    }
}

async fn drive(
    cfg: ClientConfig,
    proxy: ProxyConfig,
    local: String,
    protocol: &'static str,
    json: bool,
) -> anyhow::Result<()> {
    let server = cfg.server.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stats = Arc::new(Stats::default());
    let mut display = Display::new(json, local, protocol);
    let mut cfg = cfg;
    cfg.http1_streams = proxy.streams_http1();
    let handler = LocalProxy::new(&proxy, cfg.tunnel.kind(), stats.clone());
    let client = beam_client::run(cfg, handler, tx, shutdown_signal());
    tokio::pin!(client);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        tokio::select! {
            r = &mut client => break r,
            Some(ev) = rx.recv() => display.event(ev, &server),
            _ = tick.tick() => display.tick(&stats),
        }
    };
    display.bar.finish_and_clear();
    match result {
        Ok(()) => {
            if !json {
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

//! `beam dev [PORT]`: the command for the moment a developer starts work. It
//! finds the project's dev server and its port, waits for it to come up,
//! then runs `beam http` on it with the inspector, a QR code of the URL and
//! the browser opened at it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpStream;

use crate::cli::DevArgs;
use crate::cmd::tunnel::{Dev, http_tunnel};
use crate::detect::detect;
use crate::settings::ProjectConfig;

/// How often the dev server is looked for while waiting.
const POLL: Duration = Duration::from_millis(300);

/// Runs `beam dev`.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (project, _) = ProjectConfig::discover()?;
    let detected = detect(&cwd);
    // The port the user names wins, then the project file's, then the files.
    let (target, checks_host) = match (&args.target, args.port, project.port, &detected) {
        (Some(t), _, _, d) => (t.clone(), d.as_ref().is_some_and(|d| d.checks_host)),
        (None, Some(p), _, d) => (p.to_string(), d.as_ref().is_some_and(|d| d.checks_host)),
        (None, None, Some(p), d) => {
            eprintln!("beam dev: port {p} from beam.toml");
            (p.to_string(), d.as_ref().is_some_and(|d| d.checks_host))
        }
        (None, None, None, Some(d)) => {
            eprintln!(
                "beam dev: {} detected ({}): port {}",
                d.framework, d.source, d.port
            );
            (d.port.to_string(), d.checks_host)
        }
        (None, None, None, None) => anyhow::bail!(
            "no dev server found in {}: beam dev looks at package.json, next/vite/astro/nuxt configs, manage.py, Gemfile, mix.exs, artisan, requirements.txt/pyproject.toml, go.mod and Cargo.toml. Give the port: `beam dev 3000`, or `port = 3000` in beam.toml",
            cwd.display()
        ),
    };
    let rewrite_host = checks_host && args.opts.host_header.is_none();
    if rewrite_host {
        let name = detected.as_ref().map_or("this dev server", |d| d.framework);
        eprintln!(
            "beam dev: {name} refuses requests for hosts it does not know, so beam sends it Host: localhost (keep the visitor's with --host-header preserve after allowing the tunnel's domain, e.g. Vite's server.allowedHosts)"
        );
    }
    let target = wait_for(&target).await?;
    let dev = Dev {
        open: !args.no_open,
        qr: !args.no_qr,
        rewrite_host,
    };
    http_tunnel(&target, &args.conn, args.json, &args.opts, dev).await
}

/// Waits until something listens on `target` (a port, or HOST:PORT), and
/// returns the address to use. A bare port on localhost may be IPv4 or IPv6
/// (Vite binds `localhost`, which is `::1` on some systems): whichever
/// answers is used.
async fn wait_for(target: &str) -> anyhow::Result<String> {
    let candidates: Vec<String> = match target.parse::<u16>() {
        Ok(p) => vec![format!("127.0.0.1:{p}"), format!("[::1]:{p}")],
        Err(_) => vec![target.trim_start_matches("http://").to_string()],
    };
    let mut said = false;
    loop {
        for c in &candidates {
            let addr: Option<SocketAddr> = c.parse().ok();
            let up = match addr {
                Some(a) => TcpStream::connect(a).await.is_ok(),
                None => TcpStream::connect(c.as_str()).await.is_ok(),
            };
            if up {
                if said {
                    eprintln!("beam dev: {c} is up");
                }
                return Ok(c.clone());
            }
        }
        if !said {
            eprintln!(
                "beam dev: nothing listens on {} yet; waiting for your dev server to start (Ctrl-C to stop)…",
                candidates[0]
            );
            said = true;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = crate::signal::shutdown_signal() => anyhow::bail!("stopped while waiting for the dev server"),
        }
    }
}

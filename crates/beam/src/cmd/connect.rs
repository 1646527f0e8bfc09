//! `beam connect`: the live status of a production environment (connection,
//! latency, which parity services answer), refreshed until Ctrl-C.

use std::time::Duration;

use beam_client::ApiClient;
use http::Method;
use owo_colors::OwoColorize;
use serde_json::Value;

use crate::cli::ConnectArgs;
use crate::cmd::split_env;
use crate::term::color;

/// What a service probe found.
fn service_state(r: &Result<Value, beam_client::ApiError>) -> &'static str {
    match r {
        Ok(_) => "available",
        // The agent answered but the feature is not configured there.
        Err(beam_client::ApiError::Status { code, .. }) if code == "not_found" => "not configured",
        // Sync without a table: the agent is asking for one, so it is on.
        Err(beam_client::ApiError::Status { code, .. }) if code == "agent_refused" => "available",
        Err(beam_client::ApiError::Status { code, .. }) if code == "agent_offline" => "offline",
        Err(beam_client::ApiError::Status { status, .. })
            if *status == http::StatusCode::FORBIDDEN =>
        {
            "no permission (token scope)"
        }
        Err(_) => "error",
    }
}

/// One status snapshot; returns whether the agent is online.
async fn connect_once(
    client: &ApiClient,
    p: &str,
    e: &str,
    colored: bool,
) -> anyhow::Result<(bool, String)> {
    let base = format!("/api/projects/{p}/{e}");
    let start = tokio::time::Instant::now();
    let health: Result<Value, _> = client
        .call(Method::GET, &format!("{base}/health"), None::<&()>)
        .await;
    let latency = start.elapsed();
    // An environment that does not exist (or this token cannot see) has no
    // round trip and no services to report: say so and stop.
    if let Err(beam_client::ApiError::Status { code, message, .. }) = &health
        && (code == "not_found" || code == "forbidden")
    {
        anyhow::bail!(
            "{p}/{e}: {message}. See `beam projects list`, or create it with `beam projects create {p}/{e}`"
        );
    }
    let online = health.is_ok();
    let mut out = String::new();
    let state = match (&health, colored) {
        (Ok(_), true) => "● connected".green().to_string(),
        (Ok(_), false) => "● connected".into(),
        (Err(_), true) => "○ offline".red().to_string(),
        (Err(_), false) => "○ offline".into(),
    };
    out.push_str(&format!("{p}/{e}  {state}\n"));
    if online {
        out.push_str(&format!(
            "  Server:    {} (round trip through the agent {:.0} ms)\n",
            client.server,
            latency.as_secs_f64() * 1000.0
        ));
    } else {
        out.push_str(&format!("  Server:    {}\n", client.server));
    }
    match &health {
        Ok(h) => {
            out.push_str(&format!(
                "  Agents:    {} · health {} · {} developer(s) connected\n",
                h["summary"].as_str().unwrap_or("1 of 1 healthy"),
                h["status"].as_str().unwrap_or("?"),
                h["connected_developers"].as_u64().unwrap_or(0)
            ));
            for i in h["instances"].as_array().into_iter().flatten() {
                let detail = match i["error"].as_str() {
                    Some(e) => e.to_string(),
                    None => format!(
                        "{} · up {}s",
                        i["version"].as_str().unwrap_or("?"),
                        i["uptime_s"].as_u64().unwrap_or(0)
                    ),
                };
                out.push_str(&format!(
                    "    {:<16} {} · {detail}\n",
                    i["instance"].as_str().unwrap_or("?"),
                    i["status"].as_str().unwrap_or("?"),
                ));
            }
            let nodes = h["nodes"].as_array().cloned().unwrap_or_default();
            if !nodes.is_empty() {
                out.push_str("  Nodes:\n");
                for n in &nodes {
                    out.push_str(&format!("    {}\n", crate::cmd::health::node_line(n)));
                }
            }
        }
        Err(err) => out.push_str(&format!("  Agent:     {err}\n")),
    }
    let flags: Result<Value, _> = client
        .call(Method::GET, &format!("{base}/flags"), None::<&()>)
        .await;
    let sync: Result<Value, _> = client
        .call(Method::GET, &format!("{base}/sync"), None::<&()>)
        .await;
    let logs_state = if online { "available" } else { "offline" };
    out.push_str("  Services:\n");
    out.push_str(&format!("    logs      {logs_state}\n"));
    out.push_str("    webhooks  available (stored on the server)\n");
    out.push_str(&format!("    flags     {}\n", service_state(&flags)));
    out.push_str(&format!("    sync      {}\n", service_state(&sync)));
    out.push_str(&format!("    env check {logs_state}\n"));
    Ok((online, out))
}

/// Runs `beam connect`: the seed's status view, refreshed until Ctrl-C (or
/// once with `--once`). Returns whether the agent was online.
pub async fn run(args: ConnectArgs) -> anyhow::Result<bool> {
    let (p, e) = split_env(&crate::settings::project(args.project.clone())?)?;
    let client = args.conn.api()?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let (online, text) = connect_once(&client, &p, &e, color()).await?;
        if tty && !args.once {
            // Clear the screen and redraw in place.
            print!("\x1b[2J\x1b[H{text}");
        } else {
            print!("{text}");
        }
        if args.once {
            return Ok(online);
        }
        tokio::select! {
            () = crate::signal::shutdown_signal() => return Ok(online),
            () = tokio::time::sleep(Duration::from_secs(args.interval.max(1))) => {}
        }
    }
}

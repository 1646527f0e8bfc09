//! `beam flags`, `beam env check` and `beam health`: read-only views of a
//! production environment, answered by its agent. `env check` sends only
//! nonce-keyed fingerprints of local values and gets back only verdicts.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use beam_client::ApiClient;
use http::Method;
use owo_colors::OwoColorize;
use serde_json::Value;

use crate::cli::{ConnectArgs, EnvCheckArgs, FlagsArgs, FlagsCommand, HealthArgs, color};
use crate::parity_cmd::split_env;
use crate::settings::Settings;

fn api(conn: &crate::cli::ConnArgs) -> anyhow::Result<ApiClient> {
    Settings::resolve(conn)?.api()
}

/// The seed's flag table: `✓ ON   KEY  rollout  description`.
pub fn flag_table(flags: &[Value], colored: bool) -> String {
    let width = flags
        .iter()
        .filter_map(|f| f["key"].as_str().map(str::len))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for f in flags {
        let on = f["enabled"].as_bool() == Some(true);
        let mark = match (on, colored) {
            (true, true) => "✓ ON ".green().to_string(),
            (false, true) => "✗ OFF".red().to_string(),
            (true, false) => "✓ ON ".into(),
            (false, false) => "✗ OFF".into(),
        };
        let mut extra = Vec::new();
        if let Some(r) = f["rollout"].as_f64() {
            extra.push(format!("{r}% rollout"));
        }
        if let Some(v) = f["variants"].as_object()
            && !v.is_empty()
        {
            let names: Vec<String> = v.iter().map(|(k, w)| format!("{k}:{w}")).collect();
            extra.push(format!("variants {}", names.join(" ")));
        }
        if let Some(d) = f["description"].as_str() {
            extra.push(d.to_string());
        }
        let key = f["key"].as_str().unwrap_or("");
        out.push_str(format!("{mark}  {key:<width$}  {}", extra.join(" · ")).trim_end());
        out.push('\n');
    }
    out
}

/// Runs `beam flags …`.
pub async fn flags(args: FlagsArgs) -> anyhow::Result<()> {
    match args.command {
        Some(FlagsCommand::Eval {
            key,
            user,
            project,
            json,
            conn,
        }) => {
            let (p, e) = split_env(&project)?;
            let mut path = format!("/api/projects/{p}/{e}/flags/{key}");
            if let Some(u) = &user {
                path.push_str(&format!("?{}", serde_urlencoded::to_string([("user", u)])?));
            }
            let v: Value = api(&conn)?.call(Method::GET, &path, None::<&()>).await?;
            if json {
                println!("{v}");
            } else {
                let on = v["enabled"].as_bool() == Some(true);
                let mut line = format!(
                    "{} {key} for {}: {}",
                    if on { "✓ ON " } else { "✗ OFF" },
                    user.as_deref().unwrap_or("(no user)"),
                    v["reason"].as_str().unwrap_or("")
                );
                if let Some(b) = v["bucket"].as_u64() {
                    line.push_str(&format!(", bucket {b}"));
                }
                if let Some(var) = v["variant"].as_str() {
                    line.push_str(&format!(", variant {var}"));
                }
                println!("{line}");
            }
            Ok(())
        }
        None => {
            let project = args.project.context("--project PROJECT/ENV is required")?;
            let (p, e) = split_env(&project)?;
            let client = api(&args.conn)?;
            let path = format!("/api/projects/{p}/{e}/flags");
            let mut last: Option<Vec<Value>> = None;
            loop {
                let flags: Vec<Value> = client.call(Method::GET, &path, None::<&()>).await?;
                if last.as_ref() != Some(&flags) {
                    if args.json {
                        println!("{}", Value::Array(flags.clone()));
                    } else {
                        if last.is_some() {
                            println!("-- changed --");
                        }
                        print!("{}", flag_table(&flags, color()));
                    }
                    if let Some(file) = &args.write {
                        write_env_file(file, &flags)?;
                    }
                    last = Some(flags);
                }
                if !args.watch {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// The flags as `KEY=true|false` lines: `--write FILE` writes them with a
/// header, then applies `FILE.overrides` (the developer's own layer, never
/// sent anywhere and never overwritten) on top.
fn write_env_file(file: &std::path::Path, flags: &[Value]) -> anyhow::Result<()> {
    let mut vars: BTreeMap<String, String> = flags
        .iter()
        .filter_map(|f| {
            let key = f["key"].as_str()?;
            let name: String = key
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            Some((format!("FLAG_{name}"), f["enabled"].as_bool()?.to_string()))
        })
        .collect();
    let overrides_path = {
        let mut p = file.as_os_str().to_owned();
        p.push(".overrides");
        std::path::PathBuf::from(p)
    };
    let mut overridden = Vec::new();
    if let Ok(text) = std::fs::read_to_string(&overrides_path) {
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(k.trim().to_string(), v.trim().to_string());
                overridden.push(k.trim().to_string());
            }
        }
    }
    let mut text = format!(
        "# Written by `beam flags --write`: production flags, then {} on top.\n# Edit the overrides file, not this one.\n",
        overrides_path.display()
    );
    for (k, v) in &vars {
        text.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?;
    eprintln!(
        "beam flags: wrote {} flags to {}{}",
        vars.len(),
        file.display(),
        if overridden.is_empty() {
            String::new()
        } else {
            format!(" ({} overridden locally)", overridden.len())
        }
    );
    Ok(())
}

/// Names and (local) values to compare: the arguments, or the names in
/// `--from FILE` (an `.env.example`: `NAME=…` lines, comments skipped).
fn names_to_check(args: &EnvCheckArgs) -> anyhow::Result<Vec<String>> {
    let mut names = args.names.clone();
    if let Some(file) = &args.from {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let name = line.split('=').next().unwrap_or("").trim();
            if !name.is_empty() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        bail!(
            "name the variables to check (beam env check STRIPE_SECRET_KEY …) or give --from .env.example"
        );
    }
    if let Some(bad) = names
        .iter()
        .find(|n| !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        bail!("'{bad}' is not an environment variable name");
    }
    Ok(names)
}

/// Runs `beam env check`; returns whether everything matched (for `--strict`).
pub async fn env_check(args: EnvCheckArgs) -> anyhow::Result<bool> {
    let (p, e) = split_env(&args.project)?;
    let names = names_to_check(&args)?;
    let nonce: [u8; 32] = rand::random();
    let nonce_hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let vars: BTreeMap<String, Option<String>> = names
        .iter()
        .map(|n| {
            let fp = std::env::var(n)
                .ok()
                .map(|v| beam_agent::envcheck::fingerprint(&nonce, &v));
            (n.clone(), fp)
        })
        .collect();
    let body = serde_json::json!({ "nonce": nonce_hex, "vars": vars });
    let v: Value = api(&args.conn)?
        .call(
            Method::POST,
            &format!("/api/projects/{p}/{e}/env/check"),
            Some(&body),
        )
        .await?;
    let results: BTreeMap<String, String> =
        serde_json::from_value(v["results"].clone()).context("unexpected answer")?;
    let all_equal = results.values().all(|v| v == "equal");
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
        return Ok(all_equal);
    }
    let group = |verdict: &str| -> Vec<&String> {
        results
            .iter()
            .filter(|(_, v)| v.as_str() == verdict)
            .map(|(k, _)| k)
            .collect()
    };
    let sections = [
        ("missing_in_production", "❌ Missing in production:"),
        ("missing_locally", "❌ Missing locally:"),
        ("missing_both", "❌ Missing everywhere:"),
        ("different", "≠ Different values:"),
        ("refused", "⊘ Not compared (not allowed by the agent):"),
        ("equal", "✓ Same in both:"),
    ];
    for (verdict, title) in sections {
        let names = group(verdict);
        if names.is_empty() {
            continue;
        }
        println!("{title}");
        for n in names {
            let mark = if verdict == "equal" { "✓" } else { "✗" };
            println!("  {mark} {n}");
        }
        if verdict == "refused" {
            println!(
                "  The agent compares only the names its operator allows: `beam agent --env-allow NAME` (wildcards allowed) in production."
            );
        }
    }
    Ok(all_equal)
}

/// Runs `beam health`; returns whether the agent reported `pass` or `warn`.
pub async fn health(args: HealthArgs) -> anyhow::Result<bool> {
    let (p, e) = split_env(&args.project)?;
    let v: Value = api(&args.conn)?
        .call(
            Method::GET,
            &format!("/api/projects/{p}/{e}/health"),
            None::<&()>,
        )
        .await?;
    let status = v["status"].as_str().unwrap_or("fail").to_string();
    if args.json {
        println!("{v}");
        return Ok(status != "fail");
    }
    let headline = match status.as_str() {
        "pass" => "✓ Production is healthy",
        "warn" => "⚠ Production is up, with warnings",
        _ => "✗ Production is unhealthy",
    };
    println!("{headline}\n");
    println!("Agent:");
    println!("  Status:       {status}");
    println!("  Uptime:       {}s", v["uptime_s"].as_u64().unwrap_or(0));
    println!("  Version:      {}", v["version"].as_str().unwrap_or("?"));
    println!(
        "  Environment:  {}",
        v["environment"].as_str().unwrap_or("?")
    );
    println!(
        "  Connected developers: {}",
        v["connected_developers"].as_u64().unwrap_or(0)
    );
    println!("\nHealth Checks:");
    for c in v["checks"].as_array().into_iter().flatten() {
        let mark = match c["status"].as_str() {
            Some("pass") => "✓",
            Some("warn") => "⚠",
            _ => "✗",
        };
        println!(
            "  {:<11} {mark}  {} ({} ms)",
            format!("{}:", c["name"].as_str().unwrap_or("?")),
            c["detail"].as_str().unwrap_or(""),
            c["ms"].as_u64().unwrap_or(0)
        );
    }
    Ok(status != "fail")
}

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
    let online = health.is_ok();
    let mut out = String::new();
    let state = match (&health, colored) {
        (Ok(_), true) => "● connected".green().to_string(),
        (Ok(_), false) => "● connected".into(),
        (Err(_), true) => "○ offline".red().to_string(),
        (Err(_), false) => "○ offline".into(),
    };
    out.push_str(&format!("{p}/{e}  {state}\n"));
    out.push_str(&format!(
        "  Server:    {} (round trip through the agent {:.0} ms)\n",
        client.server,
        latency.as_secs_f64() * 1000.0
    ));
    match &health {
        Ok(h) => out.push_str(&format!(
            "  Agent:     {} · up {}s · health {} · {} developer(s) connected\n",
            h["version"].as_str().unwrap_or("?"),
            h["uptime_s"].as_u64().unwrap_or(0),
            h["status"].as_str().unwrap_or("?"),
            h["connected_developers"].as_u64().unwrap_or(0)
        )),
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
pub async fn connect(args: ConnectArgs) -> anyhow::Result<bool> {
    let (p, e) = split_env(&args.project)?;
    let client = api(&args.conn)?;
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
            () = crate::cli::shutdown_signal() => return Ok(online),
            () = tokio::time::sleep(Duration::from_secs(args.interval.max(1))) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_table_is_the_seeds() {
        let flags = vec![
            serde_json::json!({"key": "ENABLE_STRIPE", "enabled": true}),
            serde_json::json!({"key": "ENABLE_PAYPAL", "enabled": false, "description": "PayPal"}),
            serde_json::json!({"key": "new", "enabled": true, "rollout": 25.0}),
        ];
        assert_eq!(
            flag_table(&flags, false),
            "✓ ON   ENABLE_STRIPE\n✗ OFF  ENABLE_PAYPAL  PayPal\n✓ ON   new            25% rollout\n"
        );
    }
}

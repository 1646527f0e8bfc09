//! `beam health`: the production agent's health checks.

use http::Method;
use serde_json::Value;

use crate::cli::HealthArgs;
use crate::cmd::split_env;

/// Runs `beam health`; returns whether the agent reported `pass` or `warn`.
pub async fn run(args: HealthArgs) -> anyhow::Result<bool> {
    let (p, e) = split_env(&crate::settings::project(args.project.clone())?)?;
    let v: Value = args
        .conn
        .api()?
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
    let instances = v["instances"].as_array().cloned().unwrap_or_default();
    match v["summary"].as_str() {
        Some(summary) if instances.len() > 1 => println!("{headline} ({summary})\n"),
        _ => println!("{headline}\n"),
    }
    let developers = v["connected_developers"].as_u64().unwrap_or(0);
    if instances.is_empty() {
        // A server without replicas: the one agent's report.
        print_agent(&v, "Agent:");
    }
    for i in &instances {
        let title = format!("Agent {}:", i["instance"].as_str().unwrap_or("?"));
        print_agent(i, &title);
    }
    println!("\nConnected developers: {developers}");
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    if !nodes.is_empty() {
        println!("\nServer nodes:");
        for n in &nodes {
            println!("  {}", node_line(n));
        }
    }
    Ok(status != "fail")
}

/// One node: id, address, lease age, the agents connected to it.
pub fn node_line(n: &Value) -> String {
    let agents: Vec<&str> = n["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    format!(
        "{}{}  {}  lease renewed {:.1} s ago  agents: {}",
        n["id"].as_str().unwrap_or("?"),
        if n["this"] == true { " (answered)" } else { "" },
        match n["addr"].as_str() {
            Some("") | None => "-",
            Some(a) => a,
        },
        n["heartbeat_age_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        if agents.is_empty() {
            "-".to_string()
        } else {
            agents.join(", ")
        }
    )
}

/// One agent's report under `title`.
fn print_agent(v: &Value, title: &str) {
    let status = v["status"].as_str().unwrap_or("fail");
    println!("{title}");
    println!("  Status:       {status}");
    if let Some(e) = v["error"].as_str() {
        println!("  Error:        {e}");
        return;
    }
    println!("  Uptime:       {}s", v["uptime_s"].as_u64().unwrap_or(0));
    println!("  Version:      {}", v["version"].as_str().unwrap_or("?"));
    println!(
        "  Environment:  {}",
        v["environment"].as_str().unwrap_or("?")
    );
    println!("  Health Checks:");
    for c in v["checks"].as_array().into_iter().flatten() {
        let mark = match c["status"].as_str() {
            Some("pass") => "✓",
            Some("warn") => "⚠",
            _ => "✗",
        };
        println!(
            "    {:<11} {mark}  {} ({} ms)",
            format!("{}:", c["name"].as_str().unwrap_or("?")),
            c["detail"].as_str().unwrap_or(""),
            c["ms"].as_u64().unwrap_or(0)
        );
    }
}

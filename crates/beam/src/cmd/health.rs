//! `beam health`: the production agent's health checks.

use http::Method;
use serde_json::Value;

use crate::cli::HealthArgs;
use crate::cmd::split_env;

/// Runs `beam health`; returns whether the agent reported `pass` or `warn`.
pub async fn run(args: HealthArgs) -> anyhow::Result<bool> {
    let (p, e) = split_env(&args.project)?;
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

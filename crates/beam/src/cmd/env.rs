//! `beam env check`: compares local variables with production's by sending
//! only nonce-keyed fingerprints of local values (read from dotenv files and
//! the environment, see [`crate::dotenv`]); gets back only verdicts.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use http::Method;
use serde_json::Value;

use crate::cli::EnvCheckArgs;
use crate::cmd::split_env;
use crate::dotenv::{self, LocalEnv, Source};

/// A dotenv path as the user would write it: relative to the current
/// directory when it is inside it.
fn shown(path: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| path.strip_prefix(d).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| path.display().to_string())
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
pub async fn check(args: EnvCheckArgs) -> anyhow::Result<bool> {
    let (p, e) = split_env(&crate::settings::project(args.project.clone())?)?;
    let names = names_to_check(&args)?;
    let nonce: [u8; 32] = rand::random();
    let nonce_hex = beam_proto::hex::encode(&nonce);
    // Local values as the app sees them: dotenv files, the environment on top.
    let local = if args.env_files.is_empty() {
        let dir = std::env::current_dir().context("the current directory")?;
        LocalEnv::read(&dotenv::default_files(&dir), true)
    } else {
        LocalEnv::read(&args.env_files, false)
    }?;
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let vars: BTreeMap<String, Option<String>> = names
        .iter()
        .map(|n| {
            let fp = local.get(n).map(|(v, source)| {
                sources.insert(n.clone(), source);
                beam_agent::envcheck::fingerprint(&nonce, &v)
            });
            (n.clone(), fp)
        })
        .collect();
    let body = serde_json::json!({ "nonce": nonce_hex, "vars": vars });
    let v: Value = args
        .conn
        .api()?
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
    // Replicas that answered differently, with each one's verdict.
    let per_instance = |name: &str| -> String {
        v["instances"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(i, r)| {
                let verdict = r["results"][name].as_str().unwrap_or("no answer");
                format!("{i}: {}", verdict.replace('_', " "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
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
        ("disagree", "≠ Production instances disagree:"),
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
            // Where the local value came from, when there is one.
            let from = match sources.get(n.as_str()) {
                Some(Source::File(p)) => format!("  (local: {})", shown(p)),
                Some(Source::Environment) => "  (local: environment)".to_string(),
                None => String::new(),
            };
            if verdict == "disagree" {
                println!("  {mark} {n}{from} ({})", per_instance(n));
            } else {
                println!("  {mark} {n}{from}");
            }
        }
        if verdict == "refused" {
            println!(
                "  The agent compares only the names its operator allows: `beam agent --env-allow NAME` (wildcards allowed) in production."
            );
        }
    }
    for (i, r) in v["instances"].as_object().into_iter().flatten() {
        if let Some(e) = r["error"].as_str() {
            println!("⚠ Not checked on instance {i}: {e}");
        }
    }
    Ok(all_equal)
}

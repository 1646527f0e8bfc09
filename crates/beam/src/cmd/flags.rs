//! `beam flags`: production feature flags, listed, evaluated for a user, or
//! written as an env file with the developer's own overrides on top.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use http::Method;
use owo_colors::OwoColorize;
use serde_json::Value;

use crate::cli::{FlagsArgs, FlagsCommand};
use crate::cmd::split_env;
use crate::term::color;

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
pub async fn run(args: FlagsArgs) -> anyhow::Result<()> {
    match args.command {
        Some(FlagsCommand::Eval {
            key,
            user,
            project,
            json,
            conn,
        }) => {
            let (p, e) = split_env(&crate::settings::project(project)?)?;
            // The key is one path segment, whatever the user typed.
            let segment: String = key
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let mut path = format!("/api/projects/{p}/{e}/flags/{segment}");
            if let Some(u) = &user {
                path.push_str(&format!("?{}", serde_urlencoded::to_string([("user", u)])?));
            }
            let v: Value = conn.api()?.call(Method::GET, &path, None::<&()>).await?;
            if json {
                println!("{v}");
            } else {
                let on = v["enabled"].as_bool() == Some(true);
                // The flag's own key: the agent normalises what was typed.
                let shown = v["key"].as_str().unwrap_or(&key);
                let mut line = format!(
                    "{} {shown} for {}: {}",
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
            let project = crate::settings::project(args.project)?;
            let (p, e) = split_env(&project)?;
            let client = args.conn.api()?;
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

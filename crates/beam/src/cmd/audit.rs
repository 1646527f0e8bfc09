//! `beam audit`: reads the audit log (`GET /api/audit`, or `/api/audit/export`
//! for NDJSON), as a table, JSON lines or a SIEM export.

use std::io::Write;

use anyhow::Context;
use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::cli::AuditArgs;
use crate::cmd::logs::parse_when;
use crate::table::{Align, Table, cell};

/// The query string for `args` (without paging).
fn query(args: &AuditArgs, now: i64) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut q = Vec::new();
    if let Some(s) = &args.since {
        q.push(("since", parse_when("--since", s, now)?.to_string()));
    }
    if let Some(s) = &args.until {
        q.push(("until", parse_when("--until", s, now)?.to_string()));
    }
    for (k, v) in [
        ("user", &args.user),
        ("kind", &args.kind),
        ("environment", &args.environment),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    Ok(q)
}

/// One entry as a table row.
fn row(e: &Value) -> Vec<String> {
    let at = e["at"]
        .as_i64()
        .map_or_else(String::new, beam_proto::time::format_rfc3339_ms);
    let place = match (e["project"].as_str(), e["environment"].as_str()) {
        (Some(p), Some(env)) => format!("{p}/{env}"),
        _ => "-".into(),
    };
    vec![
        at,
        cell(&e["user_email"]),
        cell(&e["kind"]),
        place,
        cell(&e["outcome"]),
        cell(&e["source"]),
        beam_server::audit::summary(&e["detail"]),
    ]
}

/// Runs `beam audit`.
pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let client = args.conn.api()?;
    let mut q = query(&args, beam_proto::time::now_ms())?;
    if args.export {
        if let Some(after) = args.after {
            q.push(("after", after.to_string()));
        }
        let path = format!("/api/audit/export?{}", serde_urlencoded::to_string(&q)?);
        let resp = client.stream(&path).await?;
        let mut body = resp.into_body();
        let mut out = std::io::stdout().lock();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the export was cut off; continue with --after LAST_ID")?;
            if let Ok(data) = frame.into_data()
                && out.write_all(&data).is_err()
            {
                // stdout closed (`| head`): done.
                return Ok(());
            }
        }
        return Ok(());
    }
    let wanted = if args.all {
        usize::MAX
    } else {
        args.limit.unwrap_or(50) as usize
    };
    let mut table = Table::new(&[
        ("TIME", Align::Left),
        ("USER", Align::Left),
        ("KIND", Align::Left),
        ("WHERE", Align::Left),
        ("OUTCOME", Align::Left),
        ("FROM", Align::Left),
        ("DETAILS", Align::Left),
    ]);
    let mut shown = 0usize;
    let mut cursor: Option<String> = None;
    let mut out = std::io::stdout().lock();
    loop {
        let mut page_q = q.clone();
        page_q.push(("limit", (wanted - shown).min(1000).to_string()));
        if let Some(c) = &cursor {
            page_q.push(("cursor", c.clone()));
        }
        let path = format!("/api/audit?{}", serde_urlencoded::to_string(&page_q)?);
        let page: Value = client.call(Method::GET, &path, None::<&()>).await?;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        for e in &entries {
            if args.json {
                writeln!(out, "{e}")?;
            } else {
                table.row(row(e));
            }
        }
        shown += entries.len();
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() || shown >= wanted {
            break;
        }
    }
    if !args.json {
        if shown == 0 {
            eprintln!("no audit entries match");
        } else {
            write!(out, "{}", table.render())?;
            if cursor.is_some() {
                eprintln!("(more: --limit N, --all, or narrow with --since/--kind/--user)");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_place_outcome_and_details() {
        let e = serde_json::json!({
            "at": 0, "user_email": "dev@shop.test", "kind": "sync", "project": "shop",
            "environment": "production", "outcome": "ok", "source": "10.0.0.1",
            "detail": {"rows": 12, "request": {"table": "users"}, "none": null}
        });
        assert_eq!(
            row(&e),
            [
                "1970-01-01T00:00:00.000Z",
                "dev@shop.test",
                "sync",
                "shop/production",
                "ok",
                "10.0.0.1",
                r#"request={"table":"users"} rows=12"#
            ]
        );
    }
}

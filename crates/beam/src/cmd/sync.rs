//! `beam sync`: pulls sanitized production rows through the agent and writes
//! them as NDJSON, a JSON array or CSV, streaming (memory stays flat), with
//! rows and rows/s on stderr.

use std::io::Write;

use anyhow::{Context, bail};
use beam_client::ApiClient;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::cli::{SyncArgs, SyncCommand, SyncFormat, SyncPolicyCommand};
use crate::cmd::split_env;

/// One CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF,
/// with quotes doubled.
fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_field(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => csv_text(s),
        other => csv_text(&other.to_string()),
    }
}

/// Records in a CSV file: line breaks outside quoted fields (a quoted field
/// may hold line breaks of its own).
fn csv_records(bytes: &[u8]) -> u64 {
    let mut quoted = false;
    let mut n = 0;
    for b in bytes {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => n += 1,
            _ => {}
        }
    }
    n
}

/// Writes rows in the chosen format as they arrive.
struct Writer<W: Write> {
    out: W,
    format: SyncFormat,
    /// The table name, for SQL output.
    table: String,
    columns: Option<Vec<String>>,
    rows: u64,
}

impl<W: Write> Writer<W> {
    fn row(&mut self, line: &[u8]) -> anyhow::Result<()> {
        match self.format {
            SyncFormat::Ndjson => {
                self.out.write_all(line)?;
                self.out.write_all(b"\n")?;
            }
            SyncFormat::Json => {
                self.out
                    .write_all(if self.rows == 0 { b"[\n" } else { b",\n" })?;
                self.out.write_all(line)?;
            }
            SyncFormat::Sql => {
                let obj: serde_json::Map<String, Value> = serde_json::from_slice(line)?;
                let cols: Vec<String> = obj.keys().map(|k| sql_ident(k)).collect();
                let vals: Vec<String> = obj.values().map(sql_literal).collect();
                writeln!(
                    self.out,
                    "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING;",
                    sql_ident(&self.table),
                    cols.join(", "),
                    vals.join(", ")
                )?;
            }
            SyncFormat::Csv => {
                let obj: serde_json::Map<String, Value> = serde_json::from_slice(line)?;
                // RFC 4180: CRLF after every record, the header included.
                if self.columns.is_none() {
                    let cols: Vec<String> = obj.keys().cloned().collect();
                    let header: Vec<String> = cols.iter().map(|c| csv_text(c)).collect();
                    write!(self.out, "{}\r\n", header.join(","))?;
                    self.columns = Some(cols);
                }
                let cols = self.columns.as_deref().unwrap_or_default();
                let fields: Vec<String> = cols
                    .iter()
                    .map(|c| csv_field(obj.get(c).unwrap_or(&Value::Null)))
                    .collect();
                write!(self.out, "{}\r\n", fields.join(","))?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if self.format == SyncFormat::Json {
            self.out
                .write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
        }
        self.out.flush()?;
        Ok(())
    }
}

fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A value as a SQL literal that PostgreSQL and SQLite both read the same.
fn sql_literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => sql_string(s),
        other => sql_string(&other.to_string()),
    }
}

/// A string literal that means the same text in SQLite and in PostgreSQL
/// whatever its `standard_conforming_strings`: quotes are doubled, and no
/// backslash ever appears inside quotes (with the setting off, PostgreSQL
/// would read it as an escape). A backslash is written as
/// `substr('\\', 1, 1)`, which is one backslash under every reading:
/// `'\\'` is either one backslash or two, and its first character is one.
fn sql_string(s: &str) -> String {
    let parts: Vec<String> = s
        .split('\\')
        .map(|p| format!("'{}'", p.replace('\'', "''")))
        .collect();
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    format!("({})", parts.join(" || substr('\\\\', 1, 1) || "))
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
        _ => url.to_string(),
    }
}

/// Pulls the rows of `rel.references_table` whose key is one of `values`
/// (through the agent's policy for that table) into `url`.
async fn sync_related(
    client: &ApiClient,
    (p, e): (&str, &str),
    rel: &beam_agent::sync::Relation,
    values: &std::collections::BTreeSet<String>,
    url: &str,
) -> anyhow::Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let table = &rel.references_table;
    let mut into = crate::cmd::sync_into::Loader::connect(url, table).await?;
    let mut got = 0u64;
    let all: Vec<&String> = values.iter().collect();
    for batch in all.chunks(500) {
        let mut q: Vec<(&str, String)> = vec![("table", table.clone())];
        q.extend(
            batch
                .iter()
                .map(|v| ("in", format!("{}={v}", rel.references_column))),
        );
        let path = format!(
            "/api/projects/{p}/{e}/sync?{}",
            serde_urlencoded::to_string(&q)?
        );
        let resp = client
            .stream(&path)
            .await
            .with_context(|| format!("--related: {table} (referenced by {})", rel.column))?;
        let body = resp.into_body().collect().await?.to_bytes();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if line.starts_with(b"{\"error\":") {
                bail!("--related: {table}: {}", String::from_utf8_lossy(line));
            }
            into.row(serde_json::from_slice(line)?).await?;
            got += 1;
        }
    }
    into.flush().await?;
    eprintln!(
        "beam sync: related {table} (via {}): {got} of {} referenced rows, {} new{}",
        rel.column,
        values.len(),
        into.inserted,
        if got < values.len() as u64 {
            " (a key hashed or faked by the policy cannot be followed)"
        } else {
            ""
        }
    );
    Ok(())
}

/// Runs `beam sync …`.
pub async fn run(args: SyncArgs) -> anyhow::Result<()> {
    if let Some(SyncCommand::Policy(SyncPolicyCommand::Suggest {
        table,
        project,
        conn,
    })) = args.command
    {
        let (p, e) = split_env(&crate::settings::project(project)?)?;
        let qs = serde_urlencoded::to_string([("table", table)])?;
        let resp = conn
            .api()?
            .stream(&format!("/api/projects/{p}/{e}/sync/suggest?{qs}"))
            .await?;
        let text = resp.into_body().collect().await?.to_bytes();
        print!("{}", String::from_utf8_lossy(&text));
        return Ok(());
    }
    // Checked here, not by clap: `requires` does not fire for these flags
    // under a command that also takes subcommands.
    if args.related && args.into.is_none() {
        bail!(
            "--related needs --into postgres://…|sqlite://… (the rows of several tables go into one database)"
        );
    }
    if args.resume && args.output.is_none() {
        bail!("--resume needs --output FILE");
    }
    let project = crate::settings::project(args.project.clone())?;
    let table = args.table.context("--table is required")?;
    let (p, e) = split_env(&project)?;
    let mut q: Vec<(&str, String)> = vec![("table", table.clone())];
    if let Some(l) = args.limit {
        q.push(("limit", l.to_string()));
    }
    if let Some(s) = &args.select {
        q.push(("select", s.clone()));
    }
    // Resuming: the rows already in the file are skipped on the agent.
    let already = match (&args.output, args.resume) {
        (Some(f), true) => {
            if args.format == SyncFormat::Json {
                bail!(
                    "--resume works with --format ndjson or csv (a JSON array cannot be appended to)"
                );
            }
            let lines = match std::fs::read(f) {
                Ok(b) if args.format == SyncFormat::Csv => csv_records(&b),
                Ok(b) => b.iter().filter(|c| **c == b'\n').count() as u64,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e).with_context(|| format!("reading {}", f.display())),
            };
            // A CSV file's first line is its header.
            if args.format == SyncFormat::Csv {
                lines.saturating_sub(1)
            } else {
                lines
            }
        }
        _ => 0,
    };
    let skip = args.skip + already;
    if skip > 0 {
        q.push(("skip", skip.to_string()));
    }
    for f in &args.filters {
        if !f.contains('=') {
            bail!("--where '{f}' is not COLUMN=VALUE");
        }
        q.push(("where", f.clone()));
    }
    let path = format!(
        "/api/projects/{p}/{e}/sync?{}",
        serde_urlencoded::to_string(&q)?
    );
    let out: Box<dyn Write> = match &args.output {
        Some(f) => Box::new(std::io::BufWriter::with_capacity(
            256 * 1024,
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(args.resume)
                .truncate(!args.resume)
                .open(f)
                .with_context(|| format!("opening {}", f.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut w = Writer {
        out,
        format: args.format,
        table: table.clone(),
        columns: None,
        rows: 0,
    };
    // An appended CSV keeps the header it has.
    let mut skip_csv_header = args.resume && already > 0 && args.format == SyncFormat::Csv;
    let mut into = match &args.into {
        Some(url) => Some(crate::cmd::sync_into::Loader::connect(url, &table).await?),
        None => None,
    };
    let client = args.conn.api()?;
    // --related: the table's foreign keys, and the key values seen in its rows.
    let mut related: Vec<(
        beam_agent::sync::Relation,
        std::collections::BTreeSet<String>,
    )> = if args.related {
        let qs = serde_urlencoded::to_string([("table", &table)])?;
        let rels: Vec<beam_agent::sync::Relation> = client
            .call(
                http::Method::GET,
                &format!("/api/projects/{p}/{e}/sync/relations?{qs}"),
                None::<&()>,
            )
            .await?;
        rels.into_iter()
            .filter(|r| match &r.refused {
                // Said up front: the agent would refuse the follow anyway.
                Some(why) => {
                    eprintln!(
                        "beam sync: not following {} → {}.{}: {why}",
                        r.column, r.references_table, r.references_column
                    );
                    false
                }
                None => true,
            })
            .map(|r| (r, Default::default()))
            .collect()
    } else {
        Vec::new()
    };
    let start = tokio::time::Instant::now();
    let resp = client.stream(&path).await?;
    let total: Option<u64> = resp
        .headers()
        .get(beam_proto::service::SYNC_TOTAL_HEADER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template(
                "{pos}/{len} rows  {per_sec}  ETA {eta}  {wide_bar}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    let mut body = resp.into_body();
    let mut pending = crate::ndjson::Lines::default();
    while let Some(frame) = body.frame().await {
        let data = match frame?.into_data() {
            Ok(d) => d,
            Err(_) => continue,
        };
        pending.push(&data);
        while let Some(line) = pending.next_line() {
            if line.starts_with(b"{\"error\":") {
                let v: Value = serde_json::from_slice(line).unwrap_or_default();
                w.finish()?;
                bail!(
                    "the sync stopped after {} rows: {}",
                    w.rows,
                    v["error"].as_str().unwrap_or("unknown error")
                );
            }
            match into.as_mut() {
                Some(db) => {
                    let row: serde_json::Map<String, Value> = serde_json::from_slice(line)?;
                    for (rel, values) in &mut related {
                        if let Some(v) = row.get(&rel.column).filter(|v| !v.is_null()) {
                            values.insert(match v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            });
                        }
                    }
                    db.row(row).await?;
                    w.rows += 1;
                }
                None if skip_csv_header => {
                    // Learn the columns without writing the header again.
                    let obj: serde_json::Map<String, Value> = serde_json::from_slice(line)?;
                    w.columns = Some(obj.keys().cloned().collect());
                    skip_csv_header = false;
                    w.row(line)?;
                }
                None => w.row(line)?,
            }
        }
        // With a known total the bar shows rows, rows/s and the ETA.
        bar.set_position(w.rows);
        bar.set_message(format!("{} rows", w.rows));
    }
    bar.finish_and_clear();
    if let Some(db) = into.as_mut() {
        db.flush().await?;
        eprintln!(
            "beam sync: {} new rows in {} ({} were already there)",
            db.inserted,
            args.into.as_deref().map(redact_url).unwrap_or_default(),
            w.rows - db.inserted
        );
        for (rel, values) in &related {
            let url = args.into.as_deref().unwrap_or_default();
            sync_related(&client, (&p, &e), rel, values, url).await?;
        }
    } else {
        w.finish()?;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    if already > 0 {
        eprintln!("beam sync: resumed after the {already} rows already in the file");
    }
    eprintln!(
        "beam sync: {} rows of {table} in {:.2} s ({:.0} rows/s){}",
        w.rows,
        secs,
        w.rows as f64 / secs,
        args.output
            .as_ref()
            .map(|f| format!(" → {}", f.display()))
            .unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_and_csv_values_are_escaped() {
        assert_eq!(sql_literal(&Value::String("O'Brien".into())), "'O''Brien'");
        assert_eq!(sql_literal(&Value::Null), "NULL");
        assert_eq!(sql_literal(&serde_json::json!(2.5)), "2.5");
        assert_eq!(sql_literal(&Value::Bool(true)), "TRUE");
        assert_eq!(sql_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            csv_field(&Value::String("a,\"b\"".into())),
            "\"a,\"\"b\"\"\""
        );
        assert_eq!(csv_field(&Value::Null), "");
        assert_eq!(
            sql_literal(&Value::String("a\\b".into())),
            "('a' || substr('\\\\', 1, 1) || 'b')"
        );
        assert_eq!(csv_records(b"a,b\r\n\"x\ny\",1\r\n"), 2);
    }
}

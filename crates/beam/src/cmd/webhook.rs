//! `beam webhook`: receives an environment's production webhooks through the
//! server's durable stream and POSTs each one to the local app, re-signed with
//! the developer's own secret. An event is acknowledged only after a local 2xx,
//! so anything not delivered comes again on the next run.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use beam_client::ApiError;
use beam_client::webhook::{Delivery, Forwarder, Route, retry_delay};
use beam_proto::Secret;
use beam_proto::webhook::{WebhookEvent, new_dev_secret};
use http::Method;
use http_body_util::BodyExt;
use owo_colors::OwoColorize;
use serde_json::{Value, json};

use crate::cli::{WebhookArgs, WebhookCommand, WebhookListenArgs};
use crate::cmd::split_env;
use crate::settings::Settings;
use crate::term::color;

/// Attempts per event before the stream is reopened (which sends every
/// unacknowledged event again).
const ATTEMPTS: u32 = 5;
/// The server sends at least an empty line every 15 s; silence this long means
/// the connection is dead (laptop slept, network changed).
const READ_TIMEOUT: Duration = Duration::from_secs(45);
/// Pause before reopening the stream after an event kept failing.
const REDELIVERY_PAUSE: Duration = Duration::from_secs(10);

/// Where the developer's signing secret lives: next to the config file.
fn secret_path() -> PathBuf {
    crate::userconfig::default_path().with_file_name("webhook-secret")
}

/// The developer's local signing secret, created (0600) on first use.
pub fn dev_secret() -> anyhow::Result<Secret> {
    let path = secret_path();
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(Secret::new(s.trim().to_string())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let secret = new_dev_secret(rand::random());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    beam_server::tls::write_private(&path, format!("{secret}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Secret::new(secret))
}

/// Runs `beam webhook …`.
pub async fn run(args: WebhookArgs) -> anyhow::Result<()> {
    match args.command {
        Some(WebhookCommand::Secret) => {
            println!("{}", dev_secret()?.expose());
            eprintln!(
                "configure your local app's webhook signing secret with this value; beam re-signs every forwarded event with it (stored in {})",
                secret_path().display()
            );
            Ok(())
        }
        Some(WebhookCommand::List {
            project,
            limit,
            json,
            conn,
        }) => {
            let project = crate::settings::project(project)?;
            list(&project, limit, json, &Settings::resolve(&conn)?).await
        }
        Some(WebhookCommand::Replay {
            id,
            project,
            forward,
            insecure_upstream,
            conn,
        }) => {
            let (p, e) = split_env(&crate::settings::project(project)?)?;
            let client = conn.api()?;
            let ev: WebhookEvent = client
                .call(
                    Method::GET,
                    &format!("/api/projects/{p}/{e}/webhooks/events/{id}"),
                    None::<&()>,
                )
                .await?;
            let fwd = Forwarder::new(
                vec![Route::parse(&forward, insecure_upstream)?],
                dev_secret()?,
            );
            warn_unsigned(&ev);
            let d = fwd
                .deliver(&ev, now_s())
                .await
                .context("no route for this event")?;
            print_delivery(&ev, &d, false, color());
            if d.ok() {
                Ok(())
            } else {
                bail!("the local app did not answer 2xx")
            }
        }
        None => listen(args.listen).await,
    }
}

use beam_proto::time::now_s;

async fn list(project: &str, limit: u32, json: bool, settings: &Settings) -> anyhow::Result<()> {
    let (p, e) = split_env(project)?;
    let rows: Vec<Value> = settings
        .api()?
        .call(
            Method::GET,
            &format!("/api/projects/{p}/{e}/webhooks/events?limit={limit}"),
            None::<&()>,
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("no webhook events for {project} yet");
        return Ok(());
    }
    println!(
        "{:>6}  {:<24}  {:<8}  {:<32}  {:<28}  {:>7}  LOCAL",
        "ID", "RECEIVED", "PROVIDER", "TYPE", "EVENT ID", "BYTES"
    );
    for r in rows {
        let status = match r["delivered_status"].as_u64() {
            Some(s) => s.to_string(),
            None => "pending".into(),
        };
        let verified = if r["verified"].as_bool() == Some(true) {
            ""
        } else {
            " (unverified)"
        };
        println!(
            "{:>6}  {:<24}  {:<8}  {:<32}  {:<28}  {:>7}  {status}{verified}",
            r["id"].as_i64().unwrap_or(0),
            beam_proto::time::format_rfc3339_ms(r["received_at"].as_i64().unwrap_or(0)),
            r["provider"].as_str().unwrap_or(""),
            r["event_type"].as_str().unwrap_or("-"),
            r["event_id"].as_str().unwrap_or("-"),
            r["size"].as_u64().unwrap_or(0),
        );
    }
    Ok(())
}

/// One line per delivery: time, event, local status and latency.
fn print_delivery(ev: &WebhookEvent, d: &Delivery, json: bool, colored: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let line = json!({
            "id": ev.id,
            "provider": ev.provider,
            "event_id": ev.event_id,
            "event_type": ev.event_type,
            "method": ev.method,
            "url": d.url,
            "status": d.status.map(|s| s.as_u16()),
            "error": d.error,
            "latency_ms": d.elapsed.as_secs_f64() * 1000.0,
        });
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        return;
    }
    let status = match (d.status, &d.error) {
        (Some(s), _) => {
            let text = s.as_u16().to_string();
            match (colored, s.is_success()) {
                (false, _) => text,
                (true, true) => text.green().to_string(),
                (true, false) => text.red().to_string(),
            }
        }
        (None, Some(e)) => format!("failed ({e})"),
        (None, None) => "failed".into(),
    };
    let _ = writeln!(
        out,
        "[{}] {} {} {} [{}] → {status} in {:.0} ms",
        beam_proto::time::format_rfc3339_ms(ev.received_at),
        ev.method,
        d.url,
        ev.event_type.as_deref().unwrap_or("-"),
        ev.event_id.as_deref().unwrap_or("-"),
        d.elapsed.as_secs_f64() * 1000.0,
    );
    let _ = out.flush();
}

async fn listen(args: WebhookListenArgs) -> anyhow::Result<()> {
    let project = crate::settings::project(args.project.clone())?;
    let (p, e) = split_env(&project)?;
    let routes = args
        .forward
        .iter()
        .map(|f| Route::parse(f, args.insecure_upstream))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(prov) = &args.provider
        && beam_proto::webhook::Provider::parse(prov).is_none()
    {
        bail!(
            "--provider '{prov}' is not one of {}",
            beam_proto::webhook::Provider::NAMES
        );
    }
    let forwarder = Forwarder::new(routes, dev_secret()?);
    let client = args.conn.api()?;
    let mut query = vec![("subscription", args.subscription.clone())];
    if let Some(prov) = &args.provider {
        query.push(("provider", prov.clone()));
    }
    if let Some(ev) = &args.events {
        query.push(("events", ev.clone()));
    }
    let path = format!(
        "/api/projects/{p}/{e}/webhooks/stream?{}",
        serde_urlencoded::to_string(&query)?
    );
    let acks = spawn_acker(
        client.keep_alive(),
        format!("/api/projects/{p}/{e}/webhooks/acks"),
        args.subscription.clone(),
    );
    let colored = color() && !args.json;
    let mut failures = 0u32;
    let mut announced = false;
    loop {
        let resp = match client.stream(&path).await {
            Ok(r) => r,
            Err(ApiError::Status { status, .. }) if status.is_server_error() => {
                failures += 1;
                eprintln!("beam webhook: the server answered {status}; retrying…");
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
            Err(ApiError::Connect(err)) if announced => {
                failures += 1;
                eprintln!("beam webhook: {err}; reconnecting…");
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        failures = 0;
        if !announced {
            eprintln!(
                "beam webhook: ready; forwarding {project} events to {} (secret: `beam webhook secret`)",
                args.forward.join(", ")
            );
            announced = true;
        } else {
            eprintln!("beam webhook: reconnected; delivering what arrived meanwhile");
        }
        let mut body = resp.into_body();
        let mut pending = crate::ndjson::Lines::default();
        let mut gave_up = false;
        'stream: loop {
            let frame = match tokio::time::timeout(READ_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(_) => break,
                Err(_) => {
                    eprintln!(
                        "beam webhook: no data from the server for {} s; reconnecting…",
                        READ_TIMEOUT.as_secs()
                    );
                    break;
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.push(&data);
            while let Some(line) = pending.next_line() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue; // heartbeat
                }
                let ev: WebhookEvent = match serde_json::from_slice(line) {
                    Ok(ev) => ev,
                    Err(err) => {
                        eprintln!("beam webhook: skipping an unreadable event line: {err}");
                        continue;
                    }
                };
                if deliver(&forwarder, &acks, &args, &ev, colored).await == Outcome::GaveUp {
                    gave_up = true;
                    break 'stream;
                }
            }
        }
        if gave_up {
            // Reopening the stream re-sends every unacknowledged event, this one
            // included, after a pause that gives the local app time to recover.
            eprintln!(
                "beam webhook: retrying undelivered events in {} s…",
                REDELIVERY_PAUSE.as_secs()
            );
            tokio::time::sleep(REDELIVERY_PAUSE).await;
        } else {
            eprintln!("beam webhook: stream interrupted; reconnecting…");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500 * u64::from(failures.min(10)))
}

/// How one event's delivery ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Delivered (acknowledged, or the acknowledgement will be retried by redelivery).
    Done,
    /// No route takes this event type; it stays pending.
    NoRoute,
    /// The local app kept failing.
    GaveUp,
}

/// Sends acknowledgements in order on one kept-open API connection, off the
/// delivery path: the next event goes out while the last one is acknowledged.
fn spawn_acker(
    mut conn: beam_client::api::KeptConnection,
    path: String,
    subscription: String,
) -> tokio::sync::mpsc::UnboundedSender<(i64, u16)> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, u16)>();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 200).await > 0 {
            // Whatever queued up while the last call ran goes in one call.
            let acks: Vec<Value> = batch
                .iter()
                .map(|(event, status)| json!({ "event": event, "status": status }))
                .collect();
            let body = json!({ "subscription": subscription, "acks": acks });
            if let Err(err) = conn.call::<Value>(Method::POST, &path, Some(&body)).await {
                // Not acknowledged: they will come again (at least once).
                let ids: Vec<i64> = batch.iter().map(|(e, _)| *e).collect();
                eprintln!("beam webhook: could not acknowledge events {ids:?}: {err}");
            }
            batch.clear();
        }
    });
    tx
}

/// Says so when the local app will not be able to verify `ev`: it was not
/// verified in production (so it is not re-signed), or its scheme keeps a
/// timestamp beam cannot refresh.
fn warn_unsigned(ev: &WebhookEvent) {
    if !ev.verified && ev.provider.resignable() {
        eprintln!(
            "beam webhook: event {} was not verified in production; forwarded without a signature your app can check",
            ev.id
        );
    } else if let Some(why) = beam_proto::webhook::resign_warning(ev.provider, &ev.body, now_s()) {
        eprintln!("beam webhook: event {}: {why}", ev.id);
    }
}

/// Delivers one event with retries, and queues its acknowledgement after a 2xx.
async fn deliver(
    forwarder: &Forwarder,
    acks: &tokio::sync::mpsc::UnboundedSender<(i64, u16)>,
    args: &WebhookListenArgs,
    ev: &WebhookEvent,
    colored: bool,
) -> Outcome {
    warn_unsigned(ev);
    for attempt in 0..ATTEMPTS {
        let Some(d) = forwarder.deliver(ev, now_s()).await else {
            eprintln!(
                "beam webhook: no --forward route for event type {}; left pending",
                ev.event_type.as_deref().unwrap_or("(none)")
            );
            return Outcome::NoRoute;
        };
        print_delivery(ev, &d, args.json, colored);
        if let Some(status) = d.status.filter(|s| s.is_success()) {
            let _ = acks.send((ev.id, status.as_u16()));
            return Outcome::Done;
        }
        if attempt + 1 < ATTEMPTS {
            tokio::time::sleep(retry_delay(attempt)).await;
        }
    }
    eprintln!(
        "beam webhook: event {} failed {ATTEMPTS} times; it stays pending",
        ev.id
    );
    Outcome::GaveUp
}

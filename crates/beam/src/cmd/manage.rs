//! `beam list`, `beam stop` and `beam domains`: the organization's tunnels and
//! domains, through the API.

use anyhow::bail;
use beam_client::ApiClient;
use http::Method;
use serde_json::{Value, json};

use crate::cli::{DomainsCommand, ListArgs, StopArgs};
use crate::settings::Settings;
use crate::table::{Align, Table, cell};
use crate::term::human_bytes;

/// `beam list`.
pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let api = Settings::resolve(&args.conn)?.api()?;
    let tunnels: Value = api.call(Method::GET, "/api/tunnels", None::<&()>).await?;
    if args.json {
        println!("{tunnels}");
        return Ok(());
    }
    let rows = tunnels.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("no tunnels yet; start one with `beam http <port>`");
        return Ok(());
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("KIND", Align::Left),
        ("NAME", Align::Left),
        ("STATUS", Align::Left),
        ("NODE", Align::Left),
        ("REQUESTS", Align::Right),
        ("IN", Align::Right),
        ("OUT", Align::Right),
        ("URL", Align::Left),
    ]);
    for t in rows {
        table.row(vec![
            cell(&t["id"]),
            cell(&t["kind"]),
            cell(&t["name"]),
            cell(&t["status"]),
            cell(&t["node"]),
            cell(&t["requests"]),
            human_bytes(t["bytes_in"].as_i64().unwrap_or(0)),
            human_bytes(t["bytes_out"].as_i64().unwrap_or(0)),
            cell(&t["public_url"]),
        ]);
    }
    table.print();
    Ok(())
}

/// Finds the id of a tunnel given by id, name or port.
async fn tunnel_id(api: &ApiClient, key: &str) -> anyhow::Result<i64> {
    let tunnels: Value = api.call(Method::GET, "/api/tunnels", None::<&()>).await?;
    let rows = tunnels.as_array().cloned().unwrap_or_default();
    let by_name: Vec<_> = rows
        .iter()
        .filter(|t| t["name"].as_str() == Some(key))
        .collect();
    if let [one] = by_name.as_slice() {
        return Ok(one["id"].as_i64().unwrap_or_default());
    }
    if let Ok(id) = key.parse::<i64>()
        && rows.iter().any(|t| t["id"].as_i64() == Some(id))
    {
        return Ok(id);
    }
    bail!("no tunnel named '{key}'; see `beam list`")
}

/// `beam stop`.
pub async fn stop(args: StopArgs) -> anyhow::Result<()> {
    let api = Settings::resolve(&args.conn)?.api()?;
    let id = tunnel_id(&api, &args.tunnel).await?;
    let _: Value = api
        .call(Method::DELETE, &format!("/api/tunnels/{id}"), None::<&()>)
        .await?;
    println!("tunnel '{}' stopped and its name released", args.tunnel);
    Ok(())
}

/// `beam pause` (`paused`) and `beam resume`.
pub async fn pause(args: StopArgs, paused: bool) -> anyhow::Result<()> {
    let api = Settings::resolve(&args.conn)?.api()?;
    let id = tunnel_id(&api, &args.tunnel).await?;
    let _: Value = api
        .call(
            Method::PUT,
            &format!("/api/tunnels/{id}"),
            Some(&json!({ "paused": paused })),
        )
        .await?;
    if paused {
        println!(
            "tunnel '{}' paused: visitors get 503 until `beam resume {}`",
            args.tunnel, args.tunnel
        );
    } else {
        println!("tunnel '{}' resumed", args.tunnel);
    }
    Ok(())
}

async fn domain_id(api: &ApiClient, key: &str) -> anyhow::Result<i64> {
    let list: Value = api.call(Method::GET, "/api/domains", None::<&()>).await?;
    let key_l = key.trim_end_matches('.').to_ascii_lowercase();
    for d in list.as_array().into_iter().flatten() {
        if d["hostname"].as_str() == Some(key_l.as_str())
            || key.parse::<i64>().ok() == d["id"].as_i64()
        {
            return Ok(d["id"].as_i64().unwrap_or_default());
        }
    }
    bail!("no domain '{key}'; see `beam domains list`")
}

fn print_dns(d: &Value) {
    if let Some(dns) = d["dns"].as_object() {
        println!(
            "publish these DNS records, then run `beam domains verify {}`:",
            d["hostname"].as_str().unwrap_or_default()
        );
        println!(
            "  {}  TXT    \"{}\"",
            dns["txt_name"].as_str().unwrap_or_default(),
            dns["txt_value"].as_str().unwrap_or_default()
        );
        println!(
            "  {}  CNAME  {}",
            d["hostname"].as_str().unwrap_or_default(),
            dns["cname_target"].as_str().unwrap_or_default()
        );
    }
}

/// `beam domains …`.
pub async fn domains(cmd: DomainsCommand) -> anyhow::Result<()> {
    match cmd {
        DomainsCommand::Add(a) => {
            let api = Settings::resolve(&a.conn)?.api()?;
            let d: Value = api
                .call(
                    Method::POST,
                    "/api/domains",
                    Some(&json!({ "hostname": a.hostname })),
                )
                .await?;
            if a.json {
                println!("{d}");
            } else {
                println!(
                    "{} added ({}, {})",
                    d["hostname"].as_str().unwrap_or_default(),
                    d["kind"].as_str().unwrap_or_default(),
                    d["status"].as_str().unwrap_or_default()
                );
                print_dns(&d);
            }
        }
        DomainsCommand::List(a) => {
            let api = Settings::resolve(&a.conn)?.api()?;
            let list: Value = api.call(Method::GET, "/api/domains", None::<&()>).await?;
            if a.json {
                println!("{list}");
                return Ok(());
            }
            let mut table = Table::new(&[
                ("ID", Align::Right),
                ("HOSTNAME", Align::Left),
                ("KIND", Align::Left),
                ("STATUS", Align::Left),
                ("NOTE", Align::Left),
            ]);
            for d in list.as_array().into_iter().flatten() {
                table.row(vec![
                    cell(&d["id"]),
                    cell(&d["hostname"]),
                    cell(&d["kind"]),
                    cell(&d["status"]),
                    d["last_error"].as_str().unwrap_or_default().to_string(),
                ]);
            }
            table.print();
        }
        DomainsCommand::Verify(a) => {
            let api = Settings::resolve(&a.conn)?.api()?;
            let id = domain_id(&api, &a.hostname).await?;
            let d: Value = api
                .call(
                    Method::POST,
                    &format!("/api/domains/{id}/verify"),
                    None::<&()>,
                )
                .await?;
            if a.json {
                println!("{d}");
            } else {
                println!(
                    "{} is verified; route it with `beam http <port> --domain {}`",
                    d["hostname"].as_str().unwrap_or_default(),
                    d["hostname"].as_str().unwrap_or_default()
                );
            }
        }
        DomainsCommand::Remove(a) => {
            let api = Settings::resolve(&a.conn)?.api()?;
            let id = domain_id(&api, &a.hostname).await?;
            let _: Value = api
                .call(Method::DELETE, &format!("/api/domains/{id}"), None::<&()>)
                .await?;
            println!("{} removed", a.hostname);
        }
    }
    Ok(())
}

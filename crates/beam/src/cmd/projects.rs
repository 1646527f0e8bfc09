//! `beam projects`: parity project environments and their agent tokens.

use anyhow::Context;
use http::Method;
use serde_json::{Value, json};

use crate::cli::ProjectsCommand;
use crate::cmd::split_env;

/// Runs `beam projects …`.
pub async fn run(cmd: ProjectsCommand) -> anyhow::Result<()> {
    match cmd {
        ProjectsCommand::List { conn, json } => {
            let client = conn.api()?;
            let rows: Vec<Value> = client
                .call(Method::GET, "/api/projects", None::<&()>)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                eprintln!(
                    "no projects yet; create one with `beam projects create shop/production`"
                );
            } else {
                for r in rows {
                    println!(
                        "{}/{}",
                        r["project"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or("")
                    );
                }
            }
        }
        ProjectsCommand::Create { name, conn } => {
            let (project, environment) = split_env(&name)?;
            let client = conn.api()?;
            let _: Value = client
                .call(
                    Method::POST,
                    "/api/projects",
                    Some(&json!({"project": project, "environment": environment})),
                )
                .await?;
            eprintln!(
                "{project}/{environment} is ready; next: `beam projects token {project}/{environment}`"
            );
        }
        ProjectsCommand::Tokens {
            name,
            action,
            id,
            json,
            conn,
        } => {
            let (project, environment) = split_env(&name)?;
            let client = conn.api()?;
            let base = format!("/api/projects/{project}/{environment}/agent-tokens");
            if action.is_some() {
                let id = id.context(
                    "revoke needs the token ID (see `beam projects tokens PROJECT/ENV`)",
                )?;
                let _: Value = client
                    .call(Method::DELETE, &format!("{base}/{id}"), None::<&()>)
                    .await?;
                eprintln!(
                    "agent token {id} of {project}/{environment} revoked; agents using it disconnect within seconds"
                );
                return Ok(());
            }
            let rows: Vec<Value> = client.call(Method::GET, &base, None::<&()>).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                eprintln!(
                    "no agent tokens for {project}/{environment}; create one with `beam projects token {project}/{environment}`"
                );
            } else {
                let mut table = crate::table::Table::new(&[
                    ("ID", crate::table::Align::Right),
                    ("STATE", crate::table::Align::Left),
                    ("LAST USED", crate::table::Align::Left),
                    ("DESCRIPTION", crate::table::Align::Left),
                ]);
                for r in rows {
                    let state = if r["revoked_at"].is_null() {
                        "active"
                    } else {
                        "revoked"
                    };
                    let used = match r["last_used_at"].as_i64() {
                        Some(t) => crate::term::ms_to_age(Some(t)),
                        None => "never".into(),
                    };
                    table.row(vec![
                        crate::table::cell(&r["id"]),
                        state.to_string(),
                        used,
                        r["description"].as_str().unwrap_or("").to_string(),
                    ]);
                }
                table.print();
            }
        }
        ProjectsCommand::Token {
            name,
            description,
            conn,
        } => {
            let (project, environment) = split_env(&name)?;
            let client = conn.api()?;
            let r: Value = client
                .call(
                    Method::POST,
                    &format!("/api/projects/{project}/{environment}/agent-tokens"),
                    Some(&json!({"description": description})),
                )
                .await?;
            let token = r["token"].as_str().context("the server sent no token")?;
            // The token alone on stdout, so it can be piped into a secret store.
            println!("{token}");
            eprintln!(
                "agent token for {project}/{environment} (shown once): run `BEAM_TOKEN=… beam agent --project {project}/{environment} -- <your app>` in production"
            );
        }
    }
    Ok(())
}

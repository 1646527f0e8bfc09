//! `beam org`: the members of your organization, inviting someone, and
//! accepting an invitation. Membership is always an invitation the invitee
//! accepts; an admin never adds an existing account by its address.

use anyhow::Context;
use http::Method;
use serde_json::{Value, json};

use crate::cli::OrgCommand;
use crate::settings::Settings;
use crate::table::{Align, Table, cell};

/// Runs `beam org …`.
pub async fn run(cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Members { conn, json } => {
            let api = Settings::resolve(&conn)?.api()?;
            let members: Vec<Value> = api
                .call(Method::GET, "/api/org/members", None::<&()>)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&members)?);
                return Ok(());
            }
            let mut table = Table::new(&[
                ("USER", Align::Right),
                ("ROLE", Align::Left),
                ("EMAIL", Align::Left),
            ]);
            for m in &members {
                table.row(vec![
                    cell(&m["user_id"]),
                    cell(&m["role"]),
                    cell(&m["email"]),
                ]);
            }
            table.print();
            // Open invitations are for admins only; others simply do not see them.
            let open: Result<Vec<Value>, _> = api
                .call(Method::GET, "/api/org/invitations", None::<&()>)
                .await;
            if let Ok(open) = open
                && !open.is_empty()
            {
                println!("\ninvited, not yet accepted:");
                let mut table = Table::new(&[
                    ("INVITATION", Align::Right),
                    ("ROLE", Align::Left),
                    ("EMAIL", Align::Left),
                ]);
                for i in open {
                    table.row(vec![cell(&i["id"]), cell(&i["role"]), cell(&i["email"])]);
                }
                table.print();
            }
        }
        OrgCommand::Invite { email, role, conn } => {
            let api = Settings::resolve(&conn)?.api()?;
            let r: Value = api
                .call(
                    Method::POST,
                    "/api/org/invitations",
                    Some(&json!({ "email": email, "role": role })),
                )
                .await?;
            match r["token"].as_str() {
                Some(token) => {
                    // Alone on stdout so it can be piped; the how-to on stderr.
                    println!("{token}");
                    eprintln!(
                        "invited {email} as {role}. This server sends no mail: give {email} this one-time token over a channel you trust; they run\n\n    beam org accept {token}\n\nIt works once and expires in 7 days."
                    );
                }
                None => eprintln!(
                    "invited {email} as {role}: the invitation is on its way by mail (valid 7 days)"
                ),
            }
        }
        OrgCommand::Accept { token, conn } => {
            let settings = Settings::resolve(&conn)?;
            let body = |password: Option<String>| json!({ "token": token, "password": password });
            let anon = settings.client(settings.token.clone());
            let r: Result<Value, _> = anon
                .call(Method::POST, "/api/invitations/accept", Some(&body(None)))
                .await;
            let r = match r {
                // A new account (or one never verified): choose its password.
                Err(beam_client::ApiError::Status { code, message, .. })
                    if code == "invalid" && message.contains("choose a password") =>
                {
                    let pw = crate::cmd::account::read_secret(
                        "BEAM_PASSWORD",
                        "choose a password for your beam account: ",
                    )?;
                    anon.call(
                        Method::POST,
                        "/api/invitations/accept",
                        Some(&body(Some(pw.expose().to_string()))),
                    )
                    .await
                }
                other => other,
            }
            .context("accepting the invitation")?;
            println!(
                "joined organization {} as {} ({}); log in with `beam login --email {}`",
                r["org_id"],
                r["role"].as_str().unwrap_or(""),
                r["email"].as_str().unwrap_or(""),
                r["email"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

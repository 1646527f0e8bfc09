//! `beam login`, `beam logout` and `beam tokens`: credentials on this machine.
//! Secrets come from a prompt, a file or the environment, never from argv, and
//! are printed only when the user asked for a new token.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use beam_proto::Secret;
use http::Method;
use serde_json::{Value, json};

use crate::cli::{ConnArgs, LoginArgs, TokensCommand};
use crate::settings::Settings;
use crate::table::{Align, Table, cell};
use crate::term::ms_to_age;

/// Reads a secret: from `env` if set, else a hidden prompt on a terminal, else
/// one line of stdin (for `echo "$T" | beam login`).
pub(crate) fn read_secret(env: &str, prompt: &str) -> anyhow::Result<Secret> {
    if let Ok(v) = std::env::var(env)
        && !v.is_empty()
    {
        return Ok(Secret::new(v));
    }
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).context("cannot read from the terminal")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read standard input")?;
        line
    };
    let value = value.trim().to_string();
    if value.is_empty() {
        bail!("nothing was entered");
    }
    Ok(Secret::new(value))
}

/// `beam login`.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args.conn)?;
    let (token, from_login) = match &args.email {
        Some(email) => {
            let password = read_secret("BEAM_PASSWORD", &format!("password for {email}: "))?;
            let anon = settings.client(None);
            let session: Value = anon
                .call(
                    Method::POST,
                    "/api/auth/login",
                    Some(&json!({
                        "email": email,
                        "password": password.expose(),
                        "org_id": args.org,
                    })),
                )
                .await
                .context("login failed")?;
            let session_token = Secret::new(session["token"].as_str().unwrap_or_default());
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this machine".into());
            let with_session = settings.client(Some(session_token));
            // This machine's token may do what the account may do (the user just
            // proved the password); `beam tokens create` makes narrower ones.
            let me: Value = with_session
                .call(Method::GET, "/api/me", None::<&()>)
                .await
                .context("reading the account failed")?;
            let created: Value = with_session
                .call(
                    Method::POST,
                    "/api/tokens",
                    Some(&json!({
                        "description": format!("beam login on {host}"),
                        "scopes": me["scopes"],
                    })),
                )
                .await
                .context("creating a token for this machine failed")?;
            // The session was only needed to mint the CLI token.
            let _: Value = with_session
                .call(Method::POST, "/api/auth/logout", None::<&()>)
                .await
                .unwrap_or(Value::Null);
            (
                Secret::new(created["token"].as_str().unwrap_or_default()),
                true,
            )
        }
        None => {
            let token = match &args.token_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Secret::new(text.trim())
                }
                None => read_secret("BEAM_TOKEN", "paste your beam token: ")?,
            };
            (token, false)
        }
    };
    if token.is_empty() {
        bail!("the server returned no token");
    }
    let me: Value = settings
        .client(Some(token.clone()))
        .call(Method::GET, "/api/me", None::<&()>)
        .await
        .map_err(|e| match e {
            // Only the server's answer is about the token; the rest is
            // about reaching it, and says so.
            beam_client::ApiError::Status { .. } => {
                anyhow::Error::new(e).context("the token was not accepted")
            }
            other => anyhow::Error::new(other).context("cannot log in"),
        })?;
    let mut global = settings.global.clone();
    global.server = Some(settings.server.clone());
    global.fingerprint = match &settings.tls {
        beam_client::TlsMode::Pinned(fp) => Some(fp.clone()),
        _ => global.fingerprint.take(),
    };
    global.token = Some(token);
    global.token_from_login = from_login;
    global.save(&settings.global_path)?;
    println!(
        "logged in to {} as {} ({}, {}); token saved to {}",
        settings.server,
        me["user"]["email"].as_str().unwrap_or("?"),
        me["org"]["name"].as_str().unwrap_or("?"),
        me["org"]["role"].as_str().unwrap_or("?"),
        settings.global_path.display()
    );
    if let Some(orgs) = me["orgs"].as_array().filter(|o| o.len() > 1) {
        let list: Vec<String> = orgs
            .iter()
            .map(|o| {
                format!(
                    "{} (id {}, {})",
                    o["name"].as_str().unwrap_or("?"),
                    o["id"],
                    o["role"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "your organizations: {}; pick one with `beam login --email … --org ID`",
            list.join(", ")
        );
    }
    Ok(())
}

/// `beam logout`.
pub async fn logout(args: ConnArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    let mut global = settings.global.clone();
    let Some(token) = global.token.take() else {
        println!(
            "not logged in ({} has no token)",
            settings.global_path.display()
        );
        return Ok(());
    };
    // Revoke only through the server the token was saved for: never send it to a
    // server that a project file or flag names instead.
    if global.token_from_login && global.server.as_deref() == Some(settings.server.as_str()) {
        let r: Result<Value, _> = settings
            .client(Some(token))
            .call(Method::POST, "/api/auth/logout", None::<&()>)
            .await;
        match r {
            Ok(_) => println!("token revoked on {}", settings.server),
            Err(e) => eprintln!("warning: could not revoke the token on the server: {e}"),
        }
    }
    global.token_from_login = false;
    global.save(&settings.global_path)?;
    println!(
        "logged out; token removed from {}",
        settings.global_path.display()
    );
    Ok(())
}

/// `beam tokens …`.
pub async fn tokens(cmd: TokensCommand) -> anyhow::Result<()> {
    match cmd {
        TokensCommand::Create(a) => {
            let api = Settings::resolve(&a.conn)?.api()?;
            let mut body = json!({ "description": a.description });
            if !a.scopes.is_empty() {
                body["scopes"] = json!(a.scopes);
            }
            if let Some(d) = a.expires_in_days {
                body["expires_in_days"] = json!(d);
            }
            if let Some(o) = a.org {
                body["org_id"] = json!(o);
            }
            let t: Value = api.call(Method::POST, "/api/tokens", Some(&body)).await?;
            if a.json {
                println!("{t}");
            } else {
                println!("{}", t["token"].as_str().unwrap_or_default());
                eprintln!(
                    "token {} created with scopes {}; it is shown only this once",
                    t["id"],
                    scopes(&t["scopes"])
                );
            }
        }
        TokensCommand::List(a) => {
            let api = Settings::resolve(&a.conn)?.api()?;
            let list: Value = api.call(Method::GET, "/api/tokens", None::<&()>).await?;
            if a.json {
                println!("{list}");
                return Ok(());
            }
            let mut table = Table::new(&[
                ("ID", Align::Right),
                ("DESCRIPTION", Align::Left),
                ("STATE", Align::Left),
                ("LAST USED", Align::Left),
                ("SCOPES", Align::Left),
            ]);
            for t in list.as_array().into_iter().flatten() {
                let state = if !t["revoked_at"].is_null() {
                    "revoked"
                } else if t["expires_at"]
                    .as_i64()
                    .is_some_and(|e| e <= beam_server::store::now_ms())
                {
                    "expired"
                } else {
                    "active"
                };
                table.row(vec![
                    cell(&t["id"]),
                    t["description"].as_str().unwrap_or_default().to_string(),
                    state.to_string(),
                    ms_to_age(t["last_used_at"].as_i64()),
                    scopes(&t["scopes"]),
                ]);
            }
            table.print();
        }
        TokensCommand::Revoke(a) => {
            let api = Settings::resolve(&a.conn)?.api()?;
            let _: Value = api
                .call(
                    Method::DELETE,
                    &format!("/api/tokens/{}", a.id),
                    None::<&()>,
                )
                .await?;
            println!("token {} revoked", a.id);
        }
    }
    Ok(())
}

fn scopes(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

//! `beam agent`: runs next to the production app and never gets in its way:
//! the app starts whether or not the server is reachable, its output passes
//! through untouched, and the agent exits with the app's exit code.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use beam_agent::embed::{Agent, AgentError};
use beam_agent::logs::{Limits, LogBuffer, Masker};
use beam_client::Event;
use beam_proto::TunnelRequest;
use tokio_util::sync::CancellationToken;

use crate::cli::AgentArgs;
use crate::cmd::split_env;
use crate::settings::Settings;

/// How long the agent waits before it tries again to publish after a setup
/// failure (no token, unreadable config, wrong token, missing secret).
const REPUBLISH: Duration = Duration::from_secs(30);

/// Runs `beam agent`; returns the app's exit code.
///
/// The app always starts: nothing beam needs (a token, the server, a secret,
/// the database) can keep production from running. What cannot be set up is
/// said loudly on stderr and retried in the background.
pub async fn run(args: AgentArgs) -> anyhow::Result<i32> {
    let (project, environment) = split_env(&args.project)?;
    if args.command.is_empty() && args.tail_file.is_empty() && args.listen.is_none() {
        bail!(
            "give the app to run after `--` (beam agent --project {project}/{environment} -- node server.js), or --tail-file / --listen"
        );
    }
    // Without an app this process is the whole service and nothing depends
    // on it starting: a setup mistake is an error now, not a retry loop.
    if args.command.is_empty() {
        prepare(
            &args,
            Arc::new(LogBuffer::new(Limits::default(), Masker::new(false), None)),
        )
        .await?;
    }
    let buffer = Arc::new(LogBuffer::new(
        Limits {
            max_entries: args.buffer_lines.max(1),
            max_bytes: usize::try_from(args.buffer_size).unwrap_or(usize::MAX),
            ttl: args.retention,
            ..Limits::default()
        },
        Masker::with_fields(args.mask_pii, &args.mask_field),
        args.service.clone(),
    ));
    let stop = CancellationToken::new();
    let publisher = Arc::new(std::sync::OnceLock::new());
    let publishing = tokio::spawn(publish(
        args.clone(),
        buffer.clone(),
        publisher.clone(),
        stop.clone(),
    ));
    for path in &args.tail_file {
        tokio::spawn(beam_agent::logs::tail::follow(
            path.clone(),
            buffer.clone(),
            Duration::from_millis(250),
            stop.clone(),
        ));
    }
    if let Some(addr) = args.listen {
        if !addr.ip().is_loopback() {
            eprintln!(
                "beam agent: warning: --listen {addr} is reachable from the network; anything that reaches it can publish logs and webhooks (prefer 127.0.0.1)"
            );
        }
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                if let Ok(addr) = listener.local_addr() {
                    eprintln!(
                        "beam agent: ingest on http://{addr} (POST /ingest/logs, POST /ingest/webhooks/PROVIDER)"
                    );
                }
                let ingest = beam_agent::ingest::Ingest {
                    logs: buffer.clone(),
                    webhooks: publisher,
                };
                tokio::spawn(ingest.serve(listener, stop.clone().cancelled_owned()));
            }
            // Without an app the ingest port is the whole job: fail clearly.
            Err(e) if args.command.is_empty() && args.tail_file.is_empty() => {
                return Err(e).with_context(|| format!("--listen {addr}"));
            }
            Err(e) => eprintln!("beam agent: --listen {addr}: {e}; the app runs without it"),
        }
    }
    let mut command = args.command.into_iter();
    let code = match command.next() {
        Some(program) => {
            beam_agent::logs::capture::run_child(program, command.collect(), buffer).await?
        }
        None => {
            // No app to run: serve until told to stop.
            crate::signal::shutdown_signal().await;
            0
        }
    };
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), publishing).await;
    Ok(code)
}

/// Publishes the agent until `stop`: sets up (settings, token, secrets,
/// database, policy), connects, and on any setup failure or fatal refusal
/// says why and tries again after [`REPUBLISH`]. Never ends the app.
async fn publish(
    args: AgentArgs,
    buffer: Arc<LogBuffer>,
    publisher: Arc<std::sync::OnceLock<beam_agent::ingest::WebhookPublisher>>,
    stop: CancellationToken,
) {
    loop {
        let why = match prepare(&args, buffer.clone()).await {
            Ok((agent, webhooks)) => {
                let _ = publisher.set(webhooks);
                let label = match &agent.config().tunnel {
                    TunnelRequest::Agent {
                        instance: Some(i), ..
                    } => format!("{} as instance {i}", args.project),
                    _ => args.project.clone(),
                };
                match run_agent(agent, &label, stop.clone()).await {
                    Ok(()) => return,
                    Err(AgentError::Client(beam_client::ClientError::Stopped(reason))) => {
                        // Another agent took this instance name: coming back
                        // would take it back, and the two would swap forever.
                        eprintln!(
                            "beam agent: NOT PUBLISHING: {reason}. The app runs anyway; give each replica its own --instance and restart this agent"
                        );
                        return;
                    }
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => format!("{e:#}"),
        };
        eprintln!(
            "beam agent: NOT PUBLISHING: {why}. The app runs anyway; retrying in {} s",
            REPUBLISH.as_secs()
        );
        tokio::select! {
            () = tokio::time::sleep(REPUBLISH) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Connects and serves until `stop` (`Ok`), a fatal refusal, or a stop from
/// the server (another agent took this instance name).
async fn run_agent(agent: Agent, name: &str, stop: CancellationToken) -> Result<(), AgentError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let name = name.to_string();
    let status = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            match ev {
                Event::Connected { via, .. } => {
                    eprintln!("beam agent: connected, publishing {name} (via {via})")
                }
                Event::Disconnected { reason, retry_in } => eprintln!(
                    "beam agent: offline ({reason}); retrying in {:.1} s (the app keeps running)",
                    retry_in.as_secs_f32()
                ),
                Event::Connecting { .. } => {}
            }
        }
    });
    let r = agent
        .run_with_events(stop.cancelled_owned(), Some(tx))
        .await;
    status.abort();
    r
}

/// Everything publishing needs, from settings and the environment: the agent
/// (the library's builder, as an app embedding it would use) and the webhook
/// publisher.
async fn prepare(
    args: &AgentArgs,
    buffer: Arc<LogBuffer>,
) -> anyhow::Result<(Agent, beam_agent::ingest::WebhookPublisher)> {
    let (project, environment) = split_env(&args.project)?;
    let secrets = webhook_secrets(&args.webhook_secret)?;
    let settings = Settings::resolve(&args.conn)?;
    let token = settings.require_token()?;
    let publisher = beam_agent::ingest::WebhookPublisher {
        api: settings.client(Some(token.clone())),
        project,
        environment,
        secrets,
        hmac: args
            .webhook_hmac
            .as_deref()
            .map(beam_proto::webhook::HmacScheme::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--webhook-hmac: {e}"))?,
    };
    let mut b = Agent::builder()
        .server(settings.server.clone())
        .token(token)
        .project(args.project.clone())
        .instance(instance_name(args.instance.as_deref())?)
        .log_buffer(buffer);
    if let Some(f) = &args.flags_file {
        b = b.flags_file(f.clone());
    }
    if let Some(p) = &args.flags_env_prefix {
        b = b.flags_env_prefix(p.clone());
    }
    for a in &args.env_allow {
        b = b.env_allow(a.clone());
    }
    // The variables the agent itself reads are never compared.
    let own = args
        .env_deny
        .iter()
        .cloned()
        .chain(args.database_env.iter().cloned())
        .chain(std::iter::once(args.sync_key_env.clone()))
        .chain(
            args.webhook_secret
                .iter()
                .filter_map(|s| s.split_once('=').map(|(_, v)| v.to_string())),
        );
    for d in own {
        b = b.env_deny(d);
    }
    if let Some(u) = &args.health_url {
        b = b.health_url(u.clone());
    }
    if let Some(var) = &args.database_env {
        let url = std::env::var(var)
            .with_context(|| format!("--database-env {var}: {var} is not set"))?;
        b = b
            .database_url(beam_proto::Secret::new(url))
            .database_limits(beam_agent::proddb::DbLimits {
                max_connections: args.db_max_connections,
                statement_timeout: args.db_statement_timeout,
                max_syncs: args.db_max_syncs,
            });
    }
    if let Some(policy) = &args.sync_policy {
        if args.database_env.is_none() {
            bail!("--sync-policy needs --database-env");
        }
        let key = std::env::var(&args.sync_key_env)
            .ok()
            .filter(|k| k.len() >= 16)
            .with_context(|| {
                format!(
                    "--sync-policy needs a pseudonym key of at least 16 characters in {} (e.g. `openssl rand -hex 32`)",
                    args.sync_key_env
                )
            })?;
        b = b.sync(policy.clone(), beam_proto::Secret::new(key));
    }
    let mut agent = b.build().map_err(|e| match &args.sync_policy {
        Some(p) if e.to_string().starts_with(&p.display().to_string()) => {
            anyhow::anyhow!("--sync-policy {e}")
        }
        _ => anyhow::anyhow!("{e}"),
    })?;
    settings.apply(agent.config_mut());
    Ok((agent, publisher))
}

/// `--webhook-secret stripe=ENV_VAR` → the provider and the secret from that
/// variable (the secret itself never appears in argv).
fn webhook_secrets(
    specs: &[String],
) -> anyhow::Result<std::collections::HashMap<beam_proto::webhook::Provider, beam_proto::Secret>> {
    let mut out = std::collections::HashMap::new();
    for spec in specs {
        let (prov, var) = spec.split_once('=').with_context(|| {
            format!("--webhook-secret '{spec}' is not PROVIDER=ENV_VAR (e.g. stripe=STRIPE_WEBHOOK_SECRET)")
        })?;
        let provider = beam_proto::webhook::Provider::parse(prov).with_context(|| {
            format!(
                "--webhook-secret: '{prov}' is not one of {}",
                beam_proto::webhook::Provider::NAMES
            )
        })?;
        if !provider.resignable() {
            bail!(
                "--webhook-secret: PayPal signatures cannot be verified offline; its events are forwarded unverified"
            );
        }
        let is_name = !var.is_empty()
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !var.as_bytes()[0].is_ascii_digit();
        if !is_name {
            // Never echo it: it may be the secret itself, pasted by mistake.
            bail!(
                "--webhook-secret {prov}=…: give the NAME of an environment variable holding the secret (e.g. stripe=STRIPE_WEBHOOK_SECRET), not the secret"
            );
        }
        let value = std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .with_context(|| format!("--webhook-secret {prov}={var}: {var} is not set"))?;
        out.insert(provider, beam_proto::Secret::new(value));
    }
    Ok(out)
}

/// `--instance`, checked, or the host name made into a valid instance name.
fn instance_name(flag: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = flag {
        if !beam_proto::valid_instance(name) {
            bail!("--instance '{name}': use 1 to 64 of A-Z a-z 0-9 . _ - (e.g. web-1)");
        }
        return Ok(name.to_string());
    }
    Ok(beam_agent::embed::instance_of_host(&beam_proto::host_name()))
}

#[cfg(test)]
mod instance_tests {
    use super::*;

    #[test]
    fn instance_names_are_checked_and_host_names_made_valid() {
        assert_eq!(instance_name(Some("web-1")).unwrap(), "web-1");
        let err = instance_name(Some("web 1")).unwrap_err().to_string();
        assert!(err.contains("--instance 'web 1'"), "{err}");
        assert!(beam_proto::valid_instance(&instance_name(None).unwrap()));
    }
}

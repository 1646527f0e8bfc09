//! The production agent inside an app, instead of `beam agent` around it:
//!
//! ```no_run
//! # async fn app() -> Result<(), beam_agent::embed::AgentError> {
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let agent = beam_agent::Agent::builder()
//!     .server("tunnels.example.com:8081")
//!     .token(beam_proto::Secret::new(std::env::var("BEAM_TOKEN").unwrap_or_default()))
//!     .project("shop/production")
//!     .flags_file("flags.toml")
//!     .env_allow("STRIPE_*")
//!     .build()?;
//! // The app's tracing events go to `beam logs` with their fields, unparsed.
//! tracing::subscriber::set_global_default(tracing_subscriber::registry().with(agent.layer()))
//!     .ok();
//! tokio::spawn(agent.run(std::future::pending()));
//! # Ok(()) }
//! ```
//!
//! The same services as `beam agent` (logs, flags, env check, health, sync),
//! over the same outbound connection; [`Agent::run`] reconnects with backoff
//! and never ends the app: it returns only at shutdown or when the server
//! refuses the agent for good (a revoked token, another agent took the
//! instance name).

use std::path::PathBuf;
use std::sync::Arc;

use beam_client::{ClientConfig, Event, TlsMode};
use beam_proto::{Secret, TunnelRequest};

use crate::agent::AgentServices;
use crate::envcheck::EnvPolicy;
use crate::flags::FlagSource;
use crate::layer::LogLayer;
use crate::logs::{Limits, LogBuffer, Masker};
use crate::proddb::{DbLimits, ProdDb};
use crate::sync::{Policy, SyncSource};

/// Why an agent could not be built or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A required setting was not given.
    #[error("the agent needs {0}")]
    Missing(&'static str),
    /// A setting is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The server refused the agent for good, or the connection failed
    /// fatally (a revoked token, another agent took the instance name).
    #[error(transparent)]
    Client(#[from] beam_client::ClientError),
}

/// Builds an [`Agent`]; every setting mirrors a `beam agent` flag.
#[derive(Debug, Default)]
pub struct AgentBuilder {
    server: Option<String>,
    token: Option<Secret>,
    tls: Option<TlsMode>,
    project: Option<String>,
    instance: Option<String>,
    service: Option<String>,
    mask_pii: bool,
    mask_fields: Vec<String>,
    limits: Limits,
    flags: FlagSource,
    env_allow: Vec<String>,
    env_deny: Vec<String>,
    health_url: Option<String>,
    database_url: Option<Secret>,
    db_limits: Option<DbLimits>,
    sync: Option<(PathBuf, Secret)>,
    buffer: Option<Arc<LogBuffer>>,
}

impl AgentBuilder {
    /// The server's tunnel address, `host:port` (several, comma-separated,
    /// for a cluster).
    pub fn server(mut self, addr: impl Into<String>) -> Self {
        self.server = Some(addr.into());
        self
    }

    /// The agent token of the environment (`beam projects token P/E`).
    pub fn token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// Accept only the server certificate with this `sha256:…` fingerprint
    /// (a self-hosted server's self-signed certificate); default: web PKI.
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.tls = Some(TlsMode::Pinned(fingerprint.into()));
        self
    }

    /// `PROJECT/ENVIRONMENT`, e.g. `shop/production`.
    pub fn project(mut self, name: impl Into<String>) -> Self {
        self.project = Some(name.into());
        self
    }

    /// This replica's name (default: the host name, as `beam agent`).
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instance = Some(name.into());
        self
    }

    /// The service name of log lines that do not name one.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self
    }

    /// Also mask e-mail addresses in log lines.
    pub fn mask_pii(mut self, on: bool) -> Self {
        self.mask_pii = on;
        self
    }

    /// Another field name whose value is always masked.
    pub fn mask_field(mut self, name: impl Into<String>) -> Self {
        self.mask_fields.push(name.into());
        self
    }

    /// The log buffer's bounds (entries, bytes, age).
    pub fn buffer_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Publish this log buffer (one the app already fills) instead of a new
    /// one; the buffer's own limits, masking and service name apply.
    pub fn log_buffer(mut self, buffer: Arc<LogBuffer>) -> Self {
        self.buffer = Some(buffer);
        self
    }

    /// Feature flags from this TOML or JSON file.
    pub fn flags_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.flags.file = Some(path.into());
        self
    }

    /// Feature flags from variables with this prefix (`FEATURE_`).
    pub fn flags_env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.flags.env_prefix = Some(prefix.into());
        self
    }

    /// A variable name `beam env check` may compare (`*` wildcards).
    pub fn env_allow(mut self, pattern: impl Into<String>) -> Self {
        self.env_allow.push(pattern.into());
        self
    }

    /// A variable name it may never compare.
    pub fn env_deny(mut self, pattern: impl Into<String>) -> Self {
        self.env_deny.push(pattern.into());
        self
    }

    /// The app's health URL `beam health` probes.
    pub fn health_url(mut self, url: impl Into<String>) -> Self {
        self.health_url = Some(url.into());
        self
    }

    /// The production database (health probe; sync with [`Self::sync`]).
    pub fn database_url(mut self, url: Secret) -> Self {
        self.database_url = Some(url);
        self
    }

    /// Bounds on the production database pool.
    pub fn database_limits(mut self, limits: DbLimits) -> Self {
        self.db_limits = Some(limits);
        self
    }

    /// Serve `beam sync` under this policy file, with this pseudonym key (at
    /// least 16 characters). Needs [`Self::database_url`].
    pub fn sync(mut self, policy: impl Into<PathBuf>, key: Secret) -> Self {
        self.sync = Some((policy.into(), key));
        self
    }

    /// Checks the settings and prepares the agent (the policy file is read
    /// now, so a mistake is an error here, not on the first request). The
    /// database is connected lazily.
    pub fn build(self) -> Result<Agent, AgentError> {
        let server = self.server.ok_or(AgentError::Missing("a server address"))?;
        let token = self.token.ok_or(AgentError::Missing("an agent token"))?;
        let name = self
            .project
            .ok_or(AgentError::Missing("a project (PROJECT/ENVIRONMENT)"))?;
        let (project, environment) = match name.split_once('/') {
            Some((p, e)) if !p.is_empty() && !e.is_empty() && !e.contains('/') => {
                (p.to_string(), e.to_string())
            }
            _ => {
                return Err(AgentError::Invalid(format!(
                    "'{name}' is not PROJECT/ENVIRONMENT, e.g. shop/production"
                )));
            }
        };
        let instance = match self.instance {
            Some(i) if beam_proto::valid_instance(&i) => i,
            Some(i) => {
                return Err(AgentError::Invalid(format!(
                    "instance '{i}': use 1 to 64 of A-Z a-z 0-9 . _ - (e.g. web-1)"
                )));
            }
            None => instance_of_host(&beam_proto::host_name()),
        };
        let buffer = match self.buffer {
            Some(b) => b,
            None => Arc::new(LogBuffer::new(
                self.limits,
                Masker::with_fields(self.mask_pii, &self.mask_fields),
                self.service,
            )),
        };
        let mut services = AgentServices::new(buffer.clone(), name.clone());
        services.flags = self.flags;
        services.env = EnvPolicy {
            allow: self.env_allow,
            deny: self.env_deny,
        };
        services.health.app_url = self.health_url;
        let db = match &self.database_url {
            Some(url) => {
                let db = ProdDb::new(url.expose(), self.db_limits.unwrap_or_default())
                    .map_err(|e| AgentError::Invalid(format!("database: {e}")))?;
                Some((db, crate::health::redacted_url(url.expose())))
            }
            None => None,
        };
        services.health.database = db.clone();
        if let Some((policy, key)) = self.sync {
            if key.expose().len() < 16 {
                return Err(AgentError::Invalid(
                    "the sync pseudonym key needs at least 16 characters (e.g. `openssl rand -hex 32`)"
                        .into(),
                ));
            }
            let Some((db, _)) = db else {
                return Err(AgentError::Missing("a database URL for sync"));
            };
            let text = std::fs::read_to_string(&policy)
                .map_err(|e| AgentError::Invalid(format!("{}: {e}", policy.display())))?;
            Policy::parse(&text)
                .map_err(|e| AgentError::Invalid(format!("{}: {e}", policy.display())))?;
            services.sync = Some(Arc::new(SyncSource { db, policy, key }));
        }
        let mut config = ClientConfig::new(
            server,
            token,
            TunnelRequest::Agent {
                project,
                environment,
                instance: Some(instance),
            },
        );
        if let Some(tls) = self.tls {
            config.tls = tls;
        }
        Ok(Agent {
            config,
            services,
            buffer,
        })
    }
}

/// A host name as an instance name: other characters become `-`, at most 64.
pub fn instance_of_host(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "default".into()
    } else {
        name
    }
}

/// A production agent, built by [`Agent::builder`].
#[derive(Debug)]
pub struct Agent {
    config: ClientConfig,
    services: AgentServices,
    buffer: Arc<LogBuffer>,
}

impl Agent {
    /// Starts building an agent.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }

    /// A `tracing` layer that publishes the app's events to `beam logs`.
    pub fn layer(&self) -> LogLayer {
        LogLayer::new(self.buffer.clone())
    }

    /// The log buffer, for apps that push lines themselves.
    pub fn logs(&self) -> Arc<LogBuffer> {
        self.buffer.clone()
    }

    /// The connection settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The connection settings (to adjust backoff, transport or a proxy
    /// before [`Agent::run`]).
    pub fn config_mut(&mut self) -> &mut ClientConfig {
        &mut self.config
    }

    /// Publishes until `shutdown`, reconnecting with backoff; connection
    /// changes are reported to `events` when given. Returns `Ok` at shutdown
    /// and an error only when the server refuses the agent for good.
    pub async fn run_with_events(
        self,
        shutdown: impl Future<Output = ()>,
        events: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
    ) -> Result<(), AgentError> {
        let events = events.unwrap_or_else(|| {
            // Nobody listens: the receiver is dropped and sends are ignored.
            tokio::sync::mpsc::unbounded_channel().0
        });
        beam_client::run(self.config, self.services, events, shutdown).await?;
        Ok(())
    }

    /// [`Agent::run_with_events`] without events.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        self.run_with_events(shutdown, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_builder_says_what_is_missing_or_wrong() {
        let err = Agent::builder().build().unwrap_err().to_string();
        assert_eq!(err, "the agent needs a server address");
        let base = || {
            Agent::builder()
                .server("127.0.0.1:1")
                .token(Secret::new("beam_x".to_string()))
        };
        assert_eq!(
            base().build().unwrap_err().to_string(),
            "the agent needs a project (PROJECT/ENVIRONMENT)"
        );
        assert!(
            base()
                .project("shop")
                .build()
                .unwrap_err()
                .to_string()
                .contains("'shop' is not PROJECT/ENVIRONMENT")
        );
        assert!(
            base()
                .project("shop/production")
                .instance("web 1")
                .build()
                .unwrap_err()
                .to_string()
                .contains("instance 'web 1'")
        );
        let err = base()
            .project("shop/production")
            .sync("policy.toml", Secret::new("short".to_string()))
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 16 characters"), "{err}");
        let agent = base()
            .project("shop/production")
            .fingerprint("sha256:ab")
            .build()
            .unwrap();
        assert_eq!(agent.config.tls, TlsMode::Pinned("sha256:ab".into()));
        assert_eq!(instance_of_host("pod/abc é"), "pod-abc--");
        assert_eq!(instance_of_host(""), "default");
    }
}

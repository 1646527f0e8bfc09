//! Where the CLI's settings come from, in order: flags > environment (`BEAM_*`) >
//! project file (`beam.toml` in the current directory or a parent) > global file
//! (`$XDG_CONFIG_HOME/beam/config.toml`) > defaults. Clap merges flags and the
//! environment; this module adds the two files. Tokens are never read from the
//! project file, which is usually committed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use beam_client::egress::HttpProxy;
use beam_client::{ApiClient, ClientConfig, TlsMode, Transport};
use beam_proto::Secret;
use beam_proto::TunnelRequest;
use clap::Args;
use serde::Deserialize;

use crate::userconfig::{UserConfig, default_path};

/// Default tunnel address of a local `beam server`.
pub const DEFAULT_SERVER: &str = "127.0.0.1:8081";

/// Name of the project file.
pub const PROJECT_FILE: &str = "beam.toml";

/// How to reach the server: shared by every command that talks to it.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// beam server tunnel address, or several separated by commas (a cluster's
    /// nodes, tried in turn) [default: project file, config file, else 127.0.0.1:8081].
    #[arg(long, env = "BEAM_SERVER")]
    pub server: Option<String>,
    /// Pin the server certificate by fingerprint (sha256:…) [default: project or config file].
    #[arg(long, env = "BEAM_FINGERPRINT")]
    pub fingerprint: Option<String>,
    /// Connect without TLS (loopback servers, or servers started with --insecure).
    #[arg(long)]
    pub insecure: bool,
    /// How to reach the server: auto (the tunnel port, then the HTTPS port,
    /// then a WebSocket on it), tls (the tunnel port only) or websocket
    /// (wss://SERVER:EDGE_PORT/_beam/tunnel only). HTTPS_PROXY, ALL_PROXY and
    /// NO_PROXY are honoured by all three.
    #[arg(long, env = "BEAM_TRANSPORT", default_value = "auto", value_parser = parse_transport)]
    pub transport: Transport,
    /// The server's HTTPS port, for the auto and websocket transports.
    #[arg(long, env = "BEAM_EDGE_PORT", default_value_t = 443)]
    pub edge_port: u16,
    /// Global config file [default: $BEAM_CONFIG or ~/.config/beam/config.toml].
    #[arg(long)]
    pub config: Option<PathBuf>,
}

fn parse_transport(s: &str) -> Result<Transport, String> {
    s.parse()
}

/// `beam.toml`: per-project defaults. Unknown keys are errors, so a typo does
/// not silently fall back to a default.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Tunnel listener address.
    #[serde(default)]
    pub server: Option<String>,
    /// Pinned certificate fingerprint.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Subdomain `beam http` asks for.
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Custom domain `beam http` routes.
    #[serde(default)]
    pub domain: Option<String>,
    /// PROJECT/ENVIRONMENT the parity commands work on (`beam logs`,
    /// `beam webhook`, `beam flags`, `beam env check`, `beam health`,
    /// `beam sync`, `beam connect`) when `--project` is not given.
    #[serde(default)]
    pub project: Option<String>,
    /// The local port `beam dev` exposes when none is given.
    #[serde(default)]
    pub port: Option<u16>,
}

/// The PROJECT/ENVIRONMENT a parity command works on: `--project` (or
/// `BEAM_PROJECT`), else `project` in the nearest `beam.toml`.
pub fn project(flag: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = flag {
        return Ok(p);
    }
    let (file, _) = ProjectConfig::discover()?;
    file.project.ok_or_else(|| {
        anyhow::anyhow!(
            "which production environment? Give --project PROJECT/ENV (or BEAM_PROJECT), or put `project = \"shop/production\"` in beam.toml"
        )
    })
}

/// The nearest `beam.toml` from `start` upwards.
pub fn find_project(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(PROJECT_FILE))
        .find(|p| p.is_file())
}

impl ProjectConfig {
    /// Loads the nearest project file, if any.
    pub fn discover() -> anyhow::Result<(Self, Option<PathBuf>)> {
        let Ok(cwd) = std::env::current_dir() else {
            return Ok((Self::default(), None));
        };
        match find_project(&cwd) {
            Some(p) => Ok((Self::load(&p)?, Some(p))),
            None => Ok((Self::default(), None)),
        }
    }

    /// Loads `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if let Ok(table) = text.parse::<toml::Table>()
            && table.contains_key("token")
        {
            anyhow::bail!(
                "{} contains a token; tokens do not belong in a project file (it is usually committed). Remove it and run `beam login`",
                path.display()
            );
        }
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid beam project file: {} (known keys: server, fingerprint, subdomain, domain, project, port)",
                path.display(),
                e.message()
            )
        })
    }
}

/// Resolved connection settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tunnel listener address.
    pub server: String,
    /// Transport protection.
    pub tls: TlsMode,
    /// Token, from `BEAM_TOKEN` or the global file.
    pub token: Option<Secret>,
    /// The project file's values.
    pub project: ProjectConfig,
    /// The global file's path.
    pub global_path: PathBuf,
    /// The global file's values.
    pub global: UserConfig,
    /// `--transport`.
    pub transport: Transport,
    /// `--edge-port`.
    pub edge_port: u16,
    /// The proxy for connections to the server, from the environment.
    pub egress: Option<HttpProxy>,
}

impl Settings {
    /// Resolves settings for `args` with the precedence above.
    pub fn resolve(args: &ConnArgs) -> anyhow::Result<Self> {
        let (project, _) = ProjectConfig::discover()?;
        Self::resolve_with(args, project)
    }

    /// As [`resolve`](Self::resolve), with a given project file.
    pub fn resolve_with(args: &ConnArgs, project: ProjectConfig) -> anyhow::Result<Self> {
        let global_path = args.config.clone().unwrap_or_else(default_path);
        let global = UserConfig::load(&global_path)?;
        let server = args
            .server
            .clone()
            .or(project.server.clone())
            .or(global.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let tls = if args.insecure {
            TlsMode::Plaintext
        } else if let Some(fp) = args
            .fingerprint
            .clone()
            .or(project.fingerprint.clone())
            .or(global.fingerprint.clone())
        {
            TlsMode::Pinned(fp)
        } else {
            TlsMode::WebPki
        };
        // The saved token goes only to the server it was saved for: a committed
        // beam.toml (or a flag) pointing elsewhere must not receive it.
        let saved_for = global
            .server
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let token = std::env::var("BEAM_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .or(global.token.clone().filter(|_| server == saved_for));
        let first = beam_client::config::servers(&server).next().unwrap_or("");
        let host = first.rsplit_once(':').map_or(first, |(h, _)| h);
        let egress = HttpProxy::from_env(|k| std::env::var(k).ok(), host)?;
        Ok(Self {
            server,
            tls,
            token,
            project,
            global_path,
            global,
            transport: args.transport,
            edge_port: args.edge_port,
            egress,
        })
    }

    /// The token, or an error saying how to get one.
    pub fn require_token(&self) -> anyhow::Result<Secret> {
        if self.token.is_none()
            && self.global.token.is_some()
            && let Some(saved) = &self.global.server
        {
            anyhow::bail!(
                "your saved token is for {saved}, not {}; run `beam login --server {}` or set BEAM_TOKEN",
                self.server,
                self.server
            );
        }
        self.token.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "no token: run `beam login`, set BEAM_TOKEN, or run `beam server --dev` on this machine (config file: {})",
                self.global_path.display()
            )
        })
    }

    /// An API client with the token.
    pub fn api(&self) -> anyhow::Result<ApiClient> {
        Ok(self.client(Some(self.require_token()?)))
    }

    /// An API client for this server with `token` (none before login).
    pub fn client(&self, token: Option<Secret>) -> ApiClient {
        ApiClient {
            server: self.server.clone(),
            tls: self.tls.clone(),
            token,
            egress: self.egress.clone(),
        }
    }

    /// A tunnel connection's configuration for this server: TLS, transport
    /// and proxy as resolved, asking for `tunnel` with `token`.
    pub fn client_config(&self, token: Secret, tunnel: TunnelRequest) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.server.clone(), token, tunnel);
        self.apply(&mut cfg);
        cfg
    }

    /// Sets `cfg`'s TLS, transport, edge port and proxy as resolved here.
    pub fn apply(&self, cfg: &mut ClientConfig) {
        cfg.tls = self.tls.clone();
        cfg.transport = self.transport;
        cfg.edge_port = self.edge_port;
        cfg.egress = self.egress.clone();
    }
}

impl ConnArgs {
    /// Resolves the settings these options point at and makes an API client
    /// with the saved token.
    pub fn api(&self) -> anyhow::Result<ApiClient> {
        Settings::resolve(self)?.api()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_files_are_found_upwards_and_refuse_tokens_and_typos() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_project(&deep), None);
        let file = dir.path().join("a").join(PROJECT_FILE);
        std::fs::write(
            &file,
            "server = \"tunnel.example.com:8081\"\nsubdomain = \"demo\"\n",
        )
        .unwrap();
        assert_eq!(find_project(&deep).as_deref(), Some(file.as_path()));
        let p = ProjectConfig::load(&file).unwrap();
        assert_eq!(p.subdomain.as_deref(), Some("demo"));

        std::fs::write(&file, "token = \"beam_x\"\n").unwrap();
        let err = ProjectConfig::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("tokens do not belong in a project file"),
            "{err}"
        );
        assert!(!err.contains("beam_x"));

        std::fs::write(&file, "sever = \"x\"\n").unwrap();
        let err = ProjectConfig::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("unknown field") && err.contains("known keys"),
            "{err}"
        );
    }

    #[test]
    fn flags_beat_project_beat_global() {
        let dir = tempfile::tempdir().unwrap();
        let global = dir.path().join("config.toml");
        UserConfig {
            server: Some("global:1".into()),
            token: None,
            fingerprint: Some("sha256:global".into()),
            token_from_login: false,
        }
        .save(&global)
        .unwrap();
        let args = |server: Option<&str>| ConnArgs {
            server: server.map(String::from),
            fingerprint: None,
            insecure: false,
            config: Some(global.clone()),
            transport: Transport::Auto,
            edge_port: 443,
        };
        let project = ProjectConfig {
            server: Some("project:2".into()),
            ..Default::default()
        };
        let s = Settings::resolve_with(&args(None), ProjectConfig::default()).unwrap();
        assert_eq!(s.server, "global:1");
        assert_eq!(s.tls, TlsMode::Pinned("sha256:global".into()));
        let s = Settings::resolve_with(&args(None), project.clone()).unwrap();
        assert_eq!(s.server, "project:2");
        let s = Settings::resolve_with(&args(Some("flag:3")), project).unwrap();
        assert_eq!(s.server, "flag:3");
        let missing = ConnArgs {
            config: Some(dir.path().join("none.toml")),
            ..args(None)
        };
        let s = Settings::resolve_with(&missing, ProjectConfig::default()).unwrap();
        assert_eq!(s.server, DEFAULT_SERVER);
    }

    #[test]
    fn the_saved_token_is_never_sent_to_a_server_a_project_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let global = dir.path().join("config.toml");
        UserConfig {
            server: Some("mine:8081".into()),
            token: Some(Secret::new("beam_saved")),
            fingerprint: None,
            token_from_login: false,
        }
        .save(&global)
        .unwrap();
        let args = ConnArgs {
            server: None,
            fingerprint: None,
            insecure: false,
            config: Some(global),
            transport: Transport::Auto,
            edge_port: 443,
        };
        if std::env::var_os("BEAM_TOKEN").is_some() {
            return; // an explicit token in the environment is the user's choice
        }
        let ok = Settings::resolve_with(&args, ProjectConfig::default()).unwrap();
        assert_eq!(ok.require_token().unwrap().expose(), "beam_saved");
        let evil = ProjectConfig {
            server: Some("evil:8081".into()),
            ..Default::default()
        };
        let s = Settings::resolve_with(&args, evil).unwrap();
        assert!(s.token.is_none());
        let err = s.require_token().unwrap_err().to_string();
        assert!(
            err.contains("your saved token is for mine:8081, not evil:8081"),
            "{err}"
        );
        assert!(!err.contains("beam_saved"));
    }
}

//! Command-line definition (clap): what each command accepts, never what it
//! does (that is [`crate::cmd`], dispatched from `main.rs`). Secrets are never
//! flags: tokens come from the environment or the config file, so they stay
//! out of `ps` and history.
//!
//! - [`account`]: login, tokens, list/stop, domains, org, audit.
//! - [`server`]: `beam server`.
//! - [`tunnel`]: `beam http` and `beam tcp`.
//! - [`parity`]: projects, agent, logs, webhook, flags, env, health, sync, connect.
//! - [`parse`]: value parsers (durations, sizes, port ranges, rates).

pub mod account;
pub mod parity;
pub mod parse;
pub mod server;
pub mod tunnel;

use clap::{Parser, Subcommand};

pub use account::*;
pub use parity::*;
pub use parse::*;
pub use server::*;
pub use tunnel::*;

pub use crate::settings::ConnArgs;

/// Expose localhost to the internet, and see production from your laptop.
#[derive(Debug, Parser)]
#[command(name = "beam", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a beam server (edge, tunnel listener, API).
    Server(Box<ServerArgs>),
    /// Expose a local HTTP service on a public subdomain.
    Http(HttpArgs),
    /// Start work on the project here: finds its dev server's port, waits for
    /// it, opens the public URL with the inspector, and prints a QR code.
    Dev(DevArgs),
    /// Expose a local TCP port on a public port.
    Tcp(TcpArgs),
    /// Save a token for this machine (from a prompt, a file, BEAM_TOKEN, or an email and password).
    Login(LoginArgs),
    /// Forget the saved token (and revoke it if `beam login --email` created it).
    Logout(ConnArgs),
    /// List your organization's tunnels.
    List(ListArgs),
    /// Stop a tunnel by name or id: the client exits and the name is released.
    Stop(StopArgs),
    /// Pause a tunnel: visitors get 503 until it is resumed; the client stays connected.
    Pause(StopArgs),
    /// Resume a paused tunnel.
    Resume(StopArgs),
    /// Reserved subdomains and custom domains.
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Your organization: members, invitations, accepting one.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Parity project environments (shop/production) and their agent tokens.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Run next to the production app: `beam agent --project shop/production -- node server.js`.
    Agent(AgentArgs),
    /// Stream production logs; filters run on the agent, in production.
    Logs(LogsArgs),
    /// Deliver production webhooks to a local app, re-signed with your own secret.
    Webhook(WebhookArgs),
    /// Production feature flags (`✓ ON / ✗ OFF`), or one evaluated for a user.
    Flags(FlagsArgs),
    /// Compare your environment with production's (verdicts only, never values).
    #[command(subcommand)]
    Env(EnvCommand),
    /// The production agent's health checks.
    Health(HealthArgs),
    /// Pull sanitized production rows (the agent's policy decides every column).
    Sync(SyncArgs),
    /// Live status of a production environment: connection, latency, parity services.
    Connect(ConnectArgs),
    /// The audit log: who looked at what in production, and who changed what.
    Audit(AuditArgs),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

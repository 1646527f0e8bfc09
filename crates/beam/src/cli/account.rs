//! Options of the account commands: `beam login`, `tokens`, `list`, `stop`,
//! `domains` and `org`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::settings::ConnArgs;

/// `beam login` options. The token is never an argument.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Read the token from this file instead of BEAM_TOKEN or a prompt.
    #[arg(long, conflicts_with = "email")]
    pub token_file: Option<PathBuf>,
    /// Log in with an account: asks for the password (or reads BEAM_PASSWORD) and
    /// creates a token for this machine.
    #[arg(long)]
    pub email: Option<String>,
    /// With --email: the organization this machine's token acts in [default: your first].
    #[arg(long, requires = "email")]
    pub org: Option<i64>,
}

/// `beam list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `beam stop` options.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Subdomain, port or tunnel id (see `beam list`).
    pub tunnel: String,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `beam domains …`.
#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// Add a custom domain (then publish the TXT record it prints) or reserve NAME.<server domain>.
    Add(DomainArgs),
    /// List domains.
    List(ListArgs),
    /// Look the TXT record up now.
    Verify(DomainArgs),
    /// Remove a domain.
    Remove(DomainArgs),
}

/// A domain argument.
#[derive(Debug, Args)]
pub struct DomainArgs {
    /// Host name (or id, except for `add`).
    pub hostname: String,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `beam tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; it is printed once.
    Create(TokenCreateArgs),
    /// List your tokens.
    List(ListArgs),
    /// Revoke a token by id; tunnels using it disconnect.
    Revoke(TokenRevokeArgs),
}

/// `beam tokens create` options.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// What the token is for.
    #[arg(long, short, default_value = "beam CLI")]
    pub description: String,
    /// Comma-separated scopes [default: tunnels:write,tunnels:read,domains:write,domains:read].
    #[arg(long, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Expire after this many days.
    #[arg(long)]
    pub expires_in_days: Option<u32>,
    /// Organization the token acts in (see `beam login` output / GET /api/me) [default: yours].
    #[arg(long)]
    pub org: Option<i64>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `beam tokens revoke` options.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// Token id (see `beam tokens list`).
    pub id: i64,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `beam org` subcommands.
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Members and their roles (admins also see open invitations).
    Members {
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Invite EMAIL (admins). With mail configured on the server the
    /// invitation is mailed; without, a one-time token is printed for you to
    /// pass on.
    Invite {
        /// The address to invite.
        email: String,
        /// owner, admin, member or viewer.
        #[arg(long, default_value = "member")]
        role: String,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Accept an invitation with its one-time token (asks for a password
    /// when the address has no account yet; or reads BEAM_PASSWORD).
    Accept {
        /// The token from the invitation.
        token: String,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// `beam audit`: newest first; admins see the organization's entries, others
/// their own.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// From this time: a duration ago (24h, 7d) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time: a duration ago or an RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this person's entries (e-mail).
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Only this kind (`sync` also matches `sync.*`): logs, sync, env.check,
    /// flags, health, webhook, token, member, invitation, domain, project,
    /// tunnel, signin, audit.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only PROJECT or PROJECT/ENVIRONMENT.
    #[arg(long, value_name = "PROJECT[/ENV]")]
    pub environment: Option<String>,
    /// Entries to show [default: 50]; `--all` for every matching one.
    #[arg(long, conflicts_with = "all")]
    pub limit: Option<u32>,
    /// Every matching entry (follows the pages).
    #[arg(long)]
    pub all: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Every matching entry as NDJSON, oldest first, for a SIEM (`--after ID`
    /// continues from the last id read).
    #[arg(long, conflicts_with_all = ["limit", "all", "json"])]
    pub export: bool,
    /// With --export: only entries after this id.
    #[arg(long, requires = "export", value_name = "ID")]
    pub after: Option<i64>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

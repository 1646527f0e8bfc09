//! Command-line options of the parity commands: `beam projects`, `agent`,
//! `logs`, `webhook`, `flags`, `env check`, `health`, `sync` and `connect`
//! (re-exported from [`crate::cli`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::parse::{parse_duration, parse_size};
use crate::settings::ConnArgs;

/// `beam connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
    #[arg(long, env = "BEAM_PROJECT")]
    pub project: Option<String>,
    /// Print the status once and exit (1 when the agent is offline).
    #[arg(long)]
    pub once: bool,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `beam sync`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SyncArgs {
    /// `policy suggest`; without it, pulls rows.
    #[command(subcommand)]
    pub command: Option<SyncCommand>,
    /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
    #[arg(long, env = "BEAM_PROJECT")]
    pub project: Option<String>,
    /// The table.
    #[arg(long, required = true)]
    pub table: Option<String>,
    /// Most rows.
    #[arg(long)]
    pub limit: Option<u64>,
    /// `COLUMN=VALUE` filter (repeatable; values are bound, never spliced into SQL).
    #[arg(long = "where", value_name = "COLUMN=VALUE")]
    pub filters: Vec<String>,
    /// Only these columns (comma-separated).
    #[arg(long)]
    pub select: Option<String>,
    /// Skip this many rows first (in primary-key order).
    #[arg(long, default_value_t = 0)]
    pub skip: u64,
    /// Also bring the rows the synced rows reference (one level of foreign
    /// keys, through the agent's policy for those tables); needs --into.
    #[arg(long, requires = "into")]
    pub related: bool,
    /// Continue an interrupted --output file: skip the rows it already holds
    /// and append (NDJSON or CSV).
    #[arg(long, requires = "output")]
    pub resume: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SyncFormat::Ndjson)]
    pub format: SyncFormat,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE", conflicts_with = "into")]
    pub output: Option<PathBuf>,
    /// Insert into a local database instead (`postgres://…`, `mysql://…` or `sqlite://PATH`):
    /// the table is created if missing; rows already there are skipped. Give a
    /// URL with a password through BEAM_SYNC_INTO, not argv.
    #[arg(
        long,
        env = "BEAM_SYNC_INTO",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub into: Option<String>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `beam sync` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncFormat {
    /// One JSON object per line.
    Ndjson,
    /// One JSON array.
    Json,
    /// CSV with a header row.
    Csv,
    /// SQL INSERT statements (`ON CONFLICT DO NOTHING`), for psql or sqlite3.
    Sql,
}

/// `beam sync` subcommands.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Sanitization policies.
    #[command(subcommand)]
    Policy(SyncPolicyCommand),
}

/// `beam sync policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum SyncPolicyCommand {
    /// Propose a policy for a table from the production schema (names and types only).
    Suggest {
        /// The table.
        #[arg(long)]
        table: String,
        /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
        #[arg(long, env = "BEAM_PROJECT")]
        project: Option<String>,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// `beam flags`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct FlagsArgs {
    /// `eval KEY --user ID`; without it, lists the flags.
    #[command(subcommand)]
    pub command: Option<FlagsCommand>,
    /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
    #[arg(long, env = "BEAM_PROJECT")]
    pub project: Option<String>,
    /// JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Keep watching and print again when the flags change.
    #[arg(long)]
    pub watch: bool,
    /// Also write the flags to this env file (`FLAG_KEY=true`), with FILE.overrides on top.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `beam flags` subcommands.
#[derive(Debug, Subcommand)]
pub enum FlagsCommand {
    /// Evaluate one flag for a user (rollout bucket and variant).
    Eval {
        /// The flag key.
        key: String,
        /// The user id.
        #[arg(long)]
        user: Option<String>,
        /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
        #[arg(long, env = "BEAM_PROJECT")]
        project: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// `beam env` subcommands.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Which variables are missing or different in production.
    Check(EnvCheckArgs),
}

/// `beam env check`.
#[derive(Debug, Args)]
pub struct EnvCheckArgs {
    /// Variable names to compare.
    pub names: Vec<String>,
    /// Also compare every name in this file (e.g. .env.example).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Read local values from this dotenv file (repeatable; a later file
    /// overrides an earlier one, the process environment overrides all)
    /// [default: .env then .env.local, when they exist].
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Exit 1 unless every variable is equal on both sides (for CI).
    #[arg(long)]
    pub strict: bool,
    /// JSON: name → verdict.
    #[arg(long)]
    pub json: bool,
    /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
    #[arg(long, env = "BEAM_PROJECT")]
    pub project: Option<String>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `beam health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
    #[arg(long, env = "BEAM_PROJECT")]
    pub project: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `beam webhook`: forwards events (the default), or a subcommand.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct WebhookArgs {
    /// list, replay or secret; without one, forwards events.
    #[command(subcommand)]
    pub command: Option<WebhookCommand>,
    /// Forwarding options.
    #[command(flatten)]
    pub listen: WebhookListenArgs,
}

/// `beam webhook` forwarding options.
#[derive(Debug, Args)]
pub struct WebhookListenArgs {
    /// PROJECT/ENVIRONMENT whose webhooks to receive [default: `project` in beam.toml].
    #[arg(long, env = "BEAM_PROJECT")]
    pub project: Option<String>,
    /// Only this provider's events: stripe, svix, github, shopify, slack, twilio,
    /// paddle, linear, hmac, paypal.
    #[arg(long)]
    pub provider: Option<String>,
    /// Where to POST events: `http://localhost:3000/webhooks`, or
    /// `TYPE=URL` to route event types (`invoice.*=http://localhost:3000/invoices`).
    /// Repeatable; the first matching route wins, an untyped one catches the rest.
    #[arg(long, required = true, value_name = "[TYPE=]URL")]
    pub forward: Vec<String>,
    /// Only these event types (comma-separated, `*` wildcards): `payment_intent.*`.
    #[arg(long)]
    pub events: Option<String>,
    /// Subscription name: each keeps its own delivery state on the server.
    #[arg(long, default_value = "default")]
    pub subscription: String,
    /// Accept any certificate from an https forward URL.
    #[arg(long)]
    pub insecure_upstream: bool,
    /// One JSON object per delivery on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// `beam webhook` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Recent events of the environment, newest first.
    List {
        /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
        #[arg(long, env = "BEAM_PROJECT")]
        project: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Send one stored event again, re-signed with a fresh timestamp.
    Replay {
        /// The event id (from `beam webhook list`).
        id: i64,
        /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
        #[arg(long, env = "BEAM_PROJECT")]
        project: Option<String>,
        /// Where to POST it.
        #[arg(long, required = true)]
        forward: String,
        /// Accept any certificate from an https forward URL.
        #[arg(long)]
        insecure_upstream: bool,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print your local signing secret: configure your app's webhook secret
    /// with it (it never leaves this machine).
    Secret,
}

/// `beam projects` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// List project environments.
    List {
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a project environment (and the project) if missing.
    Create {
        /// PROJECT/ENVIRONMENT, e.g. shop/production.
        name: String,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List the agent tokens of PROJECT/ENVIRONMENT with when each was last
    /// used, or revoke one (`… tokens shop/production revoke ID`; admins).
    Tokens {
        /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
        name: String,
        /// `revoke` (then the token ID): any admin may revoke any agent token.
        #[arg(value_parser = ["revoke"])]
        action: Option<String>,
        /// The token id to revoke (from the list).
        #[arg(requires = "action")]
        id: Option<i64>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Create an agent token for PROJECT/ENVIRONMENT (shown once; give it to
    /// `beam agent` as BEAM_TOKEN).
    Token {
        /// PROJECT/ENVIRONMENT [default: `project` in beam.toml].
        name: String,
        /// What it is for (e.g. the host).
        #[arg(long)]
        description: Option<String>,
        /// Where the server is.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// `beam agent` options. The agent token comes from BEAM_TOKEN.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// PROJECT/ENVIRONMENT this agent publishes for.
    #[arg(long, env = "BEAM_PROJECT")]
    pub project: String,
    /// Service name for lines that do not name one.
    #[arg(long, env = "BEAM_SERVICE")]
    pub service: Option<String>,
    /// This replica's name among the environment's agents, shown by `beam
    /// logs` and `beam health` (default: the host name). A second agent with
    /// the same name replaces the first.
    #[arg(long, env = "BEAM_INSTANCE", value_name = "NAME")]
    pub instance: Option<String>,
    /// Also mask e-mail addresses in log lines before they leave this machine.
    #[arg(long, env = "BEAM_MASK_PII")]
    pub mask_pii: bool,
    /// Most log entries kept in memory.
    #[arg(long, env = "BEAM_LOG_BUFFER_LINES", default_value_t = 100_000)]
    pub buffer_lines: usize,
    /// Most bytes of log entries kept in memory.
    #[arg(long, env = "BEAM_LOG_BUFFER_SIZE", default_value = "64M", value_parser = parse_size)]
    pub buffer_size: u64,
    /// How long log entries are kept, from receipt.
    #[arg(long, env = "BEAM_LOG_RETENTION", default_value = "1h", value_parser = parse_duration)]
    pub retention: Duration,
    /// Also follow this log file (rotation and truncation included). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub tail_file: Vec<PathBuf>,
    /// Serve `POST /ingest/logs` (NDJSON) and `POST /ingest/webhooks/PROVIDER`
    /// on this local address, for apps that ship logs or forward webhooks.
    #[arg(long, env = "BEAM_AGENT_LISTEN", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Feature flags file (TOML or JSON with a `flags` table) for `beam flags`.
    #[arg(long, env = "BEAM_FLAGS_FILE", value_name = "PATH")]
    pub flags_file: Option<PathBuf>,
    /// Environment variables with this prefix are flags (`FEATURE_` makes
    /// `FEATURE_NEW_CHECKOUT=on` the flag `new_checkout`).
    #[arg(long, env = "BEAM_FLAGS_ENV_PREFIX", value_name = "PREFIX")]
    pub flags_env_prefix: Option<String>,
    /// Variable names `beam env check` may compare (`*` wildcards; repeatable).
    /// Without it, none: the operator names what developers may compare.
    #[arg(long, value_name = "PATTERN")]
    pub env_allow: Vec<String>,
    /// Variable names never compared (`*` wildcards; repeatable), besides BEAM_*
    /// and the variables named by --database-env and --webhook-secret.
    #[arg(long, value_name = "PATTERN")]
    pub env_deny: Vec<String>,
    /// The environment variable holding the production database URL
    /// (`postgres://…`, `mysql://…`/`mariadb://…` or `sqlite://…`), probed by
    /// `beam health` and read by `beam sync` (the URL itself never goes in argv).
    #[arg(long, env = "BEAM_DATABASE_ENV", value_name = "VAR")]
    pub database_env: Option<String>,
    /// Sanitization policy file for `beam sync` (needs --database-env); the
    /// pseudonym key comes from the variable named by --sync-key-env.
    #[arg(
        long,
        env = "BEAM_SYNC_POLICY",
        value_name = "PATH",
        requires = "database_env"
    )]
    pub sync_policy: Option<PathBuf>,
    /// The environment variable holding the pseudonym key (keep it stable:
    /// the same key gives the same pseudonyms across runs).
    #[arg(
        long,
        env = "BEAM_SYNC_KEY_ENV",
        default_value = "BEAM_SYNC_KEY",
        value_name = "VAR"
    )]
    pub sync_key_env: String,
    /// Most connections the agent opens to the production database (sync and
    /// health share them).
    #[arg(long, env = "BEAM_DB_MAX_CONNECTIONS", default_value_t = 4)]
    pub db_max_connections: u32,
    /// Longest one statement may run on the production database (a sync's
    /// whole stream included); longer ones are cancelled.
    #[arg(long, env = "BEAM_DB_STATEMENT_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub db_statement_timeout: Duration,
    /// Most syncs served at once; more callers get 429 and retry.
    #[arg(long, env = "BEAM_DB_MAX_SYNCS", default_value_t = 2)]
    pub db_max_syncs: usize,
    /// Also mask log fields with this name (case-insensitive, matched inside
    /// longer names too), besides the built-in list. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub mask_field: Vec<String>,
    /// The app's own health URL, probed by `beam health`.
    #[arg(long, env = "BEAM_HEALTH_URL", value_name = "URL")]
    pub health_url: Option<String>,
    /// Verify webhooks forwarded to the agent: `stripe=ENV_VAR` names the
    /// environment variable holding that provider's signing secret. Repeatable.
    #[arg(long, value_name = "PROVIDER=ENV_VAR")]
    pub webhook_secret: Vec<String>,
    /// How the generic `hmac` provider signs:
    /// `header=X-Signature,algorithm=sha256|sha512|sha1,encoding=hex|base64,prefix=sha256=`
    /// (each part optional; hex HMAC-SHA256 in X-Signature by default).
    #[arg(long, value_name = "SPEC")]
    pub webhook_hmac: Option<String>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The app to run, after `--` (optional with --tail-file or --listen).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// `beam logs` options.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// PROJECT/ENVIRONMENT to read [default: `project` in beam.toml].
    #[arg(long, env = "BEAM_PROJECT")]
    pub project: Option<String>,
    /// That level and above: trace, debug, info, warn, error, fatal.
    #[arg(long, value_parser = parse_level)]
    pub level: Option<beam_proto::logs::Level>,
    /// Only exactly --level.
    #[arg(long, requires = "level")]
    pub only_level: bool,
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only this agent replica (its `--instance` name; default: every
    /// replica, merged in time order).
    #[arg(long, value_name = "NAME", value_parser = parse_instance)]
    pub instance: Option<String>,
    /// Only messages matching this regular expression.
    #[arg(long)]
    pub grep: Option<String>,
    /// Only entries since a time: 10m, 2h, or RFC 3339 (2026-01-31T12:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// How many past entries to show first, as `tail -n` (heroku's `--tail`
    /// means follow instead: that is `-f`, and the default here).
    #[arg(
        long,
        short = 'n',
        visible_alias = "lines",
        default_value_t = 100,
        value_name = "N"
    )]
    pub tail: usize,
    /// Keep streaming new entries, as `tail -f` (the default).
    #[arg(long, short = 'f', overrides_with = "no_follow")]
    pub follow: bool,
    /// Print the past entries and stop.
    #[arg(long)]
    pub no_follow: bool,
    /// One JSON object per line on stdout; status messages on stderr.
    #[arg(long)]
    pub json: bool,
    /// Append the stream to FILE as JSON lines instead of printing it. When
    /// FILE already holds lines, continue after the last one, so a `beam logs`
    /// that was stopped or killed picks up where the file ends: no gap, no
    /// duplicate (an unfinished last line is cut off and read again).
    #[arg(long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Where the server is.
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// An agent instance name (`--instance`).
pub fn parse_instance(s: &str) -> Result<String, String> {
    if beam_proto::valid_instance(s) {
        Ok(s.to_string())
    } else {
        Err("use 1 to 64 of A-Z a-z 0-9 . _ - (the agent's --instance)".into())
    }
}

/// Parses a log level name.
pub fn parse_level(s: &str) -> Result<beam_proto::logs::Level, String> {
    s.parse()
}

//! The `beam` command line: argument parsing, the user's config file, terminal
//! output, and the glue that starts the server or a tunnel client from the
//! libraries `beam-server` and `beam-agent`.

pub mod account_cmd;
pub mod cli;
pub mod inspect_cmd;
pub mod manage_cmd;
pub mod ndjson;
pub mod org_cmd;
pub mod parity_args;
pub mod parity_cmd;
pub mod server_cmd;
pub mod settings;
pub mod sync_cmd;
pub mod sync_into;
pub mod tunnel_cmd;
pub mod userconfig;
pub mod webhook_cmd;

//! The `beam` command line: argument definitions ([`cli`]), what each command
//! does ([`cmd`]), the user's settings and config file, the server's data
//! lock ([`datalock`]), local dotenv files ([`dotenv`]), and terminal helpers.
//! The binary (`main.rs`) parses, starts the runtime and dispatches.

pub mod cli;
pub mod cmd;
pub mod datalock;
pub mod detect;
pub mod dotenv;
pub mod ndjson;
pub mod qr;
pub mod settings;
pub mod signal;
pub mod table;
pub mod term;
pub mod userconfig;

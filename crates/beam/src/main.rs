//! The `beam` binary: parses the command line, starts the runtime and hands
//! each command to its module in `beam::cmd`.

use std::process::ExitCode;

use beam::cli::{Cli, Command, EnvCommand, LogFormat};
use beam::cmd;
use clap::Parser;

/// mimalloc instead of glibc's malloc: 6-12 % fewer CPU µs per proxied
/// request at the same idle memory (docs/decisions/0008-data-path.md). Built
/// without transparent huge pages (`no_thp`): with them its eagerly committed
/// arena made idle RSS 16 MiB larger on a machine with THP `always`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal: log files and journald get
    // plain text (and NO_COLOR is honoured).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runtime size: `BEAM_WORKER_THREADS` if set, else tokio's default (one worker per
/// core). Read here, once, because the runtime exists before any config is built.
fn worker_threads(_command: &Command) -> Option<usize> {
    std::env::var("BEAM_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for the whole process; every TLS user here is on ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads(&cli.command) {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<ExitCode> = runtime.block_on(async move {
        let done = match cli.command {
            Command::Server(args) => {
                init_tracing("info", args.log_format);
                cmd::server::run(*args).await
            }
            Command::Http(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::tunnel::run_http(args).await
            }
            Command::Dev(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::dev::run(args).await
            }
            Command::Tcp(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::tunnel::run_tcp(args).await
            }
            Command::Login(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::account::login(args).await
            }
            Command::Logout(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::account::logout(args).await
            }
            Command::List(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::manage::list(args).await
            }
            Command::Stop(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::manage::stop(args).await
            }
            Command::Pause(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::manage::pause(args, true).await
            }
            Command::Resume(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::manage::pause(args, false).await
            }
            Command::Domains(cmd) => {
                init_tracing("warn", LogFormat::Text);
                cmd::manage::domains(cmd).await
            }
            Command::Tokens(cmd) => {
                init_tracing("warn", LogFormat::Text);
                cmd::account::tokens(cmd).await
            }
            Command::Org(cmd) => {
                init_tracing("warn", LogFormat::Text);
                cmd::org::run(cmd).await
            }
            Command::Projects(cmd) => {
                init_tracing("warn", LogFormat::Text);
                cmd::projects::run(cmd).await
            }
            Command::Agent(args) => {
                init_tracing("warn", LogFormat::Text);
                // The app's exit code is the agent's.
                return cmd::agent::run(args)
                    .await
                    .map(|code| ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
            Command::Logs(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::logs::run(args).await
            }
            Command::Webhook(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::webhook::run(args).await
            }
            Command::Flags(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::flags::run(args).await
            }
            Command::Env(EnvCommand::Check(args)) => {
                init_tracing("warn", LogFormat::Text);
                let strict = args.strict;
                return cmd::env::check(args).await.map(|equal| {
                    if strict && !equal {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                });
            }
            Command::Sync(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::sync::run(args).await
            }
            Command::Connect(args) => {
                init_tracing("warn", LogFormat::Text);
                return cmd::connect::run(args).await.map(|online| {
                    if online {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                });
            }
            Command::Audit(args) => {
                init_tracing("warn", LogFormat::Text);
                cmd::audit::run(args).await
            }
            Command::Health(args) => {
                init_tracing("warn", LogFormat::Text);
                return cmd::health::run(args).await.map(|ok| {
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                });
            }
        };
        done.map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", beam::term::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

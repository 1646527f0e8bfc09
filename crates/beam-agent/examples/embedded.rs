//! An app that embeds the production agent instead of running under
//! `beam agent`: its `tracing` events reach `beam logs` with their fields
//! (no stdout parsing), and it answers `beam health` and `beam env check`.
//!
//! ```sh
//! beam projects create shop/production && beam projects token shop/production
//! BEAM_SERVER=127.0.0.1:8081 BEAM_FINGERPRINT=sha256:… BEAM_TOKEN=beam_… \
//!   cargo run -p beam-agent --example embedded -- shop/production
//! beam logs --project shop/production      # on a laptop: "order placed {"order_id":1,…}"
//! ```
//!
//! `BEAM_FINGERPRINT` is only for a self-hosted server's self-signed
//! certificate (`beam server` prints it); without it the certificate is
//! checked against the web PKI.

use std::time::Duration;

use beam_agent::Agent;
use beam_agent::embed::AgentError;
use beam_proto::Secret;
use tracing_subscriber::layer::SubscriberExt;

/// Where the agent publishes.
pub struct Settings {
    /// The server's tunnel address.
    pub server: String,
    /// The environment's agent token.
    pub token: Secret,
    /// The server certificate's fingerprint, for a self-signed one.
    pub fingerprint: Option<String>,
    /// `PROJECT/ENVIRONMENT`.
    pub project: String,
}

/// The agent this app embeds: logs (from the layer), health and env check.
pub fn agent(s: Settings) -> Result<Agent, AgentError> {
    let mut b = Agent::builder()
        .server(s.server)
        .token(s.token)
        .project(s.project)
        .instance("embedded-1")
        .service("checkout")
        .env_allow("PORT");
    if let Some(fp) = s.fingerprint {
        b = b.fingerprint(fp);
    }
    b.build()
}

/// The app's own work: an order every `every`, logged with its fields, `n`
/// times (or forever with `None`).
pub async fn app(every: Duration, n: Option<u64>) {
    let mut order = 0u64;
    while n.is_none_or(|n| order < n) {
        order += 1;
        tracing::info!(
            order_id = order,
            amount_cents = 1999,
            currency = "eur",
            "order placed"
        );
        if order.is_multiple_of(3) {
            tracing::warn!(
                order_id = order,
                card_token = "tok_live_4242",
                "card declined"
            );
        }
        tokio::time::sleep(every).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let settings = Settings {
        server: var("BEAM_SERVER")?,
        token: Secret::new(var("BEAM_TOKEN")?),
        fingerprint: std::env::var("BEAM_FINGERPRINT").ok(),
        project: std::env::args()
            .nth(1)
            .ok_or("usage: embedded PROJECT/ENVIRONMENT")?,
    };
    let agent = agent(settings)?;
    // The app keeps its own output (stderr here) and also publishes.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .with(agent.layer()),
    )?;
    let stop = tokio_util::sync::CancellationToken::new();
    let publishing = tokio::spawn(agent.run(stop.clone().cancelled_owned()));
    tokio::select! {
        () = app(Duration::from_secs(1), None) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    stop.cancel();
    publishing.await??;
    Ok(())
}

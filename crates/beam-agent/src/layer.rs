//! A `tracing` layer that publishes the app's events to `beam logs` with
//! their structured fields, without printing and parsing them: each event
//! becomes one log entry (level, message, the fields as context, the target),
//! masked like every other line before it is stored.

use std::sync::Arc;

use beam_proto::logs::{Level, Source};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::logs::LogBuffer;
use crate::logs::parse::Parsed;

/// Event targets of the agent's own transport. Publishing them would feed the
/// connection that carries them (a debug event per line sent), so they are
/// left to the app's other layers.
const OWN_TARGETS: &[&str] = &[
    "beam_",
    "h2",
    "hyper",
    "rustls",
    "tokio_rustls",
    "tower",
    "sqlx",
];

/// The layer; see the module docs. Made by [`crate::Agent::layer`].
#[derive(Debug, Clone)]
pub struct LogLayer {
    buffer: Arc<LogBuffer>,
}

impl LogLayer {
    /// A layer publishing into `buffer`.
    pub fn new(buffer: Arc<LogBuffer>) -> Self {
        Self { buffer }
    }
}

/// Collects an event's message and fields.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    context: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.context.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

fn level_of(l: &tracing::Level) -> Level {
    match *l {
        tracing::Level::TRACE => Level::Trace,
        tracing::Level::DEBUG => Level::Debug,
        tracing::Level::INFO => Level::Info,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::ERROR => Level::Error,
    }
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if OWN_TARGETS.iter().any(|t| meta.target().starts_with(t)) {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        f.context
            .insert("target".into(), Value::String(meta.target().to_string()));
        self.buffer.push(
            Parsed {
                level: level_of(meta.level()),
                message: f.message.unwrap_or_default(),
                service: None,
                context: f.context,
            },
            Source::Tracing,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{Limits, Masker};
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_become_entries_with_their_fields_masked() {
        let buffer = Arc::new(LogBuffer::new(
            Limits::default(),
            Masker::new(false),
            Some("web".into()),
        ));
        let subscriber = tracing_subscriber::registry().with(LogLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            // An app's events (this test module's own target starts with beam_).
            tracing::warn!(target: "shop::checkout", order_id = 42, paid = true, amount = 9.5, password = "hunter22", "card declined");
            tracing::info!(target: "beam_client::proxy", "the transport's own event");
            tracing::error!(target: "shop::files", error = %std::io::Error::other("disk full"), "write failed");
        });
        assert_eq!(buffer.len(), 2, "the transport's events are not published");
        let q = beam_proto::logs::LogQuery {
            follow: false,
            ..Default::default()
        };
        let mut reader = buffer.reader(&q).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let first = rt.block_on(reader.next()).unwrap();
        let beam_proto::logs::LogLine::Entry(e) = first else {
            panic!("{first:?}");
        };
        assert_eq!(
            (e.level, e.message.as_str()),
            (Level::Warn, "card declined")
        );
        assert_eq!(e.service.as_deref(), Some("web"));
        assert_eq!(e.source, Source::Tracing);
        assert_eq!(e.context["order_id"], 42);
        assert_eq!(e.context["paid"], true);
        assert_eq!(e.context["amount"], 9.5);
        assert_eq!(e.context["password"], "****", "masked by name");
        assert_eq!(e.context["target"], "shop::checkout");
        let beam_proto::logs::LogLine::Entry(e) = rt.block_on(reader.next()).unwrap() else {
            panic!()
        };
        assert_eq!(e.level, Level::Error);
        assert_eq!(e.context["error"], "disk full");
    }
}

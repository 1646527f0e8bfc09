//! Webhook sources (which production signing secret verifies which
//! environment's provider) and the hub that wakes developer streams when an
//! event is stored.
//!
//! Secrets come from a TOML file the operator keeps next to the server's TLS
//! key (`beam server --webhook-sources FILE`), never from the API or argv, so
//! they sit in one place with file permissions and are never stored in the
//! database. Each source names its secret inline, by environment variable or by
//! file:
//!
//! ```toml
//! [[source]]
//! org = 1
//! project = "shop"
//! environment = "production"
//! provider = "stripe"
//! secret_env = "STRIPE_WEBHOOK_SECRET"
//!
//! [[source]]              # a sender beam has no name for: describe its scheme
//! org = 1
//! project = "shop"
//! environment = "production"
//! provider = "hmac"
//! secret_env = "ACME_WEBHOOK_SECRET"
//! header = "X-Acme-Signature"   # default X-Signature
//! algorithm = "sha256"          # sha256 | sha512 | sha1
//! encoding = "hex"              # hex | base64
//! prefix = "sha256="            # default none
//!
//! [[source]]              # Twilio signs the URL it called; name it when a proxy
//! org = 1                 # in front of beam rewrites it
//! project = "shop"
//! environment = "production"
//! provider = "twilio"
//! secret_env = "TWILIO_AUTH_TOKEN"
//! url = "https://hooks.example.com/twilio/sms"
//!
//! [[source]]              # PayPal cannot be verified offline: say so explicitly
//! org = 1
//! project = "shop"
//! environment = "production"
//! provider = "paypal"
//! verify = false
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use beam_proto::Secret;
use beam_proto::webhook::{HmacScheme, Provider};
use serde::Deserialize;

/// Why the sources file could not be used. Messages name the entry, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    source: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    org: i64,
    project: String,
    environment: String,
    provider: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<String>,
    #[serde(default = "yes")]
    verify: bool,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    algorithm: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

fn yes() -> bool {
    true
}

/// How one source's events are checked.
#[derive(Debug, Clone)]
pub enum Check {
    /// Verify with the production signing secret.
    Secret(Secret),
    /// Accept unverified (PayPal, or an operator's explicit choice).
    Unverified,
}

/// `(org, project, environment, provider)`.
type Key = (i64, String, String, Provider);

/// One configured source.
#[derive(Debug, Clone)]
pub struct Source {
    /// How its events are checked.
    pub check: Check,
    /// The generic HMAC scheme (provider `hmac` only).
    pub hmac: Option<HmacScheme>,
    /// The URL Twilio was told to call, when a proxy in front of beam
    /// rewrites it (provider `twilio` only).
    pub url: Option<String>,
}

/// The configured webhook sources. Without an entry, a provider's public
/// endpoint refuses events: unverified events would otherwise arrive on
/// developers' laptops re-signed as if genuine.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    map: HashMap<Key, Source>,
}

impl Sources {
    /// Loads and checks a sources file, resolving `secret_env`/`secret_file`.
    pub fn load(path: &Path) -> Result<Self, SourcesError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SourcesError::Io {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, |name| std::env::var(name).ok()).map_err(|message| {
            SourcesError::Invalid {
                path: p.clone(),
                message,
            }
        })
    }

    /// Parses sources text; `env` looks up `secret_env` names.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut map = HashMap::new();
        for (i, e) in file.source.into_iter().enumerate() {
            let at = format!(
                "source {} ({}/{}/{})",
                i + 1,
                e.project,
                e.environment,
                e.provider
            );
            let provider = Provider::parse(&e.provider)
                .ok_or_else(|| format!("{at}: unknown provider ({})", Provider::NAMES))?;
            let given = [&e.secret, &e.secret_env, &e.secret_file]
                .iter()
                .filter(|s| s.is_some())
                .count();
            let check = match (e.verify, given) {
                (false, 0) => Check::Unverified,
                (false, _) => return Err(format!("{at}: verify = false takes no secret")),
                (true, 0) if provider == Provider::Paypal => {
                    return Err(format!(
                        "{at}: PayPal signatures cannot be verified offline; set verify = false to forward them unverified"
                    ));
                }
                (true, 0) => {
                    return Err(format!(
                        "{at}: give secret, secret_env or secret_file (or verify = false)"
                    ));
                }
                (true, 1) => {
                    let secret = if let Some(s) = e.secret {
                        s
                    } else if let Some(name) = e.secret_env {
                        env(&name).ok_or_else(|| {
                            format!("{at}: environment variable {name} is not set")
                        })?
                    } else if let Some(file) = e.secret_file {
                        std::fs::read_to_string(&file)
                            .map_err(|err| format!("{at}: {file}: {err}"))?
                            .trim()
                            .to_string()
                    } else {
                        unreachable!("one of the three is set")
                    };
                    if secret.is_empty() {
                        return Err(format!("{at}: the secret is empty"));
                    }
                    beam_proto::webhook::check_secret(provider, &secret)
                        .map_err(|e| format!("{at}: {e}"))?;
                    Check::Secret(Secret::new(secret))
                }
                (true, _) => {
                    return Err(format!(
                        "{at}: give only one of secret, secret_env, secret_file"
                    ));
                }
            };
            let scheme_parts = [
                e.header.as_ref().map(|v| format!("header={v}")),
                e.algorithm.as_ref().map(|v| format!("algorithm={v}")),
                e.encoding.as_ref().map(|v| format!("encoding={v}")),
                e.prefix.as_ref().map(|v| format!("prefix={v}")),
            ];
            let hmac = if provider == Provider::Hmac {
                let spec: Vec<String> = scheme_parts.into_iter().flatten().collect();
                Some(HmacScheme::parse(&spec.join(",")).map_err(|m| format!("{at}: {m}"))?)
            } else if scheme_parts.iter().any(Option::is_some) {
                return Err(format!(
                    "{at}: header, algorithm, encoding and prefix describe provider = \"hmac\" only"
                ));
            } else {
                None
            };
            if e.url.is_some() && provider != Provider::Twilio {
                return Err(format!("{at}: url is for provider = \"twilio\" only"));
            }
            if let Some(u) = &e.url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err(format!(
                    "{at}: url must be the full http(s) URL Twilio calls"
                ));
            }
            let key = (e.org, e.project, e.environment, provider);
            let source = Source {
                check,
                hmac,
                url: e.url,
            };
            if map.insert(key, source).is_some() {
                return Err(format!("{at}: configured twice"));
            }
        }
        Ok(Self { map })
    }

    /// How events for this source are checked; `None` when not configured.
    pub fn get(&self, org: i64, project: &str, env: &str, provider: Provider) -> Option<&Check> {
        self.source(org, project, env, provider).map(|s| &s.check)
    }

    /// The whole source; `None` when not configured.
    pub fn source(
        &self,
        org: i64,
        project: &str,
        env: &str,
        provider: Provider,
    ) -> Option<&Source> {
        self.map
            .get(&(org, project.to_string(), env.to_string(), provider))
    }

    /// Adds a source (for embedding and tests).
    pub fn insert(&mut self, org: i64, project: &str, env: &str, provider: Provider, check: Check) {
        self.insert_source(
            org,
            project,
            env,
            provider,
            Source {
                check,
                hmac: None,
                url: None,
            },
        );
    }

    /// Adds a source with its scheme details (for embedding and tests).
    pub fn insert_source(
        &mut self,
        org: i64,
        project: &str,
        env: &str,
        provider: Provider,
        source: Source,
    ) {
        self.map
            .insert((org, project.into(), env.into(), provider), source);
    }

    /// Number of configured sources.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Wakes developer streams when an event is stored, paces retention purges,
/// and rate-limits senders of unverified sources.
pub(crate) struct Hub {
    stored: tokio::sync::watch::Sender<u64>,
    last_purge: AtomicI64,
    unverified: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// Events per second one address may post to unverified sources (burst 100).
const UNVERIFIED_PER_SEC: u32 = 20;

impl Default for Hub {
    fn default() -> Self {
        let quota = governor::Quota::per_second(
            std::num::NonZeroU32::new(UNVERIFIED_PER_SEC).unwrap_or(std::num::NonZeroU32::MIN),
        )
        .allow_burst(std::num::NonZeroU32::new(100).unwrap_or(std::num::NonZeroU32::MIN));
        Self {
            stored: tokio::sync::watch::channel(0).0,
            last_purge: AtomicI64::new(0),
            unverified: governor::RateLimiter::keyed(quota),
        }
    }
}

impl Hub {
    /// Admits one event from `ip` to an unverified source, or says how many
    /// seconds to wait.
    pub(crate) fn admit_unverified(&self, ip: std::net::IpAddr) -> Result<(), u64> {
        use governor::clock::{Clock, DefaultClock};
        self.unverified.check_key(&ip).map_err(|nu| {
            nu.wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }

    /// Tells waiting streams on this node that something was stored (here,
    /// or on another node: see `notify_loop`). Streams also look every
    /// `webhook_poll`, in case a notification was lost.
    pub(crate) fn stored(&self) {
        self.stored.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes on [`stored`](Self::stored).
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.stored.subscribe()
    }

    /// True at most once a minute: time to purge expired events.
    pub(crate) fn purge_due(&self, now_ms: i64) -> bool {
        let last = self.last_purge.load(Ordering::Relaxed);
        let due = now_ms - last >= 60_000
            && self
                .last_purge
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due {
            // Forget addresses whose quota is full again, so the map stays small.
            self.unverified.retain_recent();
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_resolve_secrets_and_refuse_unsafe_entries() {
        let ok = r#"
            [[source]]
            org = 1
            project = "shop"
            environment = "production"
            provider = "stripe"
            secret_env = "STRIPE_SECRET"
            [[source]]
            org = 1
            project = "shop"
            environment = "production"
            provider = "paypal"
            verify = false
        "#;
        let s = Sources::parse(ok, |n| (n == "STRIPE_SECRET").then(|| "whsec_x".into())).unwrap();
        assert_eq!(s.len(), 2);
        match s.get(1, "shop", "production", Provider::Stripe) {
            Some(Check::Secret(x)) => assert_eq!(x.expose(), "whsec_x"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.get(1, "shop", "production", Provider::Paypal),
            Some(Check::Unverified)
        ));
        assert!(s.get(2, "shop", "production", Provider::Stripe).is_none());

        let entry = |extra: &str, provider: &str| {
            format!(
                "[[source]]\norg = 1\nproject = \"p\"\nenvironment = \"e\"\nprovider = \"{provider}\"\n{extra}\n"
            )
        };
        for (text, want) in [
            (
                entry("", "stripe"),
                "give secret, secret_env or secret_file",
            ),
            (entry("", "paypal"), "cannot be verified offline"),
            (
                entry("secret = \"a\"\nsecret_env = \"B\"", "stripe"),
                "only one",
            ),
            (entry("secret_env = \"NOPE\"", "stripe"), "NOPE is not set"),
            (entry("secret = \"a\"", "mailgun"), "unknown provider"),
            (
                entry("secret = \"whsec_!!\"", "svix"),
                "not a valid svix secret",
            ),
            (
                entry("secret = \"a\"", "paypal"),
                "cannot be verified offline",
            ),
            (
                entry("verify = false\nsecret = \"a\"", "svix"),
                "takes no secret",
            ),
            (entry("sekret = \"a\"", "svix"), "unknown field"),
            (
                entry("secret = \"a\"\nheader = \"X-Sig\"", "github"),
                "provider = \"hmac\" only",
            ),
            (
                entry("secret = \"a\"\nalgorithm = \"md5\"", "hmac"),
                "not sha256, sha512 or sha1",
            ),
            (
                entry("secret = \"a\"\nurl = \"https://x/y\"", "stripe"),
                "\"twilio\" only",
            ),
            (
                entry("secret = \"a\"\nurl = \"ftp://x/y\"", "twilio"),
                "full http(s) URL",
            ),
            (
                format!(
                    "{}{}",
                    entry("secret = \"a\"", "custom"),
                    entry("secret = \"b\"", "github")
                ),
                "configured twice",
            ),
        ] {
            let err = Sources::parse(&text, |_| None).unwrap_err();
            assert!(err.contains(want), "{err} / {want}");
            assert!(!err.contains("\"a\""), "no secret in messages: {err}");
        }
        let hmac = entry(
            "secret = \"a\"\nheader = \"X-Acme-Sig\"\nencoding = \"base64\"\nprefix = \"v1=\"",
            "hmac",
        );
        let s = Sources::parse(&hmac, |_| None).unwrap();
        let src = s.source(1, "p", "e", Provider::Hmac).unwrap();
        let scheme = src.hmac.as_ref().unwrap();
        assert_eq!(
            (
                scheme.header.as_str(),
                scheme.encoding,
                scheme.prefix.as_str()
            ),
            (
                "X-Acme-Sig",
                beam_proto::webhook::TagEncoding::Base64,
                "v1="
            )
        );
    }
}

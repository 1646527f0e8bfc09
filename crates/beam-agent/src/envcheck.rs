//! `beam env check` on the agent: compares the laptop's environment with
//! production's without any production value leaving production.
//!
//! The CLI picks a fresh 32-byte nonce per request and sends, per variable
//! name, `HMAC-SHA256(nonce, local value)` (or nothing when the variable is not
//! set locally). The agent computes the same over its own value and answers
//! only a verdict per name. Fingerprints on the wire are keyed by a nonce used
//! once, so they cannot be compared across requests or looked up in a table.
//! Names outside the allowlist, or on the denylist (the agent's own secrets),
//! are refused.

use std::collections::BTreeMap;

use ring::hmac;
use serde::{Deserialize, Serialize};

/// Names the agent never compares, whatever the allowlist says.
pub const ALWAYS_DENIED: [&str; 1] = ["BEAM_*"];

/// A comparison request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// 32 random bytes, hex, fresh for this request.
    pub nonce: String,
    /// Name → hex HMAC of the local value, or `null` when unset locally.
    pub vars: BTreeMap<String, Option<String>>,
}

/// The verdict for one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Same value on both sides.
    Equal,
    /// Set on both sides, different values.
    Different,
    /// Set locally, not in production.
    MissingInProduction,
    /// Set in production, not locally.
    MissingLocally,
    /// Set on neither side.
    MissingBoth,
    /// The agent does not compare this name (allowlist/denylist).
    Refused,
}

/// Which names may be compared.
#[derive(Debug, Clone, Default)]
pub struct EnvPolicy {
    /// Glob patterns (`*` wildcard) of names that may be compared; empty =
    /// none. Equality is an oracle for guessable values, so the operator
    /// names what developers may compare.
    pub allow: Vec<String>,
    /// Extra glob patterns never compared (added to [`ALWAYS_DENIED`]).
    pub deny: Vec<String>,
}

impl EnvPolicy {
    /// Whether `name` may be compared.
    pub fn allows(&self, name: &str) -> bool {
        let denied = ALWAYS_DENIED
            .iter()
            .map(|s| s.to_string())
            .chain(self.deny.iter().cloned())
            .collect::<Vec<_>>();
        if beam_proto::webhook::type_matches(&denied, Some(name)) {
            return false;
        }
        !self.allow.is_empty() && beam_proto::webhook::type_matches(&self.allow, Some(name))
    }
}

/// The keyed fingerprint of a value under `nonce`.
pub fn fingerprint(nonce: &[u8], value: &str) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, nonce), value.as_bytes());
    beam_proto::hex::encode(tag.as_ref())
}

/// Most names in one request.
pub const MAX_NAMES: usize = 500;

/// Compares `req` with this process's environment (looked up by `env`).
pub fn check(
    req: &CheckRequest,
    policy: &EnvPolicy,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Verdict>, String> {
    let nonce = beam_proto::hex::decode(&req.nonce)
        .filter(|n| n.len() >= 16)
        .ok_or_else(|| {
            "nonce must be at least 16 random bytes, hex (a fresh one per request)".to_string()
        })?;
    if req.vars.len() > MAX_NAMES {
        return Err(format!("at most {MAX_NAMES} names per request"));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, &nonce);
    let mut out = BTreeMap::new();
    for (name, local) in &req.vars {
        if !policy.allows(name) {
            out.insert(name.clone(), Verdict::Refused);
            continue;
        }
        let prod = env(name);
        let verdict = match (local, prod) {
            (None, None) => Verdict::MissingBoth,
            (None, Some(_)) => Verdict::MissingLocally,
            (Some(_), None) => Verdict::MissingInProduction,
            (Some(fp), Some(v)) => match beam_proto::hex::decode(fp) {
                // Constant-time comparison of the tags.
                Some(tag) if hmac::verify(&key, v.as_bytes(), &tag).is_ok() => Verdict::Equal,
                _ => Verdict::Different,
            },
        };
        out.insert(name.clone(), verdict);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_only_and_policy() {
        let nonce = [9u8; 32];
        let hexn: String = beam_proto::hex::encode(&nonce);
        let prod = |n: &str| match n {
            "PORT" => Some("3000".to_string()),
            "API_URL" => Some("https://prod".to_string()),
            "ONLY_PROD" => Some("x".to_string()),
            "BEAM_TOKEN" => Some("beam_secret".to_string()),
            _ => None,
        };
        let mut vars = BTreeMap::new();
        vars.insert("PORT".into(), Some(fingerprint(&nonce, "3000")));
        vars.insert(
            "API_URL".into(),
            Some(fingerprint(&nonce, "http://localhost")),
        );
        vars.insert("ONLY_PROD".into(), None);
        vars.insert("ONLY_LOCAL".into(), Some(fingerprint(&nonce, "y")));
        vars.insert("NOWHERE".into(), None);
        vars.insert(
            "BEAM_TOKEN".into(),
            Some(fingerprint(&nonce, "beam_secret")),
        );
        let req = CheckRequest {
            nonce: hexn.clone(),
            vars,
        };
        // Nothing is compared until the operator names what may be.
        let r = check(&req, &EnvPolicy::default(), prod).unwrap();
        assert!(r.values().all(|v| *v == Verdict::Refused), "{r:?}");
        let any = EnvPolicy {
            allow: vec!["*".into()],
            deny: vec![],
        };
        let r = check(&req, &any, prod).unwrap();
        assert_eq!(r["PORT"], Verdict::Equal);
        assert_eq!(r["API_URL"], Verdict::Different);
        assert_eq!(r["ONLY_PROD"], Verdict::MissingLocally);
        assert_eq!(r["ONLY_LOCAL"], Verdict::MissingInProduction);
        assert_eq!(r["NOWHERE"], Verdict::MissingBoth);
        assert_eq!(r["BEAM_TOKEN"], Verdict::Refused, "the agent's own secrets");
        let strict = EnvPolicy {
            allow: vec!["PORT".into()],
            deny: vec![],
        };
        let r = check(&req, &strict, prod).unwrap();
        assert_eq!(r["API_URL"], Verdict::Refused);
        assert_eq!(r["PORT"], Verdict::Equal);
        // A different nonce gives a different fingerprint of the same value.
        assert_ne!(fingerprint(&[1; 32], "3000"), fingerprint(&nonce, "3000"));
        let bad = CheckRequest {
            nonce: "abcd".into(),
            vars: BTreeMap::new(),
        };
        assert!(
            check(&bad, &EnvPolicy::default(), prod)
                .unwrap_err()
                .contains("nonce")
        );
    }
}

//! Feature flags the agent reads in production (a TOML or JSON file, and/or
//! environment variables with a prefix) and evaluates for `beam flags`.
//!
//! # Flag keys
//! A flag has one key whichever source names it: [`normalize_key`] lowercases
//! it and turns every run of `_`, `-`, `.` or spaces into one `-`. The file's
//! `[flags.dark-mode]` and the variable `FEATURE_DARK_MODE` are the same flag
//! `dark-mode`, so the variable overrides the file; `beam flags eval DARK_MODE`
//! finds it too. The rollout hash below uses the normalised key.
//!
//! # Rollout hash (stable across languages)
//! `bucket(key, user)` = the first 4 bytes of `SHA-256("{key}:{user}")` as a
//! big-endian `u32`, modulo 10,000. A flag with `rollout = R` (percent, 0-100,
//! two decimals) is on for a user when `bucket < R × 100`. A variant is picked
//! with `SHA-256("{key}:variant:{user}")` the same way, modulo the sum of the
//! variant weights, walking the variants in name order. Test vector:
//! `bucket("new-checkout", "user-42") = 6800`
//! (`printf 'new-checkout:user-42' | sha256sum` starts `50a89a30`: 1,353,226,800 mod
//! 10,000).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    /// The flag's key (from the file's table name or the variable name).
    #[serde(default)]
    pub key: String,
    /// Master switch.
    #[serde(default)]
    pub enabled: bool,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The environment it applies to, when the file names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Percentage of users it is on for (0-100); `None` = everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<f64>,
    /// Variants and their weights.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<String, u32>,
}

/// One flag's value for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The flag.
    pub key: String,
    /// On or off for this user.
    pub enabled: bool,
    /// The chosen variant, if the flag has variants and is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The user's rollout bucket (0-9999), when a user was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<u32>,
    /// Why: `disabled`, `on`, `in_rollout`, `outside_rollout`, `needs_user`.
    pub reason: String,
}

/// Why flags could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file is not valid.
    #[error("{0}: {1}")]
    Invalid(String, String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    flags: BTreeMap<String, Flag>,
}

/// Where flags come from; read again on every request, so edits show at once.
#[derive(Debug, Clone, Default)]
pub struct FlagSource {
    /// A TOML (`.toml`) or JSON file with a `flags` table.
    pub file: Option<PathBuf>,
    /// Environment variables with this prefix are flags: `FEATURE_NEW_CHECKOUT=on`
    /// → `new_checkout`; values `on/off/true/false/1/0`, or `25%` for a rollout.
    pub env_prefix: Option<String>,
}

impl FlagSource {
    /// Whether any source is configured.
    pub fn is_configured(&self) -> bool {
        self.file.is_some() || self.env_prefix.is_some()
    }

    /// All flags, by key; variables override the file.
    pub fn load(&self) -> Result<BTreeMap<String, Flag>, FlagError> {
        let mut out = match &self.file {
            Some(path) => load_file(path)?,
            None => BTreeMap::new(),
        };
        if let Some(prefix) = &self.env_prefix {
            for (name, value) in std::env::vars() {
                let Some(rest) = name.strip_prefix(prefix.as_str()) else {
                    continue;
                };
                if rest.is_empty() {
                    continue;
                }
                let key = normalize_key(rest);
                let v = value.trim().to_ascii_lowercase();
                let (enabled, rollout) = match v.as_str() {
                    "on" | "true" | "1" | "yes" => (true, None),
                    "off" | "false" | "0" | "no" | "" => (false, None),
                    pct if pct.ends_with('%') => match pct.trim_end_matches('%').parse::<f64>() {
                        Ok(p) if (0.0..=100.0).contains(&p) => (true, Some(p)),
                        _ => continue,
                    },
                    _ => continue,
                };
                let flag = out.entry(key.clone()).or_insert_with(|| Flag {
                    key,
                    enabled,
                    description: None,
                    environment: None,
                    rollout,
                    variants: BTreeMap::new(),
                });
                flag.enabled = enabled;
                flag.rollout = rollout.or(flag.rollout);
            }
        }
        Ok(out)
    }
}

fn load_file(path: &Path) -> Result<BTreeMap<String, Flag>, FlagError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| FlagError::Io(name.clone(), e))?;
    let json = path.extension().is_some_and(|e| e == "json");
    parse_file(name, &text, json)
}

/// Parses a flags file's text (TOML, or JSON when `json`); `name` is how
/// errors refer to the file.
pub fn parse_file(
    name: String,
    text: &str,
    json: bool,
) -> Result<BTreeMap<String, Flag>, FlagError> {
    let file: File = if json {
        serde_json::from_str(text).map_err(|e| FlagError::Invalid(name.clone(), e.to_string()))?
    } else {
        toml::from_str(text).map_err(|e| FlagError::Invalid(name.clone(), e.message().into()))?
    };
    let mut out: BTreeMap<String, Flag> = BTreeMap::new();
    for (written, mut flag) in file.flags {
        let key = normalize_key(&written);
        if key.is_empty() {
            return Err(FlagError::Invalid(
                name,
                format!("flag '{written}': a key needs a letter or digit"),
            ));
        }
        if let Some(other) = out.get(&key) {
            return Err(FlagError::Invalid(
                name,
                format!(
                    "flags '{}' and '{written}' are the same flag '{key}' (keys ignore case and -, _, .)",
                    other.key
                ),
            ));
        }
        if let Some(r) = flag.rollout
            && !(0.0..=100.0).contains(&r)
        {
            return Err(FlagError::Invalid(
                name,
                format!("flag {key}: rollout must be 0-100"),
            ));
        }
        if !flag.variants.is_empty() && flag.variants.values().all(|w| *w == 0) {
            return Err(FlagError::Invalid(
                name,
                format!("flag {key}: variant weights are all 0"),
            ));
        }
        // Remember the spelling for the duplicate message; the key is set below.
        flag.key = written;
        out.insert(key, flag);
    }
    for (key, flag) in &mut out {
        flag.key = key.clone();
    }
    Ok(out)
}

/// A flag's one key, whichever source names it (see the module docs):
/// `ENABLE_PAYPAL`, `enable-paypal` and `Enable.PayPal` are all `enable-paypal`.
pub fn normalize_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.trim().chars() {
        if matches!(c, '_' | '-' | '.' | ' ' | '\t') {
            if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

fn hash32(text: &str) -> u32 {
    let d = Sha256::digest(text.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The user's rollout bucket for a flag, 0-9999 (see the module docs).
pub fn bucket(key: &str, user: &str) -> u32 {
    hash32(&format!("{key}:{user}")) % 10_000
}

/// Evaluates `flag` for `user`.
pub fn evaluate(flag: &Flag, user: Option<&str>) -> Evaluation {
    let b = user.map(|u| bucket(&flag.key, u));
    let (enabled, reason) = if !flag.enabled {
        (false, "disabled")
    } else {
        match (flag.rollout, b) {
            (None, _) => (true, "on"),
            (Some(r), _) if r >= 100.0 => (true, "on"),
            (Some(_), None) => (false, "needs_user"),
            (Some(r), Some(b)) if f64::from(b) < (r * 100.0).round() => (true, "in_rollout"),
            (Some(_), Some(_)) => (false, "outside_rollout"),
        }
    };
    let variant = match (enabled, user) {
        (true, Some(u)) if !flag.variants.is_empty() => {
            let total: u32 = flag.variants.values().sum();
            let mut pick = hash32(&format!("{}:variant:{u}", flag.key)) % total.max(1);
            flag.variants
                .iter()
                .find(|(_, w)| {
                    if pick < **w {
                        true
                    } else {
                        pick -= **w;
                        false
                    }
                })
                .map(|(name, _)| name.clone())
        }
        _ => None,
    };
    Evaluation {
        key: flag.key.clone(),
        enabled,
        variant,
        bucket: b,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_test_vector_and_stable_buckets() {
        assert_eq!(bucket("new-checkout", "user-42"), 6800);
        // Independent check: printf 'new-checkout:user-42' | sha256sum → first 8 hex
        // digits as u32 mod 10000.
        for i in 0..100 {
            let u = format!("u{i}");
            assert_eq!(bucket("k", &u), bucket("k", &u));
        }
    }

    #[test]
    fn one_key_for_the_file_and_the_variables() {
        assert_eq!(normalize_key("FEATURE_x").as_str(), "feature-x");
        assert_eq!(normalize_key("DARK_MODE"), "dark-mode");
        assert_eq!(normalize_key("dark-mode"), "dark-mode");
        assert_eq!(normalize_key(" Dark..Mode_ "), "dark-mode");
        assert_eq!(normalize_key("__"), "");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flags.toml");
        std::fs::write(
            &path,
            "[flags.dark-mode]\nenabled = false\nrollout = 25\ndescription = \"Dark\"\n",
        )
        .unwrap();
        // Variables overriding the file is tested through a real agent process
        // (tests/it/parity/inspect.rs), which has its own environment.
        let src = FlagSource {
            file: Some(path.clone()),
            env_prefix: None,
        };
        let before = src.load().unwrap();
        assert_eq!(before.keys().collect::<Vec<_>>(), ["dark-mode"]);
        assert!(!before["dark-mode"].enabled);
        std::fs::write(
            &path,
            "[flags.dark-mode]\nenabled = true\n[flags.DARK_MODE]\nenabled = false\n",
        )
        .unwrap();
        let err = src.load().unwrap_err().to_string();
        assert!(
            err.contains("'DARK_MODE' and 'dark-mode' are the same flag 'dark-mode'")
                || err.contains("'dark-mode' and 'DARK_MODE' are the same flag 'dark-mode'"),
            "{err}"
        );
    }

    #[test]
    fn rollout_variants_and_sources() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flags.toml");
        std::fs::write(
            &path,
            r#"
            [flags.new-checkout]
            enabled = true
            rollout = 68.01
            description = "New checkout"
            [flags.banner]
            enabled = true
            variants = { blue = 1, red = 3 }
            [flags.legacy]
            enabled = false
            "#,
        )
        .unwrap();
        let src = FlagSource {
            file: Some(path.clone()),
            env_prefix: None,
        };
        let flags = src.load().unwrap();
        let nc = &flags["new-checkout"];
        // bucket 6800 < 6801: in; a rollout one step lower: out.
        assert_eq!(evaluate(nc, Some("user-42")).reason, "in_rollout");
        let mut lower = nc.clone();
        lower.rollout = Some(68.0);
        assert_eq!(evaluate(&lower, Some("user-42")).reason, "outside_rollout");
        assert_eq!(evaluate(nc, None).reason, "needs_user");
        assert!(!evaluate(&flags["legacy"], Some("x")).enabled);
        // Variants follow their weights (about 1:3 over many users).
        let reds = (0..4000)
            .filter(|i| {
                evaluate(&flags["banner"], Some(&format!("u{i}")))
                    .variant
                    .as_deref()
                    == Some("red")
            })
            .count();
        assert!((2800..3200).contains(&reds), "{reds}");
        // About 68% of users are in the rollout.
        let ins = (0..10_000)
            .filter(|i| evaluate(nc, Some(&format!("user{i}"))).enabled)
            .count();
        assert!((6600..7000).contains(&ins), "{ins}");

        std::fs::write(&path, "[flags.x]\nenabled = true\nrollout = 150\n").unwrap();
        assert!(
            src.load()
                .unwrap_err()
                .to_string()
                .contains("rollout must be 0-100")
        );
        std::fs::write(&path, "[flags.x]\nenabeld = true\n").unwrap();
        assert!(
            src.load()
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }
}

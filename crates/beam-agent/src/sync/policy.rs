//! The sanitization policy: which tables may be synced and what happens to
//! each column (`keep`, `drop`, `null`, `hash`, `mask`, `fixed:`, `fake:`),
//! and applying an action to one value with the agent's pseudonym key.

use std::collections::BTreeMap;

use ring::hmac;
use serde::Deserialize;
use serde_json::Value;

/// What happens to one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Sent as is.
    Keep,
    /// Not sent at all.
    Drop,
    /// Sent as `null`.
    Null,
    /// Keyed HMAC, hex (16 characters).
    Hash,
    /// All but the last 4 characters replaced by `*`.
    Mask,
    /// This value instead.
    Fixed(String),
    /// A deterministic fake of this kind.
    Fake(FakeKind),
}

/// Kinds of fake values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeKind {
    /// `u<hex>@sanitized.local`
    Email,
    /// `+1-555-0NNN`
    Phone,
    /// A first and last name from fixed lists.
    Name,
    /// `<n> Main St`
    Address,
    /// `10.x.y.z`
    Ip,
    /// A 4242… test card number.
    Card,
    /// `text-<hex>`
    Text,
}

impl Action {
    /// Parses `keep`, `fake:email`, `fixed:US`, ….
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "null" => Action::Null,
            "hash" => Action::Hash,
            "mask" => Action::Mask,
            _ if s.starts_with("fixed:") => Action::Fixed(s["fixed:".len()..].to_string()),
            _ if s.starts_with("fake:") => Action::Fake(match &s["fake:".len()..] {
                "email" => FakeKind::Email,
                "phone" => FakeKind::Phone,
                "name" => FakeKind::Name,
                "address" => FakeKind::Address,
                "ip" => FakeKind::Ip,
                "card" => FakeKind::Card,
                "text" => FakeKind::Text,
                other => {
                    return Err(format!(
                        "unknown fake kind '{other}' (email, phone, name, address, ip, card, text)"
                    ));
                }
            }),
            _ => {
                return Err(format!(
                    "unknown action '{s}' (keep, drop, null, hash, mask, fixed:VALUE, fake:KIND)"
                ));
            }
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    tables: BTreeMap<String, TableFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
}

/// One table's policy.
#[derive(Debug, Clone)]
pub struct TablePolicy {
    /// Columns without an action are dropped (`default = "drop"`) instead of refused.
    pub default_drop: bool,
    /// Action per column.
    pub columns: BTreeMap<String, Action>,
}

/// The agent's sanitization policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Allowlisted tables.
    pub tables: BTreeMap<String, TablePolicy>,
}

impl Policy {
    /// Parses a policy file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let mut tables = BTreeMap::new();
        for (name, t) in file.tables {
            let default_drop = match t.default.as_deref() {
                None | Some("refuse") => false,
                Some("drop") => true,
                Some(o) => {
                    return Err(format!(
                        "table {name}: default must be \"refuse\" or \"drop\", not \"{o}\""
                    ));
                }
            };
            let mut columns = BTreeMap::new();
            for (c, a) in t.columns {
                columns.insert(
                    c.clone(),
                    Action::parse(&a).map_err(|e| format!("{name}.{c}: {e}"))?,
                );
            }
            tables.insert(
                name,
                TablePolicy {
                    default_drop,
                    columns,
                },
            );
        }
        Ok(Self { tables })
    }
}

const FIRST: [&str; 12] = [
    "Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger",
    "Radia", "Donald",
];
const LAST: [&str; 12] = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie",
    "Allen", "Dijkstra", "Perlman", "Knuth",
];

/// Applies one action to a value. `tag` is the keyed HMAC of the value's text.
pub(super) fn apply(action: &Action, v: Value, key: &hmac::Key) -> Value {
    // `fixed` hides even whether a value exists; the other actions keep
    // NULL as NULL (documented: use `fixed` or `drop` to hide that).
    if let Action::Fixed(s) = action {
        return Value::String(s.clone());
    }
    if v.is_null() {
        return v;
    }
    let text = match &v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let tag = || hmac::sign(key, text.as_bytes());
    let hexn = |n: usize| -> String {
        let tag = tag();
        beam_proto::hex::encode(&tag.as_ref()[..(n / 2).min(tag.as_ref().len())])
    };
    let num = |m: u32| -> u32 {
        let t = tag();
        u32::from_be_bytes([t.as_ref()[0], t.as_ref()[1], t.as_ref()[2], t.as_ref()[3]]) % m
    };
    match action {
        Action::Keep => v,
        Action::Drop | Action::Null => Value::Null,
        Action::Hash => Value::String(hexn(16)),
        Action::Mask => {
            let chars: Vec<char> = text.chars().collect();
            let keep = chars.len().saturating_sub(4).max(chars.len() / 2);
            Value::String(
                chars
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if i < keep { '*' } else { *c })
                    .collect(),
            )
        }
        Action::Fixed(s) => Value::String(s.clone()),
        Action::Fake(kind) => Value::String(match kind {
            FakeKind::Email => format!("u{}@sanitized.local", hexn(12)),
            FakeKind::Phone => format!("+1-555-{:04}", num(10_000)),
            FakeKind::Name => format!(
                "{} {}",
                FIRST[num(12) as usize],
                LAST[(num(144) / 12) as usize]
            ),
            FakeKind::Address => format!("{} Main St", 1 + num(9_999)),
            FakeKind::Ip => {
                let n = num(1 << 24);
                format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255)
            }
            FakeKind::Card => format!("4242 4242 4242 {:04}", num(10_000)),
            FakeKind::Text => format!("text-{}", hexn(12)),
        }),
    }
}

/// The action as policy text.
pub fn action_text(a: &Action) -> String {
    match a {
        Action::Keep => "keep".into(),
        Action::Drop => "drop".into(),
        Action::Null => "null".into(),
        Action::Hash => "hash".into(),
        Action::Mask => "mask".into(),
        Action::Fixed(v) => format!("fixed:{v}"),
        Action::Fake(k) => format!("fake:{}", format!("{k:?}").to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_deterministic_and_keyed() {
        let k = hmac::Key::new(hmac::HMAC_SHA256, b"key-1");
        let k2 = hmac::Key::new(hmac::HMAC_SHA256, b"key-2");
        let email = Value::String("ada@example.com".into());
        let a = apply(&Action::Fake(FakeKind::Email), email.clone(), &k);
        assert_eq!(a, apply(&Action::Fake(FakeKind::Email), email.clone(), &k));
        assert_ne!(a, apply(&Action::Fake(FakeKind::Email), email.clone(), &k2));
        assert!(a.as_str().unwrap().ends_with("@sanitized.local"));
        assert_eq!(
            apply(&Action::Mask, Value::String("123-45-6789".into()), &k),
            "*******6789"
        );
        assert_eq!(apply(&Action::Hash, Value::Null, &k), Value::Null);
        assert!(
            Action::parse("fake:dog")
                .unwrap_err()
                .contains("unknown fake kind")
        );
        assert!(
            Policy::parse("[tables.u]\ncolumns = { a = \"kepp\" }")
                .unwrap_err()
                .contains("u.a")
        );
    }
}

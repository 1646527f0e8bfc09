//! Masks secrets in log lines before they are buffered, so they never leave
//! production. Two nets, because structured loggers put secrets where no value
//! pattern can see them (`{"password":"hunter22"}` is just a string):
//! - **by field name**, recursively through JSON objects and arrays and logfmt
//!   pairs: any field whose name contains one of [`SECRET_FIELDS`] (compared
//!   lower-case with `-`, `_` and `.` removed, so `apiKey`, `api-key` and
//!   `API_KEY` are one name) has its whole value replaced, whatever its type;
//!   the agent adds names with `--mask-field`;
//! - **by value pattern**, in every string: bearer tokens, Stripe and webhook
//!   secrets, beam tokens, AWS access keys, `name=value` / `name: value`
//!   assignments of the same secret names, card numbers that pass the Luhn
//!   check, and (with `--mask-pii`) e-mail addresses.

use std::borrow::Cow;

use regex::{Regex, RegexSet};
use serde_json::Value;

/// Field names (normalized: lower-case, no `-`, `_` or `.`) whose values are
/// always masked; a field matches when its normalized name contains one.
pub const SECRET_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "privatekey",
    "signingkey",
    "encryptionkey",
    "credential",
    "signature",
    "cardnumber",
    "creditcard",
    "jwt",
    // Short names: matched as whole words of the field name (`user_ssn`,
    // `cvv2`, `ssnNumber`, not `classname`).
    "pwd",
    "pin",
    "otp",
    "cvv",
    "cvc",
    "ssn",
];

/// Names of at most this many letters are matched as words, not substrings.
const SHORT: usize = 4;

/// What a masked value becomes.
pub const MASKED: &str = "****";

/// The rules, compiled once per agent.
#[derive(Debug, Clone)]
pub struct Masker {
    any: RegexSet,
    rules: Vec<(Regex, &'static str)>,
    card: Regex,
    fields: Vec<String>,
}

/// `apiKey`, `api-key`, `API_KEY` → `apikey`.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `ssnNumber`, `user_ssn`, `CVV2` → `["ssn", "number"]`, `["user", "ssn"]`, `["cvv"]`.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphabetic() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether a digit string is a plausible card number (13-19 digits, Luhn).
fn luhn(digits: &[u8]) -> bool {
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

const RULES: &[(&str, &str)] = &[
    (
        r"(?i)\b(bearer|token)(\s+)[A-Za-z0-9\-._~+/]{8,}=*",
        "$1$2****",
    ),
    (
        r#"(?i)\b(authorization["']?\s*[:=]\s*["']?(?:basic\s+|digest\s+|bearer\s+)?)[^\s"',;&]+"#,
        "$1****",
    ),
    (r"\b(sk|rk)_(live|test)_[A-Za-z0-9]{8,}", "${1}_${2}_****"),
    (r"\bwhsec_[A-Za-z0-9+/=]{8,}", "whsec_****"),
    (r"\bbeam_[A-Za-z0-9]{20,}", "beam_****"),
    (r"\bAKIA[0-9A-Z]{16}\b", "AKIA****"),
    (
        r#"(?i)\b([a-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|cookie|session|private[_-]?key|credential|signature|jwt)[a-z0-9_.-]*|(?:[a-z0-9]+[_.-])*(?:pwd|pin|otp|cvv|cvc|ssn)[0-9]*(?:[_.-][a-z0-9]+)*)(["']?\s*[:=]\s*["']?)[^\s"',;&]+"#,
        "$1$2****",
    ),
    // Credentials inside URLs: `postgres://user:password@host`.
    (
        r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@",
        "$1****@",
    ),
];

/// 13-19 digits, optionally grouped by spaces or dashes; masked when Luhn-valid.
const CARD: &str = r"\b\d(?:[ -]?\d){12,18}\b";

const EMAIL: (&str, &str) = (
    r"\b[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})\b",
    "****@$1",
);

impl Masker {
    /// The default rules, plus e-mail addresses when `pii` is set.
    pub fn new(pii: bool) -> Self {
        Self::with_fields(pii, &[])
    }

    /// The default rules and field names, plus `extra` field names.
    pub fn with_fields(pii: bool, extra: &[String]) -> Self {
        let mut list: Vec<(&str, &'static str)> = RULES.to_vec();
        if pii {
            list.push(EMAIL);
        }
        let any = RegexSet::new(list.iter().map(|(p, _)| *p).chain([CARD]))
            .expect("the mask rules are valid");
        let rules = list
            .iter()
            .map(|(p, r)| (Regex::new(p).expect("the mask rules are valid"), *r))
            .collect();
        let mut fields: Vec<String> = SECRET_FIELDS.iter().map(|f| f.to_string()).collect();
        fields.extend(extra.iter().map(|f| normalize(f)).filter(|f| !f.is_empty()));
        Self {
            any,
            rules,
            card: Regex::new(CARD).expect("the card rule is valid"),
            fields,
        }
    }

    /// Whether a field of this name always has its value masked. Names of up
    /// to 4 letters (`pwd`, `ssn`, `cvv`) must be a word of the field name
    /// (split at `_`, `-`, `.`, spaces, digits and camelCase humps), so that
    /// `user_ssn`, `cvv2` and `ssnNumber` match and `classname` does not.
    pub fn is_secret_field(&self, name: &str) -> bool {
        let n = normalize(name);
        let words = words(name);
        self.fields.iter().any(|f| {
            if f.len() <= SHORT {
                words.iter().any(|w| w == f)
            } else {
                n.contains(f.as_str())
            }
        })
    }

    /// `text` with every secret replaced; borrowed when there is none (the
    /// common case costs one set match).
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.any.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut out = self.pass(text);
        // One pass can leave a secret behind: matches do not overlap (in
        // `a@b.io@c.io` the second address's local part is the first one's
        // domain), and one rule's replacement can complete another's pattern.
        // Passes repeat until nothing changes; each replaces text with `****`,
        // which no rule matches, so this settles within a pass or two (the
        // fuzz target `log_lines` checks masking is a fixed point).
        for _ in 0..8 {
            if !self.any.is_match(&out) {
                break;
            }
            let next = self.pass(&out);
            if next == out {
                break;
            }
            out = next;
        }
        if out == text {
            return Cow::Borrowed(text);
        }
        Cow::Owned(out)
    }

    /// One application of every rule, in order.
    fn pass(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (re, rep) in &self.rules {
            if let Cow::Owned(s) = re.replace_all(&out, *rep) {
                out = s;
            }
        }
        let carded = self.card.replace_all(&out, |c: &regex::Captures<'_>| {
            let digits: Vec<u8> = c[0]
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            if luhn(&digits) {
                MASKED.to_string()
            } else {
                c[0].to_string()
            }
        });
        if let Cow::Owned(s) = carded {
            out = s;
        }
        out
    }

    /// Masks a JSON value in place: values of secret-named fields whole (at
    /// any depth, whatever their type), and secrets inside every string.
    pub fn mask_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Cow::Owned(m) = self.mask(s) {
                    *s = m;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| self.mask_value(v)),
            Value::Object(o) => self.mask_fields(o),
            _ => {}
        }
    }

    /// Masks the fields of one object (the context of a log line).
    pub fn mask_fields(&self, o: &mut serde_json::Map<String, Value>) {
        for (k, v) in o.iter_mut() {
            if self.is_secret_field(k) && !v.is_null() {
                *v = Value::String(MASKED.into());
            } else {
                self.mask_value(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_plain_text_is_untouched() {
        let m = Masker::new(false);
        let cases = [
            (
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def",
                "Authorization: Bearer ****",
            ),
            (
                "charging with sk_live_51HxYzAbCdEfGh",
                "charging with sk_live_****",
            ),
            (
                "secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "secret whsec_****",
            ),
            (
                "token beam_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
                "token ****",
            ),
            ("key AKIAIOSFODNN7EXAMPLE used", "key AKIA**** used"),
            (r#"{"password": "hunter22"}"#, r#"{"password": "****"}"#),
            ("db password=s3cr3t host=x", "db password=**** host=x"),
        ];
        for (input, want) in cases {
            assert_eq!(m.mask(input), want, "{input}");
        }
        assert!(matches!(m.mask("GET /health 200"), Cow::Borrowed(_)));
        assert_eq!(
            m.mask("mail ada@example.com"),
            "mail ada@example.com",
            "PII is opt-in"
        );
        let pii = Masker::new(true);
        assert_eq!(
            pii.mask("mail ada@example.com now"),
            "mail ****@example.com now",
        );
        // Found by the fuzzer: addresses chained by `@` overlap, and one
        // pass left the second one whole.
        assert_eq!(pii.mask("=ut@2uL.uut@2uL.uL.22"), "=****@****@2uL.uL.22");
        let mut v = serde_json::json!({"user": {"email": "ada@example.com"}, "n": 1});
        pii.mask_value(&mut v);
        assert_eq!(v["user"]["email"], "****@example.com");
    }

    /// Structured lines as real loggers write them: the secret is a field's
    /// value, and no value pattern can see it.
    #[test]
    fn structured_fields_are_masked_by_name_at_any_depth() {
        use crate::logs::parse::parse_line;
        let m = Masker::with_fields(false, &["x-internal-pin".to_string()]);
        let lines = [
            // pino
            r#"{"level":30,"time":1,"msg":"login","password":"hunter22","req":{"headers":{"authorization":"Basic YWRhOmh1bnRlcjIy","cookie":"sid=abc123"}}}"#,
            // bunyan
            r#"{"name":"shop","hostname":"h","pid":1,"level":50,"msg":"charge failed","card":{"cardNumber":"4242424242424242","cvv":"123"},"v":0}"#,
            // tracing-subscriber JSON
            r#"{"timestamp":"t","level":"INFO","fields":{"message":"auth","api_key":"k-9f8e7d","session_id":"s-5a4b"},"target":"shop"}"#,
            // logfmt
            r#"level=info msg="db connect" db_password=hunter22 client_secret=cs-77 user=ada"#,
            // nested arrays and extra names
            r#"{"level":"warn","msg":"batch","items":[{"accessToken":"at-1"},{"X-Internal-PIN":1234}],"privateKey":"-----BEGIN"}"#,
            // a card number in free text
            "paid with 4242 4242 4242 4242 today, order 1234567890123",
        ];
        for line in lines {
            let mut p = parse_line(line);
            m.mask_fields(&mut p.context);
            let message = m.mask(&p.message).into_owned();
            let all = format!("{message} {}", serde_json::Value::Object(p.context.clone()));
            for secret in [
                "hunter22",
                "YWRhOmh1bnRlcjIy",
                "sid=abc123",
                "4242424242424242",
                "4242 4242 4242 4242",
                "\"123\"",
                "k-9f8e7d",
                "s-5a4b",
                "cs-77",
                "at-1",
                "1234}",
                "BEGIN",
            ] {
                assert!(!all.contains(secret), "{secret} survived in {all}");
            }
        }
        // What is not secret stays readable.
        let mut p = parse_line(r#"level=info msg="db connect" user=ada classname=Shop"#);
        m.mask_fields(&mut p.context);
        assert_eq!(p.context["user"], "ada");
        assert_eq!(p.context["classname"], "Shop");
        assert_eq!(
            m.mask("order 1234567890123 shipped"),
            "order 1234567890123 shipped"
        );
    }

    #[test]
    fn short_names_are_words_and_urls_lose_their_passwords() {
        let m = Masker::new(false);
        for name in [
            "cvv2",
            "cvvCode",
            "ssnNumber",
            "user_ssn",
            "PIN",
            "otp_code",
            "dbPwd",
        ] {
            assert!(m.is_secret_field(name), "{name}");
        }
        for name in [
            "classname",
            "shipping",
            "spinner",
            "options",
            "pinned_at",
            "author",
        ] {
            assert!(!m.is_secret_field(name), "{name}");
        }
        assert_eq!(
            m.mask("connect postgres://app:hunter2@db:5432/shop failed"),
            "connect postgres://app:****@db:5432/shop failed"
        );
        assert_eq!(m.mask("user pin=4821 ok"), "user pin=**** ok");
        assert_eq!(m.mask("ship shipping=fast"), "ship shipping=fast");
        // A JSON line without a message: its fields are masked by name, and
        // no raw copy of the line survives.
        let mut p = crate::logs::parse::parse_line(
            r#"{"level":"info","cvv":"123","ssn":"123-45-6789","credentials":{"pass":"x"}}"#,
        );
        m.mask_fields(&mut p.context);
        let all = format!(
            "{} {}",
            m.mask(&p.message),
            serde_json::Value::Object(p.context)
        );
        for secret in ["\"123\"", "123-45-6789", "\"x\""] {
            assert!(!all.contains(secret), "{secret} in {all}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A secret of one of the shapes the value rules promise to mask,
        /// and the part of it that must not survive.
        fn secret() -> impl Strategy<Value = (String, String)> {
            let tail = "[A-Za-z0-9]{24,40}";
            prop_oneof![
                tail.prop_map(|t| (format!("sk_live_{t}"), t)),
                tail.prop_map(|t| (format!("whsec_{t}"), t)),
                tail.prop_map(|t| (format!("beam_{t}"), t)),
                "[A-Z0-9]{16}".prop_map(|t| (format!("AKIA{t}"), t)),
                tail.prop_map(|t| (format!("Authorization: Bearer {t}"), t)),
                tail.prop_map(|t| (format!("password={t}"), t)),
                tail.prop_map(|t| (format!("\"api_key\": \"{t}\""), t)),
                tail.prop_map(|t| (format!("postgres://app:{t}@db.internal/shop"), t)),
                "[a-z]{12,20}".prop_map(|t| (format!("{t}@example.com"), t)),
            ]
        }

        /// Text around a secret: anything printable, ending (and starting)
        /// at a separator so the secret stands as its own token.
        fn around() -> impl Strategy<Value = String> {
            "[ -~]{0,40}".prop_map(|s| s.replace(['\\'], ""))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn no_secret_survives_masking(
                (secret, must_go) in secret(),
                before in around(),
                after in around(),
                sep in prop::sample::select(vec![" ", "\t", " | ", "; ", "\" ", "(", "["]),
                sep2 in prop::sample::select(vec![" ", "\t", " |", ";", "\"", ")", "]", ""]),
                json in any::<bool>(),
            ) {
                let line = format!("{before}{sep}{secret}{sep2} {after}");
                let m = Masker::new(true);
                let masked = m.mask(&line);
                prop_assert!(!masked.contains(&must_go), "{line:?} -> {masked:?}");
                // The same inside a JSON string field, as structured loggers write it.
                if json {
                    let mut v = serde_json::json!({ "msg": line, "n": 1 });
                    m.mask_value(&mut v);
                    prop_assert!(!v.to_string().contains(&must_go), "{v}");
                }
            }
        }
    }
}

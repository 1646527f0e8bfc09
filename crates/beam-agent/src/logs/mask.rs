//! Masks secrets in log lines before they are buffered, so they never leave
//! production: bearer tokens, Stripe and webhook secrets, beam tokens, AWS access
//! keys, `password=…`-style assignments, and (with `--mask-pii`) e-mail addresses.

use std::borrow::Cow;

use regex::{Regex, RegexSet};
use serde_json::Value;

/// The rules, compiled once per agent.
#[derive(Debug, Clone)]
pub struct Masker {
    any: RegexSet,
    rules: Vec<(Regex, &'static str)>,
}

const RULES: &[(&str, &str)] = &[
    (
        r"(?i)\b(bearer|token)(\s+)[A-Za-z0-9\-._~+/]{8,}=*",
        "$1$2****",
    ),
    (r"\b(sk|rk)_(live|test)_[A-Za-z0-9]{8,}", "${1}_${2}_****"),
    (r"\bwhsec_[A-Za-z0-9+/=]{8,}", "whsec_****"),
    (r"\bbeam_[A-Za-z0-9]{20,}", "beam_****"),
    (r"\bAKIA[0-9A-Z]{16}\b", "AKIA****"),
    (
        r#"(?i)\b(password|passwd|pwd|secret|api[_-]?key|access[_-]?token)(["']?\s*[:=]\s*["']?)[^\s"',;&]+"#,
        "$1$2****",
    ),
];

const EMAIL: (&str, &str) = (
    r"\b[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})\b",
    "****@$1",
);

impl Masker {
    /// The default rules, plus e-mail addresses when `pii` is set.
    pub fn new(pii: bool) -> Self {
        let mut list: Vec<(&str, &'static str)> = RULES.to_vec();
        if pii {
            list.push(EMAIL);
        }
        let any = RegexSet::new(list.iter().map(|(p, _)| *p)).expect("the mask rules are valid");
        let rules = list
            .iter()
            .map(|(p, r)| (Regex::new(p).expect("the mask rules are valid"), *r))
            .collect();
        Self { any, rules }
    }

    /// `text` with every secret replaced; borrowed when there is none (the
    /// common case costs one set match).
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.any.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for (re, rep) in &self.rules {
            if let Cow::Owned(s) = re.replace_all(&out, *rep) {
                out = s;
            }
        }
        Cow::Owned(out)
    }

    /// Masks every string inside a JSON value, in place.
    pub fn mask_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Cow::Owned(m) = self.mask(s) {
                    *s = m;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| self.mask_value(v)),
            Value::Object(o) => o.values_mut().for_each(|v| self.mask_value(v)),
            _ => {}
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
            "mail ****@example.com now"
        );
        let mut v = serde_json::json!({"user": {"email": "ada@example.com"}, "n": 1});
        pii.mask_value(&mut v);
        assert_eq!(v["user"]["email"], "****@example.com");
    }
}

//! Posted forms: `application/x-www-form-urlencoded` bodies as a list of
//! fields (checkbox groups repeat a name), and the percent-encoding of a
//! value put into a URL.

use axum::body::Bytes;

/// The fields of a posted form, in order.
#[derive(Debug, Default)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// Parses a form body; a malformed one yields no fields (and fails the
    /// CSRF check that every post starts with).
    pub fn parse(body: &Bytes) -> Self {
        Fields(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every value of `name` (a checkbox group).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-encodes `s` for a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_repeat_and_values_are_decoded() {
        let f = Fields::parse(&Bytes::from_static(
            b"csrf=abc&scope=tunnels%3Aread&scope=admin&description=+my+laptop+",
        ));
        assert_eq!(f.get("csrf"), "abc");
        assert_eq!(f.get("description"), "my laptop");
        assert_eq!(
            f.all("scope").collect::<Vec<_>>(),
            ["tunnels:read", "admin"]
        );
        assert_eq!(f.get("missing"), "");
        assert_eq!(encode("/tunnels/3?period=1h"), "/tunnels/3%3Fperiod%3D1h");
    }
}

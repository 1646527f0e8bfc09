//! Generic HMAC: senders beam has no name for, described by the header they
//! sign in, the hash, the encoding and an optional prefix
//! (`X-Signature: sha256=<hex>` is `header=X-Signature,prefix=sha256=`).

use serde::{Deserialize, Serialize};

/// The hash a generic sender signs with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA256 (the usual choice).
    #[default]
    Sha256,
    /// HMAC-SHA512.
    Sha512,
    /// HMAC-SHA1 (older senders).
    Sha1,
}

/// How a generic sender writes the tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagEncoding {
    /// Lowercase hex (either case is accepted when verifying).
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// A generic HMAC-of-the-body signature scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacScheme {
    /// The header holding the signature.
    pub header: String,
    /// The hash.
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    /// The tag's encoding.
    #[serde(default)]
    pub encoding: TagEncoding,
    /// Text before the tag (`sha256=`), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

impl Default for HmacScheme {
    fn default() -> Self {
        Self {
            header: "X-Signature".into(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: TagEncoding::Hex,
            prefix: String::new(),
        }
    }
}

impl HmacScheme {
    /// Parses `header=NAME,algorithm=sha256|sha512|sha1,encoding=hex|base64,prefix=TEXT`
    /// (every part optional; unnamed parts take [`Default`]'s values).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut s = Self::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not NAME=VALUE"))?;
            match k.trim() {
                "header" => s.header = v.trim().to_string(),
                "algorithm" => {
                    s.algorithm = match v.trim().to_ascii_lowercase().as_str() {
                        "sha256" => HmacAlgorithm::Sha256,
                        "sha512" => HmacAlgorithm::Sha512,
                        "sha1" => HmacAlgorithm::Sha1,
                        other => {
                            return Err(format!(
                                "algorithm '{other}' is not sha256, sha512 or sha1"
                            ));
                        }
                    }
                }
                "encoding" => {
                    s.encoding = match v.trim().to_ascii_lowercase().as_str() {
                        "hex" => TagEncoding::Hex,
                        "base64" => TagEncoding::Base64,
                        other => return Err(format!("encoding '{other}' is not hex or base64")),
                    }
                }
                // The prefix is taken verbatim: `sha256=` ends in `=`.
                "prefix" => s.prefix = v.to_string(),
                other => {
                    return Err(format!(
                        "'{other}' is not one of header, algorithm, encoding, prefix"
                    ));
                }
            }
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks the header is a valid, non-credential header name.
    pub fn validate(&self) -> Result<(), String> {
        if http::HeaderName::from_bytes(self.header.as_bytes()).is_err() {
            return Err(format!("'{}' is not a valid header name", self.header));
        }
        let lower = self.header.to_ascii_lowercase();
        if [
            "authorization",
            "cookie",
            "host",
            "content-type",
            "content-length",
        ]
        .contains(&lower.as_str())
        {
            return Err(format!("'{}' cannot carry a signature", self.header));
        }
        if self.prefix.len() > 64 {
            return Err("the prefix is longer than 64 characters".into());
        }
        Ok(())
    }

    pub(super) fn ring_algorithm(&self) -> ring::hmac::Algorithm {
        match self.algorithm {
            HmacAlgorithm::Sha256 => ring::hmac::HMAC_SHA256,
            HmacAlgorithm::Sha512 => ring::hmac::HMAC_SHA512,
            HmacAlgorithm::Sha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        }
    }
}

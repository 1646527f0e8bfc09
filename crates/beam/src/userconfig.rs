//! The user's config file (`~/.config/beam/config.toml`): where the server is, the
//! token, and the server certificate's fingerprint. Written 0600 because it holds
//! a token; never printed whole.

use std::path::{Path, PathBuf};

use beam_proto::Secret;
use serde::{Deserialize, Serialize};

/// Contents of the config file. Unknown keys are kept out of the struct, not
/// rejected, so newer files still load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserConfig {
    /// Tunnel listener address, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Pinned certificate fingerprint of the server's tunnel listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The token was created by `beam login --email`, so `beam logout` revokes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub token_from_login: bool,
}

/// Errors reading or writing the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path} is not a valid beam config: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Parser message (never includes values).
        message: String,
    },
}

/// `$BEAM_CONFIG`, else `$XDG_CONFIG_HOME/beam/config.toml`, else
/// `~/.config/beam/config.toml`.
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BEAM_CONFIG") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("beam").join("config.toml")
}

impl UserConfig {
    /// Loads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })
    }

    /// Writes `path` with mode 0600, creating the directory.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = toml::to_string(self).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        beam_server::tls::write_private(path, text.as_bytes()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_0600_and_reports_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        assert_eq!(UserConfig::load(&path).unwrap(), UserConfig::default());
        let cfg = UserConfig {
            server: Some("127.0.0.1:8081".into()),
            token: Some(Secret::new("beam_x")),
            fingerprint: Some("sha256:00".into()),
            token_from_login: true,
        };
        cfg.save(&path).unwrap();
        assert_eq!(UserConfig::load(&path).unwrap(), cfg);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "server = [").unwrap();
        let err = UserConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("is not a valid beam config"), "{err}");
        assert!(!err.contains("beam_x"));
    }
}

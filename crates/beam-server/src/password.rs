//! Human passwords: argon2id hashes (PHC strings), computed off the async runtime.
//! Passwords arrive in plaintext over TLS and are never hashed by the client: a
//! client-side hash would simply become the password.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use beam_proto::Secret;

/// Shortest accepted password.
pub const MIN_LEN: usize = 10;
/// Longest accepted password (bounds hashing work per request).
pub const MAX_LEN: usize = 1024;

/// Why a password is not acceptable, in words for the user.
pub fn check_policy(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(format!("password must be at least {MIN_LEN} characters"));
    }
    if password.len() > MAX_LEN {
        return Err(format!("password must be at most {MAX_LEN} bytes"));
    }
    Ok(())
}

/// Hashes a password with argon2id and a random salt.
pub async fn hash(password: Secret) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let salt = salt();
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Verifies a password against a stored hash. With no stored hash (unknown user),
/// a dummy hash is verified anyway so the response takes as long either way.
pub async fn verify(password: Secret, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let dummy;
        let phc = match &stored {
            Some(s) => s.as_str(),
            None => {
                dummy = dummy_hash();
                dummy.as_str()
            }
        };
        let ok = PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.expose().as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && stored.is_some()
    })
    .await
    .unwrap_or(false)
}

/// 16 random bytes from the OS-seeded CSPRNG, as a PHC salt.
fn salt() -> SaltString {
    let bytes: [u8; 16] = rand::random();
    SaltString::encode_b64(&bytes).expect("16 bytes is a valid salt length")
}

/// A valid hash of a random password, made once per process.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let salt = salt();
            let pw: [u8; 16] = rand::random();
            Argon2::default()
                .hash_password(&pw, &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let a = hash(Secret::new("correct horse battery")).await.unwrap();
        let b = hash(Secret::new("correct horse battery")).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify(Secret::new("correct horse battery"), Some(a.clone())).await);
        assert!(!verify(Secret::new("wrong horse battery"), Some(a)).await);
        assert!(!verify(Secret::new("anything at all"), None).await);
        assert!(check_policy("short").unwrap_err().contains("at least 10"));
        assert!(check_policy("long enough password").is_ok());
    }
}

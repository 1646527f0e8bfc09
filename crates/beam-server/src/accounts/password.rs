//! Human passwords: argon2id hashes (PHC strings), computed off the async runtime.
//! Passwords arrive in plaintext over TLS and are never hashed by the client: a
//! client-side hash would simply become the password.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use beam_proto::Secret;

/// A bound on argon2 work: at most `slots` hashes at once, and a caller
/// waits at most `queue` for a slot before it is told to come back later
/// (503 with `Retry-After`). argon2 costs ~20 ms of a core and 19 MiB; an
/// unbounded blocking pool would let a flood of logins queue minutes of
/// work and memory, and make every honest login wait behind it.
#[derive(Debug)]
pub struct HashGate {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    queue: std::time::Duration,
}

/// No hashing slot came free within the queue time.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the server is busy checking passwords; try again in a moment")]
pub struct Busy;

impl HashGate {
    /// `slots` hashes at once; callers queue for at most `queue`.
    pub fn new(slots: usize, queue: std::time::Duration) -> Self {
        Self {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(slots.max(1))),
            queue,
        }
    }

    /// Waits (at most the queue time) for a slot, then runs `work` on the
    /// blocking pool. The slot, and `also` (a caller's own budget), are held
    /// by the blocking job itself: a caller that goes away (a visitor
    /// resetting its stream) cannot free them while argon2 still runs.
    pub async fn run<T: Send + 'static>(
        &self,
        also: Vec<tokio::sync::OwnedSemaphorePermit>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = tokio::time::timeout(self.queue, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        tokio::task::spawn_blocking(move || {
            let _held = (permit, also);
            work()
        })
        .await
        .map_err(|_| Busy)
    }

    /// How long a caller waits for a slot.
    pub fn queue(&self) -> std::time::Duration {
        self.queue
    }

    /// Seconds a refused caller should wait.
    pub fn retry_after(&self) -> u64 {
        self.queue.as_secs().max(1)
    }
}

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

/// Hashes a password with argon2id and a random salt, off the runtime.
pub async fn hash(password: Secret) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| e.to_string())?
}

/// Hashes a password with argon2id and a random salt, on this thread.
pub fn hash_now(password: &Secret) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies a password against a stored hash, off the runtime.
pub async fn verify(password: Secret, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify_now(&password, stored.as_deref()))
        .await
        .unwrap_or(false)
}

/// Verifies a password against a stored hash, on this thread. With no stored
/// hash (unknown user), a dummy hash is verified anyway so the answer takes
/// as long either way.
pub fn verify_now(password: &Secret, stored: Option<&str>) -> bool {
    let dummy;
    let phc = match stored {
        Some(s) => s,
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
}

/// Most memory (KiB), passes and lanes a client-made hash may ask for: a tunnel
/// owner's hash is verified on visitor requests, so its cost must stay bounded.
const MAX_COST: (u32, u32, u32) = (64 * 1024, 8, 4);

/// Checks that `phc` is an argon2id hash with bounded cost, as `--auth` and
/// `--bearer` credentials arrive from tunnel clients.
pub fn check_client_hash(phc: &str) -> Result<(), String> {
    let h = PasswordHash::new(phc).map_err(|e| format!("not an argon2 PHC hash: {e}"))?;
    if h.algorithm.as_str() != "argon2id" {
        return Err(format!("hash algorithm {} is not argon2id", h.algorithm));
    }
    let p = argon2::Params::try_from(&h).map_err(|e| format!("argon2 parameters: {e}"))?;
    let (m, t, l) = MAX_COST;
    if p.m_cost() > m || p.t_cost() > t || p.p_cost() > l {
        return Err(format!(
            "argon2 cost m={} t={} p={} is above the server's bound (m<={m}, t<={t}, p<={l})",
            p.m_cost(),
            p.t_cost(),
            p.p_cost()
        ));
    }
    Ok(())
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

    #[tokio::test]
    async fn client_hashes_must_be_bounded_argon2id() {
        let ok = hash(Secret::new("tunnel password")).await.unwrap();
        check_client_hash(&ok).unwrap();
        let huge = "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(
            check_client_hash(huge)
                .unwrap_err()
                .contains("above the server's bound")
        );
        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(
            check_client_hash(argon2i)
                .unwrap_err()
                .contains("not argon2id")
        );
        assert!(
            check_client_hash("hunter2")
                .unwrap_err()
                .contains("not an argon2 PHC hash")
        );
    }
}

//! One-click sign-in links of the operator account (`beam server --dev`
//! prints one): single use, short-lived, kept in this process as hashes.

use std::sync::Mutex;

use beam_proto::Secret;
use subtle::ConstantTimeEq;

use crate::accounts::auth::{hash_secret, random_secret};
use crate::store::Operator;

/// How long a one-click link works.
pub const LINK_TTL_MS: i64 = 30 * 60 * 1000;

/// One-click sign-in links of the operator account (`beam server --dev`):
/// each works once and for [`LINK_TTL_MS`]; only their hashes are kept.
#[derive(Debug, Default)]
pub struct SignInLinks {
    links: Mutex<Vec<([u8; 32], i64, Operator)>>,
}

impl SignInLinks {
    /// A new link's secret for `operator` (the path is `/signin/<secret>`).
    pub fn mint(&self, operator: Operator, now: i64) -> Secret {
        let secret = random_secret("beamlink_");
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.retain(|(_, exp, _)| *exp > now);
        links.push((hash_secret(secret.expose()), now + LINK_TTL_MS, operator));
        secret
    }

    /// The account of a live link, which stops working now.
    pub(crate) fn take(&self, secret: &str, now: i64) -> Option<Operator> {
        let hash = hash_secret(secret);
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let i = links
            .iter()
            .position(|(h, exp, _)| bool::from(h.ct_eq(&hash)) && *exp > now)?;
        Some(links.swap_remove(i).2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_work_once_and_expire() {
        let links = SignInLinks::default();
        let op = Operator {
            user_id: 1,
            org_id: 2,
        };
        let a = links.mint(op, 1_000);
        assert!(a.expose().starts_with("beamlink_"));
        assert!(links.take("beamlink_nope", 1_000).is_none());
        assert_eq!(links.take(a.expose(), 2_000).map(|o| o.org_id), Some(2));
        assert!(links.take(a.expose(), 2_000).is_none(), "used once");
        let b = links.mint(op, 1_000);
        assert!(
            links.take(b.expose(), 1_000 + LINK_TTL_MS).is_none(),
            "expired"
        );
    }
}

//! Users, organizations (with their plan limits) and memberships.

use sqlx::Row;

use super::{Pool, Store, StoreError, first, on_pool};
use crate::accounts::scope::Role;

/// The built-in operator account and its organization: owner of the tokens
/// `beam server` makes, and the only organization that sets plan limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    /// The operator's user id.
    pub user_id: i64,
    /// The operator's organization.
    pub org_id: i64,
}

/// A user as stored.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Row id.
    pub id: i64,
    /// Lower-cased email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// argon2id PHC string; `None` for accounts without a password login.
    pub password_hash: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// When the address was proven (a verification mail or an accepted
    /// invitation); `None`: the account cannot create tokens or join
    /// organizations yet.
    pub email_verified_at: Option<i64>,
}

/// Plan limits of an organization; `None` is unlimited.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct Limits {
    /// Tunnels connected at the same time.
    pub max_tunnels: Option<i64>,
    /// Custom domains (pending or active).
    pub max_custom_domains: Option<i64>,
    /// Members of the organization.
    pub max_members: Option<i64>,
    /// Bytes in + out through the organization's tunnels per calendar month (UTC).
    pub max_bandwidth_bytes: Option<i64>,
    /// Public TCP ports (`beam tcp` tunnels) connected at the same time.
    pub max_tcp_ports: Option<i64>,
    /// Reserved subdomains and ports.
    pub max_reserved_names: Option<i64>,
}

impl Limits {
    /// What a new organization gets unless the operator says otherwise
    /// (`--default-limits`): enough for a team's daily work, not enough for
    /// one account to take every TCP port or name of a shared server.
    pub const NEW_ORG: Limits = Limits {
        max_tunnels: Some(20),
        max_custom_domains: Some(10),
        max_members: None,
        max_bandwidth_bytes: None,
        max_tcp_ports: Some(5),
        max_reserved_names: Some(20),
    };

    /// Parses `tunnels=20,tcp_ports=5,reserved_names=20,custom_domains=10,
    /// members=none,bandwidth=none` (keys left out keep [`Limits::NEW_ORG`]'s
    /// value; `none` is unlimited).
    pub fn parse(spec: &str) -> Result<Limits, String> {
        let mut l = Limits::NEW_ORG;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not KEY=VALUE"))?;
            let v = match v.trim() {
                "none" | "unlimited" => None,
                n => Some(
                    n.parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| format!("{k}: '{n}' is not a count (or none)"))?,
                ),
            };
            let slot = match k.trim() {
                "tunnels" => &mut l.max_tunnels,
                "custom_domains" => &mut l.max_custom_domains,
                "members" => &mut l.max_members,
                "bandwidth" => &mut l.max_bandwidth_bytes,
                "tcp_ports" => &mut l.max_tcp_ports,
                "reserved_names" => &mut l.max_reserved_names,
                other => {
                    return Err(format!(
                        "unknown limit '{other}' (tunnels, tcp_ports, reserved_names, custom_domains, members, bandwidth)"
                    ));
                }
            };
            *slot = v;
        }
        Ok(l)
    }
}

/// An organization as stored.
#[derive(Debug, Clone)]
pub struct OrgRow {
    /// Row id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Plan limits.
    pub limits: Limits,
}

/// A member of an organization.
#[derive(Debug, Clone)]
pub struct MemberRow {
    /// The user.
    pub user_id: i64,
    /// Their email.
    pub email: String,
    /// Their role.
    pub role: Role,
}

macro_rules! user_of {
    ($r:expr) => {{
        let r = $r;
        UserRow {
            id: r.try_get("id")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            password_hash: r.try_get("password_hash")?,
            created_at: r.try_get("created_at")?,
            email_verified_at: r.try_get("email_verified_at")?,
        }
    }};
}

fn role_of(text: &str) -> Result<Role, StoreError> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown role '{text}'")))
}

impl Store {
    /// Creates a user; `Ok(None)` when the email is taken (emails are compared
    /// lower-cased).
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        password_hash: Option<&str>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let id: Option<i64> = on_pool!(self, p => sqlx::query(
            "INSERT INTO users (email, name, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING RETURNING id")
            .bind(email.to_lowercase()).bind(name).bind(password_hash).bind(now)
            .fetch_all(p).await?.into_iter().next().map(|r| r.try_get("id")).transpose()?);
        Ok(id)
    }

    /// Registers a user with their own organization (owner) in one transaction.
    /// `Ok(None)` when the email is taken; the same statements run either way and
    /// the transaction is rolled back, so both outcomes cost the same.
    pub async fn register(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        limits: Limits,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let email = email.to_lowercase();
        let id = on_pool!(self, p => {
            let mut tx = p.begin().await?;
            let user: Option<i64> = sqlx::query(
                "INSERT INTO users (email, name, password_hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (email) DO NOTHING RETURNING id")
                .bind(&email).bind(name).bind(password_hash).bind(now)
                .fetch_optional(&mut *tx).await?.map(|r| r.try_get("id")).transpose()?;
            let org: i64 = sqlx::query(
                "INSERT INTO organizations (name, created_at, max_tunnels, max_custom_domains, max_members, max_bandwidth_bytes, \
                 max_tcp_ports, max_reserved_names) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id")
                .bind(format!("{email}'s organization")).bind(now).bind(limits.max_tunnels)
                .bind(limits.max_custom_domains).bind(limits.max_members).bind(limits.max_bandwidth_bytes)
                .bind(limits.max_tcp_ports).bind(limits.max_reserved_names)
                .fetch_one(&mut *tx).await?.try_get("id")?;
            match user {
                Some(user) => {
                    sqlx::query("INSERT INTO members (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
                        .bind(org).bind(user).bind(now).execute(&mut *tx).await?;
                    tx.commit().await?;
                }
                None => tx.rollback().await?,
            }
            user
        });
        Ok(id)
    }

    /// Looks a user up by email (case-insensitive).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, p => sqlx::query(
            "SELECT id, email, name, password_hash, created_at, email_verified_at FROM users WHERE email = $1")
            .bind(email.to_lowercase()).fetch_optional(p).await?
            .map(|r| Ok::<_, sqlx::Error>(user_of!(r))).transpose()?);
        Ok(row)
    }

    /// Looks a user up by id.
    pub async fn user(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        let row = on_pool!(self, p => sqlx::query(
            "SELECT id, email, name, password_hash, created_at, email_verified_at FROM users WHERE id = $1")
            .bind(id).fetch_optional(p).await?
            .map(|r| Ok::<_, sqlx::Error>(user_of!(r))).transpose()?);
        Ok(row)
    }

    /// Records that `user_id` proved their address (first time only).
    pub async fn mark_verified(&self, user_id: i64, now: i64) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL")
            .bind(now).bind(user_id).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Changes a member's role; `Ok(false)` when they are not a member.
    pub async fn set_role(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE members SET role = $1 WHERE org_id = $2 AND user_id = $3")
            .bind(role.as_str()).bind(org_id).bind(user_id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Replaces a user's password hash.
    pub async fn set_password(&self, user_id: i64, hash: &str) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash).bind(user_id).execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Creates an organization.
    pub async fn create_org(
        &self,
        name: &str,
        limits: Limits,
        now: i64,
    ) -> Result<i64, StoreError> {
        let id: i64 = on_pool!(self, p => sqlx::query(
            "INSERT INTO organizations (name, created_at, max_tunnels, max_custom_domains, max_members, max_bandwidth_bytes, \
             max_tcp_ports, max_reserved_names) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id")
            .bind(name).bind(now).bind(limits.max_tunnels).bind(limits.max_custom_domains)
            .bind(limits.max_members).bind(limits.max_bandwidth_bytes)
            .bind(limits.max_tcp_ports).bind(limits.max_reserved_names)
            .fetch_all(p).await.and_then(first)?.try_get("id")?);
        Ok(id)
    }

    /// An organization by id.
    pub async fn org(&self, id: i64) -> Result<Option<OrgRow>, StoreError> {
        let row = on_pool!(self, p => {
            match sqlx::query(
                "SELECT id, name, max_tunnels, max_custom_domains, max_members, max_bandwidth_bytes, \
                 max_tcp_ports, max_reserved_names FROM organizations WHERE id = $1")
                .bind(id).fetch_optional(p).await? {
                Some(r) => Some(OrgRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    limits: Limits {
                        max_tunnels: r.try_get("max_tunnels")?,
                        max_custom_domains: r.try_get("max_custom_domains")?,
                        max_members: r.try_get("max_members")?,
                        max_bandwidth_bytes: r.try_get("max_bandwidth_bytes")?,
                        max_tcp_ports: r.try_get("max_tcp_ports")?,
                        max_reserved_names: r.try_get("max_reserved_names")?,
                    },
                }),
                None => None,
            }
        });
        Ok(row)
    }

    /// Replaces an organization's plan limits.
    pub async fn set_limits(&self, org_id: i64, limits: Limits) -> Result<(), StoreError> {
        on_pool!(self, p => sqlx::query(
            "UPDATE organizations SET max_tunnels = $1, max_custom_domains = $2, max_members = $3, \
             max_bandwidth_bytes = $4, max_tcp_ports = $5, max_reserved_names = $6 WHERE id = $7")
            .bind(limits.max_tunnels).bind(limits.max_custom_domains).bind(limits.max_members)
            .bind(limits.max_bandwidth_bytes).bind(limits.max_tcp_ports)
            .bind(limits.max_reserved_names).bind(org_id)
            .execute(p).await.map(|_| ())?);
        Ok(())
    }

    /// Adds `user_id` to `org_id` with `role`; `Ok(false)` when already a member.
    pub async fn add_member(
        &self,
        org_id: i64,
        user_id: i64,
        role: Role,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "INSERT INTO members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, user_id) DO NOTHING")
            .bind(org_id).bind(user_id).bind(role.as_str()).bind(now)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Removes a member; `Ok(false)` when they were not one.
    pub async fn remove_member(&self, org_id: i64, user_id: i64) -> Result<bool, StoreError> {
        let n = on_pool!(self, p => sqlx::query(
            "DELETE FROM members WHERE org_id = $1 AND user_id = $2")
            .bind(org_id).bind(user_id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// The role of `user_id` in `org_id`.
    pub async fn role(&self, org_id: i64, user_id: i64) -> Result<Option<Role>, StoreError> {
        let text: Option<String> = on_pool!(self, p => sqlx::query(
            "SELECT role FROM members WHERE org_id = $1 AND user_id = $2")
            .bind(org_id).bind(user_id).fetch_optional(p).await?
            .map(|r| r.try_get("role")).transpose()?);
        text.map(|t| role_of(&t)).transpose()
    }

    /// The organization a user works in by default: the oldest membership.
    pub async fn home_org(&self, user_id: i64) -> Result<Option<(i64, Role)>, StoreError> {
        let row: Option<(i64, String)> = on_pool!(self, p => sqlx::query(
            "SELECT org_id, role FROM members WHERE user_id = $1 ORDER BY created_at, org_id LIMIT 1")
            .bind(user_id).fetch_optional(p).await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("org_id")?, r.try_get("role")?))).transpose()?);
        row.map(|(id, role)| Ok((id, role_of(&role)?))).transpose()
    }

    /// Organizations a user belongs to, oldest membership first:
    /// `(org id, org name, role)`.
    pub async fn memberships(&self, user_id: i64) -> Result<Vec<(i64, String, Role)>, StoreError> {
        let rows: Vec<(i64, String, String)> = on_pool!(self, p => sqlx::query(
            "SELECT o.id, o.name, m.role FROM members m JOIN organizations o ON o.id = m.org_id \
             WHERE m.user_id = $1 ORDER BY m.created_at, m.org_id")
            .bind(user_id).fetch_all(p).await?.iter()
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("name")?, r.try_get("role")?)))
            .collect::<Result<_, _>>()?);
        rows.into_iter()
            .map(|(id, name, role)| Ok((id, name, role_of(&role)?)))
            .collect()
    }

    /// Members of an organization, oldest first.
    pub async fn members(&self, org_id: i64) -> Result<Vec<MemberRow>, StoreError> {
        let rows: Vec<(i64, String, String)> = on_pool!(self, p => sqlx::query(
            "SELECT m.user_id, u.email, m.role FROM members m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 ORDER BY m.created_at, m.user_id")
            .bind(org_id).fetch_all(p).await?.iter()
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("user_id")?, r.try_get("email")?, r.try_get("role")?)))
            .collect::<Result<_, _>>()?);
        rows.into_iter()
            .map(|(user_id, email, role)| {
                Ok(MemberRow {
                    user_id,
                    email,
                    role: role_of(&role)?,
                })
            })
            .collect()
    }

    /// The built-in operator account (no password) and its organization, created
    /// on first use. Tokens made by `beam server` (bootstrap, `--dev`) belong to it,
    /// and so do tokens from before accounts existed.
    pub async fn ensure_operator(&self, now: i64) -> Result<Operator, StoreError> {
        // `.invalid` can never be a real address (RFC 2606), so no one can register it.
        const EMAIL: &str = "operator@beam.invalid";
        let user_id = match self.user_by_email(EMAIL).await? {
            Some(u) => u.id,
            None => match self.create_user(EMAIL, "operator", None, now).await? {
                Some(id) => id,
                // Another node created it between our two queries.
                None => self
                    .user_by_email(EMAIL)
                    .await?
                    .map(|u| u.id)
                    .ok_or_else(|| StoreError::Corrupt("operator account vanished".into()))?,
            },
        };
        // No mail reaches `.invalid`: the operator is proven by construction.
        self.mark_verified(user_id, now).await?;
        let org_id = match self.home_org(user_id).await? {
            Some((org, _)) => org,
            None => {
                let org = self.create_org("default", Limits::default(), now).await?;
                self.add_member(org, user_id, Role::Owner, now).await?;
                org
            }
        };
        on_pool!(self, p => sqlx::query(
            "UPDATE tokens SET user_id = $1, org_id = $2 WHERE user_id IS NULL")
            .bind(user_id).bind(org_id).execute(p).await.map(|_| ())?);
        Ok(Operator { user_id, org_id })
    }
}

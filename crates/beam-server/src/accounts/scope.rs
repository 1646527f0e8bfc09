//! Permissions: token scopes and organization roles. A request may do something
//! only when its token carries the scope *and* the user's role in the organization
//! allows it, so a viewer's token can never write, whatever scopes it was given.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    /// Open tunnels, and pause, resume, stop or delete them.
    #[serde(rename = "tunnels:write")]
    TunnelsWrite,
    /// List tunnels and read their analytics.
    #[serde(rename = "tunnels:read")]
    TunnelsRead,
    /// Add, verify and remove domains.
    #[serde(rename = "domains:write")]
    DomainsWrite,
    /// List domains.
    #[serde(rename = "domains:read")]
    DomainsRead,
    /// Stream production logs.
    #[serde(rename = "logs:read")]
    LogsRead,
    /// Receive production webhooks.
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    /// Pull sanitized production rows.
    #[serde(rename = "data:read")]
    DataRead,
    /// Read feature flags.
    #[serde(rename = "flags:read")]
    FlagsRead,
    /// Compare environment fingerprints.
    #[serde(rename = "env:check")]
    EnvCheck,
    /// Read the organization: members and their emails, plan limits, usage.
    #[serde(rename = "org:read")]
    OrgRead,
    /// Everything, including tokens, members and plan limits of the organization.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope, in display order.
    pub const ALL: [Scope; 11] = [
        Scope::TunnelsWrite,
        Scope::TunnelsRead,
        Scope::DomainsWrite,
        Scope::DomainsRead,
        Scope::LogsRead,
        Scope::WebhooksRead,
        Scope::DataRead,
        Scope::FlagsRead,
        Scope::EnvCheck,
        Scope::OrgRead,
        Scope::Admin,
    ];

    /// What a new CLI token gets when no scopes are asked for: enough to run
    /// tunnels and manage domains, nothing that reads production.
    pub const CLI_DEFAULT: [Scope; 4] = [
        Scope::TunnelsWrite,
        Scope::TunnelsRead,
        Scope::DomainsWrite,
        Scope::DomainsRead,
    ];

    /// The wire name, e.g. `tunnels:write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TunnelsWrite => "tunnels:write",
            Scope::TunnelsRead => "tunnels:read",
            Scope::DomainsWrite => "domains:write",
            Scope::DomainsRead => "domains:read",
            Scope::LogsRead => "logs:read",
            Scope::WebhooksRead => "webhooks:read",
            Scope::DataRead => "data:read",
            Scope::FlagsRead => "flags:read",
            Scope::EnvCheck => "env:check",
            Scope::OrgRead => "org:read",
            Scope::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes, stored as space-separated names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u16);

impl Scopes {
    /// The set of `list`.
    pub fn of(list: &[Scope]) -> Self {
        Self(list.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// Every scope.
    pub fn all() -> Self {
        Self::of(&Scope::ALL)
    }

    /// Parses the stored form; unknown names are an error so a typo never grants
    /// less (or more) than intended silently.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = Self::default();
        for name in text.split([' ', ',']).filter(|s| !s.is_empty()) {
            let scope = Scope::parse(name).ok_or_else(|| {
                format!(
                    "unknown scope '{name}'; known scopes: {}",
                    Scope::ALL.map(Scope::as_str).join(", ")
                )
            })?;
            set.0 |= scope.bit();
        }
        Ok(set)
    }

    /// Whether `scope` is allowed; `admin` allows everything.
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Admin.bit()) != 0
    }

    /// Whether the set literally contains `scope` (no `admin` expansion).
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Scopes in both sets, expanding `admin` on either side.
    pub fn intersect(self, other: Scopes) -> Scopes {
        let expand = |s: Scopes| {
            if s.contains(Scope::Admin) {
                Scopes::all()
            } else {
                s
            }
        };
        Scopes(expand(self).0 & expand(other).0)
    }

    /// Whether every scope of `self` is allowed by `other`.
    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.list().into_iter().all(|s| other.allows(s))
    }

    /// The scopes in display order.
    pub fn list(self) -> Vec<Scope> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .collect()
    }

    /// Whether no scope is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.list().into_iter().map(Scope::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

/// A user's role in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including deleting the organization's members.
    Owner,
    /// Everything but removing owners.
    Admin,
    /// Tunnels, domains and the parity features; no tokens of others, no members.
    Member,
    /// Read-only.
    Viewer,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Owner, Role::Admin, Role::Member, Role::Viewer]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// The most a token of a user with this role can do.
    pub fn scopes(self) -> Scopes {
        match self {
            Role::Owner | Role::Admin => Scopes::all(),
            // Everything but administration (members, roles, plan, tokens of others).
            Role::Member => Scopes::of(&Scope::ALL[..Scope::ALL.len() - 1]),
            Role::Viewer => Scopes::of(&[
                Scope::TunnelsRead,
                Scope::DomainsRead,
                Scope::LogsRead,
                Scope::FlagsRead,
                Scope::OrgRead,
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_print_and_admin_implies_all() {
        let s = Scopes::parse("tunnels:read domains:write").unwrap();
        assert!(s.allows(Scope::TunnelsRead));
        assert!(!s.allows(Scope::TunnelsWrite));
        assert_eq!(s.to_string(), "tunnels:read domains:write");
        assert!(Scopes::parse("admin").unwrap().allows(Scope::DataRead));
        let err = Scopes::parse("tunnels:rw").unwrap_err();
        assert!(err.contains("unknown scope 'tunnels:rw'"), "{err}");
    }

    #[test]
    fn roles_cap_token_scopes() {
        let admin_token = Scopes::of(&[Scope::Admin]);
        let viewer = admin_token.intersect(Role::Viewer.scopes());
        assert!(viewer.allows(Scope::TunnelsRead));
        assert!(!viewer.allows(Scope::TunnelsWrite));
        assert!(!viewer.allows(Scope::Admin));
        let member = admin_token.intersect(Role::Member.scopes());
        assert!(member.allows(Scope::DataRead));
        assert!(!member.allows(Scope::Admin));
        assert!(
            admin_token
                .intersect(Role::Owner.scopes())
                .allows(Scope::Admin)
        );
    }
}

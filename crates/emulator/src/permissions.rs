//! API token permissions: which tokens the emulator accepts and what each may do. A token of
//! [`super::EmulatorConfig::api_tokens`] may do everything; one of
//! [`super::EmulatorConfig::restricted_tokens`] only what its [`Permission`]s grant. A call the
//! token is not permitted gets what Cloudflare answers then: HTTP 403
//! `{"code": 10000, "message": "Authentication error"}`. Token verification needs no permission.
//!
//! Which permission a route needs is decided from its template ([`required`]): `cfd_tunnel` —
//! Cloudflare Tunnel; `/zones` and `/zones/{id}` — Zone (any DNS permission also lists the
//! zones, as a DNS-only token does on Cloudflare); `dns_records` — DNS; `access/organizations`
//! and `access/identity_providers` — Access: Organizations, Identity Providers, and Groups;
//! every other `access/…` path (apps, policies, tags) — Access: Apps and Policies;
//! `members` — Account Members. Reads (GET, HEAD) need Read or Edit, other methods Edit.

use serde::{Deserialize, Serialize};

/// One permission of a restricted token, named after Cloudflare's permission groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Account → Cloudflare Tunnel → Read.
    TunnelRead,
    /// Account → Cloudflare Tunnel → Edit.
    TunnelEdit,
    /// Zone → Zone → Read.
    ZoneRead,
    /// Zone → DNS → Read.
    DnsRead,
    /// Zone → DNS → Edit.
    DnsEdit,
    /// Account → Access: Apps and Policies → Read.
    AccessAppsRead,
    /// Account → Access: Apps and Policies → Edit.
    AccessAppsEdit,
    /// Account → Access: Organizations, Identity Providers, and Groups → Read.
    AccessOrganizationsRead,
    /// Account → Access: Organizations, Identity Providers, and Groups → Edit.
    AccessOrganizationsEdit,
    /// Account → Account Members → Read (was "Memberships").
    AccountMembersRead,
}

/// A bearer token accepted with only `permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictedToken {
    pub token: String,
    pub permissions: Vec<Permission>,
}

impl RestrictedToken {
    pub fn new(token: impl Into<String>, permissions: &[Permission]) -> RestrictedToken {
        RestrictedToken { token: token.into(), permissions: permissions.to_vec() }
    }
}

/// What a route is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Tunnel,
    Zone,
    Dns,
    AccessApps,
    AccessOrganizations,
    Members,
}

/// An accepted token: its value, the id `/tokens/verify` reports, and its permissions (`None`:
/// all).
#[derive(Debug, Clone)]
pub(super) struct TokenEntry {
    pub token: String,
    pub id: String,
    pub permissions: Option<Vec<Permission>>,
}

impl TokenEntry {
    /// Whether the token may call a route of `scope` (`write`: not a GET/HEAD).
    pub fn allows(&self, scope: Scope, write: bool) -> bool {
        let Some(permissions) = &self.permissions else { return true };
        permissions.iter().any(|p| grants(*p, scope, write))
    }
}

fn grants(permission: Permission, scope: Scope, write: bool) -> bool {
    use Permission::*;
    match (scope, permission) {
        (Scope::Tunnel, TunnelEdit) => true,
        (Scope::Tunnel, TunnelRead) => !write,
        (Scope::Zone, ZoneRead | DnsRead | DnsEdit) => !write,
        (Scope::Dns, DnsEdit) => true,
        (Scope::Dns, DnsRead) => !write,
        (Scope::AccessApps, AccessAppsEdit) => true,
        (Scope::AccessApps, AccessAppsRead) => !write,
        (Scope::AccessOrganizations, AccessOrganizationsEdit) => true,
        (Scope::AccessOrganizations, AccessOrganizationsRead) => !write,
        (Scope::Members, AccountMembersRead) => !write,
        _ => false,
    }
}

/// The scope of a route template (relative to the base path); `None`: no permission needed
/// (token verification, unmatched routes).
pub(super) fn required(template: &str) -> Option<Scope> {
    let segments: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["zones"] | ["zones", _] => Some(Scope::Zone),
        ["zones", _, "dns_records", ..] => Some(Scope::Dns),
        ["accounts", _, "cfd_tunnel", ..] => Some(Scope::Tunnel),
        ["accounts", _, "access", "organizations" | "identity_providers", ..] => Some(Scope::AccessOrganizations),
        ["accounts", _, "access", ..] => Some(Scope::AccessApps),
        ["accounts", _, "members", ..] => Some(Scope::Members),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_their_permission() {
        assert_eq!(required("/accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations"), Some(Scope::Tunnel));
        assert_eq!(required("/zones"), Some(Scope::Zone));
        assert_eq!(required("/zones/{zone_id}/dns_records/{record_id}"), Some(Scope::Dns));
        assert_eq!(required("/accounts/{account_id}/access/apps/{app_id}/policies"), Some(Scope::AccessApps));
        assert_eq!(required("/accounts/{account_id}/access/tags"), Some(Scope::AccessApps));
        assert_eq!(required("/accounts/{account_id}/access/identity_providers"), Some(Scope::AccessOrganizations));
        assert_eq!(required("/accounts/{account_id}/members"), Some(Scope::Members));
        assert_eq!(required("/accounts/{account_id}/tokens/verify"), None);
        assert_eq!(required("/user/tokens/verify"), None);
    }

    #[test]
    fn read_permissions_do_not_write() {
        let token = |permissions: &[Permission]| TokenEntry {
            token: "t".into(),
            id: "i".into(),
            permissions: Some(permissions.to_vec()),
        };
        let dns = token(&[Permission::DnsEdit]);
        assert!(dns.allows(Scope::Dns, true) && dns.allows(Scope::Zone, false));
        assert!(!dns.allows(Scope::Zone, true) && !dns.allows(Scope::Tunnel, false));
        let reader = token(&[Permission::AccessAppsRead, Permission::TunnelRead]);
        assert!(reader.allows(Scope::AccessApps, false) && !reader.allows(Scope::AccessApps, true));
        assert!(reader.allows(Scope::Tunnel, false) && !reader.allows(Scope::Tunnel, true));
        assert!(!token(&[]).allows(Scope::Members, false));
        let full = TokenEntry { permissions: None, ..token(&[]) };
        assert!(full.allows(Scope::Members, true));
    }
}

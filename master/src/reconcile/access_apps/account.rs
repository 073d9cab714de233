//! What the Access step reads: the account's applications and policies (cached between passes
//! by [`super::apply::AccessSync`]), our ownership tag, the operator's policies from the store;
//! and how a failed call is told (with the missing permission, in Cloudflare's words).

use crate::model::OperatorPolicy;
use crate::store::{Store, StoreError};
use dockflare_cloudflare::client::{CfError, CloudflareClient};
use dockflare_cloudflare::types::{AccessApp, AccessPolicy, IdentityProvider};

/// Cloudflare's name for the permission Access applications and policies need.
pub const ACCESS_PERMISSION: &str = "Account › Access: Apps and Policies › Edit";
/// … and the one listing the account's members needs (`access.policy=authenticate`).
pub const MEMBERS_PERMISSION: &str = "Account › Account Settings › Read";
/// … and the one listing identity providers needs (`access.allowed_idps`).
pub const IDP_PERMISSION: &str = "Account › Access: Organizations, Identity Providers, and Groups › Read";

/// The account's Access objects as last seen (and as our own writes changed them).
#[derive(Debug, Default, Clone)]
pub(super) struct Cached {
    pub apps: Vec<AccessApp>,
    pub policies: Vec<AccessPolicy>,
    pub idps: Option<Result<Vec<IdentityProvider>, String>>,
    pub members: Option<Result<Vec<String>, String>>,
}

/// Why an Access call failed, with the permission when that is the cause.
pub(super) fn call_error(what: &str, permission: &str, error: &CfError) -> String {
    if error.is_permission_denied() {
        format!("{what}: the Cloudflare API token lacks the permission {permission} ({error})")
    } else {
        format!("{what}: {error}")
    }
}

/// Lists applications and policies.
pub(super) async fn observe(client: &CloudflareClient) -> Result<Cached, CfError> {
    let apps = client.list_access_apps().await?;
    let policies = client.list_access_policies().await?;
    Ok(Cached { apps, policies, idps: None, members: None })
}

/// Creates our ownership tag unless the account has it.
pub(super) async fn ensure_tag(client: &CloudflareClient, tag: &str) -> Result<(), CfError> {
    if client.list_access_tags().await?.iter().any(|t| t.name == tag) {
        return Ok(());
    }
    match client.create_access_tag(tag).await {
        Ok(_) => Ok(()),
        // Created meanwhile (another master, or a lost answer): fine if it is there now.
        Err(error) if client.list_access_tags().await.is_ok_and(|tags| tags.iter().any(|t| t.name == tag)) => {
            tracing::debug!(message = "Access tag already existed.", %error);
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// The operator's policies, from the store (a store error is passed up: an empty list would
/// delete the synced policies).
pub(super) async fn operator_policies(store: &Store) -> Result<Vec<OperatorPolicy>, StoreError> {
    store.list_access_policies().await
}

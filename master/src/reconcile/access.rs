//! Before any work: is the API token active, and may it edit tunnels, read zones and edit DNS?
//! Checked once per process (until it holds); what is missing is said in Cloudflare's own
//! permission names, and "unreachable" is told apart from "refused".

use super::Reconciler;
use dockflare_cloudflare::client::CfError;

impl Reconciler {
    /// Verifies the token and its permissions; says what is missing.
    pub(super) async fn check_access(&mut self) -> Result<(), String> {
        if self.ready {
            return Ok(());
        }
        let verified = self.client.verify_token().await.map_err(|e| access_error("verifying the API token", &e))?;
        if verified.status != "active" {
            return Err(format!(
                "Cloudflare refused (token/permission): the API token is {} (not active)",
                verified.status
            ));
        }
        let mut missing = Vec::new();
        if let Err(error) = self.client.find_tunnel(&format!("{}-permission-check", self.settings.tunnel_prefix)).await
        {
            if error.is_transient() {
                return Err(access_error("listing tunnels", &error));
            }
            missing.push(format!("Account › Cloudflare Tunnel › Edit ({error})"));
        }
        match self.client.list_zones().await {
            Err(error) if error.is_transient() => return Err(access_error("listing zones", &error)),
            Err(error) => missing.push(format!("Zone › Zone › Read ({error})")),
            Ok(zones) => {
                if let Some(zone) = zones.first() {
                    if let Err(error) =
                        self.client.dns_records_named(&zone.id, &format!("dockflare-check.{}", zone.name)).await
                    {
                        if error.is_transient() {
                            return Err(access_error("reading DNS records", &error));
                        }
                        missing.push(format!("Zone › DNS › Edit ({error})"));
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "Cloudflare refused (token/permission): the API token lacks permissions: {}",
                missing.join("; ")
            ));
        }
        tracing::info!(message = "Cloudflare token verified.", account = %self.client.account_id());
        self.ready = true;
        Ok(())
    }
}

/// A failed check of the Cloudflare setup, cause first: "Cloudflare unreachable (DNS/network):
/// verifying the API token: …" is told apart from "Cloudflare refused (token/permission): …".
fn access_error(step: &str, error: &CfError) -> String {
    format!("Cloudflare {}: {step}: {error}", error.cause())
}

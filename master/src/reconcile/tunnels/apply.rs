//! Tunnels in Cloudflare: found by name or created (a name taken meanwhile, or a create whose
//! outcome is unknown, is looked up again), started on their agents with a `start_tunnel`
//! command, deleted when unneeded, and their health read on drift passes.

use super::plan::tunnel_name;
use crate::clock::now_millis;
use crate::model::{AgentRecord, TunnelRow};
use crate::reconcile::dry_run::DryRun;
use crate::reconcile::ingress::apply::IngressSync;
use crate::reconcile::{AgentCommands, PassReport};
use crate::store::{Store, StoreError};
use dockflare::v1::StartTunnel;
use dockflare_cloudflare::client::CloudflareClient;
use dockflare_cloudflare::codes;
use secrecy::ExposeSecret;
use std::collections::{BTreeSet, HashMap};

/// What the tunnel steps need.
pub struct Tunnels<'a> {
    pub client: &'a CloudflareClient,
    pub store: &'a Store,
    pub commands: &'a dyn AgentCommands,
    pub prefix: &'a str,
    /// A dry run: writes and commands are recorded here instead ([`crate::reconcile::dry_run`]).
    pub dry_run: Option<&'a DryRun>,
}

/// The id a dry run gives a tunnel it would create.
pub const PLANNED_TUNNEL_ID: &str = "(new tunnel)";

impl Tunnels<'_> {
    /// The ids of this installation's tunnels in Cloudflare (`None` when they cannot be listed:
    /// then nothing is taken as gone).
    pub async fn live_ids(&self) -> Option<BTreeSet<String>> {
        match self.client.list_tunnels(self.prefix).await {
            Ok(tunnels) => Some(tunnels.into_iter().map(|t| t.id).collect()),
            Err(error) => {
                tracing::warn!(message = "Listing tunnels failed.", %error);
                None
            }
        }
    }

    /// The tunnel for `key`: stored (and, when `live_ids` is known, still in Cloudflare), found
    /// by name, or created.
    pub async fn ensure(
        &self,
        key: &str,
        stored: Option<&TunnelRow>,
        live_ids: Option<&BTreeSet<String>>,
        report: &mut PassReport,
    ) -> Result<TunnelRow, String> {
        if let Some(tunnel) = stored {
            if live_ids.is_none_or(|ids| ids.contains(&tunnel.tunnel_id)) {
                return Ok(tunnel.clone());
            }
            tracing::warn!(message = "A managed tunnel disappeared from Cloudflare; recreating it.", tunnel = %tunnel.name);
        }
        let name = tunnel_name(self.prefix, key);
        let found = match self.client.find_tunnel(&name).await.map_err(|e| e.to_string())? {
            Some(tunnel) => tunnel,
            None if self.dry_run.is_some() => {
                if let Some(dry) = self.dry_run {
                    dry.record("tunnel", "create", &name, format!("for {key}"));
                }
                let now = now_millis();
                return Ok(TunnelRow {
                    tunnel_key: key.to_string(),
                    name,
                    tunnel_id: PLANNED_TUNNEL_ID.into(),
                    status: "inactive".into(),
                    connector_count: 0,
                    config_version: 0,
                    connector_config_version: 0,
                    last_error: String::new(),
                    created_at: now,
                    updated_at: now,
                });
            }
            None => match self.client.create_tunnel(&name).await {
                Ok(tunnel) => {
                    report.tunnels_created += 1;
                    tracing::info!(message = "Tunnel created.", tunnel = %name, id = %tunnel.id);
                    tunnel
                }
                // Created meanwhile (409/1013), or a POST whose outcome is unknown (5xx): look again.
                Err(error) if error.has_code(codes::TUNNEL_NAME_TAKEN) || error.is_transient() => {
                    self.client.find_tunnel(&name).await.map_err(|e| e.to_string())?.ok_or_else(|| error.to_string())?
                }
                Err(error) => return Err(error.to_string()),
            },
        };
        let now = now_millis();
        let row = TunnelRow {
            tunnel_key: key.to_string(),
            name,
            tunnel_id: found.id,
            status: found.status.clone(),
            connector_count: 0,
            config_version: stored.map_or(0, |s| s.config_version),
            connector_config_version: stored.map_or(0, |s| s.connector_config_version),
            last_error: String::new(),
            created_at: stored.map(|s| s.created_at).unwrap_or(now),
            updated_at: now,
        };
        if self.dry_run.is_none() {
            self.store.save_tunnel(&row).await.map_err(|e| e.to_string())?;
        }
        Ok(row)
    }

    /// Tells the agent to run the tunnel's connector (with a fresh token) and records it.
    pub async fn start(&self, agent: &AgentRecord, tunnel: &TunnelRow) -> Result<(), String> {
        if let Some(dry) = self.dry_run {
            dry.record("connector", "start", &agent.id, format!("runs the connector of tunnel {}", tunnel.name));
            return Ok(());
        }
        let token = self.client.tunnel_token(&tunnel.tunnel_id).await.map_err(|e| e.to_string())?;
        let start = StartTunnel {
            tunnel_id: tunnel.tunnel_id.clone(),
            tunnel_name: tunnel.name.clone(),
            token: token.expose_secret().to_string(),
            rules: Vec::new(),
        };
        self.commands.start_tunnel(&agent.id, start).await?;
        self.store.set_assigned_tunnel(&agent.id, &tunnel.tunnel_id).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Deletes an unneeded tunnel in Cloudflare, then its row.
    pub async fn delete(
        &self,
        tunnel: &TunnelRow,
        ingress: &mut IngressSync,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        if let Some(dry) = self.dry_run {
            dry.record("tunnel", "delete", &tunnel.name, "no agent or route uses it");
            return Ok(());
        }
        match self.client.delete_tunnel(&tunnel.tunnel_id).await {
            Ok(()) => {
                self.store.delete_tunnel(&tunnel.tunnel_key).await?;
                ingress.forget(&tunnel.tunnel_id);
                report.tunnels_deleted += 1;
                tracing::info!(message = "Tunnel deleted (no agent uses it).", tunnel = %tunnel.name);
            }
            Err(error) => report.errors.push(format!("deleting tunnel {}: {error}", tunnel.name)),
        }
        Ok(())
    }

    /// Reads each tunnel's status, connectors and configuration version, and stores what changed.
    pub async fn refresh_status(&self, tunnels: &HashMap<String, TunnelRow>, ingress: &IngressSync) {
        for tunnel in tunnels.values() {
            let mut row = tunnel.clone();
            match self.client.get_tunnel(&tunnel.tunnel_id).await {
                Ok(found) => {
                    row.status = found.status;
                    row.last_error.clear();
                }
                Err(error) => row.last_error = error.to_string(),
            }
            if let Ok(clients) = self.client.tunnel_connectors(&tunnel.tunnel_id).await {
                row.connector_count = clients.len() as i64;
                row.connector_config_version = clients.iter().map(|c| c.config_version).min().unwrap_or(0);
            }
            // This drift pass's ingress step read (or wrote) the version; read it only if it could not.
            match ingress.config_version(&tunnel.tunnel_id) {
                Some(version) => row.config_version = version,
                None => {
                    if let Ok(configuration) = self.client.get_configuration(&tunnel.tunnel_id).await {
                        row.config_version = configuration.map_or(0, |c| c.version);
                    }
                }
            }
            if row != *tunnel {
                row.updated_at = now_millis();
                if let Err(error) = self.store.save_tunnel(&row).await {
                    tracing::warn!(message = "Could not store the tunnel's health.", tunnel = %row.name, %error);
                }
            }
        }
    }
}

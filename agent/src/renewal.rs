//! Certificate renewal: at ~70% of the certificate's lifetime, a new key
//! and CSR go to RenewCertificate over a fresh connection. The new identity
//! is saved and published; streams already open keep running on their
//! connection, and every new connection uses the new certificate.

use crate::connection::connect_any;
use crate::identity::AgentIdentity;
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::RenewCertificateRequest;
use dockflare_common::pki::new_key_and_csr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Renews forever.
pub async fn run(master_urls: Vec<String>, data_dir: PathBuf, identity: watch::Sender<AgentIdentity>) {
    loop {
        let current = identity.borrow().clone();
        let wait = current.renew_at() - time::OffsetDateTime::now_utc();
        if wait.is_positive() {
            tokio::time::sleep(wait.try_into().unwrap_or(RETRY_MAX)).await;
        }
        match renew(&master_urls, &current).await {
            Ok(renewed) => {
                if let Err(error) = renewed.save(&data_dir) {
                    tracing::error!(message = "Renewed certificate could not be saved; using it in memory.", %error);
                }
                tracing::info!(message = "Certificate renewed.", serial = %renewed.serial_hex, not_after = %renewed.not_after);
                identity.send_replace(renewed);
            }
            Err(error) => {
                let remaining = current.not_after - time::OffsetDateTime::now_utc();
                let retry = Duration::try_from(remaining / 10).unwrap_or(RETRY_MIN).clamp(RETRY_MIN, RETRY_MAX);
                if remaining.is_negative() {
                    tracing::error!(message = "Certificate expired and could not be renewed; the agent must enroll again with a new join token.", %error);
                } else {
                    tracing::warn!(message = "Certificate renewal failed; retrying.", %error, retry_in_s = retry.as_secs());
                }
                tokio::time::sleep(retry).await;
            }
        }
    }
}

async fn renew(master_urls: &[String], current: &AgentIdentity) -> Result<AgentIdentity, String> {
    let (channel, _) = connect_any(master_urls, 0, current).await?;
    let (key_pem, csr_der) = new_key_and_csr(&current.agent_id).map_err(|e| e.to_string())?;
    let response = AgentServiceClient::new(channel)
        .renew_certificate(RenewCertificateRequest { csr_der })
        .await
        .map_err(|status| format!("RenewCertificate: {:?}: {}", status.code(), status.message()))?
        .into_inner();
    AgentIdentity::new(current.agent_id.clone(), response.certificate_pem, key_pem, response.ca_certificates_pem)
}

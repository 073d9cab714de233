//! The agent's identity on disk, in the data dir: `agent_id` (the id the
//! master chose), `agent.pem` (certificate and private key together, 0600,
//! replaced atomically so they always match) and `ca.crt` (the master's CA,
//! pinned at enrollment).

use dockflare_common::pki::{describe_certificate, pem_certificates_der};
use dockflare_common::secret_file::{write_atomically, write_secret_file};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Renew when this fraction of the certificate's lifetime has passed.
const RENEW_AT_FRACTION: f64 = 0.7;

/// Why the identity could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The agent's credentials.
#[derive(Clone)]
pub struct AgentIdentity {
    pub agent_id: String,
    pub certificate_pem: String,
    pub key_pem: SecretString,
    pub ca_pem: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub serial_hex: String,
}

impl fmt::Debug for AgentIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentIdentity")
            .field("agent_id", &self.agent_id)
            .field("serial", &self.serial_hex)
            .field("not_after", &self.not_after)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

impl AgentIdentity {
    /// Builds an identity from what Enroll or RenewCertificate returned.
    pub fn new(
        agent_id: String,
        certificate_pem: String,
        key_pem: SecretString,
        ca_pem: String,
    ) -> Result<Self, String> {
        let der = pem_certificates_der(&certificate_pem).map_err(|e| e.to_string())?;
        let info = describe_certificate(&der[0]).map_err(|e| e.to_string())?;
        pem_certificates_der(&ca_pem).map_err(|e| format!("CA: {e}"))?;
        Ok(AgentIdentity {
            agent_id,
            certificate_pem,
            key_pem,
            ca_pem,
            not_before: info.not_before,
            not_after: info.not_after,
            serial_hex: info.serial_hex,
        })
    }

    /// When to renew: at 70% of the certificate's lifetime.
    pub fn renew_at(&self) -> OffsetDateTime {
        let lifetime = self.not_after - self.not_before;
        self.not_before + lifetime * RENEW_AT_FRACTION
    }

    /// Loads the identity from `dir`; `None` when the agent has not enrolled yet.
    pub fn load(dir: &Path) -> Result<Option<AgentIdentity>, IdentityError> {
        let id_path = dir.join("agent_id");
        let pem_path = dir.join("agent.pem");
        let ca_path = dir.join("ca.crt");
        if !id_path.exists() && !pem_path.exists() {
            return Ok(None);
        }
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| IdentityError::Io { path: path.to_path_buf(), source })
        };
        let agent_id = read(&id_path)?.trim().to_string();
        let bundle = read(&pem_path)?;
        let ca_pem = read(&ca_path)?;
        let (certificate_pem, key_pem) = split_bundle(&bundle).ok_or_else(|| IdentityError::Invalid {
            path: pem_path.clone(),
            reason: "needs a CERTIFICATE and a PRIVATE KEY block".into(),
        })?;
        AgentIdentity::new(agent_id, certificate_pem, key_pem, ca_pem)
            .map(Some)
            .map_err(|reason| IdentityError::Invalid { path: pem_path, reason })
    }

    /// Writes the identity to `dir` (the key only ever with mode 0600).
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        let io = |path: PathBuf| move |source| IdentityError::Io { path, source };
        let bundle = format!("{}{}", self.certificate_pem, self.key_pem.expose_secret());
        write_atomically(&dir.join("ca.crt"), self.ca_pem.as_bytes(), 0o644).map_err(io(dir.join("ca.crt")))?;
        write_secret_file(&dir.join("agent.pem"), bundle.as_bytes()).map_err(io(dir.join("agent.pem")))?;
        write_atomically(&dir.join("agent_id"), format!("{}\n", self.agent_id).as_bytes(), 0o644)
            .map_err(io(dir.join("agent_id")))?;
        Ok(())
    }
}

/// Splits a PEM bundle into its certificate blocks and its private key block.
fn split_bundle(bundle: &str) -> Option<(String, SecretString)> {
    let key_start =
        bundle.find("-----BEGIN PRIVATE KEY-----").or_else(|| bundle.find("-----BEGIN EC PRIVATE KEY-----"))?;
    let (certs, key) = bundle.split_at(key_start);
    if !certs.contains("-----BEGIN CERTIFICATE-----") {
        return None;
    }
    Some((certs.to_string(), SecretString::from(key.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockflare_common::identity::{AgentId, Identity};
    use dockflare_common::pki::{new_key_and_csr, CertificateAuthority};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn identity_round_trips_through_the_data_dir_with_a_private_key_file() -> Result<(), Box<dyn std::error::Error>> {
        let now = OffsetDateTime::now_utc();
        let (ca, _) = CertificateAuthority::generate("ca", now)?;
        let (key, csr) = new_key_and_csr("agent")?;
        let id = AgentId::generate();
        let issued = ca.sign_csr(&csr, &Identity::Agent(id.clone()), time::Duration::hours(10), now)?;
        let identity = AgentIdentity::new(id.to_string(), issued.certificate_pem, key, ca.certificate_pem().into())?;
        let dir = tempfile::tempdir()?;
        assert!(AgentIdentity::load(dir.path())?.is_none());
        identity.save(dir.path())?;
        let loaded = AgentIdentity::load(dir.path())?.ok_or("missing")?;
        assert_eq!(loaded.agent_id, identity.agent_id);
        assert_eq!(loaded.serial_hex, identity.serial_hex);
        assert_eq!(loaded.key_pem.expose_secret(), identity.key_pem.expose_secret());
        assert_eq!(std::fs::metadata(dir.path().join("agent.pem"))?.permissions().mode() & 0o777, 0o600);
        let renew_in = loaded.renew_at() - now;
        assert!(renew_in > time::Duration::hours(6) && renew_in < time::Duration::hours(7), "{renew_in}");
        assert!(!format!("{loaded:?}").contains("PRIVATE KEY"));
        Ok(())
    }
}

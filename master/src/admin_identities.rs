//! Admin identities on this master: whether a presented admin certificate is one the master
//! recorded and has not revoked, with its role, its last use noted (at most once a minute per
//! identity), and revocations noticed within half a second wherever they were made (this
//! master, another master on the same database, or `dockflare-master admin revoke`), so the
//! open streams of a revoked identity end.
//!
//! A cache over the store: one mutex over a small map, never held across an await.

use crate::clock::now_millis;
use crate::store::{AdminIdentityRow, Store, StoreError};
use dockflare_common::identity::Role;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// How often revocations made elsewhere are looked for.
pub const REVOCATION_POLL: Duration = Duration::from_millis(400);
/// Last use is written at most this often per identity.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A caller admitted to AdminService (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// Its certificate's serial (hex): the identity's id.
    pub serial: String,
    pub name: String,
    pub role: Role,
}

/// Why an admin certificate is refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error(
        "admin identity {name} (certificate {serial}) is not recorded by this master; \
         issue one with `dockflare-master admin issue` or `dockflare identities issue`"
    )]
    Unknown { name: String, serial: String },
    #[error("admin identity {name} (certificate {serial}) has been revoked")]
    Revoked { name: String, serial: String },
    #[error(
        "admin identity {name} (certificate {serial}) is recorded as {recorded}, but its certificate says {presented}"
    )]
    RoleMismatch { name: String, serial: String, recorded: String, presented: Role },
    #[error("cannot check the admin identity: {0}")]
    Store(#[from] StoreError),
}

struct Cached {
    revoked: bool,
    recorded_role: String,
    last_touch: i64,
}

/// The registry; cheap to clone.
#[derive(Clone)]
pub struct AdminRegistry {
    store: Store,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    /// Bumped on every revocation this master learns of.
    revocations: Arc<watch::Sender<u64>>,
}

impl AdminRegistry {
    pub fn new(store: Store) -> AdminRegistry {
        AdminRegistry { store, cache: Arc::default(), revocations: Arc::new(watch::channel(0).0) }
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a caller whose certificate chain is verified: recorded, not revoked, same role.
    pub async fn admit(&self, serial: &str, name: &str, role: Role) -> Result<CallerIdentity, AdmissionError> {
        let now = now_millis();
        let cached = self.cache().get_mut(serial).map(|entry| {
            let touch = now - entry.last_touch >= TOUCH_EVERY_MS;
            if touch {
                entry.last_touch = now;
            }
            (entry.revoked, entry.recorded_role.clone(), touch)
        });
        let (revoked, recorded_role, touch) = match cached {
            Some(found) => found,
            None => {
                let row = self
                    .store
                    .get_admin_identity(serial)
                    .await?
                    .ok_or_else(|| AdmissionError::Unknown { name: name.to_string(), serial: serial.to_string() })?;
                let revoked = row.revoked_at.is_some();
                if !revoked {
                    // The first call through this master: recorded before it is answered.
                    self.store.touch_admin_identity(serial, now).await?;
                }
                self.cache()
                    .insert(serial.to_string(), Cached { revoked, recorded_role: row.role.clone(), last_touch: now });
                (revoked, row.role, false)
            }
        };
        let (name, serial) = (name.to_string(), serial.to_string());
        if revoked {
            return Err(AdmissionError::Revoked { name, serial });
        }
        if recorded_role != role.as_str() {
            return Err(AdmissionError::RoleMismatch { name, serial, recorded: recorded_role, presented: role });
        }
        if touch {
            let (store, serial) = (self.store.clone(), serial.clone());
            tokio::spawn(async move {
                if let Err(error) = store.touch_admin_identity(&serial, now).await {
                    tracing::warn!(message = "Could not record an admin identity's last use.", %serial, %error);
                }
            });
        }
        Ok(CallerIdentity { serial, name, role })
    }

    /// Marks `serial` revoked here (its calls refused, its streams told).
    pub fn revoked(&self, serial: &str) {
        let newly = match self.cache().get_mut(serial) {
            Some(entry) => !std::mem::replace(&mut entry.revoked, true),
            // Not cached: the next call reads the record (revoked) from the store.
            None => false,
        };
        if newly {
            tracing::info!(message = "Admin identity revoked; ending its calls.", %serial);
            self.revocations.send_modify(|generation| *generation += 1);
        }
    }

    /// Whether `serial` is known here to be revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.cache().get(serial).is_some_and(|entry| entry.revoked)
    }

    /// Changes whenever a revocation is learnt: streams check [`AdminRegistry::is_revoked`].
    pub fn revocations(&self) -> watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    /// Learns of revocations made elsewhere, every [`REVOCATION_POLL`], until the process ends.
    pub async fn follow_revocations(self) {
        // Revocations from a little before now on (clocks of masters differ a little).
        let mut since = now_millis() - 60_000;
        loop {
            tokio::time::sleep(REVOCATION_POLL).await;
            match self.store.admin_identities_revoked_since(since).await {
                Ok(rows) => {
                    for (serial, revoked_at) in rows {
                        since = since.max(revoked_at - 60_000);
                        self.revoked(&serial);
                    }
                }
                Err(error) => tracing::warn!(message = "Could not read admin identity revocations.", %error),
            }
        }
    }
}

/// The record of an identity issued now.
pub fn new_record(serial: &str, name: &str, role: Role, issued_by: &str, expires_at: i64) -> AdminIdentityRow {
    AdminIdentityRow {
        serial: serial.to_string(),
        name: name.to_string(),
        role: role.as_str().to_string(),
        issued_at: now_millis(),
        issued_by: issued_by.to_string(),
        expires_at,
        last_used_at: None,
        revoked_at: None,
    }
}

/// Records the master's own admin identity (its data dir's `pki/admin.crt`), so that it is
/// admitted, listed and revocable like the others.
pub async fn record_master_identity(store: &Store, certificate_pem: &str) -> Result<(), AdmissionError> {
    let invalid = |reason: String| AdmissionError::Store(StoreError::Corrupt(format!("pki/admin.crt: {reason}")));
    let der = dockflare_common::pki::pem_certificates_der(certificate_pem)
        .map_err(|e| invalid(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| invalid("no certificate".into()))?;
    let info = dockflare_common::pki::describe_certificate(&der).map_err(|e| invalid(e.to_string()))?;
    let Some(dockflare_common::identity::Identity::Admin { name, role }) = info.identity() else {
        return Err(invalid("not an admin identity".into()));
    };
    let expires_at = info.not_after.unix_timestamp() * 1000;
    store.record_admin_identity(&new_record(&info.serial_hex, &name, role, "", expires_at)).await?;
    Ok(())
}

/// Identities last this long unless asked otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// … and at most this long.
pub const MAX_TTL: Duration = Duration::from_secs(3 * 365 * 24 * 3600);
/// … and at least this long.
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// Why an identity cannot be issued (each names the field at fault).
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("name: {0:?} is not 1-64 of a-z, A-Z, 0-9, '-', '_', '.'")]
    Name(String),
    #[error("ttl: {0} is outside 1m..3y")]
    Ttl(String),
    #[error("csr_pem: {0}")]
    Csr(String),
    #[error("signing the certificate: {0}")]
    Sign(String),
}

/// A certificate issued for an admin identity, and the record to store for it.
pub struct IssuedIdentity {
    pub certificate_pem: String,
    pub record: AdminIdentityRow,
}

/// Signs `csr_der` for `name` with `role`, valid `ttl` (zero: [`DEFAULT_TTL`]).
pub fn issue(
    ca: &dockflare_common::pki::CertificateAuthority,
    name: &str,
    role: Role,
    ttl: Duration,
    csr_der: &[u8],
    issued_by: &str,
) -> Result<IssuedIdentity, IssueError> {
    let identity = dockflare_common::identity::Identity::admin(name, role)
        .ok_or_else(|| IssueError::Name(name.chars().take(80).collect()))?;
    let ttl = if ttl.is_zero() { DEFAULT_TTL } else { ttl };
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(IssueError::Ttl(humantime::format_duration(ttl).to_string()));
    }
    let lifetime = time::Duration::try_from(ttl).map_err(|e| IssueError::Ttl(e.to_string()))?;
    let issued = ca.sign_csr(csr_der, &identity, lifetime, time::OffsetDateTime::now_utc()).map_err(|e| match e {
        dockflare_common::pki::PkiError::InvalidCsr(reason) => IssueError::Csr(reason),
        other => IssueError::Sign(other.to_string()),
    })?;
    let expires_at = issued.not_after.unix_timestamp() * 1000;
    Ok(IssuedIdentity {
        certificate_pem: issued.certificate_pem,
        record: new_record(&issued.serial_hex, name, role, issued_by, expires_at),
    })
}

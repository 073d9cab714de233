//! Admin identities: the client certificates the master's CA issued for AdminService, by
//! serial, with name, role, expiry, last use and revocation.

use super::{Store, StoreError};
use sqlx::Row;

/// One admin identity. Its certificate is not stored: the serial names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminIdentityRow {
    /// The certificate's serial number (hex).
    pub serial: String,
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
    pub issued_at: i64,
    /// Who issued it ("" for the master's own identity).
    pub issued_by: String,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "serial, name, role, issued_at, issued_by, expires_at, last_used_at, revoked_at";

fn identity_from_row(row: &sqlx::any::AnyRow) -> Result<AdminIdentityRow, StoreError> {
    Ok(AdminIdentityRow {
        serial: row.try_get("serial")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        issued_at: row.try_get("issued_at")?,
        issued_by: row.try_get("issued_by")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Store {
    /// Records an identity; one already recorded under the serial keeps its use and revocation.
    pub async fn record_admin_identity(&self, identity: &AdminIdentityRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_identities (serial, name, role, issued_at, issued_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (serial) DO NOTHING",
        )
        .bind(&identity.serial)
        .bind(&identity.name)
        .bind(&identity.role)
        .bind(identity.issued_at)
        .bind(&identity.issued_by)
        .bind(identity.expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn get_admin_identity(&self, serial: &str) -> Result<Option<AdminIdentityRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM admin_identities WHERE serial = $1");
        let row = sqlx::query(&sql).bind(serial).fetch_optional(&self.pool).await?;
        row.as_ref().map(identity_from_row).transpose()
    }

    /// Every identity, newest first; without `include_inactive`, only those neither revoked
    /// nor expired at `now`.
    pub async fn list_admin_identities(
        &self,
        include_inactive: bool,
        now: i64,
    ) -> Result<Vec<AdminIdentityRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM admin_identities \
             WHERE $1 = 1 OR (revoked_at IS NULL AND expires_at > $2) ORDER BY issued_at DESC, serial"
        );
        let rows = sqlx::query(&sql).bind(i64::from(include_inactive)).bind(now).fetch_all(&self.pool).await?;
        rows.iter().map(identity_from_row).collect()
    }

    /// Revokes an identity (once: a second revocation keeps the first time). `None` if unknown.
    pub async fn revoke_admin_identity(&self, serial: &str, now: i64) -> Result<Option<AdminIdentityRow>, StoreError> {
        sqlx::query("UPDATE admin_identities SET revoked_at = COALESCE(revoked_at, $2) WHERE serial = $1")
            .bind(serial)
            .bind(now)
            .execute(&self.writer)
            .await?;
        self.get_admin_identity(serial).await
    }

    /// Notes a call by the identity.
    pub async fn touch_admin_identity(&self, serial: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE admin_identities SET last_used_at = $2 WHERE serial = $1")
            .bind(serial)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Serials revoked at or after `since` (for masters that did not revoke them themselves).
    pub async fn admin_identities_revoked_since(&self, since: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT serial, revoked_at FROM admin_identities WHERE revoked_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("serial")?, row.try_get("revoked_at")?))).collect()
    }
}

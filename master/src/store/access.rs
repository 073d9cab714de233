//! The Access applications this installation is releasing: a protected route went public (its
//! Access labels removed), and its application stays until the routes' grace period ends.

use super::{Store, StoreError};
use sqlx::Row;

/// An application being released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRelease {
    /// The application's domain (lower case).
    pub domain: String,
    pub app_id: String,
    /// Unix ms.
    pub delete_at: i64,
}

impl Store {
    pub async fn list_access_releases(&self) -> Result<Vec<AccessRelease>, StoreError> {
        let rows = sqlx::query("SELECT domain, app_id, delete_at FROM access_releases ORDER BY domain")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AccessRelease {
                    domain: row.try_get("domain")?,
                    app_id: row.try_get("app_id")?,
                    delete_at: row.try_get("delete_at")?,
                })
            })
            .collect()
    }

    /// Starts releasing an application (a release already started keeps its deadline).
    pub async fn start_access_release(&self, release: &AccessRelease) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_releases (domain, app_id, delete_at) VALUES ($1, $2, $3) ON CONFLICT (domain) DO NOTHING",
        )
        .bind(&release.domain)
        .bind(&release.app_id)
        .bind(release.delete_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Ends a release (the application was deleted, or is wanted again).
    pub async fn end_access_release(&self, domain: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM access_releases WHERE domain = $1").bind(domain).execute(&self.writer).await?;
        Ok(())
    }
}

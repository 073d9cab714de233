//! The web dashboard's users (name, role, Argon2 hash) and signed-in sessions (by the hash of
//! their cookie, with their CSRF token and expiry).

use super::{Store, StoreError};
use sqlx::Row;

/// A dashboard user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiUser {
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
    /// Argon2 PHC string; never shown.
    pub password_hash: String,
    pub updated_at: i64,
}

/// A signed-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// SHA-256 (hex) of the session cookie.
    pub id_hash: String,
    pub user_name: String,
    pub role: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<UiUser, StoreError> {
    Ok(UiUser {
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        password_hash: row.try_get("password_hash")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates a user or replaces its role and password; its sessions end.
    pub async fn set_ui_user(&self, user: &UiUser) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO ui_users (name, role, password_hash, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash, \
             updated_at = excluded.updated_at",
        )
        .bind(&user.name)
        .bind(&user.role)
        .bind(&user.password_hash)
        .bind(user.updated_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM ui_sessions WHERE user_name = $1").bind(&user.name).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_ui_user(&self, name: &str) -> Result<Option<UiUser>, StoreError> {
        let row = sqlx::query("SELECT name, role, password_hash, updated_at FROM ui_users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Removes a user and ends its sessions; whether it existed.
    pub async fn delete_ui_user(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let removed =
            sqlx::query("DELETE FROM ui_users WHERE name = $1").bind(name).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM ui_sessions WHERE user_name = $1").bind(name).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Every user, by name (with its hash: the caller shows only name and role).
    pub async fn list_ui_users(&self) -> Result<Vec<UiUser>, StoreError> {
        let rows = sqlx::query("SELECT name, role, password_hash, updated_at FROM ui_users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn insert_ui_session(&self, session: &UiSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ui_sessions (id_hash, user_name, role, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.id_hash)
        .bind(&session.user_name)
        .bind(&session.role)
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The session with this cookie hash, if it has not expired at `now`.
    pub async fn get_ui_session(&self, id_hash: &str, now: i64) -> Result<Option<UiSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, user_name, role, csrf_token, created_at, expires_at FROM ui_sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(UiSession {
                id_hash: row.try_get("id_hash")?,
                user_name: row.try_get("user_name")?,
                role: row.try_get("role")?,
                csrf_token: row.try_get("csrf_token")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn delete_ui_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1").bind(id_hash).execute(&self.writer).await?;
        Ok(())
    }

    /// Drops sessions expired before `now`; how many.
    pub async fn delete_expired_ui_sessions(&self, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }
}

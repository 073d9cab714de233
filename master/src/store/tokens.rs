//! Join tokens: stored hashed, with an expiry, a use count and revocation.
//! Enrollment consumes one use and creates the agent in one transaction.

use super::{agents::NewAgent, policy_from_row, Store, StoreError};
use dockflare_common::hostname_policy::HostnamePolicy;
use sqlx::Row;

/// A join token's metadata. The secret is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTokenRow {
    pub id: String,
    pub description: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: u32,
    pub uses: u32,
    pub revoked: bool,
    /// The tunnel group agents enrolled with this token join ("" for a tunnel of their own).
    pub tunnel_group: String,
    /// What agents enrolled with this token may route.
    pub policy: HostnamePolicy,
}

/// Why a join token cannot enroll an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("join token is unknown or its secret does not match")]
    Unknown,
    #[error("join token has expired")]
    Expired,
    #[error("join token has been revoked")]
    Revoked,
    #[error("join token has been used up (every allowed enrollment happened)")]
    UsedUp,
}

impl TokenRejection {
    /// A short name for aggregate logs.
    pub fn code(self) -> &'static str {
        match self {
            TokenRejection::Unknown => "unknown_token",
            TokenRejection::Expired => "expired_token",
            TokenRejection::Revoked => "revoked_token",
            TokenRejection::UsedUp => "used_up_token",
        }
    }
}

/// Ends with the policy columns ([`super::policy_from_row`]).
const COLUMNS: &str = "id, description, created_at, expires_at, max_uses, uses, revoked_at, tunnel_group, \
    allowed_hostnames, allow_wildcards, allow_apex, max_routes";

fn token_from_row(row: &sqlx::any::AnyRow) -> Result<JoinTokenRow, StoreError> {
    Ok(JoinTokenRow {
        id: row.try_get("id")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        max_uses: u32::try_from(row.try_get::<i64, _>("max_uses")?).unwrap_or(u32::MAX),
        uses: u32::try_from(row.try_get::<i64, _>("uses")?).unwrap_or(u32::MAX),
        revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        tunnel_group: row.try_get("tunnel_group")?,
        policy: policy_from_row(row)?,
    })
}

impl Store {
    pub async fn insert_join_token(&self, row: &JoinTokenRow, secret_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO join_tokens (id, secret_hash, description, created_at, expires_at, max_uses, uses, tunnel_group, \
             allowed_hostnames, allow_wildcards, allow_apex, max_routes) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11)",
        )
        .bind(&row.id)
        .bind(secret_hash)
        .bind(&row.description)
        .bind(row.created_at)
        .bind(row.expires_at)
        .bind(i64::from(row.max_uses))
        .bind(&row.tunnel_group)
        .bind(row.policy.allowed_hostnames.join(","))
        .bind(i64::from(row.policy.allow_wildcards))
        .bind(i64::from(row.policy.allow_apex))
        .bind(i64::from(row.policy.max_routes))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn list_join_tokens(&self) -> Result<Vec<JoinTokenRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM join_tokens ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token; `None` if it does not exist.
    pub async fn revoke_join_token(&self, id: &str, now: i64) -> Result<Option<JoinTokenRow>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE join_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Whether a join token would enroll an agent now (read only: Enroll asks this before it
    /// does any work, and [`Store::enroll_agent`] checks again atomically).
    pub async fn check_join_token(
        &self,
        token_id: &str,
        secret_hash: &str,
        now: i64,
    ) -> Result<Result<(), TokenRejection>, StoreError> {
        let row =
            sqlx::query("SELECT secret_hash, expires_at, max_uses, uses, revoked_at FROM join_tokens WHERE id = $1")
                .bind(token_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(Err(TokenRejection::Unknown)) };
        if row.try_get::<String, _>("secret_hash")? != secret_hash {
            return Ok(Err(TokenRejection::Unknown));
        }
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            return Ok(Err(TokenRejection::Revoked));
        }
        if row.try_get::<i64, _>("expires_at")? <= now {
            return Ok(Err(TokenRejection::Expired));
        }
        if row.try_get::<i64, _>("uses")? >= row.try_get::<i64, _>("max_uses")? {
            return Ok(Err(TokenRejection::UsedUp));
        }
        Ok(Ok(()))
    }

    /// Consumes one use of a join token and creates the agent in the token's tunnel group,
    /// atomically. Returns the group.
    pub async fn enroll_agent(
        &self,
        token_id: &str,
        secret_hash: &str,
        now: i64,
        agent: &NewAgent,
    ) -> Result<Result<String, TokenRejection>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let consumed = sqlx::query(
            "UPDATE join_tokens SET uses = uses + 1 \
             WHERE id = $1 AND secret_hash = $2 AND revoked_at IS NULL AND expires_at > $3 AND uses < max_uses \
             RETURNING tunnel_group, allowed_hostnames, allow_wildcards, allow_apex, max_routes",
        )
        .bind(token_id)
        .bind(secret_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(consumed) = consumed else {
            tx.rollback().await?;
            return Ok(Err(self.token_rejection(token_id, secret_hash, now).await?));
        };
        let tunnel_group: String = consumed.try_get("tunnel_group")?;
        let policy = policy_from_row(&consumed)?;
        Store::insert_agent(&mut tx, agent, token_id, &tunnel_group, &policy, now).await?;
        tx.commit().await?;
        Ok(Ok(tunnel_group))
    }

    async fn token_rejection(&self, token_id: &str, secret_hash: &str, now: i64) -> Result<TokenRejection, StoreError> {
        let row =
            sqlx::query("SELECT secret_hash, expires_at, max_uses, uses, revoked_at FROM join_tokens WHERE id = $1")
                .bind(token_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(TokenRejection::Unknown) };
        if row.try_get::<String, _>("secret_hash")? != secret_hash {
            return Ok(TokenRejection::Unknown);
        }
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            return Ok(TokenRejection::Revoked);
        }
        if row.try_get::<i64, _>("expires_at")? <= now {
            return Ok(TokenRejection::Expired);
        }
        Ok(TokenRejection::UsedUp)
    }
}

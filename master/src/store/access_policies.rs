//! Operator-defined Access policies (`access_policies`): put and deleted through the admin API
//! (source `api`), or replaced as a set from the `--access-policies` file (source `file`, one
//! transaction). Each name has one owner: the API does not overwrite a file's policy, a file
//! does not take over an API's. A change bumps the row's revision; a put or reload that changes
//! nothing keeps it (and `updated_at`). A row this master cannot read (unknown source, bad JSON)
//! is left alone: not listed to the reconciler, not overwritten, not deleted.

use super::{Store, StoreError};
use crate::model::{OperatorPolicy, PolicySource, StoredAccessPolicy};
use serde_json::Value;
use sqlx::Row;
use std::collections::HashMap;

const COLUMNS: &str = "name, decision, include_json, exclude_json, require_json, session_duration, source, \
    revision, updated_at, created_by";

/// The table as stored: the readable rows (by name) and those that could not be read.
#[derive(Debug, Default)]
pub struct StoredPolicies {
    pub rows: Vec<StoredAccessPolicy>,
    /// (name, what is wrong with the row).
    pub corrupt: Vec<(String, String)>,
}

/// What a put did.
#[derive(Debug, Clone, PartialEq)]
pub enum PutOutcome {
    Created(StoredAccessPolicy),
    Replaced(StoredAccessPolicy),
    /// The same definition was stored already (revision and time kept).
    Unchanged(StoredAccessPolicy),
    /// A policy of that name from the other source holds the name (the file's, for a put through
    /// the API): nothing was written.
    HeldBy(StoredAccessPolicy),
    /// A row of that name this master cannot read holds the name: nothing was written.
    Unreadable(String),
}

/// What replacing the file's set did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReplace {
    pub created: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Names the file defines that the API (or an unreadable row) holds: when not empty, nothing
    /// was written.
    pub conflicts: Vec<String>,
}

fn rules(text: &str, column: &str) -> Result<Vec<Value>, String> {
    serde_json::from_str(text).map_err(|e| format!("{column} is not a JSON array of rules: {e}"))
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Result<StoredAccessPolicy, (String, String)>, StoreError> {
    let name: String = row.try_get("name")?;
    let source: String = row.try_get("source")?;
    let include: String = row.try_get("include_json")?;
    let exclude: String = row.try_get("exclude_json")?;
    let require: String = row.try_get("require_json")?;
    let parsed = PolicySource::parse(&source).ok_or_else(|| format!("unknown source {source:?}")).and_then(|src| {
        Ok((src, rules(&include, "include_json")?, rules(&exclude, "exclude_json")?, rules(&require, "require_json")?))
    });
    let (source, include, exclude, require) = match parsed {
        Ok(parts) => parts,
        Err(problem) => return Ok(Err((name, problem))),
    };
    Ok(Ok(StoredAccessPolicy {
        policy: OperatorPolicy {
            name,
            decision: row.try_get("decision")?,
            include,
            exclude,
            require,
            session_duration: row.try_get::<Option<String>, _>("session_duration")?,
            source,
            updated_at: row.try_get("updated_at")?,
        },
        revision: row.try_get("revision")?,
        created_by: row.try_get("created_by")?,
    }))
}

fn json(rules: &[Value]) -> Result<String, StoreError> {
    serde_json::to_string(rules).map_err(|e| StoreError::Encode(e.to_string()))
}

/// Writes `policy` with `revision`, inside `tx`.
async fn write(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    policy: &OperatorPolicy,
    revision: i64,
    created_by: &str,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO access_policies ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (name) DO UPDATE SET decision = excluded.decision, include_json = excluded.include_json, \
         exclude_json = excluded.exclude_json, require_json = excluded.require_json, \
         session_duration = excluded.session_duration, source = excluded.source, revision = excluded.revision, \
         updated_at = excluded.updated_at, created_by = excluded.created_by"
    ))
    .bind(&policy.name)
    .bind(&policy.decision)
    .bind(json(&policy.include)?)
    .bind(json(&policy.exclude)?)
    .bind(json(&policy.require)?)
    .bind(policy.session_duration.clone())
    .bind(policy.source.as_str())
    .bind(revision)
    .bind(policy.updated_at)
    .bind(created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every row, read inside `tx` (after its first write).
async fn load_in(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<StoredPolicies, StoreError> {
    let rows =
        sqlx::query(&format!("SELECT {COLUMNS} FROM access_policies ORDER BY name")).fetch_all(&mut **tx).await?;
    collect(&rows)
}

fn collect(rows: &[sqlx::any::AnyRow]) -> Result<StoredPolicies, StoreError> {
    let mut table = StoredPolicies::default();
    for row in rows {
        match from_row(row)? {
            Ok(policy) => table.rows.push(policy),
            Err(corrupt) => table.corrupt.push(corrupt),
        }
    }
    Ok(table)
}

impl Store {
    /// The operator-defined policies this master can read, by name (what the reconciler syncs).
    pub async fn list_access_policies(&self) -> Result<Vec<OperatorPolicy>, StoreError> {
        Ok(self.load_access_policies().await?.rows.into_iter().map(|stored| stored.policy).collect())
    }

    /// Every stored policy with its revision and author, and the rows that could not be read.
    pub async fn load_access_policies(&self) -> Result<StoredPolicies, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM access_policies ORDER BY name")).fetch_all(&self.pool).await?;
        collect(&rows)
    }

    /// One policy (`Err` inside: the row of that name cannot be read, and why).
    pub async fn get_access_policy(
        &self,
        name: &str,
    ) -> Result<Option<Result<StoredAccessPolicy, String>>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM access_policies WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            None => None,
            Some(row) => Some(from_row(&row)?.map_err(|(_, problem)| problem)),
        })
    }

    /// Creates or replaces `policy` (its `source` and `updated_at` as given) for `created_by`,
    /// unless the other source holds the name.
    pub async fn upsert_access_policy(
        &self,
        policy: &OperatorPolicy,
        created_by: &str,
    ) -> Result<PutOutcome, StoreError> {
        let mut tx = self.writer.begin().await?;
        // A write first: SQLite takes its lock now rather than failing a read-then-write upgrade.
        sqlx::query("UPDATE access_policies SET revision = revision WHERE name = $1")
            .bind(&policy.name)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM access_policies WHERE name = $1"))
            .bind(&policy.name)
            .fetch_optional(&mut *tx)
            .await?;
        let existing = match row.as_ref().map(from_row).transpose()? {
            None => None,
            Some(Err((_, problem))) => return Ok(PutOutcome::Unreadable(problem)),
            Some(Ok(existing)) if existing.policy.source != policy.source => return Ok(PutOutcome::HeldBy(existing)),
            Some(Ok(existing)) if existing.policy.same_definition(policy) => {
                return Ok(PutOutcome::Unchanged(existing))
            }
            Some(Ok(existing)) => Some(existing),
        };
        let revision = existing.as_ref().map_or(1, |e| e.revision + 1);
        write(&mut tx, policy, revision, created_by).await?;
        tx.commit().await?;
        let stored = StoredAccessPolicy { policy: policy.clone(), revision, created_by: created_by.to_string() };
        Ok(if existing.is_some() { PutOutcome::Replaced(stored) } else { PutOutcome::Created(stored) })
    }

    /// Deletes the policy `name` of `source` (a policy of the other source stays); whether one
    /// was deleted.
    pub async fn delete_access_policy_of(&self, name: &str, source: PolicySource) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM access_policies WHERE name = $1 AND source = $2")
            .bind(name)
            .bind(source.as_str())
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    /// Deletes the API-defined policy `name` (a file's stays: see [`Store::get_access_policy`]
    /// for why nothing was deleted); whether one was deleted.
    pub async fn delete_access_policy(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_access_policy_of(name, PolicySource::Api).await
    }

    /// Makes the file-sourced rows exactly `policies` (read from `file`), in one transaction:
    /// new ones created, changed ones replaced, those the file no longer has deleted, API rows
    /// untouched. A name the API (or an unreadable row) holds refuses the whole set: nothing is
    /// written and the names are in `conflicts`.
    pub async fn replace_file_policies(
        &self,
        policies: &[OperatorPolicy],
        file: &str,
    ) -> Result<FileReplace, StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("UPDATE access_policies SET revision = revision WHERE source = $1")
            .bind(PolicySource::File.as_str())
            .execute(&mut *tx)
            .await?;
        let table = load_in(&mut tx).await?;
        let by_name: HashMap<&str, &StoredAccessPolicy> =
            table.rows.iter().map(|stored| (stored.policy.name.as_str(), stored)).collect();
        let conflicts: Vec<String> = policies
            .iter()
            .filter(|p| {
                by_name.get(p.name.as_str()).is_some_and(|s| s.policy.source != PolicySource::File)
                    || table.corrupt.iter().any(|(name, _)| *name == p.name)
            })
            .map(|p| p.name.clone())
            .collect();
        if !conflicts.is_empty() {
            return Ok(FileReplace { conflicts, ..FileReplace::default() });
        }
        let mut outcome = FileReplace::default();
        for stored in table.rows.iter().filter(|s| s.policy.source == PolicySource::File) {
            if !policies.iter().any(|p| p.name == stored.policy.name) {
                sqlx::query("DELETE FROM access_policies WHERE name = $1 AND source = $2")
                    .bind(&stored.policy.name)
                    .bind(PolicySource::File.as_str())
                    .execute(&mut *tx)
                    .await?;
                outcome.removed.push(stored.policy.name.clone());
            }
        }
        for policy in policies {
            let mut policy = policy.clone();
            policy.source = PolicySource::File;
            match by_name.get(policy.name.as_str()) {
                // The same definition (perhaps from a file at another path): revision and time kept.
                Some(stored) if stored.policy.same_definition(&policy) => {
                    if stored.created_by != file {
                        write(&mut tx, &stored.policy, stored.revision, file).await?;
                    }
                }
                Some(stored) => {
                    write(&mut tx, &policy, stored.revision + 1, file).await?;
                    outcome.changed.push(policy.name.clone());
                }
                None => {
                    write(&mut tx, &policy, 1, file).await?;
                    outcome.created.push(policy.name.clone());
                }
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }
}

//! The master's durable state, through sqlx: SQLite by default (a WAL file in
//! the data dir), PostgreSQL when several masters share one database.
//!
//! One SQL dialect serves both backends (`$N` placeholders, `ON CONFLICT`,
//! `RETURNING`); only the migrations differ (`migrations/sqlite`,
//! `migrations/postgres`). Every write transaction starts with a write, so
//! SQLite takes its lock up front and waits on `busy_timeout` instead of
//! failing a read-then-write upgrade.

mod access;
mod access_policies;
mod agents;
mod bulk;
mod commands;
mod containers;
mod events;
mod identities;
mod ride_along;
mod routes;
mod sqlite_file;
mod tokens;
mod watch;
mod web;

pub use crate::model::{
    AgentRecord, ContainerRow, ManualRoute, OperatorPolicy, PolicySource, StoredAccessPolicy, TunnelRow,
    STATUS_OFFLINE, STATUS_ONLINE, STATUS_REVOKED,
};
pub use access::AccessRelease;
pub use access_policies::{FileReplace, PutOutcome, StoredPolicies};
pub use agents::{AgentRegistration, NewAgent, Registration};
pub use commands::{CommandRow, CommandState, DeliveredRun, Enqueued};
pub use containers::{ContainerChange, ContainerChangeEntry};
pub use events::{CommandAck, ConnectorReport, EventBatch, StoredEvent, PROGRESS_ONLY_KINDS, YIELD_AFTER};
pub use identities::AdminIdentityRow;
pub use ride_along::CommandWrite;
pub use routes::{CorruptRoute, StoredRoutes};
pub use tokens::{JoinTokenRow, TokenRejection};
pub use watch::{WatchMeta, WatchRow, WatchWrite};
pub use web::{UiSession, UiUser};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Which database the store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create or restrict the database file {path}: {source}")]
    DatabaseFile { path: std::path::PathBuf, source: std::io::Error },
    #[error("database URL {0:?} is not supported: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("cannot encode the row: {0}")]
    Encode(String),
}

/// Reads the policy columns of a row (agents and join_tokens share them: allowed_hostnames,
/// allow_wildcards, allow_apex, max_routes).
pub(crate) fn policy_from_row(
    row: &sqlx::any::AnyRow,
) -> Result<dockflare_common::hostname_policy::HostnamePolicy, StoreError> {
    use sqlx::Row;
    let patterns: String = row.try_get("allowed_hostnames")?;
    Ok(dockflare_common::hostname_policy::HostnamePolicy {
        allowed_hostnames: patterns.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect(),
        allow_wildcards: row.try_get::<i64, _>("allow_wildcards")? != 0,
        allow_apex: row.try_get::<i64, _>("allow_apex")? != 0,
        max_routes: u32::try_from(row.try_get::<i64, _>("max_routes")?).unwrap_or(u32::MAX),
    })
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to a bad query or row).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)
            )
        ) || matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.message().contains("locked"))
    }
}

/// Handle to the master's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes. On SQLite one connection: writers queue in order on the pool (a fair
    /// semaphore) instead of polling SQLite's lock from `busy_timeout`, whose sleeps of up to
    /// 100 ms let a busy event writer win again and again while a command waits. On PostgreSQL
    /// the same pool as reads.
    writer: AnyPool,
    backend: Backend,
    /// Commands waiting for the writer connection now ([`Store::waiting_for_writer`]).
    commands_waiting: Arc<AtomicUsize>,
    /// Commands handed to the event transaction in progress (SQLite, [`ride_along`]).
    ride_along: ride_along::RideAlong,
}

/// Counts a command waiting for the writer connection while it lives.
pub struct WaitingForWriter(Arc<AtomicUsize>);

impl Drop for WaitingForWriter {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The writer connection's page cache and checkpoints. A fleet's batch touches a row of
/// thousands of agents: with SQLite's default 2 MiB cache each one was a page read again
/// (`pread`) and every commit ran a checkpoint (WAL over 1,000 pages), both inside the
/// transaction commands wait behind.
const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 8192;";

/// How long a write waits for SQLite's one writer connection before failing.
const SQLITE_WRITE_WAIT: Duration = Duration::from_secs(30);

/// The database URL for the default SQLite file in `data_dir`.
pub fn default_sqlite_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("dockflare.db").display())
}

impl Store {
    /// Connects and runs the migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        if backend == Backend::Sqlite {
            if let Some(path) = sqlite_file::database_path(url) {
                match sqlite_file::restrict(&path) {
                    Ok(true) => {
                        tracing::info!(message = "Made the database file private (0600).", path = %path.display())
                    }
                    Ok(false) => {}
                    Err(source) => return Err(StoreError::DatabaseFile { path, source }),
                }
            }
        }
        let options = AnyConnectOptions::from_str(url)?;
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let sqlite_pool = |connections: u32, wait: Duration, pragmas: &'static str| {
                    AnyPoolOptions::new()
                        .max_connections(connections)
                        .acquire_timeout(wait)
                        // A file's connection does not go stale: no ping (a round trip to the
                        // connection's thread) before every query.
                        .test_before_acquire(false)
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                conn.execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;",
                                )
                                .await?;
                                if !pragmas.is_empty() {
                                    conn.execute(pragmas).await?;
                                }
                                Ok(())
                            })
                        })
                };
                let writer =
                    sqlite_pool(1, SQLITE_WRITE_WAIT, SQLITE_WRITER_PRAGMAS).connect_with(options.clone()).await?;
                if sqlite_file::database_path(url).is_some() {
                    (sqlite_pool(8, Duration::from_secs(10), "").connect_with(options).await?, writer)
                } else {
                    // An in-memory database lives in its connection: reads and writes share it.
                    (writer.clone(), writer)
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                (pool.clone(), pool)
            }
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&writer).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&writer).await?,
        }
        Ok(Store { pool, writer, backend, commands_waiting: Arc::default(), ride_along: Default::default() })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Marks a command as waiting for the writer connection until the guard is dropped: an
    /// event batch in progress on SQLite commits early for it ([`Store::write_event_chunks`]).
    pub fn waiting_for_writer(&self) -> WaitingForWriter {
        self.commands_waiting.fetch_add(1, Ordering::Relaxed);
        WaitingForWriter(self.commands_waiting.clone())
    }

    /// Whether an event transaction is open now and takes commands along (SQLite; diagnostics
    /// and tests).
    pub fn event_transaction_open(&self) -> bool {
        self.ride_along.is_open()
    }

    /// Commands waiting for the writer connection now.
    fn commands_waiting(&self) -> usize {
        self.commands_waiting.load(Ordering::Relaxed)
    }

    /// One round trip to the database (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How many rows of `table` have each value of `column` (metrics: agents by status, routes
    /// by status). Only the master's own table and column names are passed here.
    pub async fn count_by(&self, table: &'static str, column: &'static str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {column}, COUNT(*) AS n FROM {table} GROUP BY {column}"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((sqlx::Row::try_get::<String, _>(row, column)?, sqlx::Row::try_get::<i64, _>(row, "n")?)))
            .collect()
    }

    /// Sends a PostgreSQL notification to the other masters.
    pub async fn pg_notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (used by tests and at shutdown).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// A database URL with its password replaced, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &credentials[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Unix milliseconds of a timestamp.
pub fn unix_millis(at: time::OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The timestamp of Unix milliseconds (saturating on nonsense).
pub fn from_unix_millis(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is negative: {value}")))
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is too large: {value}")))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///x.db"), "sqlite:///x.db");
    }
}

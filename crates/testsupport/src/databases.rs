//! Databases that exist for one test: a SQLite file in a temporary directory, or a PostgreSQL
//! database on the server of `DOCKFLARE_TEST_POSTGRES_URL`, dropped at the end. PostgreSQL
//! tests never skip silently: without the variable they fail, saying how to provide it.

use anyhow::{anyhow, Context, Result};
use sqlx::Connection;
use tempfile::TempDir;

/// The environment variable naming the PostgreSQL server the tests may use.
pub const POSTGRES_URL_VAR: &str = "DOCKFLARE_TEST_POSTGRES_URL";

/// The PostgreSQL admin URL (a role that may CREATE DATABASE). Panics when
/// it is unset: PostgreSQL tests never skip silently.
pub fn postgres_admin_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{POSTGRES_URL_VAR} is not set: these tests need PostgreSQL. Run deploy/test.sh (it starts PostgreSQL, \
             creates the test role and exports {POSTGRES_URL_VAR}), or export it yourself, e.g. \
             {POSTGRES_URL_VAR}=postgres://dockflare:dockflare-test@127.0.0.1:5432/postgres"
        ),
    }
}

/// `url` with its database name (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> Result<String> {
    let scheme_end = url.find("://").ok_or_else(|| anyhow!("{POSTGRES_URL_VAR} is not a URL"))? + 3;
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    Ok(format!("{host_part}/{database}{query}"))
}

/// A database that exists for one test only: a SQLite file in a temporary
/// directory, or a PostgreSQL database that is dropped at the end.
pub struct TestDatabase {
    /// "sqlite" or "postgres", for messages.
    pub name: &'static str,
    pub url: String,
    _dir: Option<TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh SQLite database in a new temporary directory.
    pub fn sqlite() -> Result<TestDatabase> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("dockflare.db").display());
        Ok(TestDatabase { name: "sqlite", url, _dir: Some(dir), postgres: None })
    }

    /// A fresh PostgreSQL database `dockflare_test_<random>` on the server of
    /// `DOCKFLARE_TEST_POSTGRES_URL`.
    pub async fn postgres() -> Result<TestDatabase> {
        let admin_url = postgres_admin_url();
        let database = format!("dockflare_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.with_context(|| {
            format!(
                "connecting to {} ({POSTGRES_URL_VAR}); is PostgreSQL running? deploy/test.sh starts it",
                redact(&admin_url)
            )
        })?;
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {database}"))?;
        let _ = admin.close().await;
        let url = with_database(&admin_url, &database)?;
        Ok(TestDatabase { name: "postgres", url, _dir: None, postgres: Some((admin_url, database)) })
    }
}

impl Drop for TestDatabase {
    /// Drops the PostgreSQL database, best effort (its connections are
    /// ended by `WITH (FORCE)`). Runs on its own thread so that it works
    /// inside and outside a tokio runtime.
    fn drop(&mut self) {
        let Some((admin_url, database)) = self.postgres.take() else { return };
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// A fresh database on each backend: SQLite, then PostgreSQL.
pub async fn test_databases() -> Result<Vec<TestDatabase>> {
    Ok(vec![TestDatabase::sqlite()?, TestDatabase::postgres().await?])
}

/// `url` with its password hidden, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => match url[scheme_end + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..scheme_end + 3 + colon], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

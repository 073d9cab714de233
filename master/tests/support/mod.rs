//! The master's own additions to [`dockflare_testsupport`] (everything else the tests share
//! lives there): opening the store of a test database, as the master would.
#![allow(dead_code, unused_imports)]

use anyhow::{Context, Result};
use dockflare_master::store::Store;
pub use dockflare_testsupport::{postgres_admin_url, test_databases, TestDatabase, POSTGRES_URL_VAR};

/// Opens the store of a test database (running the migrations).
#[allow(async_fn_in_trait)]
pub trait OpenStore {
    async fn connect(&self) -> Result<Store>;
}

impl OpenStore for TestDatabase {
    async fn connect(&self) -> Result<Store> {
        Store::connect(&self.url).await.with_context(|| format!("opening the {} store", self.name))
    }
}

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

/// An Access rule (JSON) as the admin API carries it: a `google.protobuf.Struct`.
pub fn rule(json: serde_json::Value) -> prost_types::Struct {
    fn value(json: &serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match json {
            serde_json::Value::String(text) => Kind::StringValue(text.clone()),
            serde_json::Value::Object(fields) => Kind::StructValue(prost_types::Struct {
                fields: fields.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
            }),
            other => Kind::StringValue(other.to_string()),
        };
        prost_types::Value { kind: Some(kind) }
    }
    match value(&json).kind {
        Some(prost_types::value::Kind::StructValue(fields)) => fields,
        _ => prost_types::Struct::default(),
    }
}

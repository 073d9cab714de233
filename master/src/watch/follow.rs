//! Bringing a master's view up to what the store recorded: the rows newer than the view's
//! revision, in order, applied and told to the watchers.

use super::{kind_from_name, Entry, WatchHub};
use crate::store::{Store, StoreError, WatchRow};
use dockflare::v1;
use prost::Message;

/// A recorded row as a view entry. A row that does not decode still moves the revision on
/// (as a tombstone without content), so one bad row cannot stall the feed.
pub fn entry_from_row(row: WatchRow) -> Entry {
    let decoded = v1::WatchChangesResponse::decode(row.payload.as_slice());
    let kind = kind_from_name(&row.kind);
    let (message, deleted, kind) = match (decoded, kind) {
        (Ok(message), Some(kind)) => (message, row.deleted, kind),
        (decoded, kind) => {
            tracing::warn!(
                message = "A recorded watch object is unreadable; treating it as deleted.",
                kind = %row.kind,
                key = %row.key,
                revision = row.revision,
                error = decoded.err().map(|e| e.to_string()).unwrap_or_else(|| "unknown kind".into())
            );
            (v1::WatchChangesResponse::default(), true, kind.unwrap_or(v1::ResourceKind::Unspecified))
        }
    };
    let hash = super::diff::material_hash(&message);
    Entry {
        kind,
        key: row.key,
        agents: row.agents.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect(),
        revision: row.revision,
        changed_at: row.changed_at,
        deleted,
        message,
        hash,
    }
}

/// Reads and applies everything recorded after the view's revision.
pub async fn catch_up(store: &Store, hub: &WatchHub) -> Result<(), StoreError> {
    loop {
        let rows = store.watch_changes_after(hub.revision()).await?;
        if rows.is_empty() {
            let meta = store.watch_meta().await?;
            hub.apply(Vec::new(), meta.compacted);
            return Ok(());
        }
        hub.apply(rows.into_iter().map(entry_from_row).collect(), 0);
    }
}

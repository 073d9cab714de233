//! `/api/live`: the watch feed as Server-Sent Events, for the page. A snapshot (`change`
//! events with type CHANGE_TYPE_SNAPSHOT), `synced`, then each change; every event's id is its
//! revision, so the browser's automatic reconnect (Last-Event-ID) resumes where it was. A
//! reader that falls behind gets `lagged` and reconnects; the stream ends when the session ends
//! (`signed-out`) or the master stops. Objects are the admin API's, in its JSON mapping.

use super::session::Signed;
use super::WebState;
use crate::clock::now_millis;
use crate::watch::{Batch, Entry, Start};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dockflare::v1;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

const BUFFER: usize = 256;
/// How often the stream checks that its session still exists.
const SESSION_CHECK: Duration = Duration::from_secs(5);

fn pool() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(dockflare::FILE_DESCRIPTOR_SET).ok()).as_ref()
}

/// A watch message in the protobuf JSON mapping.
pub fn to_json(message: &v1::WatchChangesResponse) -> String {
    let Some(descriptor) = pool().and_then(|p| p.get_message_by_name("dockflare.v1.WatchChangesResponse")) else {
        return "{}".into();
    };
    let Ok(dynamic) = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()) else {
        return "{}".into();
    };
    let mut out = serde_json::Serializer::new(Vec::new());
    let options = SerializeOptions::new().skip_default_fields(true);
    if dynamic.serialize_with_options(&mut out, &options).is_err() {
        return "{}".into();
    }
    String::from_utf8(out.into_inner()).unwrap_or_else(|_| "{}".into())
}

fn change_event(entry: &Entry, change: v1::ChangeType) -> Event {
    Event::default().event("change").id(entry.revision.to_string()).data(to_json(&entry.to_response(change)))
}

fn kind_of(entry: &Entry) -> v1::ChangeType {
    if entry.deleted {
        v1::ChangeType::Delete
    } else {
        v1::ChangeType::Upsert
    }
}

pub async fn events(
    axum::extract::State(state): axum::extract::State<WebState>,
    signed: Signed,
    headers: HeaderMap,
) -> Response {
    let hub = state.master.watch.clone();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    // A revision the feed cannot serve: start over with a snapshot (the page resets).
    let (start, changes, reset) = match hub.start(&[], "", resume) {
        Ok((start, changes)) => (start, changes, false),
        Err(_) => match hub.start(&[], "", 0) {
            Ok((start, changes)) => (start, changes, true),
            Err(_) => return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "the feed is unavailable").into_response(),
        },
    };
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(BUFFER);
    let store = state.master.store.clone();
    tokio::spawn(async move {
        let closed = hub.closed();
        let send = |event: Event| {
            let tx = tx.clone();
            async move { tx.send(Ok(event)).await.is_ok() }
        };
        if reset && !send(Event::default().event("reset").data("{}")).await {
            return;
        }
        let mut at = match start {
            Start::Snapshot { objects, revision } => {
                for entry in objects {
                    if !send(change_event(&entry, v1::ChangeType::Snapshot)).await {
                        return;
                    }
                }
                revision
            }
            Start::Resume { missed, revision } => {
                for entry in missed {
                    if !send(change_event(&entry, kind_of(&entry))).await {
                        return;
                    }
                }
                revision
            }
        };
        if !send(Event::default().event("synced").id(at.to_string()).data(format!("{{\"revision\":{at}}}"))).await {
            return;
        }
        let mut changes: broadcast::Receiver<Batch> = changes;
        let mut check = tokio::time::interval(SESSION_CHECK);
        loop {
            tokio::select! {
                batch = changes.recv() => match batch {
                    Ok(batch) => {
                        for entry in batch.iter().filter(|e| e.revision > at) {
                            if !send(change_event(entry, kind_of(entry))).await {
                                return;
                            }
                        }
                        at = at.max(batch.last().map_or(at, |e| e.revision));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        send(Event::default().event("lagged").data(format!("{{\"revision\":{at}}}"))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = check.tick() => {
                    let alive = store.get_ui_session(&signed.id_hash, now_millis()).await.map(|s| s.is_some()).unwrap_or(true);
                    if !alive {
                        send(Event::default().event("signed-out").data("{}")).await;
                        return;
                    }
                }
                _ = closed.cancelled() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

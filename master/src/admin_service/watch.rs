//! WatchChanges: a snapshot (or what a resuming client missed), SYNCED, then each change as
//! the feed applies it, filtered by kind and agent. Each watcher is one task writing into a
//! bounded channel; one that falls behind the feed's broadcast is ended with
//! RESOURCE_EXHAUSTED and the revision to resume from. A revoked identity's watch ends within
//! a second; every watch ends when the master stops.

use super::identities::caller;
use super::AdminApi;
use crate::watch::{Batch, Entry, ResumeError, Start, WatchHub};
use dockflare::v1;
use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status};

/// Messages buffered per watcher before its task waits for the client.
const WATCHER_BUFFER: usize = 256;

pub type WatchStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::WatchChangesResponse, Status>> + Send + 'static>>;

fn kinds(request: &v1::WatchChangesRequest) -> Result<Vec<v1::ResourceKind>, Status> {
    request
        .kinds
        .iter()
        .map(|value| match v1::ResourceKind::try_from(*value) {
            Ok(v1::ResourceKind::Unspecified) | Err(_) => Err(Status::invalid_argument(format!(
                "kinds: {value} is not a resource kind (RESOURCE_KIND_ROUTE, _AGENT, _TUNNEL, _DIAGNOSTIC, _CONNECTOR)"
            ))),
            Ok(kind) => Ok(kind),
        })
        .collect()
}

fn synced(revision: u64) -> v1::WatchChangesResponse {
    v1::WatchChangesResponse { r#type: v1::ChangeType::Synced as i32, revision, ..Default::default() }
}

pub(super) async fn watch_changes(
    api: &AdminApi,
    request: Request<v1::WatchChangesRequest>,
) -> Result<Response<WatchStream>, Status> {
    let who = caller(&request)?;
    let request = request.into_inner();
    let kinds = kinds(&request)?;
    let hub = api.state.watch.clone();
    let (start, subscription) =
        hub.start(&kinds, &request.agent_id, request.resume_revision).map_err(|error| match error {
            ResumeError::TooOld { .. } | ResumeError::Ahead { .. } => Status::out_of_range(error.to_string()),
        })?;
    let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
    let admins = api.state.admins.clone();
    let watcher = Watcher { hub, kinds, agent: request.agent_id, tx, serial: who.serial.clone() };
    tokio::spawn(async move {
        let mut revocations = admins.revocations();
        let revoked = async move {
            loop {
                if revocations.changed().await.is_err() {
                    return std::future::pending().await;
                }
                if admins.is_revoked(&who.serial) {
                    return who.name;
                }
            }
        };
        watcher.run(start, subscription, revoked).await;
    });
    Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
}

struct Watcher {
    hub: WatchHub,
    kinds: Vec<v1::ResourceKind>,
    agent: String,
    tx: mpsc::Sender<Result<v1::WatchChangesResponse, Status>>,
    serial: String,
}

impl Watcher {
    async fn send(&self, message: Result<v1::WatchChangesResponse, Status>) -> bool {
        self.tx.send(message).await.is_ok()
    }

    async fn run(
        self,
        start: Start,
        mut changes: broadcast::Receiver<Batch>,
        revoked: impl std::future::Future<Output = String>,
    ) {
        tokio::pin!(revoked);
        let closed = self.hub.closed();
        let mut at = match start {
            Start::Snapshot { objects, revision } => {
                for entry in objects {
                    if !self.send(Ok(entry.to_response(v1::ChangeType::Snapshot))).await {
                        return;
                    }
                }
                revision
            }
            Start::Resume { missed, revision } => {
                for entry in missed {
                    if !self.send(Ok(entry.to_response(change_type(&entry)))).await {
                        return;
                    }
                }
                revision
            }
        };
        if !self.send(Ok(synced(at))).await {
            return;
        }
        loop {
            let batch = tokio::select! {
                batch = changes.recv() => batch,
                name = &mut revoked => {
                    let status = Status::unauthenticated(format!("admin identity {name} ({}) has been revoked", self.serial));
                    self.send(Err(status)).await;
                    return;
                }
                _ = closed.cancelled() => {
                    let status = Status::unavailable(format!("the master is stopping: reconnect (to another master) with resume_revision {at}"));
                    self.send(Err(status)).await;
                    return;
                }
                _ = self.tx.closed() => return,
            };
            match batch {
                Ok(batch) => {
                    for entry in batch.iter() {
                        if entry.revision <= at {
                            continue;
                        }
                        at = entry.revision;
                        if entry.wanted(&self.kinds, &self.agent)
                            && !self.send(Ok(entry.to_response(change_type(entry)))).await
                        {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!("dockflare_watchers_cut_off_total").increment(1);
                    tracing::info!(
                        message = "Cut off a watcher that fell behind.",
                        missed_batches = missed,
                        revision = at
                    );
                    let status = Status::resource_exhausted(format!(
                        "this watcher fell behind the master's changes ({missed} batches unread): \
                         reconnect with resume_revision {at} and read faster"
                    ));
                    self.send(Err(status)).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

fn change_type(entry: &Entry) -> v1::ChangeType {
    if entry.deleted {
        v1::ChangeType::Delete
    } else {
        v1::ChangeType::Upsert
    }
}

//! The Docker watch loop. After connecting (and after every reconnect: the
//! daemon restarted, the socket went away) it subscribes to events first,
//! then lists everything and sends a full status report — no event is ever
//! assumed seen. Then it follows container (and, on Swarm managers, service)
//! events, re-inspecting what an event names, and relists periodically to
//! catch what events do not say (tasks on other nodes, missed events).
//! On a standalone engine it also connects enabled containers new to it to
//! the connector's network ([`super::attach`]), so their routes resolve, and
//! reports a start once its container is attached.

use super::attach::{self, Member};
use super::engine::{self, EngineError, HostMode, ModeChoice};
use super::observe;
use super::reachability::{self, NetworkNames};

use crate::inventory::Inventory;
use crate::outbox::Outbox;
use bollard::models::EventMessage;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, ListServicesOptions, ListTasksOptions};
use bollard::Docker;
use dockflare::v1::agent_event::Event;
use dockflare::v1::Container;
use dockflare_common::labels;
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the watcher needs.
#[derive(Clone)]
pub struct WatchContext {
    pub selection: observe::Selection,
    pub mode_choice: ModeChoice,
    pub inventory: Inventory,
    pub outbox: Outbox,
    /// Full relist period (standalone hosts).
    pub relist_every: Duration,
    /// Full relist period on Swarm managers (task placement changes produce no events).
    pub swarm_relist_every: Duration,
    /// The detected host mode, published after each (re)connect.
    pub mode: watch::Sender<Option<HostMode>>,
    /// Whether the engine answers, for /readyz.
    pub status: crate::status::AgentStatus,
    /// On a standalone engine: the connector's network, which enabled containers are connected
    /// to when they are not on it yet (alias: their name), so that `http://NAME:PORT` resolves
    /// from the connector. `None`: leave container networks alone.
    pub attach_network: Option<String>,
}

const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Watches forever.
pub async fn run(context: WatchContext) {
    let mut delay = RETRY_MIN;
    loop {
        match watch_once(&context).await {
            Ok(()) => delay = RETRY_MIN,
            Err(error) => {
                context.status.docker_lost(error.to_string());
                tracing::warn!(message = "Lost the Docker engine; reconnecting.", %error, retry_in_ms = delay.as_millis() as u64);
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_MAX);
    }
}

async fn watch_once(context: &WatchContext) -> Result<(), EngineError> {
    let docker = engine::connect().await?;
    let mode = engine::detect_mode(&docker, context.mode_choice).await?;
    let manager = matches!(mode, HostMode::Swarm { manager: true, .. });
    context.status.docker_connected(format!("{mode:?}"));
    if context.mode.borrow().as_ref() != Some(&mode) {
        tracing::info!(message = "Docker engine connected.", mode = ?mode, api = %docker.client_version());
        context.mode.send_replace(Some(mode.clone()));
    }

    let mut types = vec!["container".to_string()];
    if manager {
        types.push("service".to_string());
    }
    let filters = HashMap::from([("type".to_string(), types)]);
    let mut events = Box::pin(docker.events(Some(EventsOptions { filters: Some(filters), ..Default::default() })));

    let mut names = NetworkNames::default();
    relist(context, &docker, manager, &mut names, Relist::AfterConnect).await?;

    let period = if manager { context.swarm_relist_every } else { context.relist_every };
    let mut relist_timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    relist_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    metrics::counter!("dockflare_agent_docker_events_total").increment(1);
                    handle_event(context, &docker, manager, &mut names, event).await?
                }
                Some(Err(error)) => return Err(EngineError::Request(error)),
                None => return Err(EngineError::Request(bollard::errors::Error::IOError {
                    err: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "event stream ended"),
                })),
            },
            _ = relist_timer.tick() => {
                metrics::counter!("dockflare_agent_relists_total").increment(1);
                relist(context, &docker, manager, &mut names, Relist::Periodic).await?;
            }
        }
    }
}

/// Why a full relist runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relist {
    /// After (re)connecting to the engine: the whole view is reported.
    AfterConnect,
    /// On the relist timer: only differences are reported.
    Periodic,
    /// A Swarm service changed: only differences are reported.
    ServiceChanged,
}

/// A full relist: lists everything, diagnoses reachability, installs the view and queues its
/// report (whole after a connect, else the differences), timed — the time from the list request
/// to the report queued is logged (`took_ms`) and recorded
/// (`dockflare_agent_relist_duration_seconds`) — then attaches what is new to the connector
/// network.
async fn relist(
    context: &WatchContext,
    docker: &Docker,
    manager: bool,
    names: &mut NetworkNames,
    why: Relist,
) -> Result<(), EngineError> {
    let began = Instant::now();
    let mut view = snapshot(docker, manager, &context.selection).await?;
    check_reachability(context, docker, names, view.values_mut()).await;
    let containers = view.len();
    let full = why == Relist::AfterConnect;
    let network = attach_network(context);
    let fresh = apply_view(context, view, full, network.is_some());
    let took = began.elapsed();
    metrics::histogram!("dockflare_agent_relist_duration_seconds").record(took.as_secs_f64());
    let took_ms = took.as_millis() as u64;
    if full {
        tracing::info!(message = "Docker inventory listed.", containers, took_ms);
    } else {
        tracing::debug!(message = "Docker inventory relisted.", containers, started = fresh.len(), took_ms, reason = ?why);
    }
    if let Some(network) = network {
        // After a (re)connect the status report is queued already (containers attached before
        // a restart stay reachable); otherwise each start is reported once it is attached.
        attach::attach_many(docker, network, fresh, |member| {
            if let Some(container) = context.inventory.get(&member.id).filter(|_| !full) {
                context.outbox.push(Event::ContainerStart(container));
            }
        })
        .await;
    }
    Ok(())
}

/// Everything DockFlare-labelled on the host now.
async fn snapshot(
    docker: &Docker,
    manager: bool,
    selection: &observe::Selection,
) -> Result<BTreeMap<String, Container>, EngineError> {
    let mut view = BTreeMap::new();
    let mut service_labels: HashMap<String, HashMap<String, String>> = HashMap::new();
    if manager {
        let services = docker.list_services(Some(ListServicesOptions::default())).await?;
        let tasks = docker.list_tasks(Some(ListTasksOptions::default())).await?;
        for service in &services {
            let (Some(id), Some(spec)) = (service.id.as_ref(), service.spec.as_ref()) else { continue };
            service_labels.insert(id.clone(), spec.labels.clone().unwrap_or_default());
            if let Some(entry) = observe::from_service(service, &tasks, selection) {
                view.insert(entry.id.clone(), entry);
            }
        }
    }
    // On a standalone engine the scope label is the container's own: the engine filters by it.
    let filters = match (&selection.scope, manager) {
        (Some((key, value)), false) => Some(HashMap::from([("label".to_string(), vec![format!("{key}={value}")])])),
        _ => None,
    };
    let containers = docker.list_containers(Some(ListContainersOptions { filters, ..Default::default() })).await?;
    for summary in &containers {
        let service_id = summary.labels.as_ref().and_then(|l| l.get(observe::SWARM_SERVICE_ID));
        let labels = service_id.and_then(|id| service_labels.get(id));
        if let Some(container) = observe::from_summary(summary, labels, selection) {
            if observe::is_running(&container.status) {
                view.insert(container.id.clone(), container);
            }
        }
    }
    Ok(view)
}

/// Adds a diagnostic to each container whose route names a service host the connector network
/// does not know (standalone engines that attach containers: the enabled ones are about to join
/// it under their own name, so those names count too).
async fn check_reachability(
    context: &WatchContext,
    docker: &Docker,
    names: &mut NetworkNames,
    containers: impl Iterator<Item = &mut Container>,
) {
    let Some(network) = attach_network(context) else { return };
    let mut containers: Vec<&mut Container> = containers.collect();
    let prefixes = &context.selection.prefixes;
    // The names the agent knows without asking the engine: enabled containers join the network
    // under their own name. Most routes name their own container: then the network (a thousand
    // members on a busy host, read under a burst of starts) is not read at all.
    let mut known = BTreeSet::new();
    context.inventory.for_each(|c| {
        if enabled(c, prefixes) {
            known.insert(c.name.to_ascii_lowercase());
        }
    });
    known.extend(containers.iter().filter(|c| enabled(c, prefixes)).map(|c| c.name.to_ascii_lowercase()));
    let unresolved = containers.iter().any(|c| !reachability::diagnose(c, &known, network, prefixes).is_empty());
    if !unresolved {
        return;
    }
    let Some(on_network) = names.read(docker, network).await else { return };
    known.extend(on_network);
    for container in containers.iter_mut() {
        let found = reachability::diagnose(container, &known, network, prefixes);
        container.diagnostics.extend(found);
    }
}

/// Whether a reported container has routing enabled (not only a label mistake).
fn enabled(container: &Container, prefixes: &labels::LabelPrefixes) -> bool {
    let labels: BTreeMap<String, String> = container.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    labels::parse(&container.name, &labels, prefixes).enabled
}

/// Installs a new view (moved into the inventory, not copied). `full`: queue a status report
/// (after a (re)connect; it is built from the inventory when sent); otherwise report only what
/// changed, each start once its container is on the connector network when it is to be attached
/// (`attaching`: left to the caller). Returns the enabled containers new to the agent — all of
/// them after a (re)connect, else those that started — to attach to the connector network.
fn apply_view(context: &WatchContext, view: BTreeMap<String, Container>, full: bool, attaching: bool) -> Vec<Member> {
    let prefixes = &context.selection.prefixes;
    let (started, stopped) = context.inventory.replace_all(view);
    let member = |c: &Container| enabled(c, prefixes).then(|| Member { id: c.id.clone(), name: c.name.clone() });
    let mut members = Vec::new();
    if full {
        let started: HashSet<String> = started.into_iter().collect();
        context.inventory.for_each(|c| {
            if started.contains(&c.id) {
                log_diagnostics(c);
            }
            members.extend(member(c));
        });
        context.outbox.push_status_report();
        return members;
    }
    for container in started.iter().filter_map(|id| context.inventory.get(id)) {
        tracing::info!(message = "Container started.", container = %container.name, routes_diagnostics = container.diagnostics.len(), seen_by = "relist");
        log_diagnostics(&container);
        match member(&container).filter(|_| attaching) {
            Some(member) => members.push(member),
            None => {
                context.outbox.push(Event::ContainerStart(container));
            }
        }
    }
    for container in stopped {
        context.outbox.push(Event::ContainerStop(container));
    }
    members
}

/// The network to attach enabled containers to: `attach_network` on a standalone engine.
fn attach_network(context: &WatchContext) -> Option<&str> {
    let standalone = matches!(context.mode.borrow().as_ref(), Some(HostMode::Standalone { .. }));
    context.attach_network.as_deref().filter(|_| standalone)
}

fn log_diagnostics(container: &Container) {
    for diagnostic in &container.diagnostics {
        tracing::warn!(
            message = "Label problem.",
            container = %container.name,
            label = %diagnostic.label,
            value = %diagnostic.value,
            reason = %diagnostic.reason,
        );
    }
}

async fn handle_event(
    context: &WatchContext,
    docker: &Docker,
    manager: bool,
    names: &mut NetworkNames,
    event: EventMessage,
) -> Result<(), EngineError> {
    let kind = event.typ.map(|t| t.to_string()).unwrap_or_default();
    let action = event.action.unwrap_or_default();
    let Some(id) = event.actor.and_then(|a| a.id) else { return Ok(()) };
    if kind == "service" {
        // Services changed (create, update, remove): relist, report the difference.
        return relist(context, docker, manager, names, Relist::ServiceChanged).await;
    }
    match action.as_str() {
        "die" | "destroy" | "pause" | "oom" => {
            if let Some(container) = context.inventory.remove(&id) {
                tracing::info!(message = "Container stopped.", container = %container.name, action = %action);
                context.outbox.push(Event::ContainerStop(container));
            }
        }
        "start" | "unpause" | "restart" | "rename" | "update" => refresh(context, docker, manager, names, &id).await?,
        health if health.starts_with("health_status") => refresh(context, docker, manager, names, &id).await?,
        _ => {}
    }
    Ok(())
}

/// Re-inspects one container and reports it started, changed or gone.
async fn refresh(
    context: &WatchContext,
    docker: &Docker,
    manager: bool,
    names: &mut NetworkNames,
    id: &str,
) -> Result<(), EngineError> {
    let inspect = match docker.inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>).await {
        Ok(inspect) => inspect,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            if let Some(container) = context.inventory.remove(id) {
                context.outbox.push(Event::ContainerStop(container));
            }
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let service_labels = match (
        manager,
        inspect.config.as_ref().and_then(|c| c.labels.as_ref()).and_then(|l| l.get(observe::SWARM_SERVICE_ID)),
    ) {
        (true, Some(service_id)) => {
            match docker.inspect_service(service_id, None::<bollard::query_parameters::InspectServiceOptions>).await {
                Ok(service) => service.spec.and_then(|s| s.labels),
                Err(error) => {
                    tracing::debug!(message = "Service of a task not readable.", %error);
                    None
                }
            }
        }
        _ => None,
    };
    match observe::from_inspect(&inspect, service_labels.as_ref(), &context.selection) {
        Some(mut container) if observe::is_running(&container.status) => {
            check_reachability(context, docker, names, std::iter::once(&mut container)).await;
            if context.inventory.upsert(container.clone()) {
                tracing::info!(message = "Container started.", container = %container.name, routes_diagnostics = container.diagnostics.len(), seen_by = "event");
                log_diagnostics(&container);
                // Reachable before the master routes to it.
                if let Some(network) =
                    attach_network(context).filter(|_| enabled(&container, &context.selection.prefixes))
                {
                    let member = Member { id: container.id.clone(), name: container.name.clone() };
                    let attached = inspect
                        .network_settings
                        .as_ref()
                        .and_then(|settings| settings.networks.as_ref())
                        .is_some_and(|networks| networks.contains_key(network));
                    attach::attach_one(docker, network, &member, attached).await;
                }
                context.outbox.push(Event::ContainerStart(container));
            }
        }
        _ => {
            if let Some(container) = context.inventory.remove(id) {
                context.outbox.push(Event::ContainerStop(container));
            }
        }
    }
    Ok(())
}

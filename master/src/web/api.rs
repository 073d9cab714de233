//! The dashboard's JSON reads beyond the live feed: the overview's facts (offline or not,
//! who reconciles, the last pass and its errors) and an agent's recent events and commands.
//! Nothing here carries a secret: commands are shown by kind and state, never their payload.

use super::session::Signed;
use super::WebState;
use crate::reconcile::LAST_PASS_SETTING;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::{json, Value};

/// How many recent events and commands an agent's page shows.
const RECENT: u64 = 50;

fn unavailable(error: impl std::fmt::Display) -> Response {
    tracing::warn!(message = "The dashboard cannot read the database.", %error);
    (StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry shortly").into_response()
}

pub async fn overview(State(state): State<WebState>, _signed: Signed) -> Response {
    let last_pass = match state.master.store.setting(LAST_PASS_SETTING).await {
        Ok(value) => value.and_then(|text| serde_json::from_str::<Value>(&text).ok()),
        Err(error) => return unavailable(error),
    };
    // The zones the last pass listed, for the routes page's zone column and filter.
    let zones: Vec<String> = match state.master.store.setting(crate::reconcile::zones::KnownZones::SETTING).await {
        Ok(value) => value
            .and_then(|text| serde_json::from_str::<crate::reconcile::zones::KnownZones>(&text).ok())
            .map(|known| known.zones.into_iter().map(|zone| zone.name).collect())
            .unwrap_or_default(),
        Err(error) => return unavailable(error),
    };
    let facts = &state.facts;
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "offline": facts.offline,
        "emulator": facts.emulator.map(|addr| addr.to_string()),
        "leader": facts.leader.as_ref().map(|leader| *leader.borrow()),
        "last_pass": last_pass,
        "zones": zones,
    }))
    .into_response()
}

pub async fn agent_activity(State(state): State<WebState>, _signed: Signed, Path(id): Path<String>) -> Response {
    let store = &state.master.store;
    let agent = match store.get_agent(&id).await {
        Ok(Some(agent)) => agent,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such agent").into_response(),
        Err(error) => return unavailable(error),
    };
    let events = match store.list_events(&id, agent.last_event_id.saturating_sub(RECENT), RECENT as u32).await {
        Ok(events) => events,
        Err(error) => return unavailable(error),
    };
    let commands = match store.commands_after(&id, agent.last_command_seq.saturating_sub(RECENT), RECENT as u32).await {
        Ok(commands) => commands,
        Err(error) => return unavailable(error),
    };
    let containers = match store.list_containers(Some(&id)).await {
        Ok(containers) => containers,
        Err(error) => return unavailable(error),
    };
    Json(json!({
        "last_seen_ms": agent.last_seen_at,
        "connected": state.master.sessions.is_connected(&id),
        "containers": containers.iter().map(|c| json!({"id": c.container_id, "name": c.name, "status": c.status, "service": c.service_name})).collect::<Vec<_>>(),
        "events": events.iter().rev().map(|e| json!({"id": e.event_id, "kind": e.kind, "at_ms": e.received_at})).collect::<Vec<_>>(),
        "commands": commands.iter().rev().map(|c| json!({
            "sequence": c.sequence, "kind": c.kind, "state": format!("{:?}", c.state).to_lowercase(),
            "error": c.error, "created_ms": c.created_at, "acked_ms": c.acked_at,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

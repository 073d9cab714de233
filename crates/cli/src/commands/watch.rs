//! `dockflare watch`: follows WatchChanges — a snapshot, SYNCED, then every change as it
//! happens — printing one line per message as it arrives (`-o json`: one JSON object per line,
//! flushed each time). When the stream breaks, the message says which revision to resume from.

use super::Session;
use crate::errors::{code_of, rpc_failure};
use crate::exit::{Exit, Failure};
use crate::output::style::{paint, Tone};
use crate::output::words;
use clap::{Args, ValueEnum};
use dockflare::v1;
use dockflare::v1::watch_changes_response::Object;

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Only these kinds (comma-separated; default: every kind).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND,…")]
    kind: Vec<Kind>,
    /// Only what belongs to this agent.
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
    /// Start after this revision (the last one read) instead of with a snapshot.
    #[arg(long, value_name = "REVISION")]
    resume: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Route,
    Agent,
    Tunnel,
    Diagnostic,
    Connector,
}

impl Kind {
    fn proto(self) -> v1::ResourceKind {
        match self {
            Kind::Route => v1::ResourceKind::Route,
            Kind::Agent => v1::ResourceKind::Agent,
            Kind::Tunnel => v1::ResourceKind::Tunnel,
            Kind::Diagnostic => v1::ResourceKind::Diagnostic,
            Kind::Connector => v1::ResourceKind::Connector,
        }
    }
}

pub async fn run(args: WatchArgs, session: &Session) -> anyhow::Result<()> {
    let mut client = session.connect().await?;
    let request = v1::WatchChangesRequest {
        kinds: args.kind.iter().map(|kind| kind.proto() as i32).collect(),
        agent_id: args.agent.unwrap_or_default(),
        resume_revision: args.resume.unwrap_or(0),
        ..Default::default()
    };
    let mut stream = session.answer("WatchChanges", client.watch_changes(request).await)?;
    let mut last_revision = args.resume.unwrap_or(0);
    loop {
        match stream.message().await {
            Ok(Some(change)) => {
                last_revision = last_revision.max(change.revision);
                if session.out.is_json() {
                    session.out.json_line(&change)?;
                } else {
                    crate::output::print(&format!("{}\n", line(&change, session.out.colour)))?;
                }
            }
            Ok(None) => {
                return Err(Failure::new(
                    Exit::Failure,
                    format!("the master ended the watch{}", resume_hint(last_revision)),
                )
                .into())
            }
            Err(status) => {
                let mut failure = rpc_failure("WatchChanges", &status, session.resolved());
                match code_of(&status) {
                    tonic::Code::OutOfRange => failure.message.push_str("; take a new snapshot: run without --resume"),
                    // The stream was open: the master was reached, then went away or ended it.
                    tonic::Code::Unavailable => {
                        failure.message = format!(
                            "the watch of the master at {} broke: {}{}",
                            session.resolved().master.value,
                            status.message(),
                            resume_hint(last_revision)
                        )
                    }
                    _ => failure.message.push_str(&resume_hint(last_revision)),
                }
                return Err(failure.into());
            }
        }
    }
}

fn resume_hint(last_revision: u64) -> String {
    if last_revision == 0 {
        String::new()
    } else {
        format!("; to go on from where it stopped: dockflare watch --resume {last_revision}")
    }
}

/// One change on one line: revision, type, kind, key and a few words about the object.
fn line(change: &v1::WatchChangesResponse, colour: bool) -> String {
    let kind_word = words::change_type_word(change.r#type);
    let tone = match v1::ChangeType::try_from(change.r#type) {
        Ok(v1::ChangeType::Synced) => Tone::Good,
        Ok(v1::ChangeType::Delete) => Tone::Warn,
        _ => Tone::Plain,
    };
    let change_type = paint(&format!("{kind_word:<8}"), tone, colour);
    if change.r#type == v1::ChangeType::Synced as i32 {
        return format!("{:>6}  {change_type}  up to date; changes follow", change.revision);
    }
    let summary = match &change.object {
        Some(Object::Route(route)) => {
            format!("{} → {} ({})", route_name(route), route.service, words::route_status_word(route.status))
        }
        Some(Object::Agent(agent)) => {
            format!("{} ({})", agent.display_name, words::agent_status_word(agent.status))
        }
        Some(Object::Tunnel(tunnel)) => format!("{} ({}) {}", tunnel.name, tunnel.status, tunnel.health),
        Some(Object::Diagnostic(record)) => {
            let diagnostic = record.diagnostic.clone().unwrap_or_default();
            format!("{}: {}: {}", record.container_name, diagnostic.label, diagnostic.reason)
        }
        Some(Object::Connector(connector)) => {
            let status = connector.status.clone().unwrap_or_default();
            format!("connector {} {}", words::connector_state_word(status.state), status.detail)
        }
        None => String::new(),
    };
    format!(
        "{:>6}  {change_type}  {:<10}  {}  {}",
        change.revision,
        words::resource_kind_word(change.kind),
        change.key,
        summary.trim_end()
    )
}

fn route_name(route: &v1::Route) -> String {
    format!("{}{}", route.hostname, route.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_change() {
        let upsert = v1::WatchChangesResponse {
            r#type: v1::ChangeType::Upsert as i32,
            revision: 17,
            kind: v1::ResourceKind::Route as i32,
            key: "app.example.test@manual".into(),
            object: Some(Object::Route(v1::Route {
                hostname: "app.example.test".into(),
                service: "http://web:80".into(),
                status: v1::RouteStatus::Active as i32,
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            line(&upsert, false),
            "    17  upsert    route       app.example.test@manual  app.example.test → http://web:80 (active)"
        );
        let synced =
            v1::WatchChangesResponse { r#type: v1::ChangeType::Synced as i32, revision: 16, ..Default::default() };
        assert_eq!(line(&synced, false), "    16  synced    up to date; changes follow");
        assert_eq!(resume_hint(0), "");
        assert_eq!(resume_hint(16), "; to go on from where it stopped: dockflare watch --resume 16");
    }
}

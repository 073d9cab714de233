//! `dockflare plan`: PlanChanges, a dry run — what the master's next reconcile pass would change
//! in tunnels, connectors, ingress, DNS and Cloudflare Access, and how the routes would end up;
//! nothing is written. With `--agent ID --name NAME`, one container as it is about to run
//! (`--label KEY=VALUE`, `--labels-file FILE`) or stop (`--remove`) takes the place of the
//! reported one. Labels are checked before connecting (a malformed one is a usage error); a plan
//! with errors is printed, then ends with exit code 1, as `reconcile` does.

use super::Session;
use crate::exit::{Exit, Failure};
use crate::output::style::Tone;
use crate::output::table::{Cell, Table};
use crate::output::words;
use clap::Args;
use dockflare::v1;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The agent whose engine runs the proposed container (without it: the plan of the state as
    /// reported).
    #[arg(long, value_name = "ID", requires = "name")]
    agent: Option<String>,
    /// The proposed container's name; it replaces the agent's reported container of that name
    /// (or is added).
    #[arg(long, value_name = "NAME", requires = "agent")]
    name: Option<String>,
    /// A label of the proposed container (repeat); these win over --labels-file.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label, requires = "agent")]
    labels: Vec<(String, String)>,
    /// Labels from a file, KEY=VALUE per line (as `docker run --label-file`; `#` comments and
    /// blank lines are skipped; "-" reads stdin).
    #[arg(long, value_name = "FILE", requires = "agent")]
    labels_file: Option<PathBuf>,
    /// As if the container stopped: its routes go pending deletion.
    #[arg(long, requires = "agent", conflicts_with_all = ["labels", "labels_file"])]
    remove: bool,
}

/// One `KEY=VALUE` label (the value may be empty, the key may not).
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, _)) if key.trim().is_empty() => Err(format!("{text:?} has no key before '=' (KEY=VALUE)")),
        Some((key, _)) if key.chars().any(char::is_whitespace) => {
            Err(format!("{text:?}: the key {key:?} contains whitespace (KEY=VALUE)"))
        }
        Some((key, value)) => Ok((key.to_string(), value.to_string())),
        None => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// The labels of a labels file (`source` names it in errors): one `KEY=VALUE` a line, leading
/// whitespace ignored, blank lines and `#` comments skipped; a later line wins.
fn labels_of_file(text: &str, source: &str) -> Result<Vec<(String, String)>, Failure> {
    let mut labels = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start().trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let label = parse_label(line)
            .map_err(|reason| Failure::new(Exit::Usage, format!("--labels-file {source}:{}: {reason}", index + 1)))?;
        labels.push(label);
    }
    Ok(labels)
}

/// The request the flags ask for: no container without `--agent`; else the one proposed, its
/// labels those of the file and then the flags (a later one of a key wins).
fn plan_request(args: PlanArgs) -> Result<v1::PlanChangesRequest, Failure> {
    let Some(agent_id) = args.agent else { return Ok(v1::PlanChangesRequest::default()) };
    let mut labels: HashMap<String, String> = HashMap::new();
    if let Some(path) = &args.labels_file {
        let usage = |message: String| Failure::new(Exit::Usage, message);
        let (text, source) = if path.as_os_str() == "-" {
            let text = std::io::read_to_string(std::io::stdin())
                .map_err(|e| usage(format!("--labels-file: cannot read stdin: {e}")))?;
            (text, "stdin".to_string())
        } else {
            let source = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("--labels-file: cannot read {source}: {e}")))?;
            (text, source)
        };
        labels.extend(labels_of_file(&text, &source)?);
    }
    labels.extend(args.labels);
    let container = v1::ProposedContainer {
        agent_id,
        name: args.name.unwrap_or_default(),
        labels,
        remove: args.remove,
        ..Default::default()
    };
    Ok(v1::PlanChangesRequest { containers: vec![container], ..Default::default() })
}

pub async fn run(args: PlanArgs, session: &Session) -> anyhow::Result<()> {
    // Checked before connecting: an unreadable labels file or a malformed line is a usage error.
    let request = plan_request(args)?;
    let mut client = session.connect().await?;
    let response = session.answer("PlanChanges", client.plan_changes(request).await)?;
    let out = session.out;
    if out.is_json() {
        out.json(&response)?;
    } else {
        if response.changes.is_empty() {
            eprintln!("No changes.");
        }
        crate::output::print(&plan_text(&response, SystemTime::now(), out.colour))?;
        for error in &response.errors {
            eprintln!("error: {error}");
        }
    }
    if response.errors.is_empty() {
        return Ok(());
    }
    Err(Failure::new(Exit::Failure, format!("the plan is incomplete: it met {} error(s)", response.errors.len()))
        .into())
}

/// An action in the tone of what it does: made, changed, or taken away.
fn action(action: &str) -> Cell {
    let tone = match action {
        "create" | "start" => Tone::Good,
        "update" | "release" => Tone::Warn,
        "delete" => Tone::Bad,
        _ => Tone::Plain,
    };
    Cell::toned(action, tone)
}

/// The changes, in the order the pass makes them.
pub fn changes_table(changes: &[v1::PlannedChange]) -> Table {
    let mut table = Table::new(&["resource", "action", "target", "detail"]);
    for change in changes {
        table.row(vec![
            change.resource.as_str().into(),
            action(&change.action),
            change.target.as_str().into(),
            change.detail.as_str().into(),
        ]);
    }
    table
}

/// The routes the pass would store differently, then those it would remove.
pub fn routes_table(routes: &[v1::Route], removed: &[v1::Route], now: SystemTime) -> Table {
    let mut table = Table::new(&["route", "status", "reason"]);
    for route in routes {
        table.row(vec![
            format!("{}{}", route.hostname, route.path).into(),
            words::route_status(route, now),
            super::routes::why(route).into(),
        ]);
    }
    for route in removed {
        table.row(vec![
            format!("{}{}", route.hostname, route.path).into(),
            Cell::toned("removed", Tone::Bad),
            super::routes::why(route).into(),
        ]);
    }
    table
}

/// The plan for people: the changes, then the routes after the pass (errors go to stderr).
fn plan_text(response: &v1::PlanChangesResponse, now: SystemTime, colour: bool) -> String {
    let mut text = String::new();
    if !response.changes.is_empty() {
        text.push_str(&changes_table(&response.changes).render(colour));
    }
    if !response.routes.is_empty() || !response.removed.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str("Routes after the pass:\n");
        text.push_str(&routes_table(&response.routes, &response.removed, now).render(colour));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_equals_value() {
        assert_eq!(parse_label("dockflare.enable=true"), Ok(("dockflare.enable".into(), "true".into())));
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())), "the first '=' splits");
        assert_eq!(parse_label("dockflare.path="), Ok(("dockflare.path".into(), String::new())));
        assert!(parse_label("grafana").unwrap_err().contains("\"grafana\" is not KEY=VALUE"));
        assert!(parse_label("=x").unwrap_err().contains("no key"));
        assert!(parse_label("a b=c").unwrap_err().contains("whitespace"));
    }

    #[test]
    fn a_labels_file_skips_comments_and_blank_lines_and_names_a_bad_line() -> anyhow::Result<()> {
        let text = "# grafana\n\n  dockflare.enable=true\r\ndockflare.hostname=g.example.com\n\t# indented\n";
        let labels = labels_of_file(text, "g.labels")?;
        assert_eq!(
            labels,
            [("dockflare.enable".into(), "true".into()), ("dockflare.hostname".into(), "g.example.com".into())]
        );
        let bad = labels_of_file("a=1\nnonsense\n", "g.labels").unwrap_err();
        assert_eq!(bad.exit, Exit::Usage);
        assert_eq!(bad.message, "--labels-file g.labels:2: \"nonsense\" is not KEY=VALUE");
        Ok(())
    }

    #[test]
    fn flags_win_over_the_file_and_no_agent_is_the_reported_state() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("g.labels");
        std::fs::write(&file, "dockflare.enable=true\ndockflare.service=http://old:80\n")?;
        let args = PlanArgs {
            agent: Some("a1".into()),
            name: Some("grafana".into()),
            labels: vec![("dockflare.service".into(), "http://grafana:3000".into())],
            labels_file: Some(file),
            remove: false,
        };
        let request = plan_request(args)?;
        let [container] = request.containers.as_slice() else { panic!("{request:?}") };
        assert_eq!((container.agent_id.as_str(), container.name.as_str()), ("a1", "grafana"));
        assert_eq!(container.labels["dockflare.service"], "http://grafana:3000");
        assert_eq!(container.labels["dockflare.enable"], "true");
        let none = PlanArgs { agent: None, name: None, labels: Vec::new(), labels_file: None, remove: false };
        assert!(plan_request(none)?.containers.is_empty());
        let missing = PlanArgs {
            agent: Some("a1".into()),
            name: Some("g".into()),
            labels: Vec::new(),
            labels_file: Some(dir.path().join("nowhere")),
            remove: false,
        };
        let failure = plan_request(missing).unwrap_err();
        assert_eq!(failure.exit, Exit::Usage);
        assert!(failure.message.starts_with("--labels-file: cannot read "), "{}", failure.message);
        Ok(())
    }

    #[test]
    fn the_plan_lists_changes_in_order_then_the_routes() {
        let change = |resource: &str, action: &str, target: &str, detail: &str| v1::PlannedChange {
            resource: resource.into(),
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
        };
        let response = v1::PlanChangesResponse {
            changes: vec![
                change("access_application", "create", "grafana.example.com", "policy authenticate"),
                change("dns", "create", "grafana.example.com", ""),
                change("ingress", "update", "dockflare-a1", "1 rule added"),
            ],
            routes: vec![v1::Route {
                hostname: "grafana.example.com".into(),
                status: v1::RouteStatus::Active as i32,
                ..Default::default()
            }],
            removed: vec![v1::Route { hostname: "old.example.com".into(), path: "/api".into(), ..Default::default() }],
            errors: vec!["ignored here".into()],
        };
        let text = plan_text(&response, SystemTime::now(), false);
        assert_eq!(
            text,
            "RESOURCE            ACTION  TARGET               DETAIL\n\
             access_application  create  grafana.example.com  policy authenticate\n\
             dns                 create  grafana.example.com  -\n\
             ingress             update  dockflare-a1         1 rule added\n\
             \n\
             Routes after the pass:\n\
             ROUTE                STATUS   REASON\n\
             grafana.example.com  active   -\n\
             old.example.com/api  removed  -\n"
        );
        assert!(!text.contains("ignored here"), "errors go to stderr");
        assert_eq!(plan_text(&v1::PlanChangesResponse::default(), SystemTime::now(), false), "");
        let coloured = changes_table(&response.changes).render(true);
        assert!(coloured.contains("\x1b[32mcreate\x1b[0m"), "{coloured:?}");
        assert_eq!(action("delete").tone, Tone::Bad);
    }
}

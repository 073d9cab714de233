//! `dockflare reconcile`: runs a full pass now and prints what it changed. A pass that met
//! errors ends with exit code 1 after printing them.

use super::Session;
use crate::exit::{Exit, Failure};
use crate::output::style::Tone;
use crate::output::table::{fields, Cell};
use dockflare::v1;

pub async fn run(session: &Session) -> anyhow::Result<()> {
    let mut client = session.connect().await?;
    let response = session.answer("Reconcile", client.reconcile(v1::ReconcileRequest::default()).await)?;
    if session.out.is_json() {
        session.out.json(&response)?;
    } else {
        crate::output::print(&summary(&response, session.out.colour))?;
    }
    if response.errors.is_empty() {
        return Ok(());
    }
    Err(Failure::new(Exit::Failure, format!("the reconcile pass met {} error(s)", response.errors.len())).into())
}

fn summary(response: &v1::ReconcileResponse, colour: bool) -> String {
    let count = |n: u32| Cell::from(n.to_string());
    let mut pairs = vec![
        ("tunnels created", count(response.tunnels_created)),
        ("tunnels deleted", count(response.tunnels_deleted)),
        ("ingress updates", count(response.ingress_updates)),
        ("dns created", count(response.dns_created)),
        ("dns updated", count(response.dns_updated)),
        ("dns deleted", count(response.dns_deleted)),
        ("commands sent", count(response.commands_sent)),
        ("routes changed", count(response.routes_changed)),
        ("access writes", count(response.access_writes)),
    ];
    for error in &response.errors {
        pairs.push(("error", Cell::toned(error.clone(), Tone::Bad)));
    }
    fields(&pairs, colour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lists_every_count_and_error() {
        let response =
            v1::ReconcileResponse { dns_created: 2, errors: vec!["dns: refused".into()], ..Default::default() };
        let text = summary(&response, false);
        assert!(text.contains("dns created      2\n"), "{text}");
        assert!(text.contains("tunnels created  0\n"), "{text}");
        assert!(text.ends_with("error            dns: refused\n"), "{text}");
    }
}

//! Restart-convergence benchmark: a real `dockflare-master` against the project's Cloudflare
//! emulator (in this process, serving the public v4 API over HTTP), `--agents` simulated agents
//! each reporting `--containers` labelled containers (one route each).
//!
//! 1. **Baseline: the first convergence.** From the agents' reports until every route is active
//!    with its DNS record and every tunnel's ingress holds its routes; the writes it took.
//! 2. **Restart with nothing changed.** `kill -9` of the master, the emulator's request log
//!    cleared, a restart on the same data; every agent reconnects and reports the same
//!    containers (as the real agent does after a reconnect). Converged when every report is
//!    stored, a reconcile pass has succeeded since the restart and every route is active; timed
//!    from "Master listening.". Then an operator's full pass (`Reconcile`), and the writes
//!    since the restart by kind: ingress PUTs per tunnel, DNS writes, others.
//!
//! ```sh
//! cargo build --release -p dockflare-master -p dockflare-bench --bin converge_bench
//! target/release/converge_bench --agents 10 --containers 100 [--database-url postgres://…]
//! ```

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use dockflare::v1::Container;
use dockflare::v1::{ListRoutesRequest, ReconcileRequest, RouteStatus};
use dockflare_bench::figures::Figures;
use dockflare_emulator::{Emulator, EmulatorConfig, RequestLogEntry};
use dockflare_testsupport::fake_agent::{labelled, route_labels, FakeAgent};
use dockflare_testsupport::{eventually, Master, MasterOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The zone every route is in.
const ZONE: &str = "bench.example.com";
/// The ingress configuration's route in the emulator's request log.
const INGRESS_ROUTE: &str = "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations";

#[derive(Parser, Debug)]
#[command(about = "Restarts a real dockflare-master under N agents' labelled containers and times its convergence.")]
struct Args {
    /// Simulated agents (one tunnel each).
    #[arg(long, default_value_t = 10)]
    agents: usize,
    /// Labelled containers per agent (one route each).
    #[arg(long, default_value_t = 100)]
    containers: usize,
    /// Database of the master (default: SQLite in its data dir).
    #[arg(long)]
    database_url: Option<String>,
    /// The master binary (default: `dockflare-master` beside this program).
    #[arg(long)]
    master_bin: Option<PathBuf>,
    /// Longest any phase may take.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The restart should converge within this long after the master listens.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    target: Duration,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(&Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("converge_bench FAILED: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    ensure!(args.agents > 0 && args.containers > 0, "--agents and --containers must be at least 1");
    let routes = args.agents * args.containers;
    let backend = if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    let title = format!(
        "DockFlare restart convergence: {} agents x {} labelled containers = {routes} routes, {backend}",
        args.agents, args.containers
    );
    let config = EmulatorConfig { zones: vec![ZONE.into()], ..EmulatorConfig::default() };
    let (emulator, addr) = Emulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let mut master = start_master(args, &emulator, addr).await?;
    let mut figures = Figures::new(title);
    let outcome = measure(args, &emulator, &mut master, &mut figures).await;
    let _ = master.kill9();
    println!("{}", figures.render());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    outcome
}

async fn start_master(args: &Args, emulator: &Emulator, addr: SocketAddr) -> Result<Master> {
    let binary = match &args.master_bin {
        Some(path) => path.clone(),
        None => dockflare_testsupport::workspace_binary("dockflare-master")
            .context("build it first with `cargo build --release -p dockflare-master`, or pass --master-bin")?,
    };
    let env = [
        ("CF_API_TOKEN", emulator.api_token().to_string()),
        ("CF_ACCOUNT_ID", emulator.account_id().to_string()),
        ("CF_API_URL", emulator.base_url(addr)),
        ("GRACE_PERIOD_SECONDS", "600".to_string()),
    ];
    Master::start_with(MasterOptions {
        binary: Some(binary),
        database_url: args.database_url.clone(),
        // The emulator has no rate limit to protect: the request budget is not what is measured.
        args: vec!["--cf-requests-per-5min".into(), "100000".into()],
        env: env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        ..MasterOptions::default()
    })
    .await
}

fn containers_of(agent: usize, count: usize) -> Vec<Container> {
    (0..count)
        .map(|n| {
            let hostname = format!("a{agent}-c{n}.{ZONE}");
            labelled(&format!("a{agent}-c{n}"), &route_labels(&hostname, "http://web:80"))
        })
        .collect()
}

async fn measure(args: &Args, emulator: &Emulator, master: &mut Master, figures: &mut Figures) -> Result<()> {
    let routes = args.agents * args.containers;
    let token = master.join_token(u32::try_from(args.agents)?).await?;
    let mut agents = Vec::with_capacity(args.agents);
    for index in 0..args.agents {
        agents.push(FakeAgent::join(master, &token, &format!("converge-{index}"), "").await?);
    }
    let fleet: Vec<Vec<Container>> = (0..args.agents).map(|a| containers_of(a, args.containers)).collect();

    // Baseline: the first convergence.
    emulator.reset_requests();
    let started = Instant::now();
    report_all(&agents, &fleet).await?;
    eventually("the first convergence", args.timeout, || async {
        Ok((active_routes(master).await? == routes && served(emulator, routes)).then_some(()))
    })
    .await?;
    figures.duration(
        "first convergence: reports -> every route active, recorded and in its ingress",
        Some(started.elapsed()),
    );
    let first = Writes::of(&emulator.requests().log);
    figures.row("  writes it took: ingress PUTs / DNS / other", first.summary(), first.json());

    // The restart, nothing changed.
    master.kill9()?;
    emulator.reset_requests();
    let restart = Instant::now();
    master.restart().await?;
    let listening = Instant::now();
    figures.duration("restart: start -> \"Master listening.\"", Some(listening - restart));
    futures::future::try_join_all(agents.iter_mut().map(|agent| agent.connect(master))).await?;
    report_all(&agents, &fleet).await?;
    let reports_stored = listening.elapsed();
    eventually("the convergence after the restart", args.timeout, || async {
        Ok((passes_ok(master).await? >= 1.0 && active_routes(master).await? == routes).then_some(()))
    })
    .await?;
    let converged = listening.elapsed();
    figures.duration("after the restart: every agent reconnected and its report stored", Some(reports_stored));
    figures.duration(
        "after the restart: converged (reports stored, a pass succeeded, every route active)",
        Some(converged),
    );
    let met = converged <= args.target;
    figures.row(
        &format!("target: converged within {:.1} s of listening", args.target.as_secs_f64()),
        if met { "met" } else { "MISSED" },
        met,
    );
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    let after = Writes::of(&emulator.requests().log);
    figures.row(
        "writes after the restart (and a full pass): ingress PUTs / DNS / other",
        after.summary(),
        after.json(),
    );
    figures.row(
        "  ingress PUTs per tunnel, most",
        after.most_puts_per_tunnel().to_string(),
        after.most_puts_per_tunnel(),
    );
    if !served(emulator, routes) {
        bail!("after the restart the account no longer serves every route");
    }
    Ok(())
}

/// Each agent reports all its containers, and waits until the master stored the report.
async fn report_all(agents: &[FakeAgent], fleet: &[Vec<Container>]) -> Result<()> {
    futures::future::try_join_all(agents.iter().zip(fleet).map(|(agent, containers)| async move {
        agent.report(containers.clone()).await?;
        agent.stored(agent.sent()).await.map_err(|why| anyhow::anyhow!("agent {}: {why}", agent.id))
    }))
    .await?;
    Ok(())
}

/// Routes ListRoutes shows as active, every page.
async fn active_routes(master: &Master) -> Result<usize> {
    let mut admin = master.admin().await?;
    let (mut active, mut page_token) = (0, String::new());
    loop {
        let page = admin
            .list_routes(ListRoutesRequest { page_size: 1000, page_token, ..Default::default() })
            .await?
            .into_inner();
        active += page.routes.iter().filter(|r| r.status == RouteStatus::Active as i32).count();
        if page.next_page_token.is_empty() {
            return Ok(active);
        }
        page_token = page.next_page_token;
    }
}

/// Whether the account has a DNS record for each of `routes` routes and every live tunnel's
/// ingress holds as many hostnames in all.
fn served(emulator: &Emulator, routes: usize) -> bool {
    let snapshot = emulator.snapshot();
    let in_ingress: usize = snapshot
        .tunnels
        .iter()
        .filter(|t| t.deleted_at.is_none())
        .filter_map(|t| snapshot.configuration(&t.id))
        .map(|c| c.config.ingress.iter().filter(|rule| rule.hostname.is_some()).count())
        .sum();
    snapshot.dns_records.len() == routes && in_ingress == routes
}

/// Successful reconcile passes the master counted since it started.
async fn passes_ok(master: &Master) -> Result<f64> {
    let text = master.metrics_text().await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with("dockflare_reconcile_passes_total") && line.contains("result=\"ok\""))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}

/// The writes in a stretch of the emulator's request log, by kind.
struct Writes {
    /// Ingress PUTs by tunnel id.
    ingress: BTreeMap<String, u64>,
    dns: u64,
    other: u64,
}

impl Writes {
    fn of(log: &[RequestLogEntry]) -> Writes {
        let mut writes = Writes { ingress: BTreeMap::new(), dns: 0, other: 0 };
        for entry in log.iter().filter(|e| e.method != "GET" && !e.faulted) {
            if entry.route == INGRESS_ROUTE && entry.method == "PUT" {
                let tunnel = entry.path.split('/').nth(4).unwrap_or_default().to_string();
                *writes.ingress.entry(tunnel).or_default() += 1;
            } else if entry.route.contains("dns_records") {
                writes.dns += 1;
            } else {
                writes.other += 1;
            }
        }
        writes
    }

    fn puts(&self) -> u64 {
        self.ingress.values().sum()
    }

    fn most_puts_per_tunnel(&self) -> u64 {
        self.ingress.values().copied().max().unwrap_or(0)
    }

    fn summary(&self) -> String {
        format!("{} ({} tunnels) / {} / {}", self.puts(), self.ingress.len(), self.dns, self.other)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "ingress_puts": self.puts(), "tunnels_put": self.ingress.len(), "dns": self.dns, "other": self.other })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(method: &str, path: &str, route: &str) -> RequestLogEntry {
        RequestLogEntry {
            method: method.into(),
            path: path.into(),
            query: None,
            route: route.into(),
            status: 200,
            faulted: false,
        }
    }

    #[test]
    fn writes_are_told_apart_and_ingress_puts_counted_per_tunnel() {
        let log = [
            entry("GET", "/accounts/x/cfd_tunnel", "/accounts/{account_id}/cfd_tunnel"),
            entry("PUT", "/accounts/x/cfd_tunnel/t1/configurations", INGRESS_ROUTE),
            entry("PUT", "/accounts/x/cfd_tunnel/t1/configurations", INGRESS_ROUTE),
            entry("PUT", "/accounts/x/cfd_tunnel/t2/configurations", INGRESS_ROUTE),
            entry("POST", "/zones/z/dns_records", "/zones/{zone_id}/dns_records"),
            entry("POST", "/accounts/x/cfd_tunnel", "/accounts/{account_id}/cfd_tunnel"),
        ];
        let writes = Writes::of(&log);
        assert_eq!((writes.puts(), writes.most_puts_per_tunnel(), writes.dns, writes.other), (3, 2, 1, 1));
        assert_eq!(writes.summary(), "3 (2 tunnels) / 1 / 1");
    }
}

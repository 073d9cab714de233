//! The end-to-end rig: a Cloudflare emulator in the test process that containers reach (tunnel
//! tokens carry its public URL, so agents run the local edge as their connector), real master and
//! agent processes, labelled origin containers on the real engine, the local edge's published port,
//! a continuous request prober, and checks that look at all three places a route lives — the
//! emulated Cloudflare account, the master's admin API and the data plane — with deadlines.
#![allow(dead_code)]

use anyhow::{anyhow, bail, Context, Result};
use dockflare::v1::{ListCommandsRequest, ListRoutesRequest, ListTunnelsRequest, Route, RouteStatus};
use dockflare_emulator::{Emulator, EmulatorConfig, Snapshot};
use dockflare_testsupport::{docker, eventually, require_docker, unique, Agent, DockerCleanup, Master};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The usual deadline of a wait.
pub const WAIT: Duration = Duration::from_secs(60);
pub const ORIGIN_IMAGE: &str = "dockflare-test/origin:latest";
pub const EDGE_IMAGE: &str = "dockflare/local-edge:latest";
/// The zone of every test hostname.
pub const ZONE: &str = "example.test";

/// What the master logged about `hostname`: its route and DNS lines, for a failure's message.
pub fn hostname_log(master: &Master, hostname: &str) -> String {
    let lines: Vec<String> = master
        .logs
        .lines()
        .into_iter()
        .filter(|line| line.contains(hostname) && (line.contains("DNS record") || line.contains("Route")))
        .collect();
    if lines.is_empty() {
        format!("(the master logged nothing about {hostname})")
    } else {
        lines.join("\n")
    }
}

/// Fails loudly when the engine, the test images or the local edge image are missing.
pub fn require_rig() {
    require_docker();
    if docker(&["image", "inspect", "--format", "{{.Id}}", EDGE_IMAGE]).is_err() {
        panic!("image {EDGE_IMAGE} is missing: run deploy/images.sh (deploy/test.sh does).");
    }
}

/// Fails loudly unless this engine is a Swarm manager.
pub fn require_swarm() {
    require_rig();
    let state =
        docker(&["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"]).unwrap_or_default();
    if state != "active true" {
        panic!("this test needs a Swarm manager (docker swarm init --advertise-addr 127.0.0.1); found {state:?}. deploy/test.sh sets it up.");
    }
}

/// A port free on this host right now.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("0.0.0.0", 0))?;
    Ok(listener.local_addr()?.port())
}

/// The emulated Cloudflare account, served on all interfaces so that connector containers reach
/// it at `host.docker.internal`.
pub struct Cloud {
    pub emulator: Emulator,
    pub port: u16,
    /// The API URL masters use.
    pub api_url: String,
}

impl Cloud {
    pub async fn start() -> Result<Cloud> {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", 0)).await?;
        let port = listener.local_addr()?.port();
        let config = EmulatorConfig {
            zones: vec![ZONE.to_string()],
            public_url: Some(format!("http://host.docker.internal:{port}/client/v4")),
            ..EmulatorConfig::default()
        };
        let emulator = Emulator::start_on(config, listener);
        let api_url = format!("http://127.0.0.1:{port}{}", emulator.base_path());
        Ok(Cloud { emulator, port, api_url })
    }

    /// The environment of a master using this account, with a grace period in seconds.
    pub fn master_env(&self, grace_seconds: u64) -> Vec<(String, String)> {
        vec![
            ("CF_API_TOKEN".into(), self.emulator.api_token().into()),
            ("CF_ACCOUNT_ID".into(), self.emulator.account_id().into()),
            ("CF_API_URL".into(), self.api_url.clone()),
            ("GRACE_PERIOD_SECONDS".into(), grace_seconds.to_string()),
        ]
    }

    /// Starts a master on this account (`database_url` `None`: SQLite in its data dir).
    pub async fn master(&self, database_url: Option<&str>, grace_seconds: u64, extra_args: &[&str]) -> Result<Master> {
        let env = self.master_env(grace_seconds);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut args = vec!["--cf-requests-per-5min", "100000"];
        args.extend_from_slice(extra_args);
        Master::start_with_env(database_url, &args, &env).await
    }

    pub fn snapshot(&self) -> Snapshot {
        self.emulator.snapshot()
    }

    /// What the account says about `hostname` right now.
    pub fn view(&self, hostname: &str) -> CloudView {
        CloudView::of(&self.snapshot(), hostname)
    }
}

/// One hostname as the emulated account has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudView {
    /// Ids of live tunnels whose ingress has a rule for the hostname.
    pub tunnels_with_rule: Vec<String>,
    /// (type, content) of every DNS record named like the hostname.
    pub records: Vec<(String, String)>,
}

impl CloudView {
    pub fn of(snapshot: &Snapshot, hostname: &str) -> CloudView {
        let live: Vec<&str> =
            snapshot.tunnels.iter().filter(|t| t.deleted_at.is_none()).map(|t| t.id.as_str()).collect();
        let tunnels_with_rule = snapshot
            .configurations
            .iter()
            .filter(|c| live.contains(&c.tunnel_id.as_str()))
            .filter(|c| c.config.ingress.iter().any(|rule| rule.hostname.as_deref() == Some(hostname)))
            .map(|c| c.tunnel_id.clone())
            .collect();
        let records = snapshot
            .dns_records
            .iter()
            .filter(|r| r.record.name == hostname)
            .map(|r| (r.record.record_type.clone(), r.record.content.clone()))
            .collect();
        CloudView { tunnels_with_rule, records }
    }

    /// Exactly one live tunnel routes it and exactly one CNAME points at that tunnel.
    pub fn routed(&self) -> Option<String> {
        match (self.tunnels_with_rule.as_slice(), self.records.as_slice()) {
            ([tunnel], [(kind, content)]) if kind == "CNAME" && *content == format!("{tunnel}.cfargotunnel.com") => {
                Some(tunnel.clone())
            }
            _ => None,
        }
    }

    pub fn absent(&self) -> bool {
        self.tunnels_with_rule.is_empty() && self.records.is_empty()
    }
}

/// Live tunnels of the account: (id, name, connections).
pub fn live_tunnels(snapshot: &Snapshot) -> Vec<(String, String, usize)> {
    snapshot
        .tunnels
        .iter()
        .filter(|t| t.deleted_at.is_none())
        .map(|t| (t.id.clone(), t.name.clone(), t.connections.len()))
        .collect()
}

/// The master's routes.
pub async fn routes(master: &Master) -> Result<Vec<Route>> {
    // Every page (a page holds 100 routes unless asked for more).
    let mut admin = master.admin().await?;
    let (mut routes, mut page_token) = (Vec::new(), String::new());
    loop {
        let page = admin.list_routes(ListRoutesRequest { page_size: 1000, page_token, ..Default::default() }).await?;
        let page = page.into_inner();
        routes.extend(page.routes);
        if page.next_page_token.is_empty() {
            return Ok(routes);
        }
        page_token = page.next_page_token;
    }
}

/// The master's route for `hostname`, if any: the one routed (active or pending deletion) when
/// several claim it.
pub async fn route(master: &Master, hostname: &str) -> Result<Option<Route>> {
    let routed = |r: &Route| r.status == RouteStatus::Active as i32 || r.status == RouteStatus::PendingDeletion as i32;
    let mut claims: Vec<Route> = routes(master).await?.into_iter().filter(|r| r.hostname == hostname).collect();
    claims.sort_by_key(|r| !routed(r));
    Ok(claims.into_iter().next())
}

/// The master's tunnels.
pub async fn tunnels(master: &Master) -> Result<Vec<dockflare::v1::Tunnel>> {
    Ok(master.admin().await?.list_tunnels(ListTunnelsRequest::default()).await?.into_inner().tunnels)
}

/// The containers the master has for `agent_id` (as last reported).
pub async fn containers(master: &Master, agent_id: &str) -> Result<Vec<dockflare::v1::Container>> {
    let request = dockflare::v1::ListContainersRequest { agent_id: agent_id.to_string(), ..Default::default() };
    let records = master.admin().await?.list_containers(request).await?.into_inner().containers;
    Ok(records.into_iter().filter_map(|record| record.container).collect())
}

/// Every command of `agent_id` as the master has it.
pub async fn commands(master: &Master, agent_id: &str) -> Result<Vec<dockflare::v1::CommandRecord>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let request =
            ListCommandsRequest { agent_id: agent_id.into(), page_size: 1000, page_token, ..Default::default() };
        let page = master.admin().await?.list_commands(request).await?.into_inner();
        all.extend(page.commands);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

/// The local edge's published port, as clients reach it.
#[derive(Clone)]
pub struct Edge {
    pub url: String,
    client: reqwest::Client,
}

/// What one request through the edge got.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The origin's name, when an origin answered (its JSON `origin`).
    pub fn origin(&self) -> Option<String> {
        if self.status != 200 {
            return None;
        }
        let value: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        value.get("origin")?.as_str().map(str::to_string)
    }
}

impl Edge {
    pub fn on_port(port: u16) -> Result<Edge> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .build()
            .context("HTTP client")?;
        Ok(Edge { url: format!("http://127.0.0.1:{port}"), client })
    }

    /// GET `path` with `Host: host`.
    pub async fn get(&self, host: &str, path: &str) -> Result<Answer> {
        let response =
            self.client.get(format!("{}{path}", self.url)).header(reqwest::header::HOST, host).send().await?;
        let status = response.status().as_u16();
        Ok(Answer { status, body: response.text().await? })
    }

    /// Waits until the edge answers at all (an unknown host gets the catch-all, or 503 before the
    /// tunnel has a configuration).
    pub async fn wait_up(&self, within: Duration) -> Result<()> {
        eventually("the local edge answers", within, || async {
            let answer = self.get("nobody.invalid", "/").await?;
            Ok(matches!(answer.status, 404 | 503).then_some(()))
        })
        .await
    }

    /// Starts requesting `host` every `interval` until [`Prober::finish`].
    pub fn probe(&self, host: &str, interval: Duration) -> Prober {
        Prober::start(self.clone(), host.to_string(), interval)
    }
}

/// Requests a hostname continuously and remembers every failure: "no gap in serving" is
/// `finish().failures.is_empty()` with `ok` well above zero. [`Prober::report`] reads it meanwhile.
pub struct Prober {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<ProbeReport>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a [`Prober`] saw.
#[derive(Debug, Default, Clone)]
pub struct ProbeReport {
    pub ok: usize,
    /// (milliseconds since the start, what went wrong).
    pub failures: Vec<(u128, String)>,
    /// Origins that answered, with how often.
    pub origins: BTreeMap<String, usize>,
}

impl Prober {
    fn start(edge: Edge, host: String, interval: Duration) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(ProbeReport::default()));
        let (flag, shared) = (stop.clone(), report.clone());
        let task = tokio::spawn(async move {
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let outcome = edge.get(&host, "/probe").await;
                {
                    let mut report = shared.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok(answer) => match answer.origin() {
                            Some(origin) => {
                                report.ok += 1;
                                *report.origins.entry(origin).or_default() += 1;
                            }
                            None => report
                                .failures
                                .push((started.elapsed().as_millis(), format!("{}: {}", answer.status, answer.body))),
                        },
                        Err(error) => report.failures.push((started.elapsed().as_millis(), format!("{error:#}"))),
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
        Prober { stop, report, task }
    }

    /// What it has seen so far.
    pub fn report(&self) -> ProbeReport {
        self.report.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub async fn finish(self) -> Result<ProbeReport> {
        self.stop.store(true, Ordering::Relaxed);
        let report = self.report.clone();
        self.task.await.map_err(|e| anyhow!("prober task: {e}"))?;
        let finished = report.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(finished)
    }
}

/// Whether the master has an open command stream from `agent_id`.
pub async fn connected(master: &Master, agent_id: &str) -> Result<bool> {
    let request = dockflare::v1::GetAgentRequest { id: agent_id.to_string() };
    let agent = master.admin().await?.get_agent(request).await?.into_inner().agent;
    Ok(agent.is_some_and(|a| a.connected))
}

/// How an agent of the rig runs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// "standalone" or "swarm".
    pub mode: &'static str,
    /// Agents with the same group share a tunnel.
    pub tunnel_group: Option<String>,
    pub extra_args: Vec<String>,
    /// Keep the agent's default reconnect backoff (tests otherwise cap it at 1 s).
    pub production_backoff: bool,
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions { mode: "standalone", tunnel_group: None, extra_args: Vec::new(), production_backoff: false }
    }
}

/// A real agent scoped to its own containers, with the local edge as its connector on a
/// published port and its own connector network.
pub struct EdgeAgent {
    pub agent: Agent,
    pub id: String,
    /// `KEY=VALUE` its containers carry.
    pub scope_label: String,
    pub network: String,
    pub edge: Edge,
    pub edge_port: u16,
    /// The connector's container (standalone) or service (Swarm) name.
    pub connector: String,
    pub cleanup: DockerCleanup,
}

impl EdgeAgent {
    /// Enrolls with `token` against `masters` and waits until it has an id. In Swarm mode the
    /// network is an attachable overlay created here.
    pub async fn start(masters: &[String], token: &str, options: AgentOptions) -> Result<EdgeAgent> {
        let mut cleanup = DockerCleanup::default();
        let scope_label = format!("test.scope={}", unique("e2e"));
        let network = unique("e2e-net");
        if options.mode == "swarm" {
            docker(&["network", "create", "-d", "overlay", "--attachable", &network])?;
        }
        cleanup.networks.push(network.clone());
        let edge_port = free_port()?;
        let publish = format!("{edge_port}:8080");
        let mut args: Vec<String> = [
            "--mode",
            options.mode,
            "--scope",
            &scope_label,
            "--network",
            &network,
            "--cloudflared-image",
            EDGE_IMAGE,
            "--connector-publish",
            &publish,
            "--swarm-relist-interval",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(group) = &options.tunnel_group {
            args.extend(["--tunnel-group".to_string(), group.clone()]);
        }
        args.extend(options.extra_args.iter().cloned());
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let agent = Agent::start_configured(masters, token, &arg_refs, !options.production_backoff)?;
        let id = agent.id(WAIT).await?;
        let connector = format!("dockflare-tunnel-{}", &id[..8]);
        if options.mode == "swarm" {
            cleanup.services.push(connector.clone());
        } else {
            cleanup.containers.push(connector.clone());
        }
        Ok(EdgeAgent {
            agent,
            id,
            scope_label,
            network,
            edge: Edge::on_port(edge_port)?,
            edge_port,
            connector,
            cleanup,
        })
    }

    /// Starts a labelled origin container of this agent's scope, named `name`, answering
    /// `hostname` at `http://NAME:80`. `extra` are more `docker run` arguments (before the image).
    pub fn run_origin(&mut self, name: &str, hostname: &str, extra: &[&str]) -> Result<String> {
        self.cleanup.containers.push(name.to_string());
        let mut args: Vec<String> = ["run", "-d", "--name", name, "--env", &format!("ORIGIN_NAME={name}")]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for label in [
            self.scope_label.clone(),
            "dockflare.enable=true".into(),
            format!("dockflare.hostname={hostname}"),
            format!("dockflare.service=http://{name}:80"),
        ] {
            args.extend(["--label".to_string(), label]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(ORIGIN_IMAGE.to_string());
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&arg_refs)
    }

    /// The connector's container id (standalone).
    pub fn connector_container_id(&self) -> Result<String> {
        docker(&["inspect", "--format", "{{.Id}}", &self.connector])
    }

    /// Everything worth reading when a wait fails: the connector's and the agent's logs.
    pub fn diagnostics(&self) -> String {
        let connector =
            match std::process::Command::new("docker").args(["logs", "--tail", "40", &self.connector]).output() {
                Ok(output) => {
                    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
                }
                Err(error) => format!("(docker logs: {error})"),
            };
        format!("connector {}:\n{connector}\nagent {}:\n{}", self.connector, self.id, tail(&self.agent.logs.text(), 60))
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The three places a route lives, all checked at once.
pub struct Observed {
    pub cloud: CloudView,
    pub route: Option<Route>,
    pub answer: Option<Answer>,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("cloud", &self.cloud)
            .field("route", &self.route.as_ref().map(|r| (r.status, r.reason.clone(), r.last_error.clone())))
            .field("answer", &self.answer)
            .finish()
    }
}

pub async fn observe(cloud: &Cloud, master: &Master, edge: &Edge, hostname: &str) -> Observed {
    let route = route(master, hostname).await.ok().flatten();
    let answer = edge.get(hostname, "/").await.ok();
    Observed { cloud: cloud.view(hostname), route, answer }
}

/// Waits until `hostname` is routed everywhere: one tunnel rule and one CNAME to it in the account,
/// an ACTIVE route at the master, and `origin` answering through `edge` (any origin when `None`).
/// Returns the tunnel id.
pub async fn expect_served(
    cloud: &Cloud,
    master: &Master,
    edge: &Edge,
    hostname: &str,
    origin: Option<&str>,
    within: Duration,
) -> Result<String> {
    let last = Mutex::new(None);
    let result = eventually(&format!("{hostname} routed and answering"), within, || async {
        let seen = observe(cloud, master, edge, hostname).await;
        let tunnel = seen.cloud.routed();
        let active = seen.route.as_ref().is_some_and(|r| r.status == RouteStatus::Active as i32);
        let answered = seen.answer.as_ref().and_then(Answer::origin);
        let answered_right = match origin {
            Some(expected) => answered.as_deref() == Some(expected),
            None => answered.is_some(),
        };
        let done = match (&tunnel, active, answered_right) {
            (Some(tunnel), true, true) => Some(tunnel.clone()),
            _ => None,
        };
        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
        Ok(done)
    })
    .await;
    result.with_context(|| format!("last seen: {:?}", last.lock().unwrap_or_else(|p| p.into_inner())))
}

/// Waits until `hostname` is gone everywhere: no rule or record in the account, no route at the
/// master, the catch-all's 404 through `edge`.
pub async fn expect_gone(cloud: &Cloud, master: &Master, edge: &Edge, hostname: &str, within: Duration) -> Result<()> {
    let last = Mutex::new(None);
    let result = eventually(&format!("{hostname} removed everywhere"), within, || async {
        let seen = observe(cloud, master, edge, hostname).await;
        let done = seen.cloud.absent() && seen.route.is_none() && seen.answer.as_ref().is_some_and(|a| a.status == 404);
        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
        Ok(done.then_some(()))
    })
    .await;
    result.with_context(|| format!("last seen: {:?}", last.lock().unwrap_or_else(|p| p.into_inner())))
}

/// Fails unless every DNS record name in the account is unique and no two live tunnels share a
/// name: what "no duplicate tunnel or record" means.
pub fn assert_no_duplicates(snapshot: &Snapshot) -> Result<()> {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &snapshot.dns_records {
        *names.entry(record.record.name.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = names.iter().filter(|(_, n)| **n > 1).collect();
    if !duplicated.is_empty() {
        bail!("duplicate DNS records: {duplicated:?}");
    }
    let mut tunnels: BTreeMap<String, usize> = BTreeMap::new();
    for (_, name, _) in live_tunnels(snapshot) {
        *tunnels.entry(name).or_default() += 1;
    }
    let duplicated: Vec<_> = tunnels.iter().filter(|(_, n)| **n > 1).collect();
    if !duplicated.is_empty() {
        bail!("duplicate live tunnels: {duplicated:?}");
    }
    Ok(())
}

//! The agent on a real Docker engine, standalone: labelled containers
//! started, stopped, restarted and recreated reach the master's store and
//! admin API as containers, routes and diagnostics; the tunnel connector
//! follows start_tunnel / stop_tunnel, is adopted after an agent restart,
//! recreated on a token change, and restored from the state file while the
//! master is down.

mod support;

use anyhow::{Context, Result};
use dockflare::v1::{
    send_command_request::Kind, ListContainersRequest, ListDiagnosticsRequest, ListRoutesRequest, RouteStatus,
    SendCommandRequest, StartTunnel, StopTunnel,
};
use dockflare_testsupport::{docker, eventually, require_docker, unique, Agent, DockerCleanup, Master};
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const ORIGIN: &str = "dockflare-test/origin:latest";
const CONNECTOR: &str = "dockflare-test/connector:latest";

/// Container names the master lists for an agent.
async fn reported(master: &Master, agent_id: &str) -> Result<BTreeSet<String>> {
    let containers = master
        .admin()
        .await?
        .list_containers(ListContainersRequest { agent_id: agent_id.into(), ..Default::default() })
        .await?
        .into_inner()
        .containers;
    Ok(containers.into_iter().filter_map(|c| c.container.map(|c| c.name)).collect())
}

/// The label diagnostics the master lists for an agent.
async fn diagnostics(master: &Master, agent_id: &str) -> Result<Vec<dockflare::v1::DiagnosticRecord>> {
    let request = ListDiagnosticsRequest { agent_id: agent_id.into(), ..Default::default() };
    Ok(master.admin().await?.list_diagnostics(request).await?.into_inner().diagnostics)
}

async fn wait_reported(master: &Master, agent_id: &str, expected: &[&str]) -> Result<()> {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    eventually(&format!("master lists {expected:?}"), WAIT, || async {
        let now = reported(master, agent_id).await?;
        Ok((now == expected).then_some(()))
    })
    .await
}

/// (hostname, path, service, status) of the agent's routes.
async fn routes(master: &Master, agent_id: &str) -> Result<Vec<(String, String, String, i32)>> {
    let routes = master
        .admin()
        .await?
        .list_routes(ListRoutesRequest { agent_id: agent_id.into(), ..Default::default() })
        .await?
        .into_inner()
        .routes;
    Ok(routes.into_iter().map(|r| (r.hostname, r.path, r.service, r.status)).collect())
}

async fn wait_route_status(master: &Master, agent_id: &str, hostname: &str, status: RouteStatus) -> Result<()> {
    eventually(&format!("{hostname} {status:?}"), WAIT, || async {
        let now = routes(master, agent_id).await?;
        Ok(now.iter().any(|r| r.0 == hostname && r.3 == status as i32).then_some(()))
    })
    .await
}

fn run_origin(cleanup: &mut DockerCleanup, name: &str, network: &str, labels: &[String]) -> Result<String> {
    let mut args: Vec<String> =
        vec!["run".into(), "-d".into(), "--name".into(), name.into(), "--network".into(), network.into()];
    for label in labels {
        args.push("--label".into());
        args.push(label.clone());
    }
    args.push(ORIGIN.into());
    cleanup.containers.push(name.to_string());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&argv)
}

async fn start_agent(master: &Master, scope: &str, network: &str) -> Result<(Agent, String)> {
    let token = master.join_token(1).await?;
    let scope_arg = format!("test.scope={scope}");
    let agent = Agent::start_with(
        &[master.url()],
        &token,
        &[
            "--mode",
            "standalone",
            "--scope",
            &scope_arg,
            "--network",
            network,
            "--cloudflared-image",
            CONNECTOR,
            "--relist-interval",
            "3s",
        ],
    )?;
    let agent_id = agent.id(WAIT).await?;
    Ok((agent, agent_id))
}

/// A network of its own, a master, and an agent scoped to `scope` on that network that has listed
/// the engine. (Fields drop in order: the cleanup last.)
struct Rig {
    master: Master,
    agent: Agent,
    agent_id: String,
    scope: String,
    network: String,
    cleanup: DockerCleanup,
}

async fn rig(prefix: &str) -> Result<Rig> {
    require_docker();
    let mut cleanup = DockerCleanup::default();
    let scope = unique(prefix);
    let network = unique("net");
    docker(&["network", "create", &network])?;
    cleanup.networks.push(network.clone());
    let master = Master::start(None, &[]).await?;
    let (agent, agent_id) = start_agent(&master, &scope, &network).await?;
    cleanup.containers.push(format!("dockflare-tunnel-{}", &agent_id[..8]));
    agent.logs.wait_for("Docker inventory listed.", WAIT).await?;
    Ok(Rig { master, agent, agent_id, scope, network, cleanup })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_containers_and_routes_follow_the_engine() -> Result<()> {
    let Rig { master, agent, agent_id, scope, network, mut cleanup } = rig("std").await?;

    let in_scope = format!("test.scope={scope}");
    let web = format!("web-{scope}");
    let api = format!("api-{scope}");
    let other = format!("other-{scope}");
    run_origin(
        &mut cleanup,
        &web,
        &network,
        &[
            in_scope.clone(),
            "dockflare.enable=true".into(),
            format!("dockflare.hostname=web.{scope}.example.test"),
            format!("dockflare.service=http://{web}:80"),
        ],
    )?;
    run_origin(
        &mut cleanup,
        &api,
        &network,
        &[
            in_scope.clone(),
            "dockflare.enable=true".into(),
            format!("dockflare.service=http://{api}:80"),
            format!("dockflare.0.hostname=api.{scope}.example.test"),
            "dockflare.0.path=/v1".into(),
            format!("dockflare.1.hostname=bad.{scope}.example.test/oops"),
            "dockflare.hostnme=typo.example.test".into(),
        ],
    )?;
    // Out of scope (another agent's) and unlabelled containers are not reported.
    run_origin(&mut cleanup, &other, &network, &["dockflare.enable=true".into()])?;
    wait_reported(&master, &agent_id, &[&web, &api]).await?;

    let expected = vec![
        (
            format!("api.{scope}.example.test"),
            "/v1".to_string(),
            format!("http://{api}:80"),
            RouteStatus::Active as i32,
        ),
        (format!("web.{scope}.example.test"), String::new(), format!("http://{web}:80"), RouteStatus::Active as i32),
    ];
    eventually("both routes active", WAIT, || async {
        Ok((routes(&master, &agent_id).await? == expected).then_some(()))
    })
    .await?;
    let diagnostics = diagnostics(&master, &agent_id).await?;
    let reasons: Vec<(String, String)> =
        diagnostics.iter().filter_map(|d| d.diagnostic.as_ref().map(|x| (x.label.clone(), x.reason.clone()))).collect();
    assert!(
        reasons.iter().any(|(l, r)| l == "dockflare.hostnme" && r.contains("did you mean \"hostname\"")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|(l, r)| l == "dockflare.1.hostname" && r.contains("must not contain a path")),
        "{reasons:?}"
    );
    assert!(diagnostics.iter().all(|d| d.container_name == api), "{diagnostics:?}");

    // Stop: the route waits out the grace period; start: active again.
    docker(&["stop", "-t", "1", &web])?;
    wait_reported(&master, &agent_id, &[&api]).await?;
    let web_host = format!("web.{scope}.example.test");
    wait_route_status(&master, &agent_id, &web_host, RouteStatus::PendingDeletion).await?;
    docker(&["start", &web])?;
    wait_reported(&master, &agent_id, &[&web, &api]).await?;
    wait_route_status(&master, &agent_id, &web_host, RouteStatus::Active).await?;
    docker(&["restart", "-t", "1", &api])?;
    wait_reported(&master, &agent_id, &[&web, &api]).await?;
    docker(&["rm", "-f", &web])?;
    run_origin(
        &mut cleanup,
        &web,
        &network,
        &[
            in_scope.clone(),
            "dockflare.enable=true".into(),
            format!("dockflare.hostname=web2.{scope}.example.test"),
            format!("dockflare.service=http://{web}:8080"),
        ],
    )?;
    eventually("the recreated container's new labels", WAIT, || async {
        let now = routes(&master, &agent_id).await?;
        Ok(now
            .iter()
            .any(|r| r.0 == format!("web2.{scope}.example.test") && r.2 == format!("http://{web}:8080"))
            .then_some(now))
    })
    .await?;
    // The old labels' route is no longer asked for: it waits out the grace period.
    wait_route_status(&master, &agent_id, &web_host, RouteStatus::PendingDeletion).await?;
    drop(agent);
    Ok(())
}

fn connectors(agent_id: &str) -> Result<Vec<String>> {
    let filter = format!("label=dockflare.agent_id={agent_id}");
    let ids = docker(&["ps", "-aq", "--no-trunc", "--filter", &filter])?;
    Ok(ids.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
}

async fn wait_connector(agent_id: &str, token: &str) -> Result<String> {
    eventually(&format!("one running connector with token {token}"), WAIT, || async {
        let ids = connectors(agent_id)?;
        let [id] = ids.as_slice() else { return Ok(None) };
        let state = docker(&["inspect", "--format", "{{.State.Status}}", id])?;
        let env = docker(&["inspect", "--format", "{{json .Config.Env}}", id])?;
        Ok((state == "running" && env.contains(&format!("TUNNEL_TOKEN={token}"))).then(|| id.clone()))
    })
    .await
}

async fn send(master: &Master, agent_id: &str, kind: Kind) -> Result<()> {
    master.admin().await?.send_command(SendCommandRequest { agent_id: agent_id.into(), kind: Some(kind) }).await?;
    Ok(())
}

fn start_tunnel(token: &str) -> Kind {
    Kind::StartTunnel(StartTunnel {
        tunnel_id: "6ff42ae2-765d-4adf-8112-31c55c1551ef".into(),
        tunnel_name: "dockflare-test".into(),
        token: token.into(),
        rules: vec![],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_follows_commands_restarts_and_the_state_file() -> Result<()> {
    require_docker();
    let mut cleanup = DockerCleanup::default();
    let scope = unique("conn");
    let network = unique("net");
    cleanup.networks.push(network.clone());
    let mut master = Master::start(None, &[]).await?;
    let (mut agent, agent_id) = start_agent(&master, &scope, &network).await?;
    let connector_name = format!("dockflare-tunnel-{}", &agent_id[..8]);
    cleanup.containers.push(connector_name.clone());
    // The master's reconciler gives every agent its tunnel first (offline mode:
    // the built-in emulator's); the commands below come after it.
    master.wait_reconciler_start_tunnel(&agent_id, WAIT).await?;

    // start_tunnel: the connector runs with the token in its environment only.
    let token = format!("eyJhIjoi{}", unique("one"));
    send(&master, &agent_id, start_tunnel(&token)).await?;
    let first = wait_connector(&agent_id, &token).await?;
    let command =
        docker(&["inspect", "--format", "{{json .Config.Cmd}} {{json .Config.Entrypoint}} {{json .Args}}", &first])?;
    assert!(command.contains("\"tunnel\",\"--no-autoupdate\",\"run\""), "{command}");
    assert!(!command.contains(&token), "the token is on the command line: {command}");
    let logs = docker(&["logs", &first])?;
    assert!(logs.contains("\"argv\":[\"tunnel\",\"--no-autoupdate\",\"run\"]"), "{logs}");
    assert_eq!(docker(&["inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", &first])?, "always");
    assert!(docker(&["inspect", "--format", "{{json .NetworkSettings.Networks}}", &first])?.contains(&network));
    agent.logs.wait_for("Connector status.", WAIT).await?;
    assert!(!agent.logs.text().contains(&token), "the token reached the agent's log");
    assert!(!master.logs.text().contains(&token), "the token reached the master's log");

    // Agent restart: the same connector is adopted.
    agent.restart()?;
    agent.logs.wait_for("Connected to the master.", WAIT).await?;
    eventually("the agent checked its connector again", WAIT, || async {
        Ok((agent.logs.count("Connector status.") >= 2).then_some(()))
    })
    .await?;
    assert_eq!(connectors(&agent_id)?, vec![first.clone()], "the connector was not adopted");
    assert_eq!(agent.logs.count("Connector created."), 2, "the reconciler's connector, then ours");

    // Token change: recreated.
    let rotated = format!("eyJhIjoi{}", unique("two"));
    send(&master, &agent_id, start_tunnel(&rotated)).await?;
    let second = wait_connector(&agent_id, &rotated).await?;
    assert_ne!(first, second);

    // Master down: a restarted agent still restores the connector from tunnel_state.json.
    master.kill9()?;
    agent.kill9()?;
    docker(&["rm", "-f", &second])?;
    agent.restart()?;
    let restored = wait_connector(&agent_id, &rotated).await?;
    assert_ne!(restored, second);

    // stop_tunnel removes it (after the restarted master's first pass).
    master.restart().await?;
    master.admin().await?.reconcile(dockflare::v1::ReconcileRequest {}).await?;
    send(&master, &agent_id, Kind::StopTunnel(StopTunnel { tunnel_id: String::new() })).await?;
    let removed =
        eventually("the connector removed", WAIT, || async { Ok(connectors(&agent_id)?.is_empty().then_some(())) })
            .await;
    if let Err(error) = removed {
        anyhow::bail!("{error}\nagent log:\n{}\nmaster log:\n{}", agent.logs.text(), master.logs.text());
    }
    let state =
        std::fs::read_to_string(agent.data_dir.path().join("tunnel_state.json")).context("tunnel_state.json")?;
    assert!(state.contains("\"desired_state\": \"stopped\""), "{state}");
    Ok(())
}

/// A route whose service host is not a name on the connector network (a Compose service name
/// where the container is called otherwise) is diagnosed with the names the network knows, and
/// the diagnostic goes once such a name exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_host_the_connector_cannot_resolve_is_diagnosed() -> Result<()> {
    let Rig { master, agent: _agent, agent_id, scope, network, mut cleanup } = rig("reach").await?;

    // An unlabelled database on the network, known by its name and an alias.
    let db = format!("db-{scope}");
    cleanup.containers.push(db.clone());
    docker(&["run", "-d", "--name", &db, "--network", &network, "--network-alias", "database", ORIGIN])?;
    let app = format!("app-{scope}");
    let labels = [
        format!("test.scope={scope}"),
        "dockflare.enable=true".into(),
        format!("dockflare.hostname=app.{scope}.example.test"),
        "dockflare.service=http://web:80".into(),
    ];
    run_origin(&mut cleanup, &app, &network, &labels)?;
    let service_reasons = || async {
        let listed = diagnostics(&master, &agent_id).await?;
        Ok::<_, anyhow::Error>(
            listed
                .into_iter()
                .filter_map(|d| d.diagnostic)
                .filter(|d| d.label == "dockflare.service")
                .map(|d| d.reason)
                .collect::<Vec<_>>(),
        )
    };
    let reason = eventually("a diagnostic for the unknown service host", WAIT, || async {
        Ok(service_reasons().await?.into_iter().next())
    })
    .await?;
    assert!(
        reason.contains(&format!("\"web\" is not a container name or alias on the connector network {network}")),
        "{reason}"
    );
    for name in [db.as_str(), "database", app.as_str()] {
        assert!(reason.contains(name), "the known name {name} is not listed: {reason}");
    }
    // The route itself is still routed (the diagnostic advises; it does not withhold).
    wait_route_status(&master, &agent_id, &format!("app.{scope}.example.test"), RouteStatus::Active).await?;

    // A container that answers to "web" joins the network: the diagnostic goes (next relist).
    let web = format!("web-{scope}");
    cleanup.containers.push(web.clone());
    docker(&["run", "-d", "--name", &web, "--network", &network, "--network-alias", "web", ORIGIN])?;
    eventually("the diagnostic to go", WAIT, || async { Ok(service_reasons().await?.is_empty().then_some(())) })
        .await?;
    Ok(())
}

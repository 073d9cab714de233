//! The agent on a real Swarm manager: `docker service create --label
//! dockflare.enable=true …` with replicas is reported as one service (and
//! its tasks), scaling shows in the running count, removal removes it and
//! its route; the connector runs as a service pinned to this node.

mod support;

use anyhow::Result;
use dockflare::v1::{
    send_command_request::Kind, ListContainersRequest, ListRoutesRequest, RouteStatus, SendCommandRequest, StartTunnel,
    StopTunnel,
};
use dockflare_testsupport::{docker, eventually, require_docker, unique, Agent, DockerCleanup, Master};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn require_swarm() {
    require_docker();
    let state =
        docker(&["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"]).unwrap_or_default();
    if state != "active true" {
        panic!("these tests need a Swarm manager (docker swarm init --advertise-addr 127.0.0.1); found {state:?}. deploy/test.sh sets it up.");
    }
}

/// (name, status, service_id, task_id) of what the master lists for the agent.
async fn reported(master: &Master, agent_id: &str) -> Result<Vec<(String, String, String, String)>> {
    let containers = master
        .admin()
        .await?
        .list_containers(ListContainersRequest { agent_id: agent_id.into(), ..Default::default() })
        .await?
        .into_inner()
        .containers;
    Ok(containers
        .into_iter()
        .filter_map(|c| c.container)
        .map(|c| (c.name, c.status, c.service_id, c.task_id))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_services_scale_and_leave_and_the_connector_is_node_pinned() -> Result<()> {
    require_swarm();
    let mut cleanup = DockerCleanup::default();
    let scope = unique("swarm");
    let network = unique("overlay");
    docker(&["network", "create", "-d", "overlay", "--attachable", &network])?;
    cleanup.networks.push(network.clone());
    let master = Master::start(None, &[]).await?;
    let token = master.join_token(1).await?;
    let scope_arg = format!("test.scope={scope}");
    let agent = Agent::start_with(
        &[master.url()],
        &token,
        &[
            "--mode",
            "swarm",
            "--scope",
            &scope_arg,
            "--network",
            &network,
            "--cloudflared-image",
            "dockflare-test/connector:latest",
            "--swarm-relist-interval",
            "1s",
        ],
    )?;
    let agent_id = agent.id(WAIT).await?;
    let node_id = docker(&["info", "--format", "{{.Swarm.NodeID}}"])?;

    let service = format!("web-{scope}");
    cleanup.services.push(service.clone());
    let hostname = format!("web.{scope}.example.test");
    docker(&[
        "service",
        "create",
        "-d",
        "--name",
        &service,
        "--network",
        &network,
        "--replicas",
        "2",
        "--label",
        &scope_arg,
        "--label",
        "dockflare.enable=true",
        "--label",
        "dockflare.port=80",
        "--label",
        &format!("dockflare.domain={hostname}"),
        "dockflare-test/origin:latest",
    ])?;

    let expect_running = |replicas: usize| {
        let (master, agent_id, service) = (&master, agent_id.clone(), service.clone());
        async move {
            eventually(&format!("{service} running {replicas}/{replicas} with its tasks"), WAIT, || async {
                let now = reported(master, &agent_id).await?;
                let service_entry =
                    now.iter().any(|c| c.0 == service && c.1 == format!("running {replicas}/{replicas}"));
                let tasks = now.iter().filter(|c| !c.3.is_empty() && c.0.starts_with(&format!("{service}."))).count();
                Ok((service_entry && tasks == replicas).then_some(now))
            })
            .await
        }
    };
    let listed = expect_running(2).await?;
    assert!(listed.iter().all(|c| !c.2.is_empty()), "every entry carries the service id: {listed:?}");
    let expected = vec![(hostname.clone(), format!("http://{service}:80"), RouteStatus::Active as i32)];
    eventually("one route for the whole service", WAIT, || async {
        let routes = master
            .admin()
            .await?
            .list_routes(ListRoutesRequest { agent_id: agent_id.clone(), ..Default::default() })
            .await?
            .into_inner()
            .routes;
        let summary: Vec<(String, String, i32)> =
            routes.iter().map(|r| (r.hostname.clone(), r.service.clone(), r.status)).collect();
        Ok((summary == expected).then_some(()))
    })
    .await?;

    docker(&["service", "scale", "-d", &format!("{service}=4")])?;
    expect_running(4).await?;

    docker(&["service", "rm", &service])?;
    eventually("the service and its tasks gone", WAIT, || async {
        Ok(reported(&master, &agent_id).await?.is_empty().then_some(()))
    })
    .await?;
    // Its route waits out the grace period.
    eventually("the service's route pending deletion", WAIT, || async {
        let routes = master
            .admin()
            .await?
            .list_routes(ListRoutesRequest { agent_id: agent_id.clone(), ..Default::default() })
            .await?
            .into_inner()
            .routes;
        Ok((routes.len() == 1 && routes[0].status == RouteStatus::PendingDeletion as i32).then_some(()))
    })
    .await?;

    // The connector is a service pinned to this node, token in its environment.
    let connector = format!("dockflare-tunnel-{}", &agent_id[..8]);
    cleanup.services.push(connector.clone());
    let token = format!("eyJhIjoi{}", unique("swarm"));
    master
        .admin()
        .await?
        .send_command(SendCommandRequest {
            agent_id: agent_id.clone(),
            kind: Some(Kind::StartTunnel(StartTunnel {
                tunnel_id: "c1744f8b-faa1-48a4-9e5c-02ac921467fa".into(),
                tunnel_name: "swarm".into(),
                token: token.clone(),
                rules: vec![],
            })),
        })
        .await?;
    eventually("the connector service running on this node", WAIT, || async {
        let Ok(spec) = docker(&["service", "inspect", "--format", "{{json .Spec.TaskTemplate}}", &connector]) else {
            return Ok(None);
        };
        let running = docker(&[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}} {{.Node}}",
            &connector,
        ])?;
        Ok((spec.contains(&format!("node.id=={node_id}"))
            && spec.contains(&format!("TUNNEL_TOKEN={token}"))
            && running.starts_with("Running"))
        .then_some(()))
    })
    .await?;
    let args =
        docker(&["service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Args}}", &connector])?;
    assert_eq!(args, "[\"tunnel\",\"--no-autoupdate\",\"run\"]");
    master
        .admin()
        .await?
        .send_command(SendCommandRequest {
            agent_id: agent_id.clone(),
            kind: Some(Kind::StopTunnel(StopTunnel::default())),
        })
        .await?;
    eventually("the connector service removed", WAIT, || async {
        Ok(docker(&["service", "inspect", &connector]).is_err().then_some(()))
    })
    .await?;
    drop(agent);
    Ok(())
}

/// The connector's latest status as the master stored it (ListEvents: tunnel_status events).
async fn connector_detail(master: &Master, agent_id: &str) -> Result<Option<(i32, String)>> {
    let mut page_token = String::new();
    let mut last = None;
    loop {
        let request = dockflare::v1::ListEventsRequest {
            agent_id: agent_id.into(),
            page_size: 1000,
            page_token,
            ..Default::default()
        };
        let page = master.admin().await?.list_events(request).await?.into_inner();
        for record in page.events {
            if let Some(dockflare::v1::agent_event::Event::TunnelStatus(status)) = record.event.and_then(|e| e.event) {
                last = Some((status.state, status.detail));
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(last);
        }
        page_token = page.next_page_token;
    }
}

/// A Swarm agent whose connector network name is taken by a network of the wrong kind: one that
/// is not DockFlare's gets a clear error naming it and the fix (in the agent's log and in the
/// connector status the master stores), and no service is created against it; one that is
/// DockFlare's and unused is replaced by an attachable overlay, and the connector runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_network_of_the_wrong_kind_is_replaced_if_ours_or_named_with_the_fix() -> Result<()> {
    require_swarm();
    let mut cleanup = DockerCleanup::default();
    let master = Master::start(None, &[]).await?;
    let token = master.join_token(2).await?;
    let start = |network: &str| {
        let args = ["--mode", "swarm", "--network", network, "--cloudflared-image", "dockflare-test/connector:latest"];
        Agent::start_with(&[master.url()], &token, &args)
    };

    // A local bridge someone else made (the Python DockFlare's cloudflare-net, say).
    let foreign = unique("cfnet");
    docker(&["network", "create", "-d", "bridge", &foreign])?;
    cleanup.networks.push(foreign.clone());
    let agent = start(&foreign)?;
    let agent_id = agent.id(WAIT).await?;
    let short: String = agent_id.chars().take(8).collect();
    cleanup.services.push(format!("dockflare-tunnel-{short}"));
    let logged = agent.logs.wait_for("Connector reconcile failed.", WAIT).await?;
    let error = logged["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains(&format!("network {foreign} is a bridge network that DockFlare did not create"))
            && error.contains(&format!("docker network rm {foreign}"))
            && error.contains("--network"),
        "{error}"
    );
    let stored = eventually("the master holds the connector's error", WAIT, || async {
        Ok(connector_detail(&master, &agent_id).await?.filter(|(_, detail)| detail.contains(&foreign)))
    })
    .await?;
    assert_eq!(stored.0, dockflare::v1::ConnectorState::Failed as i32, "{stored:?}");
    assert!(
        docker(&["service", "inspect", &format!("dockflare-tunnel-{short}")]).is_err(),
        "a connector service was created against a network it cannot use"
    );
    assert_eq!(agent.logs.count("Connector reconcile failed."), 1, "the same error was logged again and again");

    // DockFlare's own, unused, of the wrong kind: replaced.
    let ours = unique("cfnet");
    docker(&["network", "create", "-d", "bridge", "--label", "dockflare.managed=true", &ours])?;
    cleanup.networks.push(ours.clone());
    let second = start(&ours)?;
    let second_id = second.id(WAIT).await?;
    let second_short: String = second_id.chars().take(8).collect();
    cleanup.services.push(format!("dockflare-tunnel-{second_short}"));
    eventually("the connector runs on the replaced network", WAIT, || async {
        let driver =
            docker(&["network", "inspect", "--format", "{{.Driver}} {{.Attachable}}", &ours]).unwrap_or_default();
        let service = docker(&["service", "inspect", &format!("dockflare-tunnel-{second_short}")]).is_ok();
        Ok((driver == "overlay true" && service).then_some(()))
    })
    .await?;
    Ok(())
}

//! A Docker daemon restart under a running agent: it reconnects, relists
//! and sends a full status report, so the master converges on what runs —
//! containers that came back, containers that did not (no stale entry), and
//! containers started right after (none missing). Its own test binary, so
//! no other test runs while the engine is down.

mod processes;
mod support;

use anyhow::Result;
use dockflare::v1::ListContainersRequest;
use processes::{docker, eventually, require_docker, unique, Agent, DockerCleanup, Master};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

async fn reported(master: &Master, agent_id: &str) -> Result<BTreeSet<(String, String)>> {
    let containers = master
        .admin()
        .await?
        .list_containers(ListContainersRequest { agent_id: agent_id.into() })
        .await?
        .into_inner()
        .containers;
    Ok(containers.into_iter().filter_map(|c| c.container).map(|c| (c.name, c.id)).collect())
}

fn run(cleanup: &mut DockerCleanup, name: &str, scope: &str, restart: &str) -> Result<String> {
    cleanup.containers.push(name.to_string());
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--restart",
        restart,
        "--label",
        &format!("test.scope={scope}"),
        "--label",
        "dockflare.enable=true",
        "--label",
        &format!("dockflare.hostname={name}.example.test"),
        "--label",
        &format!("dockflare.service=http://{name}:80"),
        "dockflare-test/origin:latest",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_relists_after_a_docker_daemon_restart() -> Result<()> {
    require_docker();
    let mut cleanup = DockerCleanup::default();
    let scope = unique("restart");
    let master = Master::start(None, &[]).await?;
    let token = master.join_token(1).await?;
    let scope_arg = format!("test.scope={scope}");
    let agent = Agent::start_with(&[master.url()], &token, &["--mode", "standalone", "--scope", &scope_arg])?;
    let agent_id = agent.id(WAIT).await?;
    cleanup.containers.push(format!("dockflare-tunnel-{}", &agent_id[..8]));

    let survivor = format!("survivor-{scope}");
    let casualty = format!("casualty-{scope}");
    let survivor_id = run(&mut cleanup, &survivor, &scope, "always")?;
    let casualty_id = run(&mut cleanup, &casualty, &scope, "no")?;
    let before: BTreeSet<(String, String)> =
        [(survivor.clone(), survivor_id.clone()), (casualty.clone(), casualty_id)].into_iter().collect();
    eventually("both containers reported", WAIT, || async {
        Ok((reported(&master, &agent_id).await? == before).then_some(()))
    })
    .await?;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dockerd-restart.sh");
    let output = std::process::Command::new(&script).output()?;
    assert!(output.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&output.stderr));

    let newcomer = format!("newcomer-{scope}");
    let newcomer_id = run(&mut cleanup, &newcomer, &scope, "no")?;
    let after: BTreeSet<(String, String)> =
        [(survivor.clone(), survivor_id), (newcomer.clone(), newcomer_id)].into_iter().collect();
    eventually("the master sees exactly what runs after the restart", WAIT, || async {
        Ok((reported(&master, &agent_id).await? == after).then_some(()))
    })
    .await?;
    assert!(agent.logs.count("Docker inventory listed.") >= 2, "the agent did not relist: {}", agent.logs.text());
    assert!(agent.logs.count("Lost the Docker engine; reconnecting.") >= 1);
    Ok(())
}

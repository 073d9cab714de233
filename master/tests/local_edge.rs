//! The local edge end to end, on a real Docker engine: a master in offline mode (its built-in
//! emulator listening where containers reach it), an agent that runs `dockflare/local-edge` as
//! its connector with port 8080 published, and a labelled origin started *without* a network —
//! the agent attaches it to the connector network. A request to the published port with the
//! route's Host reaches the origin; an unknown Host gets the catch-all's 404.
//!
//! Needs the images of `deploy/images.sh` (the test says so when they are missing).

mod processes;
mod support;

use anyhow::{bail, Context, Result};
use processes::{docker, eventually, require_docker, unique, Agent, DockerCleanup, Master};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const ORIGIN: &str = "dockflare-test/origin:latest";
const EDGE: &str = "dockflare/local-edge:latest";

fn require_edge_image() {
    if docker(&["image", "inspect", "--format", "{{.Id}}", EDGE]).is_err() {
        panic!("image {EDGE} is missing: run deploy/images.sh (deploy/test.sh does).");
    }
}

/// A port free on this host right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("0.0.0.0", 0))?;
    Ok(listener.local_addr()?.port())
}

/// A container's output (the edge logs to stderr), for failure messages.
fn container_logs(name: &str) -> String {
    match std::process::Command::new("docker").args(["logs", "--timestamps", name]).output() {
        Ok(output) => format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
        Err(error) => format!("(docker logs {name}: {error})"),
    }
}

/// GET `url` with `Host: host`: status and body.
async fn get(client: &reqwest::Client, url: &str, host: &str) -> Result<(u16, String)> {
    let response = client.get(url).header(reqwest::header::HOST, host).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_labelled_container_answers_through_the_local_edge() -> Result<()> {
    require_docker();
    require_edge_image();
    let mut cleanup = DockerCleanup::default();
    let scope = unique("edge");
    let network = unique("net");
    cleanup.networks.push(network.clone());
    let emulator_port = free_port()?;
    let edge_port = free_port()?;

    let emulator_listen = format!("0.0.0.0:{emulator_port}");
    let master = Master::start(None, &["--offline-emulator-listen", &emulator_listen]).await?;
    let offline = master.logs.wait_for("Connectors reach the built-in emulator at its public URL (the \"e\" of tunnel tokens); the local edge reads its configuration there.", WAIT).await?;
    let public_url = offline.get("public_url").and_then(|u| u.as_str()).unwrap_or_default().to_string();
    assert_eq!(public_url, format!("http://host.docker.internal:{emulator_port}/client/v4"));

    let token = master.join_token(1).await?;
    let scope_arg = format!("test.scope={scope}");
    let publish = format!("{edge_port}:8080");
    let agent = Agent::start_with(
        &[master.url()],
        &token,
        &[
            "--mode",
            "standalone",
            "--scope",
            &scope_arg,
            "--network",
            &network,
            "--cloudflared-image",
            EDGE,
            "--connector-publish",
            &publish,
        ],
    )?;
    let agent_id = agent.id(WAIT).await?;
    let connector = format!("dockflare-tunnel-{}", &agent_id[..8]);
    cleanup.containers.push(connector.clone());

    // The edge answers on the published port: 503 until the tunnel has a configuration (the
    // master writes one with the first route), like cloudflared; the catch-all's 404 after that.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let edge_url = format!("http://127.0.0.1:{edge_port}");
    let unknown = format!("nothing.{scope}.example.test");
    eventually("the local edge answers", WAIT, || async {
        let (status, body) = get(&client, &format!("{edge_url}/"), &unknown).await?;
        Ok((status == 404 || (status == 503 && body.contains("no ingress configuration yet"))).then_some(()))
    })
    .await
    .with_context(|| {
        format!(
            "connector logs:\n{}\nagent logs:\n{}\nmaster logs:\n{}",
            container_logs(&connector),
            agent.logs.text(),
            master.logs.text()
        )
    })?;

    // A labelled origin on no particular network: the agent attaches it to the connector's.
    let web = format!("web-{scope}");
    let hostname = format!("app.{scope}.example.test");
    cleanup.containers.push(web.clone());
    let started = Instant::now();
    docker(&[
        "run",
        "-d",
        "--name",
        &web,
        "--env",
        &format!("ORIGIN_NAME={web}"),
        "--label",
        &scope_arg,
        "--label",
        "dockflare.enable=true",
        "--label",
        &format!("dockflare.hostname={hostname}"),
        "--label",
        &format!("dockflare.service=http://{web}:80"),
        ORIGIN,
    ])?;
    let answer = eventually("the origin answers through the local edge", WAIT, || async {
        let (status, body) = get(&client, &format!("{edge_url}/hello?x=1"), &hostname).await?;
        Ok((status == 200).then_some(body))
    })
    .await
    .with_context(|| {
        format!(
            "connector logs:\n{}\nagent logs:\n{}\nmaster logs:\n{}",
            container_logs(&connector),
            agent.logs.text(),
            master.logs.text()
        )
    })?;
    let elapsed = started.elapsed();
    eprintln!("local edge: docker run to the first answer through the edge took {} ms", elapsed.as_millis());
    if std::env::var_os("DOCKFLARE_TEST_VERBOSE").is_some() {
        eprintln!("connector logs:\n{}", container_logs(&connector));
    }

    let answer: serde_json::Value = serde_json::from_str(&answer).with_context(|| format!("not JSON: {answer}"))?;
    assert_eq!(answer["origin"], web.as_str(), "{answer}");
    assert_eq!(answer["host"], hostname.as_str(), "the Host header is kept: {answer}");
    assert_eq!(answer["path"], "/hello?x=1", "{answer}");
    assert_eq!(answer["method"], "GET", "{answer}");
    let networks = docker(&["inspect", "--format", "{{json .NetworkSettings.Networks}}", &web])?;
    if !networks.contains(&network) {
        bail!("the origin was not attached to {network}: {networks}");
    }
    agent.logs.wait_for("Container attached to the connector network.", WAIT).await?;

    // Unknown hosts still get the catch-all.
    assert_eq!(get(&client, &format!("{edge_url}/"), &unknown).await?.0, 404);

    // The emulator counts the edge as the tunnel's connector.
    let state: serde_json::Value =
        client.get(format!("http://127.0.0.1:{emulator_port}/__emulator/state")).send().await?.json().await?;
    let tunnels = state["tunnels"].as_array().cloned().unwrap_or_default();
    let live: Vec<&serde_json::Value> = tunnels.iter().filter(|t| t["deleted_at"].is_null()).collect();
    assert!(live.iter().any(|t| t["status"] == "healthy"), "{tunnels:?}");
    drop(agent);
    Ok(())
}

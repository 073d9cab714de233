//! `deploy/compose.yaml` with the real Compose tool on the real engine: `up` starts the master
//! image and the agent image (which enrolls with the bootstrap token from the shared volume), a
//! labelled container is served through the local edge, and `down` + `up` keeps the same agent,
//! tunnel and route. Needs the images of deploy/images.sh (the test command builds them).

use anyhow::{bail, ensure, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::{ListAgentsRequest, ListRoutesRequest, ListTunnelsRequest, RouteStatus};
use dockflare_testsupport::{docker, eventually, free_port, mtls_channel, require_docker, unique, DockerCleanup};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(120);

/// A compose project of deploy/compose.yaml on free host ports, taken down (volumes too) on drop.
struct Project {
    name: String,
    ports: [(String, u16); 5],
    pki: tempfile::TempDir,
}

fn compose_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/compose.yaml")
}

impl Project {
    fn new() -> Result<Project> {
        let ports = [
            ("DOCKFLARE_ADMIN_PORT".to_string(), free_port()?),
            ("DOCKFLARE_METRICS_PORT".to_string(), free_port()?),
            ("DOCKFLARE_EMULATOR_PORT".to_string(), free_port()?),
            ("DOCKFLARE_EDGE_PORT".to_string(), free_port()?),
            ("DOCKFLARE_WEB_PORT".to_string(), free_port()?),
        ];
        Ok(Project { name: unique("dfcompose"), ports, pki: tempfile::tempdir()? })
    }

    fn port(&self, name: &str) -> u16 {
        self.ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p).unwrap_or_default()
    }

    /// Runs `docker-compose -p NAME -f deploy/compose.yaml ARGS…`.
    fn compose(&self, args: &[&str]) -> Result<String> {
        let mut command = Command::new("docker-compose");
        command.args(["-p", &self.name, "-f"]).arg(compose_file()).args(args);
        for (name, port) in &self.ports {
            command.env(name, port.to_string());
        }
        command.env("DOCKFLARE_EDGE_PUBLISH", format!("{}:8080", self.port("DOCKFLARE_EDGE_PORT")));
        command.env("AGENT_DISPLAY_NAME", &self.name);
        for name in ["CF_API_TOKEN", "CF_ACCOUNT_ID", "CF_ZONE_ID"] {
            command.env_remove(name);
        }
        let output = command.output().context("running docker-compose (deploy/test.sh installs it)")?;
        if !output.status.success() {
            bail!("docker-compose {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    fn container(&self, service: &str) -> Result<String> {
        let id = self.compose(&["ps", "-q", service])?;
        ensure!(!id.is_empty(), "no {service} container");
        Ok(id)
    }

    /// The admin identity, copied out of the master's volume (`docker cp`: the image has no shell).
    fn admin_files(&self) -> Result<(String, String, String)> {
        let master = self.container("master")?;
        let target = self.pki.path().join("pki");
        let _ = std::fs::remove_dir_all(&target);
        docker(&["cp", &format!("{master}:/data/pki"), &target.display().to_string()])?;
        let read = |file: &str| std::fs::read_to_string(target.join(file)).with_context(|| file.to_string());
        Ok((read("ca.crt")?, read("admin.crt")?, read("admin.key")?))
    }

    async fn admin(&self) -> Result<AdminServiceClient<Channel>> {
        let (ca, cert, key) = self.admin_files()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port("DOCKFLARE_ADMIN_PORT")));
        Ok(AdminServiceClient::new(mtls_channel(addr, &ca, Some((&cert, &key))).await?))
    }

    fn logs(&self) -> String {
        self.compose(&["logs", "--no-color", "--tail", "40"]).unwrap_or_else(|e| e.to_string())
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans"]);
    }
}

/// Waits until the agent is online with its connector started; its id.
async fn agent_online(project: &Project) -> Result<String> {
    eventually("the agent enrolled and online", WAIT, || async {
        let agents = project.admin().await?.list_agents(ListAgentsRequest::default()).await?.into_inner().agents;
        Ok(agents
            .into_iter()
            .find(|a| a.display_name == project.name && a.status == dockflare::v1::AgentStatus::Online as i32)
            .map(|a| a.id))
    })
    .await
    .with_context(|| project.logs())
}

async fn get(port: u16, host: &str) -> Result<(u16, String)> {
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/"))
        .header(reqwest::header::HOST, host)
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

async fn served(project: &Project, hostname: &str, origin: &str) -> Result<()> {
    let port = project.port("DOCKFLARE_EDGE_PORT");
    eventually(&format!("{hostname} served by {origin} through the local edge"), WAIT, || async {
        let (status, body) = get(port, hostname).await?;
        Ok((status == 200 && body.contains(origin)).then_some(()))
    })
    .await
    .with_context(|| project.logs())
}

/// Makes a dashboard user inside the master's container (password on stdin) and signs in over
/// TLS, trusting the CA from the master's volume.
async fn dashboard_signs_in(project: &Project) -> Result<()> {
    use std::io::Write;
    let password = "compose dashboard password";
    let mut child = Command::new("docker")
        .args([
            "exec",
            "-i",
            &project.container("master")?,
            "/dockflare-master",
            "ui",
            "set-password",
            "--user",
            "ops",
            "--role",
            "viewer",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(password.as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(output.status.success(), "ui set-password in the container: {}", String::from_utf8_lossy(&output.stderr));
    let (ca, _, _) = project.admin_files()?;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let base = format!("https://localhost:{}", project.port("DOCKFLARE_WEB_PORT"));
    let locked = client.get(format!("{base}/")).send().await?;
    ensure!(
        locked.status() == reqwest::StatusCode::SEE_OTHER,
        "the dashboard is open without a session: {}",
        locked.status()
    );
    let signed = client.post(format!("{base}/login")).form(&[("user", "ops"), ("password", password)]).send().await?;
    ensure!(signed.status() == reqwest::StatusCode::SEE_OTHER, "sign-in: {}", signed.status());
    let cookie = signed.headers().get(reqwest::header::SET_COOKIE).context("no session cookie")?.to_str()?.to_string();
    ensure!(cookie.starts_with("__Host-dockflare-session=") && cookie.contains("Secure"), "{cookie}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_up_serves_a_labelled_container_and_down_up_keeps_identity() -> Result<()> {
    require_docker();
    for image in ["dockflare/master:latest", "dockflare/agent:latest"] {
        if docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_err() {
            panic!("image {image} is missing: run deploy/images.sh (deploy/test.sh does).");
        }
    }
    let project = Project::new()?;
    project.compose(&["up", "-d"])?;
    let agent_id = agent_online(&project).await?;
    let mut cleanup = DockerCleanup::default();
    let short: String = agent_id.chars().take(8).collect();
    cleanup.containers.push(format!("dockflare-tunnel-{short}"));
    cleanup.services.push(format!("dockflare-tunnel-{short}"));

    // Both images' HEALTHCHECKs (the binaries asking themselves, no shell) turn healthy.
    for service in ["master", "agent"] {
        let container = project.container(service)?;
        eventually(&format!("the {service} container is healthy"), WAIT, || async {
            let health = docker(&["inspect", "--format", "{{.State.Health.Status}}", &container])?;
            Ok((health == "healthy").then_some(()))
        })
        .await
        .with_context(|| project.logs())?;
    }

    // The token never shows in the containers' configuration.
    for service in ["master", "agent"] {
        let inspect = docker(&["inspect", &project.container(service)?])?;
        ensure!(
            !inspect.contains("DFJT-1-") && !inspect.contains("DOCKFLARE_JOIN_TOKEN="),
            "{service}: a join token in docker inspect"
        );
    }

    let origin = unique("web");
    let hostname = format!("{origin}.example.test");
    cleanup.containers.push(origin.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &origin,
        "--env",
        &format!("ORIGIN_NAME={origin}"),
        "--label",
        "dockflare.enable=true",
        "--label",
        &format!("dockflare.hostname={hostname}"),
        "--label",
        &format!("dockflare.service=http://{origin}:80"),
        "dockflare-test/origin:latest",
    ])?;
    served(&project, &hostname, &origin).await?;

    // The dashboard, published on this host over TLS: locked until a user signs in.
    dashboard_signs_in(&project).await?;
    let tunnels = project.admin().await?.list_tunnels(ListTunnelsRequest::default()).await?.into_inner().tunnels;
    ensure!(tunnels.len() == 1, "one tunnel expected: {tunnels:?}");

    // down and up again: the same agent, tunnel and route (the volumes keep them).
    project.compose(&["down"])?;
    project.compose(&["up", "-d"])?;
    let again = agent_online(&project).await?;
    ensure!(again == agent_id, "the agent came back as {again}, not {agent_id}");
    served(&project, &hostname, &origin).await?;
    let mut admin = project.admin().await?;
    let agents = admin.list_agents(ListAgentsRequest::default()).await?.into_inner().agents;
    ensure!(agents.len() == 1, "the agent enrolled again: {agents:?}");
    let after = admin.list_tunnels(ListTunnelsRequest::default()).await?.into_inner().tunnels;
    ensure!(
        after.iter().map(|t| &t.id).eq(tunnels.iter().map(|t| &t.id)),
        "the tunnel changed: {tunnels:?} → {after:?}"
    );
    let routes = admin.list_routes(ListRoutesRequest::default()).await?.into_inner().routes;
    let route = routes.iter().find(|r| r.hostname == hostname).context("the route is gone")?;
    ensure!(route.status == RouteStatus::Active as i32, "{route:?}");
    Ok(())
}

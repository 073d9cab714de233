//! `deploy/stack.yaml` with `docker stack deploy` on this machine's single-node Swarm: the join
//! token as a Docker secret (made with the master image's own `token create`), the global agent
//! enrolls, a labelled service with replicas is served through the local edge and keeps being
//! served when scaled, and `docker stack rm` leaves nothing of DockFlare but the volumes.

use anyhow::{bail, ensure, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::{AgentStatus, ListAgentsRequest};
use dockflare_testsupport::{docker, eventually, free_port, mtls_channel, require_docker, unique};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(120);

/// A deployed stack of deploy/stack.yaml with its own names and ports; removed (volumes,
/// secret and all) on drop.
struct Stack {
    name: String,
    network: String,
    secret: String,
    admin_port: u16,
    edge_port: u16,
    pki: tempfile::TempDir,
    services: Vec<String>,
}

impl Stack {
    fn env(&self, command: &mut Command) {
        command
            .env("DOCKFLARE_ADMIN_PORT", self.admin_port.to_string())
            .env("DOCKFLARE_NETWORK", &self.network)
            .env("DOCKFLARE_EDGE_PUBLISH", format!("{}:8080", self.edge_port))
            .env("DOCKFLARE_JOIN_TOKEN_SECRET", &self.secret)
            .env_remove("CF_API_TOKEN")
            .env_remove("CF_ACCOUNT_ID");
    }

    fn deploy(&self) -> Result<()> {
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/stack.yaml");
        let mut command = Command::new("docker");
        command.args(["stack", "deploy", "-c"]).arg(file).arg(&self.name);
        self.env(&mut command);
        let output = command.output()?;
        ensure!(output.status.success(), "docker stack deploy: {}", String::from_utf8_lossy(&output.stderr));
        Ok(())
    }

    /// The running container of the stack's `service`.
    fn container(&self, service: &str) -> Result<String> {
        let filter = format!("label=com.docker.swarm.service.name={}_{service}", self.name);
        let id = docker(&["ps", "-q", "--filter", &filter])?;
        id.lines().next().map(str::to_string).context(format!("no running {service} task"))
    }

    async fn admin(&self) -> Result<AdminServiceClient<Channel>> {
        let target = self.pki.path().join("pki");
        if !target.join("admin.key").exists() {
            docker(&["cp", &format!("{}:/data/pki", self.container("master")?), &target.display().to_string()])?;
        }
        let read = |file: &str| std::fs::read_to_string(target.join(file)).with_context(|| file.to_string());
        let addr = SocketAddr::from(([127, 0, 0, 1], self.admin_port));
        Ok(AdminServiceClient::new(
            mtls_channel(addr, &read("ca.crt")?, Some((&read("admin.crt")?, &read("admin.key")?))).await?,
        ))
    }

    fn logs(&self) -> String {
        ["master", "agent"]
            .iter()
            .map(|service| {
                let output = Command::new("docker")
                    .args(["service", "logs", "--tail", "30", &format!("{}_{service}", self.name)])
                    .output();
                output.map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for service in &self.services {
            let _ = docker(&["service", "rm", service]);
        }
        let _ = docker(&["stack", "rm", &self.name]);
        let managed = format!("label=com.docker.stack.namespace={}", self.name);
        if let Ok(left) = docker(&["service", "ls", "-q", "--filter", &managed]) {
            for id in left.lines() {
                let _ = docker(&["service", "rm", id]);
            }
        }
        // Tasks take a moment to go; their volumes and network only then.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let gone = docker(&["network", "rm", &self.network]).is_ok()
                || docker(&["network", "inspect", &self.network]).is_err();
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        for volume in ["master-data", "agent-data"] {
            let _ = docker(&["volume", "rm", "-f", &format!("{}_{volume}", self.name)]);
        }
        let _ = docker(&["secret", "rm", &self.secret]);
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_deploys_serves_a_scaled_service_and_leaves_only_its_volumes() -> Result<()> {
    require_docker();
    let swarm = docker(&["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"])?;
    if swarm != "active true" {
        panic!("this test needs a Swarm manager (deploy/test.sh sets one up); found {swarm:?}");
    }
    for image in ["dockflare/master:latest", "dockflare/agent:latest"] {
        if docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_err() {
            panic!("image {image} is missing: run deploy/images.sh (deploy/test.sh does).");
        }
    }
    let mut stack = Stack {
        name: unique("dfstack"),
        network: unique("dfnet"),
        secret: unique("dfjoin"),
        admin_port: free_port()?,
        edge_port: free_port()?,
        pki: tempfile::tempdir()?,
        services: Vec::new(),
    };

    // 1. The master's volume, its PKI and a join token, as a secret: no token on a command line.
    let volume = format!("{}_master-data:/data", stack.name);
    let token = docker(&[
        "run",
        "--rm",
        "-e",
        "DOCKFLARE_SERVER_NAMES=master,localhost,127.0.0.1",
        "-v",
        &volume,
        "dockflare/master:latest",
        "token",
        "create",
        "--max-uses",
        "10",
        "--ttl",
        "1h",
    ])?;
    ensure!(token.starts_with("DFJT-1-"), "token create printed {token:?}");
    let mut secret = Command::new("docker")
        .args(["secret", "create", &stack.secret, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    secret.stdin.take().context("stdin")?.write_all(token.as_bytes())?;
    ensure!(secret.wait()?.success(), "docker secret create failed");

    // 2. The stack.
    stack.deploy()?;
    let agent_id = eventually("the global agent enrolled and online", WAIT, || async {
        let Ok(mut admin) = stack.admin().await else { return Ok(None) };
        let agents = admin.list_agents(ListAgentsRequest::default()).await?.into_inner().agents;
        Ok(agents.into_iter().find(|a| a.status == AgentStatus::Online as i32).map(|a| a.id))
    })
    .await
    .with_context(|| stack.logs())?;

    // 3. A labelled service with replicas, on the stack's network.
    let web = unique("web");
    stack.services.push(web.clone());
    let hostname = format!("{web}.example.test");
    docker(&[
        "service",
        "create",
        "-d",
        "--name",
        &web,
        "--replicas",
        "2",
        "--endpoint-mode",
        "dnsrr",
        "--network",
        &stack.network,
        "--env",
        &format!("ORIGIN_NAME={web}"),
        "--label",
        "dockflare.enable=true",
        "--label",
        &format!("dockflare.hostname={hostname}"),
        "--label",
        &format!("dockflare.service=http://{web}:80"),
        "dockflare-test/origin:latest",
    ])?;
    let served = |what: &'static str| {
        let (port, hostname, web) = (stack.edge_port, hostname.clone(), web.clone());
        async move {
            eventually(what, WAIT, || async {
                let (status, body) = get(port, &hostname).await?;
                Ok((status == 200 && body.contains(&web)).then_some(()))
            })
            .await
        }
    };
    served("the service is served through the local edge").await.with_context(|| stack.logs())?;
    docker(&["service", "scale", "-d", &format!("{web}=3")])?;
    eventually("three replicas run", WAIT, || async {
        let running = docker(&["service", "ps", "-q", "--filter", "desired-state=running", &web])?;
        Ok((running.lines().count() == 3).then_some(()))
    })
    .await?;
    served("still served after scaling").await?;

    // 4. docker stack rm: nothing of DockFlare is left but the volumes.
    docker(&["service", "rm", &web])?;
    stack.services.clear();
    docker(&["stack", "rm", &stack.name])?;
    let short: String = agent_id.chars().take(8).collect();
    eventually("nothing of DockFlare is left", WAIT, || async {
        let namespace = format!("label=com.docker.stack.namespace={}", stack.name);
        let services = docker(&["service", "ls", "-q", "--filter", &namespace])?;
        let connector = docker(&["service", "ls", "-q", "--filter", &format!("name=dockflare-tunnel-{short}")])?;
        let containers = docker(&["ps", "-aq", "--filter", &namespace])?;
        // The network goes once its tasks have; `docker stack rm` may have been too early for it.
        let network = docker(&["network", "inspect", &stack.network]).is_ok();
        if network && services.is_empty() && containers.is_empty() {
            let _ = docker(&["network", "rm", &stack.network]);
        }
        Ok((services.is_empty() && connector.is_empty() && containers.is_empty() && !network).then_some(()))
    })
    .await?;
    let volumes = docker(&["volume", "ls", "-q", "--filter", &format!("name={}_", stack.name)])?;
    if !volumes.contains(&format!("{}_master-data", stack.name)) {
        bail!("the master's volume is gone: {volumes}");
    }
    Ok(())
}

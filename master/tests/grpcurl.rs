//! The real `dockflare-master` binary, seen from outside: grpcurl 1.8.6
//! finds and calls its services through reflection with the admin
//! certificate, and calls with the wrong credentials are refused with the
//! right gRPC status and a message that names the reason.
//!
//! grpcurl comes from DOCKFLARE_GRPCURL (set by deploy/test.sh) or PATH.

mod support;

use anyhow::{bail, ensure, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::{
    AgentStatus, DockerMode, ListAgentsRequest, RegisterRequest, RevokeAgentRequest, WatchCommandsRequest,
};
use dockflare_common::identity::Identity;
use dockflare_common::pki::CertificateAuthority;
use dockflare_testsupport::{enroll_agent, mtls_channel, Master};
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::test_databases;
use tonic::Code;

/// Longest one grpcurl run may take.
const GRPCURL_TIMEOUT: Duration = Duration::from_secs(30);

/// The grpcurl binary: DOCKFLARE_GRPCURL, else `grpcurl` on PATH. Panics
/// when neither runs: these tests never skip.
fn grpcurl_binary() -> &'static str {
    static BINARY: OnceLock<String> = OnceLock::new();
    BINARY.get_or_init(|| {
        let from_env = std::env::var("DOCKFLARE_GRPCURL").ok().filter(|path| !path.is_empty());
        let candidates: Vec<String> = from_env.into_iter().chain(["grpcurl".to_string()]).collect();
        for candidate in &candidates {
            let Ok(output) = std::process::Command::new(candidate).arg("-version").output() else { continue };
            let version =
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            if output.status.success() && version.contains("grpcurl") {
                return candidate.clone();
            }
        }
        panic!(
            "grpcurl does not run (tried {candidates:?}): run deploy/test.sh (it installs grpcurl and exports \
             DOCKFLARE_GRPCURL) or put grpcurl 1.8.6 on PATH"
        )
    })
}

/// What one grpcurl run printed.
struct GrpcurlOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

impl GrpcurlOutput {
    /// The output of a run that must have succeeded.
    fn ok(self) -> Result<String> {
        ensure!(self.success, "grpcurl failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        Ok(self.stdout)
    }

    /// The gRPC code and message of a run that must have failed with an RPC error.
    fn rpc_error(&self) -> Result<(String, String)> {
        ensure!(!self.success, "grpcurl succeeded but should have failed:\n{}", self.stdout);
        let field = |name: &str| {
            self.stderr.lines().find_map(|line| line.trim().strip_prefix(name).map(|rest| rest.trim().to_string()))
        };
        match (field("Code:"), field("Message:")) {
            (Some(code), Some(message)) => Ok((code, message)),
            _ => bail!("grpcurl failed without a gRPC status:\n{}", self.stderr),
        }
    }
}

/// Credentials for a grpcurl run: the CA to trust, and an optional client
/// certificate and key (files).
struct Credentials {
    ca: PathBuf,
    client: Option<(PathBuf, PathBuf)>,
}

impl Credentials {
    fn admin(master: &Master) -> Credentials {
        Credentials { ca: master.ca_cert_path(), client: Some((master.admin_cert_path(), master.admin_key_path())) }
    }

    fn anonymous(master: &Master) -> Credentials {
        Credentials { ca: master.ca_cert_path(), client: None }
    }

    /// A client certificate and key (PEM) written to `dir`.
    fn from_pem(master: &Master, dir: &Path, name: &str, cert_pem: &str, key_pem: &str) -> Result<Credentials> {
        let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert, cert_pem)?;
        std::fs::write(&key, key_pem)?;
        Ok(Credentials { ca: master.ca_cert_path(), client: Some((cert, key)) })
    }
}

/// Runs grpcurl against the master with `credentials` and `args` (after the
/// address come the method and the like).
async fn grpcurl(
    master: &Master,
    credentials: &Credentials,
    data: Option<&str>,
    args: &[&str],
) -> Result<GrpcurlOutput> {
    let mut command = tokio::process::Command::new(grpcurl_binary());
    command.arg("-max-time").arg("20").arg("-cacert").arg(&credentials.ca);
    if let Some((cert, key)) = &credentials.client {
        command.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    if let Some(data) = data {
        command.arg("-d").arg(data);
    }
    command.arg(master.addr.to_string()).args(args).kill_on_drop(true);
    let output = tokio::time::timeout(GRPCURL_TIMEOUT, command.output())
        .await
        .with_context(|| format!("grpcurl {args:?} did not finish within {GRPCURL_TIMEOUT:?}"))?
        .context("running grpcurl")?;
    Ok(GrpcurlOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn register_request(name: &str) -> RegisterRequest {
    RegisterRequest {
        display_name: name.into(),
        version: "0.1.0-test".into(),
        docker_mode: DockerMode::Standalone as i32,
        hostname: format!("{name}.example"),
        ..RegisterRequest::default()
    }
}

#[tokio::test]
async fn grpcurl_lists_describes_and_calls_through_reflection() -> Result<()> {
    let master = Master::sqlite().await?;
    let admin = Credentials::admin(&master);
    let agent = enroll_agent(&master, "reflected").await?;

    let services = grpcurl(&master, &admin, None, &["list"]).await?.ok()?;
    let services: Vec<&str> = services.lines().map(str::trim).collect();
    for service in ["dockflare.v1.AgentService", "dockflare.v1.AdminService", "grpc.health.v1.Health"] {
        assert!(services.contains(&service), "`grpcurl list` lacks {service}: {services:?}");
    }

    let methods = grpcurl(&master, &admin, None, &["list", "dockflare.v1.AdminService"]).await?.ok()?;
    for method in ["CreateJoinToken", "ListAgents", "RevokeAgent", "SendCommand", "ListEvents"] {
        assert!(methods.contains(&format!("dockflare.v1.AdminService.{method}")), "missing {method}: {methods}");
    }

    // Messages are described with their fields and their documentation.
    let event = grpcurl(&master, &admin, None, &["describe", "dockflare.v1.AgentEvent"]).await?.ok()?;
    for expected in [
        "dockflare.v1.AgentEvent is a message",
        "event_id",
        "occurred_at",
        "command_result",
        "Per-agent sequence number",
    ] {
        assert!(event.contains(expected), "describe AgentEvent lacks {expected:?}:\n{event}");
    }
    let service = grpcurl(&master, &admin, None, &["describe", "dockflare.v1.AdminService"]).await?.ok()?;
    for expected in ["dockflare.v1.AdminService is a service", "rpc ListAgents", "rpc RevokeAgent", "Revokes an agent"]
    {
        assert!(service.contains(expected), "describe AdminService lacks {expected:?}:\n{service}");
    }
    let agent_service = grpcurl(&master, &admin, None, &["describe", "dockflare.v1.AgentService"]).await?.ok()?;
    assert!(agent_service.contains("rpc WatchCommands"), "describe AgentService:\n{agent_service}");

    // ListAgents answers JSON that lists the enrolled agent.
    let listed = grpcurl(&master, &admin, Some("{}"), &["dockflare.v1.AdminService/ListAgents"]).await?.ok()?;
    let listed: serde_json::Value =
        serde_json::from_str(&listed).with_context(|| format!("ListAgents JSON: {listed}"))?;
    let agents = listed["agents"].as_array().context("ListAgents has no agents array")?;
    assert_eq!(agents.len(), 1, "{listed}");
    assert_eq!(agents[0]["id"], agent.id.as_str());
    assert_eq!(agents[0]["displayName"], "reflected");
    assert_eq!(agents[0]["status"], "AGENT_STATUS_OFFLINE");

    // Health: the server and each service are SERVING.
    for data in ["{}", r#"{"service":"dockflare.v1.AgentService"}"#, r#"{"service":"dockflare.v1.AdminService"}"#] {
        let health = grpcurl(&master, &admin, Some(data), &["grpc.health.v1.Health/Check"]).await?.ok()?;
        let health: serde_json::Value = serde_json::from_str(&health)?;
        assert_eq!(health["status"], "SERVING", "Health/Check {data}");
    }
    // Health and reflection need no client certificate.
    let health =
        grpcurl(&master, &Credentials::anonymous(&master), Some("{}"), &["grpc.health.v1.Health/Check"]).await?.ok()?;
    assert!(health.contains("SERVING"), "{health}");
    Ok(())
}

#[tokio::test]
async fn reflection_v1_lists_services_and_serves_descriptors() -> Result<()> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let master = Master::sqlite().await?;
    let mut client = ServerReflectionClient::new(master.admin_channel().await?);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("dockflare.v1.AgentEvent".into()),
        MessageRequest::FileContainingSymbol("dockflare.v1.NoSuchThing".into()),
    ]
    .map(|request| ServerReflectionRequest { host: String::new(), message_request: Some(request) });
    let mut responses = client.server_reflection_info(tokio_stream::iter(requests)).await?.into_inner();

    let Some(MessageResponse::ListServicesResponse(list)) = responses.message().await?.and_then(|r| r.message_response)
    else {
        bail!("the first answer is not a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in ["dockflare.v1.AgentService", "dockflare.v1.AdminService", "grpc.health.v1.Health"] {
        assert!(names.contains(&service), "reflection v1 lacks {service}: {names:?}");
    }

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.message().await?.and_then(|r| r.message_response)
    else {
        bail!("the second answer is not a file descriptor");
    };
    use prost::Message;
    let names: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).map(|f| f.name().to_string()))
        .collect::<Result<_, _>>()?;
    assert!(names.iter().any(|n| n == "dockflare/v1/agent.proto"), "descriptors served: {names:?}");

    // An unknown symbol: NOT_FOUND (tonic-reflection ends the stream with
    // the status rather than answering an ErrorResponse message).
    let code = match responses.message().await {
        Ok(Some(ServerReflectionResponse {
            message_response: Some(MessageResponse::ErrorResponse(error)), ..
        })) => Code::from(error.error_code),
        Err(status) => status.code(),
        Ok(other) => bail!("an unknown symbol gave {other:?}"),
    };
    assert_eq!(code, Code::NotFound);
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_the_reason() -> Result<()> {
    for database in test_databases().await? {
        refusals(Some(&database.url)).await.with_context(|| format!("master on {}", database.name))?;
    }
    Ok(())
}

async fn refusals(database_url: Option<&str>) -> Result<()> {
    let master = Master::start_with_database(database_url).await?;
    let files = tempfile::tempdir()?;
    let ca_pem = master.ca_pem()?;
    let list_agents = ["dockflare.v1.AdminService/ListAgents"];

    // No client certificate.
    let refused = grpcurl(&master, &Credentials::anonymous(&master), Some("{}"), &list_agents).await?;
    let (code, message) = refused.rpc_error()?;
    assert_eq!(code, "Unauthenticated", "{message}");
    assert!(message.contains("no client certificate"), "{message}");
    let status = AdminServiceClient::new(master.anonymous_channel().await?)
        .list_agents(ListAgentsRequest::default())
        .await
        .err()
        .context("ListAgents without a certificate succeeded")?;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // An admin certificate of another master (whose CA has the same name as ours).
    let now = time::OffsetDateTime::now_utc();
    let (other_ca, _) = CertificateAuthority::generate("DockFlare CA", now)?;
    let stranger = other_ca.issue_client(
        &Identity::Admin { name: "admin".into(), role: dockflare_common::identity::Role::Admin },
        time::Duration::days(1),
        now,
    )?;
    let (stranger_cert, stranger_key) = (stranger.certificate_pem.as_str(), stranger.key_pem.expose_secret());
    let channel = mtls_channel(master.addr, &ca_pem, Some((stranger_cert, stranger_key))).await?;
    let status = AdminServiceClient::new(channel)
        .list_agents(ListAgentsRequest::default())
        .await
        .err()
        .context("ListAgents with another CA's certificate succeeded")?;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("not issued by this master's CA"), "{status:?}");
    let credentials = Credentials::from_pem(&master, files.path(), "stranger", stranger_cert, stranger_key)?;
    let (code, message) = grpcurl(&master, &credentials, Some("{}"), &list_agents).await?.rpc_error()?;
    assert_eq!(code, "Unauthenticated", "{message}");
    assert!(message.contains("not issued by this master's CA"), "{message}");

    // An admin certificate of a CA with another name. The server names its CA
    // as the acceptable issuer, so grpcurl (Go) does not even offer this
    // certificate: refused as "no client certificate", pointing at the CA.
    let (unrelated_ca, _) = CertificateAuthority::generate("Unrelated CA", now)?;
    let unrelated = unrelated_ca.issue_client(
        &Identity::Admin { name: "admin".into(), role: dockflare_common::identity::Role::Admin },
        time::Duration::days(1),
        now,
    )?;
    let credentials = Credentials::from_pem(
        &master,
        files.path(),
        "unrelated",
        &unrelated.certificate_pem,
        unrelated.key_pem.expose_secret(),
    )?;
    let (code, message) = grpcurl(&master, &credentials, Some("{}"), &list_agents).await?.rpc_error()?;
    assert_eq!(code, "Unauthenticated", "{message}");
    assert!(message.contains("certificate issued by the master's CA"), "{message}");
    let channel =
        mtls_channel(master.addr, &ca_pem, Some((&unrelated.certificate_pem, unrelated.key_pem.expose_secret())))
            .await?;
    let status = AdminServiceClient::new(channel)
        .list_agents(ListAgentsRequest::default())
        .await
        .err()
        .context("ListAgents with an unrelated CA's certificate succeeded")?;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("not issued by this master's CA"), "{status:?}");

    // The master's own server certificate is issued by the right CA, but not for clients.
    let pki = master.pki_dir();
    let credentials =
        Credentials { ca: master.ca_cert_path(), client: Some((pki.join("server.crt"), pki.join("server.key"))) };
    let (code, message) = grpcurl(&master, &credentials, Some("{}"), &list_agents).await?.rpc_error()?;
    assert_eq!(code, "Unauthenticated", "{message}");
    assert!(message.contains("not a client certificate"), "{message}");

    // An agent certificate on AdminService, and the admin certificate on AgentService.
    let agent = enroll_agent(&master, "refused").await?;
    let credentials = Credentials::from_pem(&master, files.path(), "agent", &agent.cert_pem, &agent.key_pem)?;
    let (code, message) = grpcurl(&master, &credentials, Some("{}"), &list_agents).await?.rpc_error()?;
    assert_eq!(code, "PermissionDenied", "{message}");
    assert!(message.contains("needs an admin certificate"), "{message}");
    let status = AgentServiceClient::new(master.admin_channel().await?)
        .register(register_request("admin"))
        .await
        .err()
        .context("Register with the admin certificate succeeded")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("needs an agent certificate"), "{status:?}");

    // A registered agent with an open command stream is revoked.
    let mut agent_client = AgentServiceClient::new(agent.channel(&master).await?);
    let registered = agent_client.register(register_request("refused")).await?.into_inner();
    assert_eq!((registered.agent_id.as_str(), registered.status), (agent.id.as_str(), AgentStatus::Online as i32));
    let mut commands = agent_client.watch_commands(WatchCommandsRequest::default()).await?.into_inner();
    let mut admin = AdminServiceClient::new(master.admin_channel().await?);
    let revoked_at = Instant::now();
    let revoked = admin.revoke_agent(RevokeAgentRequest { id: agent.id.clone() }).await?.into_inner();
    assert_eq!(revoked.agent.map(|a| a.status), Some(AgentStatus::Revoked as i32));
    let ended = tokio::time::timeout(Duration::from_secs(1).saturating_sub(revoked_at.elapsed()), commands.message())
        .await
        .context("the revoked agent's command stream was still open 1 s after the revocation")?;
    let status = match ended {
        Err(status) => status,
        Ok(message) => bail!("the command stream went on after the revocation: {message:?}"),
    };
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");

    // Every later call of the revoked agent is refused, on a new connection too.
    let status = agent_client.register(register_request("refused")).await.err().context("Register after revocation")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("has been revoked"), "{status:?}");
    let mut fresh = AgentServiceClient::new(agent.channel(&master).await?);
    let status =
        fresh.watch_commands(WatchCommandsRequest::default()).await.err().context("WatchCommands after revocation")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // The admin sees it revoked; grpcurl refuses nothing to the admin.
    let listed = grpcurl(&master, &Credentials::admin(&master), Some("{}"), &list_agents).await?.ok()?;
    let listed: serde_json::Value = serde_json::from_str(&listed)?;
    assert_eq!(listed["agents"][0]["status"], "AGENT_STATUS_REVOKED", "{listed}");
    master.wait_for_log("Agent revoked.", Duration::from_secs(5)).await?;
    Ok(())
}

//! Admin identities with roles, over real mutual TLS: what each role may call and what it is
//! refused (PERMISSION_DENIED naming the role needed), certificates the master did not record,
//! revocation ending an open stream within a second, and `dockflare-master admin` as a process.

use anyhow::{bail, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::{self, AdminRole};
use dockflare_testsupport::{enroll_agent, Master};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tonic::Code;

async fn client_as(master: &Master, cert: &str, key: &str) -> Result<AdminServiceClient<tonic::transport::Channel>> {
    Ok(AdminServiceClient::new(master.channel_as(Some((cert, key))).await?))
}

fn manual_route(hostname: &str, agent_id: &str) -> v1::AddManualRouteRequest {
    v1::AddManualRouteRequest {
        hostname: hostname.into(),
        service: "http://origin:80".into(),
        agent_id: agent_id.into(),
        ..Default::default()
    }
}

fn refused_with<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, needle: &str) -> Result<()> {
    match result {
        Err(status) if status.code() == code && status.message().contains(needle) => Ok(()),
        other => bail!("expected {code:?} mentioning {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_call_what_it_needs_and_is_refused_the_rest() -> Result<()> {
    let master = Master::sqlite().await?;
    let agent = enroll_agent(&master, "roles-agent").await?;
    let (_, viewer_cert, viewer_key) = master.issue_identity("alice", AdminRole::Viewer).await?;
    let (_, operator_cert, operator_key) = master.issue_identity("bob", AdminRole::Operator).await?;
    let (_, admin_cert, admin_key) = master.issue_identity("carol", AdminRole::Admin).await?;
    let mut viewer = client_as(&master, &viewer_cert, &viewer_key).await?;
    let mut operator = client_as(&master, &operator_cert, &operator_key).await?;
    let mut admin = client_as(&master, &admin_cert, &admin_key).await?;

    // Viewer: reads, and says who it is; every write is refused naming the role it needs.
    viewer.list_routes(v1::ListRoutesRequest::default()).await.context("viewer ListRoutes")?;
    viewer.list_agents(v1::ListAgentsRequest::default()).await.context("viewer ListAgents")?;
    viewer.list_tunnels(v1::ListTunnelsRequest::default()).await.context("viewer ListTunnels")?;
    let me = viewer.who_am_i(v1::WhoAmIRequest {}).await?.into_inner().identity.context("identity")?;
    assert_eq!((me.name.as_str(), me.role), ("alice", AdminRole::Viewer as i32));
    refused_with(
        viewer.add_manual_route(manual_route("v.example.test", &agent.id)).await,
        Code::PermissionDenied,
        "AddManualRoute needs role operator",
    )?;
    refused_with(viewer.reconcile(v1::ReconcileRequest {}).await, Code::PermissionDenied, "needs role operator")?;
    refused_with(
        viewer.create_join_token(v1::CreateJoinTokenRequest::default()).await,
        Code::PermissionDenied,
        "CreateJoinToken needs role admin",
    )?;

    // Operator: manual routes and reconcile passes, not membership.
    operator.add_manual_route(manual_route("o.example.test", &agent.id)).await.context("operator AddManualRoute")?;
    operator.reconcile(v1::ReconcileRequest {}).await.context("operator Reconcile")?;
    operator
        .delete_manual_route(v1::DeleteManualRouteRequest { hostname: "o.example.test".into(), path: String::new() })
        .await
        .context("operator DeleteManualRoute")?;
    refused_with(
        operator.revoke_agent(v1::RevokeAgentRequest { id: agent.id.clone() }).await,
        Code::PermissionDenied,
        "RevokeAgent needs role admin",
    )?;
    refused_with(
        operator.issue_admin_identity(v1::IssueAdminIdentityRequest::default()).await,
        Code::PermissionDenied,
        "needs role admin",
    )?;

    // Admin: everything, identities included; they are listed with role, expiry and last use.
    admin.create_join_token(v1::CreateJoinTokenRequest::default()).await.context("admin CreateJoinToken")?;
    let listed = admin
        .list_admin_identities(v1::ListAdminIdentitiesRequest { include_inactive: false })
        .await?
        .into_inner()
        .identities;
    for (name, role) in [("alice", AdminRole::Viewer), ("bob", AdminRole::Operator), ("carol", AdminRole::Admin)] {
        let found = listed.iter().find(|i| i.name == name).with_context(|| format!("{name} not listed: {listed:?}"))?;
        assert_eq!(found.role, role as i32, "{name}");
        assert!(found.expires_at.is_some() && found.last_used_at.is_some(), "{found:?}");
    }
    assert!(listed.iter().any(|i| i.name == "admin" && i.role == AdminRole::Admin as i32), "{listed:?}");

    // An agent certificate may not call AdminService.
    let (agent_cert, agent_key) = agent.identity();
    let mut as_agent = client_as(&master, agent_cert, agent_key).await?;
    refused_with(
        as_agent.list_routes(v1::ListRoutesRequest::default()).await,
        Code::PermissionDenied,
        "needs an admin certificate",
    )?;

    // A certificate the master's CA signed but the master never recorded is refused.
    let ca = dockflare_common::pki::CertificateAuthority::load(&master.pki("ca.crt")?, &master.pki("ca.key")?)?;
    let identity = dockflare_common::identity::Identity::admin("mallory", dockflare_common::identity::Role::Admin)
        .context("name")?;
    let forged = ca.issue_client(&identity, time::Duration::hours(1), time::OffsetDateTime::now_utc())?;
    use secrecy::ExposeSecret;
    let mut unrecorded = client_as(&master, &forged.certificate_pem, forged.key_pem.expose_secret()).await?;
    refused_with(
        unrecorded.list_routes(v1::ListRoutesRequest::default()).await,
        Code::Unauthenticated,
        "not recorded by this master",
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_identity_is_refused_and_its_open_watch_ends_within_a_second() -> Result<()> {
    let master = Master::sqlite().await?;
    let (id, cert, key) = master.issue_identity("dave", AdminRole::Viewer).await?;
    let mut dave = client_as(&master, &cert, &key).await?;
    let mut stream = dave.watch_changes(v1::WatchChangesRequest::default()).await?.into_inner();
    // Read up to SYNCED: the watch is open.
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .context("no SYNCED within 20 s")?
            .context("stream ended before SYNCED")??;
        if message.r#type == v1::ChangeType::Synced as i32 {
            break;
        }
    }
    let revoked_at = Instant::now();
    let revoked =
        master.admin().await?.revoke_admin_identity(v1::RevokeAdminIdentityRequest { id: id.clone() }).await?;
    assert!(
        revoked.into_inner().identity.is_some_and(|i| i.revoked),
        "RevokeAdminIdentity answers the revoked identity"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Ok(status),
                None => return Err(anyhow::anyhow!("the stream ended without a status")),
            }
        }
    })
    .await
    .context("the revoked identity's watch is still open after 5 s")??;
    let took = revoked_at.elapsed();
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("revoked"), "{ended:?}");
    assert!(took <= Duration::from_secs(1), "the watch ended {took:?} after the revocation (limit 1 s)");
    refused_with(dave.list_routes(v1::ListRoutesRequest::default()).await, Code::Unauthenticated, "has been revoked")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockflare_master_admin_issues_lists_and_revokes_identities_in_the_data_dir() -> Result<()> {
    let master = Master::sqlite().await?;
    let data_dir = master.pki_dir().parent().context("data dir")?.to_path_buf();
    let binary = dockflare_testsupport::workspace_binary("dockflare-master")?;
    let run = |args: &[&str]| -> Result<std::process::Output> {
        let output = std::process::Command::new(&binary)
            .args(args)
            .env("DOCKFLARE_DATA_DIR", &data_dir)
            .env_remove("DOCKFLARE_DATABASE_URL")
            .output()
            .with_context(|| format!("running dockflare-master {args:?}"))?;
        Ok(output)
    };
    let out_dir = tempfile::tempdir()?;
    let out = out_dir.path().join("erin");
    let issued = run(&[
        "admin",
        "issue",
        "--name",
        "erin",
        "--role",
        "operator",
        "--ttl",
        "7d",
        "--out-dir",
        out.to_str().context("path")?,
    ])?;
    assert!(issued.status.success(), "admin issue failed: {}", String::from_utf8_lossy(&issued.stderr));
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(out.join("erin.key"))?.permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600, "the key file is private");
    let (cert, key) = (std::fs::read_to_string(out.join("erin.crt"))?, std::fs::read_to_string(out.join("erin.key"))?);
    let mut erin = client_as(&master, &cert, &key).await?;
    let me = erin.who_am_i(v1::WhoAmIRequest {}).await?.into_inner().identity.context("identity")?;
    assert_eq!((me.name.as_str(), me.role), ("erin", AdminRole::Operator as i32));

    let listed = run(&["admin", "list"])?;
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    let line = text.lines().find(|l| l.contains(" erin ")).with_context(|| format!("erin not in:\n{text}"))?;
    assert!(line.contains("operator") && line.contains("valid"), "{line}");
    let revoked = run(&["admin", "revoke", &me.id])?;
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    // The running master notices a revocation made in its database within a second.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match erin.list_routes(v1::ListRoutesRequest::default()).await {
            Err(status) if status.code() == Code::Unauthenticated => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => bail!("a revoked identity still works after 3 s: {other:?}"),
        }
    }
    let bad = run(&["admin", "issue", "--name", "bad name", "--role", "viewer"])?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("name:"), "{}", String::from_utf8_lossy(&bad.stderr));
    Ok(())
}

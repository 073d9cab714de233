//! The server under test — the real master, or the bare-tonic floor — behind one face: where it
//! listens, its PKI, its process, and how the harness creates join tokens and sends commands.

use crate::floor_process::{floor_control_client, FloorProcess};
use crate::results::Server;
use anyhow::{anyhow, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::{CreateJoinTokenRequest, SendCommandRequest};
use dockflare_testsupport::{mtls_channel, Master};
use std::net::SocketAddr;
use tonic::transport::Channel;

/// A running server: the master or the floor.
pub enum ServerUnderTest {
    DockFlare(Master),
    Floor(FloorProcess),
}

impl ServerUnderTest {
    pub fn kind(&self) -> Server {
        match self {
            ServerUnderTest::DockFlare(_) => Server::Dockflare,
            ServerUnderTest::Floor(_) => Server::Floor,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            ServerUnderTest::DockFlare(master) => master.addr,
            ServerUnderTest::Floor(floor) => floor.addr,
        }
    }

    pub fn ca_pem(&self) -> Result<String> {
        match self {
            ServerUnderTest::DockFlare(master) => master.ca_pem(),
            ServerUnderTest::Floor(floor) => floor.ca_pem(),
        }
    }

    /// The admin client certificate and key (PEM).
    pub fn admin_identity(&self) -> Result<(String, String)> {
        match self {
            ServerUnderTest::DockFlare(master) => Ok((master.pki("admin.crt")?, master.pki("admin.key")?)),
            ServerUnderTest::Floor(floor) => floor.admin_identity(),
        }
    }

    /// The process id; an error (with the master's last log lines) when it has exited.
    pub fn pid(&mut self) -> Result<u32> {
        match self {
            ServerUnderTest::DockFlare(master) => {
                master.check_running()?;
                master.pid().ok_or_else(|| anyhow!("the master is not running"))
            }
            ServerUnderTest::Floor(floor) => Ok(floor.pid()),
        }
    }

    /// The client the harness drives the server with.
    pub async fn control(&self) -> Result<Control> {
        let (cert, key) = self.admin_identity()?;
        let ca = self.ca_pem()?;
        Ok(match self {
            ServerUnderTest::DockFlare(master) => {
                Control::Admin(AdminServiceClient::new(mtls_channel(master.addr, &ca, Some((&cert, &key))).await?))
            }
            ServerUnderTest::Floor(floor) => {
                Control::Floor(floor_control_client(floor.addr, &ca, (&cert, &key)).await?)
            }
        })
    }
}

/// How the harness talks to the server: the master's AdminService, or the floor's FloorControl.
#[derive(Clone)]
pub enum Control {
    Admin(AdminServiceClient<Channel>),
    Floor(crate::floor_process::FloorControlClient<Channel>),
}

impl Control {
    /// A join token good for `uses` enrollments (the floor takes any token).
    pub async fn join_token(&self, uses: usize) -> Result<String> {
        let Control::Admin(admin) = self else { return Ok("floor".into()) };
        let max_uses = u32::try_from(uses).context("--agents is too large for one join token")?;
        let request = CreateJoinTokenRequest {
            ttl_seconds: 3600,
            max_uses,
            description: "fleet_bench".into(),
            tunnel_group: String::new(),
            policy: None,
        };
        Ok(admin.clone().create_join_token(request).await.context("CreateJoinToken")?.into_inner().token)
    }

    /// Sends a command; its id.
    pub async fn send_command(&self, request: SendCommandRequest) -> Result<String> {
        let agent = request.agent_id.clone();
        let response = match self {
            Control::Admin(admin) => admin.clone().send_command(request).await,
            Control::Floor(floor) => floor.clone().send_command(request).await,
        };
        Ok(response.with_context(|| format!("SendCommand to {agent}"))?.into_inner().command_id)
    }

    /// The master's AdminService (the floor has none).
    pub fn admin(&self) -> Option<&AdminServiceClient<Channel>> {
        match self {
            Control::Admin(admin) => Some(admin),
            Control::Floor(_) => None,
        }
    }
}

//! `dockflare.bench.v1.FloorControl`: how the benchmark queues commands on the floor, as it
//! calls AdminService.SendCommand on a master. Only the admin certificate the floor wrote to its
//! data dir may call it (the presented certificate must be that one, byte for byte).

use crate::agents::{Agents, SendError};
use crate::proto::floor_control_server::FloorControl;
use dockflare::v1::{command, send_command_request, SendCommandRequest, SendCommandResponse};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The FloorControl implementation.
pub struct Control {
    agents: Arc<Agents>,
    admin_cert_der: Vec<u8>,
}

impl Control {
    pub fn new(agents: Arc<Agents>, admin_cert_der: Vec<u8>) -> Control {
        Control { agents, admin_cert_der }
    }

    /// Refuses callers without the admin certificate.
    fn check_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let certs =
            request.peer_certs().ok_or_else(|| Status::unauthenticated("FloorControl needs a client certificate"))?;
        match certs.first() {
            Some(cert) if cert.as_ref() == self.admin_cert_der.as_slice() => Ok(()),
            _ => Err(Status::permission_denied("FloorControl needs the floor's admin certificate (admin.crt)")),
        }
    }
}

#[tonic::async_trait]
impl FloorControl for Control {
    async fn send_command(
        &self,
        request: Request<SendCommandRequest>,
    ) -> Result<Response<SendCommandResponse>, Status> {
        self.check_admin(&request)?;
        let SendCommandRequest { agent_id, kind } = request.into_inner();
        let kind = match kind.ok_or_else(|| Status::invalid_argument("kind: exactly one must be set"))? {
            send_command_request::Kind::StartTunnel(start) => command::Kind::StartTunnel(start),
            send_command_request::Kind::StopTunnel(stop) => command::Kind::StopTunnel(stop),
            send_command_request::Kind::UpdateTunnelConfig(update) => command::Kind::UpdateTunnelConfig(update),
            send_command_request::Kind::Resync(resync) => command::Kind::Resync(resync),
        };
        match self.agents.send(&agent_id, kind) {
            Ok((command_id, sequence)) => Ok(Response::new(SendCommandResponse { command_id, sequence })),
            Err(SendError::NoStream) => {
                Err(Status::not_found(format!("agent {agent_id:?} has no open WatchCommands stream")))
            }
            Err(SendError::Full) => {
                Err(Status::resource_exhausted(format!("agent {agent_id:?} does not read its commands (buffer full)")))
            }
        }
    }
}

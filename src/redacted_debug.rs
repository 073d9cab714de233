//! Hand-written `Debug` for messages that carry secrets: the secret field is
//! printed as `[redacted]`, everything else as usual.

use crate::v1::{CreateJoinTokenResponse, EnrollRequest, StartTunnel};
use std::fmt;

const REDACTED: &str = "[redacted]";

impl fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("join_token", &REDACTED)
            .field("csr_der_len", &self.csr_der.len())
            .field("display_name", &self.display_name)
            .finish()
    }
}

impl fmt::Debug for StartTunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartTunnel")
            .field("tunnel_id", &self.tunnel_id)
            .field("tunnel_name", &self.tunnel_name)
            .field("token", &REDACTED)
            .field("rules", &self.rules)
            .finish()
    }
}

impl fmt::Debug for CreateJoinTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateJoinTokenResponse").field("token", &REDACTED).field("info", &self.info).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_reach_debug_output() {
        let enroll = EnrollRequest {
            join_token: "DFJT-1-secretvalue".into(),
            csr_der: vec![1, 2, 3],
            display_name: "host-a".into(),
        };
        let start = StartTunnel {
            tunnel_id: "t1".into(),
            tunnel_name: "n".into(),
            token: "eyJhIjoidG9rZW4ifQ".into(),
            rules: vec![],
        };
        let created = CreateJoinTokenResponse { token: "DFJT-1-othersecret".into(), info: None };
        let printed = format!("{enroll:?} {start:?} {created:?}");
        assert!(!printed.contains("secretvalue"), "{printed}");
        assert!(!printed.contains("eyJhIjoidG9rZW4ifQ"), "{printed}");
        assert!(!printed.contains("othersecret"), "{printed}");
        assert!(printed.contains("host-a") && printed.contains("[redacted]"), "{printed}");
    }
}

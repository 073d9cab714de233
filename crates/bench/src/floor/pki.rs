//! The floor's certificates, made fresh at every start: a CA, a server certificate for
//! 127.0.0.1 and localhost, and the admin client identity (`admin.crt`, `admin.key`) that may call
//! FloorControl. Written to the data dir as the master writes its `pki/` (keys 0600).

use anyhow::{Context, Result};
use dockflare_common::identity::{Identity, Role};
use dockflare_common::pki::{pem_certificates_der, CertificateAuthority};
use dockflare_common::secret_file::{create_private_dir, write_atomically, write_secret_file};
use secrecy::ExposeSecret;
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// Lifetime of the server and admin certificates (the floor lives for one benchmark run).
const LIFETIME: Duration = Duration::days(30);

/// What the server needs of its PKI.
pub struct FloorPki {
    pub ca: CertificateAuthority,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// The admin certificate (DER): the one identity FloorControl accepts.
    pub admin_cert_der: Vec<u8>,
}

impl FloorPki {
    /// Generates everything and writes `ca.crt`, `admin.crt` and `admin.key` into `dir`.
    pub fn create(dir: &Path) -> Result<FloorPki> {
        let now = OffsetDateTime::now_utc();
        create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (ca, _ca_key) = CertificateAuthority::generate("DockFlare floor CA", now)?;
        let server = ca.issue_server(&["127.0.0.1".to_string(), "localhost".to_string()], LIFETIME, now)?;
        let admin_identity = Identity::admin("admin", Role::Admin).context("the admin identity's name")?;
        let admin = ca.issue_client(&admin_identity, LIFETIME, now)?;
        let admin_cert_der =
            pem_certificates_der(&admin.certificate_pem)?.into_iter().next().context("the admin certificate")?;

        let write = |name: &str, contents: &str, secret: bool| {
            let path = dir.join(name);
            let written = if secret {
                write_secret_file(&path, contents.as_bytes())
            } else {
                write_atomically(&path, contents.as_bytes(), 0o644)
            };
            written.with_context(|| format!("writing {}", path.display()))
        };
        write("ca.crt", ca.certificate_pem(), false)?;
        write("admin.crt", &admin.certificate_pem, false)?;
        write("admin.key", admin.key_pem.expose_secret(), true)?;
        Ok(FloorPki {
            ca,
            server_cert_pem: server.certificate_pem,
            server_key_pem: server.key_pem.expose_secret().to_string(),
            admin_cert_der,
        })
    }
}

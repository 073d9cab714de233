//! The master's PKI on disk, in `<data-dir>/pki/`: the CA (`ca.crt`,
//! `ca.key`), the server certificate (`server.crt`, `server.key`) and the
//! admin client identity (`admin.crt`, `admin.key`). Created on first start;
//! keys are 0600. Operator-supplied CA or server files replace the generated
//! ones.

use dockflare_common::identity::Identity;
use dockflare_common::pki::{self, CertificateAuthority, PkiError};
use dockflare_common::secret_file::{create_private_dir, write_atomically, write_secret_file};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

const SERVER_LIFETIME: Duration = Duration::days(365);
const ADMIN_LIFETIME: Duration = Duration::days(3 * 365);
/// Generated server and admin certificates are renewed at start-up when they
/// expire within this window.
const RENEW_WITHIN: Duration = Duration::days(30);

/// Why the PKI could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum PkiFilesError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Pki { path: PathBuf, source: PkiError },
    #[error("--ca-cert and --ca-key must be given together")]
    HalfCa,
    #[error("--tls-cert and --tls-key must be given together")]
    HalfServer,
}

/// Where to find or put the PKI, and operator overrides.
#[derive(Debug, Clone)]
pub struct PkiOptions {
    pub dir: PathBuf,
    /// DNS names and IP addresses for the generated server certificate.
    pub server_names: Vec<String>,
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    pub server_cert: Option<PathBuf>,
    pub server_key: Option<PathBuf>,
}

/// The loaded PKI.
pub struct MasterPki {
    pub ca: CertificateAuthority,
    pub server_cert_pem: String,
    pub server_key_pem: SecretString,
    pub dir: PathBuf,
}

impl MasterPki {
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn admin_cert_path(&self) -> PathBuf {
        self.dir.join("admin.crt")
    }
    pub fn admin_key_path(&self) -> PathBuf {
        self.dir.join("admin.key")
    }
}

fn read(path: &Path) -> Result<String, PkiFilesError> {
    std::fs::read_to_string(path).map_err(|source| PkiFilesError::Io { path: path.to_path_buf(), source })
}

fn write_cert(path: &Path, pem: &str) -> Result<(), PkiFilesError> {
    write_atomically(path, pem.as_bytes(), 0o644)
        .map_err(|source| PkiFilesError::Io { path: path.to_path_buf(), source })
}

fn write_key(path: &Path, pem: &SecretString) -> Result<(), PkiFilesError> {
    write_secret_file(path, pem.expose_secret().as_bytes())
        .map_err(|source| PkiFilesError::Io { path: path.to_path_buf(), source })
}

fn pki_error(path: &Path) -> impl FnOnce(PkiError) -> PkiFilesError + '_ {
    move |source| PkiFilesError::Pki { path: path.to_path_buf(), source }
}

/// Loads the PKI from `options.dir`, creating what is missing.
pub fn load_or_create(options: &PkiOptions, now: OffsetDateTime) -> Result<MasterPki, PkiFilesError> {
    let dir = &options.dir;
    create_private_dir(dir).map_err(|source| PkiFilesError::Io { path: dir.clone(), source })?;

    let ca = match (&options.ca_cert, &options.ca_key) {
        (Some(cert), Some(key)) => {
            let ca = CertificateAuthority::load(&read(cert)?, &read(key)?).map_err(pki_error(cert))?;
            // Agents and grpcurl users find the CA at the usual place.
            write_cert(&dir.join("ca.crt"), ca.certificate_pem())?;
            ca
        }
        (None, None) => load_or_generate_ca(dir, now)?,
        _ => return Err(PkiFilesError::HalfCa),
    };

    let (server_cert_pem, server_key_pem) = match (&options.server_cert, &options.server_key) {
        (Some(cert), Some(key)) => (read(cert)?, SecretString::from(read(key)?)),
        (None, None) => load_or_issue_server(dir, &ca, &options.server_names, now)?,
        _ => return Err(PkiFilesError::HalfServer),
    };

    ensure_admin_identity(dir, &ca, now)?;
    Ok(MasterPki { ca, server_cert_pem, server_key_pem, dir: dir.clone() })
}

fn load_or_generate_ca(dir: &Path, now: OffsetDateTime) -> Result<CertificateAuthority, PkiFilesError> {
    let cert_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    if cert_path.exists() && key_path.exists() {
        return CertificateAuthority::load(&read(&cert_path)?, &read(&key_path)?).map_err(pki_error(&cert_path));
    }
    let (ca, key) = CertificateAuthority::generate("DockFlare CA", now).map_err(pki_error(&cert_path))?;
    write_key(&key_path, &key)?;
    write_cert(&cert_path, ca.certificate_pem())?;
    tracing::info!(message = "Created a new certificate authority.", path = %cert_path.display());
    Ok(ca)
}

/// Whether a PEM certificate exists, was issued by `ca`, and stays valid past the renewal window.
fn still_good(cert_pem: &str, ca: &CertificateAuthority, now: OffsetDateTime) -> bool {
    let Ok(ders) = pki::pem_certificates_der(cert_pem) else { return false };
    let Some(Ok(info)) = ders.first().map(|der| pki::describe_certificate(der)) else { return false };
    info.not_after > now + RENEW_WITHIN && pki::is_issued_by(&ders[0], ca.certificate_der())
}

fn certificate_names(cert_pem: &str) -> BTreeSet<String> {
    let Ok(ders) = pki::pem_certificates_der(cert_pem) else { return BTreeSet::new() };
    let Some(Ok(info)) = ders.first().map(|der| pki::describe_certificate(der)) else { return BTreeSet::new() };
    info.host_names.into_iter().collect()
}

fn load_or_issue_server(
    dir: &Path,
    ca: &CertificateAuthority,
    names: &[String],
    now: OffsetDateTime,
) -> Result<(String, SecretString), PkiFilesError> {
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    let wanted: BTreeSet<String> = names.iter().cloned().collect();
    if cert_path.exists() && key_path.exists() {
        let cert = read(&cert_path)?;
        if still_good(&cert, ca, now) && certificate_names(&cert) == wanted {
            return Ok((cert, SecretString::from(read(&key_path)?)));
        }
        tracing::info!(message = "Reissuing the server certificate (names, issuer or expiry changed).");
    }
    let issued = ca.issue_server(names, SERVER_LIFETIME, now).map_err(pki_error(&cert_path))?;
    write_key(&key_path, &issued.key_pem)?;
    write_cert(&cert_path, &issued.certificate_pem)?;
    Ok((issued.certificate_pem, issued.key_pem))
}

fn ensure_admin_identity(dir: &Path, ca: &CertificateAuthority, now: OffsetDateTime) -> Result<(), PkiFilesError> {
    let cert_path = dir.join("admin.crt");
    let key_path = dir.join("admin.key");
    if cert_path.exists() && key_path.exists() && still_good(&read(&cert_path)?, ca, now) {
        return Ok(());
    }
    let issued = ca
        .issue_client(
            &Identity::Admin { name: "admin".into(), role: dockflare_common::identity::Role::Admin },
            ADMIN_LIFETIME,
            now,
        )
        .map_err(pki_error(&cert_path))?;
    write_key(&key_path, &issued.key_pem)?;
    write_cert(&cert_path, &issued.certificate_pem)?;
    tracing::info!(message = "Created the admin client identity.", cert = %cert_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn options(dir: &Path) -> PkiOptions {
        PkiOptions {
            dir: dir.join("pki"),
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            ca_cert: None,
            ca_key: None,
            server_cert: None,
            server_key: None,
        }
    }

    #[test]
    fn first_start_creates_everything_and_second_start_reuses_it() -> Result<(), Box<dyn std::error::Error>> {
        let temp = tempfile::tempdir()?;
        let now = OffsetDateTime::now_utc();
        let first = load_or_create(&options(temp.path()), now)?;
        let dir = temp.path().join("pki");
        for key in ["ca.key", "server.key", "admin.key"] {
            let mode = std::fs::metadata(dir.join(key))?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
        let second = load_or_create(&options(temp.path()), now)?;
        assert_eq!(first.ca.certificate_der(), second.ca.certificate_der());
        assert_eq!(first.server_cert_pem, second.server_cert_pem);
        Ok(())
    }

    #[test]
    fn changed_server_names_reissue_the_server_certificate() -> Result<(), Box<dyn std::error::Error>> {
        let temp = tempfile::tempdir()?;
        let now = OffsetDateTime::now_utc();
        let first = load_or_create(&options(temp.path()), now)?;
        let mut changed = options(temp.path());
        changed.server_names.push("master.example.test".into());
        let second = load_or_create(&changed, now)?;
        assert_ne!(first.server_cert_pem, second.server_cert_pem);
        assert!(certificate_names(&second.server_cert_pem).contains("master.example.test"));
        Ok(())
    }
}

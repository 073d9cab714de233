//! What goes wrong on the way to the master, in words and exit codes: nobody listening (3), a
//! client certificate from another CA (4), a master the trusted CA did not sign (4).

use crate::support::{flags, Cli};
use anyhow::Result;
use dockflare_testsupport::{free_port, Master};
use std::path::Path;

/// A CA of its own and an admin client certificate it signed (PEM files in `dir`).
fn stranger(dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "DockFlare CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, "dockflare-admin stranger");
    params.subject_alt_names = vec![rcgen::SanType::URI("spiffe://dockflare/admin/admin/stranger".try_into()?)];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer)?;
    let paths = (dir.join("other-ca.crt"), dir.join("stranger.crt"), dir.join("stranger.key"));
    std::fs::write(&paths.0, ca_cert.pem())?;
    std::fs::write(&paths.1, cert.pem())?;
    std::fs::write(&paths.2, key.serialize_pem())?;
    Ok(paths)
}

#[tokio::test]
async fn an_unreachable_master_is_exit_3_and_names_the_address() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let port = free_port()?;
    let url = format!("https://localhost:{port}");
    let mut args = flags(&url, &master.ca_cert_path(), &master.admin_cert_path(), &master.admin_key_path());
    args.push("agents".into());
    let run = cli.run(&args).await?;
    let stderr = run.failed_with(3)?;
    assert!(
        stderr
            .contains(&format!("cannot reach the master at {url} (from --master): connection refused; is it running?")),
        "{stderr}"
    );
    assert!(stderr.contains("DOCKFLARE_MASTER") && stderr.contains("dockflare login"), "{stderr}");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    Ok(())
}

#[tokio::test]
async fn certificates_of_another_ca_are_exit_4() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let (other_ca, cert, key) = stranger(cli.home.path())?;

    // Our client certificate, from another CA: the master refuses it.
    let run = cli.as_identity(&master, &cert, &key, &["routes"]).await?;
    let stderr = run.failed_with(4)?;
    assert!(stderr.contains("not issued by this master's CA"), "{stderr}");
    assert!(stderr.contains(&format!("{} (from --cert)", cert.display())), "{stderr}");

    // `login` keeps nothing it could not use.
    let login = cli.as_identity(&master, &cert, &key, &["login"]).await?;
    login.failed_with(4)?;
    assert!(!cli.config_dir().exists(), "a refused login wrote {}", cli.config_dir().display());

    // The master's certificate, checked against another CA: we refuse it.
    let mut args = flags(&master.url(), &other_ca, &master.admin_cert_path(), &master.admin_key_path());
    args.push("agents".into());
    let run = cli.run(&args).await?;
    let stderr = run.failed_with(4)?;
    assert!(stderr.contains("did not sign") && stderr.contains("other-ca.crt (from --ca-cert)"), "{stderr}");

    // A key file that is not there.
    let missing = cli.home.path().join("nowhere.key");
    let run = cli.as_identity(&master, &master.admin_cert_path(), &missing, &["agents"]).await?;
    let stderr = run.failed_with(4)?;
    assert!(stderr.contains("cannot read the client key") && stderr.contains("nowhere.key (from --key)"), "{stderr}");
    Ok(())
}

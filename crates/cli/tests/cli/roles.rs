//! Admin identities through the CLI: `identities issue` makes the key here (0600) and gets the
//! certificate; `whoami` says who that is; a viewer may read but not write (exit 5, the master
//! naming the role needed); a revoked identity is refused (exit 4). Needs the master's
//! IssueAdminIdentity, WhoAmI and role checks.

use crate::support::{mode, Cli};
use anyhow::{Context, Result};
use dockflare_testsupport::Master;

#[tokio::test]
async fn a_viewer_reads_but_may_not_write() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let out_dir = cli.home.path().join("ids");
    let issued = cli
        .as_admin(
            &master,
            &["identities", "issue", "--name", "ro", "--role", "viewer", "--ttl", "1d", "--out-dir"]
                .iter()
                .copied()
                .chain([out_dir.to_str().context("path")?])
                .collect::<Vec<_>>(),
        )
        .await?;
    let stdout = issued.ok()?;
    assert!(!stdout.contains("PRIVATE KEY") && !issued.stderr.contains("PRIVATE KEY"), "the key is never printed");
    assert!(stdout.contains("viewer"), "{stdout}");
    let (key, cert) = (out_dir.join("ro.key"), out_dir.join("ro.crt"));
    assert_eq!(mode(&key)?, 0o600);
    assert_eq!(mode(&out_dir)?, 0o700);
    assert!(std::fs::read_to_string(&cert)?.contains("BEGIN CERTIFICATE"));
    assert_eq!(std::fs::read(out_dir.join("ca.crt"))?, std::fs::read(master.ca_cert_path())?);
    // Issuing again into the same place would overwrite a key: refused.
    let again = cli
        .as_admin(
            &master,
            &["identities", "issue", "--name", "ro", "--role", "viewer", "--out-dir"]
                .iter()
                .copied()
                .chain([out_dir.to_str().context("path")?])
                .collect::<Vec<_>>(),
        )
        .await?;
    assert!(again.failed_with(8)?.contains("ro.key exists"), "{}", again.stderr);

    let who = cli.as_identity(&master, &cert, &key, &["whoami", "-o", "json"]).await?.json()?;
    assert_eq!(who["identity"]["role"], "ADMIN_ROLE_VIEWER", "{who}");
    assert_eq!(who["identity"]["name"], "ro", "{who}");
    let id = who["identity"]["id"].as_str().context("no id")?.to_string();
    let table = cli.as_identity(&master, &cert, &key, &["whoami"]).await?.ok()?.to_string();
    assert!(table.contains("viewer") && table.contains("ro"), "{table}");

    cli.as_identity(&master, &cert, &key, &["routes"]).await?.ok()?;
    let write = cli
        .as_identity(
            &master,
            &cert,
            &key,
            &["routes", "add", "ro.example.test", "--service", "http://web:80", "--group", "edge"],
        )
        .await?;
    let stderr = write.failed_with(5)?;
    assert!(stderr.contains("AddManualRoute: permission denied") && stderr.contains("operator"), "{stderr}");

    let listed = cli.as_admin(&master, &["identities", "-o", "json"]).await?.json()?;
    let names: Vec<&str> =
        listed["identities"].as_array().context("identities")?.iter().filter_map(|i| i["name"].as_str()).collect();
    assert!(names.contains(&"ro"), "{listed}");
    cli.as_admin(&master, &["identities", "revoke", &id]).await?.ok()?;
    let refused = cli.as_identity(&master, &cert, &key, &["routes"]).await?;
    refused.failed_with(4)?;
    Ok(())
}

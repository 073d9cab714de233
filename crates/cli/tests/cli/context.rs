//! Finding the master and the identity: `login` keeps them (copies 0600/0700, a config file) so
//! that later commands need no flags; the environment beats the config file; with nothing set,
//! the local master's data dir is used.

use crate::support::{mode, Cli};
use anyhow::{Context, Result};
use dockflare_testsupport::Master;

#[tokio::test]
async fn login_keeps_the_identity_and_later_commands_need_no_flags() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    // Before login nothing is configured: the default data dir (absent here) is named.
    let before = cli.run(["agents"]).await?;
    let stderr = before.failed_with(4)?;
    assert!(stderr.contains("dockflare-data/pki/ca.crt") && stderr.contains("dockflare login"), "{stderr}");

    let login = cli.as_admin(&master, &["login"]).await?;
    let stdout = login.ok()?;
    assert!(stdout.contains(&format!("Logged in to {} as admin (role admin).", master.url())), "{stdout}");
    let dir = cli.config_dir();
    assert_eq!(mode(&dir)?, 0o700);
    assert_eq!(mode(&dir.join("identity.key"))?, 0o600);
    assert_eq!(mode(&dir.join("config.toml"))?, 0o600);
    assert_eq!(std::fs::read(dir.join("identity.key"))?, std::fs::read(master.admin_key_path())?);
    assert_eq!(std::fs::read(dir.join("identity.crt"))?, std::fs::read(master.admin_cert_path())?);
    assert_eq!(std::fs::read(dir.join("ca.crt"))?, std::fs::read(master.ca_cert_path())?);
    let config = std::fs::read_to_string(dir.join("config.toml"))?;
    assert!(config.contains(&format!("master = \"{}\"", master.url())), "{config}");
    assert!(!config.contains("PRIVATE KEY"), "the config names files, it holds no key");
    assert!(!stdout.contains("PRIVATE KEY") && !login.stderr.contains("PRIVATE KEY"));

    // No flags, no environment: the config file.
    let agents = cli.run(["agents", "-o", "json"]).await?.json()?;
    assert!(agents["agents"].is_array(), "{agents}");
    let shown = cli.run(["config"]).await?.ok()?.to_string();
    assert!(shown.contains(&master.url()) && shown.contains("config.toml"), "{shown}");
    let verbose = cli.run(["-v", "tunnels"]).await?;
    verbose.ok()?;
    assert!(verbose.stderr.contains(&format!("master {} (from `master` in", master.url())), "{}", verbose.stderr);

    // The environment beats the config file: a master nobody listens on is tried, and named.
    let port = dockflare_testsupport::free_port()?;
    let cli = cli.env("DOCKFLARE_MASTER", format!("localhost:{port}"));
    let run = cli.run(["agents"]).await?;
    let stderr = run.failed_with(3)?;
    assert!(stderr.contains(&format!("https://localhost:{port} (from DOCKFLARE_MASTER)")), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn the_local_data_dir_is_the_last_resort() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?.env("DOCKFLARE_DATA_DIR", master.data_dir.path()).env("DOCKFLARE_MASTER", master.url());
    let run = cli.run(["routes", "-o", "json"]).await?;
    assert!(run.json()?["routes"].is_array(), "{}", run.stdout);
    let shown = cli.run(["config", "-o", "json"]).await?.json()?;
    let cert = &shown["cert"];
    assert_eq!(cert["value"], master.admin_cert_path().display().to_string(), "{shown}");
    assert!(cert["from"].as_str().context("from")?.contains("data dir"), "{shown}");
    assert_eq!(shown["master"]["from"], "DOCKFLARE_MASTER", "{shown}");

    // DOCKFLARE_CONFIG names the config dir login writes to.
    let elsewhere = tempfile::tempdir()?;
    let cli = cli.env("DOCKFLARE_CONFIG", elsewhere.path());
    cli.run(["login"]).await?.ok()?;
    assert_eq!(mode(&elsewhere.path().join("identity.key"))?, 0o600);
    assert!(elsewhere.path().join("config.toml").is_file());
    Ok(())
}

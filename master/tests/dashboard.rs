//! The web dashboard in a real headless Chromium, against a running master and a real agent
//! on a real Docker engine: sign in; a container's route appears live after `docker run`
//! (no reload) and goes pending with a countdown after `docker stop`; a label typo shows in
//! Diagnostics with its suggestion; a viewer sees no write controls and a forged write is
//! refused; sign-out; the sign-in limit. Screenshots of the overview and routes pages go to
//! target/screenshots/ (and to docs/ with DOCKFLARE_UPDATE_SCREENSHOTS=1).

use anyhow::{Context, Result};
use dockflare_testsupport::browser::fantoccini::{self, Client, Locator};
use dockflare_testsupport::browser::Browser;
use dockflare_testsupport::{docker, require_docker, unique, Agent, DockerCleanup, Master};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const ORIGIN: &str = "dockflare-test/origin:latest";
const CONNECTOR: &str = "dockflare-test/connector:latest";
const PASSWORD: &str = "dashboard test password";

async fn sign_in(browser: &Client, base: &str, user: &str, password: &str) -> Result<()> {
    browser.goto(&format!("{base}/login")).await?;
    browser.find(Locator::Css("input[name=user]")).await?.send_keys(user).await?;
    browser.find(Locator::Css("input[name=password]")).await?.send_keys(password).await?;
    browser.find(Locator::Css("form button[type=submit]")).await?.click().await?;
    Ok(())
}

async fn wait_css(browser: &Client, css: &str) -> Result<fantoccini::elements::Element> {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("no {css} within {WAIT:?}"))
}

async fn wait_live(browser: &Client) -> Result<()> {
    wait_css(browser, "#connection.live").await?;
    Ok(())
}

async fn wait_text(browser: &Client, css: &str, needle: &str) -> Result<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(needle) {
            return Ok(text);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{css} does not say {needle:?} within {WAIT:?} (it says {text:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(browser: &Client, name: &str) -> Result<()> {
    let png = browser.screenshot().await?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), &png)?;
    if std::env::var_os("DOCKFLARE_UPDATE_SCREENSHOTS").is_some() {
        std::fs::write(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs").join(name), &png)?;
    }
    Ok(())
}

fn run_origin(cleanup: &mut DockerCleanup, name: &str, network: &str, labels: &[String]) -> Result<()> {
    let mut args: Vec<String> =
        vec!["run".into(), "-d".into(), "--name".into(), name.into(), "--network".into(), network.into()];
    for label in labels {
        args.extend(["--label".to_string(), label.clone()]);
    }
    args.push(ORIGIN.into());
    cleanup.containers.push(name.to_string());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&argv)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_a_real_engine_live_in_a_browser() -> Result<()> {
    require_docker();
    let mut cleanup = DockerCleanup::default();
    let scope = unique("web");
    let network = unique("net");
    docker(&["network", "create", &network])?;
    cleanup.networks.push(network.clone());
    let master = Master::start(None, &["--grace-period-seconds", "300"]).await?;
    master.set_ui_password("olivia", "operator", PASSWORD)?;
    master.set_ui_password("victor", "viewer", PASSWORD)?;
    let token = master.join_token(1).await?;
    let scope_label = format!("test.scope={scope}");
    let agent = Agent::start_with(
        &[master.url()],
        &token,
        &["--mode", "standalone", "--scope", &scope_label, "--network", &network, "--cloudflared-image", CONNECTOR],
    )?;
    let agent_id = agent.id(WAIT).await?;
    cleanup.containers.push(format!("dockflare-tunnel-{}", &agent_id[..8]));
    agent.logs.wait_for("Docker inventory listed.", WAIT).await?;

    let base = format!("http://{}", master.web_addr()?);
    let browser = Browser::start(1280, 900).await?;
    let browser = &browser.client;

    // Sign in: the overview.
    sign_in(browser, &base, "olivia", PASSWORD).await?;
    wait_text(browser, "main h1", "Overview").await?;
    wait_live(browser).await?;
    wait_text(browser, ".cards", "1 online").await?;

    // docker run: the route appears on the open routes page, without a reload.
    browser.goto(&format!("{base}/routes")).await?;
    wait_live(browser).await?;
    let hostname = format!("app-{scope}.example.test");
    let name = unique("app");
    run_origin(
        &mut cleanup,
        &name,
        &network,
        &[
            scope_label.clone(),
            "dockflare.enable=true".into(),
            format!("dockflare.hostname={hostname}"),
            format!("dockflare.service=http://{name}:80"),
        ],
    )?;
    wait_css(browser, &format!("tr[data-hostname=\"{hostname}\"][data-status=\"active\"]")).await?;
    screenshot(browser, "dashboard-routes.png").await?;

    // docker stop: pending deletion, with a countdown that moves.
    docker(&["stop", "-t", "1", &name])?;
    let row = format!("tr[data-hostname=\"{hostname}\"][data-status=\"pending deletion\"]");
    wait_css(browser, &row).await?;
    let first = wait_text(browser, &format!("{row} .countdown"), "removed in").await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = browser.find(Locator::Css(&format!("{row} .countdown"))).await?.text().await?;
        if now != first {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the countdown stays at {first:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A typo in a label: Diagnostics says it, with the suggestion.
    let typo = unique("typo");
    run_origin(
        &mut cleanup,
        &typo,
        &network,
        &[scope_label.clone(), "dockflare.enable=true".into(), format!("dockflare.hostnme=typo-{scope}.example.test")],
    )?;
    browser.goto(&format!("{base}/diagnostics")).await?;
    wait_text(browser, "#view", "did you mean").await?;
    wait_text(browser, "#view", "dockflare.hostnme").await?;

    browser.goto(&format!("{base}/")).await?;
    wait_live(browser).await?;
    wait_text(browser, ".cards", "pending deletion").await?;
    screenshot(browser, "dashboard-overview.png").await?;

    // Sign out: back to the sign-in page, and the pages are closed again.
    browser.find(Locator::Css("header form button")).await?.click().await?;
    wait_css(browser, "input[name=password]").await?;
    browser.goto(&format!("{base}/routes")).await?;
    wait_css(browser, "input[name=password]").await?;

    // A viewer sees no write controls; a write it forges is refused.
    sign_in(browser, &base, "victor", PASSWORD).await?;
    wait_text(browser, "main h1", "Overview").await?;
    assert!(browser.find_all(Locator::Css("[data-write]")).await?.is_empty(), "a viewer is offered a write control");
    let forged: serde_json::Value = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/logout', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'csrf=forged'})\
               .then(r => done(r.status), e => done(String(e)));",
            vec![],
        )
        .await?;
    assert_eq!(forged, serde_json::json!(403), "a write without the session's CSRF token is refused");

    // The sign-in limit, as a browser meets it.
    browser.find(Locator::Css("header form button")).await?.click().await?;
    wait_css(browser, "input[name=password]").await?;
    for _ in 0..6 {
        sign_in(browser, &base, "victor", "not the password").await?;
    }
    wait_text(browser, "main", "Too many failed sign-ins").await?;
    drop(agent);
    Ok(())
}

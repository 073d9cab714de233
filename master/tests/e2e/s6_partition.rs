//! Scenario 6: a network partition between the agent and the master. The agent reaches the master
//! through a TCP relay in this process; cutting the relay closes its listener and every relayed
//! connection (new connects are refused, as if the master's listener were stopped). For 60 s the
//! agent is cut off while containers change on its host: a new origin starts and another stops.
//! The connector keeps serving the routes it has all along (a continuous prober sees no failure),
//! and once the relay heals the three places converge (how soon is printed: about 1–3 s with the
//! agent's default, production reconnect backoff): the new origin served, the stopped one pending
//! deletion or gone (then gone after the short grace period).

use crate::harness::*;
use anyhow::{bail, Context, Result};
use dockflare::v1::RouteStatus;
use dockflare_testsupport::{docker, eventually, unique, Master};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How long the partition lasts.
const CUT_FOR: Duration = Duration::from_secs(60);
/// The deadline for the three places to agree again after healing: a bound for correctness that a
/// loaded machine cannot outlast (the agent's reconnect waits are capped at 4 s by default), not a
/// speed claim. How soon they agree is what the scenario prints (about 1–3 s here).
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);
/// The master's grace period, in seconds.
const GRACE_S: u64 = 2;

/// A loopback TCP relay to `target` that can be cut and healed on the same port.
struct Relay {
    port: u16,
    target: SocketAddr,
    /// The accept loop; it owns the listener and every relayed connection (a `JoinSet`), so
    /// aborting it closes them all.
    running: Option<JoinHandle<()>>,
    /// Connections accepted so far, over every listen.
    accepted: Arc<Mutex<usize>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.context("binding the relay")?;
        let port = listener.local_addr()?.port();
        let mut relay = Relay { port, target, running: None, accepted: Arc::default() };
        relay.serve(listener);
        Ok(relay)
    }

    /// The URL an agent is given: the master's certificate is valid for localhost.
    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        let accepted = self.accepted.clone();
        self.running = Some(tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    incoming = listener.accept() => {
                        let Ok((mut inbound, _)) = incoming else { continue };
                        *accepted.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                        connections.spawn(async move {
                            let _ = inbound.set_nodelay(true);
                            if let Ok(mut outbound) = TcpStream::connect(target).await {
                                let _ = outbound.set_nodelay(true);
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                    // Reap finished connections so the set does not grow.
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        }));
    }

    /// Stops listening and drops every relayed connection; returns once all are closed.
    async fn cut(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
            let _ = running.await;
        }
    }

    /// Listens again on the same port and relays again.
    async fn heal(&mut self) -> Result<()> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .with_context(|| format!("re-binding port {}", self.port))?;
        let listener = socket.listen(128)?;
        self.serve(listener);
        Ok(())
    }

    fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

/// Names of the running containers the master has for `agent_id`.
async fn running_containers(master: &Master, agent_id: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = containers(master, agent_id)
        .await?
        .into_iter()
        .filter(|c| c.status.starts_with("running"))
        .map(|c| c.name)
        .collect();
    names.sort();
    Ok(names)
}

/// The agent's "Connected to the master." records, as (timestamp, master) pairs.
fn connects(agent: &EdgeAgent) -> Vec<String> {
    agent
        .agent
        .logs
        .records("Connected to the master.")
        .iter()
        .map(|r| format!("{} {}", r.get("timestamp").and_then(|t| t.as_str()).unwrap_or("?"), r["master"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_keeps_serving_and_converges_after_healing() -> Result<()> {
    require_rig();
    let test_started = Instant::now();
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, GRACE_S, &[]).await?;
    let mut relay = Relay::start(master.addr).await?;
    // The agent's default reconnect backoff, as in production: the convergence time printed is the
    // one operators get, not the tests' 1 s cap.
    let options = AgentOptions { production_backoff: true, ..AgentOptions::default() };
    let mut agent = EdgeAgent::start(&[relay.url()], &master.join_token(1).await?, options).await?;
    agent.edge.wait_up(WAIT).await.map_err(|e| e.context(agent.diagnostics()))?;

    let (a, b, c) = (unique("part-a"), unique("part-b"), unique("part-c"));
    let (host_a, host_b, host_c) = (format!("{a}.{ZONE}"), format!("{b}.{ZONE}"), format!("{c}.{ZONE}"));
    agent.run_origin(&a, &host_a, &[])?;
    agent.run_origin(&c, &host_c, &[])?;
    let tunnel = expect_served(&cloud, &master, &agent.edge, &host_a, Some(&a), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    expect_served(&cloud, &master, &agent.edge, &host_c, Some(&c), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    if !connected(&master, &agent.id).await? {
        bail!("the master does not see the agent connected before the cut\n{}", agent.diagnostics());
    }
    let connects_before = connects(&agent).len();
    let accepted_before_cut = relay.accepted();

    let prober = agent.edge.probe(&host_a, Duration::from_millis(50));
    relay.cut().await;
    let cut_at = Instant::now();
    // Like a stopped listener: connects are refused.
    if let Ok(stream) = TcpStream::connect(("127.0.0.1", relay.port)).await {
        bail!("the cut relay still accepts connections ({stream:?})");
    }
    eventually("the master sees the agent disconnected", Duration::from_secs(15), || async {
        Ok((!connected(&master, &agent.id).await?).then_some(()))
    })
    .await
    .map_err(|e| e.context(format!("master log:\n{}", tail(&master.logs.text(), 30))))?;
    eprintln!("scenario 6: the master saw the agent disconnected {} ms after the cut", cut_at.elapsed().as_millis());

    // Containers change while the agent cannot tell the master.
    agent.run_origin(&b, &host_b, &[])?;
    docker(&["stop", "--time", "2", &c])?;

    // Hold the partition for CUT_FOR in all, with A answering through the edge throughout.
    let mut checks = 0usize;
    while cut_at.elapsed() < CUT_FOR {
        let report = prober.report();
        if !report.failures.is_empty() {
            bail!(
                "{host_a} stopped answering through the edge during the partition (after {} s): {:?}\n{}",
                cut_at.elapsed().as_secs(),
                report.failures,
                agent.diagnostics()
            );
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The partition was real: the master learnt nothing of B or of C stopping, and the agent
    // tried to reconnect.
    let at_master = running_containers(&master, &agent.id).await?;
    if at_master.contains(&b) || !at_master.contains(&c) {
        bail!("the master saw changes made during the partition: running {at_master:?}");
    }
    assert!(route(&master, &host_b).await?.is_none(), "the master has a route for {host_b} during the partition");
    let c_route = route(&master, &host_c).await?;
    assert!(
        c_route.as_ref().is_some_and(|r| r.status == RouteStatus::Active as i32),
        "{host_c} is not active at the master during the partition: {c_route:?}"
    );
    let failed_attempts = agent.agent.logs.count("Connection to the master lost.");
    assert!(failed_attempts > 10, "the agent did not keep retrying during the partition ({failed_attempts} failures)");
    assert!(!connected(&master, &agent.id).await?, "the master sees the agent connected during the cut");
    eprintln!(
        "scenario 6: cut for {} ms ({checks} checks, {failed_attempts} failed connection attempts logged)",
        cut_at.elapsed().as_millis()
    );

    relay.heal().await?;
    let healed_at = Instant::now();
    let b_served = async {
        let within = CONVERGE_WITHIN.saturating_sub(healed_at.elapsed());
        expect_served(&cloud, &master, &agent.edge, &host_b, Some(&b), within).await?;
        Ok::<_, anyhow::Error>(healed_at.elapsed())
    };
    let c_leaving = async {
        let within = CONVERGE_WITHIN.saturating_sub(healed_at.elapsed());
        eventually(&format!("{host_c} pending deletion or gone at the master"), within, || async {
            let route = route(&master, &host_c).await?;
            Ok(route.is_none_or(|r| r.status == RouteStatus::PendingDeletion as i32).then_some(()))
        })
        .await?;
        Ok::<_, anyhow::Error>(healed_at.elapsed())
    };
    let reconnected = async {
        eventually("the agent reconnects", CONVERGE_WITHIN, || async {
            Ok((connects(&agent).len() > connects_before).then_some(()))
        })
        .await
        .ok()
        .map(|()| healed_at.elapsed())
    };
    let (b_served, c_leaving, reconnected) = tokio::join!(b_served, c_leaving, reconnected);
    let diagnose = |e: anyhow::Error| {
        e.context(format!(
            "not converged within {CONVERGE_WITHIN:?} of healing; agent connects: {:?}\n{}\nmaster log:\n{}",
            connects(&agent),
            agent.diagnostics(),
            tail(&master.logs.text(), 40)
        ))
    };
    let b_served = b_served.map_err(diagnose)?;
    let c_leaving = c_leaving.map_err(diagnose)?;
    let converged = b_served.max(c_leaving);
    let reconnects = connects(&agent);
    eprintln!(
        "scenario 6: converged {} ms after healing (agent reconnected at {:?} ms, {} served everywhere at {} ms, {} \
         pending deletion/gone at {} ms); agent connects: {:?}",
        converged.as_millis(),
        reconnected.map(|d| d.as_millis()),
        host_b,
        b_served.as_millis(),
        host_c,
        c_leaving.as_millis(),
        reconnects.get(connects_before..)
    );
    assert!(reconnects.len() > connects_before, "the agent logged no reconnect");
    assert!(relay.accepted() > accepted_before_cut, "the agent did not reconnect through the healed relay");
    assert!(connected(&master, &agent.id).await?, "the master does not see the agent connected after healing");

    // With a 2 s grace, C is then gone from all three places.
    expect_gone(&cloud, &master, &agent.edge, &host_c, Duration::from_secs(GRACE_S) + WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    eprintln!("scenario 6: {host_c} gone everywhere {} ms after healing", healed_at.elapsed().as_millis());

    // A answered through the edge all along, through the cut and the healing.
    let report = prober.finish().await?;
    assert!(report.failures.is_empty(), "{host_a} failed through the edge: {:?}", report.failures);
    assert!(report.ok > 300, "too few requests to {host_a}: {report:?}");
    assert_eq!(report.origins.keys().collect::<Vec<_>>(), vec![&a], "{report:?}");

    // Final state, all three places: A and B on the one tunnel, C nowhere.
    for (host, origin) in [(&host_a, &a), (&host_b, &b)] {
        let carried = expect_served(&cloud, &master, &agent.edge, host, Some(origin), WAIT).await?;
        assert_eq!(carried, tunnel, "{host} is on another tunnel");
    }
    let listed = tunnels(&master).await?;
    assert!(
        listed.iter().any(|t| t.id == tunnel && t.agent_ids == vec![agent.id.clone()] && t.route_count == 2),
        "{listed:?}"
    );
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(running_containers(&master, &agent.id).await?, expected);
    assert_eq!(live_tunnels(&cloud.snapshot()).len(), 1, "{:?}", live_tunnels(&cloud.snapshot()));
    assert_no_duplicates(&cloud.snapshot())?;
    eprintln!(
        "scenario 6: {} requests to {host_a}, none failed; test wall time {} s",
        report.ok,
        test_started.elapsed().as_secs()
    );
    Ok(())
}

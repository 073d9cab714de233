//! Before the storm: the fleet enrolled with one join token, and at rest (every agent has its
//! tunnel and every event it sent is stored).

use crate::reconnect::{self, Outcome, Target};
use crate::{Args, PROGRESS_EVERY};
use anyhow::{bail, Context, Result};
use dockflare_testsupport::{FakeAgent, Master};
use futures::{StreamExt, TryStreamExt};
use std::time::{Duration, Instant};

/// Waits until every agent has received a start_tunnel and the master stored every event it
/// sent (the acknowledgements among them).
pub async fn settle(connected: &[(FakeAgent, Outcome)]) -> Result<()> {
    let mut next_progress = Instant::now() + PROGRESS_EVERY;
    loop {
        if let Some((agent, why)) = connected.iter().find_map(|(agent, _)| agent.ended().map(|why| (agent, why))) {
            bail!("agent {} lost its streams while settling: {why}", agent.id);
        }
        let waiting = connected
            .iter()
            .filter(|(agent, _)| agent.tunnel_tokens().is_empty() || !agent.stored_everything_sent())
            .count();
        if waiting == 0 {
            return Ok(());
        }
        if Instant::now() >= next_progress {
            next_progress += PROGRESS_EVERY;
            eprintln!("  settle: {waiting} of {} agents without a tunnel or with events unconfirmed", connected.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Enrolls every agent with one join token, `--connect-concurrency` at a time, through the
/// first master.
pub async fn enroll_all(master: &Master, target: &Target, args: &Args) -> Result<Vec<FakeAgent>> {
    let uses = u32::try_from(args.agents).context("--agents is too large for one join token")?;
    let token = master.join_token(uses).await?;
    let mut enrolled: Vec<(usize, FakeAgent)> = futures::stream::iter(0..args.agents)
        .map(|index| {
            let token = token.clone();
            async move {
                let channel = dockflare_testsupport::mtls_channel(target.addrs[0], &target.ca_pem, None).await?;
                let agent = FakeAgent::enroll_over(channel, &token, &format!("storm-{index:05}"))
                    .await
                    .with_context(|| format!("enrolling agent {index}"))?;
                anyhow::Ok((index, agent.registering(reconnect::registration(index))))
            }
        })
        .buffer_unordered(args.connect_concurrency)
        .try_collect()
        .await?;
    enrolled.sort_by_key(|(index, _)| *index);
    Ok(enrolled.into_iter().map(|(_, agent)| agent).collect())
}

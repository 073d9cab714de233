//! Background event load: every agent sends tunnel statuses (each a stored row on the master) at
//! its share of an aggregate rate, until stopped — what commands are timed under. Like a real
//! agent, one holds at most [`WINDOW`] unconfirmed events: when the server falls behind, the
//! agent skips its turns instead of piling events up.

use anyhow::Result;
use dockflare::v1::agent_event::Event;
use dockflare::v1::{ConnectorState, TunnelStatus};
use dockflare_testsupport::FakeAgent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events an agent may have sent and not yet had confirmed.
pub const WINDOW: u64 = 256;

/// The running load; [`EventLoad::stop`] ends it.
pub struct EventLoad {
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<Result<u64>>>,
    started: Instant,
    confirmed_at_start: u64,
    agents: Vec<Arc<FakeAgent>>,
}

/// What the load did.
pub struct LoadFigures {
    pub events_sent: u64,
    /// Events sent per second.
    pub sent_per_second: f64,
    /// Events the server confirmed per second while the load ran.
    pub confirmed_per_second: f64,
}

fn confirmed(agents: &[Arc<FakeAgent>]) -> u64 {
    agents.iter().map(|agent| agent.receipt()).sum()
}

impl EventLoad {
    /// Starts `rate` events per second in all, spread evenly over the agents (their first
    /// turns staggered across one period); a rate of 0 sends nothing.
    pub fn start(agents: &[Arc<FakeAgent>], rate: f64) -> EventLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let period = Duration::from_secs_f64(agents.len() as f64 / rate.max(1.0));
        let begin = tokio::time::Instant::now();
        let senders = agents
            .iter()
            .filter(|_| rate > 0.0)
            .enumerate()
            .map(|(index, agent)| {
                let (agent, stop) = (agent.clone(), stop.clone());
                let first = begin + period.mul_f64(index as f64 / agents.len() as f64);
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval_at(first, period);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    let mut sent = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        ticks.tick().await;
                        if agent.sent().saturating_sub(agent.receipt()) >= WINDOW {
                            continue;
                        }
                        let status = TunnelStatus { state: ConnectorState::Running as i32, ..Default::default() };
                        agent.send(Event::TunnelStatus(status)).await?;
                        sent += 1;
                    }
                    anyhow::Ok(sent)
                })
            })
            .collect();
        EventLoad {
            stop,
            senders,
            started: Instant::now(),
            confirmed_at_start: confirmed(agents),
            agents: agents.to_vec(),
        }
    }

    /// Stops every sender (each finishes the event it is sending) and sums up.
    pub async fn stop(self) -> Result<LoadFigures> {
        let elapsed = self.started.elapsed().max(Duration::from_millis(1));
        let confirmed_now = confirmed(&self.agents);
        self.stop.store(true, Ordering::Relaxed);
        let mut events_sent = 0;
        for sender in self.senders {
            events_sent += sender.await??;
        }
        Ok(LoadFigures {
            events_sent,
            sent_per_second: events_sent as f64 / elapsed.as_secs_f64(),
            confirmed_per_second: confirmed_now.saturating_sub(self.confirmed_at_start) as f64 / elapsed.as_secs_f64(),
        })
    }
}

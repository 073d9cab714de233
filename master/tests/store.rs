//! The store against both backends: every case runs on a fresh SQLite file
//! and on a fresh PostgreSQL database (DOCKFLARE_TEST_POSTGRES_URL; run
//! deploy/test.sh).

mod support;

use anyhow::{ensure, Context, Result};
use dockflare_common::identity::AgentId;
use dockflare_common::join_token::JoinToken;
use dockflare_master::store::{
    AgentRegistration, Backend, CommandAck, CommandState, CommandWrite, ConnectorReport, DeliveredRun, Enqueued,
    EventBatch, JoinTokenRow, NewAgent, Store, StoredEvent, TokenRejection, STATUS_OFFLINE, STATUS_ONLINE,
    STATUS_REVOKED,
};
use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;
use support::{test_databases, OpenStore};

/// A fixed "now" (Unix milliseconds) for the cases.
const NOW: i64 = 1_800_000_000_000;

/// Runs `case` on a fresh store of each backend.
async fn on_each_backend<F, Fut>(case: F) -> Result<()>
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    for database in test_databases().await? {
        let store = database.connect().await?;
        let outcome = case(store.clone()).await;
        store.close().await;
        outcome.with_context(|| format!("on {}", database.name))?;
    }
    Ok(())
}

/// The hostname policy test tokens carry (enrollment copies it onto the agent).
fn token_policy() -> dockflare_common::hostname_policy::HostnamePolicy {
    dockflare_common::hostname_policy::HostnamePolicy {
        allowed_hostnames: vec!["*.example.com".into(), "portal.example.org".into()],
        allow_wildcards: false,
        allow_apex: true,
        max_routes: 7,
    }
}

/// Stores a new join token; returns it with its row.
async fn insert_token(store: &Store, max_uses: u32, expires_at: i64) -> Result<JoinToken> {
    let token = JoinToken::generate([7; 32]);
    let row = JoinTokenRow {
        id: token.id.clone(),
        description: format!("max {max_uses}"),
        created_at: NOW - 1000,
        expires_at,
        max_uses,
        uses: 0,
        revoked: false,
        tunnel_group: String::new(),
        policy: token_policy(),
    };
    store.insert_join_token(&row, &token.secret_hash()).await?;
    Ok(token)
}

fn new_agent(name: &str) -> NewAgent {
    NewAgent {
        id: AgentId::generate(),
        display_name: name.to_string(),
        cert_serial: format!("serial-{name}"),
        cert_not_after: NOW + 3_600_000,
    }
}

async fn token_row(store: &Store, id: &str) -> Result<JoinTokenRow> {
    store.list_join_tokens().await?.into_iter().find(|row| row.id == id).context("token row is missing")
}

/// Enrolls a new agent with a fresh single-use token.
async fn enrolled_agent(store: &Store, name: &str) -> Result<AgentId> {
    let token = insert_token(store, 1, NOW + 60_000).await?;
    let agent = new_agent(name);
    store.enroll_agent(&token.id, &token.secret_hash(), NOW, &agent).await??;
    Ok(agent.id)
}

fn registration(name: &str) -> AgentRegistration {
    AgentRegistration {
        display_name: name.to_string(),
        hostname: format!("{name}.example"),
        docker_mode: "standalone".into(),
        version: "0.1.0".into(),
        capabilities: vec!["connector.container".into(), "swarm.services".into()],
        ..AgentRegistration::default()
    }
}

fn command(agent: &str, command_id: &str) -> CommandWrite {
    CommandWrite {
        agent_id: agent.to_string(),
        command_id: command_id.to_string(),
        kind: "resync".into(),
        created_at: NOW,
        encode: std::sync::Arc::new(|seq| Ok(format!("payload-{seq}").into_bytes())),
    }
}

async fn enqueue(store: &Store, agent: &str, command_id: &str) -> Result<Enqueued> {
    Ok(store.enqueue_command(command(agent, command_id), true).await?)
}

fn event(agent: &str, event_id: u64, received_at: i64, payload: &str) -> StoredEvent {
    StoredEvent {
        agent_id: agent.to_string(),
        event_id,
        kind: "tunnel_status".into(),
        occurred_at: received_at - 5,
        received_at,
        payload: payload.as_bytes().to_vec(),
    }
}

fn ack(agent: &str, sequence: u64, command_id: &str, success: bool, error: &str, at: i64) -> CommandAck {
    CommandAck {
        agent_id: agent.to_string(),
        sequence,
        command_id: command_id.to_string(),
        success,
        error: error.to_string(),
        at,
    }
}

async fn agent(store: &Store, id: &str) -> Result<dockflare_master::store::AgentRecord> {
    store.get_agent(id).await?.with_context(|| format!("agent {id} is missing"))
}

#[tokio::test]
async fn join_token_enrollment_consumes_uses_and_rejects_with_the_reason() -> Result<()> {
    on_each_backend(|store| async move {
        // Two uses: two enrollments, then the token is used up.
        let token = insert_token(&store, 2, NOW + 60_000).await?;
        let first = new_agent("first");
        let second = new_agent("second");
        let third = new_agent("third");
        assert_eq!(store.enroll_agent(&token.id, &token.secret_hash(), NOW, &first).await?, Ok(String::new()));
        assert_eq!(token_row(&store, &token.id).await?.uses, 1);
        assert_eq!(store.enroll_agent(&token.id, &token.secret_hash(), NOW, &second).await?, Ok(String::new()));
        assert_eq!(
            store.enroll_agent(&token.id, &token.secret_hash(), NOW, &third).await?,
            Err(TokenRejection::UsedUp)
        );
        let row = token_row(&store, &token.id).await?;
        assert_eq!((row.uses, row.max_uses, row.revoked), (2, 2, false));
        assert!(store.get_agent(third.id.as_str()).await?.is_none(), "a refused enrollment must not create the agent");

        let record = agent(&store, first.id.as_str()).await?;
        assert_eq!(record.display_name, "first");
        assert_eq!(record.policy, token_policy(), "enrollment copies the token's hostname policy");
        assert_eq!(row.policy, token_policy());
        assert_eq!(record.status, STATUS_OFFLINE);
        assert_eq!(record.cert_serial, "serial-first");
        assert_eq!((record.enrolled_at, record.cert_not_after), (NOW, NOW + 3_600_000));
        assert_eq!(
            (record.last_command_seq, record.last_acked_command_seq, record.last_event_id, record.last_seen_at),
            (0, 0, 0, None)
        );

        // Wrong secret and unknown id: Unknown, and no use is consumed.
        let fresh = insert_token(&store, 5, NOW + 60_000).await?;
        let other_secret = JoinToken::generate([7; 32]).secret_hash();
        assert_eq!(
            store.enroll_agent(&fresh.id, &other_secret, NOW, &new_agent("x")).await?,
            Err(TokenRejection::Unknown)
        );
        assert_eq!(
            store.enroll_agent("nosuchtoken0", &fresh.secret_hash(), NOW, &new_agent("x")).await?,
            Err(TokenRejection::Unknown)
        );
        assert_eq!(token_row(&store, &fresh.id).await?.uses, 0);

        // Expired: a token is valid strictly before its expiry.
        let expired = insert_token(&store, 5, NOW).await?;
        assert_eq!(
            store.enroll_agent(&expired.id, &expired.secret_hash(), NOW, &new_agent("x")).await?,
            Err(TokenRejection::Expired)
        );
        assert_eq!(
            store.enroll_agent(&expired.id, &expired.secret_hash(), NOW - 1, &new_agent("y")).await?,
            Ok(String::new())
        );
        assert_eq!(token_row(&store, &expired.id).await?.uses, 1);

        // Revoked: refused even though uses remain; revocation wins over expiry.
        let revoked = insert_token(&store, 5, NOW + 60_000).await?;
        let row = store.revoke_join_token(&revoked.id, NOW).await?.context("revoking an existing token")?;
        assert!(row.revoked);
        assert_eq!(
            store.enroll_agent(&revoked.id, &revoked.secret_hash(), NOW, &new_agent("x")).await?,
            Err(TokenRejection::Revoked)
        );
        assert_eq!(
            store.enroll_agent(&revoked.id, &revoked.secret_hash(), NOW + 120_000, &new_agent("x")).await?,
            Err(TokenRejection::Revoked)
        );
        assert_eq!(token_row(&store, &revoked.id).await?.uses, 0);
        assert!(store.revoke_join_token("nosuchtoken0", NOW).await?.is_none());

        let agents = store.list_agents("", 100).await?;
        assert_eq!(agents.len(), 3, "first, second and y enrolled");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_get_gap_free_per_agent_sequences() -> Result<()> {
    on_each_backend(|store| async move {
        let agent_id = enrolled_agent(&store, "busy").await?;
        let other_id = enrolled_agent(&store, "quiet").await?;
        let mut tasks = Vec::new();
        for n in 0..20 {
            let store = store.clone();
            let agent_id = agent_id.to_string();
            tasks.push(tokio::spawn(async move { enqueue(&store, &agent_id, &format!("cmd-{n}")).await }));
        }
        let mut sequences = BTreeSet::new();
        for task in tasks {
            match task.await?? {
                Enqueued::Queued(sequence) => ensure!(sequences.insert(sequence), "sequence {sequence} given twice"),
                other => anyhow::bail!("enqueue returned {other:?}"),
            }
        }
        assert_eq!(sequences, (1..=20).collect::<BTreeSet<u64>>());
        assert_eq!(agent(&store, agent_id.as_str()).await?.last_command_seq, 20);

        let rows = store.commands_after(agent_id.as_str(), 0, 100).await?;
        assert_eq!(rows.iter().map(|r| r.sequence).collect::<Vec<_>>(), (1..=20).collect::<Vec<u64>>());
        for row in &rows {
            assert_eq!(row.payload, format!("payload-{}", row.sequence).into_bytes(), "payload encodes its sequence");
            assert_eq!(
                (row.state, row.delivery_count, row.delivered_at, row.acked_at),
                (CommandState::Queued, 0, None, None)
            );
            assert_eq!((row.kind.as_str(), row.agent_id.as_str(), row.created_at), ("resync", agent_id.as_str(), NOW));
        }
        let ids: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), 20);

        // Sequences are per agent.
        assert_eq!(enqueue(&store, other_id.as_str(), "other-1").await?, Enqueued::Queued(1));
        assert_eq!(enqueue(&store, "00000000-0000-4000-8000-000000000000", "nobody").await?, Enqueued::UnknownAgent);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn commands_after_pages_and_delivery_is_recorded() -> Result<()> {
    on_each_backend(|store| async move {
        let agent_id = enrolled_agent(&store, "a").await?;
        let id = agent_id.as_str();
        for n in 1..=5 {
            assert_eq!(enqueue(&store, id, &format!("c{n}")).await?, Enqueued::Queued(n));
        }
        let sequences =
            |rows: Vec<dockflare_master::store::CommandRow>| rows.iter().map(|r| r.sequence).collect::<Vec<_>>();
        assert_eq!(sequences(store.commands_after(id, 2, 100).await?), vec![3, 4, 5]);
        assert_eq!(sequences(store.commands_after(id, 0, 2).await?), vec![1, 2]);
        assert!(store.commands_after(id, 5, 100).await?.is_empty());

        store
            .mark_commands_delivered(&[DeliveredRun { agent_id: id.to_string(), first: 1, last: 3, at: NOW + 10 }])
            .await?;
        let rows = store.commands_after(id, 0, 100).await?;
        for row in &rows[..3] {
            assert_eq!((row.state, row.delivery_count, row.delivered_at), (CommandState::Delivered, 1, Some(NOW + 10)));
        }
        for row in &rows[3..] {
            assert_eq!((row.state, row.delivery_count, row.delivered_at), (CommandState::Queued, 0, None));
        }

        // Delivered again after a reconnect: counted, still delivered.
        store
            .mark_commands_delivered(&[DeliveredRun { agent_id: id.to_string(), first: 2, last: 3, at: NOW + 20 }])
            .await?;
        let rows = store.commands_after(id, 1, 2).await?;
        for row in &rows {
            assert_eq!((row.state, row.delivery_count, row.delivered_at), (CommandState::Delivered, 2, Some(NOW + 20)));
        }

        // A settled command stays settled when it is delivered again.
        let batch = EventBatch {
            events: vec![],
            acks: vec![ack(id, 1, "c1", true, "", NOW + 30)],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&batch).await?;
        store
            .mark_commands_delivered(&[DeliveredRun { agent_id: id.to_string(), first: 1, last: 1, at: NOW + 40 }])
            .await?;
        let row = store.commands_after(id, 0, 1).await?.remove(0);
        assert_eq!((row.state, row.delivery_count, row.acked_at), (CommandState::Acked, 2, Some(NOW + 30)));

        // An ack stored before its delivery record counts the delivery; the late record does not.
        let batch = EventBatch {
            events: vec![],
            acks: vec![ack(id, 4, "c4", true, "", NOW + 50)],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&batch).await?;
        store
            .mark_commands_delivered(&[DeliveredRun { agent_id: id.to_string(), first: 4, last: 4, at: NOW + 45 }])
            .await?;
        let row = store.commands_after(id, 3, 1).await?.remove(0);
        assert_eq!(
            (row.state, row.delivery_count, row.delivered_at, row.acked_at),
            (CommandState::Acked, 1, Some(NOW + 50), Some(NOW + 50))
        );
        Ok(())
    })
    .await
}

fn connector_report(agent: &str, event_id: u64, received_at: i64, state: &str) -> ConnectorReport {
    ConnectorReport { agent_id: agent.to_string(), event_id, received_at, state: state.as_bytes().to_vec() }
}

/// A batch of connector reports, with their events.
fn connector_batch(reports: Vec<ConnectorReport>) -> EventBatch {
    EventBatch {
        events: reports.iter().map(|r| event(&r.agent_id, r.event_id, r.received_at, "status")).collect(),
        acks: vec![],
        container_changes: vec![],
        connector_reports: reports,
    }
}

#[tokio::test]
async fn a_connector_row_changes_only_when_its_state_does() -> Result<()> {
    on_each_backend(|store| async move {
        let a = enrolled_agent(&store, "a").await?;
        let b = enrolled_agent(&store, "b").await?;
        let (a, b) = (a.as_str(), b.as_str());
        let connectors = |store: Store| async move {
            let rows = store.list_agent_connectors().await?;
            let mut read = Vec::new();
            for (id, at, state) in rows {
                read.push((id, at, String::from_utf8(state)?));
            }
            anyhow::Ok(read)
        };
        let mut expected =
            vec![(a.to_string(), NOW + 2, "running".to_string()), (b.to_string(), NOW + 1, "starting".to_string())];
        expected.sort();

        // In one batch, the latest report of each agent is kept.
        store
            .write_event_batch(&connector_batch(vec![
                connector_report(b, 1, NOW + 1, "starting"),
                connector_report(a, 2, NOW + 2, "running"),
                connector_report(a, 1, NOW + 1, "starting"),
            ]))
            .await?;
        assert_eq!(connectors(store.clone()).await?, expected);

        // The same state again, later: the row is left as it was (reported_at is when the agent
        // first reported the state it is in); the agent's progress still moves.
        store.write_event_batch(&connector_batch(vec![connector_report(a, 3, NOW + 30, "running")])).await?;
        assert_eq!(connectors(store.clone()).await?, expected);
        assert_eq!(agent(&store, a).await?.last_event_id, 3);

        // Another state is written; an older report (a replay) never overwrites a newer one.
        store.write_event_batch(&connector_batch(vec![connector_report(a, 4, NOW + 40, "failed")])).await?;
        store.write_event_batch(&connector_batch(vec![connector_report(a, 2, NOW + 2, "running")])).await?;
        let slot = if expected[0].0 == a { 0 } else { 1 };
        expected[slot] = (a.to_string(), NOW + 40, "failed".to_string());
        assert_eq!(connectors(store.clone()).await?, expected);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn event_batches_dedupe_advance_cursors_and_settle_acks() -> Result<()> {
    on_each_backend(|store| async move {
        let a = enrolled_agent(&store, "a").await?;
        let b = enrolled_agent(&store, "b").await?;
        let (a, b) = (a.as_str(), b.as_str());
        for n in 1..=4 {
            enqueue(&store, a, &format!("a-cmd-{n}")).await?;
        }
        store.mark_commands_delivered(&[DeliveredRun { agent_id: a.to_string(), first: 1, last: 4, at: NOW }]).await?;

        // Events of two agents in one batch; the same event twice in one batch is stored once.
        let batch = EventBatch {
            events: vec![
                event(a, 1, NOW + 1, "a1"),
                event(a, 2, NOW + 2, "a2"),
                event(b, 1, NOW + 3, "b1"),
                event(b, 1, NOW + 3, "b1-again"),
            ],
            acks: vec![],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&batch).await?;
        let stored = store.list_events(a, 0, 100).await?;
        assert_eq!(
            stored.iter().map(|e| (e.event_id, e.payload.clone())).collect::<Vec<_>>(),
            vec![(1, b"a1".to_vec()), (2, b"a2".to_vec())]
        );
        assert_eq!(stored[0], event(a, 1, NOW + 1, "a1"));
        assert_eq!(store.list_events(b, 0, 100).await?.len(), 1);
        let record = agent(&store, a).await?;
        assert_eq!((record.last_event_id, record.last_seen_at), (2, Some(NOW + 2)));
        assert_eq!(agent(&store, b).await?.last_event_id, 1);

        // Resent after a reconnect: old ids are skipped, the first copy is kept.
        let batch = EventBatch {
            events: vec![
                event(a, 1, NOW + 10, "a1-resent"),
                event(a, 2, NOW + 10, "a2-resent"),
                event(a, 3, NOW + 10, "a3"),
            ],
            acks: vec![],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&batch).await?;
        let stored = store.list_events(a, 0, 100).await?;
        assert_eq!(
            stored.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(),
            vec![b"a1".to_vec(), b"a2".to_vec(), b"a3".to_vec()]
        );
        assert_eq!(store.list_events(a, 1, 1).await?.iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![2]);
        let record = agent(&store, a).await?;
        assert_eq!((record.last_event_id, record.last_seen_at), (3, Some(NOW + 10)));

        // Cursors never move back.
        store
            .write_event_batch(&EventBatch {
                events: vec![event(a, 1, NOW + 5, "old")],
                acks: vec![],
                container_changes: vec![],
                connector_reports: vec![],
            })
            .await?;
        let record = agent(&store, a).await?;
        assert_eq!((record.last_event_id, record.last_seen_at), (3, Some(NOW + 10)));

        // Acks: success, failure with its error.
        let batch = EventBatch {
            events: vec![event(a, 4, NOW + 20, "result-1"), event(a, 5, NOW + 21, "result-2")],
            acks: vec![ack(a, 1, "a-cmd-1", true, "", NOW + 20), ack(a, 2, "a-cmd-2", false, "boom", NOW + 21)],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&batch).await?;
        let rows = store.commands_after(a, 0, 100).await?;
        assert_eq!(
            (rows[0].state, rows[0].error.as_str(), rows[0].acked_at),
            (CommandState::Acked, "", Some(NOW + 20))
        );
        assert_eq!(
            (rows[1].state, rows[1].error.as_str(), rows[1].acked_at),
            (CommandState::Failed, "boom", Some(NOW + 21))
        );
        assert_eq!((rows[2].state, rows[3].state), (CommandState::Delivered, CommandState::Delivered));
        assert_eq!(agent(&store, a).await?.last_acked_command_seq, 2);

        // The first ack wins: later ones of the same command change nothing.
        let batch = EventBatch {
            events: vec![],
            acks: vec![ack(a, 1, "a-cmd-1", false, "late", NOW + 30), ack(a, 2, "a-cmd-2", true, "", NOW + 30)],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&batch).await?;
        let rows = store.commands_after(a, 0, 2).await?;
        assert_eq!(
            (rows[0].state, rows[0].error.as_str(), rows[0].acked_at),
            (CommandState::Acked, "", Some(NOW + 20))
        );
        assert_eq!(
            (rows[1].state, rows[1].error.as_str(), rows[1].acked_at),
            (CommandState::Failed, "boom", Some(NOW + 21))
        );
        assert_eq!(agent(&store, a).await?.last_acked_command_seq, 2);

        // An ack for a sequence never queued, or whose command id does not
        // match the sequence, settles nothing and does not move the cursor
        // (command 3 must still be replayed).
        for wrong in [ack(a, 99, "nope", true, "", NOW + 40), ack(a, 3, "a-cmd-4", true, "", NOW + 40)] {
            store
                .write_event_batch(&EventBatch {
                    events: vec![],
                    acks: vec![wrong],
                    container_changes: vec![],
                    connector_reports: vec![],
                })
                .await?;
            assert_eq!(agent(&store, a).await?.last_acked_command_seq, 2);
        }
        let rows = store.commands_after(a, 2, 100).await?;
        assert_eq!((rows[0].state, rows[1].state), (CommandState::Delivered, CommandState::Delivered));

        // Acks settle commands in the same batch, and the cursor takes the highest.
        let batch = EventBatch {
            events: vec![event(a, 6, NOW + 50, "result-4")],
            acks: vec![ack(a, 4, "a-cmd-4", true, "", NOW + 50), ack(a, 3, "a-cmd-3", true, "", NOW + 50)],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&batch).await?;
        let record = agent(&store, a).await?;
        assert_eq!((record.last_acked_command_seq, record.last_event_id), (4, 6));
        let states: Vec<CommandState> = store.commands_after(a, 0, 100).await?.iter().map(|r| r.state).collect();
        assert_eq!(states, vec![CommandState::Acked, CommandState::Failed, CommandState::Acked, CommandState::Acked]);
        assert_eq!(agent(&store, b).await?.last_acked_command_seq, 0, "other agents are untouched");

        // An empty batch is a no-op.
        store.write_event_batch(&EventBatch::default()).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn heartbeats_keep_no_row_and_old_events_expire() -> Result<()> {
    on_each_backend(|store| async move {
        let a = enrolled_agent(&store, "a").await?;
        let a = a.as_str();
        let mut heartbeat = event(a, 3, NOW + 3, "beat");
        heartbeat.kind = "heartbeat".into();
        let batch = EventBatch {
            events: vec![event(a, 1, NOW + 1, "old"), event(a, 2, NOW + 2, "new"), heartbeat],
            acks: vec![],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&batch).await?;
        let stored = store.list_events(a, 0, 100).await?;
        assert_eq!(stored.iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![1, 2], "the heartbeat has no row");
        let record = agent(&store, a).await?;
        assert_eq!((record.last_event_id, record.last_seen_at), (3, Some(NOW + 3)), "…but it moved the cursors");
        assert_eq!(store.delete_events_before(NOW + 2, 1000).await?, 1);
        assert_eq!(store.list_events(a, 0, 100).await?.iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(agent(&store, a).await?.last_event_id, 3, "retention leaves the cursor");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn revoked_agents_stay_revoked() -> Result<()> {
    on_each_backend(|store| async move {
        let agent_id = enrolled_agent(&store, "doomed").await?;
        let bystander = enrolled_agent(&store, "bystander").await?;
        let id = agent_id.as_str();
        let record = store.register_agent(&agent_id, &registration("doomed"), NOW).await?.context("register")?;
        assert_eq!(record.status, STATUS_ONLINE);
        assert_eq!(record.capabilities, vec!["connector.container".to_string(), "swarm.services".to_string()]);
        assert_eq!((record.hostname.as_str(), record.docker_mode.as_str()), ("doomed.example", "standalone"));
        assert_eq!(record.last_seen_at, Some(NOW));

        let revoked = store.revoke_agent(id, NOW + 1).await?.context("revoke")?;
        assert_eq!(revoked.status, STATUS_REVOKED);
        assert!(revoked.is_revoked());
        assert_eq!(store.revoke_agent(id, NOW + 2).await?.map(|r| r.status), Some(STATUS_REVOKED.to_string()));
        assert!(store.revoke_agent("00000000-0000-4000-8000-000000000000", NOW).await?.is_none());

        // Registering again does not bring it back; no command can be queued for it.
        let record = store.register_agent(&agent_id, &registration("doomed"), NOW + 3).await?.context("register")?;
        assert_eq!(record.status, STATUS_REVOKED);
        assert_eq!(enqueue(&store, id, "after-revoke").await?, Enqueued::RevokedAgent);
        assert_eq!(agent(&store, id).await?.last_command_seq, 0, "a refused enqueue must not use a sequence");
        // Liveness does not turn a revoked agent into an offline one.
        assert!(store.mark_stale_agents_offline(NOW + 1_000_000).await?.is_empty());
        assert_eq!(agent(&store, id).await?.status, STATUS_REVOKED);
        assert_eq!(agent(&store, bystander.as_str()).await?.status, STATUS_OFFLINE);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn stale_online_agents_are_marked_offline() -> Result<()> {
    on_each_backend(|store| async move {
        let stale = enrolled_agent(&store, "stale").await?;
        let fresh = enrolled_agent(&store, "fresh").await?;
        let never = enrolled_agent(&store, "never-registered").await?;
        store.register_agent(&stale, &registration("stale"), NOW).await?.context("register")?;
        store.register_agent(&fresh, &registration("fresh"), NOW + 10_000).await?.context("register")?;

        let offline = store.mark_stale_agents_offline(NOW + 5_000).await?;
        assert_eq!(offline, vec![stale.to_string()]);
        assert_eq!(agent(&store, stale.as_str()).await?.status, STATUS_OFFLINE);
        assert_eq!(agent(&store, fresh.as_str()).await?.status, STATUS_ONLINE);
        assert_eq!(agent(&store, never.as_str()).await?.status, STATUS_OFFLINE);
        // Already offline: not reported again.
        assert!(store.mark_stale_agents_offline(NOW + 5_000).await?.is_empty());

        // The cutoff is exclusive: seen exactly at the cutoff is still online.
        assert!(store.mark_stale_agents_offline(NOW + 10_000).await?.is_empty());
        // A newer event keeps an agent online.
        store
            .write_event_batch(&EventBatch {
                events: vec![event(fresh.as_str(), 1, NOW + 20_000, "hb")],
                acks: vec![],
                container_changes: vec![],
                connector_reports: vec![],
            })
            .await?;
        assert!(store.mark_stale_agents_offline(NOW + 15_000).await?.is_empty());
        assert_eq!(store.mark_stale_agents_offline(NOW + 25_000).await?, vec![fresh.to_string()]);

        // Registering again brings an agent back online.
        let record = store.register_agent(&stale, &registration("stale"), NOW + 30_000).await?.context("register")?;
        assert_eq!(record.status, STATUS_ONLINE);

        // So does an event: an agent marked offline while its heartbeats were
        // delayed is online again once they are stored.
        let events = EventBatch {
            events: vec![event(fresh.as_str(), 2, NOW + 40_000, "hb")],
            acks: vec![],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&events).await?;
        let record = agent(&store, fresh.as_str()).await?;
        assert_eq!((record.status.as_str(), record.last_seen_at), (STATUS_ONLINE, Some(NOW + 40_000)));
        // But never a revoked one.
        store.revoke_agent(stale.as_str(), NOW + 41_000).await?.context("revoke")?;
        let events = EventBatch {
            events: vec![event(stale.as_str(), 1, NOW + 42_000, "hb")],
            acks: vec![],
            container_changes: vec![],
            connector_reports: vec![],
        };
        store.write_event_batch(&events).await?;
        assert_eq!(agent(&store, stale.as_str()).await?.status, STATUS_REVOKED);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn commands_ride_along_in_an_open_event_transaction_without_losing_a_sequence() -> Result<()> {
    on_each_backend(|store| async move {
        let a = enrolled_agent(&store, "a").await?;
        let b = enrolled_agent(&store, "b").await?;
        store.revoke_agent(b.as_str(), NOW).await?;
        // A long transaction: many chunks of the agent's events.
        let chunks: Vec<EventBatch> = (0..400u64)
            .map(|chunk| EventBatch {
                events: (1..=256).map(|n| event(a.as_str(), chunk * 256 + n, NOW, "e")).collect(),
                acks: vec![],
                container_changes: vec![],
                connector_reports: vec![],
            })
            .collect();
        let total: u64 = 400 * 256;
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut stored = 0;
                let mut transactions = 0;
                while stored < chunks.len() {
                    stored += store.write_event_chunks(&chunks[stored..], Duration::from_secs(3600)).await?.0;
                    transactions += 1;
                }
                anyhow::Ok(transactions)
            })
        };
        // Commands for a known agent, a revoked one and an unknown one, while the events are
        // written: the refused ones leave no gap in the known agent's sequence.
        let mut sequences = Vec::new();
        let mut rode = 0;
        for n in 0..5 {
            while store.backend() == Backend::Sqlite && !store.event_transaction_open() && !writer.is_finished() {
                tokio::task::yield_now().await;
            }
            rode += usize::from(store.event_transaction_open());
            assert_eq!(enqueue(&store, b.as_str(), &format!("revoked-{n}")).await?, Enqueued::RevokedAgent);
            assert_eq!(enqueue(&store, "no-such-agent", &format!("unknown-{n}")).await?, Enqueued::UnknownAgent);
            match enqueue(&store, a.as_str(), &format!("ok-{n}")).await? {
                Enqueued::Queued(sequence) => sequences.push(sequence),
                other => anyhow::bail!("command {n}: {other:?}"),
            }
        }
        let transactions = writer.await??;
        assert_eq!(sequences, vec![1, 2, 3, 4, 5]);
        let rows = store.commands_after(a.as_str(), 0, 100).await?;
        let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
        assert_eq!(ids, ["ok-0", "ok-1", "ok-2", "ok-3", "ok-4"]);
        assert!(store.commands_after(b.as_str(), 0, 100).await?.is_empty(), "nothing stored for the revoked agent");
        assert_eq!(agent(&store, a.as_str()).await?.last_event_id, total, "every event stored");
        if store.backend() == Backend::Sqlite {
            // Each operator's command that rode along cut its transaction short.
            ensure!(rode > 0, "no command found an event transaction open");
            ensure!(transactions > 1, "the transaction was never cut short ({rode} commands rode along)");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_waiting_command_cuts_an_event_transaction_short_on_sqlite_only() -> Result<()> {
    on_each_backend(|store| async move {
        let a = enrolled_agent(&store, "a").await?;
        let chunk = |first: u64| EventBatch {
            events: (first..first + 3).map(|id| event(a.as_str(), id, NOW + id as i64, "e")).collect(),
            acks: vec![],
            container_changes: vec![],
            connector_reports: vec![],
        };
        let chunks = [chunk(1), chunk(4), chunk(7)];

        // Nothing waits: every chunk in one transaction.
        assert_eq!(store.write_event_chunks(&chunks[..1], Duration::ZERO).await?.0, 1);
        // A command waits, but the transaction is younger than it must be to give way.
        let waiting = store.waiting_for_writer();
        assert_eq!(store.write_event_chunks(&chunks[1..], Duration::from_secs(3600)).await?.0, 2);

        // Old enough (here at once; the event writer lets one run YIELD_AFTER first): SQLite, one
        // writer connection, commits after the chunk in progress and leaves the rest;
        // PostgreSQL has no reason to.
        let more = [chunk(10), chunk(13)];
        let stored = store.write_event_chunks(&more, Duration::ZERO).await?.0;
        match store.backend() {
            Backend::Sqlite => assert_eq!(stored, 1, "SQLite yields after one chunk"),
            Backend::Postgres => assert_eq!(stored, 2, "PostgreSQL writes on"),
        }
        drop(waiting);
        assert_eq!(store.write_event_chunks(&more[stored..], Duration::ZERO).await?.0, more.len() - stored);

        // Whatever the split, every event is stored once and the cursor is at the last.
        let ids: Vec<u64> = store.list_events(a.as_str(), 0, 100).await?.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, (1..=15).collect::<Vec<_>>());
        assert_eq!(agent(&store, a.as_str()).await?.last_event_id, 15);
        Ok(())
    })
    .await
}

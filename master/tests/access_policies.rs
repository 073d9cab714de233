//! Operator-defined Access policies: the store on SQLite and PostgreSQL (owners per name, file
//! sets replaced in one transaction, revisions that move only on change), and the real master
//! over mutual TLS — Put/Get/List/DeleteAccessPolicy, refusals naming the field path, roles, the
//! `--access-policies` file (refused as a whole at start, read-only through the API, reloaded on
//! SIGHUP, a bad reload keeping the previous set) and grpcurl sending the rules as JSON.

mod support;

use support::rule;

use anyhow::{bail, ensure, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::{self, AdminRole};
use dockflare_master::model::{OperatorPolicy, PolicySource};
use dockflare_master::store::{PutOutcome, Store};
use dockflare_testsupport::{eventually, Master};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::{test_databases, OpenStore};
use tonic::transport::Channel;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

fn policy(name: &str, source: PolicySource, include: Value) -> OperatorPolicy {
    OperatorPolicy {
        name: name.into(),
        decision: "allow".into(),
        include: vec![include],
        exclude: vec![],
        require: vec![],
        session_duration: Some("12h".into()),
        source,
        updated_at: 1_000,
    }
}

async fn store_case(store: Store) -> Result<()> {
    let team = policy("team", PolicySource::Api, json!({"email_domain": {"domain": "example.com"}}));
    let PutOutcome::Created(created) = store.upsert_access_policy(&team, "alice").await? else { bail!("not created") };
    assert_eq!((created.revision, created.created_by.as_str()), (1, "alice"));
    let mut later = team.clone();
    later.updated_at = 2_000;
    let PutOutcome::Unchanged(same) = store.upsert_access_policy(&later, "bob").await? else { bail!("changed") };
    assert_eq!((same.revision, same.policy.updated_at), (1, 1_000), "a put that changes nothing keeps both");
    later.decision = "deny".into();
    let PutOutcome::Replaced(replaced) = store.upsert_access_policy(&later, "bob").await? else { bail!("kept") };
    assert_eq!(replaced.revision, 2);
    assert_eq!(store.list_access_policies().await?, vec![later.clone()]);

    // The file's set: created, then replaced as a whole; API rows untouched.
    let file = vec![
        policy("ops", PolicySource::File, json!({"everyone": {}})),
        policy("geo", PolicySource::File, json!({"geo": {"country_code": "DE"}})),
    ];
    let outcome = store.replace_file_policies(&file, "/etc/p.toml").await?;
    assert_eq!((outcome.created.len(), outcome.conflicts.len()), (2, 0));
    let again = store.replace_file_policies(&file, "/etc/p.toml").await?;
    assert!(again.created.is_empty() && again.changed.is_empty() && again.removed.is_empty(), "{again:?}");
    let mut second = vec![policy("ops", PolicySource::File, json!({"ip": {"ip": "10.0.0.0/8"}}))];
    let outcome = store.replace_file_policies(&second, "/etc/p.toml").await?;
    assert_eq!((outcome.changed, outcome.removed), (vec!["ops".to_string()], vec!["geo".to_string()]));
    let names: Vec<String> = store.list_access_policies().await?.into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["ops", "team"]);
    let ops = store.get_access_policy("ops").await?.context("ops")?.map_err(anyhow::Error::msg)?;
    assert_eq!((ops.revision, ops.created_by.as_str(), ops.policy.source), (2, "/etc/p.toml", PolicySource::File));

    // One owner per name: the file does not take the API's, the API does not take the file's.
    second.push(policy("team", PolicySource::File, json!({"everyone": {}})));
    let refused = store.replace_file_policies(&second, "/etc/p.toml").await?;
    assert_eq!(refused.conflicts, ["team"]);
    assert_eq!(store.list_access_policies().await?.len(), 2, "a refused set writes nothing");
    let api_ops = policy("ops", PolicySource::Api, json!({"everyone": {}}));
    let PutOutcome::HeldBy(held) = store.upsert_access_policy(&api_ops, "alice").await? else { bail!("taken") };
    assert_eq!(held.created_by, "/etc/p.toml");
    assert!(!store.delete_access_policy("ops").await?, "the API's delete leaves the file's");
    assert!(store.delete_access_policy("team").await?);
    assert!(!store.delete_access_policy("team").await?);
    store.replace_file_policies(&[], "/etc/p.toml").await?;
    assert!(store.list_access_policies().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn the_store_keeps_one_owner_per_name_on_both_backends() -> Result<()> {
    for database in test_databases().await? {
        let store = database.connect().await?;
        let outcome = store_case(store.clone()).await;
        store.close().await;
        outcome.with_context(|| format!("on {}", database.name))?;
    }
    Ok(())
}

fn put(name: &str, include: Vec<Value>) -> v1::PutAccessPolicyRequest {
    v1::PutAccessPolicyRequest {
        name: name.into(),
        decision: "allow".into(),
        include: include.into_iter().map(rule).collect(),
        session_duration: "24h".into(),
        ..Default::default()
    }
}

fn refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, needle: &str) -> Result<()> {
    match result {
        Err(status) if status.code() == code && status.message().contains(needle) => Ok(()),
        other => bail!("expected {code:?} mentioning {needle:?}, got {other:?}"),
    }
}

async fn names(admin: &mut AdminServiceClient<Channel>) -> Result<Vec<String>> {
    let page = admin.list_access_policies(v1::ListAccessPoliciesRequest::default()).await?.into_inner();
    Ok(page.policies.into_iter().map(|p| p.name).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_put_listed_got_and_deleted_with_roles_and_field_paths() -> Result<()> {
    let master = Master::sqlite().await?;
    let mut admin = master.admin().await?;
    let created = admin
        .put_access_policy(put("team", vec![json!({"email_domain": {"domain": "example.com"}})]))
        .await?
        .into_inner();
    ensure!(created.created, "{created:?}");
    let stored = created.policy.context("policy")?;
    assert_eq!((stored.decision.as_str(), stored.revision, stored.created_by.as_str()), ("allow", 1, "admin"));
    assert_eq!(stored.source, v1::AccessPolicySource::Api as i32);
    assert_eq!(stored.include, vec![rule(json!({"email_domain": {"domain": "example.com"}}))]);
    let replaced = admin.put_access_policy(put("team", vec![json!({"everyone": {}})])).await?.into_inner();
    assert_eq!((replaced.created, replaced.policy.map(|p| p.revision)), (false, Some(2)));
    admin.put_access_policy(put("alpha", vec![json!({"ip": {"ip": "10.0.0.0/8"}})])).await?;

    // Pages, ordered by name.
    let first = admin
        .list_access_policies(v1::ListAccessPoliciesRequest { page_size: 1, ..Default::default() })
        .await?
        .into_inner();
    assert_eq!(first.policies.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["alpha"]);
    let next = v1::ListAccessPoliciesRequest { page_size: 1, page_token: first.next_page_token };
    let second = admin.list_access_policies(next).await?.into_inner();
    assert_eq!((second.policies[0].name.as_str(), second.next_page_token.as_str()), ("team", ""));
    let got = admin.get_access_policy(v1::GetAccessPolicyRequest { name: "team".into() }).await?.into_inner();
    assert_eq!(got.policy.map(|p| p.session_duration), Some("24h".to_string()));

    // Bad input names the field path.
    let bob = json!({"email": {"email": "bob"}});
    refused(
        admin.put_access_policy(put("team", vec![json!({"everyone": {}}), bob])).await,
        Code::InvalidArgument,
        "include[1].email.email: \"bob\" is not an email address",
    )?;
    refused(
        admin.put_access_policy(put("Bypass", vec![json!({"everyone": {}})])).await,
        Code::InvalidArgument,
        "name:",
    )?;
    refused(
        admin.put_access_policy(put("bypass", vec![json!({"everyone": {}})])).await,
        Code::InvalidArgument,
        "keyword",
    )?;
    let mut session = put("team", vec![json!({"everyone": {}})]);
    session.session_duration = "1 day".into();
    refused(admin.put_access_policy(session).await, Code::InvalidArgument, "session_duration:")?;
    refused(admin.put_access_policy(put("team", vec![])).await, Code::InvalidArgument, "include: at least one rule")?;
    refused(
        admin.get_access_policy(v1::GetAccessPolicyRequest { name: "nope".into() }).await,
        Code::NotFound,
        "no access policy \"nope\"",
    )?;

    // Roles: a viewer reads, an operator writes.
    let (_, cert, key) = master.issue_identity("vera", AdminRole::Viewer).await?;
    let mut viewer = AdminServiceClient::new(master.channel_as(Some((&cert, &key))).await?);
    assert_eq!(names(&mut viewer).await?, ["alpha", "team"]);
    viewer.get_access_policy(v1::GetAccessPolicyRequest { name: "team".into() }).await?;
    refused(
        viewer.put_access_policy(put("x", vec![json!({"everyone": {}})])).await,
        Code::PermissionDenied,
        "PutAccessPolicy needs role operator",
    )?;
    refused(
        viewer.delete_access_policy(v1::DeleteAccessPolicyRequest { name: "team".into() }).await,
        Code::PermissionDenied,
        "DeleteAccessPolicy needs role operator",
    )?;
    let (_, cert, key) = master.issue_identity("otto", AdminRole::Operator).await?;
    let mut operator = AdminServiceClient::new(master.channel_as(Some((&cert, &key))).await?);
    operator.delete_access_policy(v1::DeleteAccessPolicyRequest { name: "alpha".into() }).await?;
    refused(
        operator.delete_access_policy(v1::DeleteAccessPolicyRequest { name: "alpha".into() }).await,
        Code::NotFound,
        "no access policy",
    )?;
    assert_eq!(names(&mut admin).await?, ["team"]);
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

const FILE_V1: &str = r#"
[[policy]]
name = "team"
decision = "allow"
include = [{ email_domain = { domain = "example.com" } }]
session_duration = "12h"
"#;

const FILE_V2: &str = r#"
[[policy]]
name = "ops"
decision = "allow"
include = [{ everyone = {} }]
exclude = [{ geo = { country_code = "KP" } }]
"#;

fn hangup(master: &Master) -> Result<()> {
    let pid = master.pid().context("the master is not running")?;
    let status = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status()?;
    ensure!(status.success(), "kill -HUP {pid}: {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_file_is_read_at_start_read_only_and_reloaded_on_sighup() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policies.toml");

    // An invalid file stops the master, naming the file, the policy and the field.
    write(&file, &FILE_V1.replace("example.com", "not a domain"))?;
    let path = file.display().to_string();
    let error = match Master::start(None, &["--access-policies", &path]).await {
        Ok(_) => bail!("the master started with an invalid policy file"),
        Err(error) => format!("{error:#}"),
    };
    let expected = format!("access policy file {path}: policy \"team\" (policy[0]): include[0].email_domain.domain:");
    ensure!(error.contains(&expected), "{error}");

    write(&file, FILE_V1)?;
    let master = Master::start(None, &["--access-policies", &path]).await?;
    let mut admin = master.admin().await?;
    let team = admin.get_access_policy(v1::GetAccessPolicyRequest { name: "team".into() }).await?.into_inner();
    let team = team.policy.context("policy")?;
    assert_eq!((team.source, team.created_by.as_str()), (v1::AccessPolicySource::File as i32, path.as_str()));
    refused(
        admin.delete_access_policy(v1::DeleteAccessPolicyRequest { name: "team".into() }).await,
        Code::FailedPrecondition,
        &format!("defined in the access policy file {path}"),
    )?;
    refused(
        admin.put_access_policy(put("team", vec![json!({"everyone": {}})])).await,
        Code::FailedPrecondition,
        &path,
    )?;
    admin.put_access_policy(put("mine", vec![json!({"everyone": {}})])).await?;

    // SIGHUP: the file's set is replaced; the API's policy stays.
    write(&file, FILE_V2)?;
    hangup(&master)?;
    eventually("the reloaded file's policies", WAIT, || {
        let mut admin = admin.clone();
        async move { Ok((names(&mut admin).await? == ["mine", "ops"]).then_some(())) }
    })
    .await?;

    // A bad reload is logged and the previous set stays.
    write(&file, "[[policy]]\nname = \"ops\"\ndecision = \"maybe\"\ninclude = [{ everyone = {} }]\n")?;
    hangup(&master)?;
    master.wait_for_log("Access policy file refused; the previous policies stay.", WAIT).await?;
    let logged = master.logs_text();
    ensure!(logged.contains("policy \\\"ops\\\" (policy[0]): decision: \\\"maybe\\\""), "{logged}");
    assert_eq!(names(&mut admin).await?, ["mine", "ops"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_puts_a_policy_with_its_rules_as_json() -> Result<()> {
    let master = Master::sqlite().await?;
    let data = r#"{"name": "team", "decision": "allow",
        "include": [{"email": {"email": "a@example.com"}}, {"everyone": {}}],
        "require": [{"ip": {"ip": "10.0.0.0/8"}}], "session_duration": "2h45m"}"#;
    let output = tokio::process::Command::new(dockflare_testsupport::grpcurl::binary())
        .args(["-max-time", "20", "-cacert"])
        .arg(master.ca_cert_path())
        .arg("-cert")
        .arg(master.admin_cert_path())
        .arg("-key")
        .arg(master.admin_key_path())
        .args(["-d", data, &master.addr.to_string(), "dockflare.v1.AdminService/PutAccessPolicy"])
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "grpcurl: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_str(&stdout).context("grpcurl's answer")?;
    assert_eq!(answer["policy"]["include"], json!([{"email": {"email": "a@example.com"}}, {"everyone": {}}]));
    assert_eq!(answer["policy"]["source"], json!("ACCESS_POLICY_SOURCE_API"));
    assert_eq!(answer["created"], json!(true));
    let mut admin = master.admin().await?;
    let got = admin.get_access_policy(v1::GetAccessPolicyRequest { name: "team".into() }).await?.into_inner();
    assert_eq!(got.policy.map(|p| p.require), Some(vec![rule(json!({"ip": {"ip": "10.0.0.0/8"}}))]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_without_a_policy_file_is_only_logged() -> Result<()> {
    let mut master = Master::sqlite().await?;
    hangup(&master)?;
    master.wait_for_log("SIGHUP: nothing to reload (no --access-policies file).", WAIT).await?;
    master.check_running()?;
    master.admin().await?.list_access_policies(v1::ListAccessPoliciesRequest::default()).await?;
    Ok(())
}

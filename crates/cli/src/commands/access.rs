//! `dockflare access`: the operator-defined Cloudflare Access policies that access labels name —
//! `access policies` (list, every page), `access policy get NAME`, `access policy put NAME`
//! (flags, or `-f FILE` with the definition as JSON) and `access policy rm NAME`.

use super::{all_pages, Session};
use crate::exit::{Exit, Failure};
use crate::output::table::{fields, Cell, Table};
use crate::output::words;
use clap::{Args, Subcommand};
use dockflare::v1;
use serde_json::Value;
use std::path::PathBuf;
use std::time::SystemTime;

#[derive(Args, Debug)]
pub struct AccessArgs {
    #[command(subcommand)]
    command: AccessCommand,
}

#[derive(Subcommand, Debug)]
enum AccessCommand {
    /// List the operator-defined Access policies (API and file), every page.
    Policies,
    /// One Access policy: get, put (create or replace), rm.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Show one policy, its rules as JSON.
    Get { name: String },
    /// Create or replace a policy (the whole definition: rules not given are removed).
    Put(PutArgs),
    /// Delete a policy defined through the API (a file's is changed in its file).
    #[command(visible_alias = "remove")]
    Rm { name: String },
}

#[derive(Args, Debug)]
struct PutArgs {
    /// The policy's name (a-z, 0-9, '.', '_', '-'; at most 64).
    name: String,
    /// allow, deny, non_identity or bypass.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    decision: Option<String>,
    /// A rule of which one must match, as JSON: '{"email":{"email":"a@example.com"}}',
    /// '{"email_domain":{"domain":"example.com"}}', '{"everyone":{}}', '{"ip":{"ip":"10.0.0.0/8"}}'…
    /// (repeat).
    #[arg(long, value_name = "JSON", required_unless_present = "file", conflicts_with = "file")]
    include: Vec<String>,
    /// A rule of which none may match, as JSON (repeat).
    #[arg(long, value_name = "JSON", conflicts_with = "file")]
    exclude: Vec<String>,
    /// A rule that must match, as JSON (repeat).
    #[arg(long, value_name = "JSON", conflicts_with = "file")]
    require: Vec<String>,
    /// How long a session lasts (Go duration: 24h, 30m, 2h45m).
    #[arg(long, value_name = "DURATION", conflicts_with = "file")]
    session_duration: Option<String>,
    /// The definition as a JSON object: {"decision": …, "include": [...], "exclude": [...],
    /// "require": [...], "session_duration": …} ("-" reads stdin).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
}

fn usage(message: String) -> Failure {
    Failure::new(Exit::Usage, message)
}

/// A JSON object as a `google.protobuf.Struct` (`what` names it in errors).
fn rule(what: &str, json: &Value) -> Result<prost_types::Struct, Failure> {
    match json {
        Value::Object(object) => Ok(prost_types::Struct {
            fields: object.iter().map(|(key, value)| (key.clone(), proto_value(value))).collect(),
        }),
        other => Err(usage(format!("{what}: a rule is a JSON object such as {{\"everyone\":{{}}}}, not {other}"))),
    }
}

fn proto_value(json: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match json {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(text) => Kind::StringValue(text.clone()),
        Value::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.iter().map(proto_value).collect() })
        }
        Value::Object(object) => Kind::StructValue(prost_types::Struct {
            fields: object.iter().map(|(key, value)| (key.clone(), proto_value(value))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// The rules of repeated flags (`--include`), each parsed as JSON.
fn flag_rules(flag: &str, values: &[String]) -> Result<Vec<prost_types::Struct>, Failure> {
    values
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let what = format!("--{flag} #{}", index + 1);
            let json: Value =
                serde_json::from_str(text).map_err(|e| usage(format!("{what}: not JSON ({e}): {text}")))?;
            rule(&what, &json)
        })
        .collect()
}

/// The request a `-f` file's JSON object asks for.
fn file_request(name: String, text: &str, source: &str) -> Result<v1::PutAccessPolicyRequest, Failure> {
    let json: Value = serde_json::from_str(text).map_err(|e| usage(format!("{source}: not JSON: {e}")))?;
    let Value::Object(object) = json else {
        return Err(usage(format!("{source}: the definition is a JSON object")));
    };
    let mut request = v1::PutAccessPolicyRequest { name: name.clone(), ..Default::default() };
    for (key, value) in &object {
        let text = || value.as_str().map(str::to_string).ok_or_else(|| usage(format!("{source}: {key} is a string")));
        let list = |key: &str| -> Result<Vec<prost_types::Struct>, Failure> {
            let items = value.as_array().ok_or_else(|| usage(format!("{source}: {key} is an array of rules")))?;
            items.iter().enumerate().map(|(index, item)| rule(&format!("{source}: {key}[{index}]"), item)).collect()
        };
        match key.as_str() {
            "name" if value.as_str() == Some(name.as_str()) => {}
            "name" => return Err(usage(format!("{source}: name {value} is not {name:?}, the name given"))),
            "decision" => request.decision = text()?,
            "session_duration" => request.session_duration = text()?,
            "include" => request.include = list("include")?,
            "exclude" => request.exclude = list("exclude")?,
            "require" => request.require = list("require")?,
            other => {
                return Err(usage(format!(
                    "{source}: unknown key {other:?} (decision, include, exclude, require, session_duration)"
                )))
            }
        }
    }
    Ok(request)
}

fn put_request(put: PutArgs) -> Result<v1::PutAccessPolicyRequest, Failure> {
    if let Some(path) = &put.file {
        let (text, source) = if path.as_os_str() == "-" {
            (std::io::read_to_string(std::io::stdin()).map_err(|e| usage(format!("stdin: {e}")))?, "stdin".to_string())
        } else {
            let source = path.display().to_string();
            (std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {source}: {e}")))?, source)
        };
        return file_request(put.name, &text, &source);
    }
    Ok(v1::PutAccessPolicyRequest {
        name: put.name,
        decision: put.decision.unwrap_or_default(),
        include: flag_rules("include", &put.include)?,
        exclude: flag_rules("exclude", &put.exclude)?,
        require: flag_rules("require", &put.require)?,
        session_duration: put.session_duration.unwrap_or_default(),
        ..Default::default()
    })
}

pub async fn run(args: AccessArgs, session: &Session) -> anyhow::Result<()> {
    let out = session.out;
    let command = match args.command {
        AccessCommand::Policy { command: PolicyCommand::Put(put) } => {
            // Checked before connecting: a malformed rule is a usage error.
            let request = put_request(put)?;
            let mut client = session.connect().await?;
            let response = session.answer("PutAccessPolicy", client.put_access_policy(request).await)?;
            if out.is_json() {
                return out.json(&response);
            }
            let Some(policy) = &response.policy else { return Ok(()) };
            return crate::output::print(&fields(&policy_fields(policy, SystemTime::now()), out.colour));
        }
        other => other,
    };
    let mut client = session.connect().await?;
    match command {
        AccessCommand::Policies => {
            let policies = all_pages(None, |page_token, page_size| {
                let mut client = client.clone();
                let request = v1::ListAccessPoliciesRequest { page_size, page_token, ..Default::default() };
                async move {
                    let page = session.answer("ListAccessPolicies", client.list_access_policies(request).await)?;
                    Ok((page.policies, page.next_page_token))
                }
            })
            .await?;
            if out.is_json() {
                return out.json(&v1::ListAccessPoliciesResponse { policies, ..Default::default() });
            }
            out.table(&policies_table(&policies, SystemTime::now()), "No access policies.")
        }
        AccessCommand::Policy { command: PolicyCommand::Get { name } } => {
            let request = v1::GetAccessPolicyRequest { name, ..Default::default() };
            let response = session.answer("GetAccessPolicy", client.get_access_policy(request).await)?;
            if out.is_json() {
                return out.json(&response);
            }
            let Some(policy) = &response.policy else { return Ok(()) };
            crate::output::print(&fields(&policy_fields(policy, SystemTime::now()), out.colour))
        }
        AccessCommand::Policy { command: PolicyCommand::Rm { name } } => {
            let request = v1::DeleteAccessPolicyRequest { name: name.clone(), ..Default::default() };
            let response = session.answer("DeleteAccessPolicy", client.delete_access_policy(request).await)?;
            if out.is_json() {
                return out.json(&response);
            }
            crate::output::print(&format!("deleted access policy {name}\n"))
        }
        // Answered above.
        AccessCommand::Policy { command: PolicyCommand::Put(_) } => Ok(()),
    }
}

/// Rules as compact JSON, one after another.
fn rules_text(rules: &[prost_types::Struct]) -> String {
    rules.iter().map(|rule| struct_json(rule).to_string()).collect::<Vec<_>>().join(" ")
}

fn struct_json(fields: &prost_types::Struct) -> Value {
    Value::Object(fields.fields.iter().map(|(key, value)| (key.clone(), value_json(value))).collect())
}

fn value_json(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(text)) => Value::String(text.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(value_json).collect()),
        Some(Kind::StructValue(fields)) => struct_json(fields),
    }
}

pub fn policies_table(policies: &[v1::AccessPolicy], now: SystemTime) -> Table {
    let mut table = Table::new(&["name", "decision", "include", "exclude", "require", "session", "source", "updated"]);
    for policy in policies {
        table.row(vec![
            policy.name.as_str().into(),
            policy.decision.as_str().into(),
            rules_text(&policy.include).into(),
            rules_text(&policy.exclude).into(),
            rules_text(&policy.require).into(),
            policy.session_duration.as_str().into(),
            words::access_policy_source(policy.source).into(),
            words::age_of(policy.updated_at.as_ref(), now).into(),
        ]);
    }
    table
}

fn policy_fields(policy: &v1::AccessPolicy, now: SystemTime) -> Vec<(&'static str, Cell)> {
    vec![
        ("name", policy.name.as_str().into()),
        ("decision", policy.decision.as_str().into()),
        ("include", rules_text(&policy.include).into()),
        ("exclude", rules_text(&policy.exclude).into()),
        ("require", rules_text(&policy.require).into()),
        ("session", policy.session_duration.as_str().into()),
        ("source", words::access_policy_source(policy.source).into()),
        ("defined by", policy.created_by.as_str().into()),
        ("revision", policy.revision.to_string().into()),
        ("updated", words::age_of(policy.updated_at.as_ref(), now).into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_json_objects_and_a_file_holds_the_whole_definition() -> anyhow::Result<()> {
        let rules = flag_rules("include", &[r#"{"email":{"email":"a@b.example"}}"#.into()])?;
        assert_eq!(rules_text(&rules), r#"{"email":{"email":"a@b.example"}}"#);
        let bad = flag_rules("include", &["{email".into()]).unwrap_err();
        assert_eq!(bad.exit, Exit::Usage);
        assert!(bad.message.starts_with("--include #1: not JSON"), "{}", bad.message);
        let not_object = flag_rules("exclude", &["[1]".into()]).unwrap_err();
        assert!(not_object.message.starts_with("--exclude #1: a rule is a JSON object"), "{}", not_object.message);

        let text = r#"{"decision":"allow","include":[{"everyone":{}}],"session_duration":"12h"}"#;
        let request = file_request("team".into(), text, "p.json")?;
        assert_eq!((request.decision.as_str(), request.include.len()), ("allow", 1));
        assert_eq!(request.session_duration, "12h");
        let typo = file_request("team".into(), r#"{"decison":"allow"}"#, "p.json").unwrap_err();
        assert!(typo.message.contains("unknown key \"decison\""), "{}", typo.message);
        let other = file_request("team".into(), r#"{"name":"ops"}"#, "p.json").unwrap_err();
        assert!(other.message.contains("is not \"team\""), "{}", other.message);
        Ok(())
    }
}

//! Operator-defined Access policies: put (create or replace), get, list, delete. A policy from
//! the `--access-policies` file is read-only here (FAILED_PRECONDITION naming the file); bad
//! input is INVALID_ARGUMENT naming the field path. A write asks for a reconcile pass (the
//! reconciler syncs the policies to the account's reusable policies).

use super::paging::{PageRequest, Part};
use super::AdminApi;
use crate::access_policies::{self, PolicyInput};
use crate::clock::now_millis;
use crate::convert;
use crate::grpc_status::store_status;
use crate::model::{PolicySource, StoredAccessPolicy};
use crate::store::PutOutcome;
use dockflare::v1;
use tonic::{Request, Response, Status};

fn held_by_file(name: &str, file: &str) -> Status {
    Status::failed_precondition(format!(
        "access policy {name:?} is defined in the access policy file {file}: change it there (the master reloads \
         it on SIGHUP)"
    ))
}

fn unreadable(name: &str, problem: &str) -> Status {
    Status::failed_precondition(format!(
        "the stored access policy {name:?} cannot be read by this master ({problem}); it is left alone"
    ))
}

fn valid_name(name: &str) -> Result<(), Status> {
    access_policies::validate_name(name).map_err(|e| Status::invalid_argument(e.to_string()))
}

pub(super) async fn put_access_policy(
    api: &AdminApi,
    request: Request<v1::PutAccessPolicyRequest>,
) -> Result<Response<v1::PutAccessPolicyResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let rules = |rules: &[prost_types::Struct]| rules.iter().map(convert::json_of_struct).collect();
    let input = PolicyInput {
        name: request.name.clone(),
        decision: request.decision.clone(),
        include: rules(&request.include),
        exclude: rules(&request.exclude),
        require: rules(&request.require),
        session_duration: Some(request.session_duration.clone()),
    };
    let policy = access_policies::validate(&input, PolicySource::Api, now_millis())
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let outcome = api
        .state
        .store
        .upsert_access_policy(&policy, &admin)
        .await
        .map_err(|e| store_status("storing the access policy", e))?;
    let (stored, created) = match outcome {
        PutOutcome::Created(stored) => (stored, true),
        PutOutcome::Replaced(stored) => (stored, false),
        PutOutcome::Unchanged(stored) => {
            return Ok(Response::new(v1::PutAccessPolicyResponse {
                policy: Some(convert::access_policy(&stored)),
                created: false,
            }))
        }
        PutOutcome::HeldBy(stored) => return Err(held_by_file(&stored.policy.name, &stored.created_by)),
        PutOutcome::Unreadable(problem) => return Err(unreadable(&policy.name, &problem)),
    };
    tracing::info!(
        message = "Access policy stored.",
        name = %stored.policy.name,
        decision = %stored.policy.decision,
        revision = stored.revision,
        created,
        %admin
    );
    api.state.fanout.reconcile().await;
    Ok(Response::new(v1::PutAccessPolicyResponse { policy: Some(convert::access_policy(&stored)), created }))
}

async fn stored(api: &AdminApi, name: &str) -> Result<StoredAccessPolicy, Status> {
    match api.state.store.get_access_policy(name).await.map_err(|e| store_status("reading the access policy", e))? {
        None => Err(Status::not_found(format!("no access policy {name:?}"))),
        Some(Err(problem)) => Err(unreadable(name, &problem)),
        Some(Ok(stored)) => Ok(stored),
    }
}

pub(super) async fn get_access_policy(
    api: &AdminApi,
    request: Request<v1::GetAccessPolicyRequest>,
) -> Result<Response<v1::GetAccessPolicyResponse>, Status> {
    api.state.auth.admin(&request)?;
    let name = request.into_inner().name;
    valid_name(&name)?;
    let stored = stored(api, &name).await?;
    Ok(Response::new(v1::GetAccessPolicyResponse { policy: Some(convert::access_policy(&stored)) }))
}

pub(super) async fn list_access_policies(
    api: &AdminApi,
    request: Request<v1::ListAccessPoliciesRequest>,
) -> Result<Response<v1::ListAccessPoliciesResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let page = PageRequest::parse("ListAccessPolicies", request.page_size, &request.page_token)?;
    let table = api.state.store.load_access_policies().await.map_err(|e| store_status("listing access policies", e))?;
    let keyed = table
        .rows
        .iter()
        .map(|stored| (vec![Part::from(stored.policy.name.as_str())], convert::access_policy(stored)))
        .collect();
    let (policies, next_page_token) = page.page(keyed);
    Ok(Response::new(v1::ListAccessPoliciesResponse { policies, next_page_token }))
}

pub(super) async fn delete_access_policy(
    api: &AdminApi,
    request: Request<v1::DeleteAccessPolicyRequest>,
) -> Result<Response<v1::DeleteAccessPolicyResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let name = request.into_inner().name;
    valid_name(&name)?;
    let deleted =
        api.state.store.delete_access_policy(&name).await.map_err(|e| store_status("deleting the access policy", e))?;
    if !deleted {
        // Why not: none of that name, or the file's (or a row this master cannot read).
        let stored = stored(api, &name).await?;
        return Err(held_by_file(&name, &stored.created_by));
    }
    tracing::info!(message = "Access policy deleted.", %name, %admin);
    api.state.fanout.reconcile().await;
    Ok(Response::new(v1::DeleteAccessPolicyResponse {}))
}

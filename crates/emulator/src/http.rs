//! The HTTP edge of the emulated API: the routes, the envelope of answers,
//! [`ApiError`], query and body parsing, pagination, and the one middleware
//! every API request passes (fault injection, bearer authentication,
//! counters and log).

use super::{access, dns, faults, permissions, tunnels, Emulator};
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dockflare_cloudflare::types::{ApiMessage, Envelope, ResultInfo, TokenVerification};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// The route template recorded for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "<unmatched>";

/// An error answer: HTTP status and Cloudflare's `errors`. Also what the
/// inspection methods of [`Emulator`] return when the API would refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("HTTP {status}: {}", describe(errors))]
pub struct ApiError {
    pub status: u16,
    pub errors: Vec<ApiMessage>,
    retry_after: Option<u64>,
}

fn describe(errors: &[ApiMessage]) -> String {
    let parts: Vec<String> = errors.iter().map(|e| format!("{} {}", e.code, e.message.trim_end())).collect();
    parts.join("; ")
}

impl ApiError {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> ApiError {
        ApiError { status, errors: vec![ApiMessage::new(code, message)], retry_after: None }
    }

    pub(super) fn with_errors(status: u16, errors: Vec<ApiMessage>) -> ApiError {
        ApiError { status, errors, retry_after: None }
    }

    pub(super) fn with_retry_after(mut self, seconds: Option<u64>) -> ApiError {
        self.retry_after = seconds;
        self
    }

    /// HTTP 400.
    pub(super) fn bad_request(code: i64, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    /// Whether `code` is among the errors.
    pub fn has_code(&self, code: i64) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }

    /// 400 7003 + 7000: an unknown zone (or malformed object id) in the path.
    pub(super) fn no_route(path: &str) -> ApiError {
        ApiError::with_errors(
            400,
            vec![
                ApiMessage::new(7003, format!("Could not route to {path}, perhaps your object identifier is invalid?")),
                ApiMessage::new(7000, "No route for that URI"),
            ],
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, &Envelope::<Value>::failure(self.errors));
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `value` as a JSON body with `status`.
pub(super) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(error) => {
            let mut response = Response::new(Body::from(format!("cannot encode the answer: {error}")));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// HTTP 200 with `result`.
pub(super) fn ok<T: Serialize>(result: T) -> Response {
    json_response(StatusCode::OK, &Envelope::success(result))
}

/// `status` with `result` (Access: 201 on create, 202 on delete).
pub(super) fn ok_with_status<T: Serialize>(status: StatusCode, result: T) -> Response {
    json_response(status, &Envelope::success(result))
}

/// HTTP 200 with one page of a list.
pub(super) fn ok_page<T: Serialize>(items: Vec<T>, info: ResultInfo) -> Response {
    json_response(StatusCode::OK, &Envelope::page(items, info))
}

pub(super) type ApiResult = Result<Response, ApiError>;

/// Query parameters in order; keys may repeat.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub fn from_uri(uri: &Uri) -> Query {
        Query(serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default())
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `true`/`false` (absent: `None`); anything else is a 400.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => {
                Err(ApiError::bad_request(1001, format!("Invalid request: {key} must be true or false, not {v:?}")))
            }
        }
    }
}

/// `per_page` bounds of a list endpoint (§1.2). Values outside are clamped.
#[derive(Clone, Copy)]
pub(super) struct PageLimits {
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

pub(super) const TUNNEL_PAGES: PageLimits = PageLimits { default: 1000, min: 1, max: 1000 };
pub(super) const ZONE_PAGES: PageLimits = PageLimits { default: 20, min: 5, max: 50 };
pub(super) const DNS_PAGES: PageLimits = PageLimits { default: 100, min: 1, max: 5_000_000 };
pub(super) const ACCESS_PAGES: PageLimits = PageLimits { default: 1000, min: 1, max: 1000 };

/// Cuts one page out of `items` (1-based `page`; a page past the end is empty).
pub(super) fn paginate<T>(items: Vec<T>, query: &Query, limits: PageLimits) -> Result<(Vec<T>, ResultInfo), ApiError> {
    let number = |key: &str| -> Result<Option<u64>, ApiError> {
        match query.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| ApiError::bad_request(1001, format!("Invalid request: {key} must be a positive integer"))),
        }
    };
    let page = number("page")?.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::bad_request(1001, "Invalid request: page must be at least 1"));
    }
    let per_page = number("per_page")?.unwrap_or(limits.default).clamp(limits.min, limits.max);
    let total_count = items.len() as u64;
    let skip = (page - 1).saturating_mul(per_page);
    let result: Vec<T> =
        items.into_iter().skip(usize::try_from(skip).unwrap_or(usize::MAX)).take(per_page as usize).collect();
    let info = ResultInfo {
        page,
        per_page,
        count: result.len() as u64,
        total_count,
        total_pages: Some(total_count.div_ceil(per_page).max(1)),
    };
    Ok((result, info))
}

/// A JSON request body as `T`; `code` is the error code of a bad body.
pub(super) fn parse_body<T: DeserializeOwned>(body: &Bytes, code: i64, message: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(code, format!("{message}: {e}")))
}

/// A JSON object request body.
pub(super) fn parse_object(body: &Bytes, code: i64, message: &str) -> Result<Map<String, Value>, ApiError> {
    match parse_body::<Value>(body, code, message)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(code, format!("{message}: the body must be a JSON object"))),
    }
}

impl Emulator {
    /// 403 9109 unless `account_id` is the emulated account.
    pub(super) fn check_account(&self, account_id: &str) -> Result<(), ApiError> {
        if account_id.eq_ignore_ascii_case(self.account_id()) {
            Ok(())
        } else {
            Err(ApiError::new(403, 9109, "Unauthorized to access requested resource"))
        }
    }

    /// The presented bearer token, if accepted; errors as in §2 / §11.
    pub(super) fn authenticate(
        &self,
        headers: &HeaderMap,
        verify: bool,
    ) -> Result<super::permissions::TokenEntry, ApiError> {
        let denied = || {
            if verify {
                ApiError::new(403, 1000, "Invalid API Token")
            } else {
                ApiError::new(403, 10000, "Authentication error")
            }
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else { return Err(denied()) };
        let malformed = || {
            let mut message = ApiMessage::new(6003, "Invalid request headers");
            message.extra.insert(
                "error_chain".into(),
                json!([{"code": 6111, "message": "Invalid format for Authorization header"}]),
            );
            ApiError::with_errors(400, vec![message])
        };
        let value = value.to_str().map_err(|_| malformed())?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(malformed()),
        };
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(malformed());
        }
        self.inner.tokens.iter().find(|t| t.token == token).cloned().ok_or_else(denied)
    }
}

/// The template a request matched, relative to the base path.
fn route_template(emulator: &Emulator, request: &Request) -> Option<String> {
    let matched = request.extensions().get::<MatchedPath>()?.as_str();
    let relative = matched.strip_prefix(emulator.base_path()).unwrap_or(matched);
    Some(if relative.is_empty() { "/".to_string() } else { relative.to_string() })
}

/// Faults, then authentication and the token's permissions, then the handler; every request is
/// counted and logged.
async fn gate(State(emulator): State<Emulator>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let template = route_template(&emulator, &request);
    let route = template.clone().unwrap_or_else(|| UNMATCHED_ROUTE.to_string());

    let mut faulted = false;
    let response = match template {
        None => next.run(request).await,
        Some(template) => {
            let fault = emulator.traffic().roll_fault(&method, &path, &template);
            if let Some(fault) = fault {
                faulted = true;
                fault.into_response()
            } else {
                let write = !matches!(*request.method(), Method::GET | Method::HEAD);
                match emulator.authenticate(request.headers(), template.ends_with("/tokens/verify")) {
                    Err(error) => error.into_response(),
                    Ok(token) if permissions::required(&template).is_some_and(|s| !token.allows(s, write)) => {
                        ApiError::new(403, 10000, "Authentication error").into_response()
                    }
                    Ok(token) => {
                        let mut request = request;
                        request.extensions_mut().insert(TokenId(token.id));
                        next.run(request).await
                    }
                }
            }
        }
    };
    emulator.traffic().record(faults::RequestLogEntry {
        method,
        path,
        query,
        route,
        status: response.status().as_u16(),
        faulted,
    });
    response
}

/// The id of the token that authenticated the request.
#[derive(Clone)]
struct TokenId(String);

async fn no_route(uri: Uri) -> Response {
    ApiError::with_errors(404, vec![ApiMessage::new(7000, format!("No route for that URI: {}", uri.path()))])
        .into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    ApiError::new(405, 10405, format!("Method {method} not allowed for this route")).into_response()
}

fn verification(token_id: Option<axum::Extension<TokenId>>) -> Response {
    let id = token_id.map(|t| t.0 .0).unwrap_or_default();
    let mut envelope =
        Envelope::success(TokenVerification { id, status: "active".into(), expires_on: None, not_before: None });
    let mut message = ApiMessage::new(10000, "This API Token is valid and active");
    message.extra.insert("type".into(), Value::Null);
    envelope.messages.push(message);
    json_response(StatusCode::OK, &envelope)
}

async fn verify_user(token_id: Option<axum::Extension<TokenId>>) -> Response {
    verification(token_id)
}

async fn verify_account(
    State(emulator): State<Emulator>,
    Path(account_id): Path<String>,
    token_id: Option<axum::Extension<TokenId>>,
) -> ApiResult {
    emulator.check_account(&account_id).map_err(|_| ApiError::new(403, 1000, "Invalid API Token"))?;
    Ok(verification(token_id))
}

/// The API routes, relative to the base path.
pub(super) fn api_router(emulator: Emulator) -> Router {
    const TUNNELS: &str = "/accounts/{account_id}/cfd_tunnel";
    const TUNNEL: &str = "/accounts/{account_id}/cfd_tunnel/{tunnel_id}";
    Router::new()
        .route("/user/tokens/verify", get(verify_user))
        .route("/accounts/{account_id}/tokens/verify", get(verify_account))
        .route(TUNNELS, get(tunnels::list).post(tunnels::create))
        .route(TUNNEL, get(tunnels::get_one).patch(tunnels::update).delete(tunnels::delete))
        .route(&format!("{TUNNEL}/token"), get(tunnels::token))
        .route(&format!("{TUNNEL}/connections"), get(tunnels::connections).delete(tunnels::delete_connections))
        .route(&format!("{TUNNEL}/connectors/{{connector_id}}"), get(tunnels::connector))
        .route(&format!("{TUNNEL}/configurations"), get(tunnels::get_configuration).put(tunnels::put_configuration))
        .route("/zones", get(dns::list_zones))
        .route("/zones/{zone_id}", get(dns::get_zone))
        .route("/zones/{zone_id}/dns_records", get(dns::list_records).post(dns::create_record))
        .route(
            "/zones/{zone_id}/dns_records/{record_id}",
            get(dns::get_record).put(dns::put_record).patch(dns::patch_record).delete(dns::delete_record),
        )
        .merge(access::routes())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(emulator.clone(), gate))
        .with_state(emulator)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Query {
        Query::from_uri(&format!("/x?{text}").parse::<Uri>().unwrap_or_default())
    }

    #[test]
    fn pages_are_cut_and_described() {
        let items: Vec<u32> = (0..250).collect();
        let (page, info) = paginate(items.clone(), &query("per_page=100&page=3"), DNS_PAGES).unwrap_or_default();
        assert_eq!(page.len(), 50);
        assert_eq!(info, ResultInfo { page: 3, per_page: 100, count: 50, total_count: 250, total_pages: Some(3) });
        let (page, info) = paginate(items.clone(), &query("page=9"), DNS_PAGES).unwrap_or_default();
        assert!(page.is_empty());
        assert_eq!((info.count, info.total_pages), (0, Some(3)));
        let (_, info) = paginate(items, &query("per_page=1"), ZONE_PAGES).unwrap_or_default();
        assert_eq!(info.per_page, 5);
        let (_, info) = paginate(Vec::<u32>::new(), &query(""), TUNNEL_PAGES).unwrap_or_default();
        assert_eq!(info, ResultInfo { page: 1, per_page: 1000, count: 0, total_count: 0, total_pages: Some(1) });
        assert!(paginate(vec![1], &query("page=0"), DNS_PAGES).is_err());
        assert!(paginate(vec![1], &query("per_page=ten"), DNS_PAGES).is_err());
    }

    #[test]
    fn query_keys_repeat_and_decode() {
        let q = query("tag.exact=a%3Ab&tag.exact=c:d&name=x+y");
        let tags: Vec<&str> = q.pairs().filter(|(k, _)| *k == "tag.exact").map(|(_, v)| v).collect();
        assert_eq!(tags, ["a:b", "c:d"]);
        assert_eq!(q.get("name"), Some("x y"));
    }
}

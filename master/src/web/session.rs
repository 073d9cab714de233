//! Who is signed in: the session cookie (HttpOnly, SameSite=Strict, Secure and `__Host-` over
//! TLS, expiring with the session), looked up by its hash in the store; the role a page or an
//! action needs; and the CSRF token every write must echo (a form field or the
//! `X-CSRF-Token` header).

use super::sign_in::{same_token, token_hash};
use super::WebState;
use crate::clock::now_millis;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use dockflare_common::identity::Role;

/// How long a session lasts.
pub const SESSION_LIFETIME_MS: i64 = 12 * 3600 * 1000;

/// The cookie's name: `__Host-` (Secure, Path=/, no Domain) over TLS.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-dockflare-session"
    } else {
        "dockflare-session"
    }
}

/// The Set-Cookie value of a new session.
pub fn session_cookie(token: &str, secure: bool, max_age_seconds: i64) -> String {
    cookie::Cookie::build((cookie_name(secure), token.to_string()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build()
        .to_string()
}

/// The Set-Cookie value that ends a session in the browser.
pub fn cleared_cookie(secure: bool) -> String {
    session_cookie("", secure, 0)
}

/// The session token the request carries, if any.
pub fn session_token(headers: &HeaderMap, secure: bool) -> Option<String> {
    let name = cookie_name(secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .filter(|value| !value.is_empty())
}

/// A refused request: its status and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, self.message).into_response()
    }
}

/// A signed-in caller.
#[derive(Debug, Clone)]
pub struct Signed {
    pub user: String,
    pub role: Role,
    pub csrf_token: String,
    pub id_hash: String,
    pub expires_at: i64,
}

impl Signed {
    /// Refuses a caller below `needed` (403, saying which role it needs).
    pub fn require(&self, needed: Role) -> Result<(), Refusal> {
        if self.role >= needed {
            return Ok(());
        }
        Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: format!("this needs role {needed}; {} has role {}", self.user, self.role),
        })
    }

    /// Refuses a write whose CSRF token is missing or wrong (403).
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), Refusal> {
        match presented {
            Some(token) if same_token(token, &self.csrf_token) => Ok(()),
            _ => Err(Refusal {
                status: StatusCode::FORBIDDEN,
                message: "missing or wrong CSRF token: reload the page and try again".into(),
            }),
        }
    }
}

/// The CSRF token of a request's `X-CSRF-Token` header.
pub fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

/// Pages send a caller without a session to the sign-in page; the API answers 401.
fn refusal(parts: &Parts) -> Response {
    if parts.uri.path().starts_with("/api/") {
        (StatusCode::UNAUTHORIZED, "sign in first").into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<WebState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Signed, Response> {
        let Some(token) = session_token(&parts.headers, state.tls) else { return Err(refusal(parts)) };
        let id_hash = token_hash(&token);
        let session = match state.master.store.get_ui_session(&id_hash, now_millis()).await {
            Ok(Some(session)) => session,
            Ok(None) => return Err(refusal(parts)),
            Err(error) => {
                tracing::warn!(message = "Cannot read dashboard sessions.", %error);
                return Err(
                    (StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry shortly").into_response()
                );
            }
        };
        let Some(role) = Role::parse(&session.role) else { return Err(refusal(parts)) };
        Ok(Signed {
            user: session.user_name,
            role,
            csrf_token: session.csrf_token,
            id_hash,
            expires_at: session.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let plain = session_cookie("t0k3n", false, 60);
        assert!(plain.starts_with("dockflare-session=t0k3n"), "{plain}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=60"] {
            assert!(plain.contains(attribute), "{plain} lacks {attribute}");
        }
        assert!(!plain.contains("Secure"), "{plain}");
        let tls = session_cookie("t0k3n", true, 60);
        assert!(tls.starts_with("__Host-dockflare-session=") && tls.contains("Secure"), "{tls}");
    }

    #[test]
    fn the_session_token_is_read_from_the_right_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "other=1; dockflare-session=abc; x=2".parse().expect("header"));
        assert_eq!(session_token(&headers, false).as_deref(), Some("abc"));
        assert_eq!(session_token(&headers, true), None);
    }
}

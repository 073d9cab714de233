//! The dashboard's HTML and assets: the sign-in page, one application shell for every page
//! (the script renders the view the path names from the live feed), the embedded script and
//! style sheet, and the security headers every answer carries (a strict Content-Security-Policy:
//! no inline script, nothing from elsewhere).

use super::session::Signed;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Text safe inside HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body>{body}</body></html>\n",
        escape(title)
    )
}

/// The sign-in page, with a message when the last attempt failed.
pub fn login_html(message: Option<&str>) -> Html<String> {
    let notice = message.map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m))).unwrap_or_default();
    Html(document(
        "Sign in · DockFlare",
        &format!(
            "<main class=\"sign-in\"><h1>DockFlare</h1>{notice}\
             <form method=\"post\" action=\"/login\">\
             <label>User <input name=\"user\" autocomplete=\"username\" required autofocus></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Sign in</button></form>\
             <p class=\"hint\">Users are made with <code>dockflare-master ui set-password</code>.</p></main>"
        ),
    ))
}

pub async fn login_page() -> Html<String> {
    login_html(None)
}

/// The application shell: navigation, the view the script fills, the sign-out form.
pub async fn app_page(signed: Signed) -> Response {
    let body = format!(
        "<header><nav aria-label=\"Main\"><a href=\"/\" class=\"brand\">DockFlare</a>\
         <a href=\"/\">Overview</a><a href=\"/routes\">Routes</a><a href=\"/agents\">Agents</a>\
         <a href=\"/diagnostics\">Diagnostics</a></nav>\
         <div class=\"who\"><span id=\"connection\" role=\"status\" aria-live=\"polite\">connecting…</span>\
         <span class=\"user\">{user} ({role})</span>\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\">Sign out</button></form></div></header>\
         <main id=\"view\" data-role=\"{role}\" data-csrf=\"{csrf}\"><p>Loading…</p></main>\
         <script src=\"/assets/app.js\"></script>",
        user = escape(&signed.user),
        role = escape(signed.role.as_str()),
        csrf = escape(&signed.csrf_token),
    );
    Html(document("DockFlare", &body)).into_response()
}

pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Headers on every answer.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}

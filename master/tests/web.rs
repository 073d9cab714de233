//! The web dashboard over HTTP, as a browser's requests: every page and API call refused
//! without a session, sign-in (wrong password, right password with the cookie's flags),
//! signed-in pages and the live feed, CSRF on writes, sign-out ending the session, and the
//! limit on failed sign-ins. (Rendering and live updates in a real browser: the browser test.)

use anyhow::{bail, Context, Result};
use dockflare_testsupport::Master;
use reqwest::{header, redirect, StatusCode};
use std::time::Duration;

const PASSWORD: &str = "a long enough password";

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().redirect(redirect::Policy::none()).timeout(Duration::from_secs(20)).build()?)
}

async fn sign_in(client: &reqwest::Client, base: &str, user: &str, password: &str) -> Result<reqwest::Response> {
    Ok(client.post(format!("{base}/login")).form(&[("user", user), ("password", password)]).send().await?)
}

fn session_cookie(response: &reqwest::Response) -> Result<String> {
    let set = response.headers().get(header::SET_COOKIE).context("no Set-Cookie")?.to_str()?.to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(flag), "the session cookie lacks {flag}: {set}");
    }
    Ok(set.split(';').next().context("cookie")?.to_string())
}

fn csrf_of(page: &str) -> Result<String> {
    let start = page.find("name=\"csrf\" value=\"").context("no CSRF field in the page")? + 19;
    Ok(page[start..].split('"').next().context("csrf")?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_needs_a_session_and_guards_it() -> Result<()> {
    let master = Master::sqlite().await?;
    master.set_ui_password("olivia", "operator", PASSWORD)?;
    let base = format!("http://{}", master.web_addr()?);
    let client = client()?;

    // Without a session: pages send to the sign-in page, the API answers 401, nothing else leaks.
    for path in ["/", "/routes", "/agents", "/agents/x", "/diagnostics", "/nowhere"] {
        let response = client.get(format!("{base}{path}")).send().await?;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()), Some("/login"), "{path}");
    }
    for path in ["/api/live", "/api/session"] {
        assert_eq!(client.get(format!("{base}{path}")).send().await?.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let forged = client.get(format!("{base}/")).header(header::COOKIE, "dockflare-session=forged").send().await?;
    assert_eq!(forged.status(), StatusCode::SEE_OTHER, "a made-up cookie is no session");
    let login = client.get(format!("{base}/login")).send().await?;
    assert_eq!(login.status(), StatusCode::OK);
    let csp = login.headers().get(header::CONTENT_SECURITY_POLICY).context("CSP")?.to_str()?.to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");

    // A wrong password, then the right one.
    assert_eq!(sign_in(&client, &base, "olivia", "wrong password!!").await?.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&client, &base, "nobody", PASSWORD).await?.status(), StatusCode::UNAUTHORIZED);
    let signed = sign_in(&client, &base, "olivia", PASSWORD).await?;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&signed)?;

    let page = client.get(format!("{base}/routes")).header(header::COOKIE, &cookie).send().await?;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await?;
    assert!(page.contains("olivia (operator)") && page.contains("/assets/app.js"), "{page}");
    let csrf = csrf_of(&page)?;
    let session: serde_json::Value =
        client.get(format!("{base}/api/session")).header(header::COOKIE, &cookie).send().await?.json().await?;
    assert_eq!(session["role"], "operator");
    assert_eq!(client.get(format!("{base}/assets/app.js")).send().await?.status(), StatusCode::OK);

    // The live feed: a snapshot, then `synced`.
    let mut live = client.get(format!("{base}/api/live")).header(header::COOKIE, &cookie).send().await?;
    assert_eq!(live.status(), StatusCode::OK);
    assert!(live
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream")));
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while !text.contains("event: synced") {
            match live.chunk().await? {
                Some(chunk) => text.push_str(&String::from_utf8_lossy(&chunk)),
                None => bail!("the feed ended: {text}"),
            }
        }
        Ok(())
    })
    .await;
    read.context("no `synced` within 20 s")??;
    drop(live);

    // Writes need the CSRF token: sign-out without it is refused, with it the session ends.
    let refused =
        client.post(format!("{base}/logout")).header(header::COOKIE, &cookie).form(&[("csrf", "wrong")]).send().await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(client.get(format!("{base}/")).header(header::COOKIE, &cookie).send().await?.status(), StatusCode::OK);
    let out = client
        .post(format!("{base}/logout"))
        .header(header::COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await?;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = out.headers().get(header::SET_COOKIE).context("cleared cookie")?.to_str()?.to_string();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        client.get(format!("{base}/")).header(header::COOKIE, &cookie).send().await?.status(),
        StatusCode::SEE_OTHER
    );

    // Failed sign-ins are limited per source, and logged.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(sign_in(&client, &base, "olivia", "not the password").await?.status());
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "no rate limit after 7 failures: {statuses:?}");
    let limited = sign_in(&client, &base, "olivia", PASSWORD).await?;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(limited.headers().contains_key(header::RETRY_AFTER));
    assert!(master.logs_text().contains("Dashboard sign-in failed."));
    // The password is in no log line.
    assert!(!master.logs_text().contains(PASSWORD));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_dashboard_is_served_over_tls_with_secure_cookies() -> Result<()> {
    let master = Master::start(None, &["--web-listen", "0.0.0.0:0"]).await?;
    master.set_ui_password("tess", "viewer", PASSWORD)?;
    let port = master.web_addr()?.port();
    let ca = reqwest::Certificate::from_pem(master.ca_pem()?.as_bytes())?;
    let client = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(20))
        .build()?;
    let base = format!("https://localhost:{port}");
    let signed = sign_in(&client, &base, "tess", PASSWORD).await?;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let set = signed.headers().get(header::SET_COOKIE).context("cookie")?.to_str()?.to_string();
    assert!(set.starts_with("__Host-dockflare-session=") && set.contains("Secure"), "{set}");
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    assert!(plain.get(format!("http://localhost:{port}/login")).send().await.is_err(), "no plain HTTP beyond loopback");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dashboard_answer_carries_a_tunnel_token_or_a_password() -> Result<()> {
    use dockflare_testsupport::{enroll_agent, labelled, route_labels};
    let master = Master::sqlite().await?;
    master.set_ui_password("ada", "admin", PASSWORD)?;
    let mut agent = enroll_agent(&master, "token-holder").await?;
    agent.connect(&master).await?;
    agent.start(labelled("app", &route_labels("app.example.test", "http://app:80"))).await?;
    // The master hands the agent its tunnel token (start_tunnel): that is the secret to look for.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let tokens = loop {
        let tokens = agent.tunnel_tokens();
        if !tokens.is_empty() {
            break tokens;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no start_tunnel within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let base = format!("http://{}", master.web_addr()?);
    let client = client()?;
    let cookie = session_cookie(&sign_in(&client, &base, "ada", PASSWORD).await?)?;
    let mut answers = Vec::new();
    for path in [
        "/".to_string(),
        "/routes".into(),
        "/agents".into(),
        format!("/agents/{}", agent.id),
        "/diagnostics".into(),
        "/api/session".into(),
        "/api/overview".into(),
        format!("/api/agents/{}/activity", agent.id),
        "/assets/app.js".into(),
    ] {
        let response = client.get(format!("{base}{path}")).header(header::COOKIE, &cookie).send().await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        answers.push((path, response.text().await?));
    }
    // The live feed's snapshot, up to `synced`.
    let mut live = client.get(format!("{base}/api/live")).header(header::COOKIE, &cookie).send().await?;
    let mut feed = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !feed.contains("event: synced") {
            match live.chunk().await? {
                Some(chunk) => feed.push_str(&String::from_utf8_lossy(&chunk)),
                None => bail!("the feed ended"),
            }
        }
        Ok(())
    })
    .await
    .context("no `synced` within 20 s")??;
    assert!(feed.contains("app.example.test"), "the feed shows the route");
    answers.push(("/api/live".into(), feed));
    for (path, body) in &answers {
        for token in &tokens {
            assert!(!body.contains(token.as_str()), "{path} carries the tunnel token");
        }
        assert!(!body.contains(PASSWORD), "{path} carries the password");
        assert!(!body.contains("$argon2"), "{path} carries a password hash");
    }
    Ok(())
}

//! `dashboard_bench`: the web dashboard with many routes in a real headless Chromium, beside
//! a baseline measured in the same run — the same routes as one static, server-rendered HTML
//! table with no script. It prints, for both: first contentful paint, the time until every
//! route is there (dashboard: the live feed's snapshot received and the routes page drawn;
//! baseline: the load event), and the time a search takes to show its result; plus what the
//! dashboard's page, script and style sheet weigh.
//!
//! cargo run --release -p dockflare-bench --bin dashboard_bench -- --routes 10000

use anyhow::{bail, Context, Result};
use clap::Parser;
use dockflare_testsupport::browser::fantoccini::Locator;
use dockflare_testsupport::browser::Browser;
use dockflare_testsupport::{enroll_agent, labelled, route_labels, Master};
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "The dashboard with many routes in headless Chromium, beside a static HTML baseline.")]
struct Args {
    /// Routes (containers of one simulated agent, one route each).
    #[arg(long, default_value_t = 10_000)]
    routes: usize,
    /// Runs of each measurement (the median is printed).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const PASSWORD: &str = "dashboard benchmark password";
const WAIT: Duration = Duration::from_secs(60);

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn number(browser: &fantoccini_client::Client, script: &str) -> Result<f64> {
    let value = browser.execute(script, vec![]).await?;
    value.as_f64().with_context(|| format!("{script} gave {value}"))
}

mod fantoccini_client {
    pub use dockflare_testsupport::browser::fantoccini::Client;
}

async fn wait_until(browser: &fantoccini_client::Client, script: &str) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        if browser.execute(&format!("return ({script});"), vec![]).await? == Value::Bool(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let count = browser.execute("return (document.getElementById('route-count') || {}).textContent || document.body.innerText.slice(0, 300);", vec![]).await?;
            bail!("not true within {WAIT:?}: {script} (the page says {count})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long until the search's result is drawn (two animation frames after the input).
const SEARCH: &str =
    "const done = arguments[arguments.length - 1]; const input = document.getElementById(arguments[0]);\
    const t0 = performance.now(); input.value = arguments[1]; input.dispatchEvent(new Event('input'));\
    requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));";

const FCP: &str = "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : -1;";

fn static_table(routes: usize) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>baseline</title></head><body>\
         <input id=q type=search><table id=routes><thead><tr><th>Hostname</th><th>Service</th><th>Status</th></tr></thead><tbody>",
    );
    for i in 0..routes {
        html.push_str(&format!("<tr><td>r{i}.example.test</td><td>http://origin:80</td><td>active</td></tr>"));
    }
    html.push_str(
        "</tbody></table><script>document.getElementById('q').addEventListener('input', e => {\
         const q = e.target.value; for (const tr of document.querySelectorAll('#routes tbody tr'))\
         tr.hidden = !tr.textContent.includes(q); });</script></body></html>",
    );
    html
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cap = (args.routes + 10).to_string();
    let master = Master::start(None, &["--max-routes-per-agent", &cap]).await?;
    master.set_ui_password("bench", "viewer", PASSWORD)?;
    let mut agent = enroll_agent(&master, "bench").await?;
    agent.connect(&master).await?;
    let containers = (0..args.routes)
        .map(|i| labelled(&format!("c{i}"), &route_labels(&format!("r{i}.example.test"), "http://origin:80")))
        .collect();
    let started = Instant::now();
    agent.report(containers).await?;
    let base = format!("http://{}", master.web_addr()?);
    let browser = Browser::start(1280, 900).await?;
    let client = &browser.client;
    client.goto(&format!("{base}/login")).await?;
    client.find(Locator::Css("input[name=user]")).await?.send_keys("bench").await?;
    client.find(Locator::Css("input[name=password]")).await?.send_keys(PASSWORD).await?;
    client.find(Locator::Css("form button[type=submit]")).await?.click().await?;
    // Wait until the feed holds every route (the reconciler and the feed take a moment).
    let all = format!("{} of {}", args.routes, args.routes);
    client.goto(&format!("{base}/routes")).await?;
    wait_until(client, &format!("(document.getElementById('route-count') || {{}}).textContent === '{all}'")).await?;
    eprintln!("{} routes in the feed after {:.1} s", args.routes, started.elapsed().as_secs_f64());

    let (mut fcp, mut ready, mut search) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        client.goto(&format!("{base}/routes")).await?;
        wait_until(
            client,
            &format!("!!window.dockflareRenderedAt && document.getElementById('route-count').textContent === '{all}'"),
        )
        .await?;
        fcp.push(number(client, FCP).await?);
        ready.push(number(client, "return window.dockflareRenderedAt;").await?);
        let took =
            client.execute_async(SEARCH, vec!["route-search".into(), format!("r{}.", args.routes / 2).into()]).await?;
        search.push(took.as_f64().context("search time")?);
    }
    let sizes: Vec<(String, f64)> = {
        let entries = client
            .execute("return performance.getEntriesByType('resource').map(e => [e.name, e.encodedBodySize]);", vec![])
            .await?;
        let mut sizes = vec![(
            "page".to_string(),
            number(client, "return performance.getEntriesByType('navigation')[0].encodedBodySize;").await?,
        )];
        for entry in entries.as_array().into_iter().flatten() {
            if let (Some(name), Some(size)) = (entry[0].as_str(), entry[1].as_f64()) {
                if name.contains("/assets/") {
                    sizes.push((name.rsplit('/').next().unwrap_or(name).to_string(), size));
                }
            }
        }
        sizes
    };

    let file = tempfile::Builder::new().suffix(".html").tempfile()?;
    std::fs::write(file.path(), static_table(args.routes))?;
    let url = format!("file://{}", file.path().display());
    let (mut base_fcp, mut base_load, mut base_search) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        client.goto(&url).await?;
        base_fcp.push(number(client, FCP).await?);
        base_load.push(number(client, "return performance.getEntriesByType('navigation')[0].loadEventEnd;").await?);
        let took = client.execute_async(SEARCH, vec!["q".into(), format!("r{}.", args.routes / 2).into()]).await?;
        base_search.push(took.as_f64().context("search time")?);
    }

    println!("dashboard_bench: {} routes, median of {} runs, headless Chromium, times in ms", args.routes, args.runs);
    println!("{:<44} {:>12} {:>12}", "", "dashboard", "static HTML");
    println!("{:<44} {:>12.0} {:>12.0}", "first contentful paint", median(fcp), median(base_fcp));
    println!("{:<44} {:>12.0} {:>12.0}", "every route there (snapshot drawn / load)", median(ready), median(base_load));
    println!("{:<44} {:>12.0} {:>12.0}", "search to result drawn", median(search), median(base_search));
    let total: f64 = sizes.iter().map(|(_, size)| size).sum();
    let listed: Vec<String> = sizes.iter().map(|(name, size)| format!("{name} {:.1} KiB", size / 1024.0)).collect();
    println!("dashboard transfer (uncompressed): {:.1} KiB: {}", total / 1024.0, listed.join(", "));
    Ok(())
}

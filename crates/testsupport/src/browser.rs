//! A real headless Chromium for browser tests, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, installed by deploy/test.sh): [`Browser::start`] runs chromedriver on a
//! free port and opens a session; it fails loudly when either program is missing.

use anyhow::{bail, Context, Result};
use fantoccini::{Client, ClientBuilder};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The programs, overridable for other systems.
fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// A chromedriver process and one browser session on it (ended on drop).
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` × `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Result<Browser> {
        let driver_bin = program("DOCKFLARE_CHROMEDRIVER", "chromedriver");
        let chromium = program("DOCKFLARE_CHROMIUM", "/usr/bin/chromium");
        if !std::path::Path::new(&chromium).exists() {
            bail!("browser tests need Chromium at {chromium} (apt-get install chromium chromium-driver, or set DOCKFLARE_CHROMIUM)");
        }
        let port = crate::free_port()?;
        let mut driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("browser tests need chromedriver ({driver_bin}): apt-get install chromium-driver")
            })?;
        let url = format!("http://127.0.0.1:{port}");
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}")],
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => bail!("capabilities"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::new(hyper_util_connector()).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = driver.try_wait() {
                        bail!("chromedriver exited ({status}) before a session started: {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => bail!("no browser session within 20 s: {error}"),
            }
        };
        Ok(Browser { client, driver })
    }
}

fn hyper_util_connector() -> hyper_util::client::legacy::connect::HttpConnector {
    hyper_util::client::legacy::connect::HttpConnector::new()
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
pub use fantoccini;

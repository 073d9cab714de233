//! The real Docker engine through its CLI, names unique to a run, and clean-up on drop.

use anyhow::{bail, Context, Result};
use std::process::Command;

/// Runs the docker CLI against the real engine; stdout on success.
pub fn docker(args: &[&str]) -> Result<String> {
    let output = Command::new("docker").args(args).output().context("running the docker CLI")?;
    if !output.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Fails loudly when no Docker engine answers, or the test images are missing.
pub fn require_docker() {
    if let Err(error) = docker(&["info", "--format", "{{.ServerVersion}}"]) {
        panic!("these tests need a Docker engine: {error}. Run deploy/test.sh, which starts dockerd and builds the test images.");
    }
    for image in ["dockflare-test/origin:latest", "dockflare-test/connector:latest"] {
        if docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_err() {
            panic!("test image {image} is missing: run deploy/images.sh (deploy/test.sh does).");
        }
    }
}

/// A unique suffix for names in one test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Removes containers, services and networks whose names are given, on drop.
#[derive(Default)]
pub struct DockerCleanup {
    pub containers: Vec<String>,
    pub services: Vec<String>,
    pub networks: Vec<String>,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for service in &self.services {
            let _ = docker(&["service", "rm", service]);
        }
        for container in &self.containers {
            let _ = docker(&["rm", "-f", container]);
        }
        for network in &self.networks {
            let _ = docker(&["network", "rm", network]);
        }
    }
}

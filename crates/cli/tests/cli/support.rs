//! Running the CLI: an isolated HOME (so the operator's own config is never read), no
//! DOCKFLARE_* variables but those a test sets, a deadline per run.

use anyhow::{ensure, Context, Result};
use dockflare_testsupport::{FakeAgent, Master};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Longest one CLI run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// The binary under test (cargo builds it for this package's integration tests).
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_dockflare")
}

/// The CLI with an empty HOME as its working directory.
pub struct Cli {
    pub home: tempfile::TempDir,
    env: Vec<(String, OsString)>,
}

/// What one run printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout of a run that must have succeeded.
    pub fn ok(&self) -> Result<&str> {
        ensure!(self.code == 0, "dockflare exited {}:\nstdout: {}\nstderr: {}", self.code, self.stdout, self.stderr);
        Ok(&self.stdout)
    }

    /// Stdout of a successful run, parsed as one JSON document.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(self.ok()?).with_context(|| format!("stdout is not JSON:\n{}", self.stdout))
    }

    /// Stderr of a run that must have failed with `code`.
    pub fn failed_with(&self, code: i32) -> Result<&str> {
        ensure!(
            self.code == code,
            "dockflare exited {} instead of {code}:\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(&self.stderr)
    }
}

impl Cli {
    pub fn new() -> Result<Cli> {
        Ok(Cli { home: tempfile::tempdir()?, env: Vec::new() })
    }

    /// Sets an environment variable for every run.
    pub fn env(mut self, name: &str, value: impl Into<OsString>) -> Cli {
        self.env.push((name.to_string(), value.into()));
        self
    }

    /// `~/.config/dockflare` of this HOME.
    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join(".config").join("dockflare")
    }

    /// The command, ready to spawn.
    pub fn command<I, S>(&self, args: I) -> tokio::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = tokio::process::Command::new(binary());
        command.env_clear().env("HOME", self.home.path()).current_dir(self.home.path());
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.args(args).stdin(Stdio::null()).kill_on_drop(true);
        command
    }

    /// Runs `dockflare ARGS…` to its end.
    pub async fn run<I, S>(&self, args: I) -> Result<Run>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let output = tokio::time::timeout(RUN_TIMEOUT, self.command(&args).output())
            .await
            .with_context(|| format!("dockflare {args:?} did not finish within {RUN_TIMEOUT:?}"))?
            .context("running dockflare")?;
        Ok(Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `dockflare ARGS…` on a terminal (a pseudo-terminal from util-linux `script`), with
    /// `extra_env`; what the terminal showed.
    pub async fn run_on_terminal(&self, args: &[OsString], extra_env: &[(&str, &str)]) -> Result<Run> {
        let quote = |arg: &std::ffi::OsStr| format!("'{}'", arg.to_string_lossy().replace('\'', r"'\''"));
        let line: Vec<String> =
            std::iter::once(quote(binary().as_ref())).chain(args.iter().map(|arg| quote(arg))).collect();
        let mut command = self.command(Vec::<OsString>::new());
        let command = command.as_std_mut();
        let mut script = tokio::process::Command::new("script");
        script.args(["-qec", &line.join(" "), "/dev/null"]).env_clear().current_dir(self.home.path());
        script.envs(command.get_envs().filter_map(|(k, v)| v.map(|v| (k.to_os_string(), v.to_os_string()))));
        script.envs(extra_env.iter().copied()).stdin(Stdio::null()).kill_on_drop(true);
        let output = tokio::time::timeout(RUN_TIMEOUT, script.output())
            .await
            .context("dockflare on a terminal did not finish in time")?
            .context("running `script` (util-linux) for a terminal")?;
        Ok(Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `dockflare ARGS…` with the master's own admin identity given as flags.
    pub async fn as_admin(&self, master: &Master, args: &[&str]) -> Result<Run> {
        self.run(
            identity_flags(master, &master.admin_cert_path(), &master.admin_key_path()).iter().chain(&strings(args)),
        )
        .await
    }

    /// Runs `dockflare ARGS…` as the identity in `cert` and `key`.
    pub async fn as_identity(&self, master: &Master, cert: &Path, key: &Path, args: &[&str]) -> Result<Run> {
        self.run(identity_flags(master, cert, key).iter().chain(&strings(args))).await
    }
}

fn strings(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// `--master URL --ca-cert … --cert CERT --key KEY` for `master`.
pub fn identity_flags(master: &Master, cert: &Path, key: &Path) -> Vec<OsString> {
    flags(&master.url(), &master.ca_cert_path(), cert, key)
}

/// `--master URL --ca-cert CA --cert CERT --key KEY`.
pub fn flags(url: &str, ca: &Path, cert: &Path, key: &Path) -> Vec<OsString> {
    let mut flags: Vec<OsString> = vec!["--master".into(), url.into(), "--ca-cert".into(), ca.into()];
    flags.extend(["--cert".into(), cert.into(), "--key".into(), key.into()]);
    flags
}

/// The file's permission bits.
pub fn mode(path: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path).with_context(|| format!("{} is missing", path.display()))?.permissions().mode() & 0o777)
}

/// An agent enrolled in tunnel group "edge", so that manual routes for that group have a tunnel
/// something serves (the master refuses them otherwise). Keep it for the test's duration.
pub async fn edge_member(master: &Master) -> Result<FakeAgent> {
    FakeAgent::join(master, &master.join_token_in_group(1, "edge").await?, "edge-1", "edge").await
}

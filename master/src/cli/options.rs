//! From flags to [`ServeOptions`]: the PKI's names and paths, the Cloudflare mode (API token,
//! offline emulator), limits and protocol settings; secrets read from private files.

use super::*;
use dockflare_master::bootstrap_token::BootstrapToken;
use secrecy::ExposeSecret;

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn pki_options(common: &CommonArgs, serve: &ServeArgs) -> PkiOptions {
    let server_names = if serve.server_names.is_empty() {
        let mut names: Vec<String> = host_name().into_iter().collect();
        for name in ["localhost", "127.0.0.1", "::1"] {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    } else {
        serve.server_names.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect()
    };
    PkiOptions {
        dir: common.data_dir.join("pki"),
        server_names,
        ca_cert: serve.ca_cert.clone(),
        ca_key: serve.ca_key.clone(),
        server_cert: serve.tls_cert.clone(),
        server_key: serve.tls_key.clone(),
    }
}

pub fn serve_options(cli: &Cli, open_files_limit: Option<u64>) -> Result<ServeOptions> {
    let serve = &cli.serve;
    let limits = &serve.limits;
    if serve.heartbeat_timeout <= serve.heartbeat_interval {
        bail!(
            "--heartbeat-timeout ({:?}) must be longer than --heartbeat-interval ({:?})",
            serve.heartbeat_timeout,
            serve.heartbeat_interval
        );
    }
    if serve.agent_cert_ttl < Duration::from_secs(10) {
        bail!("--agent-cert-ttl must be at least 10s");
    }
    // An empty variable (compose's `${CF_API_TOKEN:-}`) means unset.
    let cf_api_token = match &serve.cf_api_token_file {
        Some(path) => Some(read_secret_file(path)?),
        None => serve.cf_api_token.clone().filter(|token| !token.expose_secret().trim().is_empty()),
    };
    let cf_account_id = serve.cf_account_id.clone().filter(|id| !id.trim().is_empty());
    let api = match (&cf_api_token, &cf_account_id) {
        (Some(token), Some(account_id)) => Some(CloudflareSettings {
            api_url: serve.cf_api_url.clone(),
            token: token.clone(),
            account_id: account_id.trim().to_string(),
            requests_per_5_minutes: serve.cf_requests_per_5min.max(1),
        }),
        (Some(_), None) => bail!("CF_API_TOKEN is set but CF_ACCOUNT_ID is not: both are needed to manage tunnels"),
        (None, _) => None,
    };
    Ok(ServeOptions {
        listen: serve.listen,
        data_dir: cli.common.data_dir.clone(),
        database_url: cli.common.database_url.clone(),
        pki: pki_options(&cli.common, serve),
        settings: ProtocolSettings {
            heartbeat_interval: serve.heartbeat_interval,
            heartbeat_timeout: serve.heartbeat_timeout,
            agent_certificate_lifetime: serve.agent_cert_ttl,
            command_send_timeout: serve.command_send_timeout,
            event_retention: serve.event_retention,
        },
        cloudflare: CloudflareOptions {
            api,
            offline_zones: serve.offline_zones.iter().map(|z| z.trim().to_string()).filter(|z| !z.is_empty()).collect(),
            offline_emulator_listen: serve.offline_emulator_listen,
            offline_emulator_url: serve.offline_emulator_url.clone().filter(|u| !u.trim().is_empty()),
            reconcile: ReconcileSettings {
                grace: Duration::from_secs(serve.grace_period_seconds),
                drift_interval: serve.reconcile_interval,
                default_zone_id: serve.cf_zone_id.clone().filter(|z| !z.trim().is_empty()),
                tunnel_prefix: serve.tunnel_prefix.clone(),
                max_routes_per_agent: serve.max_routes_per_agent.max(1),
                ..ReconcileSettings::default()
            },
        },
        connections: ConnectionLimits {
            max_connections: limits
                .max_connections
                .unwrap_or_else(|| default_max_connections(open_files_limit.unwrap_or(4096))),
            max_connections_per_source: limits.max_connections_per_source,
            hello_timeout: limits.tls_hello_timeout,
            handshake_timeout: limits.tls_handshake_timeout,
            idle_timeout: limits.idle_timeout.max(Duration::from_millis(300)),
        },
        calls: CallLimits {
            max_agent_message: limits.max_agent_message,
            enroll_failures_per_minute: limits.enroll_failures_per_minute,
            agent_event_rate: u32::try_from(limits.agent_event_rate).unwrap_or(u32::MAX),
            agent_event_burst: u32::try_from(limits.agent_event_burst).unwrap_or(u32::MAX),
            max_unauthenticated_message: limits.max_unauthenticated_message,
            max_unauthenticated_calls: limits.max_unauthenticated_calls,
            max_unauthenticated_calls_per_source: limits.max_unauthenticated_calls_per_source,
            max_concurrent_registrations: limits.max_concurrent_registrations.max(1),
        },
        metrics_listen: serve.metrics_listen.0,
        bootstrap_token: serve.bootstrap_join_token_file.clone().map(|path| BootstrapToken {
            path,
            uses: serve.bootstrap_join_token_uses,
            ttl: serve.bootstrap_join_token_ttl,
        }),
        test_fault_task: serve.test_fault_task.clone(),
        watch_backlog: serve.watch_backlog.max(1),
        access_policies: serve.access_policies.clone(),
        web_listen: serve.web_listen.0,
    })
}

/// Reads a secret from a file (trailing newline dropped); the file should be private.
fn read_secret_file(path: &std::path::Path) -> Result<SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value = text.trim();
    if value.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(SecretString::from(value.to_string()))
}

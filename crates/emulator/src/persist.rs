//! The emulated account on disk ([`super::EmulatorConfig::state_file`]): what an offline master
//! keeps across restarts so that its tunnels (ids, secrets, hence tokens), their configurations,
//! the zones (ids) with their DNS records, and Access applications, policies, tags and identity
//! providers survive.
//! Connectors (`clients`, `connector_seen`) are not saved: they register again.
//!
//! Owns the file format ([`SavedAccount`], versioned), the pure conversions between it and the
//! in-memory data, loading (a missing file is an empty start; an unreadable or invalid one is an
//! error — never overwritten), and saving: atomically, mode 0600 (it holds tunnel secrets),
//! after every successful state-changing request (the [`save_after_change`] middleware), one
//! write at a time and never an older snapshot over a newer one.

use super::state::{now, Data, TunnelEntry, ZoneEntry};
use super::{Emulator, INSPECT_PREFIX};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use dockflare_cloudflare::types::{DnsRecord, TunnelConfiguration, Zone};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The format version this code writes and reads.
pub(super) const FORMAT_VERSION: u32 = 1;

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the emulator state file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("the emulator state file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "the emulator state file {path} holds account {saved}, but the emulator is configured for account {configured}"
    )]
    AccountMismatch { path: PathBuf, saved: String, configured: String },
    #[error("cannot write the emulator state file {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// Why saved data cannot become the account (the caller names the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum RestoreError {
    #[error("format version {0}; this master reads version {FORMAT_VERSION}")]
    Version(u32),
    #[error("it holds account {saved}, but the emulator is configured for account {configured}")]
    AccountMismatch { saved: String, configured: String },
    #[error("tunnel {tunnel}: the secret is not base64: {reason}")]
    Secret { tunnel: String, reason: String },
}

/// The saved account (the whole file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedAccount {
    pub version: u32,
    pub account_id: String,
    #[serde(default)]
    pub tunnels: Vec<SavedTunnel>,
    #[serde(default)]
    pub zones: Vec<SavedZone>,
    #[serde(default)]
    pub access_apps: Vec<Map<String, Value>>,
    #[serde(default)]
    pub access_policies: Vec<Map<String, Value>>,
    #[serde(default)]
    pub access_tags: Vec<Map<String, Value>>,
    /// `None` in files written before identity providers were kept: the account then gets the
    /// One-time PIN a fresh one has.
    #[serde(default)]
    pub identity_providers: Option<Vec<Map<String, Value>>>,
    /// The public URL written into the tunnel tokens issued ([`super::EmulatorConfig::public_url`]):
    /// the next start keeps it, or knows that the tokens its connectors hold point elsewhere.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// A tunnel, soft-deleted ones included (names stay reserved as in the API).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedTunnel {
    pub id: String,
    pub name: String,
    pub config_src: String,
    /// Standard base64 of the tunnel secret.
    pub secret: String,
    pub created_at: String,
    #[serde(default)]
    pub deleted_at: Option<String>,
    /// Whether a connector ever connected (a restored tunnel is then `down`, not `inactive`).
    #[serde(default)]
    pub ever_connected: bool,
    #[serde(default)]
    pub configuration: Option<TunnelConfiguration>,
}

impl std::fmt::Debug for SavedTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedTunnel")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("config_src", &self.config_src)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("deleted_at", &self.deleted_at)
            .field("ever_connected", &self.ever_connected)
            .field("configuration", &self.configuration)
            .finish()
    }
}

/// A zone with its DNS records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedZone {
    pub zone: Zone,
    #[serde(default)]
    pub records: Vec<DnsRecord>,
}

/// The account as saved (connectors left out).
pub(super) fn to_saved(data: &Data) -> SavedAccount {
    SavedAccount {
        version: FORMAT_VERSION,
        account_id: data.account_id.clone(),
        tunnels: data
            .tunnels
            .iter()
            .map(|t| SavedTunnel {
                id: t.id.clone(),
                name: t.name.clone(),
                config_src: t.config_src.clone(),
                secret: STANDARD.encode(&t.secret),
                created_at: t.created_at.clone(),
                deleted_at: t.deleted_at.clone(),
                ever_connected: t.ever_connected,
                configuration: t.configuration.clone(),
            })
            .collect(),
        zones: data.zones.iter().map(|z| SavedZone { zone: z.zone.clone(), records: z.records.clone() }).collect(),
        access_apps: data.access_apps.clone(),
        access_policies: data.access_policies.clone(),
        access_tags: data.access_tags.clone(),
        identity_providers: Some(data.identity_providers.clone()),
        public_url: data.public_url.clone(),
    }
}

/// The public URL the account at `path` last issued tokens with; `None` when there is no file,
/// it names none (written before it was recorded), or it cannot be read (then
/// [`super::Emulator::open`] reports why).
pub fn saved_public_url(path: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct PublicUrl {
        #[serde(default)]
        public_url: Option<String>,
    }
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<PublicUrl>(&bytes).ok()?.public_url
}

/// The account from `saved`: the saved zones keep their ids; configured `zone_names` missing
/// from it are added (fresh ids). No connectors: they register again.
pub(super) fn restore(saved: SavedAccount, account_id: &str, zone_names: &[String]) -> Result<Data, RestoreError> {
    if saved.version != FORMAT_VERSION {
        return Err(RestoreError::Version(saved.version));
    }
    if !saved.account_id.eq_ignore_ascii_case(account_id) {
        return Err(RestoreError::AccountMismatch { saved: saved.account_id, configured: account_id.to_string() });
    }
    let missing: Vec<String> = zone_names
        .iter()
        .filter(|name| {
            let name = name.trim().trim_end_matches('.');
            !saved.zones.iter().any(|z| z.zone.name.eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect();
    // The configured zones that are new, built as at a first start.
    let mut data = Data::new(account_id, &missing);
    let added = std::mem::take(&mut data.zones);
    data.zones = saved.zones.into_iter().map(|z| ZoneEntry { zone: z.zone, records: z.records }).collect();
    data.zones.extend(added);
    data.tunnels = saved
        .tunnels
        .into_iter()
        .map(|t| {
            let secret = STANDARD
                .decode(t.secret.as_bytes())
                .map_err(|e| RestoreError::Secret { tunnel: t.id.clone(), reason: e.to_string() })?;
            let inactive_since = if t.ever_connected { now() } else { t.created_at.clone() };
            Ok(TunnelEntry {
                id: t.id,
                name: t.name,
                config_src: t.config_src,
                secret,
                created_at: t.created_at,
                deleted_at: t.deleted_at,
                conns_active_at: None,
                conns_inactive_at: Some(inactive_since),
                ever_connected: t.ever_connected,
                clients: Vec::new(),
                configuration: t.configuration,
            })
        })
        .collect::<Result<_, RestoreError>>()?;
    data.access_apps = saved.access_apps;
    data.access_policies = saved.access_policies;
    data.access_tags = saved.access_tags;
    if let Some(identity_providers) = saved.identity_providers {
        data.identity_providers = identity_providers;
    }
    Ok(data)
}

/// The saved account at `path`; `None` when there is no file.
pub(super) fn load(path: &Path) -> Result<Option<SavedAccount>, StateFileError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(StateFileError::Unreadable { path: path.to_path_buf(), reason: error.to_string() }),
    };
    let invalid = |reason: String| StateFileError::Invalid { path: path.to_path_buf(), reason };
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    // The version first: a newer format is named as such, not as a parse error.
    let version = serde_json::from_slice::<Versioned>(&bytes).map_err(|e| invalid(e.to_string()))?.version;
    if version != FORMAT_VERSION {
        return Err(invalid(RestoreError::Version(version).to_string()));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| invalid(e.to_string()))
}

/// The file's contents for `account`.
pub(super) fn encode(account: &SavedAccount) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec_pretty(account)
}

/// Writes `contents` to `path`: atomically, mode 0600.
pub(super) fn save(path: &Path, contents: &[u8]) -> Result<(), StateFileError> {
    dockflare_common::secret_file::write_secret_file(path, contents)
        .map_err(|e| StateFileError::Write { path: path.to_path_buf(), reason: e.to_string() })
}

/// Saves the account now (blocking): the snapshot under the lock, the write outside it.
pub(super) fn save_data(path: &Path, data: &std::sync::Mutex<Data>) -> Result<(), StateFileError> {
    let bytes = encode(&to_saved(&super::lock(data)))
        .map_err(|e| StateFileError::Write { path: path.to_path_buf(), reason: e.to_string() })?;
    save(path, &bytes)
}

/// Where and in what order the account is saved.
pub(super) struct Saver {
    path: PathBuf,
    /// Saves asked for so far (one per state-changing request, counted after it was served).
    requested: AtomicU64,
    /// One write at a time; holds how many requests the last file written covers.
    turn: tokio::sync::Mutex<u64>,
}

impl Saver {
    pub fn new(path: PathBuf) -> Saver {
        Saver { path, requested: AtomicU64::new(0), turn: tokio::sync::Mutex::new(0) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether a request can change the saved account: not a read, and not the inspection API's
/// request log or faults (which are not saved).
pub(super) fn changes_account(method: &Method, path: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let traffic = [format!("{INSPECT_PREFIX}/requests"), format!("{INSPECT_PREFIX}/faults")];
    !traffic
        .iter()
        .any(|prefix| path.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// Middleware: after a successful state-changing request, saves the account (when a state file
/// is configured) before answering.
pub(super) async fn save_after_change(State(emulator): State<Emulator>, request: Request, next: Next) -> Response {
    let changes = emulator.inner.saver.is_some() && changes_account(request.method(), request.uri().path());
    let response = next.run(request).await;
    if changes && response.status().is_success() {
        emulator.save_state().await;
    }
    response
}

impl Emulator {
    /// Writes the state file with the account as it is now; failures are logged. Saves are
    /// serialized; one that a later snapshot already covers is skipped.
    pub(super) async fn save_state(&self) {
        let Some(saver) = self.inner.saver.clone() else { return };
        let wanted = saver.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let emulator = self.clone();
        // A task of its own: a request cancelled mid-save must not release the turn mid-write.
        let task = tokio::spawn(async move {
            let mut written = saver.turn.lock().await;
            if *written >= wanted {
                return;
            }
            // Every request counted up to here was served before the snapshot below.
            let covers = saver.requested.load(Ordering::SeqCst);
            let encoded = {
                let data = emulator.data();
                encode(&to_saved(&data))
            };
            let path = saver.path.clone();
            let result = match encoded {
                Ok(bytes) => tokio::task::spawn_blocking(move || save(&path, &bytes))
                    .await
                    .unwrap_or_else(|e| Err(StateFileError::Write { path: saver.path.clone(), reason: e.to_string() })),
                Err(e) => Err(StateFileError::Write { path: saver.path.clone(), reason: e.to_string() }),
            };
            match result {
                Ok(()) => *written = covers,
                Err(error) => tracing::warn!(
                    message = "Cannot save the emulated Cloudflare account; it is saved again at the next change.",
                    file = %saver.path.display(),
                    %error,
                ),
            }
        });
        if let Err(error) = task.await {
            tracing::warn!(message = "Saving the emulated Cloudflare account failed.", %error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockflare_cloudflare::types::{CreateTunnelRequest, IngressRule, TunnelConfig};
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

    fn zones(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// An account with a live and a deleted tunnel, a configuration, records and Access.
    fn account() -> Data {
        let mut data = Data::new(ACCOUNT, &zones(&["example.test", "other.test"]));
        let created = data
            .create_tunnel(CreateTunnelRequest {
                name: "dockflare-agent-a1".into(),
                config_src: Some("cloudflare".into()),
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("create: {e}"));
        let config = TunnelConfig {
            ingress: vec![
                IngressRule {
                    hostname: Some("app.example.test".into()),
                    service: "http://web:80".into(),
                    ..Default::default()
                },
                IngressRule { service: "http_status:404".into(), ..Default::default() },
            ],
            ..Default::default()
        };
        data.put_configuration(&created.tunnel.id, config).unwrap_or_else(|e| panic!("configure: {e}"));
        let record = json!({"type": "CNAME", "name": "app.example.test", "content": format!("{}.cfargotunnel.com", created.tunnel.id), "proxied": true, "comment": "dockflare:x"});
        data.seed_dns_record("example.test", record.as_object().unwrap_or(&Map::new()))
            .unwrap_or_else(|e| panic!("record: {e}"));
        let old = data
            .create_tunnel(CreateTunnelRequest { name: "old".into(), ..Default::default() })
            .unwrap_or_else(|e| panic!("create: {e}"));
        if let Some(entry) = data.tunnels.iter_mut().find(|t| t.id == old.tunnel.id) {
            entry.deleted_at = Some(now());
        }
        data.access_apps.push(json!({"id": "app-1", "name": "app"}).as_object().cloned().unwrap_or_default());
        data.access_policies.push(json!({"id": "pol-1"}).as_object().cloned().unwrap_or_default());
        data.access_tags.push(json!({"name": "dockflare"}).as_object().cloned().unwrap_or_default());
        data.identity_providers
            .push(json!({"id": "idp-2", "name": "GitHub", "type": "github"}).as_object().cloned().unwrap_or_default());
        data
    }

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    #[test]
    fn an_account_survives_a_round_trip_through_the_file() {
        let before = account();
        let dir = temp_dir();
        let path = dir.path().join("offline-cloudflare.json");
        save_data(&path, &std::sync::Mutex::new(account_clone(&before))).unwrap_or_else(|e| panic!("save: {e}"));
        let saved = load(&path).unwrap_or_else(|e| panic!("load: {e}")).unwrap_or_else(|| panic!("no file"));
        let after =
            restore(saved, ACCOUNT, &zones(&["example.test", "other.test"])).unwrap_or_else(|e| panic!("restore: {e}"));

        assert_eq!(after.account_id, ACCOUNT);
        assert_eq!(after.tunnels.len(), 2);
        for (b, a) in before.tunnels.iter().zip(&after.tunnels) {
            assert_eq!((&a.id, &a.name, &a.config_src, &a.secret), (&b.id, &b.name, &b.config_src, &b.secret));
            assert_eq!((&a.created_at, &a.deleted_at), (&b.created_at, &b.deleted_at));
            assert_eq!(a.token(ACCOUNT, Some("http://e")), b.token(ACCOUNT, Some("http://e")), "same token");
            assert_eq!(a.configuration, b.configuration);
            assert!(a.clients.is_empty());
        }
        assert!(after.tunnels[0].configuration.is_some());
        assert!(after.tunnels[1].deleted_at.is_some());
        let ids = |d: &Data| d.zones.iter().map(|z| (z.zone.clone(), z.records.clone())).collect::<Vec<_>>();
        assert_eq!(ids(&after), ids(&before), "zones keep their ids and records");
        assert_eq!(after.zones[0].records.len(), 1);
        assert_eq!(after.access_apps, before.access_apps);
        assert_eq!(after.access_policies, before.access_policies);
        assert_eq!(after.access_tags, before.access_tags);
        assert_eq!(after.identity_providers, before.identity_providers);
        assert_eq!(after.identity_providers.len(), 2);
        assert_eq!(to_saved(&after), to_saved(&before));
    }

    #[test]
    fn a_file_from_before_tags_and_identity_providers_loads() {
        let dir = temp_dir();
        let path = dir.path().join("offline-cloudflare.json");
        let old = json!({"version": 1, "account_id": ACCOUNT, "tunnels": [], "zones": [],
            "access_apps": [{"id": "app-1", "type": "self_hosted", "domain": "a.example.test", "policies": ["pol-1"]}],
            "access_policies": [{"id": "pol-1", "name": "p", "decision": "allow", "include": [{"everyone": {}}]}]});
        std::fs::write(&path, old.to_string()).unwrap_or_else(|e| panic!("write: {e}"));
        let saved = load(&path).unwrap_or_else(|e| panic!("load: {e}")).unwrap_or_else(|| panic!("no file"));
        let data = restore(saved, ACCOUNT, &[]).unwrap_or_else(|e| panic!("restore: {e}"));
        assert!(data.access_tags.is_empty());
        let kinds: Vec<Option<&Value>> = data.identity_providers.iter().map(|p| p.get("type")).collect();
        assert_eq!(kinds, [Some(&json!("onetimepin"))], "a fresh account's One-time PIN");
        assert_eq!(data.app_count("pol-1"), 1, "an old bare-id link still counts");
    }

    /// `Data` is not `Clone` (it holds a `Notify`); through the saved form.
    fn account_clone(data: &Data) -> Data {
        let names: Vec<String> = Vec::new();
        restore(to_saved(data), ACCOUNT, &names).unwrap_or_else(|e| panic!("restore: {e}"))
    }

    #[test]
    fn connectors_are_not_saved() {
        let mut data = account();
        let id = data.tunnels[0].id.clone();
        data.set_connectors(&id, true).unwrap_or_else(|e| panic!("connect: {e}"));
        let text = String::from_utf8(encode(&to_saved(&data)).unwrap_or_default()).unwrap_or_default();
        assert!(!text.contains("conns") && !text.contains("clients"), "{text}");
        let after = restore(to_saved(&data), ACCOUNT, &[]).unwrap_or_else(|e| panic!("restore: {e}"));
        assert!(after.tunnels[0].clients.is_empty());
        assert_eq!(after.tunnels[0].status(), "down", "it had a connector; it has none now");
        assert_eq!(after.tunnels[1].status(), "inactive");
    }

    #[test]
    fn configured_zones_missing_from_the_file_are_added() {
        let before = account();
        let after = restore(to_saved(&before), ACCOUNT, &zones(&["Example.Test.", "new.test"]))
            .unwrap_or_else(|e| panic!("restore: {e}"));
        let names: Vec<&str> = after.zones.iter().map(|z| z.zone.name.as_str()).collect();
        assert_eq!(names, ["example.test", "other.test", "new.test"]);
        assert_eq!(after.zones[0].zone.id, before.zones[0].zone.id);
        assert_eq!(after.zones[2].zone.account.id, ACCOUNT);
    }

    #[test]
    fn another_account_is_refused_naming_both() {
        let error = restore(to_saved(&account()), "ffffffffffffffffffffffffffffffff", &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains(ACCOUNT) && error.contains("ffffffffffffffffffffffffffffffff"), "{error}");
    }

    #[test]
    fn a_missing_file_is_a_fresh_start() {
        let dir = temp_dir();
        assert!(matches!(load(&dir.path().join("absent.json")), Ok(None)));
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = temp_dir();
        let path = dir.path().join("offline-cloudflare.json");
        for contents in ["{\"version\": 1, \"account_id\": ", "[]", "{\"version\": 99, \"account_id\": \"x\"}"] {
            std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write: {e}"));
            let error = load(&path).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(&path.display().to_string()), "{contents}: {error}");
        }
        let error = load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("format version 99"), "{error}");
        let unreadable = dir.path().join("a-directory");
        std::fs::create_dir(&unreadable).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let error = load(&unreadable).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("cannot read") && error.contains("a-directory"), "{error}");
    }

    #[test]
    fn the_file_is_owner_only() {
        let dir = temp_dir();
        let path = dir.path().join("offline-cloudflare.json");
        save_data(&path, &std::sync::Mutex::new(account())).unwrap_or_else(|e| panic!("save: {e}"));
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or_default();
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let saved = to_saved(&account());
        let text = format!("{saved:?}");
        assert!(!text.contains(&saved.tunnels[0].secret), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_change_over_http_is_saved_and_restored_by_open() {
        let dir = temp_dir();
        let path = dir.path().join("offline-cloudflare.json");
        let config = crate::EmulatorConfig { state_file: Some(path.clone()), ..Default::default() };
        let emulator = Emulator::open(config.clone()).unwrap_or_else(|e| panic!("open: {e}"));
        assert!(!emulator.restored());
        assert!(path.exists(), "written at once");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
        emulator.serve_in_background(listener);
        let http = reqwest::Client::new();
        let url = format!("{}/accounts/{ACCOUNT}/cfd_tunnel", emulator.base_url(addr));
        // Concurrent creations: the file ends with all of them (no older snapshot written last).
        let creations = (0..16).map(|n| {
            let request = http.post(&url).bearer_auth(emulator.api_token()).json(&json!({"name": format!("t{n}")}));
            async move { request.send().await.map(|r| r.status().as_u16()) }
        });
        for status in futures::future::join_all(creations).await {
            assert_eq!(status.unwrap_or_default(), 200);
        }
        let zone = emulator.zone_id("example.test").unwrap_or_default();
        let seeded = http
            .post(format!("http://{addr}{INSPECT_PREFIX}/zones/{zone}/dns_records"))
            .json(&json!({"type": "A", "name": "hand.example.test", "content": "192.0.2.1"}))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(seeded.unwrap_or_default(), 200);
        let refused = http.post(&url).bearer_auth(emulator.api_token()).json(&json!({"name": "t0"})).send().await;
        assert_eq!(refused.map(|r| r.status().as_u16()).unwrap_or_default(), 409);

        let saved = load(&path).unwrap_or_else(|e| panic!("load: {e}")).unwrap_or_else(|| panic!("no file"));
        assert_eq!(saved, to_saved(&emulator.data()), "the file is the account as it is");
        assert_eq!(saved.tunnels.len(), 16);
        let reopened = Emulator::open(config).unwrap_or_else(|e| panic!("reopen: {e}"));
        assert!(reopened.restored());
        let (before, after) = (emulator.snapshot(), reopened.snapshot());
        assert_eq!(
            after.tunnels.iter().map(|t| &t.id).collect::<Vec<_>>(),
            before.tunnels.iter().map(|t| &t.id).collect::<Vec<_>>()
        );
        assert_eq!(after.zones, before.zones);
        assert_eq!(after.dns_records, before.dns_records);
    }

    #[test]
    fn a_corrupt_file_is_left_alone_by_open() {
        let dir = temp_dir();
        let path = dir.path().join("offline-cloudflare.json");
        std::fs::write(&path, "not json").unwrap_or_else(|e| panic!("write: {e}"));
        let config = crate::EmulatorConfig { state_file: Some(path.clone()), ..Default::default() };
        let error = Emulator::open(config).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "not json");
    }

    #[test]
    fn only_state_changing_requests_save() {
        assert!(changes_account(&Method::POST, "/accounts/x/cfd_tunnel"));
        assert!(changes_account(&Method::DELETE, "/__emulator/dns_records/r"));
        assert!(changes_account(&Method::PUT, "/__emulator/tunnels/t/configuration"));
        assert!(!changes_account(&Method::GET, "/accounts/x/cfd_tunnel"));
        assert!(!changes_account(&Method::HEAD, "/zones"));
        assert!(!changes_account(&Method::POST, "/__emulator/faults"));
        assert!(!changes_account(&Method::DELETE, "/__emulator/requests"));
    }
}

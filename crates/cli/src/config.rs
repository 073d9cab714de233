//! Where the master and the identity come from, the way kubectl finds its context: flags, then
//! the environment, then the config file `dockflare login` wrote, then the local master's data
//! dir. The resolution itself ([`resolve`]) is a pure function of those layers; reading them
//! (environment, file) is [`load`].
//!
//! The master URL and the CA are each taken from the first layer that sets them; the client
//! certificate and its key are a pair, taken together from the first layer that sets either
//! (a layer that sets only one of them is an error, not a mix of two identities).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tonic::codegen::http::Uri;

pub const MASTER_ENV: &str = "DOCKFLARE_MASTER";
pub const CA_CERT_ENV: &str = "DOCKFLARE_CA_CERT";
pub const CERT_ENV: &str = "DOCKFLARE_CERT";
pub const KEY_ENV: &str = "DOCKFLARE_KEY";
pub const CONFIG_DIR_ENV: &str = "DOCKFLARE_CONFIG";
pub const DATA_DIR_ENV: &str = "DOCKFLARE_DATA_DIR";
/// The master's own default data dir (its `--data-dir`).
pub const DEFAULT_DATA_DIR: &str = "dockflare-data";
/// The master's default port (its `--listen 0.0.0.0:8443`).
pub const DEFAULT_PORT: u16 = 8443;
/// Where a master started with its defaults answers.
pub const DEFAULT_MASTER: &str = "https://localhost:8443";
/// The config file's name inside the config dir.
pub const CONFIG_FILE: &str = "config.toml";

/// What one layer says (any part may be missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub master: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flags,
    Env,
    /// The config file at this path.
    ConfigFile(PathBuf),
    /// The local master's data dir.
    DataDir(PathBuf),
}

/// The settings a layer can hold, to name them in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Master,
    CaCert,
    Cert,
    Key,
}

impl Field {
    fn flag(self) -> &'static str {
        match self {
            Field::Master => "--master",
            Field::CaCert => "--ca-cert",
            Field::Cert => "--cert",
            Field::Key => "--key",
        }
    }

    fn env(self) -> &'static str {
        match self {
            Field::Master => MASTER_ENV,
            Field::CaCert => CA_CERT_ENV,
            Field::Cert => CERT_ENV,
            Field::Key => KEY_ENV,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Field::Master => "master",
            Field::CaCert => "ca_cert",
            Field::Cert => "cert",
            Field::Key => "key",
        }
    }
}

impl Source {
    /// Where `field` was read, in the words of the layer: "--master", "DOCKFLARE_CERT",
    /// "`ca_cert` in /home/me/.config/dockflare/config.toml", "the data dir ./dockflare-data".
    pub fn describe(&self, field: Field) -> String {
        match self {
            Source::Flags => field.flag().to_string(),
            Source::Env => field.env().to_string(),
            Source::ConfigFile(path) => format!("`{}` in {}", field.key(), path.display()),
            Source::DataDir(dir) => format!("the master's data dir {} (default)", dir.display()),
        }
    }
}

/// A resolved setting and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

/// Where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `https://host:port`.
    pub master: Setting<String>,
    pub ca_cert: Setting<PathBuf>,
    /// The client certificate and key: one identity, from one layer.
    pub cert: Setting<PathBuf>,
    pub key: PathBuf,
}

impl Resolved {
    /// "--master" or "DOCKFLARE_MASTER" or … for messages that ask to fix the master address.
    pub fn master_origin(&self) -> String {
        self.master.source.describe(Field::Master)
    }
}

/// Everything the resolution looks at.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub flags: Layer,
    pub env: Layer,
    /// The config file's path and what it says, when there is one.
    pub config_file: Option<(PathBuf, Layer)>,
    /// The local master's data dir (`$DOCKFLARE_DATA_DIR` or `./dockflare-data`).
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{given} is set but {missing} is not: a client certificate and its key go together")]
    HalfIdentity { given: String, missing: String },
    #[error("the master address {value:?} (from {origin}) is not usable: {reason}")]
    BadMaster { value: String, origin: String, reason: String },
}

/// The layers in order of precedence.
fn layers(inputs: &Inputs) -> Vec<(Source, Layer)> {
    let mut layers = vec![(Source::Flags, inputs.flags.clone()), (Source::Env, inputs.env.clone())];
    if let Some((path, layer)) = &inputs.config_file {
        layers.push((Source::ConfigFile(path.clone()), layer.clone()));
    }
    layers.push((Source::DataDir(inputs.data_dir.clone()), data_dir_layer(&inputs.data_dir)));
    layers
}

/// What a master started in `data_dir` with its defaults offers: its address and the admin
/// identity it wrote.
pub fn data_dir_layer(data_dir: &Path) -> Layer {
    let pki = data_dir.join("pki");
    Layer {
        master: Some(DEFAULT_MASTER.into()),
        ca_cert: Some(pki.join("ca.crt")),
        cert: Some(pki.join("admin.crt")),
        key: Some(pki.join("admin.key")),
    }
}

/// Resolves the master, CA and identity from `inputs` (see the module doc). Pure.
pub fn resolve(inputs: &Inputs) -> Result<Resolved, ConfigError> {
    let layers = layers(inputs);
    for (source, layer) in &layers {
        match (&layer.cert, &layer.key) {
            (Some(_), None) => {
                return Err(ConfigError::HalfIdentity {
                    given: source.describe(Field::Cert),
                    missing: source.describe(Field::Key),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::HalfIdentity {
                    given: source.describe(Field::Key),
                    missing: source.describe(Field::Cert),
                })
            }
            _ => {}
        }
    }
    // The data-dir layer sets everything, so each search below finds a value.
    let pick = |get: &dyn Fn(&Layer) -> Option<String>| -> (String, Source) {
        layers
            .iter()
            .find_map(|(source, layer)| get(layer).map(|value| (value, source.clone())))
            .unwrap_or_else(|| (String::new(), Source::DataDir(inputs.data_dir.clone())))
    };
    let (master, master_source) = pick(&|layer| layer.master.clone());
    let master = normalize_master(&master).map_err(|reason| ConfigError::BadMaster {
        value: master.clone(),
        origin: master_source.describe(Field::Master),
        reason,
    })?;
    let (ca, ca_source) = pick(&|layer| layer.ca_cert.as_ref().map(|p| p.display().to_string()));
    let (source, layer) = layers
        .iter()
        .find(|(_, layer)| layer.cert.is_some())
        .cloned()
        .unwrap_or_else(|| (Source::DataDir(inputs.data_dir.clone()), data_dir_layer(&inputs.data_dir)));
    Ok(Resolved {
        master: Setting { value: master, source: master_source },
        ca_cert: Setting { value: PathBuf::from(ca), source: ca_source },
        cert: Setting { value: layer.cert.unwrap_or_default(), source },
        key: layer.key.unwrap_or_default(),
    })
}

/// `https://host:port` from what an operator types: a URL, or `host[:port]` (https and port
/// 8443 assumed). Plain http is refused: the master speaks TLS only.
pub fn normalize_master(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("it is empty".into());
    }
    let with_scheme = if value.contains("://") { value.to_string() } else { format!("https://{value}") };
    let uri: Uri = with_scheme.parse().map_err(|error| format!("not a URL ({error})"))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => return Err("the master speaks TLS only: use https://".into()),
        other => return Err(format!("unsupported scheme {:?}: use https://HOST:PORT", other.unwrap_or(""))),
    }
    let authority = uri.authority().ok_or_else(|| "no host".to_string())?;
    if authority.host().is_empty() {
        return Err("no host".into());
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!("a path ({}) is not allowed: use https://HOST:PORT", uri.path()));
    }
    let port = authority.port_u16().unwrap_or(DEFAULT_PORT);
    Ok(format!("https://{}:{port}", authority.host()))
}

/// The environment layer, read through `get` (`std::env::var` in the binary).
pub fn env_layer(get: &dyn Fn(&str) -> Option<String>) -> Layer {
    let get = |name: &str| get(name).filter(|value| !value.trim().is_empty());
    Layer {
        master: get(MASTER_ENV),
        ca_cert: get(CA_CERT_ENV).map(PathBuf::from),
        cert: get(CERT_ENV).map(PathBuf::from),
        key: get(KEY_ENV).map(PathBuf::from),
    }
}

/// The config dir: `$DOCKFLARE_CONFIG`, else `$XDG_CONFIG_HOME/dockflare`, else
/// `$HOME/.config/dockflare`; `None` when none of them is set.
pub fn config_dir(get: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let get = |name: &str| get(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    get(CONFIG_DIR_ENV)
        .or_else(|| get("XDG_CONFIG_HOME").map(|dir| dir.join("dockflare")))
        .or_else(|| get("HOME").map(|home| home.join(".config").join("dockflare")))
}

/// The local master's data dir: `$DOCKFLARE_DATA_DIR`, else `./dockflare-data`.
pub fn data_dir(get: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    get(DATA_DIR_ENV).filter(|value| !value.is_empty()).map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from)
}

/// The config file as written by `dockflare login` (paths relative to its directory).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

impl ConfigFile {
    /// Parses `text`; relative paths are taken relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Layer, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|error| error.to_string())?;
        let absolute = |path: Option<PathBuf>| path.map(|path| if path.is_absolute() { path } else { dir.join(path) });
        Ok(Layer {
            master: file.master,
            ca_cert: absolute(file.ca_cert),
            cert: absolute(file.cert),
            key: absolute(file.key),
        })
    }

    pub fn render(&self) -> Result<String, toml::ser::Error> {
        Ok(format!(
            "# Written by `dockflare login`; paths are relative to this file's directory.\n{}",
            toml::to_string(self)?
        ))
    }
}

/// What [`load`] found, besides the resolution: for `dockflare config`.
#[derive(Debug, Clone)]
pub struct Found {
    pub resolved: Resolved,
    /// The config dir, when one could be named.
    pub config_dir: Option<PathBuf>,
    /// Whether its config file exists.
    pub config_file_exists: bool,
}

/// Reads the environment and the config file, then [`resolve`]s.
pub fn load(flags: Layer) -> anyhow::Result<Found> {
    let get = |name: &str| std::env::var(name).ok();
    let config_dir = config_dir(&get);
    let config_file = match &config_dir {
        Some(dir) => {
            let path = dir.join(CONFIG_FILE);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let layer = ConfigFile::parse(&text, dir)
                        .map_err(|error| anyhow::anyhow!("the config file {} is not valid: {error}", path.display()))?;
                    Some((path, layer))
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => anyhow::bail!("cannot read the config file {}: {error}", path.display()),
            }
        }
        None => None,
    };
    let config_file_exists = config_file.is_some();
    let inputs = Inputs { flags, env: env_layer(&get), config_file, data_dir: data_dir(&get) };
    let resolved = resolve(&inputs)?;
    Ok(Found { resolved, config_dir, config_file_exists })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(master: Option<&str>, ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> Layer {
        Layer {
            master: master.map(str::to_string),
            ca_cert: ca.map(PathBuf::from),
            cert: cert.map(PathBuf::from),
            key: key.map(PathBuf::from),
        }
    }

    fn inputs(flags: Layer, env: Layer, file: Option<Layer>) -> Inputs {
        Inputs {
            flags,
            env,
            config_file: file.map(|layer| (PathBuf::from("/cfg/config.toml"), layer)),
            data_dir: PathBuf::from("dockflare-data"),
        }
    }

    #[test]
    fn with_nothing_set_the_local_data_dir_is_used() {
        let resolved = resolve(&inputs(Layer::default(), Layer::default(), None)).unwrap();
        let data_dir = Source::DataDir(PathBuf::from("dockflare-data"));
        assert_eq!(resolved.master, Setting { value: "https://localhost:8443".into(), source: data_dir.clone() });
        assert_eq!(resolved.ca_cert.value, PathBuf::from("dockflare-data/pki/ca.crt"));
        assert_eq!(resolved.cert.value, PathBuf::from("dockflare-data/pki/admin.crt"));
        assert_eq!(resolved.key, PathBuf::from("dockflare-data/pki/admin.key"));
        assert_eq!(resolved.cert.source, data_dir);
    }

    #[test]
    fn flags_beat_env_beat_the_config_file_beat_the_data_dir() {
        let flags = layer(Some("flag.example:1"), None, None, None);
        let env = layer(Some("env.example:2"), Some("/env/ca.crt"), None, None);
        let file = layer(Some("https://file.example:3"), Some("/cfg/ca.crt"), Some("/cfg/id.crt"), Some("/cfg/id.key"));
        let resolved = resolve(&inputs(flags, env.clone(), Some(file.clone()))).unwrap();
        assert_eq!(resolved.master.value, "https://flag.example:1");
        assert_eq!(resolved.master.source, Source::Flags);
        assert_eq!(resolved.ca_cert.value, PathBuf::from("/env/ca.crt"));
        assert_eq!(resolved.ca_cert.source, Source::Env);
        assert_eq!(resolved.cert.value, PathBuf::from("/cfg/id.crt"));
        assert_eq!(resolved.key, PathBuf::from("/cfg/id.key"));
        assert_eq!(resolved.cert.source, Source::ConfigFile(PathBuf::from("/cfg/config.toml")));

        let resolved = resolve(&inputs(Layer::default(), env, Some(file))).unwrap();
        assert_eq!(resolved.master.value, "https://env.example:2");
        assert_eq!(resolved.master.source, Source::Env);
        assert_eq!(resolved.master_origin(), "DOCKFLARE_MASTER");
    }

    #[test]
    fn the_identity_is_one_pair_from_one_layer() {
        let flags = layer(None, None, Some("/flags/me.crt"), Some("/flags/me.key"));
        let env = layer(None, None, Some("/env/x.crt"), Some("/env/x.key"));
        let resolved = resolve(&inputs(flags, env.clone(), None)).unwrap();
        assert_eq!(
            (resolved.cert.value, resolved.key),
            (PathBuf::from("/flags/me.crt"), PathBuf::from("/flags/me.key"))
        );

        let half = layer(None, None, Some("/flags/me.crt"), None);
        let error = resolve(&inputs(half, env.clone(), None)).unwrap_err();
        assert_eq!(error, ConfigError::HalfIdentity { given: "--cert".into(), missing: "--key".into() });
        let half_env = layer(None, None, None, Some("/env/x.key"));
        let error = resolve(&inputs(Layer::default(), half_env, None)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "DOCKFLARE_KEY is set but DOCKFLARE_CERT is not: a client certificate and its key go together"
        );
    }

    #[test]
    fn a_bad_master_address_names_where_it_came_from() {
        let env = layer(Some("http://plain.example:8443"), None, None, None);
        let error = resolve(&inputs(Layer::default(), env, None)).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("DOCKFLARE_MASTER") && text.contains("TLS only"), "{text}");
    }

    #[test]
    fn master_addresses_are_normalized() {
        let cases = [
            ("localhost", Ok("https://localhost:8443")),
            ("master.example:9443", Ok("https://master.example:9443")),
            ("https://master.example", Ok("https://master.example:8443")),
            ("https://127.0.0.1:8443/", Ok("https://127.0.0.1:8443")),
            ("https://[::1]:8443", Ok("https://[::1]:8443")),
            ("  https://m:1  ", Ok("https://m:1")),
            ("http://m:1", Err("TLS only")),
            ("ftp://m:1", Err("unsupported scheme")),
            ("https://m:1/api", Err("a path")),
            ("", Err("empty")),
            ("https://", Err("")),
        ];
        for (input, expected) in cases {
            match (normalize_master(input), expected) {
                (Ok(url), Ok(want)) => assert_eq!(url, want, "{input:?}"),
                (Err(reason), Err(want)) => assert!(reason.contains(want), "{input:?}: {reason}"),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn environment_and_directories() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let get = env(&[("DOCKFLARE_MASTER", "m:1"), ("DOCKFLARE_CERT", ""), ("HOME", "/home/op")]);
        assert_eq!(env_layer(&get), layer(Some("m:1"), None, None, None), "empty values are unset");
        assert_eq!(config_dir(&get), Some(PathBuf::from("/home/op/.config/dockflare")));
        assert_eq!(data_dir(&get), PathBuf::from("dockflare-data"));
        let get = env(&[("XDG_CONFIG_HOME", "/xdg"), ("HOME", "/home/op"), ("DOCKFLARE_DATA_DIR", "/srv/df")]);
        assert_eq!(config_dir(&get), Some(PathBuf::from("/xdg/dockflare")));
        assert_eq!(data_dir(&get), PathBuf::from("/srv/df"));
        let get = env(&[("DOCKFLARE_CONFIG", "/etc/df"), ("XDG_CONFIG_HOME", "/xdg")]);
        assert_eq!(config_dir(&get), Some(PathBuf::from("/etc/df")));
        assert_eq!(config_dir(&env(&[])), None);
    }

    #[test]
    fn the_config_file_round_trips_with_relative_paths() {
        let file = ConfigFile {
            master: Some("https://m:8443".into()),
            ca_cert: Some("ca.crt".into()),
            cert: Some("identity.crt".into()),
            key: Some("/abs/identity.key".into()),
        };
        let text = file.render().unwrap();
        let layer = ConfigFile::parse(&text, Path::new("/cfg")).unwrap();
        assert_eq!(layer.master.as_deref(), Some("https://m:8443"));
        assert_eq!(layer.ca_cert, Some(PathBuf::from("/cfg/ca.crt")));
        assert_eq!(layer.cert, Some(PathBuf::from("/cfg/identity.crt")));
        assert_eq!(layer.key, Some(PathBuf::from("/abs/identity.key")));
        assert!(ConfigFile::parse("master = 3", Path::new("/cfg")).is_err());
    }
}

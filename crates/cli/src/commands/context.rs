//! `dockflare config`: which master and identity commands would use, and where each came from
//! (flags, environment, config file, data dir). Paths only — never a key's contents.

use super::Session;
use crate::config::{Field, CONFIG_FILE};
use crate::output::table::{fields, Cell};

pub fn run(session: &Session) -> anyhow::Result<()> {
    let resolved = session.resolved();
    let config_file = session.found.config_dir.as_ref().map(|dir| dir.join(CONFIG_FILE));
    let config_state = match (&config_file, session.found.config_file_exists) {
        (Some(path), true) => path.display().to_string(),
        (Some(path), false) => format!("{} (absent)", path.display()),
        (None, _) => "none (set DOCKFLARE_CONFIG, XDG_CONFIG_HOME or HOME)".to_string(),
    };
    let rows = [
        ("master", resolved.master.value.clone(), resolved.master.source.describe(Field::Master)),
        ("ca_cert", resolved.ca_cert.value.display().to_string(), resolved.ca_cert.source.describe(Field::CaCert)),
        ("cert", resolved.cert.value.display().to_string(), resolved.cert.source.describe(Field::Cert)),
        ("key", resolved.key.display().to_string(), resolved.cert.source.describe(Field::Key)),
    ];
    if session.out.is_json() {
        let mut object = serde_json::Map::new();
        for (name, value, source) in &rows {
            object.insert(name.to_string(), serde_json::json!({ "value": value, "from": source }));
        }
        object.insert("config_file".into(), serde_json::json!(config_state));
        return crate::output::print(&format!("{}\n", serde_json::to_string_pretty(&object)?));
    }
    let mut pairs: Vec<(&str, Cell)> =
        rows.iter().map(|(name, value, source)| (*name, Cell::from(format!("{value}  (from {source})")))).collect();
    pairs.push(("config file", config_state.into()));
    crate::output::print(&fields(&pairs, session.out.colour))
}

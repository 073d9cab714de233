//! `dockflare login`: checks that an identity works (WhoAmI), then keeps it — the CA, the
//! certificate and the key copied into the config dir (0700; the key 0600) and a config file
//! naming them and the master — so that later commands need no flags.

use super::Session;
use crate::config::{ConfigFile, CONFIG_FILE};
use crate::errors::rpc_failure;
use crate::exit::{Exit, Failure};
use crate::files;
use crate::output::words;
use anyhow::Context;
use dockflare::v1;
use std::path::Path;

/// The names of the copies inside the config dir.
const CA_FILE: &str = "ca.crt";
const CERT_FILE: &str = "identity.crt";
const KEY_FILE: &str = "identity.key";

pub async fn run(session: &Session) -> anyhow::Result<()> {
    let resolved = session.resolved();
    let mut client = session.connect().await?;
    let who = match client.who_am_i(v1::WhoAmIRequest::default()).await {
        Ok(response) => Some(response.into_inner()),
        // A master older than WhoAmI: a read that any identity may make proves it as well.
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            let request = v1::ListAgentsRequest { page_size: 1, ..Default::default() };
            session.answer("ListAgents", client.list_agents(request).await)?;
            None
        }
        Err(status) => return Err(rpc_failure("WhoAmI", &status, resolved).into()),
    };

    let dir = session.found.config_dir.clone().ok_or_else(|| {
        Failure::new(Exit::Failure, "no config dir: set DOCKFLARE_CONFIG (or XDG_CONFIG_HOME or HOME)")
    })?;
    files::private_dir(&dir).with_context(|| format!("creating the config dir {}", dir.display()))?;
    let copy = |from: &Path, name: &str, mode: u32| -> anyhow::Result<()> {
        let contents = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        let to = dir.join(name);
        files::write_atomically(&to, &contents, mode).with_context(|| format!("writing {}", to.display()))
    };
    copy(&resolved.ca_cert.value, CA_FILE, files::PUBLIC)?;
    copy(&resolved.cert.value, CERT_FILE, files::PUBLIC)?;
    copy(&resolved.key, KEY_FILE, files::PRIVATE)?;
    let config = ConfigFile {
        master: Some(resolved.master.value.clone()),
        ca_cert: Some(CA_FILE.into()),
        cert: Some(CERT_FILE.into()),
        key: Some(KEY_FILE.into()),
    };
    let path = dir.join(CONFIG_FILE);
    let text = config.render().context("writing the config file")?;
    files::write_atomically(&path, text.as_bytes(), files::PRIVATE)
        .with_context(|| format!("writing {}", path.display()))?;

    if let (true, Some(who)) = (session.out.is_json(), &who) {
        return session.out.json(who);
    }
    let as_whom = match who.as_ref().and_then(|who| who.identity.as_ref()) {
        Some(identity) => format!("as {} (role {})", identity.name, words::role_word(identity.role)),
        None => "(this master does not answer WhoAmI: checked with ListAgents)".to_string(),
    };
    crate::output::print(&format!(
        "Logged in to {} {as_whom}.\nSaved to {}: commands without --master, --ca-cert, --cert and --key now use it.\n",
        resolved.master.value,
        path.display()
    ))
}

//! `dockflare whoami`: who the master says the caller is (WhoAmI).

use super::Session;
use crate::output::table::fields;
use crate::output::words;
use dockflare::v1;
use std::time::SystemTime;

pub async fn run(session: &Session) -> anyhow::Result<()> {
    let mut client = session.connect().await?;
    let response = session.answer("WhoAmI", client.who_am_i(v1::WhoAmIRequest::default()).await)?;
    if session.out.is_json() {
        return session.out.json(&response);
    }
    let identity = response.identity.unwrap_or_default();
    let now = SystemTime::now();
    let text = fields(
        &[
            ("name", identity.name.as_str().into()),
            ("role", words::role_word(identity.role).into()),
            ("id", identity.id.as_str().into()),
            ("state", words::identity_state(&identity, now)),
            ("expires", words::rfc3339(identity.expires_at.as_ref()).into()),
            ("master", session.resolved().master.value.as_str().into()),
        ],
        session.out.colour,
    );
    crate::output::print(&text)
}

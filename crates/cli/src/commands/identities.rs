//! `dockflare identities`: admin identities — list, issue (the private key is made here and
//! never leaves this machine: only a CSR goes to the master), revoke.

use super::{all_pages, parse_ttl, Session};
use crate::exit::{Exit, Failure};
use crate::files;
use crate::output::table::{fields, Table};
use crate::output::words;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use dockflare::v1;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Args, Debug)]
pub struct IdentitiesArgs {
    #[command(subcommand)]
    command: Option<IdentitiesCommand>,
}

#[derive(Subcommand, Debug)]
enum IdentitiesCommand {
    /// List admin identities (the default).
    List {
        /// Include revoked and expired ones.
        #[arg(long)]
        all: bool,
    },
    /// Issue an identity: a new key here, the certificate from the master; writes
    /// DIR/NAME.key (0600), DIR/NAME.crt and DIR/ca.crt.
    Issue(IssueArgs),
    /// Revoke an identity: its calls are refused and its streams end.
    Revoke {
        /// The identity's id (its certificate serial, as `identities list` shows it).
        id: String,
    },
}

/// What an identity may do; each role may do all the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Reads everything but secrets.
    Viewer,
    /// Also manual routes, commands, reconcile passes.
    Operator,
    /// Also join tokens, agents and admin identities.
    Admin,
}

impl Role {
    fn proto(self) -> v1::AdminRole {
        match self {
            Role::Viewer => v1::AdminRole::Viewer,
            Role::Operator => v1::AdminRole::Operator,
            Role::Admin => v1::AdminRole::Admin,
        }
    }
}

#[derive(Args, Debug)]
struct IssueArgs {
    /// The identity's name (a-z, A-Z, 0-9, '-', '_', '.'; at most 63).
    #[arg(long)]
    name: String,
    #[arg(long, value_enum)]
    role: Role,
    /// How long the certificate is valid (default: the master's, 90d; at most 3 years).
    #[arg(long, value_parser = parse_ttl, value_name = "DURATION")]
    ttl: Option<u64>,
    /// Where to write the key, the certificate and the CA (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
}

pub async fn run(args: IdentitiesArgs, session: &Session) -> anyhow::Result<()> {
    let out = session.out;
    match args.command.unwrap_or(IdentitiesCommand::List { all: false }) {
        IdentitiesCommand::List { all } => {
            let client = session.connect().await?;
            let identities = all_pages(None, |page_token, page_size| {
                let mut client = client.clone();
                let request = v1::ListAdminIdentitiesRequest {
                    include_inactive: all,
                    page_size,
                    page_token,
                    ..Default::default()
                };
                async move {
                    let page = session.answer("ListAdminIdentities", client.list_admin_identities(request).await)?;
                    Ok((page.identities, page.next_page_token))
                }
            })
            .await?;
            if out.is_json() {
                return out.json(&v1::ListAdminIdentitiesResponse { identities, ..Default::default() });
            }
            out.table(&identities_table(&identities, SystemTime::now()), "No admin identities.")
        }
        IdentitiesCommand::Issue(issue) => self::issue(issue, session).await,
        IdentitiesCommand::Revoke { id } => {
            let mut client = session.connect().await?;
            let request = v1::RevokeAdminIdentityRequest { id, ..Default::default() };
            let response = session.answer("RevokeAdminIdentity", client.revoke_admin_identity(request).await)?;
            if out.is_json() {
                return out.json(&response);
            }
            out.table(&identities_table(response.identity.as_slice(), SystemTime::now()), "")
        }
    }
}

/// The files an issued identity is written to.
struct Paths {
    key: PathBuf,
    cert: PathBuf,
    ca: PathBuf,
}

/// Checks the name locally too, since it names files: no separators, no `..`.
fn check_name(name: &str) -> Result<(), Failure> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::InvalidArgument,
            format!("--name {name:?}: use 1 to 63 of a-z, A-Z, 0-9, '-', '_', '.'"),
        ))
    }
}

fn paths(out_dir: &Path, name: &str) -> Paths {
    Paths {
        key: out_dir.join(format!("{name}.key")),
        cert: out_dir.join(format!("{name}.crt")),
        ca: out_dir.join("ca.crt"),
    }
}

/// A new private key (PEM) and a CSR for it (PEM) naming `name`.
fn key_and_csr(name: &str) -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate().context("generating a key")?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let csr = params.serialize_request(&key).context("making the certificate signing request")?;
    Ok((key.serialize_pem(), csr.pem().context("encoding the certificate signing request")?))
}

async fn issue(args: IssueArgs, session: &Session) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let paths = paths(&args.out_dir, &args.name);
    if let Some(existing) = [&paths.key, &paths.cert].into_iter().find(|path| path.exists()) {
        return Err(Failure::new(
            Exit::Conflict,
            format!("{} exists: choose another --out-dir or --name, or remove it", existing.display()),
        )
        .into());
    }
    files::new_private_dir(&args.out_dir).with_context(|| format!("creating {}", args.out_dir.display()))?;
    let (key_pem, csr_pem) = key_and_csr(&args.name)?;
    let mut client = session.connect().await?;
    let request = v1::IssueAdminIdentityRequest {
        name: args.name.clone(),
        role: args.role.proto() as i32,
        ttl_seconds: args.ttl.unwrap_or(0),
        csr_pem,
        ..Default::default()
    };
    let response = session.answer("IssueAdminIdentity", client.issue_admin_identity(request).await)?;
    let write = |path: &Path, contents: &str, mode: u32| {
        files::write_atomically(path, contents.as_bytes(), mode).with_context(|| format!("writing {}", path.display()))
    };
    write(&paths.key, &key_pem, files::PRIVATE)?;
    write(&paths.cert, &response.certificate_pem, files::PUBLIC)?;
    write(&paths.ca, &response.ca_certificate_pem, files::PUBLIC)?;
    if session.out.is_json() {
        return session.out.json(&response);
    }
    let identity = response.identity.clone().unwrap_or_default();
    let text = fields(
        &[
            ("name", identity.name.as_str().into()),
            ("role", words::role_word(identity.role).into()),
            ("id", identity.id.as_str().into()),
            ("expires", words::rfc3339(identity.expires_at.as_ref()).into()),
            ("key", format!("{} (0600; it never left this machine)", paths.key.display()).into()),
            ("certificate", paths.cert.display().to_string().into()),
            ("ca", paths.ca.display().to_string().into()),
        ],
        session.out.colour,
    );
    crate::output::print(&text)?;
    eprintln!(
        "Use it with: dockflare login --master {} --ca-cert {} --cert {} --key {}",
        session.resolved().master.value,
        paths.ca.display(),
        paths.cert.display(),
        paths.key.display()
    );
    Ok(())
}

fn identities_table(identities: &[v1::AdminIdentity], now: SystemTime) -> Table {
    let mut table = Table::new(&["id", "name", "role", "state", "expires", "last used", "issued by"]);
    for identity in identities {
        table.row(vec![
            identity.id.as_str().into(),
            identity.name.as_str().into(),
            words::role_word(identity.role).into(),
            words::identity_state(identity, now),
            words::age_of(identity.expires_at.as_ref(), now).into(),
            words::age_of(identity.last_used_at.as_ref(), now).into(),
            identity.issued_by.as_str().into(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_leave_the_directory_are_refused() {
        for good in ["ci", "alice.ops", "bot_1-x"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", &"x".repeat(64)] {
            let failure = check_name(bad).unwrap_err();
            assert_eq!(failure.exit, Exit::InvalidArgument, "{bad}");
            assert!(failure.message.starts_with("--name"), "{}", failure.message);
        }
    }

    #[test]
    fn the_csr_is_pem_and_the_key_stays_here() {
        let (key, csr) = key_and_csr("ci").unwrap();
        assert!(key.contains("BEGIN PRIVATE KEY"), "PKCS#8 key");
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"), "{csr}");
        assert!(!csr.contains("PRIVATE KEY"));
    }
}

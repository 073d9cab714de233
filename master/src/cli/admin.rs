//! `dockflare-master admin issue|list|revoke`: admin identities, straight in the database and
//! with this data dir's CA (for the first identities, before any is in hand, and for recovery).
//! The private key is made here and written 0600; only its certificate is recorded.

use super::options::serve_options;
use super::*;
use dockflare_common::secret_file::{create_private_dir, write_secret_file};
use dockflare_master::admin_identities;
use secrecy::ExposeSecret;

pub async fn admin_command(cli: &Cli, action: &AdminAction) -> Result<()> {
    let options = serve_options(cli, None)?;
    create_private_dir(&options.data_dir).with_context(|| format!("creating {}", options.data_dir.display()))?;
    let store = server::connect_store(&server::database_url(&options)).await.context("opening the database")?;
    match action {
        AdminAction::Issue { name, role, ttl, out_dir } => {
            let pki = pki_files::load_or_create(&options.pki, time::OffsetDateTime::now_utc())?;
            let (key_pem, csr_der) = dockflare_common::pki::new_key_and_csr(&format!("dockflare-{role} {name}"))?;
            let issued = admin_identities::issue(&pki.ca, name, *role, *ttl, &csr_der, "dockflare-master admin issue")?;
            let dir = out_dir.clone().unwrap_or_else(|| options.data_dir.join("identities").join(name));
            create_private_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let (key_path, cert_path, ca_path) =
                (dir.join(format!("{name}.key")), dir.join(format!("{name}.crt")), dir.join("ca.crt"));
            write_secret_file(&key_path, key_pem.expose_secret().as_bytes())
                .with_context(|| format!("writing {}", key_path.display()))?;
            std::fs::write(&cert_path, &issued.certificate_pem)
                .with_context(|| format!("writing {}", cert_path.display()))?;
            std::fs::write(&ca_path, pki.ca.certificate_pem())
                .with_context(|| format!("writing {}", ca_path.display()))?;
            store.record_admin_identity(&issued.record).await?;
            eprintln!(
                "Admin identity {name} issued: role {role}, id {}, expires {}.",
                issued.record.serial,
                rfc3339(issued.record.expires_at)
            );
            eprintln!(
                "Use it with: dockflare login --master https://<master>:8443 --ca-cert {} --cert {} --key {}",
                ca_path.display(),
                cert_path.display(),
                key_path.display()
            );
            println!("{}", dir.display());
        }
        AdminAction::List { all } => {
            println!("{:<34} {:<16} {:<9} {:<8} {:<21} LAST USED", "ID", "NAME", "ROLE", "STATE", "EXPIRES");
            let now = now_millis();
            for row in store.list_admin_identities(*all, now).await? {
                let state = if row.revoked_at.is_some() {
                    "revoked"
                } else if row.expires_at <= now {
                    "expired"
                } else {
                    "valid"
                };
                println!(
                    "{:<34} {:<16} {:<9} {:<8} {:<21} {}",
                    row.serial,
                    row.name,
                    row.role,
                    state,
                    rfc3339(row.expires_at),
                    row.last_used_at.map(rfc3339).unwrap_or_else(|| "never".into())
                );
            }
        }
        AdminAction::Revoke { id } => {
            match store.revoke_admin_identity(&id.to_ascii_lowercase(), now_millis()).await? {
                Some(row) => eprintln!(
                    "Admin identity {} ({}) revoked; running masters refuse it within a second.",
                    row.name, row.serial
                ),
                None => bail!("no admin identity {id:?} (dockflare-master admin list --all shows the ids)"),
            }
        }
    }
    store.close().await;
    Ok(())
}

fn rfc3339(millis: i64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64)).to_string()
}

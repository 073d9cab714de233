//! `dockflare-master token create|list|revoke`: join tokens, straight in the database (for the
//! first agent, before any admin identity is in hand).

use super::options::serve_options;
use super::*;

pub async fn token_command(cli: &Cli, action: &TokenAction) -> Result<()> {
    let options = serve_options(cli, None)?;
    dockflare_common::secret_file::create_private_dir(&options.data_dir)
        .with_context(|| format!("creating {}", options.data_dir.display()))?;
    let store = server::connect_store(&server::database_url(&options)).await.context("opening the database")?;
    match action {
        TokenAction::Create {
            ttl,
            max_uses,
            description,
            tunnel_group,
            allow_hostname,
            allow_wildcards,
            allow_apex,
            max_routes,
        } => {
            let pki = pki_files::load_or_create(&options.pki, time::OffsetDateTime::now_utc())?;
            let request = dockflare::v1::CreateJoinTokenRequest {
                ttl_seconds: ttl.as_secs(),
                max_uses: *max_uses,
                description: description.clone(),
                tunnel_group: tunnel_group.clone(),
                policy: Some(dockflare::v1::HostnamePolicy {
                    allowed_hostnames: allow_hostname.clone(),
                    allow_wildcards: *allow_wildcards,
                    allow_apex: *allow_apex,
                    max_routes: *max_routes,
                }),
            };
            let (token, row) = new_join_token(pki.ca.certificate_der(), &request, now_millis())
                .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
            store.insert_join_token(&row, &token.secret_hash()).await?;
            eprintln!(
                "Join token {} created (max uses {}, expires in {}).",
                row.id,
                row.max_uses,
                humantime::format_duration(*ttl)
            );
            println!("{}", token.expose());
        }
        TokenAction::List => {
            println!(
                "{:<14} {:>5} {:>8} {:<8} {:<25} {:<16} DESCRIPTION",
                "ID", "USES", "MAX", "STATE", "EXPIRES", "TUNNEL GROUP"
            );
            let now = now_millis();
            for row in store.list_join_tokens().await? {
                let state = if row.revoked {
                    "revoked"
                } else if row.expires_at <= now {
                    "expired"
                } else {
                    "valid"
                };
                let expires = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_millis(row.expires_at.max(0) as u64),
                );
                println!(
                    "{:<14} {:>5} {:>8} {:<8} {:<25} {:<16} {}",
                    row.id,
                    row.uses,
                    row.max_uses,
                    state,
                    expires,
                    if row.tunnel_group.is_empty() { "-" } else { &row.tunnel_group },
                    row.description
                );
            }
        }
        TokenAction::Revoke { id } => match store.revoke_join_token(id, now_millis()).await? {
            Some(row) => println!("Join token {} revoked.", row.id),
            None => bail!("join token {id:?} does not exist"),
        },
    }
    store.close().await;
    Ok(())
}

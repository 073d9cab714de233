//! `dockflare-master ui set-password|list|remove`: the web dashboard's users, straight in the
//! database. Passwords come from a file or standard input, never from the command line, and
//! are stored only as Argon2id hashes.

use super::options::serve_options;
use super::*;
use dockflare_master::store::UiUser;
use dockflare_master::web::sign_in;
use std::io::Read;

fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

fn read_password(file: Option<&std::path::Path>) -> Result<String> {
    let mut text = String::new();
    match file {
        Some(path) => text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!(
                    "Password (at least {} characters; input is shown, prefer --password-file): ",
                    sign_in::MIN_PASSWORD_LEN
                );
            }
            std::io::stdin().read_to_string(&mut text).context("reading the password from standard input")?;
        }
    }
    Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string())
}

pub async fn ui_command(cli: &Cli, action: &UiAction) -> Result<()> {
    let options = serve_options(cli, None)?;
    dockflare_common::secret_file::create_private_dir(&options.data_dir)
        .with_context(|| format!("creating {}", options.data_dir.display()))?;
    let store = server::connect_store(&server::database_url(&options)).await.context("opening the database")?;
    match action {
        UiAction::SetPassword { user, role, password_file } => {
            if !valid_user(user) {
                bail!("--user: {user:?} is not 1-64 of a-z, A-Z, 0-9, '-', '_', '.', '@'");
            }
            let password = read_password(password_file.as_deref())?;
            let password_hash = sign_in::hash_password(&password)?;
            store
                .set_ui_user(&UiUser {
                    name: user.clone(),
                    role: role.as_str().into(),
                    password_hash,
                    updated_at: now_millis(),
                })
                .await?;
            eprintln!("Dashboard user {user} set (role {role}); their open sessions ended.");
        }
        UiAction::List => {
            println!("{:<24} ROLE", "USER");
            for user in store.list_ui_users().await? {
                println!("{:<24} {}", user.name, user.role);
            }
        }
        UiAction::Remove { user } => {
            if !store.delete_ui_user(user).await? {
                bail!("no dashboard user {user:?} (dockflare-master ui list shows them)");
            }
            eprintln!("Dashboard user {user} removed; their sessions ended.");
        }
    }
    store.close().await;
    Ok(())
}

//! `dockflare tokens`: join tokens — list, create (the token alone on stdout, shown once),
//! revoke.

use super::agents::PolicyFlags;
use super::{all_pages, parse_ttl, Session};
use crate::output::table::Table;
use crate::output::words;
use clap::{Args, Subcommand};
use dockflare::v1;
use std::time::SystemTime;

#[derive(Args, Debug)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: Option<TokensCommand>,
}

#[derive(Subcommand, Debug)]
enum TokensCommand {
    /// List join tokens (never their secrets; the default).
    List,
    /// Create a join token: printed alone on stdout, once (the master keeps only a hash).
    Create(CreateArgs),
    /// Revoke a join token: it can no longer enroll agents.
    Revoke { id: String },
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// How long it stays valid (e.g. 1h, 7d; default: the master's, 24h).
    #[arg(long, value_parser = parse_ttl, value_name = "DURATION")]
    ttl: Option<u64>,
    /// How many agents may enroll with it (default: 1).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    max_uses: u32,
    /// Free text shown in `tokens list`.
    #[arg(long, default_value = "")]
    description: String,
    /// The tunnel group the agents join (default: a tunnel of their own each).
    #[arg(long, default_value = "", value_name = "NAME")]
    tunnel_group: String,
    #[command(flatten)]
    policy: PolicyFlags,
}

pub async fn run(args: TokensArgs, session: &Session) -> anyhow::Result<()> {
    let mut client = session.connect().await?;
    let out = session.out;
    match args.command.unwrap_or(TokensCommand::List) {
        TokensCommand::List => {
            let tokens = all_pages(None, |page_token, page_size| {
                let mut client = client.clone();
                let request = v1::ListJoinTokensRequest { page_size, page_token, ..Default::default() };
                async move {
                    let page = session.answer("ListJoinTokens", client.list_join_tokens(request).await)?;
                    Ok((page.tokens, page.next_page_token))
                }
            })
            .await?;
            if out.is_json() {
                return out.json(&v1::ListJoinTokensResponse { tokens, ..Default::default() });
            }
            out.table(&tokens_table(&tokens, SystemTime::now()), "No join tokens.")
        }
        TokensCommand::Create(create) => {
            let request = v1::CreateJoinTokenRequest {
                ttl_seconds: create.ttl.unwrap_or(0),
                max_uses: create.max_uses,
                description: create.description,
                tunnel_group: create.tunnel_group,
                policy: create.policy.given().then(|| create.policy.policy()),
                ..Default::default()
            };
            let response = session.answer("CreateJoinToken", client.create_join_token(request).await)?;
            if out.is_json() {
                return out.json(&response);
            }
            let info = response.info.clone().unwrap_or_default();
            eprintln!(
                "Join token {} for {} agent(s), valid until {}: give it to an agent as DOCKFLARE_JOIN_TOKEN \
                 (or --join-token-file). It is shown only now.",
                info.id,
                info.max_uses,
                words::rfc3339(info.expires_at.as_ref())
            );
            crate::output::print(&format!("{}\n", response.token))
        }
        TokensCommand::Revoke { id } => {
            let response = session.answer(
                "RevokeJoinToken",
                client.revoke_join_token(v1::RevokeJoinTokenRequest { id, ..Default::default() }).await,
            )?;
            if out.is_json() {
                return out.json(&response);
            }
            out.table(&tokens_table(response.token.as_slice(), SystemTime::now()), "")
        }
    }
}

fn tokens_table(tokens: &[v1::JoinToken], now: SystemTime) -> Table {
    let mut table = Table::new(&["id", "state", "uses", "expires", "group", "description"]);
    for token in tokens {
        table.row(vec![
            token.id.as_str().into(),
            words::token_state(token, now),
            format!("{}/{}", token.uses, token.max_uses).into(),
            words::age_of(token.expires_at.as_ref(), now).into(),
            token.tunnel_group.as_str().into(),
            token.description.as_str().into(),
        ]);
    }
    table
}

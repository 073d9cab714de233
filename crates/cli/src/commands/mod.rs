//! The commands, one module per noun, and [`Session`]: what every command shares (the resolved
//! context, the output, a connection made when first needed). Each noun module holds its own
//! clap arguments and its handler; the top-level command line is `crate::args`.

pub mod access;
pub mod agent_commands;
pub mod agents;
pub mod containers;
pub mod context;
pub mod diagnostics;
pub mod events;
pub mod identities;
pub mod login;
pub mod plan;
pub mod reconcile;
pub mod routes;
pub mod tokens;
pub mod tunnels;
pub mod watch;
pub mod whoami;

use crate::config::{Field, Found, Layer, Resolved};
use crate::connect::{self, Client};
use crate::errors;
use crate::exit::{Exit, Failure};
use crate::output::{Format, Output};

/// What a command runs with.
pub struct Session {
    pub found: Found,
    pub out: Output,
    pub verbose: bool,
}

impl Session {
    /// Resolves the context from `flags`, the environment and the config file.
    pub fn new(flags: Layer, format: Format, verbose: bool) -> anyhow::Result<Session> {
        let found =
            crate::config::load(flags).map_err(|error| match error.downcast::<crate::config::ConfigError>() {
                Ok(config) => anyhow::Error::new(Failure::new(Exit::Usage, config.to_string())),
                Err(other) => other,
            })?;
        Ok(Session { found, out: Output::detect(format), verbose })
    }

    pub fn resolved(&self) -> &Resolved {
        &self.found.resolved
    }

    /// Connects to the master as the resolved identity (saying which, with `--verbose`).
    pub async fn connect(&self) -> Result<Client, Failure> {
        let resolved = self.resolved();
        if self.verbose {
            eprintln!(
                "dockflare: master {} (from {}), CA {} (from {}), identity {} (from {})",
                resolved.master.value,
                resolved.master_origin(),
                resolved.ca_cert.value.display(),
                resolved.ca_cert.source.describe(Field::CaCert),
                resolved.cert.value.display(),
                resolved.cert.source.describe(Field::Cert),
            );
        }
        connect::connect(resolved).await
    }

    /// The answer of a unary call, or its failure in words.
    pub fn answer<T>(&self, call: &str, result: Result<tonic::Response<T>, tonic::Status>) -> Result<T, Failure> {
        errors::answer(call, self.resolved(), result)
    }
}

/// Items asked for per page (the master's maximum).
pub const PAGE_SIZE: u32 = 1000;

/// The items of a List call, page after page: `fetch` gets the page token ("" first) and the
/// page size, and answers the page's items and its `next_page_token`; an empty token (or one
/// repeated, which a sound master never sends) ends it, and so does reaching `limit` items.
pub async fn all_pages<T, F, Fut>(limit: Option<usize>, mut fetch: F) -> Result<Vec<T>, Failure>
where
    F: FnMut(String, u32) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), Failure>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let wanted = limit.map_or(PAGE_SIZE, |limit| limit.saturating_sub(items.len()).min(PAGE_SIZE as usize) as u32);
        let (page, next) = fetch(token.clone(), wanted).await?;
        items.extend(page);
        if let Some(limit) = limit {
            if items.len() >= limit {
                items.truncate(limit);
                return Ok(items);
            }
        }
        if next.is_empty() || next == token {
            return Ok(items);
        }
        token = next;
    }
}

/// A duration flag (`90d`, `1h30m`, `3600s`) in whole seconds, at least one.
pub fn parse_ttl(value: &str) -> Result<u64, String> {
    let duration = humantime::parse_duration(value.trim()).map_err(|error| format!("{error} (e.g. 90d, 12h, 30m)"))?;
    match duration.as_secs() {
        0 => Err("must be at least 1s".into()),
        seconds => Ok(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::{all_pages, parse_ttl};

    #[tokio::test]
    async fn pages_are_followed_to_the_last() {
        let pages = |token: String, _size: u32| async move {
            Ok(match token.as_str() {
                "" => (vec![1, 2], "b".to_string()),
                "b" => (vec![3], "c".to_string()),
                _ => (vec![4], String::new()),
            })
        };
        assert_eq!(all_pages(None, pages).await.unwrap(), [1, 2, 3, 4]);
        assert_eq!(all_pages(Some(3), pages).await.unwrap(), [1, 2, 3], "a limit ends it");
        let stuck = |_token: String, _size: u32| async { Ok((vec![0], "same".to_string())) };
        assert_eq!(all_pages(None, stuck).await.unwrap(), [0, 0], "a repeated token ends it");
        let sizes = std::sync::Mutex::new(Vec::new());
        let record = |_token: String, size: u32| {
            sizes.lock().unwrap().push(size);
            async move { Ok((vec![0; size as usize], "more".to_string())) }
        };
        assert_eq!(all_pages(Some(1500), record).await.unwrap().len(), 1500);
        assert_eq!(*sizes.lock().unwrap(), [1000, 500], "pages ask for what is left");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_ttl("90d"), Ok(90 * 86_400));
        assert_eq!(parse_ttl("1h30m"), Ok(5_400));
        assert_eq!(parse_ttl("3600s"), Ok(3_600));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("soon").unwrap_err().contains("e.g. 90d"));
    }
}

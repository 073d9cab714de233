//! The tunnel token, read as cloudflared reads it (`shared/reference/cloudflare-api.md` §8.1):
//! standard base64 (padding required) of `{"a": account, "s": base64(secret), "t": tunnel uuid,
//! "e": endpoint}`. For the local edge, `e` is the base URL of the DockFlare Cloudflare emulator
//! as the connector's container reaches it.
//!
//! The token is a secret: it is kept in a [`SecretString`] and never printed (`Debug` redacts it).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A decoded tunnel token.
pub struct TunnelToken {
    /// The account id (`a`).
    pub account_tag: String,
    /// The tunnel id (`t`), canonical lowercase UUID.
    pub tunnel_id: String,
    /// The `e` field: where the configuration comes from. `None` when absent or empty.
    pub endpoint: Option<String>,
    /// The token as given, for `Authorization: Bearer`.
    raw: SecretString,
}

impl std::fmt::Debug for TunnelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelToken")
            .field("account_tag", &self.account_tag)
            .field("tunnel_id", &self.tunnel_id)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Why a string is not a tunnel token (the messages never quote it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the tunnel token is not standard base64 with padding")]
    Base64,
    #[error("the tunnel token is not the expected JSON ({0})")]
    Json(String),
    #[error("the tunnel token's secret is not standard base64")]
    Secret,
    #[error("the tunnel token's tunnel id is not a UUID")]
    TunnelId,
}

#[derive(Deserialize)]
struct TokenJson {
    a: String,
    s: String,
    t: String,
    #[serde(default)]
    e: Option<String>,
}

impl TunnelToken {
    /// Decodes a token; surrounding whitespace is ignored.
    pub fn decode(token: &SecretString) -> Result<TunnelToken, TokenError> {
        let text = token.expose_secret().trim();
        let bytes = STANDARD.decode(text).map_err(|_| TokenError::Base64)?;
        // serde_json's messages quote values only for type mismatches of numbers and the like,
        // never string contents: safe to show.
        let json: TokenJson = serde_json::from_slice(&bytes).map_err(|e| TokenError::Json(e.classify_message()))?;
        STANDARD.decode(json.s.trim()).map_err(|_| TokenError::Secret)?;
        let tunnel_id = uuid::Uuid::parse_str(json.t.trim()).map_err(|_| TokenError::TunnelId)?;
        Ok(TunnelToken {
            account_tag: json.a,
            tunnel_id: tunnel_id.hyphenated().to_string(),
            endpoint: json.e.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()),
            raw: SecretString::from(text.to_string()),
        })
    }

    /// The token, to present to the emulator.
    pub fn expose(&self) -> &str {
        self.raw.expose_secret()
    }
}

/// A short, secret-free description of a serde error.
trait Classify {
    fn classify_message(&self) -> String;
}

impl Classify for serde_json::Error {
    fn classify_message(&self) -> String {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable".into(),
            serde_json::error::Category::Syntax => "not JSON".into(),
            serde_json::error::Category::Data => "missing or mistyped a, s or t".into(),
            serde_json::error::Category::Eof => "truncated".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of cloudflare-api.md §8.1 (no `e`).
    const EXAMPLE: &str = "eyJhIjoiNjk5ZDk4NjQyYzU2NGQyZTg1NWU5NjYxODk5YjcyNTIiLCJzIjoiQUFFQ0F3UUZCZ2NJQ1FvTERBME9EeEFSRWhNVUZSWVhHQmthR3h3ZEhoOD0iLCJ0IjoiYzE3NDRmOGItZmFhMS00OGE0LTllNWMtMDJhYzkyMTQ2N2ZhIn0=";

    fn decode(text: &str) -> Result<TunnelToken, TokenError> {
        TunnelToken::decode(&SecretString::from(text.to_string()))
    }

    #[test]
    fn the_reference_example_decodes() {
        let token = decode(&format!(" {EXAMPLE}\n")).map_err(|e| e.to_string());
        let token = token.as_ref().map(|t| (t.account_tag.as_str(), t.tunnel_id.as_str(), t.endpoint.clone()));
        assert_eq!(
            token,
            Ok(("699d98642c564d2e855e9661899b7252", "c1744f8b-faa1-48a4-9e5c-02ac921467fa", None)),
            "decoded"
        );
    }

    #[test]
    fn the_endpoint_is_read() {
        let json = r#"{"a":"acc","s":"AAAA","t":"C1744F8B-FAA1-48A4-9E5C-02AC921467FA","e":"http://host.docker.internal:8788/client/v4"}"#;
        let token = decode(&STANDARD.encode(json)).map_err(|e| e.to_string());
        let token = token.as_ref().map(|t| (t.tunnel_id.as_str(), t.endpoint.as_deref(), t.expose().len()));
        assert_eq!(
            token,
            Ok((
                "c1744f8b-faa1-48a4-9e5c-02ac921467fa",
                Some("http://host.docker.internal:8788/client/v4"),
                STANDARD.encode(json).len()
            ))
        );
    }

    #[test]
    fn bad_tokens_are_refused_without_quoting_them() {
        let cases = [
            (EXAMPLE.trim_end_matches('=').to_string(), TokenError::Base64),
            ("not base64!".to_string(), TokenError::Base64),
            (STANDARD.encode("secret-ish"), TokenError::Json("not JSON".into())),
            (STANDARD.encode("{}"), TokenError::Json("missing or mistyped a, s or t".into())),
            (STANDARD.encode(r#"{"a":"x","s":"!!","t":"c1744f8b-faa1-48a4-9e5c-02ac921467fa"}"#), TokenError::Secret),
            (STANDARD.encode(r#"{"a":"x","s":"AAAA","t":"tunnel-secret"}"#), TokenError::TunnelId),
        ];
        for (text, expected) in cases {
            let error = decode(&text).err();
            assert_eq!(error.as_ref(), Some(&expected), "{text}");
            assert!(!format!("{error:?}").contains("secret-ish"));
        }
        let token = decode(EXAMPLE).map(|t| format!("{t:?}")).unwrap_or_default();
        assert!(!token.contains(EXAMPLE) && token.contains("c1744f8b"), "{token}");
    }
}

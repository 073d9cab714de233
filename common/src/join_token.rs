//! Join tokens: how an agent proves it may enroll, and how it recognises the
//! right master on first contact.
//!
//! Like Docker Swarm's tokens, a join token pins the master's CA: it carries
//! the SHA-256 digest of the CA certificate next to a secret. An agent that is
//! given only the master's address and a token can therefore verify the
//! master before sending anything. The master stores only a hash of the
//! secret.
//!
//! Format: `DFJT-1-<ca sha256, 64 hex>-<id, 12 [a-z0-9]>-<secret, 32 [a-z0-9]>`.

use rand::Rng;
use sha2::{Digest, Sha256};
use std::fmt;

const PREFIX: &str = "DFJT";
const VERSION: &str = "1";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A parsed join token. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the CA certificate (DER) the agent must find at the master.
    pub ca_digest: [u8; 32],
    /// Public id of the token, used to look it up.
    pub id: String,
    secret: String,
}

/// Why a string is not a join token. Never contains the token's secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenError {
    #[error("join token must start with \"DFJT-1-\"")]
    BadPrefix,
    #[error("join token must have 5 dash-separated parts, found {0}")]
    WrongPartCount(usize),
    #[error("join token CA digest must be 64 hex characters")]
    BadCaDigest,
    #[error("join token id must be {ID_LEN} characters of a-z and 0-9")]
    BadId,
    #[error("join token secret must be {SECRET_LEN} characters of a-z and 0-9")]
    BadSecret,
}

impl JoinToken {
    /// A new token pinned to the CA whose DER digest is `ca_digest`.
    pub fn generate(ca_digest: [u8; 32]) -> JoinToken {
        JoinToken { ca_digest, id: random_string(ID_LEN), secret: random_string(SECRET_LEN) }
    }

    /// Parses a token as an operator pasted it (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<JoinToken, JoinTokenError> {
        let parts: Vec<&str> = text.trim().split('-').collect();
        if parts.first() != Some(&PREFIX) || parts.get(1) != Some(&VERSION) {
            return Err(JoinTokenError::BadPrefix);
        }
        if parts.len() != 5 {
            return Err(JoinTokenError::WrongPartCount(parts.len()));
        }
        let digest = hex::decode(parts[2]).map_err(|_| JoinTokenError::BadCaDigest)?;
        let ca_digest: [u8; 32] = digest.try_into().map_err(|_| JoinTokenError::BadCaDigest)?;
        if !is_token_part(parts[3], ID_LEN) {
            return Err(JoinTokenError::BadId);
        }
        if !is_token_part(parts[4], SECRET_LEN) {
            return Err(JoinTokenError::BadSecret);
        }
        Ok(JoinToken { ca_digest, id: parts[3].to_string(), secret: parts[4].to_string() })
    }

    /// The token as text, to hand to an agent. Secret.
    pub fn expose(&self) -> String {
        format!("{PREFIX}-{VERSION}-{}-{}-{}", hex::encode(self.ca_digest), self.id, self.secret)
    }

    /// The hash the master stores instead of the secret.
    pub fn secret_hash(&self) -> String {
        hash_secret(&self.secret)
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &hex::encode(self.ca_digest))
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// SHA-256 of a token secret, hex encoded.
fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// SHA-256 digest of a certificate's DER bytes: what a join token pins.
pub fn certificate_digest(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn random_string(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

fn is_token_part(part: &str, len: usize) -> bool {
    part.len() == len && part.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back() {
        let token = JoinToken::generate([7; 32]);
        let text = token.expose();
        assert_eq!(JoinToken::parse(&format!("  {text}\n")), Ok(token.clone()));
        assert_eq!(JoinToken::parse(&text).map(|t| t.secret_hash()), Ok(token.secret_hash()));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let good = JoinToken::generate([1; 32]).expose();
        let parts: Vec<&str> = good.split('-').collect();
        let cases = [
            ("SWMTKN-1-abc-def".to_string(), JoinTokenError::BadPrefix),
            ("DFJT-2-x-y-z".to_string(), JoinTokenError::BadPrefix),
            (format!("DFJT-1-{}-{}", parts[2], parts[3]), JoinTokenError::WrongPartCount(4)),
            (format!("DFJT-1-zz{}-{}-{}", &parts[2][2..], parts[3], parts[4]), JoinTokenError::BadCaDigest),
            (format!("DFJT-1-{}ab-{}-{}", parts[2], parts[3], parts[4]), JoinTokenError::BadCaDigest),
            (format!("DFJT-1-{}-{}X-{}", parts[2], &parts[3][1..], parts[4]), JoinTokenError::BadId),
            (format!("DFJT-1-{}-{}-{}", parts[2], parts[3], &parts[4][1..]), JoinTokenError::BadSecret),
        ];
        for (text, expected) in cases {
            assert_eq!(JoinToken::parse(&text), Err(expected), "{text}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let token = JoinToken::generate([2; 32]);
        let secret = token.expose().rsplit('-').next().map(str::to_string).unwrap_or_default();
        let printed = format!("{token:?}");
        assert!(!printed.contains(&secret), "{printed}");
        assert!(printed.contains(&token.id));
    }
}

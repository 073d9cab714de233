//! Sealing of the command log at rest.
//!
//! Commands can carry secrets — a `start_tunnel` holds its tunnel's token —
//! and the log lives in a database that several masters may share, and that
//! gets backed up. Every payload is therefore stored sealed: AES-256-GCM
//! under a key derived (HKDF-SHA256) from the CA's private key, which every
//! master of a fleet holds anyway (it issues agent certificates) and which
//! never enters the database. The agent id is bound in as associated data, so
//! a sealed command cannot be moved to another agent's log, and whoever can
//! write to the database but lacks the CA key can neither read nor forge one.
//!
//! Stored layout: `DFS1` ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretSlice};

/// Marks a sealed payload (and its format version).
const MAGIC: &[u8; 4] = b"DFS1";
const KEY_SALT: &[u8] = b"dockflare";
const KEY_INFO: &[u8] = b"dockflare command log v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the payload is not sealed (queued by a master older than sealing?)")]
    NotSealed,
    #[error("the payload does not open with this master's key (sealed under another CA, or altered)")]
    DoesNotOpen,
    #[error("the payload is too large to seal")]
    TooLarge,
    #[error("cannot derive the sealing key")]
    KeyDerivation,
    #[error("the system's random generator failed")]
    Random,
}

/// Seals and opens command payloads for one CA.
pub struct CommandSeal {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for CommandSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommandSeal { key: [redacted] }")
    }
}

impl CommandSeal {
    /// The seal whose key derives from `secret` (the CA's private key).
    pub fn derive(secret: &SecretSlice<u8>) -> Result<CommandSeal, SealError> {
        let pseudo_random_key = hkdf::Salt::new(hkdf::HKDF_SHA256, KEY_SALT).extract(secret.expose_secret());
        let material = pseudo_random_key.expand(&[KEY_INFO], &AES_256_GCM).map_err(|_| SealError::KeyDerivation)?;
        let key = LessSafeKey::new(UnboundKey::from(material));
        Ok(CommandSeal { key, random: SystemRandom::new() })
    }

    /// `payload` sealed for `agent_id`'s command log.
    pub fn seal(&self, agent_id: &str, payload: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut sealed = Vec::with_capacity(MAGIC.len() + NONCE_LEN + payload.len() + AES_256_GCM.tag_len());
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&nonce);
        let mut body = payload.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(agent_id.as_bytes()), &mut body)
            .map_err(|_| SealError::TooLarge)?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// The payload `stored` in `agent_id`'s command log.
    pub fn open(&self, agent_id: &str, stored: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = stored.strip_prefix(MAGIC.as_slice()).ok_or(SealError::NotSealed)?;
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::DoesNotOpen);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::DoesNotOpen)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(agent_id.as_bytes()), &mut body)
            .map_err(|_| SealError::DoesNotOpen)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(secret: &[u8]) -> CommandSeal {
        CommandSeal::derive(&SecretSlice::from(secret.to_vec())).unwrap()
    }

    #[test]
    fn a_sealed_payload_opens_for_its_agent_and_hides_its_content() {
        let seal = seal(b"ca key one");
        let payload = b"start_tunnel token=eyJhIjoiMSJ9-secret";
        let sealed = seal.seal("agent-1", payload).unwrap();
        assert!(sealed.starts_with(MAGIC));
        assert!(!sealed.windows(6).any(|w| w == b"secret"), "the token is not stored in the clear");
        assert_eq!(seal.open("agent-1", &sealed).unwrap(), payload);
        assert_ne!(seal.seal("agent-1", payload).unwrap(), sealed, "every seal has its own nonce");
    }

    #[test]
    fn a_sealed_payload_does_not_open_for_another_agent_ca_or_after_tampering() {
        let seal_one = seal(b"ca key one");
        let sealed = seal_one.seal("agent-1", b"payload").unwrap();
        assert_eq!(seal_one.open("agent-2", &sealed), Err(SealError::DoesNotOpen));
        assert_eq!(seal(b"ca key two").open("agent-1", &sealed), Err(SealError::DoesNotOpen));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(seal_one.open("agent-1", &tampered), Err(SealError::DoesNotOpen));
        assert_eq!(seal_one.open("agent-1", &sealed[..10]), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn a_plain_payload_is_refused_as_not_sealed() {
        assert_eq!(seal(b"k").open("agent-1", b"\x0a\x03abc"), Err(SealError::NotSealed));
        assert_eq!(seal(b"k").open("agent-1", b""), Err(SealError::NotSealed));
    }

    #[test]
    fn masters_sharing_a_ca_key_derive_the_same_seal() {
        let sealed = seal(b"shared ca key").seal("agent-1", b"payload").unwrap();
        assert_eq!(seal(b"shared ca key").open("agent-1", &sealed).unwrap(), b"payload");
    }

    #[test]
    fn debug_output_redacts_the_key() {
        assert_eq!(format!("{:?}", seal(b"k")), "CommandSeal { key: [redacted] }");
    }
}

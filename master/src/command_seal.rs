//! Sealing of the command log at rest.
//!
//! Commands can carry secrets — a `start_tunnel` holds its tunnel's token —
//! and the log lives in a database that several masters may share, and that
//! gets backed up. Every payload is therefore stored sealed: AES-256-GCM
//! under a key derived (HKDF-SHA256) from the CA's private key, which every
//! master of a fleet holds anyway (it issues agent certificates) and which
//! never enters the database. The command's place in the log (agent id,
//! command id, sequence) is bound in as associated data, so a sealed command
//! cannot be copied to another agent, another row or a later sequence: whoever
//! can write to the database but lacks the CA key can neither read, forge nor
//! replay one.
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
/// Where the check value sits: a place no command has (sequences start at 1).
const CHECK_PLACE: LogPlace<'static> = LogPlace { agent_id: "", command_id: "seal-check", sequence: 0 };
const CHECK_TEXT: &[u8] = b"dockflare command log seal";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the payload is not sealed (queued by a master older than sealing?)")]
    NotSealed,
    #[error("the payload does not open with this master's key here (sealed under another CA, moved, or altered)")]
    DoesNotOpen,
    #[error("the payload is too large to seal")]
    TooLarge,
    #[error("cannot derive the sealing key")]
    KeyDerivation,
    #[error("the system's random generator failed")]
    Random,
}

/// Where a payload sits in the command log: what its seal is bound to.
#[derive(Debug, Clone, Copy)]
pub struct LogPlace<'a> {
    pub agent_id: &'a str,
    pub command_id: &'a str,
    pub sequence: u64,
}

impl LogPlace<'_> {
    /// The associated data: each part length-prefixed, so no two places
    /// share it.
    fn associated_data(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(16 + self.agent_id.len() + self.command_id.len());
        for part in [self.agent_id.as_bytes(), self.command_id.as_bytes()] {
            data.extend_from_slice(&(part.len() as u32).to_be_bytes());
            data.extend_from_slice(part);
        }
        data.extend_from_slice(&self.sequence.to_be_bytes());
        data
    }
}

/// Whether `stored` is in the sealed layout (rows written before sealing are not).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(MAGIC)
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

    /// `payload` sealed for its place in the log.
    pub fn seal(&self, place: &LogPlace<'_>, payload: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut sealed = Vec::with_capacity(MAGIC.len() + NONCE_LEN + payload.len() + AES_256_GCM.tag_len());
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&nonce);
        let mut body = payload.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.associated_data()),
                &mut body,
            )
            .map_err(|_| SealError::TooLarge)?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// A sealed sample only this key opens. Stored once per database, it tells
    /// a master whether it holds the key the log is sealed with.
    pub fn check_value(&self) -> Result<Vec<u8>, SealError> {
        self.seal(&CHECK_PLACE, CHECK_TEXT)
    }

    /// Whether `stored` is a check value of this key.
    pub fn opens_check_value(&self, stored: &[u8]) -> bool {
        self.open(&CHECK_PLACE, stored).is_ok_and(|text| text == CHECK_TEXT)
    }

    /// The payload `stored` at `place` in the log.
    pub fn open(&self, place: &LogPlace<'_>, stored: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = stored.strip_prefix(MAGIC.as_slice()).ok_or(SealError::NotSealed)?;
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::DoesNotOpen);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::DoesNotOpen)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(place.associated_data()), &mut body)
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

    fn place(agent_id: &'static str, command_id: &'static str, sequence: u64) -> LogPlace<'static> {
        LogPlace { agent_id, command_id, sequence }
    }

    #[test]
    fn a_sealed_payload_opens_in_its_place_and_hides_its_content() {
        let seal = seal(b"ca key one");
        let here = place("agent-1", "c-1", 7);
        let payload = b"start_tunnel token=eyJhIjoiMSJ9-secret";
        let sealed = seal.seal(&here, payload).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(6).any(|w| w == b"secret"), "the token is not stored in the clear");
        assert_eq!(seal.open(&here, &sealed).unwrap(), payload);
        assert_ne!(seal.seal(&here, payload).unwrap(), sealed, "every seal has its own nonce");
    }

    #[test]
    fn a_sealed_payload_does_not_open_elsewhere_under_another_ca_or_after_tampering() {
        let seal_one = seal(b"ca key one");
        let sealed = seal_one.seal(&place("agent-1", "c-1", 7), b"payload").unwrap();
        for elsewhere in [place("agent-2", "c-1", 7), place("agent-1", "c-2", 7), place("agent-1", "c-1", 8)] {
            assert_eq!(seal_one.open(&elsewhere, &sealed), Err(SealError::DoesNotOpen), "{elsewhere:?}");
        }
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        let split = seal_one.seal(&place("ab", "c", 1), b"payload").unwrap();
        assert_eq!(seal_one.open(&place("a", "bc", 1), &split), Err(SealError::DoesNotOpen));
        let here = place("agent-1", "c-1", 7);
        assert_eq!(seal(b"ca key two").open(&here, &sealed), Err(SealError::DoesNotOpen));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(seal_one.open(&here, &tampered), Err(SealError::DoesNotOpen));
        assert_eq!(seal_one.open(&here, &sealed[..10]), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn a_plain_payload_is_refused_as_not_sealed() {
        let here = place("agent-1", "c-1", 1);
        assert_eq!(seal(b"k").open(&here, b"\x0a\x03abc"), Err(SealError::NotSealed));
        assert_eq!(seal(b"k").open(&here, b""), Err(SealError::NotSealed));
        assert!(!is_sealed(b"\x0a\x03abc"));
    }

    #[test]
    fn masters_sharing_a_ca_key_derive_the_same_seal() {
        let here = place("agent-1", "c-1", 1);
        let sealed = seal(b"shared ca key").seal(&here, b"payload").unwrap();
        assert_eq!(seal(b"shared ca key").open(&here, &sealed).unwrap(), b"payload");
    }

    #[test]
    fn the_check_value_tells_the_same_key_from_another() {
        let check = seal(b"ca key one").check_value().unwrap();
        assert!(seal(b"ca key one").opens_check_value(&check));
        assert!(!seal(b"ca key two").opens_check_value(&check));
        assert!(!seal(b"ca key one").opens_check_value(b"garbage"));
    }

    #[test]
    fn debug_output_redacts_the_key() {
        assert_eq!(format!("{:?}", seal(b"k")), "CommandSeal { key: [redacted] }");
    }
}

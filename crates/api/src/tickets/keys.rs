//! Ticket signing keys: the operator's format, the `kid` each key is known by, and its JWK.
//!
//! A key is written as the base64url (no padding) of a 32-byte Ed25519 seed: 43 characters,
//! what `rushline ticket-key new` prints. `RUSHLINE_TICKET_KEYS` holds one or more, separated by
//! commas; the first signs, every one verifies and is published.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of rushline's own MAC in a ticket's header (`rlm`): HMAC-SHA256 truncated to 128 bits.
pub const MAC_BYTES: usize = 16;

/// Domain separation of the MAC secret derived from a key's seed.
const MAC_LABEL: &[u8] = b"rushline ticket rlm v1";

/// The JWS `alg` of every ticket (RFC 8037: Ed25519 under the name EdDSA).
pub const ALGORITHM: &str = "EdDSA";

/// Most keys `RUSHLINE_TICKET_KEYS` may hold: the current one, the previous ones still verifying
/// and one pre-published; more is a mistake, and each costs a lookup entry and a JWK.
pub const MAX_KEYS: usize = 8;

/// One Ed25519 key pair and the names it is published under.
#[derive(Clone)]
pub struct TicketKey {
    signing: SigningKey,
    verifying: VerifyingKey,
    kid: String,
    /// HMAC-SHA256 keyed with HMAC-SHA256(seed, [`MAC_LABEL`]): secret as the seed, and a
    /// different secret from the signing scalar. Cloned per use (it holds the keyed state).
    mac: HmacSha256,
}

impl TicketKey {
    /// A fresh key from the operating system's randomness (through `rand`'s thread RNG, a CSPRNG
    /// seeded from it).
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// The key whose 32-byte Ed25519 seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let verifying = signing.verifying_key();
        let kid = thumbprint(&verifying);
        let secret: [u8; 32] = hmac_keyed(&seed)
            .chain_update(MAC_LABEL)
            .finalize()
            .into_bytes()
            .into();
        let mac = hmac_keyed(&secret);
        Self {
            signing,
            verifying,
            kid,
            mac,
        }
    }

    /// Reads the operator's format: base64url without padding of the 32-byte seed.
    pub fn parse(encoded: &str) -> Result<Self, KeyFormatError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded.trim())
            .map_err(|_| KeyFormatError::NotBase64Url)?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyFormatError::WrongLength(b.len()))?;
        Ok(Self::from_seed(seed))
    }

    /// The operator's format of this key (a secret: it signs tickets).
    pub fn to_secret_string(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.as_bytes())
    }

    /// The key id: the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key, so the
    /// same key has the same `kid` on every replica and in every verifier's JWKS cache.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK (RFC 8037 `OKP`/`Ed25519`).
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(self.verifying.as_bytes()),
            kid: self.kid.clone(),
            alg: ALGORITHM,
            key_use: "sig",
        }
    }

    /// Rushline's MAC of `message` (a payload segment), truncated to [`MAC_BYTES`].
    pub(crate) fn mac(&self, message: &[u8]) -> [u8; MAC_BYTES] {
        let tag = self
            .mac
            .clone()
            .chain_update(message)
            .finalize()
            .into_bytes();
        let mut truncated = [0u8; MAC_BYTES];
        truncated.copy_from_slice(&tag[..MAC_BYTES]);
        truncated
    }

    /// Whether `tag` is the MAC of `message`, compared in constant time.
    pub(crate) fn mac_matches(&self, message: &[u8], tag: &[u8]) -> bool {
        self.mac
            .clone()
            .chain_update(message)
            .verify_truncated_left(tag)
            .is_ok()
    }

    pub(crate) fn signing(&self) -> &SigningKey {
        &self.signing
    }

    pub(crate) fn verifying(&self) -> &VerifyingKey {
        &self.verifying
    }
}

/// Shows the `kid` only: the seed never reaches a log.
impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKey").field("kid", &self.kid).finish()
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
/// HMAC-SHA256 keyed by a 32-byte `key`. RFC 2104 pads a key shorter than the hash's 64-byte
/// block with zeros, so padding it here gives exactly the MAC `new_from_slice` would, through the
/// constructor that cannot fail.
fn hmac_keyed(key: &[u8; 32]) -> HmacSha256 {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    block[..key.len()].copy_from_slice(key);
    HmacSha256::new(&block)
}

fn thumbprint(key: &VerifyingKey) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(key.as_bytes())
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Why a key in the operator's format is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Not base64url without padding.
    #[error("a key must be base64url (no padding) of a 32-byte Ed25519 seed")]
    NotBase64Url,
    /// Decoded, but not 32 bytes.
    #[error("a key must decode to 32 bytes (an Ed25519 seed), not {0}")]
    WrongLength(usize),
    /// No key at all, or an empty entry between commas.
    #[error("expected one or more comma-separated keys, none empty")]
    Empty,
    /// The same key twice.
    #[error("key {0} is listed twice")]
    Duplicate(String),
    /// More than [`MAX_KEYS`].
    #[error("at most {MAX_KEYS} keys")]
    TooMany,
}

/// The configured keys, in order: the first signs, all verify. Never empty.
#[derive(Clone)]
pub struct TicketKeys(Arc<[TicketKey]>);

impl TicketKeys {
    /// `keys` in order; the first signs.
    pub fn new(keys: Vec<TicketKey>) -> Result<Self, KeyFormatError> {
        if keys.is_empty() {
            return Err(KeyFormatError::Empty);
        }
        if keys.len() > MAX_KEYS {
            return Err(KeyFormatError::TooMany);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(KeyFormatError::Duplicate(key.kid.clone()));
            }
        }
        Ok(Self(keys.into()))
    }

    /// Reads `RUSHLINE_TICKET_KEYS`: comma-separated keys in the operator's format.
    pub fn parse(list: &str) -> Result<Self, KeyFormatError> {
        let keys = list
            .split(',')
            .map(|entry| match entry.trim() {
                "" => Err(KeyFormatError::Empty),
                entry => TicketKey::parse(entry),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// The key that signs new tickets.
    pub fn current(&self) -> &TicketKey {
        // `new` refuses an empty list, and nothing else builds one.
        &self.0[0]
    }

    /// Every key, the current one first.
    pub fn all(&self) -> &[TicketKey] {
        &self.0
    }
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(TicketKey::kid))
            .finish()
    }
}

/// One public key of the JWK Set (RFC 7517, with RFC 8037's `OKP` members).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    /// Always `OKP`.
    #[schema(value_type = String, example = "OKP")]
    pub kty: &'static str,
    /// Always `Ed25519`.
    #[schema(value_type = String, example = "Ed25519")]
    pub crv: &'static str,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    /// The key id tickets name in their header: the key's RFC 7638 thumbprint.
    pub kid: String,
    /// Always `EdDSA`.
    #[schema(value_type = String, example = "EdDSA")]
    pub alg: &'static str,
    /// Always `sig`.
    #[serde(rename = "use")]
    #[schema(value_type = String, example = "sig")]
    pub key_use: &'static str,
}

/// `GET /.well-known/jwks.json`: every public key a ticket may be signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JwkSet {
    /// The current key first, then the others still accepted.
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_padded_hmac_key_gives_the_mac_of_the_key_itself() {
        let key = [7u8; 32];
        let padded = hmac_keyed(&key)
            .chain_update(b"rlm")
            .finalize()
            .into_bytes();
        let direct = HmacSha256::new_from_slice(&key)
            .unwrap()
            .chain_update(b"rlm")
            .finalize()
            .into_bytes();
        assert_eq!(padded, direct);
    }

    #[test]
    fn a_key_reads_back_from_its_own_format_with_the_same_kid() {
        let key = TicketKey::generate();
        let again = TicketKey::parse(&key.to_secret_string()).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(key.to_secret_string().len(), 43);
        assert!(!format!("{key:?}").contains(&key.to_secret_string()));
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037 appendix A.1/A.3: this seed's public key has this thumbprint.
        let key = TicketKey::parse("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        assert_eq!(key.jwk().x, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn bad_key_lists_are_refused() {
        let a = TicketKey::generate().to_secret_string();
        let b = TicketKey::generate().to_secret_string();
        assert_eq!(
            TicketKeys::parse(&format!(" {a} , {b}"))
                .unwrap()
                .all()
                .len(),
            2
        );
        assert_eq!(
            TicketKeys::parse(&format!("{b},{a}"))
                .unwrap()
                .current()
                .to_secret_string(),
            b
        );
        for (list, expected) in [
            (String::new(), KeyFormatError::Empty),
            (format!("{a},"), KeyFormatError::Empty),
            ("not base64!".to_owned(), KeyFormatError::NotBase64Url),
            (format!("{a}="), KeyFormatError::NotBase64Url),
            ("AAAA".to_owned(), KeyFormatError::WrongLength(3)),
            (
                URL_SAFE_NO_PAD.encode([7u8; 64]),
                KeyFormatError::WrongLength(64),
            ),
            (vec![a.clone(); 9].join(","), KeyFormatError::TooMany),
        ] {
            assert_eq!(TicketKeys::parse(&list).err(), Some(expected), "{list}");
        }
        let key = TicketKey::parse(&a).unwrap();
        assert_eq!(
            TicketKeys::parse(&format!("{a},{b},{a}")).err(),
            Some(KeyFormatError::Duplicate(key.kid().to_owned()))
        );
    }
}

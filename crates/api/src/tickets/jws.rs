//! Compact JWS (RFC 7515) with EdDSA (RFC 8037), written by hand over `ed25519-dalek`: the
//! format is three base64url segments, and owning the parser lets verification accept exactly
//! one algorithm, refuse everything else before any key is touched, and stay within a bounded
//! input.
//!
//! Rushline's own check does not verify the signature: the protected header carries `rlm`, an
//! HMAC-SHA256 (128 bits) of the payload segment under a secret derived from the signing key
//! ([`TicketKey`]), which only a holder of that key can compute. Checking it costs a few
//! microseconds against tens for Ed25519, and a forged ticket costs rushline no more than a real
//! one. The signature over header and payload is for everyone else ([`verify_signature`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};

use super::TicketError;
use super::keys::{ALGORITHM, MAC_BYTES, TicketKey, TicketKeys};

/// Longest ticket accepted: refused before it is decoded or parsed. A ticket with the longest
/// ids (a 128-character user id, a 64-character campaign id) is about 700 bytes.
pub const MAX_TICKET_BYTES: usize = 2048;

/// The protected header rushline writes.
#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
    /// Rushline's MAC of the payload segment, base64url.
    rlm: &'a str,
}

/// The protected header as read. Unknown members are ignored, as RFC 7515 says, except `crit`:
/// it names extensions a verifier must understand, and rushline understands none.
#[derive(Deserialize)]
struct HeaderIn {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
    rlm: Option<String>,
}

/// A token split into its parts, its header checked: `alg` is ours and `kid` names a key.
struct Parsed<'t, 'k> {
    key: &'k TicketKey,
    mac: Option<String>,
    payload: &'t str,
    signature: [u8; 64],
    signing_input: &'t str,
}

/// Signs `payload` (JSON bytes) with `key`: header with `kid` and `rlm`, then the Ed25519
/// signature over header and payload.
pub(super) fn sign(key: &TicketKey, payload: &[u8]) -> Result<String, TicketError> {
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let mac = URL_SAFE_NO_PAD.encode(key.mac(payload.as_bytes()));
    let header = serde_json::to_vec(&HeaderOut {
        alg: ALGORITHM,
        kid: key.kid(),
        typ: "JWT",
        rlm: &mac,
    })
    .map_err(|e| TicketError::Encoding(e.to_string()))?;
    Ok(sign_input(
        key,
        format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header)),
    ))
}

/// Appends the signature of `input` (`header.payload`).
fn sign_input(key: &TicketKey, mut input: String) -> String {
    let signature = key.signing().sign(input.as_bytes());
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut input);
    input
}

/// Rushline's check: form, algorithm, key, then the `rlm` MAC of the payload; returns the
/// payload bytes (only an authenticated payload is ever given to the JSON parser). A ticket
/// without `rlm` is refused: every ticket rushline issues has one.
pub(super) fn verify_mac(keys: &TicketKeys, token: &str) -> Result<Vec<u8>, TicketError> {
    let parsed = parse(keys, token)?;
    let mac = parsed
        .mac
        .ok_or(TicketError::Malformed("no rushline MAC in the header"))?;
    let mac = decode(&mac)?;
    if mac.len() != MAC_BYTES || !parsed.key.mac_matches(parsed.payload.as_bytes(), &mac) {
        return Err(TicketError::BadSignature);
    }
    decode(parsed.payload)
}

/// What another service does: form, algorithm, key, then the Ed25519 signature (strict: no
/// malleable signatures, no weak keys); returns the payload bytes. Ignores `rlm`.
pub(super) fn verify_signature(keys: &TicketKeys, token: &str) -> Result<Vec<u8>, TicketError> {
    let parsed = parse(keys, token)?;
    parsed
        .key
        .verifying()
        .verify_strict(
            parsed.signing_input.as_bytes(),
            &Signature::from_bytes(&parsed.signature),
        )
        .map_err(|_| TicketError::BadSignature)?;
    decode(parsed.payload)
}

fn parse<'t, 'k>(keys: &'k TicketKeys, token: &'t str) -> Result<Parsed<'t, 'k>, TicketError> {
    if token.len() > MAX_TICKET_BYTES {
        return Err(TicketError::TooLarge);
    }
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TicketError::Malformed("not three dot-separated segments"));
    };
    let header: HeaderIn = serde_json::from_slice(&decode(header)?)
        .map_err(|_| TicketError::Malformed("header is not a JWS header"))?;
    if header.alg != ALGORITHM {
        return Err(TicketError::UnsupportedAlgorithm);
    }
    if header.crit.is_some() {
        return Err(TicketError::Malformed("header names critical extensions"));
    }
    let kid = header.kid.ok_or(TicketError::UnknownKey)?;
    let key = keys
        .all()
        .iter()
        .find(|k| k.kid() == kid)
        .ok_or(TicketError::UnknownKey)?;
    let signature: [u8; 64] = decode(signature)?
        .try_into()
        .map_err(|_| TicketError::BadSignature)?;
    Ok(Parsed {
        key,
        mac: header.rlm,
        payload,
        signature,
        signing_input: &token[..header_and_payload_len(token)],
    })
}

/// Length of `header.payload`: up to the last dot.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn decode(segment: &str) -> Result<Vec<u8>, TicketError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TicketError::Malformed("a segment is not base64url"))
}

/// Signs `payload` under any `header` JSON: for tests that need a ticket rushline would never
/// write.
#[cfg(test)]
pub(super) fn sign_with_header(key: &TicketKey, header: &str, payload: &[u8]) -> String {
    sign_input(
        key,
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        ),
    )
}

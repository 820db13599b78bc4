//! Compact JWS (RFC 7515) with EdDSA (RFC 8037), written by hand over `ed25519-dalek`: the
//! format is three base64url segments, and owning the parser lets verification accept exactly
//! one algorithm, refuse everything else before any key is touched, and stay within a bounded
//! input.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};

use super::TicketError;
use super::keys::{ALGORITHM, TicketKey, TicketKeys};

/// Longest ticket accepted: refused before it is decoded or parsed. A real ticket is about
/// 400 bytes (a 128-character user id, a 64-character campaign id, an 86-character signature).
pub const MAX_TICKET_BYTES: usize = 2048;

/// The protected header rushline writes.
#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

/// The protected header as read. Unknown members are ignored, as RFC 7515 says, except `crit`:
/// it names extensions a verifier must understand, and rushline understands none.
#[derive(Deserialize)]
struct HeaderIn {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// The encoded protected header `key` signs with, computed once per key.
pub(super) fn encoded_header(key: &TicketKey) -> String {
    let header = HeaderOut {
        alg: ALGORITHM,
        kid: key.kid(),
        typ: "JWT",
    };
    // A struct of three strings always serializes.
    let json = serde_json::to_vec(&header).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Signs `payload` (JSON bytes) under `encoded_header` with `key`.
pub(super) fn sign(key: &TicketKey, encoded_header: &str, payload: &[u8]) -> String {
    let mut token =
        String::with_capacity(encoded_header.len() + payload.len().div_ceil(3) * 4 + 90);
    token.push_str(encoded_header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key.signing().sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    token
}

/// Checks `token`'s form, algorithm, key and signature, in that order, and returns its payload
/// bytes (not yet parsed: only a signed payload is ever given to the JSON parser).
pub(super) fn verify(keys: &TicketKeys, token: &str) -> Result<Vec<u8>, TicketError> {
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
    let signing_input = &token[..token.len() - signature_len(token)];
    key.verifying()
        .verify_strict(signing_input.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| TicketError::BadSignature)?;
    decode(payload)
}

/// Length of the last segment with its dot.
fn signature_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

fn decode(segment: &str) -> Result<Vec<u8>, TicketError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TicketError::Malformed("a segment is not base64url"))
}

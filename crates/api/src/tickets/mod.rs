//! Waiting-room tickets: signed tokens that say who holds which place in a campaign's queue and
//! whether (and until when) they are admitted, verifiable by any service from the public keys.
//!
//! # Format
//!
//! A ticket is a compact JWS (RFC 7515), `alg` `EdDSA` with an Ed25519 key (RFC 8037); its
//! protected header is `{"alg":"EdDSA","kid":"<kid>","typ":"JWT","rlm":"<mac>"}`, where `kid` is
//! the RFC 7638 thumbprint of the signing key's public JWK. The public keys are served as a JWK Set at
//! `GET /.well-known/jwks.json` ([`Tickets::jwks`]).
//!
//! # Claims ([`TicketClaims`])
//!
//! | claim | type | meaning |
//! |-------|------|---------|
//! | `iss` | string | always `rushline` |
//! | `sub` | string | the user id the ticket was issued to |
//! | `cid` | string | the campaign id |
//! | `jti` | string (UUID) | unique per issued ticket |
//! | `iat` | number | issued at, unix seconds |
//! | `pos` | number, optional | place in the queue; absent while pre-queued |
//! | `adm` | number, optional | admitted at, unix **milliseconds**; absent until admitted |
//! | `exp` | number | unix seconds: `iat` + 24 h while not admitted; once admitted, `adm` (rounded down to the second) + the campaign's `pass_secs` |
//!
//! A ticket is a **pass** — its holder may request a coupon — when its signature verifies with
//! a key of the JWK Set, `iss` is `rushline`, `adm` is present and now is before `exp`. A
//! verifier that checks only the signature and `exp` would take a waiting ticket for a pass:
//! it must require `adm` too.
//!
//! The header also carries `rlm`: rushline's own MAC of the payload segment (HMAC-SHA256,
//! 128 bits, under a secret derived from the signing key's seed). Other services ignore it (an
//! unknown header member; it is not `crit`).
//!
//! # Verification ([`Tickets::verify`])
//!
//! Rushline checks its own tickets by `rlm`, not by the signature: a few microseconds instead
//! of tens, so neither a poll nor a forged ticket costs an Ed25519 verification. Only a holder of
//! the private key can compute `rlm`, so it authenticates the claims exactly as well for
//! rushline; the signature is what everyone else checks ([`Tickets::verify_signature`]).
//!
//! Refused, each as a [`TicketError`] (the API answers `401`): a token over
//! [`MAX_TICKET_BYTES`] (before any decoding), anything but three base64url segments, a header
//! that is not JSON or names `crit` extensions, any `alg` but `EdDSA` (`none`, every HMAC, RSA
//! and ECDSA algorithm), a missing or unknown `kid`, a signature segment that is not 64 bytes, a
//! missing or wrong `rlm` ([`Tickets::verify`]) or a bad signature (strict Ed25519: no malleable
//! signatures or weak keys; [`Tickets::verify_signature`]), claims that do not parse, an `iss`
//! other than `rushline`. `exp` is *not* checked here: an expired pass is a `403
//! ticket-expired`, not a forgery, so the caller judges it ([`TicketClaims::is_expired_pass_at`]).
//! [`Tickets::verify_for`] also refuses a ticket of another campaign.
//!
//! # Cost
//!
//! An Ed25519 verification costs tens of microseconds, more than a whole accept; the `rlm`
//! check a few. On top of it every ticket checked for a campaign ([`Tickets::verify_for`], what
//! every endpoint uses) is remembered in a bounded cache (`cache.rs`) keyed by the SHA-256 of
//! campaign and token, so a poll with a ticket this replica already saw costs a hash and a
//! lookup (under a microsecond); when more tickets are polled than the cache holds, a miss costs
//! the `rlm` check, never a signature. Figures in the README
//! (`crates/api/examples/ticket_cost.rs`).
//!
//! # Keys
//!
//! [`keys`]: `RUSHLINE_TICKET_KEYS`, comma-separated; the first signs, all verify and are
//! published (rotation: pre-publish, switch, retire). Unset, the replicas share one generated
//! key through Redis ([`Tickets::share_through_redis`]), a development default.

mod cache;
mod claims;
mod jws;
pub mod keys;

use std::sync::{Arc, OnceLock};

use rushline_domain::CampaignId;
use rushline_queue::Queue;
use rushline_runtime::backoff::Backoff;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use claims::{ISSUER, TicketClaims, WAITING_LIFETIME};
pub use jws::MAX_TICKET_BYTES;
pub use keys::{Jwk, JwkSet, KeyFormatError, TicketKey, TicketKeys};

use cache::VerifiedCache;

use crate::telemetry;

/// Default bound on the verified-ticket cache (see the README for its memory per entry).
pub const DEFAULT_CACHE_ENTRIES: usize = 100_000;

/// Why a ticket was refused, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Longer than [`MAX_TICKET_BYTES`].
    #[error("ticket longer than {MAX_TICKET_BYTES} bytes")]
    TooLarge,
    /// Not a compact JWS, or its claims do not parse.
    #[error("malformed ticket: {0}")]
    Malformed(&'static str),
    /// An `alg` other than `EdDSA`.
    #[error("ticket algorithm not accepted (only EdDSA)")]
    UnsupportedAlgorithm,
    /// No `kid`, or one that names no configured key.
    #[error("ticket signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("ticket signature does not verify")]
    BadSignature,
    /// Signed, but `iss` is not `rushline`.
    #[error("ticket not issued by rushline")]
    WrongIssuer,
    /// A good ticket for another campaign ([`Tickets::verify_for`]).
    #[error("ticket is for another campaign")]
    OtherCampaign,
    /// The claims could not be written (a bug: they always serialize).
    #[error("ticket claims could not be encoded: {0}")]
    Encoding(String),
    /// No key yet: `RUSHLINE_TICKET_KEYS` is unset and the shared key has not been read from
    /// Redis. Not the client's fault: the API answers `503`.
    #[error("no ticket key yet (waiting for the shared key in Redis)")]
    KeysUnavailable,
}

/// Signs and verifies tickets with the configured keys. Cheap to clone; one per process, in the
/// API's state.
///
/// With keys configured it is ready at once. Without ([`Tickets::awaiting_shared_key`]) it
/// waits for the development key in Redis, so the API starts (and answers `503`) while Redis is
/// down, as it does for everything else: until then every call answers
/// [`TicketError::KeysUnavailable`].
#[derive(Clone)]
pub struct Tickets(Arc<Slot>);

struct Slot {
    ready: OnceLock<Inner>,
    /// Wakes [`Tickets::ready`] callers once `ready` is set.
    set: Notify,
    cache_entries: usize,
}

struct Inner {
    keys: TicketKeys,
    jwks: JwkSet,
    cache: VerifiedCache,
}

impl Inner {
    fn new(keys: TicketKeys, cache_entries: usize) -> Self {
        Self {
            jwks: JwkSet {
                keys: keys.all().iter().map(TicketKey::jwk).collect(),
            },
            keys,
            cache: VerifiedCache::new(cache_entries),
        }
    }
}

impl Tickets {
    /// Tickets signed with `keys.current()`, verified with any of `keys`, remembering up to
    /// `cache_entries` checked tickets.
    pub fn new(keys: TicketKeys, cache_entries: usize) -> Self {
        let tickets = Self::awaiting_shared_key(cache_entries);
        tickets.install(keys);
        tickets
    }

    /// Tickets without a key yet: [`Self::share_through_redis`] provides it.
    pub fn awaiting_shared_key(cache_entries: usize) -> Self {
        Self(Arc::new(Slot {
            ready: OnceLock::new(),
            set: Notify::new(),
            cache_entries,
        }))
    }

    fn install(&self, keys: TicketKeys) {
        // Only the first key set counts: every replica must keep the key it started signing with.
        let _ = self.0.ready.set(Inner::new(keys, self.0.cache_entries));
        self.0.set.notify_waiters();
    }

    /// The development default when `RUSHLINE_TICKET_KEYS` is unset: every replica must sign
    /// with the same key, so the first to start stores a fresh one under `rushline:ticket-key`
    /// (`SET NX`) and every replica uses what is stored there. Retries (with backoff) until Redis
    /// answers or `shutdown`; a key in Redis that is not usable is logged as an error and
    /// retried (an operator deletes it). Production sets the variable: a key kept only in Redis
    /// is lost with Redis's data, and replicas started after that loss would sign with a key the
    /// running ones do not know.
    pub async fn share_through_redis(self, queue: Queue, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        loop {
            match shared_key(&queue).await {
                Ok(keys) => {
                    tracing::warn!(
                        kid = keys.current().kid(),
                        "RUSHLINE_TICKET_KEYS is unset: signing tickets with the key shared in \
                         Redis (a development default; set the variable in production)"
                    );
                    self.install(keys);
                    return;
                }
                Err(e @ SharedKeyError::Unusable { .. }) => tracing::error!(error = %e),
                Err(e) => tracing::warn!(error = %e, "no ticket key yet; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// Resolves once a key is there (at once when configured).
    pub async fn ready(&self) {
        loop {
            // Registered before the check, so a key installed in between still wakes it.
            let installed = self.0.set.notified();
            if self.0.ready.get().is_some() {
                return;
            }
            installed.await;
        }
    }

    fn inner(&self) -> Result<&Inner, TicketError> {
        self.0.ready.get().ok_or(TicketError::KeysUnavailable)
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &TicketClaims) -> Result<String, TicketError> {
        let inner = self.inner()?;
        let payload =
            serde_json::to_vec(claims).map_err(|e| TicketError::Encoding(e.to_string()))?;
        jws::sign(inner.keys.current(), &payload)
    }

    /// The claims of a ticket signed by one of the configured keys (see the module doc for what
    /// is refused): rushline's own MAC (`rlm`) check, counted in the tickets-checked metric.
    /// Polls go through [`Self::verify_for`], which remembers what it checked.
    pub fn verify(&self, token: &str) -> Result<Arc<TicketClaims>, TicketError> {
        let inner = self.inner()?;
        refuse_oversized(token)?;
        checked(inner, token).map(Arc::new)
    }

    /// [`Self::verify`], and the ticket must be for `campaign`: what a waiting-room endpoint
    /// of that campaign accepts (another campaign's ticket is a `401` there, like a forgery). A
    /// ticket checked before for this campaign is answered from the cache.
    pub fn verify_for(
        &self,
        token: &str,
        campaign: &CampaignId,
    ) -> Result<Arc<TicketClaims>, TicketError> {
        let inner = self.inner()?;
        // Before hashing: a huge token costs nothing but this comparison.
        refuse_oversized(token)?;
        let hash = VerifiedCache::hash(campaign, token);
        if let Some(claims) = inner.cache.get(&hash, campaign) {
            metrics::counter!(telemetry::TICKETS_CHECKED, "result" => "cached").increment(1);
            return Ok(Arc::new(claims));
        }
        let claims = checked(inner, token)?;
        if claims.cid != *campaign {
            return Err(TicketError::OtherCampaign);
        }
        inner.cache.insert(hash, &claims);
        Ok(Arc::new(claims))
    }

    /// [`Self::verify`], uncounted: rushline's own MAC (`rlm`) is checked, not the signature.
    pub fn verify_mac(&self, token: &str) -> Result<TicketClaims, TicketError> {
        claims(&jws::verify_mac(&self.inner()?.keys, token)?)
    }

    /// The check another service makes, from the public keys alone: the Ed25519 signature over
    /// header and payload (tens of microseconds; rushline's own checks use [`Self::verify_for`]).
    pub fn verify_signature(&self, token: &str) -> Result<TicketClaims, TicketError> {
        claims(&jws::verify_signature(&self.inner()?.keys, token)?)
    }

    /// Every public key, the current one first: `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> Result<&JwkSet, TicketError> {
        Ok(&self.inner()?.jwks)
    }

    /// The `kid` new tickets are signed under, once there is a key.
    pub fn current_kid(&self) -> Option<&str> {
        self.0.ready.get().map(|inner| inner.keys.current().kid())
    }

    /// Checked tickets remembered now (at most the configured bound).
    pub fn cached(&self) -> usize {
        self.0.ready.get().map_or(0, |inner| inner.cache.len())
    }
}

/// The key stored in Redis (this process's fresh one if none was).
async fn shared_key(queue: &Queue) -> Result<TicketKeys, SharedKeyError> {
    let candidate = TicketKey::generate().to_secret_string();
    let stored = queue.shared_ticket_key(&candidate).await?;
    let unusable = |problem| SharedKeyError::Unusable {
        key: queue.keys().ticket_key(),
        problem,
    };
    TicketKeys::new(vec![TicketKey::parse(&stored).map_err(unusable)?]).map_err(unusable)
}

/// An authenticated payload's claims; `iss` must be rushline's.
fn claims(payload: &[u8]) -> Result<TicketClaims, TicketError> {
    let claims: TicketClaims = serde_json::from_slice(payload)
        .map_err(|_| TicketError::Malformed("claims are not a rushline ticket's"))?;
    if claims.iss != ISSUER {
        return Err(TicketError::WrongIssuer);
    }
    Ok(claims)
}

/// Why the development key could not be had from Redis.
#[derive(Debug, thiserror::Error)]
pub enum SharedKeyError {
    /// Redis failed.
    #[error("reading the shared ticket key from Redis: {0}")]
    Redis(#[from] rushline_queue::QueueError),
    /// Redis holds something that is not a key.
    #[error("{key} holds no usable ticket key ({problem}); delete it or set RUSHLINE_TICKET_KEYS")]
    Unusable {
        /// The Redis key.
        key: String,
        /// What is wrong with its value.
        problem: KeyFormatError,
    },
}

/// A token over [`MAX_TICKET_BYTES`] is refused before any decoding or hashing, counted.
fn refuse_oversized(token: &str) -> Result<(), TicketError> {
    if token.len() > MAX_TICKET_BYTES {
        metrics::counter!(telemetry::TICKETS_CHECKED, "result" => "refused").increment(1);
        return Err(TicketError::TooLarge);
    }
    Ok(())
}

/// The `rlm` check of a token no longer than [`MAX_TICKET_BYTES`], counted.
fn checked(inner: &Inner, token: &str) -> Result<TicketClaims, TicketError> {
    match jws::verify_mac(&inner.keys, token).and_then(|p| claims(&p)) {
        Ok(claims) => {
            metrics::counter!(telemetry::TICKETS_CHECKED, "result" => "verified").increment(1);
            Ok(claims)
        }
        Err(e) => {
            metrics::counter!(telemetry::TICKETS_CHECKED, "result" => "refused").increment(1);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;

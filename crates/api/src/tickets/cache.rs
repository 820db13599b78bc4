//! A bounded memory of tickets already checked, so a poll pays a SHA-256 of its ticket and a map
//! lookup instead of the `rlm` check (parsing the header and claims, an HMAC).
//!
//! Entries are keyed by the SHA-256 of the whole token: a hit means these exact bytes were
//! verified before (a collision would need a SHA-256 second preimage). The keys never change
//! while the process runs, so an entry never goes stale; expiry is judged by the caller from the
//! claims (`exp`), never by the cache. Eviction is first in, first out, O(1): each shard keeps
//! its keys in insertion order and drops the oldest when full. Shards, each behind its own
//! short-held lock, keep concurrent polls from queuing on one mutex.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::TicketClaims;

/// Shards of the cache: a power of two well above the cores a replica runs on.
const SHARDS: usize = 16;

/// The SHA-256 of a token.
pub(super) type TokenHash = [u8; 32];

/// Verified tickets, at most `capacity` of them.
pub(super) struct VerifiedCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    claims: HashMap<TokenHash, Arc<TicketClaims>>,
    order: VecDeque<TokenHash>,
}

impl VerifiedCache {
    /// Room for `capacity` tickets (rounded up to a multiple of the shard count); 0 remembers
    /// nothing.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    /// The hash a token is remembered by.
    pub(super) fn hash(token: &str) -> TokenHash {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The claims of a token verified before.
    pub(super) fn get(&self, hash: &TokenHash) -> Option<Arc<TicketClaims>> {
        self.shard(hash).claims.get(hash).cloned()
    }

    /// Remembers a verified token, dropping the shard's oldest entry when it is full.
    pub(super) fn insert(&self, hash: TokenHash, claims: Arc<TicketClaims>) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&hash);
        if shard.claims.contains_key(&hash) {
            // Two polls verified it at once; it is in `order` already.
            return;
        }
        if shard.order.len() >= self.per_shard
            && let Some(oldest) = shard.order.pop_front()
        {
            shard.claims.remove(&oldest);
        }
        shard.order.push_back(hash);
        shard.claims.insert(hash, claims);
    }

    /// Tickets remembered now.
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .claims
                    .len()
            })
            .sum()
    }

    fn shard(&self, hash: &TokenHash) -> std::sync::MutexGuard<'_, Shard> {
        // The hash is uniform, so its first byte spreads tickets evenly. A poisoned shard only
        // means a panic elsewhere while it was held; its map is still consistent (every update
        // above keeps `claims` and `order` in step before anything can panic).
        self.shards[usize::from(hash[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

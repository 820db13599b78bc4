//! A bounded memory of tickets already checked for a campaign, so a poll pays a SHA-256 of its
//! ticket and a map lookup instead of the `rlm` check (parsing the header and claims, an HMAC).
//!
//! Entries are keyed by the first 16 bytes of the SHA-256 of the campaign id and the whole token:
//! a hit means these exact bytes were verified before as a ticket of this campaign (a false hit
//! would need a 128-bit second preimage). The keys never change while the process runs, so an
//! entry never goes stale; expiry is judged by the caller from the claims (`exp`), never by the
//! cache.
//!
//! Memory is the point of the layout (a crowd of 200,000 polls one replica): an entry keeps only
//! what the key does not already say — not the issuer (always [`ISSUER`]) nor the campaign (the
//! caller's, part of the key) — with the numbers inline, in a ring per shard whose order is the
//! eviction order (first in, first out, O(1)), found through a map of key to ring slot. About
//! 150 bytes an entry against about 400 for a map of whole claims behind an `Arc` (measured by
//! `examples/ticket_cost.rs`). Shards, each behind its own short-held lock, keep concurrent polls
//! from queuing on one mutex.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rushline_domain::{CampaignId, UserId};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ISSUER, TicketClaims};

/// Shards of the cache: a power of two well above the cores a replica runs on.
const SHARDS: usize = 16;

/// What a ticket is remembered by: 16 bytes of SHA-256(campaign ‖ 0 ‖ token).
pub(super) type TicketHash = [u8; 16];

/// Verified tickets, at most `capacity` of them.
pub(super) struct VerifiedCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

/// A verified ticket's claims, less what its key implies.
struct Remembered {
    sub: UserId,
    jti: Uuid,
    iat: i64,
    exp: i64,
    pos: Option<u64>,
    adm: Option<i64>,
}

#[derive(Default)]
struct Shard {
    /// Key -> slot in `ring`.
    index: HashMap<TicketHash, u32>,
    /// Entries in insertion order once full: `next` is the oldest, overwritten next.
    ring: Vec<(TicketHash, Remembered)>,
    next: usize,
}

impl VerifiedCache {
    /// Room for `capacity` tickets (rounded up to a multiple of the shard count); 0 remembers
    /// nothing.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            // Ring slots are `u32`: a shard never needs more (the setting is at most 10^7).
            per_shard: capacity.div_ceil(SHARDS).min(u32::MAX as usize),
        }
    }

    /// The key `token` is remembered by as a ticket of `campaign`.
    pub(super) fn hash(campaign: &CampaignId, token: &str) -> TicketHash {
        let digest = Sha256::new()
            .chain_update(campaign.as_str().as_bytes())
            .chain_update([0u8])
            .chain_update(token.as_bytes())
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }

    /// The claims of a ticket verified before for `campaign` (`hash` made with it).
    pub(super) fn get(&self, hash: &TicketHash, campaign: &CampaignId) -> Option<TicketClaims> {
        let shard = self.shard(hash);
        let slot = *shard.index.get(hash)?;
        let (key, r) = shard.ring.get(slot as usize)?;
        if key != hash {
            return None;
        }
        Some(TicketClaims {
            iss: ISSUER.to_owned(),
            sub: r.sub.clone(),
            cid: campaign.clone(),
            jti: r.jti,
            iat: r.iat,
            pos: r.pos,
            adm: r.adm,
            exp: r.exp,
        })
    }

    /// Remembers a ticket verified for `claims.cid`, dropping the shard's oldest entry when it is
    /// full.
    pub(super) fn insert(&self, hash: TicketHash, claims: &TicketClaims) {
        if self.per_shard == 0 {
            return;
        }
        let entry = (
            hash,
            Remembered {
                sub: claims.sub.clone(),
                jti: claims.jti,
                iat: claims.iat,
                exp: claims.exp,
                pos: claims.pos,
                adm: claims.adm,
            },
        );
        let mut guard = self.shard(&hash);
        let shard = &mut *guard;
        if shard.index.contains_key(&hash) {
            // Two polls verified it at once; it is remembered already.
            return;
        }
        let slot = if shard.ring.len() < self.per_shard {
            if shard.ring.len() == shard.ring.capacity() {
                // Doubling, but never past the bound: a full ring wastes no slots.
                let more = shard
                    .ring
                    .len()
                    .max(16)
                    .min(self.per_shard - shard.ring.len());
                shard.ring.reserve_exact(more);
            }
            shard.ring.push(entry);
            shard.ring.len() - 1
        } else {
            let slot = shard.next;
            shard.next = (slot + 1) % self.per_shard;
            let (evicted, _) = std::mem::replace(&mut shard.ring[slot], entry);
            shard.index.remove(&evicted);
            slot
        };
        // `per_shard` fits in a u32 (see `new`), so every slot does.
        shard.index.insert(hash, slot as u32);
    }

    /// Tickets remembered now.
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).index.len())
            .sum()
    }

    fn shard(&self, hash: &TicketHash) -> std::sync::MutexGuard<'_, Shard> {
        // The hash is uniform, so its first byte spreads tickets evenly. A poisoned shard only
        // means a panic elsewhere while it was held; its map is still consistent (every update
        // above keeps `index` and `ring` in step before anything can panic).
        self.shards[usize::from(hash[0]) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

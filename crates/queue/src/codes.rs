//! Minting coupon codes outside Redis, and the per-process cache of campaign code keys.
//!
//! `decide.lua` assigns each issued request its campaign's next coupon sequence number and
//! records that number; whoever reads the decision mints the code with [`CouponCode::mint`] and
//! the campaign's secret `key` (in its meta hash). Four SHA-1s per code were most of Redis's work
//! per decision, and Redis is the one serial resource; here they run on the readers' cores.
//!
//! Safe because a code is a pure function of (campaign key, sequence number): the number is still
//! handed out once, atomically, inside the script, so codes stay distinct (guarantee 3), and every
//! reader — the API answering a status, the worker persisting the log — mints the same code.
//!
//! A campaign's key never changes during its life (PostgreSQL's `campaigns.code_key`, copied into
//! Redis by every warm-up), so each process fetches it once, with one `HGET` on the first miss,
//! and serves every later code from memory: the status path pays no extra round trip per request.
//! Warm-ups fill the cache too, from the record they read anyway.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use rushline_domain::{CampaignId, CouponCode, RequestView};

use crate::keys::meta_field;
use crate::record::StatusRecord;
use crate::{Queue, QueueError};

/// Most campaigns whose code key a process keeps: far more than run at once, so a miss (one
/// `HGET`) is rare, while a process that lives through many campaigns does not keep every key
/// it ever read.
pub(crate) const MAX_CACHED_CODE_KEYS: usize = 4096;

/// Campaign id → code key, for campaigns this process has minted codes of recently.
///
/// A std `RwLock`, not tokio's: it is never held across an `.await`, only for one map lookup or
/// insert, and lookups (every status read of an issued request) vastly outnumber inserts (one
/// per campaign per process). A hit clones an `Arc`, never a string. At most
/// [`MAX_CACHED_CODE_KEYS`] entries: a full map makes room by dropping an arbitrary entry, which
/// costs that campaign one `HGET` on its next read.
#[derive(Default)]
pub(crate) struct CodeKeys {
    keys: RwLock<HashMap<CampaignId, Arc<str>>>,
}

impl CodeKeys {
    fn get(&self, campaign: &CampaignId) -> Option<Arc<str>> {
        // Poisoning cannot leave the map half-written (an insert is one call): read on.
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(campaign).cloned()
    }

    fn insert(&self, campaign: &CampaignId, key: &str) -> Arc<str> {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_CACHED_CODE_KEYS
            && !keys.contains_key(campaign)
            && let Some(evicted) = keys.keys().next().cloned()
        {
            keys.remove(&evicted);
        }
        Arc::clone(
            keys.entry(campaign.clone())
                .or_insert_with(|| Arc::from(key)),
        )
    }
}

impl Queue {
    /// The campaign's code key: from memory, else one `HGET` of its meta hash. `None` when Redis
    /// does not hold it (the campaign's state is lost and not rebuilt yet, or never existed).
    pub async fn code_key(&self, campaign: &CampaignId) -> Result<Option<Arc<str>>, QueueError> {
        if let Some(key) = self.code_keys.get(campaign) {
            return Ok(Some(key));
        }
        let meta = self.keys.campaign(campaign).meta;
        let key: Option<String> = self
            .run(|mut conn| async move {
                Ok(redis::cmd("HGET")
                    .arg(meta)
                    .arg(meta_field::CODE_KEY)
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        Ok(key.map(|key| self.code_keys.insert(campaign, &key)))
    }

    /// Like [`Queue::code_key`], but a missing key is [`QueueError::CodeKeyMissing`].
    pub(crate) async fn require_code_key(
        &self,
        campaign: &CampaignId,
    ) -> Result<Arc<str>, QueueError> {
        self.code_key(campaign)
            .await?
            .ok_or_else(|| QueueError::CodeKeyMissing(campaign.clone()))
    }

    /// Campaigns whose code key this process holds in memory.
    pub fn cached_code_keys(&self) -> usize {
        self.code_keys
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Remembers a key read from the record (by a warm-up), sparing the first `HGET`.
    pub(crate) fn remember_code_key(&self, campaign: &CampaignId, key: &str) {
        self.code_keys.insert(campaign, key);
    }

    /// The view a status record stands for, its coupon code minted when the record holds the
    /// sequence number.
    pub(crate) async fn status_view(
        &self,
        record: StatusRecord,
    ) -> Result<RequestView, QueueError> {
        let StatusRecord {
            mut view,
            coupon_seq,
        } = record;
        if let Some(seq) = coupon_seq {
            let key = self.require_code_key(&view.campaign_id).await?;
            view.coupon_code = Some(CouponCode::mint(&key, seq));
        }
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_key_cache_stays_within_its_bound() {
        let cache = CodeKeys::default();
        for i in 0..MAX_CACHED_CODE_KEYS + 500 {
            let campaign = CampaignId::parse(format!("c-{i}")).expect("campaign id");
            assert_eq!(
                &*cache.insert(&campaign, &format!("key-{i}")),
                format!("key-{i}")
            );
            assert_eq!(
                cache.get(&campaign).as_deref(),
                Some(format!("key-{i}").as_str())
            );
        }
        let held = cache.keys.read().expect("lock").len();
        assert_eq!(held, MAX_CACHED_CODE_KEYS);
        // Inserting a held key again evicts nothing.
        let last = CampaignId::parse(format!("c-{}", MAX_CACHED_CODE_KEYS + 499)).expect("id");
        cache.insert(&last, "ignored");
        assert_eq!(cache.keys.read().expect("lock").len(), MAX_CACHED_CODE_KEYS);
        assert_eq!(
            cache.get(&last).as_deref(),
            Some(format!("key-{}", MAX_CACHED_CODE_KEYS + 499).as_str())
        );
    }
}

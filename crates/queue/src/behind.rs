//! Which campaigns this process has compared with the record since Redis last failed it.
//!
//! A failover to a replica that lacks the master's last writes leaves a campaign state behind the
//! record: it would hand out coupon numbers and stock the record has already given away. The
//! record refuses such decisions when they are persisted (and their requests are decided again),
//! but by then they may have been shown to clients (`instant` mode) or stand ahead of requests
//! queued before them. So a process that decides compares a campaign's state with the record
//! before its first decision, and again after any of its Redis calls failed — a failover fails
//! calls while the slot has no master: one indexed PostgreSQL read (the highest recorded coupon
//! number) and [`Queue::invalidate_if_behind`], which takes a state behind it out of service to be
//! rebuilt before it decides anything. [`BehindCheck`] remembers which campaigns passed. A
//! worker compares before its decide call (its loop serves one campaign at a time); the API
//! compares beside the request, so a drop's first burst never queues on PostgreSQL.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rushline_domain::CampaignId;

use crate::{Queue, QueueError};

/// After a failed call, the remembered campaigns are forgotten at most this often, so that a
/// storm of failures (timeouts under overload) costs at most one comparison per campaign per
/// interval rather than one per request. Shorter than any failover (the node timeout alone is a
/// second or more), and calls keep failing until the failover ends.
const FORGET_AT_MOST_EVERY: Duration = Duration::from_millis(250);

/// More campaigns than this and the set starts over (a bound, whatever clients send).
const REMEMBERED: usize = 10_000;

/// Campaigns compared with the record since this process's last failed Redis call.
#[derive(Debug)]
pub struct BehindCheck {
    state: Mutex<Checked>,
}

#[derive(Debug)]
struct Checked {
    /// [`Queue::failed_calls`] when the set was last started over.
    failed_calls: u64,
    forgotten_at: Instant,
    campaigns: HashSet<CampaignId>,
}

impl Default for BehindCheck {
    fn default() -> Self {
        Self {
            state: Mutex::new(Checked {
                failed_calls: 0,
                forgotten_at: Instant::now(),
                campaigns: HashSet::new(),
            }),
        }
    }
}

impl BehindCheck {
    /// Whether `campaign` must be compared with the record before this process decides from its
    /// Redis state: not compared yet, or Redis failed a call of `queue` since.
    pub fn needed(&self, queue: &Queue, campaign: &CampaignId) -> bool {
        self.needed_at(queue.failed_calls(), Instant::now(), campaign)
    }

    /// [`BehindCheck::needed`] with the failed-call count and the time given.
    fn needed_at(&self, failed_calls: u64, now: Instant, campaign: &CampaignId) -> bool {
        // A poisoned lock only means a panic elsewhere held it; the set is still a valid set.
        let mut checked = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if failed_calls != checked.failed_calls
            && now.saturating_duration_since(checked.forgotten_at) >= FORGET_AT_MOST_EVERY
        {
            checked.campaigns.clear();
            checked.failed_calls = failed_calls;
            checked.forgotten_at = now;
        }
        !checked.campaigns.contains(campaign)
    }

    /// `campaign` was compared: its state is not behind the record, or was taken out of service
    /// to be rebuilt from it.
    pub fn passed(&self, campaign: &CampaignId) {
        let mut checked = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if checked.campaigns.len() >= REMEMBERED {
            checked.campaigns.clear();
        }
        checked.campaigns.insert(campaign.clone());
    }

    /// `campaign` could not be compared after all (Redis failed the comparison): compare it
    /// again next time.
    pub fn forget(&self, campaign: &CampaignId) {
        let mut checked = self.state.lock().unwrap_or_else(|e| e.into_inner());
        checked.campaigns.remove(campaign);
    }

    /// Whether the caller must compare `campaign` now ([`BehindCheck::compare`]): it is marked
    /// compared at once, so concurrent callers do not start a second comparison.
    pub fn begin(&self, queue: &Queue, campaign: &CampaignId) -> bool {
        let needed = self.needed(queue, campaign);
        if needed {
            self.passed(campaign);
        }
        needed
    }

    /// Compares `campaign`'s Redis state with the record — `recorded_high_seq` is the record's
    /// highest coupon number (`Store::recorded_high_seq`) — and takes a state behind it out of
    /// service ([`Queue::invalidate_if_behind`]). With the record unreadable the comparison is
    /// skipped (deciding goes on while PostgreSQL is away; a persist still refuses what a state
    /// behind the record decides). When Redis fails it, the campaign is forgotten, to be
    /// compared again next time, and the error returned.
    pub async fn compare<E: std::fmt::Display>(
        &self,
        queue: &Queue,
        campaign: &CampaignId,
        recorded_high_seq: impl Future<Output = Result<Option<i64>, E>>,
    ) -> Result<(), QueueError> {
        let high = match recorded_high_seq.await {
            Ok(high) => high,
            Err(e) => {
                tracing::warn!(campaign = %campaign, error = %e, "cannot read the record's highest coupon number; using Redis's state without comparing it");
                return Ok(());
            }
        };
        queue
            .invalidate_if_behind(campaign, high)
            .await
            .map(|_| ())
            .inspect_err(|_| self.forget(campaign))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn a_campaign_is_compared_once_until_redis_fails_a_call() -> TestResult {
        let check = BehindCheck::default();
        let (drop, other) = (CampaignId::parse("drop")?, CampaignId::parse("other")?);
        let start = Instant::now();
        assert!(check.needed_at(0, start, &drop), "never compared");
        check.passed(&drop);
        assert!(!check.needed_at(0, start, &drop));
        assert!(
            check.needed_at(0, start, &other),
            "each campaign on its own"
        );

        // A failed call: every campaign is compared again...
        let later = start + FORGET_AT_MOST_EVERY;
        assert!(check.needed_at(1, later, &drop));
        check.passed(&drop);
        assert!(!check.needed_at(1, later, &drop));
        // ...but a storm of failures forgets at most once an interval, not once a request,
        let soon = later + FORGET_AT_MOST_EVERY / 2;
        assert!(!check.needed_at(7, soon, &drop));
        // and a failure is never lost: the next interval forgets.
        assert!(check.needed_at(7, later + FORGET_AT_MOST_EVERY, &drop));
        Ok(())
    }

    #[test]
    fn a_comparison_redis_failed_is_made_again_and_the_set_stays_bounded() -> TestResult {
        let check = BehindCheck::default();
        let now = Instant::now();
        let drop = CampaignId::parse("drop")?;
        check.passed(&drop);
        check.forget(&drop);
        assert!(check.needed_at(0, now, &drop));

        for n in 0..REMEMBERED + 5 {
            check.passed(&CampaignId::parse(format!("c-{n}"))?);
        }
        let remembered = check
            .state
            .lock()
            .map_err(|e| e.to_string())?
            .campaigns
            .len();
        assert!(remembered <= REMEMBERED, "{remembered} remembered");
        Ok(())
    }
}

//! Round-robin over campaigns with work: what keeps one busy campaign from starving the others.
//!
//! The decide and persist loops each keep one [`Rotation`]. A turn serves one campaign for a
//! bounded quantum (a few decide calls, one PostgreSQL transaction), then the campaign goes to
//! the back if it still has work. Campaigns woken meanwhile join at the back at once, so any
//! campaign waits at most one quantum per other campaign in the rotation — however deep the
//! busiest one's backlog is. A campaign whose turn failed sits out a backoff delay of its own
//! instead of stalling the loop for everyone.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rushline_domain::CampaignId;
use tokio::time::Instant;

use crate::backoff::Backoff;

/// Campaigns waiting for a turn, in order, and campaigns sitting out a delay after a failure.
#[derive(Default)]
pub struct Rotation {
    ready: VecDeque<CampaignId>,
    delayed: BTreeMap<CampaignId, Instant>,
    backoff: HashMap<CampaignId, Backoff>,
}

impl Rotation {
    /// Adds `campaign` at the back unless it is waiting already (in line or delayed: a delayed
    /// campaign keeps its delay, so a failing campaign is not retried at every wake-up).
    pub fn add(&mut self, campaign: CampaignId) {
        if !self.delayed.contains_key(&campaign) && !self.ready.contains(&campaign) {
            self.ready.push_back(campaign);
        }
    }

    /// Whether no campaign is waiting, in line or delayed.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.delayed.is_empty()
    }

    /// The next campaign whose turn it is (delays that ran out rejoin the line first).
    pub fn next(&mut self, now: Instant) -> Option<CampaignId> {
        let due: Vec<CampaignId> = self
            .delayed
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(c, _)| c.clone())
            .collect();
        for campaign in due {
            self.delayed.remove(&campaign);
            self.ready.push_back(campaign);
        }
        self.ready.pop_front()
    }

    /// When the earliest delayed campaign may go again.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.values().min().copied()
    }

    /// `campaign`'s turn went through: its backoff starts over.
    pub fn succeeded(&mut self, campaign: &CampaignId) {
        self.backoff.remove(campaign);
    }

    /// `campaign`'s turn failed: it sits out its next backoff delay, then rejoins.
    pub fn failed(&mut self, campaign: CampaignId, now: Instant) {
        let delay = self
            .backoff
            .entry(campaign.clone())
            .or_default()
            .next_delay();
        self.ready.retain(|c| *c != campaign);
        self.delayed.insert(campaign, now + delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CampaignId {
        CampaignId::parse(s).unwrap()
    }

    #[test]
    fn campaigns_take_turns_and_newcomers_join_at_once() {
        let mut rotation = Rotation::default();
        let now = Instant::now();
        rotation.add(id("busy"));
        assert_eq!(rotation.next(now), Some(id("busy")));
        // Still busy: back in line; a newly woken campaign joins behind it, not after it drains.
        rotation.add(id("busy"));
        rotation.add(id("late"));
        rotation.add(id("late"));
        assert_eq!(rotation.next(now), Some(id("busy")));
        rotation.add(id("busy"));
        assert_eq!(rotation.next(now), Some(id("late")));
        assert_eq!(rotation.next(now), Some(id("busy")));
        assert_eq!(rotation.next(now), None);
        assert!(rotation.is_empty());
    }

    #[test]
    fn a_failed_campaign_sits_out_its_delay_while_others_go_on() {
        let mut rotation = Rotation::default();
        let now = Instant::now();
        rotation.add(id("failing"));
        rotation.add(id("fine"));
        assert_eq!(rotation.next(now), Some(id("failing")));
        rotation.failed(id("failing"), now);
        rotation.add(id("failing"));
        assert_eq!(rotation.next(now), Some(id("fine")));
        assert_eq!(rotation.next(now), None);
        let due = rotation.next_due().unwrap();
        assert!(due > now && !rotation.is_empty());
        assert_eq!(rotation.next(due), Some(id("failing")));
        rotation.succeeded(&id("failing"));
        assert!(rotation.is_empty());
    }
}

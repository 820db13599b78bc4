//! Each replica's short-lived copy of every waiting room's serving counter.
//!
//! A status poll must not need Redis in the steady state (issue 12): 100,000 people polling
//! every few seconds would otherwise cost Redis more than the drop itself. The counter is the
//! same for every replica (it lives in Redis, advanced by `queue_counter.lua`), and a copy that is
//! a fraction of a second old is safe for every use here, because the counter never decreases:
//! a stale copy can only make a ticket look *less* admitted than it is (a `not-your-turn` a moment
//! too long), never admit one early. Requests that would be refused on the copy alone are asked
//! of Redis before refusing (see [`super::admission`]).
//!
//! One refresh at a time per campaign: a poll that finds its copy stale while another caller is
//! already refreshing it answers from the stale copy (up to [`STALE_LIMIT`] old) instead of
//! adding a Redis call. Entries exist only for campaigns Redis reported a waiting room for, and
//! their number is capped, so no client can grow this map by naming campaigns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rushline_domain::CampaignId;
use rushline_queue::{Queue, QueueCounter, QueueError, WaitingRoomRead};
use tokio::time::Instant;

/// How long a copy is used without asking Redis.
pub const FRESH_FOR: Duration = Duration::from_millis(200);
/// How old a copy may get while another caller refreshes it.
pub const STALE_LIMIT: Duration = Duration::from_secs(2);
/// Most campaigns held at once; past it the map starts over (waiting rooms are created by
/// operators, so in practice this is never reached).
const MAX_CAMPAIGNS: usize = 10_000;

/// One campaign's copy.
struct Entry {
    copy: Mutex<Copy>,
    refreshing: AtomicBool,
}

#[derive(Clone, Copy)]
struct Copy {
    counter: QueueCounter,
    read_at: Instant,
}

/// A counter as of now: Redis's reading, and Redis's clock estimated for this moment.
#[derive(Debug, Clone, Copy)]
pub struct CounterNow {
    /// The counter as Redis last reported it.
    pub counter: QueueCounter,
    /// Redis's clock now: the reading's time plus what has passed here since.
    pub now: DateTime<Utc>,
}

/// The copies, shared by every handler of this process.
pub struct Counters {
    queue: Queue,
    entries: Mutex<HashMap<CampaignId, Arc<Entry>>>,
}

impl Counters {
    /// No copies yet.
    pub fn new(queue: Queue) -> Self {
        Self {
            queue,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The campaign's counter, from the copy when it is fresh, else from Redis (which advances
    /// it).
    pub async fn get(
        &self,
        campaign: &CampaignId,
    ) -> Result<WaitingRoomRead<CounterNow>, QueueError> {
        let entry = self.entry(campaign);
        if let Some(entry) = &entry {
            let copy = read(entry);
            let age = copy.read_at.elapsed();
            if answer_from_copy(age, &entry.refreshing) {
                return Ok(WaitingRoomRead::Ready(now_of(copy)));
            }
        }
        let fresh = self.queue.waiting_room_counter(campaign).await;
        if let Some(entry) = &entry {
            entry.refreshing.store(false, Ordering::Release);
        }
        Ok(match fresh? {
            WaitingRoomRead::Ready(counter) => {
                WaitingRoomRead::Ready(self.observe(campaign, counter))
            }
            WaitingRoomRead::NoWaitingRoom => WaitingRoomRead::NoWaitingRoom,
            WaitingRoomRead::NotWarm => WaitingRoomRead::NotWarm,
        })
    }

    /// Takes a counter Redis just reported (with a join or a place lookup) as the campaign's
    /// copy, unless the copy held is newer; returns it as of now.
    pub fn observe(&self, campaign: &CampaignId, counter: QueueCounter) -> CounterNow {
        let read_at = Instant::now();
        let fresh = Copy { counter, read_at };
        let mut entries = lock(&self.entries);
        if let Some(entry) = entries.get(campaign) {
            let mut copy = entry.copy.lock().unwrap_or_else(|p| p.into_inner());
            if copy.counter.now <= counter.now {
                *copy = fresh;
            }
            return now_of(*copy);
        }
        if entries.len() >= MAX_CAMPAIGNS {
            entries.clear();
        }
        entries.insert(
            campaign.clone(),
            Arc::new(Entry {
                copy: Mutex::new(fresh),
                refreshing: AtomicBool::new(false),
            }),
        );
        now_of(fresh)
    }

    /// Every campaign held, with its copy (for the metrics scrape).
    pub fn snapshot(&self) -> Vec<(CampaignId, QueueCounter)> {
        lock(&self.entries)
            .iter()
            .map(|(campaign, entry)| (campaign.clone(), read(entry).counter))
            .collect()
    }

    fn entry(&self, campaign: &CampaignId) -> Option<Arc<Entry>> {
        lock(&self.entries).get(campaign).cloned()
    }
}

/// Whether a copy `age` old answers: fresh, yes; stale, the one caller that flips `refreshing`
/// goes to Redis (and clears it after) while the others answer from the copy, unless it is older
/// than [`STALE_LIMIT`].
fn answer_from_copy(age: Duration, refreshing: &AtomicBool) -> bool {
    age < FRESH_FOR || (age < STALE_LIMIT && refreshing.swap(true, Ordering::AcqRel))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind, still usable.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn read(entry: &Entry) -> Copy {
    *lock(&entry.copy)
}

fn now_of(copy: Copy) -> CounterNow {
    let elapsed = chrono::TimeDelta::from_std(copy.read_at.elapsed()).unwrap_or_default();
    CounterNow {
        counter: copy.counter,
        now: copy.counter.now + elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_copy_answers_and_one_caller_refreshes_a_stale_one() {
        let refreshing = AtomicBool::new(false);
        // Fresh: answered from the copy, and nobody is marked as refreshing.
        assert!(answer_from_copy(FRESH_FOR / 2, &refreshing));
        assert!(!refreshing.load(Ordering::Acquire));
        // Stale: the first caller refreshes, the next ones answer from the copy meanwhile.
        let stale = FRESH_FOR + Duration::from_millis(1);
        assert!(!answer_from_copy(stale, &refreshing));
        assert!(answer_from_copy(stale, &refreshing));
        assert!(answer_from_copy(stale, &refreshing));
        // Too old to answer from, refresh or not.
        assert!(!answer_from_copy(STALE_LIMIT, &refreshing));
        // Once the refresh is done, the next stale read refreshes again.
        refreshing.store(false, Ordering::Release);
        assert!(!answer_from_copy(stale, &refreshing));
    }
}

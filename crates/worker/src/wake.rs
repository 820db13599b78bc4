//! Which campaigns have work: notifications, sweeps, and the sets the loops take work from.
//!
//! Idle workers block on the `work` subscription (a dedicated connection) — no polling, no
//! sleeping — and pick up a new request within a round trip of its accept. A periodic sweep of
//! the campaign registry covers whatever a notification missed (a dropped subscription, a worker
//! that started after the message), so a missed message costs at most one sweep interval.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rushline_domain::CampaignId;
use rushline_queue::{Queue, Subscriber};
use rushline_runtime::Backoff;
use rushline_store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A set of campaigns to visit, with a wake-up for the loop that drains it.
#[derive(Clone, Default)]
pub struct Pending {
    campaigns: Arc<Mutex<BTreeSet<CampaignId>>>,
    notify: Arc<Notify>,
}

impl Pending {
    /// Marks `campaign` as having work and wakes the loop.
    pub fn add(&self, campaign: CampaignId) {
        self.lock().insert(campaign);
        self.notify.notify_one();
    }

    /// Takes every marked campaign.
    pub fn take(&self) -> BTreeSet<CampaignId> {
        std::mem::take(&mut *self.lock())
    }

    /// Resolves once something was added since the last take (a stored permit makes an add
    /// before this call count).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<CampaignId>> {
        self.campaigns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Feeds `targets` from the `work` channel until `token` is cancelled; resubscribes on loss.
pub async fn listen(
    subscriber: Subscriber,
    channel: String,
    targets: Vec<Pending>,
    token: CancellationToken,
) {
    let mut backoff = Backoff::default();
    while !token.is_cancelled() {
        match subscriber.subscribe(&channel).await {
            Ok(mut notifications) => {
                backoff.reset();
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        message = notifications.next() => match message {
                            Some(id) => {
                                if let Ok(id) = CampaignId::parse(id) {
                                    for target in &targets {
                                        target.add(id.clone());
                                    }
                                }
                            }
                            None => break,
                        },
                    }
                }
                tracing::warn!("work subscription ended; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to work notifications"),
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// How long after its window closed a campaign is still checked against the registry.
const REGISTRY_CHECK_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Every `every`, marks every registered campaign in `targets` (and tells `on_sweep`), after
/// re-registering ready campaigns the registry lost ([`repair_registry`]).
pub async fn sweep(
    queue: Queue,
    store: Store,
    every: Duration,
    targets: Vec<Pending>,
    sweeps: Pending,
    token: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = ticker.tick() => {}
        }
        repair_registry(&queue, &store).await;
        match queue.campaigns().await {
            Ok(campaigns) => {
                for campaign in campaigns {
                    for target in &targets {
                        target.add(campaign.clone());
                    }
                    sweeps.add(campaign);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list campaigns"),
        }
    }
}

/// Re-registers campaigns that are ready in Redis but missing from the registry, checked against
/// the campaigns PostgreSQL has in play: the registry is a separate key (another slot on a
/// Cluster), so its entry can be lost while the campaign's state survives. Failures are logged
/// and retried at the next sweep.
async fn repair_registry(queue: &Queue, store: &Store) {
    let candidates = match store.campaigns_in_play(REGISTRY_CHECK_GRACE).await {
        Ok(candidates) => candidates,
        Err(e) => {
            // Debug only: this runs every sweep, and the persist loop already reports an outage.
            tracing::debug!(error = %e, "cannot list campaigns in PostgreSQL to check the registry");
            return;
        }
    };
    if let Err(e) = queue.register_ready(&candidates).await {
        tracing::warn!(error = %e, "cannot check the campaign registry");
    }
}

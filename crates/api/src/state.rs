//! The state every handler shares.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rushline_domain::CampaignId;
use rushline_queue::behind::BehindCheck;
use rushline_queue::{ClockReading, Queue, Warmed};
use rushline_store::Store;
use tokio_util::sync::CancellationToken;

use crate::accept::Acceptor;
use crate::config::Config;
use crate::http::ApiError;
use crate::telemetry;
use crate::tickets::Tickets;
use crate::waiters::Waiters;
use crate::waiting_room::WaitingRoom;

/// Cloned into every handler: configuration, Redis, PostgreSQL, the group-commit acceptor and
/// the `?wait=` waiters.
///
/// One `Arc` around the parts: axum clones the state (and the route's handler service holding
/// it) several times per request, and the profile showed cloning and dropping each part's own
/// reference counts (and the cancellation token's lock) at several percent of the hot path.
/// Handlers read the parts through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

/// What [`AppState`] shares.
pub struct Parts {
    /// Start-up configuration.
    pub config: Arc<Config>,
    /// Redis.
    pub queue: Queue,
    /// PostgreSQL.
    pub store: Store,
    /// The hot path.
    pub acceptor: Acceptor,
    /// Callers parked on `?wait=`.
    pub waiters: Waiters,
    /// Signs and verifies waiting-room tickets.
    pub tickets: Tickets,
    /// Waiting rooms: tickets and counter copies.
    pub waiting_room: WaitingRoom,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Campaigns whose Redis state was compared with the record since Redis last failed this
    /// process (`instant` mode decides here; see `rushline_queue::behind`).
    pub behind: BehindCheck,
}

impl AppState {
    /// Shares `parts` with every handler.
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl AppState {
    /// Makes sure the campaign's state is in Redis, building it from PostgreSQL if needed.
    pub async fn warm(&self, campaign: &CampaignId) -> Result<Warmed, ApiError> {
        self.queue
            .warm(campaign, &self.store)
            .await
            .map_err(ApiError::unavailable)
    }

    /// "This campaign, warmed": runs `attempt` against Redis, and when it finds the campaign cold
    /// (`Ok(None)`: Redis does not hold its state, after a restart or an eviction) builds that
    /// state from PostgreSQL and runs `attempt` once more.
    ///
    /// Every step that needs a campaign's state in Redis goes through here, so the rule is
    /// written once: 404 when the record has no such campaign, 503 when the campaign is still
    /// cold right after its warm-up (Redis lost it again at once; a retry will do). The first
    /// attempt is the whole cost on a warm campaign, so the hot path pays nothing for it.
    ///
    /// The campaign's state is compared with the record when this process has not done so since
    /// Redis last failed it ([`BehindCheck`]): an `instant` accept decides here, and should not
    /// decide from a state a failover left behind the record. The comparison runs beside the
    /// request, once per campaign, never in front of it: at a drop's first burst every request
    /// waiting on a PostgreSQL read would queue thousands on the pool. Decisions in the
    /// millisecond it takes are caught when persisted (the record refuses them and their
    /// requests are decided again).
    pub async fn warmed<T, Attempt, Fut>(
        &self,
        campaign: &CampaignId,
        mut attempt: Attempt,
    ) -> Result<T, ApiError>
    where
        Attempt: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, ApiError>>,
    {
        if self.behind.begin(&self.queue, campaign) {
            self.compare_with_record(campaign);
        }
        if let Some(found) = attempt().await? {
            return Ok(found);
        }
        if self.warm(campaign).await? == Warmed::NotFound {
            return Err(ApiError::no_such_campaign());
        }
        attempt().await?.ok_or_else(|| {
            ApiError::unavailable(anyhow::anyhow!(
                "campaign {campaign} not warm after warm-up"
            ))
        })
    }

    /// Compares `campaign`'s Redis state with the record in a task of its own
    /// ([`BehindCheck::compare`]): a state behind it is taken out of service, so the next step
    /// rebuilds it.
    fn compare_with_record(&self, campaign: &CampaignId) {
        let (state, campaign) = (self.clone(), campaign.clone());
        tokio::spawn(async move {
            let record = state.store.recorded_high_seq(&campaign);
            if let Err(e) = state.behind.compare(&state.queue, &campaign, record).await {
                tracing::warn!(campaign = %campaign, error = %e, "cannot compare the campaign's Redis state with the record; the next request tries again");
            }
        });
    }

    /// Now, by Redis's clock: the clock `accept.lua` decides windows with, the same for every
    /// replica (see `rushline_queue::clock`). Every window decision and every `status` shown
    /// reads it here, never this host's clock. Records the skew as a side effect.
    pub async fn now(&self) -> Result<DateTime<Utc>, ApiError> {
        Ok(self
            .read_clock()
            .await
            .map_err(ApiError::unavailable)?
            .redis_now)
    }

    /// This host's clock (with the test offset): only for display when Redis's clock cannot be
    /// read, never for a decision.
    pub fn host_now(&self) -> DateTime<Utc> {
        Utc::now() + self.config.clock_offset
    }

    /// Reads Redis's clock and reports this host's skew from it
    /// (`rushline_clock_skew_seconds`).
    pub async fn read_clock(&self) -> Result<ClockReading, rushline_queue::QueueError> {
        let reading = self.queue.read_clock(|| self.host_now()).await?;
        metrics::gauge!(telemetry::CLOCK_SKEW).set(reading.skew.as_seconds_f64());
        Ok(reading)
    }
}

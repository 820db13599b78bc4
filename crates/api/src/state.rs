//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use rushline_domain::CampaignId;
use rushline_queue::{Queue, Warmed};
use rushline_store::Store;
use tokio_util::sync::CancellationToken;

use crate::accept::Acceptor;
use crate::config::Config;
use crate::http::ApiError;
use crate::waiters::Waiters;

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
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
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
}

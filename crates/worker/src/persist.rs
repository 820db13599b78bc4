//! The persist loop: copy decisions from the Redis logs into PostgreSQL, then acknowledge them.
//!
//! Per turn of a campaign with news: clear its log flag, then read the entries no consumer has
//! seen (`XREADGROUP >`, at most `persist_entries`), write them in one transaction, undo in Redis
//! whatever the record refused, and acknowledge. Campaigns take turns round-robin
//! ([`Rotation`]), so a long log never holds up another campaign's. A task of its own,
//! [`take_over`], claims entries left pending by a dead worker on every sweep.
//!
//! Where a decision is at each moment: in the log only (a crash re-delivers it to whoever claims
//! it) → pending on this consumer (same) → committed in PostgreSQL but not acknowledged (a crash
//! makes someone persist it again: the insert does nothing, refusals are re-derived from the
//! record) → acknowledged and gone from the log. Nothing is lost at any step; nothing is
//! decided here at all.
//!
//! While PostgreSQL is down, writes are retried with jittered backoff (per campaign, holding the
//! entries already taken); decisions wait in Redis.

use std::collections::{BTreeSet, HashMap, VecDeque};

use rushline_domain::{CampaignId, Decision};
use rushline_queue::{LogEntry, QueueError, Rollback};
use rushline_store::Persisted;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::decide::sleep_until;
use crate::rotation::Rotation;
use crate::telemetry::{self, Backend};
use crate::wake::Pending;

/// Persists until `token` is cancelled, then drains every campaign it knows until their logs
/// hold nothing unread (or the hard-stop deadline passes).
///
/// One [`Rotation`]: a turn is one transaction's worth of one campaign's log
/// (`persist_entries` entries); a campaign that filled it goes to the back of the line, behind
/// every campaign woken meanwhile. A turn that fails keeps the entries it took in hand (they are
/// pending on this consumer) and the campaign sits out a backoff delay; the next turn retries
/// exactly those entries, every step of which is idempotent.
pub async fn run(ctx: Context, pending: Pending, token: CancellationToken) {
    let mut loop_state = Persister::default();
    loop {
        if token.is_cancelled() {
            break;
        }
        for campaign in pending.take() {
            loop_state.add(campaign);
        }
        let Some(campaign) = loop_state.rotation.next(Instant::now()) else {
            let due = loop_state.rotation.next_due();
            tokio::select! {
                () = token.cancelled() => break,
                () = pending.changed() => {}
                () = sleep_until(due) => {}
            }
            continue;
        };
        loop_state.turn(&ctx, campaign).await;
    }
    // Shutdown: the decide loop has stopped; persist what this worker (or anyone) left unread.
    for campaign in pending.take() {
        loop_state.add(campaign);
    }
    let known = std::mem::take(&mut loop_state.known);
    for campaign in known {
        loop_state.rotation.add(campaign);
    }
    while !loop_state.rotation.is_empty() {
        let Some(campaign) = loop_state.rotation.next(Instant::now()) else {
            tokio::select! {
                () = ctx.hard_stop.cancelled() => return,
                () = sleep_until(loop_state.rotation.next_due()) => {}
            }
            continue;
        };
        loop_state.turn(&ctx, campaign).await;
    }
}

/// The persist loop's state between turns.
#[derive(Default)]
struct Persister {
    rotation: Rotation,
    /// Entries a failed turn took (pending on this consumer), to retry on the campaign's next turn.
    held: HashMap<CampaignId, Vec<LogEntry>>,
    /// Every campaign seen, for the drain at shutdown.
    known: BTreeSet<CampaignId>,
}

impl Persister {
    fn add(&mut self, campaign: CampaignId) {
        self.known.insert(campaign.clone());
        self.rotation.add(campaign);
    }

    /// One turn of `campaign`: the entries a failed turn left in hand, else its next unread ones.
    async fn turn(&mut self, ctx: &Context, campaign: CampaignId) {
        let retrying = self.held.remove(&campaign);
        let was_retry = retrying.is_some();
        let entries = match retrying {
            Some(entries) => entries,
            None => match read_new(ctx, &campaign).await {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(campaign = %campaign, error = %e, "reading the decision log failed; retrying");
                    telemetry::backend_error(Backend::Redis, "reading log");
                    self.rotation.failed(campaign, Instant::now());
                    return;
                }
            },
        };
        if entries.is_empty() {
            self.rotation.succeeded(&campaign);
            return;
        }
        match persist_entries(ctx, &campaign, &entries).await {
            Ok(()) => {
                self.rotation.succeeded(&campaign);
                // A full read (or a retry) may have left more behind; anything appended after a
                // short read raised the log flag again, which wakes this loop anyway.
                if was_retry || entries.len() >= ctx.config.persist_entries {
                    self.rotation.add(campaign);
                }
            }
            Err(failure) => {
                tracing::warn!(campaign = %campaign, error = %failure.error, "{} failed; retrying", failure.step);
                telemetry::backend_error(failure.backend, failure.step);
                self.held.insert(campaign.clone(), entries);
                self.rotation.failed(campaign, Instant::now());
            }
        }
    }
}

/// Clears the campaign's log flag, then takes up to `persist_entries` entries no consumer has
/// seen yet (they become pending on this consumer).
async fn read_new(ctx: &Context, campaign: &CampaignId) -> Result<Vec<LogEntry>, QueueError> {
    ctx.queue.clear_log_flag(campaign).await?;
    ctx.queue
        .read_log(campaign, &ctx.consumer, ctx.config.persist_entries)
        .await
}

/// Takes over, on every sweep, the entries other consumers left pending longer than
/// `claim_idle` (their worker is presumed dead), until `token` is cancelled.
///
/// A task of its own, so takeover never waits behind the persist loop's backlog: a dead worker's
/// entries are persisted within about `claim_idle` plus one sweep whatever else is busy. Each
/// campaign gets one claim (`persist_entries` entries) per pass, round-robin, until none has
/// more; a failure leaves the entries to the next sweep.
pub async fn take_over(ctx: Context, sweeps: Pending, token: CancellationToken) {
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            () = sweeps.changed() => {}
        }
        let mut rotation: VecDeque<CampaignId> = sweeps.take().into_iter().collect();
        while let Some(campaign) = rotation.pop_front() {
            if token.is_cancelled() {
                return;
            }
            let entries = match ctx
                .queue
                .claim_stale(
                    &campaign,
                    &ctx.consumer,
                    ctx.config.claim_idle,
                    ctx.config.persist_entries,
                )
                .await
            {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(campaign = %campaign, error = %e, "claiming stale log entries failed; next sweep retries");
                    telemetry::backend_error(Backend::Redis, "claiming stale log entries");
                    continue;
                }
            };
            if entries.is_empty() {
                continue;
            }
            tracing::info!(campaign = %campaign, entries = entries.len(), "took over stale log entries");
            match persist_entries(&ctx, &campaign, &entries).await {
                Ok(()) if entries.len() >= ctx.config.persist_entries => {
                    rotation.push_back(campaign);
                }
                Ok(()) => {}
                // Still pending on this consumer: claimed again (by anyone) once idle again.
                Err(failure) => {
                    tracing::warn!(campaign = %campaign, error = %failure.error, "{} failed for taken-over entries; next sweep retries", failure.step);
                    telemetry::backend_error(failure.backend, failure.step);
                }
            }
        }
    }
}

/// A step of [`persist_entries`] failed; every step is safe to run again.
#[derive(Debug)]
pub struct StepFailed {
    /// What was being done.
    pub step: &'static str,
    /// Against which backend.
    pub backend: Backend,
    /// Why.
    pub error: String,
}

impl StepFailed {
    fn new(step: &'static str, backend: Backend) -> impl FnOnce(String) -> Self {
        move |error| Self {
            step,
            backend,
            error,
        }
    }
}

/// One transaction for `entries`, then the Redis undo of refusals, then the acknowledgement.
async fn persist_entries(
    ctx: &Context,
    campaign: &CampaignId,
    entries: &[LogEntry],
) -> Result<(), StepFailed> {
    let decisions: Vec<Decision> = entries
        .iter()
        .flat_map(|e| e.decisions.iter().cloned())
        .collect();
    let persisted: Persisted = ctx
        .store
        .persist(campaign, &decisions)
        .await
        .map_err(|e| e.to_string())
        .map_err(StepFailed::new(
            "writing decisions to PostgreSQL",
            Backend::Postgres,
        ))?;
    metrics::counter!(telemetry::PERSISTED_ROWS).increment(persisted.inserted);
    metrics::histogram!(telemetry::PERSIST_BATCH).record(decisions.len() as f64);
    if !persisted.refused.is_empty() {
        let rollbacks: Vec<Rollback> = persisted
            .refused
            .iter()
            .map(|r| Rollback {
                request_id: r.request_id,
                user_id: r.user_id.clone(),
                coupon_code: r.coupon_code.clone(),
                coupon_seq: r.coupon_seq,
                new_status: r.recorded,
                holder: r.holder,
            })
            .collect();
        let undone = ctx
            .queue
            .rollback(campaign, &rollbacks)
            .await
            .map_err(|e| e.to_string())
            .map_err(StepFailed::new("undoing refused decisions", Backend::Redis))?;
        tracing::warn!(campaign = %campaign, refused = rollbacks.len(), undone, "record refused decisions; Redis brought in line");
        metrics::counter!(telemetry::ROLLBACKS).increment(undone);
    }
    ctx.queue
        .ack(campaign, entries)
        .await
        .map_err(|e| e.to_string())
        .map_err(StepFailed::new("acknowledging log entries", Backend::Redis))
}

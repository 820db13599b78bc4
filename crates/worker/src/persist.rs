//! The persist loop: copy decisions from the Redis logs into PostgreSQL, then acknowledge them.
//!
//! Per campaign with news: clear its log flag, then read every entry no consumer has seen
//! (`XREADGROUP >`), write them in one transaction, undo in Redis whatever the record refused,
//! and acknowledge. On each sweep it also takes over entries left pending by a dead worker.
//!
//! Where a decision is at each moment: in the log only (a crash re-delivers it to whoever claims
//! it) → pending on this consumer (same) → committed in PostgreSQL but not acknowledged (a crash
//! makes someone persist it again: the insert does nothing, refusals are re-derived from the
//! record) → acknowledged and gone from the log. Nothing is lost at any step; nothing is
//! decided here at all.
//!
//! While PostgreSQL is down, writes are retried with jittered backoff; decisions wait in Redis.

use std::collections::BTreeSet;

use rushline_domain::{CampaignId, Decision};
use rushline_queue::{LogEntry, Rollback};
use rushline_store::Persisted;
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::backoff::Backoff;
use crate::telemetry::{self, Backend};
use crate::wake::Pending;

/// The loop gave up on a batch because the hard-stop deadline passed; it stays pending in Redis.
#[derive(Debug, thiserror::Error)]
#[error("abandoned at shutdown; the entries stay pending for another worker")]
pub struct Abandoned;

/// Persists until `token` is cancelled, then makes a last pass over every campaign it knows.
pub async fn run(ctx: Context, pending: Pending, sweeps: Pending, token: CancellationToken) {
    let mut known = BTreeSet::new();
    loop {
        let due = pending.take();
        let swept = sweeps.take();
        if due.is_empty() && swept.is_empty() {
            tokio::select! {
                () = token.cancelled() => break,
                () = pending.changed() => {}
                () = sweeps.changed() => {}
            }
            continue;
        }
        for campaign in due.iter().chain(&swept) {
            known.insert(campaign.clone());
            if persist_new(&ctx, campaign).await.is_err() {
                return;
            }
        }
        for campaign in &swept {
            if persist_stale(&ctx, campaign).await.is_err() {
                return;
            }
        }
    }
    // Shutdown: the decide loop has stopped; persist what this worker (or anyone) left unread.
    known.extend(pending.take());
    for campaign in &known {
        if persist_new(&ctx, campaign).await.is_err() {
            return;
        }
    }
}

/// Reads and persists every entry of `campaign` that no consumer has seen yet.
async fn persist_new(ctx: &Context, campaign: &CampaignId) -> Result<(), Abandoned> {
    retry(ctx, Backend::Redis, "clearing log flag", || {
        ctx.queue.clear_log_flag(campaign)
    })
    .await?;
    loop {
        let entries = retry(ctx, Backend::Redis, "reading log", || {
            ctx.queue
                .read_log(campaign, &ctx.consumer, ctx.config.persist_entries)
        })
        .await?;
        if entries.is_empty() {
            return Ok(());
        }
        persist_entries(ctx, campaign, &entries).await?;
    }
}

/// Takes over and persists entries another consumer left pending too long.
async fn persist_stale(ctx: &Context, campaign: &CampaignId) -> Result<(), Abandoned> {
    loop {
        let entries = retry(ctx, Backend::Redis, "claiming stale log entries", || {
            ctx.queue.claim_stale(
                campaign,
                &ctx.consumer,
                ctx.config.claim_idle,
                ctx.config.persist_entries,
            )
        })
        .await?;
        if entries.is_empty() {
            return Ok(());
        }
        tracing::info!(campaign = %campaign, entries = entries.len(), "took over stale log entries");
        persist_entries(ctx, campaign, &entries).await?;
    }
}

/// One transaction for `entries`, then the Redis undo of refusals, then the acknowledgement.
async fn persist_entries(
    ctx: &Context,
    campaign: &CampaignId,
    entries: &[LogEntry],
) -> Result<(), Abandoned> {
    let decisions: Vec<Decision> = entries
        .iter()
        .flat_map(|e| e.decisions.iter().cloned())
        .collect();
    let persisted: Persisted = retry(
        ctx,
        Backend::Postgres,
        "writing decisions to PostgreSQL",
        || ctx.store.persist(campaign, &decisions),
    )
    .await?;
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
        let undone = retry(ctx, Backend::Redis, "undoing refused decisions", || {
            ctx.queue.rollback(campaign, &rollbacks)
        })
        .await?;
        tracing::warn!(campaign = %campaign, refused = rollbacks.len(), undone, "record refused decisions; Redis brought in line");
        metrics::counter!(telemetry::ROLLBACKS).increment(undone);
        rebuild_from_record(ctx, campaign).await?;
    }
    retry(ctx, Backend::Redis, "acknowledging log entries", || {
        ctx.queue.ack(campaign, entries)
    })
    .await
}

/// A refusal means Redis disagreed with the record: it issued a sequence number the record holds
/// (a Redis that came back older than the record: host crash, failover to a lagging replica), a
/// coupon to a user the record says holds one, or past the record's room. Its state is then
/// taken out of service and rebuilt from the record on the campaign's next use (after the log is
/// persisted), rather than deciding on from it — reusing numbers, missing holders, with
/// `remaining` forced to 0 by the rollback while the record has room. Refusals happen only when
/// Redis lost data, so rebuilds stay rare. See `Queue::invalidate_for_rebuild`.
async fn rebuild_from_record(ctx: &Context, campaign: &CampaignId) -> Result<(), Abandoned> {
    retry(
        ctx,
        Backend::Redis,
        "taking Redis's state out of service",
        || ctx.queue.invalidate_for_rebuild(campaign),
    )
    .await?;
    Ok(())
}

/// Retries `op` (a call to `backend`) with backoff until it succeeds or the hard-stop token fires.
async fn retry<T, E, F, Fut>(
    ctx: &Context,
    backend: Backend,
    what: &'static str,
    mut op: F,
) -> Result<T, Abandoned>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::default();
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying");
                telemetry::backend_error(backend, what);
            }
        }
        tokio::select! {
            () = ctx.hard_stop.cancelled() => return Err(Abandoned),
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

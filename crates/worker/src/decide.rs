//! The decide loop: take batches off campaign queues and decide them in Redis.
//!
//! Each call of `decide.lua` atomically pops a batch, decides it and appends it to the
//! campaign's decision log, so this loop never holds a request outside Redis: a SIGKILL at any
//! line loses nothing and decides nothing twice. Campaigns with work are served round-robin, one
//! turn each (one batch, or `decide_in_flight` batches at once while the queue is deep), so one
//! hot campaign cannot starve the others. On shutdown the loop finishes the calls in progress and
//! stops. A campaign whose decision log is at its bound (PostgreSQL is
//! behind) is skipped until the next sweep: Redis never buffers without limit.

use std::collections::BTreeMap;

use futures::future::join_all;

use rushline_domain::CampaignId;
use rushline_queue::{DecideOutcome, WarmError, Warmed};
use rushline_store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::backoff::Backoff;
use crate::telemetry::{self, Backend};
use crate::wake::Pending;

/// Decides until `token` is cancelled. `pending` says which campaigns may have queued requests;
/// campaigns that got decisions are handed to `persist`.
pub async fn run(ctx: Context, pending: Pending, persist: Pending, token: CancellationToken) {
    let mut backoff = Backoff::default();
    loop {
        // Each campaign with work, and how many requests its last call left queued (0: unknown).
        let mut campaigns: BTreeMap<CampaignId, u64> =
            pending.take().into_iter().map(|c| (c, 0)).collect();
        if campaigns.is_empty() {
            tokio::select! {
                () = token.cancelled() => return,
                () = pending.changed() => continue,
            }
        }
        while !campaigns.is_empty() {
            let mut busy = BTreeMap::new();
            for (campaign, backlog) in campaigns {
                if token.is_cancelled() {
                    return;
                }
                match decide_round(&ctx, &campaign, backlog).await {
                    Ok(outcome) if outcome.log_full => {
                        // PostgreSQL is behind: leave the requests queued (the queue's bound
                        // sheds new ones at the API) until a sweep finds the log shorter.
                        tracing::warn!(campaign = %campaign, queued = outcome.left, "decision log full; deciding paused until persistence catches up");
                        metrics::counter!(telemetry::DECIDE_PAUSED).increment(1);
                    }
                    Ok(outcome) => {
                        backoff.reset();
                        if outcome.decided > 0 {
                            persist.add(campaign.clone());
                        }
                        if outcome.left > 0 {
                            busy.insert(campaign, outcome.left);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(campaign = %campaign, error = %e, "deciding failed; retrying");
                        telemetry::backend_error(backend_of(&e), "deciding");
                        pending.add(campaign);
                        tokio::select! {
                            () = token.cancelled() => return,
                            () = tokio::time::sleep(backoff.next_delay()) => {}
                        }
                    }
                }
            }
            campaigns = busy;
        }
    }
}

/// One turn of `campaign`: a single call while its backlog is unknown or fits one batch, else up
/// to `decide_in_flight` calls at once, so Redis starts the next batch while the previous reply
/// travels back. Concurrent calls are as safe as concurrent workers: each script pops the
/// queue's head atomically, so decisions still follow queue order. Outcomes are summed; `left`
/// is the smallest any call saw (the last one Redis ran).
async fn decide_round(
    ctx: &Context,
    campaign: &CampaignId,
    backlog: u64,
) -> anyhow::Result<DecideOutcome> {
    let batch = ctx.config.decide_batch as u64;
    let calls = backlog
        .div_ceil(batch)
        .clamp(1, ctx.config.decide_in_flight as u64) as usize;
    if calls == 1 {
        return decide_batch(ctx, campaign).await;
    }
    let outcomes = join_all((0..calls).map(|_| decide_batch(ctx, campaign))).await;
    let mut total = DecideOutcome {
        left: u64::MAX,
        ..DecideOutcome::default()
    };
    let mut first_error = None;
    for outcome in outcomes {
        match outcome {
            Ok(o) => {
                total.decided += o.decided;
                total.issued += o.issued;
                total.sold_out += o.sold_out;
                total.duplicate += o.duplicate;
                total.left = total.left.min(o.left);
                total.log_full |= o.log_full;
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    // A full log stops the campaign only when nothing at all was decided this turn.
    total.log_full &= total.decided == 0;
    match first_error {
        // What the other calls decided is in the log already; persist it before retrying.
        Some(e) if total.decided > 0 => {
            tracing::warn!(campaign = %campaign, error = %e, "one of the concurrent decide calls failed");
            telemetry::backend_error(backend_of(&e), "deciding");
            total.left = total.left.max(1);
            Ok(total)
        }
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// One batch of one campaign, warming the campaign first if Redis does not hold it.
async fn decide_batch(ctx: &Context, campaign: &CampaignId) -> anyhow::Result<DecideOutcome> {
    for _ in 0..2 {
        if let Some(outcome) = ctx.queue.decide(campaign, ctx.config.decide_batch).await? {
            record(&outcome);
            return Ok(outcome);
        }
        if ctx.queue.warm(campaign, &ctx.store).await? == Warmed::NotFound {
            tracing::warn!(campaign = %campaign, "queued requests for a campaign the record does not have");
            return Ok(DecideOutcome::default());
        }
    }
    // Warmed but gone again (Redis emptied meanwhile): try on the next round.
    Ok(DecideOutcome {
        left: 1,
        ..DecideOutcome::default()
    })
}

fn record(outcome: &DecideOutcome) {
    if outcome.decided == 0 {
        return;
    }
    for (outcome, count) in [
        ("issued", outcome.issued),
        ("sold_out", outcome.sold_out),
        ("duplicate", outcome.duplicate),
    ] {
        metrics::counter!(telemetry::DECISIONS, "outcome" => outcome).increment(count);
    }
    metrics::histogram!(telemetry::DECIDE_BATCH).record(outcome.decided as f64);
}

/// Deciding reads PostgreSQL only to warm a campaign; every other failure is Redis's.
fn backend_of(error: &anyhow::Error) -> Backend {
    match error.downcast_ref::<WarmError<StoreError>>() {
        Some(WarmError::Source(_)) => Backend::Postgres,
        _ => Backend::Redis,
    }
}

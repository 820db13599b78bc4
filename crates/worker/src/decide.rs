//! The decide loop: take batches off campaign queues and decide them in Redis.
//!
//! Each call of `decide.lua` atomically pops a batch, decides it and appends it to the
//! campaign's decision log, so this loop never holds a request outside Redis: a SIGKILL at any
//! line loses nothing and decides nothing twice. Campaigns with work are served round-robin
//! ([`Rotation`]), one turn each (one batch, or `decide_in_flight` batches at once while the queue
//! is deep); a campaign woken meanwhile joins the rotation at once, so one hot campaign cannot
//! starve the others, and a campaign whose turn failed backs off alone. On shutdown the loop
//! finishes the calls in progress and stops. A campaign whose decision log is at its bound
//! (PostgreSQL is behind) is skipped until the next sweep: Redis never buffers without limit.

use std::collections::HashMap;

use futures::future::join_all;

use rushline_domain::CampaignId;
use rushline_queue::behind::BehindCheck;
use rushline_queue::{DecideOutcome, WarmError, Warmed};
use rushline_store::StoreError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::rotation::Rotation;
use crate::telemetry::{self, Backend};
use crate::wake::Pending;

/// Decides until `token` is cancelled. `pending` says which campaigns may have queued requests;
/// campaigns that got decisions are handed to `persist`.
///
/// One [`Rotation`]: each turn is one [`decide_round`] of one campaign, after which a campaign
/// with requests left goes to the back of the line, behind every campaign woken meanwhile. So
/// while one drop's queue is deep, another's requests wait at most one round per busy campaign.
pub async fn run(ctx: Context, pending: Pending, persist: Pending, token: CancellationToken) {
    let mut rotation = Rotation::default();
    // How many requests each campaign's last call left queued (absent: unknown).
    let mut backlog: HashMap<CampaignId, u64> = HashMap::new();
    let checked = BehindCheck::default();
    loop {
        if token.is_cancelled() {
            return;
        }
        for campaign in pending.take() {
            rotation.add(campaign);
        }
        let Some(campaign) = rotation.next(Instant::now()) else {
            let due = rotation.next_due();
            tokio::select! {
                () = token.cancelled() => return,
                () = pending.changed() => {}
                () = sleep_until(due) => {}
            }
            continue;
        };
        let known = backlog.remove(&campaign).unwrap_or(0);
        let round = match check_not_behind(&ctx, &checked, &campaign).await {
            Ok(()) => decide_round(&ctx, &campaign, known).await,
            Err(e) => Err(e),
        };
        match round {
            Ok(outcome) if outcome.log_full => {
                // PostgreSQL is behind: leave the requests queued (the queue's bound sheds new
                // ones at the API) until a sweep finds the log shorter.
                rotation.succeeded(&campaign);
                tracing::warn!(campaign = %campaign, queued = outcome.left, "decision log full; deciding paused until persistence catches up");
                metrics::counter!(telemetry::DECIDE_PAUSED).increment(1);
            }
            Ok(outcome) => {
                rotation.succeeded(&campaign);
                if outcome.decided > 0 {
                    persist.add(campaign.clone());
                }
                if outcome.left > 0 {
                    backlog.insert(campaign.clone(), outcome.left);
                    rotation.add(campaign);
                }
            }
            Err(e) => {
                // This campaign sits out a backoff delay; the others keep their turns.
                tracing::warn!(campaign = %campaign, error = %e, "deciding failed; retrying");
                telemetry::backend_error(backend_of(&e), "deciding");
                rotation.failed(campaign, Instant::now());
            }
        }
    }
}

/// Compares `campaign`'s Redis state with the record before this loop decides from it, when
/// [`BehindCheck`] says it must (first time, or Redis failed a call since): a state behind the
/// record is taken out of service to be rebuilt first (see `rushline_queue::behind`).
async fn check_not_behind(
    ctx: &Context,
    checked: &BehindCheck,
    campaign: &CampaignId,
) -> anyhow::Result<()> {
    if checked.begin(&ctx.queue, campaign) {
        checked
            .compare(&ctx.queue, campaign, ctx.store.recorded_high_seq(campaign))
            .await?;
    }
    Ok(())
}

/// Sleeps until `due`, or forever without one.
pub(crate) async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
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

//! Telling failures that go away from failures that never will, and setting the latter aside.
//!
//! A persist step that fails because a backend is unreachable, slow or busy (connection loss,
//! timeouts, serialization failures, PostgreSQL restarting…) is *transient*: the entries stay
//! in hand and are retried with backoff. A failure tied to the entry itself is *permanent* and
//! would fail again on every retry and every takeover, blocking the campaign's log:
//!
//! | reason (`rushline_dead_letters_total{reason}`) | what failed |
//! | --- | --- |
//! | `unparsable` | the entry does not decode as decision lines ([`rushline_queue::UnreadableEntry`]) |
//! | `unknown_campaign` | the record (PostgreSQL) holds no such campaign |
//! | `rejected_by_record` | PostgreSQL refuses the rows for good ([`StoreError::is_permanent`]: a data or constraint error the rollback path cannot resolve, a corrupt row) |
//!
//! Such an entry goes to the campaign's dead-letter stream (atomically with its removal from the
//! log, see [`rushline_queue::dead_letters`]), is logged at `error` and counted; the rest of the
//! batch is persisted as usual. A batch that fails permanently is retried one entry at a time,
//! so only the entries at fault are set aside.

use rushline_domain::CampaignId;
use rushline_queue::{DeadLetterReason, LogRead};
use rushline_store::StoreError;
use std::time::Duration;

use crate::Context;
use crate::persist::{PersistFailure, StepFailed, persist_entries};
use crate::telemetry;

/// Persists what `read` took: dead-letters its unreadable entries, persists the rest in one
/// transaction — or, if that fails permanently, one entry at a time, dead-lettering each that
/// fails permanently on its own. `Err` only for a transient failure (retry the same `read`:
/// every step, dead-lettering included, is idempotent).
pub async fn settle(
    ctx: &Context,
    campaign: &CampaignId,
    read: &LogRead,
) -> Result<(), StepFailed> {
    for entry in &read.unreadable {
        set_aside(
            ctx,
            campaign,
            &entry.id,
            DeadLetterReason::Unparsable,
            &entry.error,
        )
        .await?;
    }
    if read.entries.is_empty() {
        return Ok(());
    }
    match persist_entries(ctx, campaign, &read.entries).await {
        Ok(()) => return Ok(()),
        Err(PersistFailure::Transient(failure)) => return Err(failure),
        Err(PersistFailure::Permanent(e)) => {
            tracing::warn!(campaign = %campaign, entries = read.entries.len(), error = %e, "batch refused for good; persisting its entries one by one to find the ones at fault");
        }
    }
    for entry in &read.entries {
        match persist_entries(ctx, campaign, std::slice::from_ref(entry)).await {
            Ok(()) => {}
            Err(PersistFailure::Transient(failure)) => return Err(failure),
            Err(PersistFailure::Permanent(e)) => {
                set_aside(ctx, campaign, &entry.id, reason_of(&e), &e.to_string()).await?;
            }
        }
    }
    Ok(())
}

/// The log's entries could not be decoded because Redis holds no code key for `campaign`. If the
/// record does not hold the campaign either, nothing ever will persist them: takes up to
/// `persist_entries` of them (unseen ones, or with `stale` those pending longer) and
/// dead-letters them; returns how many. If the record holds it, its Redis state is merely not
/// rebuilt yet — a transient failure (the decide loop or the API warms it).
pub async fn if_unknown(
    ctx: &Context,
    campaign: &CampaignId,
    stale: Option<Duration>,
) -> Result<usize, StepFailed> {
    let recorded = ctx
        .store
        .campaign(campaign)
        .await
        .map_err(StepFailed::postgres(
            "looking the campaign up in the record",
        ))?;
    if recorded.is_some() {
        return Err(StepFailed {
            step: "reading log",
            backend: telemetry::Backend::Redis,
            error: format!("campaign {campaign} has no coupon code key in Redis yet (not rebuilt)"),
        });
    }
    let ids = ctx
        .queue
        .take_log_ids(campaign, &ctx.consumer, ctx.config.persist_entries, stale)
        .await
        .map_err(StepFailed::redis("reading log"))?;
    let error = StoreError::UnknownCampaign(campaign.clone()).to_string();
    for id in &ids {
        set_aside(ctx, campaign, id, DeadLetterReason::UnknownCampaign, &error).await?;
    }
    Ok(ids.len())
}

fn reason_of(error: &StoreError) -> DeadLetterReason {
    match error {
        StoreError::UnknownCampaign(_) => DeadLetterReason::UnknownCampaign,
        _ => DeadLetterReason::RejectedByRecord,
    }
}

/// Moves one entry to the dead-letter stream; logs and counts it if this call moved it.
async fn set_aside(
    ctx: &Context,
    campaign: &CampaignId,
    entry: &str,
    reason: DeadLetterReason,
    error: &str,
) -> Result<(), StepFailed> {
    let moved = ctx
        .queue
        .dead_letter(campaign, entry, reason, error, &ctx.consumer)
        .await
        .map_err(StepFailed::redis("dead-lettering a log entry"))?;
    if moved {
        tracing::error!(campaign = %campaign, entry, reason = %reason, error, "log entry dead-lettered: it can never be persisted as it stands (see `rushline dead-letters list`)");
        metrics::counter!(telemetry::DEAD_LETTERS, "reason" => reason.as_str()).increment(1);
    }
    Ok(())
}

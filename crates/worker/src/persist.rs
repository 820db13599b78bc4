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
//! Each entry carries the rebuild epoch of the Redis state that decided it. If Redis lost its
//! data while a batch was in hand here and a warm-up rebuilt the campaign from the record
//! before the batch committed, the record refuses it as superseded (nothing commits) and its
//! requests go back to the head of the queue to be decided by the rebuilt state ([`hand_back`]):
//! still exactly one recorded final status each, and a rebuilt state that misses nothing.
//!
//! While PostgreSQL is down, writes are retried with jittered backoff (per campaign, holding the
//! entries already taken); decisions wait in Redis.

use std::collections::{BTreeSet, HashMap, VecDeque};

use rushline_domain::{CampaignId, Decision};
use rushline_queue::{LogEntry, LogRead, QueueError, Requeued, Rollback};
use rushline_store::{Persisted, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::dead_letter;
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
    held: HashMap<CampaignId, LogRead>,
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
        let (read, retrying) = match self.held.remove(&campaign) {
            Some(read) => (read, true),
            None => match take_new(ctx, &campaign).await {
                Ok(Taken::Read(read)) => (read, false),
                Ok(Taken::DeadLettered(n)) => {
                    self.rotation.succeeded(&campaign);
                    if n >= ctx.config.persist_entries {
                        self.rotation.add(campaign);
                    }
                    return;
                }
                Err(failure) => {
                    failure.report(&campaign);
                    self.rotation.failed(campaign, Instant::now());
                    return;
                }
            },
        };
        if read.is_empty() {
            self.rotation.succeeded(&campaign);
            return;
        }
        // A full read (or a retry) may have left more behind; anything appended after a short
        // read raised the log flag again, which wakes this loop anyway.
        let more = retrying || read.len() >= ctx.config.persist_entries;
        match dead_letter::settle(ctx, &campaign, &read).await {
            Ok(()) => {
                self.rotation.succeeded(&campaign);
                if more {
                    self.rotation.add(campaign);
                }
            }
            Err(failure) => {
                failure.report(&campaign);
                self.held.insert(campaign.clone(), read);
                self.rotation.failed(campaign, Instant::now());
            }
        }
    }
}

/// What a turn took from the log.
enum Taken {
    /// Entries to persist (or to dead-letter, those that do not decode).
    Read(LogRead),
    /// The campaign is not in the record: this many entries went straight to dead letters.
    DeadLettered(usize),
}

/// Clears the campaign's log flag, then takes up to `persist_entries` entries no consumer has
/// seen yet (they become pending on this consumer).
async fn take_new(ctx: &Context, campaign: &CampaignId) -> Result<Taken, StepFailed> {
    ctx.queue
        .clear_log_flag(campaign)
        .await
        .map_err(StepFailed::redis("clearing log flag"))?;
    match ctx
        .queue
        .read_log(campaign, &ctx.consumer, ctx.config.persist_entries)
        .await
    {
        Ok(read) => Ok(Taken::Read(read)),
        Err(QueueError::CodeKeyMissing(_)) => dead_letter::if_unknown(ctx, campaign, None)
            .await
            .map(Taken::DeadLettered),
        Err(e) => Err(StepFailed::redis("reading log")(e)),
    }
}

/// Takes over, on every sweep, the entries other consumers left pending longer than
/// `claim_idle` (their worker is presumed dead), until `token` is cancelled. Each pass also
/// refreshes the dead-letter gauge.
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
        match ctx.queue.dead_letter_count().await {
            Ok(n) => metrics::gauge!(telemetry::DEAD_LETTER_ENTRIES).set(n as f64),
            Err(e) => tracing::warn!(error = %e, "cannot count dead letters"),
        }
        let mut rotation: VecDeque<CampaignId> = sweeps.take().into_iter().collect();
        while let Some(campaign) = rotation.pop_front() {
            if token.is_cancelled() {
                return;
            }
            match take_over_once(&ctx, &campaign).await {
                Ok(taken) if taken >= ctx.config.persist_entries => rotation.push_back(campaign),
                Ok(_) => {}
                // Still pending (on this consumer or the dead one): claimed again once idle.
                Err(failure) => failure.report(&campaign),
            }
        }
    }
}

/// Claims and settles one batch of `campaign`'s stale entries; returns how many it took.
async fn take_over_once(ctx: &Context, campaign: &CampaignId) -> Result<usize, StepFailed> {
    let claimed = ctx
        .queue
        .claim_stale(
            campaign,
            &ctx.consumer,
            ctx.config.claim_idle,
            ctx.config.persist_entries,
        )
        .await;
    let read = match claimed {
        Ok(read) => read,
        Err(QueueError::CodeKeyMissing(_)) => {
            return dead_letter::if_unknown(ctx, campaign, Some(ctx.config.claim_idle)).await;
        }
        Err(e) => return Err(StepFailed::redis("claiming stale log entries")(e)),
    };
    if read.is_empty() {
        return Ok(0);
    }
    tracing::info!(campaign = %campaign, entries = read.len(), "took over stale log entries");
    dead_letter::settle(ctx, campaign, &read).await?;
    Ok(read.len())
}

/// A step of persisting failed in a way that can go away (a backend unreachable, slow or
/// refusing for now); every step is safe to run again.
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
    /// A failed Redis call during `step`.
    pub fn redis(step: &'static str) -> impl FnOnce(QueueError) -> Self {
        move |e| Self {
            step,
            backend: Backend::Redis,
            error: e.to_string(),
        }
    }

    /// A failed PostgreSQL call during `step`.
    pub fn postgres(step: &'static str) -> impl FnOnce(StoreError) -> Self {
        move |e| Self {
            step,
            backend: Backend::Postgres,
            error: e.to_string(),
        }
    }

    /// Logs and counts it.
    fn report(&self, campaign: &CampaignId) {
        tracing::warn!(campaign = %campaign, error = %self.error, "{} failed; retrying", self.step);
        telemetry::backend_error(self.backend, self.step);
    }
}

/// Why [`persist_entries`] failed.
#[derive(Debug)]
pub enum PersistFailure {
    /// Retrying can succeed.
    Transient(StepFailed),
    /// PostgreSQL refuses these decisions for good ([`StoreError::is_permanent`]).
    Permanent(StoreError),
}

/// Superseded decisions handed back to the rebuilt state, by what became of each: `requeued`
/// (back at the head of the queue) or `skipped` (Redis holds its status already: an earlier
/// hand-back). See [`hand_back`].
pub const SUPERSEDED: &str = "rushline_superseded_decisions_total";

/// One transaction per run of `entries` stamped with the same rebuild epoch (in practice all of
/// them), then the Redis undo of refusals, then the acknowledgement. A run the record refuses as
/// superseded is handed back to the rebuilt state instead ([`hand_back`]).
pub async fn persist_entries(
    ctx: &Context,
    campaign: &CampaignId,
    entries: &[LogEntry],
) -> Result<(), PersistFailure> {
    for run in entries.chunk_by(|a, b| a.epoch == b.epoch) {
        persist_run(ctx, campaign, run).await?;
    }
    Ok(())
}

/// [`persist_entries`] for entries of one rebuild epoch.
async fn persist_run(
    ctx: &Context,
    campaign: &CampaignId,
    entries: &[LogEntry],
) -> Result<(), PersistFailure> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    let decisions: Vec<Decision> = entries
        .iter()
        .flat_map(|e| e.decisions.iter().cloned())
        .collect();
    let persisted: Persisted = match ctx
        .store
        .persist_at(campaign, first.epoch, &decisions)
        .await
    {
        Ok(persisted) => persisted,
        Err(StoreError::Superseded {
            entry_epoch,
            record_epoch,
            ..
        }) => {
            return hand_back(ctx, campaign, entries, (entry_epoch, record_epoch)).await;
        }
        Err(e) if e.is_permanent() => return Err(PersistFailure::Permanent(e)),
        Err(e) => {
            return Err(PersistFailure::Transient(StepFailed::postgres(
                "writing decisions to PostgreSQL",
            )(e)));
        }
    };
    metrics::counter!(telemetry::PERSISTED_ROWS).increment(persisted.inserted);
    metrics::histogram!(telemetry::PERSIST_BATCH).record(decisions.len() as f64);
    if !persisted.refused.is_empty() {
        let rollbacks: Vec<Rollback> = persisted
            .refused
            .iter()
            .map(|r| Rollback {
                request_id: r.request_id,
                user_id: r.user_id.clone(),
                coupon_seq: r.coupon_seq,
                new_status: r.recorded,
                holder: r.holder,
            })
            .collect();
        let undone = ctx
            .queue
            .rollback(campaign, &rollbacks)
            .await
            .map_err(StepFailed::redis("undoing refused decisions"))
            .map_err(PersistFailure::Transient)?;
        tracing::warn!(campaign = %campaign, refused = rollbacks.len(), undone, "record refused decisions; Redis brought in line");
        metrics::counter!(telemetry::ROLLBACKS).increment(undone);
        rebuild_from_record(ctx, campaign).await?;
    }
    ctx.queue
        .ack(campaign, entries)
        .await
        .map_err(StepFailed::redis("acknowledging log entries"))
        .map_err(PersistFailure::Transient)
}

/// The record refused `entries` as superseded: their Redis state is older than the record's
/// epoch — Redis lost its data while they were held here and a warm-up rebuilt the campaign
/// without them, or Redis came back older (a failover to a lagging replica) and the record
/// refused a code it holds for another request. Committing them would give the record decisions
/// the rebuilt holders and `remaining` never counted — later decisions reported `issued` would
/// then be refused (a final status that changes) and codes could collide. Their requests are
/// still owed exactly one final status: those the record does not hold go back to the head of
/// the campaign's queue with their original ids and users, to be decided by the rebuilt state,
/// and their entries are acknowledged in the same atomic step (`lua/requeue.lua`, which skips a
/// request whose status record is no longer the one the superseded decision wrote, so a retry or
/// another worker's hand-back never queues one twice). Requests the record does hold were
/// committed before the rebuild and stand.
///
/// First come, first served: every superseded entry still in the log goes back at once, in log
/// order — other workers' batches too — and while the superseded state is out of service, so
/// the rebuilt state decides none of the requests queued behind them first. A state that is
/// still in service (Redis came back older) is taken out of it by the first call, then the log,
/// now closed, is read again and handed back, and only then is the campaign rebuilt.
async fn hand_back(
    ctx: &Context,
    campaign: &CampaignId,
    entries: &[LogEntry],
    (entry_epoch, record_epoch): (i64, i64),
) -> Result<(), PersistFailure> {
    let mut took_out_of_service = false;
    loop {
        let mut superseded = ctx
            .queue
            .superseded_log(campaign, record_epoch)
            .await
            .map_err(StepFailed::redis("reading the superseded decision log"))
            .map_err(PersistFailure::Transient)?;
        // This worker's own entries, if no longer in the log (handed back or acknowledged
        // already): their requests are skipped unless still superseded.
        for entry in entries {
            if !superseded.iter().any(|e| e.id == entry.id) {
                superseded.push(entry.clone());
            }
        }
        match requeue_in_chunks(ctx, campaign, record_epoch, &superseded).await? {
            Requeued::Done { requeued, skipped } => {
                tracing::warn!(
                    campaign = %campaign,
                    entry_epoch,
                    record_epoch,
                    entries = superseded.len(),
                    requeued,
                    skipped,
                    "decisions made before a rebuild of the campaign's Redis state were superseded by it; their requests are decided again"
                );
                metrics::counter!(SUPERSEDED, "action" => "requeued").increment(requeued);
                metrics::counter!(SUPERSEDED, "action" => "skipped").increment(skipped);
                if took_out_of_service {
                    rebuild_now(ctx, campaign, record_epoch).await;
                }
                return Ok(());
            }
            // The state that decided them is still in service (Redis came back older, not
            // empty): the script took it out of service. Its log is now closed; read it again.
            Requeued::StateSuperseded if !took_out_of_service => {
                tracing::warn!(campaign = %campaign, entry_epoch, record_epoch, "campaign state in Redis is older than the record's rebuild epoch; handing its decisions back, then rebuilding it from PostgreSQL");
                took_out_of_service = true;
            }
            Requeued::StateSuperseded => {
                return Err(superseded_state(
                    campaign,
                    format!("still older than epoch {record_epoch} after taking it out of service"),
                ));
            }
        }
    }
}

/// Log entries per `requeue.lua` call: a log can hold many entries of a whole batch each (its
/// bound is reached while PostgreSQL is away), and one script call over all of them would hold
/// Redis for every campaign on that master.
const REQUEUE_CHUNK: usize = 32;

/// Hands `superseded` (in log order) back in chunks, the last chunk first: each call puts its
/// requests at the head of the queue, in front of the later chunks', so the queue ends in log
/// order. Nothing is decided in between while the state is out of service (a warm-up waits for
/// the log to be empty). `StateSuperseded` when the first call found the state still in service
/// (nothing handed back).
async fn requeue_in_chunks(
    ctx: &Context,
    campaign: &CampaignId,
    record_epoch: i64,
    superseded: &[LogEntry],
) -> Result<Requeued, PersistFailure> {
    let (mut requeued, mut skipped) = (0, 0);
    for chunk in superseded.rchunks(REQUEUE_CHUNK) {
        let decisions: Vec<Decision> = chunk
            .iter()
            .flat_map(|e| e.decisions.iter().cloned())
            .collect();
        let unrecorded = ctx.store.unrecorded(&decisions).await.map_err(|e| {
            PersistFailure::Transient(StepFailed::postgres(
                "reading which superseded decisions the record holds",
            )(e))
        })?;
        let done = ctx
            .queue
            .requeue_superseded(campaign, record_epoch, chunk, &unrecorded)
            .await
            .map_err(StepFailed::redis(
                "handing superseded decisions back to the queue",
            ))
            .map_err(PersistFailure::Transient)?;
        match done {
            Requeued::Done {
                requeued: r,
                skipped: s,
            } => {
                requeued += r;
                skipped += s;
            }
            Requeued::StateSuperseded => return Ok(Requeued::StateSuperseded),
        }
    }
    Ok(Requeued::Done { requeued, skipped })
}

/// Rebuilds the campaign from the record after a hand-back took its state out of service, so
/// demand does not wait for the next accept or decide to do it. Best effort: the hand-back is
/// done, and whoever uses the campaign next warms it anyway.
async fn rebuild_now(ctx: &Context, campaign: &CampaignId, record_epoch: i64) {
    if let Err(e) = ctx.queue.warm(campaign, &ctx.store).await {
        tracing::warn!(campaign = %campaign, record_epoch, error = %e, "cannot rebuild the campaign from PostgreSQL yet; its next use will");
    }
}

/// The campaign's Redis state could not be brought past a superseding epoch (yet): transient,
/// the entries stay in hand and the hand-back is retried.
fn superseded_state(campaign: &CampaignId, error: String) -> PersistFailure {
    PersistFailure::Transient(StepFailed {
        step: "rebuilding a superseded campaign state",
        backend: Backend::Redis,
        error: format!("campaign {campaign}: {error}"),
    })
}

/// A refusal means Redis disagreed with the record: it issued a sequence number the record holds
/// (a Redis that came back older than the record: host crash, failover to a lagging replica), a
/// coupon to a user the record says holds one, or past the record's room. Its state is then
/// taken out of service and rebuilt from the record on the campaign's next use (after the log is
/// persisted), rather than deciding on from it — reusing numbers, missing holders, with
/// `remaining` forced to 0 by the rollback while the record has room. Refusals happen only when
/// Redis lost data, so rebuilds stay rare. See `Queue::invalidate_for_rebuild`.
async fn rebuild_from_record(ctx: &Context, campaign: &CampaignId) -> Result<(), PersistFailure> {
    ctx.queue
        .invalidate_for_rebuild(campaign)
        .await
        .map_err(StepFailed::redis("taking Redis's state out of service"))
        .map_err(PersistFailure::Transient)?;
    Ok(())
}

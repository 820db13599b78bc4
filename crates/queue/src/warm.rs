//! Warm-up: (re)building a campaign's Redis state from PostgreSQL.
//!
//! Runs when Redis has no state for a campaign: just after it was created, or after Redis lost
//! its data. Counts come from PostgreSQL's issued rows, never from a stale counter, and holders
//! are reloaded from issued rows, so guarantees 1–3 survive an empty Redis. Several processes may
//! try at once; `warm_begin.lua` lets one own it (with a lease), the others wait for it.

use std::time::Duration;

use rushline_domain::{CampaignId, CampaignRecord};
use uuid::Uuid;

use crate::keys::meta_field;
use crate::{PERSIST_GROUP, Queue, QueueError, scripts};

/// A warm-up's owner must finish within this lease or another process takes over.
const LEASE: Duration = Duration::from_secs(30);
/// How long a process waits for another's warm-up before giving up.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(10);

/// How a warm-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warmed {
    /// Redis now holds the campaign (built here or by another process).
    Ready,
    /// PostgreSQL has no such campaign.
    NotFound,
}

/// `warm_begin.lua`'s reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// 0: the campaign is warm already.
    AlreadyWarm,
    /// 1: this call's token owns the warm-up.
    Owned,
    /// -1: another warm-up holds a live lease.
    HeldByAnother,
}

impl Claim {
    fn from_reply(reply: i64) -> Result<Self, QueueError> {
        match reply {
            0 => Ok(Self::AlreadyWarm),
            1 => Ok(Self::Owned),
            -1 => Ok(Self::HeldByAnother),
            other => Err(QueueError::protocol(format!("warm_begin reply {other}"))),
        }
    }
}

/// How one attempt at building a campaign's state ended.
enum Built {
    /// Published: the campaign is ready.
    Published,
    /// Ownership of the warm-up was lost on the way (another process took it over).
    Lost,
    /// The record's epoch moved since it was read: another rebuild began meanwhile.
    EpochMoved,
}

/// A warm-up failed.
#[derive(Debug, thiserror::Error)]
pub enum WarmError<E: std::error::Error + 'static> {
    /// Redis failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Reading PostgreSQL failed.
    #[error("reading the campaign from PostgreSQL: {0}")]
    Source(#[source] E),
    /// Another process's warm-up did not finish in time.
    #[error("campaign warm-up by another process did not finish in time")]
    Busy,
}

impl Queue {
    /// Makes sure `campaign` is warm in Redis, rebuilding it from `record` if needed.
    pub async fn warm<R: CampaignRecord>(
        &self,
        campaign: &CampaignId,
        record: &R,
    ) -> Result<Warmed, WarmError<R::Error>> {
        // Read before claiming: its epoch is the one a rebuild by this call may move on from
        // (see `build`), so an owner that stalled until its lease was taken over can never move
        // the epoch past the one its successor publishes. Read again only when the epoch moved.
        let Some(mut seen_epoch) = self.read_before_claim(campaign, record).await? else {
            return Ok(Warmed::NotFound);
        };
        let keys = self.keys.campaign(campaign);
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER;
        loop {
            let token = Uuid::new_v4().to_string();
            let mut begin = scripts::WARM_BEGIN.prepare_invoke();
            begin
                .key(&keys.meta)
                .key(&keys.holders)
                .arg(&token)
                .arg(LEASE.as_millis() as u64);
            let claimed: i64 = self
                .run(|mut conn| async move { Ok(begin.invoke_async(&mut conn).await?) })
                .await?;
            let claim = Claim::from_reply(claimed)?;
            let ready = match claim {
                Claim::AlreadyWarm => true,
                Claim::Owned => match self.build(campaign, &token, seen_epoch, record).await {
                    Ok(Built::Published) => true,
                    Ok(Built::Lost) => false,
                    Ok(Built::EpochMoved) => {
                        // Another rebuild moved the epoch since it was read: release the lease
                        // (so the next claim is at once) and start over from a fresh read.
                        self.abandon(campaign, &token).await;
                        match self.read_before_claim(campaign, record).await? {
                            Some(epoch) => seen_epoch = epoch,
                            None => return Ok(Warmed::NotFound),
                        }
                        false
                    }
                    Err(e) => {
                        self.abandon(campaign, &token).await;
                        return Err(e);
                    }
                },
                Claim::HeldByAnother => false,
            };
            if ready {
                if claim == Claim::AlreadyWarm {
                    // Built by another process, which registered it first; registering again is
                    // idempotent and heals a registry entry lost since (see `build`).
                    self.register(campaign).await?;
                }
                return Ok(Warmed::Ready);
            }
            // Another process owns the warm-up (or took it over from us): wait for it.
            if tokio::time::Instant::now() >= deadline {
                return Err(WarmError::Busy);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads the campaign's record before a claim: its rebuild epoch, `None` when the record does
    /// not hold the campaign.
    async fn read_before_claim<R: CampaignRecord>(
        &self,
        campaign: &CampaignId,
        record: &R,
    ) -> Result<Option<i64>, WarmError<R::Error>> {
        let Some(snapshot) = record.snapshot(campaign).await.map_err(WarmError::Source)? else {
            return Ok(None);
        };
        // The record's key is the one Redis holds or is about to (it never changes), so codes
        // can be minted without the first `HGET`.
        self.remember_code_key(campaign, &snapshot.code_key);
        Ok(Some(snapshot.epoch))
    }

    /// For a rebuild of a state Redis still holds (invalidated, see
    /// [`Queue::invalidate_if_behind`]; marked `rebuild` in the meta hash): waits, keeping the
    /// lease, until the campaign's decision log is empty, i.e. every decision Redis made is
    /// committed in PostgreSQL, so the rebuild reads a record that misses none of them. Nothing
    /// is decided meanwhile (`ready` is "0"), and persisters keep draining the log (the code key
    /// they need is still in the meta hash). Any other warm-up (a new campaign, Redis lost the
    /// state) does not wait: one `HGET`. `false` when ownership was lost; [`WarmError::Busy`]
    /// when the log is not persisted within [`WAIT_FOR_OTHER`] (PostgreSQL behind or away).
    async fn log_persisted<E: std::error::Error + 'static>(
        &self,
        campaign: &CampaignId,
        token: &str,
    ) -> Result<bool, WarmError<E>> {
        let keys = self.keys.campaign(campaign);
        let meta = keys.meta.as_str();
        let rebuild: Option<String> = self
            .run(|mut conn| async move {
                Ok(redis::cmd("HGET")
                    .arg(meta)
                    .arg(meta_field::REBUILD)
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        if rebuild.as_deref() != Some("1") {
            return Ok(true);
        }
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER;
        loop {
            let log = keys.log.as_str();
            let unpersisted: u64 = self
                .run(|mut conn| async move {
                    Ok(redis::cmd("XLEN").arg(log).query_async(&mut conn).await?)
                })
                .await?;
            if unpersisted == 0 {
                return Ok(true);
            }
            // A chunk of no holders only checks ownership and extends the lease.
            let mut extend = scripts::WARM_HOLDERS.prepare_invoke();
            extend
                .key(&keys.meta)
                .key(&keys.holders)
                .arg(token)
                .arg(LEASE.as_millis() as u64);
            let owned: i64 = self
                .run(|mut conn| async move { Ok(extend.invoke_async(&mut conn).await?) })
                .await?;
            if owned != 1 {
                return Ok(false);
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(campaign = %campaign, unpersisted, "rebuild waits for the decision log to be persisted");
                return Err(WarmError::Busy);
            }
            // Persisters give no signal this process could await; a bounded poll of the length.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Takes `campaign`'s Redis state out of service when Redis is behind the record: its next
    /// coupon sequence number is not past `recorded_high_seq`, the highest PostgreSQL holds
    /// (`Store::recorded_high_seq`). The next accept or decide then rebuilds it from the record
    /// (see `lua/warm_invalidate.lua`). Returns whether it did.
    pub async fn invalidate_if_behind(
        &self,
        campaign: &CampaignId,
        recorded_high_seq: Option<i64>,
    ) -> Result<bool, QueueError> {
        let high = recorded_high_seq.map(|s| s.to_string()).unwrap_or_default();
        self.invalidate(campaign, &high, "").await
    }

    /// Takes `campaign`'s Redis state out of service unconditionally, so the next warm-up
    /// rebuilds it from the record (`rushline reconcile --repair`). Returns whether it was warm.
    pub async fn invalidate_for_rebuild(&self, campaign: &CampaignId) -> Result<bool, QueueError> {
        self.invalidate(campaign, "", "force").await
    }

    async fn invalidate(
        &self,
        campaign: &CampaignId,
        high: &str,
        force: &str,
    ) -> Result<bool, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::WARM_INVALIDATE.prepare_invoke();
        invocation.key(&keys.meta).arg(high).arg(force);
        let done: i64 = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        if done == 1 {
            tracing::warn!(campaign = %campaign, recorded_high_seq = high, force, "campaign state in Redis taken out of service to be rebuilt from PostgreSQL");
        }
        Ok(done == 1)
    }

    /// Releases a warm-up lease this process owns after its build failed, so that the next caller
    /// claims the campaign at once rather than answering `503` until the lease expires. Best
    /// effort: if Redis cannot be reached either, the lease simply runs out.
    async fn abandon(&self, campaign: &CampaignId, token: &str) {
        let keys = self.keys.campaign(campaign);
        let mut release = scripts::WARM_ABANDON.prepare_invoke();
        release.key(&keys.meta).arg(token);
        let released = self
            .run(|mut conn| async move { Ok(release.invoke_async::<i64>(&mut conn).await?) })
            .await;
        if let Err(e) = released {
            tracing::warn!(campaign = %campaign, error = %e, "cannot release a failed warm-up's lease; it expires by itself");
        }
    }

    /// Moves the record's epoch on from `seen`, loads holders and publishes the state.
    ///
    /// The epoch comes first: it takes the campaign row's lock, so a persist transaction in
    /// flight commits before it (and the reads below see its rows), and every persist after it
    /// refuses decisions stamped with an older epoch — decisions of a Redis state this rebuild
    /// does not see (a worker holding a batch it read before Redis lost its data). Nothing is
    /// decided with the new epoch before `warm_finish.lua` publishes it. The move is a
    /// compare-and-set from the epoch read before the claim, so of two processes that both
    /// believe they own the warm-up (a stalled owner whose lease ran out), only one moves it, and
    /// a stalled owner can never move it past the epoch its successor published.
    async fn build<R: CampaignRecord>(
        &self,
        campaign: &CampaignId,
        token: &str,
        seen_epoch: i64,
        record: &R,
    ) -> Result<Built, WarmError<R::Error>> {
        let keys = self.keys.campaign(campaign);
        if !self.log_persisted(campaign, token).await? {
            return Ok(Built::Lost);
        }
        let Some(epoch) = record
            .begin_rebuild(campaign, seen_epoch)
            .await
            .map_err(WarmError::Source)?
        else {
            return Ok(Built::EpochMoved);
        };
        let mut after = None;
        let mut holders = 0usize;
        loop {
            let page = record
                .holders_after(campaign, after.as_ref())
                .await
                .map_err(WarmError::Source)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            holders += page.len();
            let mut chunk = scripts::WARM_HOLDERS.prepare_invoke();
            chunk
                .key(&keys.meta)
                .key(&keys.holders)
                .arg(token)
                .arg(LEASE.as_millis() as u64);
            for (user, request) in &page {
                chunk.arg(user.as_str()).arg(request.to_string());
            }
            let owned: i64 = self
                .run(|mut conn| async move { Ok(chunk.invoke_async(&mut conn).await?) })
                .await?;
            if owned != 1 {
                return Ok(Built::Lost);
            }
        }
        // Register before publishing `ready`, so that "ready implies registered": a crash or a
        // lost reply here leaves a registered campaign that is not ready (harmless: sweeps find
        // nothing to do until a warm-up finishes), never a ready one no sweep finds. On one Redis
        // the AOF is written in order, so a restart cannot bring back `ready` without this. On a
        // Cluster the registry lives in another slot; `register_ready` (run by every worker's
        // sweep against PostgreSQL's campaigns) repairs a registry entry lost there.
        self.register(campaign).await?;
        // Read the counts after the holders: nothing is decided while the campaign is not ready,
        // so they cannot have moved in between.
        let Some(data) = record.snapshot(campaign).await.map_err(WarmError::Source)? else {
            return Ok(Built::Lost);
        };
        let mut finish = scripts::WARM_FINISH.prepare_invoke();
        finish
            .key(&keys.meta)
            .key(&keys.log)
            .arg(token)
            .arg(&data.name)
            .arg(data.stock)
            .arg(data.opens_at.timestamp_millis())
            .arg(
                data.closes_at
                    .map(|t| t.timestamp_millis().to_string())
                    .unwrap_or_default(),
            )
            .arg(data.issued)
            .arg(data.next_seq)
            .arg(&data.code_key)
            .arg(PERSIST_GROUP)
            .arg(epoch)
            .arg(data.decide.as_str());
        match &data.waiting_room {
            Some(wr) => finish
                .arg("1")
                .arg(wr.room.admit_per_second)
                .arg(wr.room.pass_secs)
                .arg(wr.room.prequeue_secs)
                .arg(crate::waiting_room::hex(&wr.prequeue_seed))
                .arg(if wr.paused { "1" } else { "0" })
                .arg(wr.room.proof_of_work_bits),
            None => finish
                .arg("")
                .arg("")
                .arg("")
                .arg("")
                .arg("")
                .arg("")
                .arg(""),
        };
        finish.arg(data.shards.get());
        let published: i64 = self
            .run(|mut conn| async move { Ok(finish.invoke_async(&mut conn).await?) })
            .await?;
        if published == 1 {
            // The operator's account of a rebuild (after Redis lost its data, this is exactly what
            // was restored from the record).
            tracing::info!(
                campaign = %campaign,
                stock = data.stock,
                issued = data.issued,
                remaining = data.stock.saturating_sub(data.issued),
                holders,
                next_coupon_seq = data.next_seq,
                epoch,
                "campaign state built in Redis from PostgreSQL"
            );
        }
        Ok(if published == 1 {
            Built::Published
        } else {
            Built::Lost
        })
    }

    /// Of `candidates` (campaigns the record holds), registers for the workers' sweep those that
    /// are ready in Redis but missing from the registry, and returns them. A ready campaign the
    /// registry lacks (its `SADD` lost on another Cluster node, a failover, an operator's hand)
    /// would otherwise never have its queue swept or its stale log entries claimed.
    pub async fn register_ready(
        &self,
        candidates: &[CampaignId],
    ) -> Result<Vec<CampaignId>, QueueError> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let registry = self.keys.registry();
        let metas: Vec<String> = candidates
            .iter()
            .map(|c| self.keys.campaign(c).meta)
            .collect();
        let ids: Vec<&str> = candidates.iter().map(CampaignId::as_str).collect();
        let registry_ref = registry.as_str();
        let ids_ref = &ids;
        let registered: Vec<bool> = self
            .run(|mut conn| async move {
                Ok(redis::cmd("SMISMEMBER")
                    .arg(registry_ref)
                    .arg(ids_ref)
                    .query_async(&mut conn)
                    .await?)
            })
            .await?;
        // One command per campaign: their metas live in different cluster slots.
        let ready: Vec<Option<String>> = self
            .each(
                metas
                    .iter()
                    .map(|meta| {
                        let mut hget = redis::cmd("HGET");
                        hget.arg(meta).arg(meta_field::READY);
                        hget
                    })
                    .collect(),
            )
            .await?;
        let missing: Vec<CampaignId> = candidates
            .iter()
            .zip(registered.iter().zip(&ready))
            .filter(|(_, (registered, ready))| !**registered && ready.as_deref() == Some("1"))
            .map(|(campaign, _)| campaign.clone())
            .collect();
        for campaign in &missing {
            tracing::warn!(campaign = %campaign, "ready campaign missing from the worker registry; registered it again");
            self.register(campaign).await?;
        }
        Ok(missing)
    }

    async fn register(&self, campaign: &CampaignId) -> Result<(), QueueError> {
        let registry = self.keys.registry();
        let id = campaign.to_string();
        self.run(|mut conn| async move {
            redis::cmd("SADD")
                .arg(registry)
                .arg(id)
                .query_async::<i64>(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }
}

//! Group commit: concurrent accepts share one `accept.lua` call.
//!
//! This is the API's hot path. Handlers hand their request to the [`Acceptor`] and await the
//! outcome. One task drains everything waiting, groups it by campaign and sends each group as one
//! script call; up to `in_flight` such calls run at once (pipelined over the pooled multiplexed
//! connections). A lone request is sent the moment it arrives — nothing waits for a group to
//! fill — and under load, requests arriving while every slot is busy form the next group, so
//! Redis round trips per request fall exactly when it matters.
//!
//! With a per-user rate limit, each group is screened first by one `rate_limit.lua` call (see
//! [`crate::rate_limit`]); refused requests get their `429` and only the rest reach `accept.lua`.

use std::collections::HashMap;
use std::sync::Arc;

use rushline_domain::{CampaignId, UserId};
use rushline_queue::rate_limit::{Rate, UserRequest, Verdict};
use rushline_queue::{AcceptItem, AcceptOutcome, Queue, QueueError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::rate_limit::{Denial, LimitKind};

/// Requests waiting for a group beyond this are shed (503) instead of queued in memory. It bounds
/// the acceptor's memory (a few hundred bytes a request) however fast requests arrive; in practice
/// the backlog is at most the requests in flight, one per open connection.
pub const BACKLOG: usize = 65_536;

/// Why an accept did not produce an outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AcceptError {
    /// The per-user rate limit refused the request; nothing reached `accept.lua`.
    #[error("per-user rate limit exceeded")]
    RateLimited(Denial),
    /// Redis failed (shared by every request of the group).
    #[error(transparent)]
    Queue(#[from] Arc<QueueError>),
    /// Too many requests are already waiting in this process.
    #[error("accept backlog full")]
    Backlog,
    /// The acceptor stopped (process shutting down).
    #[error("acceptor stopped")]
    Stopped,
}

struct Job {
    campaign: CampaignId,
    item: AcceptItem,
    reply: oneshot::Sender<Result<AcceptOutcome, AcceptError>>,
}

/// Hands requests to the group-commit task. Cheap to clone; the task ends when the last clone
/// is dropped, after answering every request it took.
#[derive(Clone)]
pub struct Acceptor {
    jobs: mpsc::Sender<Job>,
}

impl Acceptor {
    /// Starts the group-commit task; with `user_limit`, every group is screened against the
    /// per-(campaign, user) limit first.
    pub fn spawn(
        queue: Queue,
        max_group: usize,
        in_flight: usize,
        user_limit: Option<Rate>,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(run(queue, rx, max_group, in_flight, user_limit));
        Self { jobs }
    }

    /// Requests handed to the group-commit task and not yet taken into a group: at most
    /// [`BACKLOG`].
    pub fn backlog(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// Accepts one request; returns once Redis has it (or has refused it).
    pub async fn accept(
        &self,
        campaign: CampaignId,
        item: AcceptItem,
    ) -> Result<AcceptOutcome, AcceptError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs
            .try_send(Job {
                campaign,
                item,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => AcceptError::Backlog,
                mpsc::error::TrySendError::Closed(_) => AcceptError::Stopped,
            })?;
        outcome.await.map_err(|_| AcceptError::Stopped)?
    }
}

async fn run(
    queue: Queue,
    mut rx: mpsc::Receiver<Job>,
    max_group: usize,
    in_flight: usize,
    user_limit: Option<Rate>,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = rx.recv().await {
        // Wait for a free slot first: requests arriving meanwhile join this round.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // The semaphore is never closed.
        };
        let mut round = vec![first];
        while round.len() < max_group * in_flight {
            match rx.try_recv() {
                Ok(job) => round.push(job),
                Err(_) => break,
            }
        }
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut groups: HashMap<CampaignId, Vec<Job>> = HashMap::new();
            for job in round {
                groups.entry(job.campaign.clone()).or_default().push(job);
            }
            let calls = groups.into_iter().flat_map(|(campaign, jobs)| {
                let mut chunks = Vec::new();
                let mut jobs = jobs.into_iter().peekable();
                while jobs.peek().is_some() {
                    chunks.push((
                        campaign.clone(),
                        jobs.by_ref().take(max_group).collect::<Vec<_>>(),
                    ));
                }
                chunks
            });
            futures::future::join_all(
                calls.map(|(campaign, jobs)| commit(&queue, campaign, jobs, user_limit)),
            )
            .await;
            drop(slot);
        });
    }
}

/// One script call for one campaign's group (after the per-user limit's, with one); every job
/// gets its outcome or the error.
async fn commit(queue: &Queue, campaign: CampaignId, jobs: Vec<Job>, user_limit: Option<Rate>) {
    let (jobs, counted) = match user_limit {
        Some(rate) => screen(queue, &campaign, rate, jobs).await,
        None => (jobs, Vec::new()),
    };
    if jobs.is_empty() {
        return;
    }
    let items: Vec<AcceptItem> = jobs.iter().map(|j| j.item.clone()).collect();
    metrics::histogram!("rushline_accept_group_size").record(items.len() as f64);
    match queue.accept(&campaign, &items).await {
        Ok(outcomes) => {
            if let Some(rate) = user_limit {
                refund_uncounted(queue, &campaign, rate, &jobs, &counted, &outcomes).await;
            }
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            let e = AcceptError::Queue(Arc::new(e));
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Screens a group against the per-user limit: refused jobs are answered here; the rest come
/// back with whether each was counted. Redis failing here fails open (see
/// [`crate::rate_limit`]): the group goes on uncounted, and `accept.lua` answers for Redis.
async fn screen(
    queue: &Queue,
    campaign: &CampaignId,
    rate: Rate,
    jobs: Vec<Job>,
) -> (Vec<Job>, Vec<bool>) {
    let requests: Vec<UserRequest<'_>> = jobs
        .iter()
        .map(|j| UserRequest {
            user_id: &j.item.user_id,
            idempotency_key: j.item.idempotency_key.as_ref(),
        })
        .collect();
    let verdicts = match queue.limit_users(campaign, rate, &requests).await {
        Ok(verdicts) => verdicts,
        Err(e) => {
            tracing::warn!(%campaign, error = %e, "per-user rate limit unreadable; letting the group through");
            let n = jobs.len();
            return (jobs, vec![false; n]);
        }
    };
    let mut admitted = Vec::with_capacity(jobs.len());
    let mut counted = Vec::with_capacity(jobs.len());
    for (job, verdict) in jobs.into_iter().zip(verdicts) {
        match verdict {
            Verdict::Denied { retry_after, .. } => {
                let _ = job.reply.send(Err(AcceptError::RateLimited(Denial {
                    kind: LimitKind::User,
                    rate,
                    retry_after,
                })));
            }
            Verdict::Allowed { .. } => {
                admitted.push(job);
                counted.push(true);
            }
            Verdict::Replay => {
                admitted.push(job);
                counted.push(false);
            }
        }
    }
    (admitted, counted)
}

/// Gives back what counted requests spent when they should not have counted: a replay the
/// screen could not see yet (its original was claimed in this very group), or a campaign not in
/// Redis yet (the handler warms it and asks again, which counts then). Best effort: a failure
/// leaves the user one request short for a period.
async fn refund_uncounted(
    queue: &Queue,
    campaign: &CampaignId,
    rate: Rate,
    jobs: &[Job],
    counted: &[bool],
    outcomes: &[AcceptOutcome],
) {
    let users: Vec<&UserId> = jobs
        .iter()
        .zip(counted)
        .zip(outcomes)
        .filter(|((_, counted), outcome)| {
            **counted
                && matches!(
                    outcome,
                    AcceptOutcome::Replay { .. } | AcceptOutcome::Unknown
                )
        })
        .map(|((job, _), _)| &job.item.user_id)
        .collect();
    if users.is_empty() {
        return;
    }
    if let Err(e) = queue.refund_users(campaign, rate, &users).await {
        tracing::warn!(%campaign, error = %e, "per-user rate limit refund failed");
    }
}

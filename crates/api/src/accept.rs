//! Group commit: concurrent accepts share one `accept.lua` call.
//!
//! This is the API's hot path. Handlers hand their request to the [`Acceptor`] and await the
//! outcome. One task drains everything waiting, groups it by campaign and sends each group as one
//! script call; up to `in_flight` such calls run at once (pipelined over the pooled multiplexed
//! connections). A lone request is sent the moment it arrives — nothing waits for a group to
//! fill — and under load, requests arriving while every slot is busy form the next group, so
//! Redis round trips per request fall exactly when it matters.

use std::collections::HashMap;
use std::sync::Arc;

use rushline_domain::CampaignId;
use rushline_queue::{AcceptItem, AcceptOutcome, Queue, QueueError};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Requests waiting for a group beyond this are shed (503) instead of queued in memory. It bounds
/// the acceptor's memory (a few hundred bytes a request) however fast requests arrive; in practice
/// the backlog is at most the requests in flight, one per open connection.
pub const BACKLOG: usize = 65_536;

/// Why an accept did not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
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
    reply: oneshot::Sender<Result<AcceptOutcome, Arc<QueueError>>>,
}

/// Hands requests to the group-commit task. Cheap to clone; the task ends when the last clone
/// is dropped, after answering every request it took.
#[derive(Clone)]
pub struct Acceptor {
    jobs: mpsc::Sender<Job>,
}

impl Acceptor {
    /// Starts the group-commit task.
    pub fn spawn(queue: Queue, max_group: usize, in_flight: usize) -> Self {
        let (jobs, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(run(queue, rx, max_group, in_flight));
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
        Ok(outcome.await.map_err(|_| AcceptError::Stopped)??)
    }
}

async fn run(queue: Queue, mut rx: mpsc::Receiver<Job>, max_group: usize, in_flight: usize) {
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
            futures::future::join_all(calls.map(|(campaign, jobs)| commit(&queue, campaign, jobs)))
                .await;
            drop(slot);
        });
    }
}

/// One script call for one campaign's group; every job gets its outcome or the error.
async fn commit(queue: &Queue, campaign: CampaignId, jobs: Vec<Job>) {
    let items: Vec<AcceptItem> = jobs.iter().map(|j| j.item.clone()).collect();
    metrics::histogram!("rushline_accept_group_size").record(items.len() as f64);
    match queue.accept(&campaign, &items).await {
        Ok(outcomes) => {
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

//! Group commit: concurrent accepts share one `accept.lua` call.
//!
//! This is the API's hot path. Handlers hand their request to the [`Acceptor`] and await the
//! outcome. One task takes what is waiting, groups it by campaign and sends each group as one
//! script call. A lone request is sent the moment it arrives when no call is in flight —
//! nothing waits for a timer or for a group to fill. While a call is in flight, arriving
//! requests wait for it to come back and then go together as the next group: under load each
//! call carries everything that arrived during the previous one's round trip, so script calls
//! (and the API's and Redis's CPU per request) fall exactly when it matters. A second call
//! starts before the first is back only for a full group (`max_group` requests), up to
//! `in_flight` calls at once.
//!
//! With a per-user rate limit, each group is screened first by one `rate_limit.lua` call (see
//! [`crate::rate_limit`]); refused requests get their `429` and only the rest reach `accept.lua`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use rushline_domain::{CampaignId, UserId};
use rushline_queue::rate_limit::{Rate, UserRequest, Verdict};
use rushline_queue::{AcceptItem, AcceptOutcome, Queue, QueueError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

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
        let grouping = Grouping {
            max_group,
            in_flight,
        };
        tokio::spawn(dispatch(rx, grouping, move |round| {
            let queue = queue.clone();
            async move { commit_round(&queue, round, max_group, user_limit).await }
        }));
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

/// When a round goes out.
#[derive(Debug, Clone, Copy)]
struct Grouping {
    /// Most requests in one script call: a round this large goes out without waiting for the
    /// call in flight.
    max_group: usize,
    /// Most rounds in flight at once (at least 1).
    in_flight: usize,
}

impl Grouping {
    /// Most requests one round takes (the rest wait in the channel, counted in the backlog).
    fn round_cap(self) -> usize {
        self.max_group.max(1) * self.in_flight.max(1)
    }

    /// Whether a round of `waiting` requests goes out now, with `busy` rounds in flight.
    fn ready(self, waiting: usize, busy: usize) -> bool {
        busy == 0 || (busy < self.in_flight.max(1) && waiting >= self.max_group.max(1))
    }
}

/// Takes jobs into rounds and hands each round to `commit` (which answers every job in it) as a
/// task of its own. Returns once the channel is closed and every round taken is committed.
async fn dispatch<C, F>(mut rx: mpsc::Receiver<Job>, grouping: Grouping, commit: C)
where
    C: Fn(Vec<Job>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let cap = grouping.round_cap();
    let mut rounds = JoinSet::new();
    let mut open = true;
    while open {
        // Wait for a first job, reaping finished rounds meanwhile.
        let first = tokio::select! {
            Some(_) = rounds.join_next(), if !rounds.is_empty() => continue,
            job = rx.recv() => job,
        };
        let Some(first) = first else { break };
        let mut round = vec![first];
        take_waiting(&mut rx, &mut round, cap);
        // A round in flight: what arrives until it is back (or until a full group) joins this
        // round. Nothing in flight: this round goes at once, even a lone request.
        while !grouping.ready(round.len(), rounds.len()) {
            tokio::select! {
                Some(_) = rounds.join_next() => {}
                job = rx.recv(), if open && round.len() < cap => match job {
                    Some(job) => round.push(job),
                    None => open = false,
                },
                else => break,
            }
            take_waiting(&mut rx, &mut round, cap);
        }
        rounds.spawn(commit(round));
    }
    while rounds.join_next().await.is_some() {}
}

/// Moves jobs already waiting in the channel into `round`, up to `cap` in all.
fn take_waiting(rx: &mut mpsc::Receiver<Job>, round: &mut Vec<Job>, cap: usize) {
    while round.len() < cap {
        match rx.try_recv() {
            Ok(job) => round.push(job),
            Err(_) => break,
        }
    }
}

/// Commits one round: by campaign, in calls of at most `max_group` requests, all at once.
async fn commit_round(queue: &Queue, round: Vec<Job>, max_group: usize, user_limit: Option<Rate>) {
    let Some(campaign) = round.first().map(|job| job.campaign.clone()) else {
        return;
    };
    // Nearly always one campaign: no map for that.
    if round.iter().all(|job| job.campaign == campaign) {
        return commit_chunks(queue, campaign, round, max_group, user_limit).await;
    }
    let mut groups: HashMap<CampaignId, Vec<Job>> = HashMap::new();
    for job in round {
        groups.entry(job.campaign.clone()).or_default().push(job);
    }
    futures::future::join_all(
        groups
            .into_iter()
            .map(|(campaign, jobs)| commit_chunks(queue, campaign, jobs, max_group, user_limit)),
    )
    .await;
}

/// One campaign's jobs in calls of at most `max_group` requests, all at once.
async fn commit_chunks(
    queue: &Queue,
    campaign: CampaignId,
    jobs: Vec<Job>,
    max_group: usize,
    user_limit: Option<Rate>,
) {
    let max_group = max_group.max(1);
    if jobs.len() <= max_group {
        return commit(queue, campaign, jobs, user_limit).await;
    }
    let mut chunks = Vec::new();
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        chunks.push(jobs.by_ref().take(max_group).collect::<Vec<_>>());
    }
    futures::future::join_all(
        chunks
            .into_iter()
            .map(|chunk| commit(queue, campaign.clone(), chunk, user_limit)),
    )
    .await;
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
    let (items, replies): (Vec<AcceptItem>, Vec<_>) =
        jobs.into_iter().map(|job| (job.item, job.reply)).unzip();
    metrics::histogram!(crate::telemetry::ACCEPT_GROUP_SIZE).record(items.len() as f64);
    match queue.accept(&campaign, &items).await {
        Ok(outcomes) => {
            if let Some(rate) = user_limit {
                refund_uncounted(queue, &campaign, rate, &items, &counted, &outcomes).await;
            }
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            let e = AcceptError::Queue(Arc::new(e));
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
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
    items: &[AcceptItem],
    counted: &[bool],
    outcomes: &[AcceptOutcome],
) {
    let users: Vec<&UserId> = items
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
        .map(|((item, _), _)| &item.user_id)
        .collect();
    if users.is_empty() {
        return;
    }
    if let Err(e) = queue.refund_users(campaign, rate, &users).await {
        tracing::warn!(%campaign, error = %e, "per-user rate limit refund failed");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rushline_domain::RequestId;
    use tokio::time::Instant;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    type Answer = oneshot::Receiver<Result<AcceptOutcome, AcceptError>>;

    /// A round handed to the committer: its size, when, and the switch that lets it finish.
    struct Call {
        size: usize,
        at: Instant,
        finish: oneshot::Sender<()>,
    }

    /// Starts `dispatch` with a committer that reports each round and holds it until the test
    /// finishes it (then answers every job `Queued`): what "a call in flight" means to the
    /// grouping, without Redis (the API tests run the real script).
    fn start(
        max_group: usize,
        in_flight: usize,
    ) -> (
        mpsc::Sender<Job>,
        mpsc::UnboundedReceiver<Call>,
        tokio::task::JoinHandle<()>,
    ) {
        let (jobs, rx) = mpsc::channel(BACKLOG);
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let grouping = Grouping {
            max_group,
            in_flight,
        };
        let dispatcher = tokio::spawn(dispatch(rx, grouping, move |round: Vec<Job>| {
            let calls_tx = calls_tx.clone();
            async move {
                let (finish, finished) = oneshot::channel();
                let call = Call {
                    size: round.len(),
                    at: Instant::now(),
                    finish,
                };
                if calls_tx.send(call).is_ok() {
                    let _ = finished.await;
                }
                for job in round {
                    let _ = job.reply.send(Ok(AcceptOutcome::Queued));
                }
            }
        }));
        (jobs, calls, dispatcher)
    }

    fn send(jobs: &mpsc::Sender<Job>, n: usize) -> Result<Vec<Answer>, Box<dyn std::error::Error>> {
        let campaign = CampaignId::parse("drop")?;
        let mut answers = Vec::with_capacity(n);
        for i in 0..n {
            let (reply, answer) = oneshot::channel();
            let item = AcceptItem {
                request_id: RequestId::new_for(&campaign),
                user_id: UserId::parse(format!("user-{i}"))?,
                idempotency_key: None,
                admitted: false,
            };
            jobs.try_send(Job {
                campaign: campaign.clone(),
                item,
                reply,
            })?;
            answers.push(answer);
        }
        Ok(answers)
    }

    async fn next(calls: &mut mpsc::UnboundedReceiver<Call>) -> Result<Call, &'static str> {
        calls.recv().await.ok_or("the dispatcher stopped")
    }

    /// No further round starts (the clock is paused: the hour passes at once when every task
    /// is idle, so this waits for nothing real).
    async fn assert_no_call(calls: &mut mpsc::UnboundedReceiver<Call>) {
        let waited = tokio::time::timeout(Duration::from_secs(3600), calls.recv()).await;
        assert!(waited.is_err(), "a round started that should have waited");
    }

    async fn assert_queued(answers: Vec<Answer>) -> TestResult {
        for answer in answers {
            assert_eq!(answer.await??, AcceptOutcome::Queued);
        }
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_request_goes_at_once() -> TestResult {
        let (jobs, mut calls, _dispatcher) = start(256, 4);
        let sent = Instant::now();
        let answers = send(&jobs, 1)?;
        let call = next(&mut calls).await?;
        assert_eq!(call.size, 1);
        // The clock is paused and advances only when every task waits on a timer: a round
        // that waited for a timer (a group filling up) would start later than it was sent.
        assert_eq!(call.at, sent);
        let _ = call.finish.send(());
        assert_queued(answers).await?;
        assert_eq!(Instant::now(), sent);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn requests_arriving_during_a_call_form_the_next_group() -> TestResult {
        let (jobs, mut calls, _dispatcher) = start(256, 4);
        let first_answer = send(&jobs, 1)?;
        let first = next(&mut calls).await?;
        assert_eq!(first.size, 1);
        // Fewer than a full group while the first call is in flight: they wait for it.
        let answers = send(&jobs, 40)?;
        assert_no_call(&mut calls).await;
        let _ = first.finish.send(());
        let second = next(&mut calls).await?;
        assert_eq!(second.size, 40, "everything that arrived went as one group");
        let _ = second.finish.send(());
        assert_queued(first_answer).await?;
        assert_queued(answers).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_group_goes_without_waiting_up_to_the_in_flight_bound() -> TestResult {
        let (jobs, mut calls, _dispatcher) = start(4, 2);
        let mut answers = send(&jobs, 1)?;
        let first = next(&mut calls).await?;
        answers.extend(send(&jobs, 4)?);
        let second = next(&mut calls).await?;
        assert_eq!(
            second.size, 4,
            "a full group does not wait for the call in flight"
        );
        // Two rounds in flight: the bound. Another full group waits for one of them.
        answers.extend(send(&jobs, 5)?);
        assert_no_call(&mut calls).await;
        let _ = first.finish.send(());
        let third = next(&mut calls).await?;
        // A round takes up to max_group × in_flight; the commit splits it into groups.
        assert_eq!(third.size, 5);
        let _ = second.finish.send(());
        let _ = third.finish.send(());
        assert_queued(answers).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_takes_at_most_its_cap_and_leaves_the_rest_waiting() -> TestResult {
        let (jobs, mut calls, _dispatcher) = start(2, 1);
        let mut answers = send(&jobs, 1)?;
        let first = next(&mut calls).await?;
        answers.extend(send(&jobs, 5)?);
        let _ = first.finish.send(());
        let mut sizes = Vec::new();
        while sizes.iter().sum::<usize>() < 5 {
            let call = next(&mut calls).await?;
            sizes.push(call.size);
            let _ = call.finish.send(());
        }
        assert_eq!(sizes, [2, 2, 1]);
        assert_queued(answers).await
    }

    #[tokio::test(start_paused = true)]
    async fn closing_answers_every_request_taken() -> TestResult {
        let (jobs, mut calls, dispatcher) = start(256, 4);
        let mut answers = send(&jobs, 1)?;
        let first = next(&mut calls).await?;
        answers.extend(send(&jobs, 3)?);
        drop(jobs);
        let _ = first.finish.send(());
        let second = next(&mut calls).await?;
        assert_eq!(second.size, 3);
        let _ = second.finish.send(());
        dispatcher.await?;
        assert_queued(answers).await
    }
}

//! `rushline-worker`: the queue consumer. Any number run side by side.
//!
//! # Layout
//!
//! A request reaches a worker already safe in Redis (queued by the API). From there:
//!
//! 1. [`wake`] — the worker learns a campaign has work from the `work` channel (or a periodic
//!    sweep of all campaigns) and marks it for the loops below.
//! 2. [`decide`] — pops and decides batches in Redis (`decide.lua`): one atomic step per batch,
//!    which also records every decision in the campaign's log.
//! 3. [`persist`] — copies the log into PostgreSQL in one transaction per batch, undoes in Redis
//!    what the record refuses, acknowledges; a task of its own takes over entries of dead
//!    workers on every sweep. [`dead_letter`] sets aside entries that can never be persisted.
//!
//! Both loops serve campaigns round-robin ([`rotation`]) with a bounded turn each, so one busy
//! campaign never starves another.
//!
//! [`telemetry`] names the metrics the loops record and serves them on `GET /metrics`.
//! Process plumbing shared with the API — the configuration parser, logs, signals, [`backoff`],
//! connecting to PostgreSQL — is `rushline_runtime`.
//!
//! [`Worker::run`] wires them and owns shutdown: the decide loop stops first (after its call in
//! flight), then the persist loop drains what is left within the grace period.

pub mod config;
pub mod dead_letter;
pub mod decide;
pub mod persist;
pub mod rotation;
pub mod telemetry;
pub mod wake;

use std::sync::Arc;

use anyhow::Context as _;
use rushline_queue::Queue;
use rushline_runtime::postgres;
use rushline_store::Store;
use tokio_util::sync::CancellationToken;

pub use config::Config;
/// Jittered exponential backoff, shared with the API (`rushline_runtime`).
pub use rushline_runtime::backoff;

/// What the loops share.
#[derive(Clone)]
pub struct Context {
    /// Configuration.
    pub config: Arc<Config>,
    /// Redis.
    pub queue: Queue,
    /// PostgreSQL.
    pub store: Store,
    /// This worker's consumer name in the log's consumer group (unique per process).
    pub consumer: String,
    /// Fires when shutdown's grace period is over: retries give up, leaving work pending.
    pub hard_stop: CancellationToken,
}

/// One worker process's loops.
pub struct Worker {
    ctx: Context,
}

impl Worker {
    /// Connects (PostgreSQL eagerly, retrying for a while; Redis lazily).
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let store = postgres::connect_patiently(postgres::Connect {
            url: &config.shared.database_url,
            max_connections: config.db_max_connections,
            timeout: config.backend_timeout,
        })
        .await
        .context("connecting to PostgreSQL")?;
        let queue = Queue::new(config.queue_config()).context("configuring Redis")?;
        Ok(Self::new(config, queue, store))
    }

    /// A worker over existing handles.
    pub fn new(config: Config, queue: Queue, store: Store) -> Self {
        Self {
            ctx: Context {
                config: Arc::new(config),
                queue,
                store,
                consumer: format!("worker-{}", uuid::Uuid::new_v4().simple()),
                hard_stop: CancellationToken::new(),
            },
        }
    }

    /// This worker's consumer name.
    pub fn consumer(&self) -> &str {
        &self.ctx.consumer
    }

    /// Runs until `shutdown` is cancelled, then finishes deciding the batch in flight, persists
    /// what is left (for at most the configured grace period) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let ctx = self.ctx;
        let to_decide = wake::Pending::default();
        let to_persist = wake::Pending::default();
        let sweeps = wake::Pending::default();
        let background = CancellationToken::new();

        let listener = tokio::spawn(wake::listen(
            ctx.queue.subscriber(),
            ctx.queue.keys().work_channel(),
            vec![to_decide.clone(), to_persist.clone()],
            background.clone(),
        ));
        // The sweep's first tick is immediate: work queued while no worker ran is found at once.
        let sweeper = tokio::spawn(wake::sweep(
            ctx.queue.clone(),
            ctx.store.clone(),
            ctx.config.sweep_every,
            vec![to_decide.clone(), to_persist.clone()],
            sweeps.clone(),
            background.clone(),
        ));
        let persist_stop = CancellationToken::new();
        let persister = tokio::spawn(persist::run(
            ctx.clone(),
            to_persist.clone(),
            persist_stop.clone(),
        ));
        let taker = tokio::spawn(persist::take_over(ctx.clone(), sweeps, background.clone()));
        let decider = decide::run(ctx.clone(), to_decide, to_persist, shutdown.clone());

        decider.await;
        tracing::info!(consumer = %ctx.consumer, "decide loop stopped; persisting what is left");
        background.cancel();
        persist_stop.cancel();
        let hard_stop = ctx.hard_stop.clone();
        let grace = ctx.config.shutdown_grace;
        let timer = tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            hard_stop.cancel();
        });
        let _ = persister.await;
        timer.abort();
        let _ = tokio::join!(listener, sweeper, taker);
        tracing::info!(consumer = %ctx.consumer, "worker stopped");
    }
}

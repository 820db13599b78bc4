//! `rushline recover`: make sure every campaign's Redis state exists, rebuilding it from
//! PostgreSQL where it is missing, and report what Redis holds afterwards.
//!
//! This talks to PostgreSQL and Redis directly, not to the API: it is what an operator runs when
//! Redis came back empty (or was replaced), possibly before any API or worker is up. It does
//! nothing the servers would not do themselves on first touch — the rebuild is the same
//! `Queue::warm` under the same lease, so running it beside live APIs and workers, or twice, is
//! safe — but it does it for every campaign at once, so the first requests after a Redis loss do
//! not each pay for a rebuild, and the operator sees the restored counts.

use std::time::Duration;

use anyhow::Context;
use rushline_domain::CampaignId;
use rushline_queue::{Queue, QueueConfig, Warmed};
use rushline_store::Store;
use serde::Serialize;

use crate::render::Format;

/// Campaigns read from PostgreSQL per page.
const PAGE: i64 = 100;
/// Bound on each Redis and PostgreSQL call: an operator's tool should fail, not hang.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the record and Redis are, as `recover` and `reconcile` both need them.
pub struct Servers {
    /// PostgreSQL URL (the record).
    pub database_url: String,
    /// Redis URL (or a cluster's node URLs, comma-separated).
    pub redis_url: String,
    /// The one Redis URL is a cluster node (`RUSHLINE_REDIS_CLUSTER`).
    pub redis_cluster: bool,
    /// Key namespace shared with the servers (`RUSHLINE_KEY_NAMESPACE`).
    pub namespace: Option<String>,
}

/// Where to find the servers, and what to recover.
pub struct Recover {
    /// The record and Redis.
    pub servers: Servers,
    /// Only this campaign; every campaign in PostgreSQL when `None`.
    pub campaign: Option<String>,
}

/// What Redis looked like for one campaign before the command ran.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Found {
    /// Redis already held the campaign; nothing was rebuilt.
    AlreadyWarm,
    /// Redis did not hold it; it was rebuilt from PostgreSQL.
    Rebuilt,
}

/// One campaign after recovery, as Redis holds it.
#[derive(Debug, Serialize)]
struct Recovered {
    campaign: String,
    redis: Found,
    stock: u64,
    issued: u64,
    remaining: u64,
    /// Users holding a coupon, per the Redis holders hash.
    holders: u64,
    /// Requests waiting for a worker.
    queued: u64,
    /// Decided batches not yet persisted.
    log_entries: u64,
}

impl Servers {
    /// Opens the record and Redis the way `recover` and `reconcile` both need them.
    pub(crate) async fn connect(&self) -> anyhow::Result<(Store, Queue)> {
        let store = Store::connect(&self.database_url, 2, BACKEND_TIMEOUT)
            .await
            .context("connecting to PostgreSQL")?;
        let queue = Queue::new(QueueConfig {
            namespace: self.namespace.clone(),
            timeout: BACKEND_TIMEOUT,
            cluster: self.redis_cluster,
            ..QueueConfig::new(self.redis_url.clone())
        })
        .context("configuring Redis")?;
        Ok((store, queue))
    }
}

/// Runs the recovery and prints one line (or JSON object) per campaign.
pub async fn run(args: Recover, format: Format) -> anyhow::Result<()> {
    let (store, queue) = args.servers.connect().await?;

    let campaigns = match args.campaign {
        Some(id) => vec![CampaignId::parse(id).context("--campaign")?],
        None => every_campaign(&store).await?,
    };
    let (mut warm, mut rebuilt) = (0, 0);
    for id in &campaigns {
        let recovered = recover_one(&queue, &store, id).await?;
        if format == Format::Text && warm + rebuilt == 0 {
            println!(
                "{:<24} {:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6}",
                "CAMPAIGN", "REDIS", "STOCK", "ISSUED", "REMAINING", "HOLDERS", "QUEUED", "LOG"
            );
        }
        match recovered.redis {
            Found::AlreadyWarm => warm += 1,
            Found::Rebuilt => rebuilt += 1,
        }
        match format {
            Format::Json => println!("{}", serde_json::to_string(&recovered)?),
            Format::Text => println!(
                "{:<24} {:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>6}",
                recovered.campaign,
                match recovered.redis {
                    Found::AlreadyWarm => "already warm",
                    Found::Rebuilt => "rebuilt",
                },
                recovered.stock,
                recovered.issued,
                recovered.remaining,
                recovered.holders,
                recovered.queued,
                recovered.log_entries,
            ),
        }
    }
    if format == Format::Text {
        println!(
            "{} campaigns: {warm} already warm, {rebuilt} rebuilt from PostgreSQL",
            campaigns.len()
        );
    }
    Ok(())
}

/// Every campaign id in PostgreSQL, in id order.
pub(crate) async fn every_campaign(store: &Store) -> anyhow::Result<Vec<CampaignId>> {
    let mut ids = Vec::new();
    loop {
        let page = store
            .campaigns_page(ids.last(), PAGE)
            .await
            .context("listing campaigns in PostgreSQL")?;
        let full = page.len() as i64 == PAGE;
        ids.extend(page.into_iter().map(|c| c.spec.id));
        if !full {
            return Ok(ids);
        }
    }
}

async fn recover_one(queue: &Queue, store: &Store, id: &CampaignId) -> anyhow::Result<Recovered> {
    let before = queue
        .campaign_state(id)
        .await
        .with_context(|| format!("{id}: reading Redis"))?;
    // Always warm: for a warm campaign it only re-registers it for the workers' sweep (the
    // registry is lost with the rest of Redis's data), which is idempotent.
    if queue
        .warm(id, store)
        .await
        .with_context(|| format!("{id}: rebuilding Redis from PostgreSQL"))?
        == Warmed::NotFound
    {
        anyhow::bail!("{id}: no such campaign in PostgreSQL");
    }
    let state = queue
        .campaign_state(id)
        .await
        .with_context(|| format!("{id}: reading Redis"))?
        .with_context(|| format!("{id}: not in Redis after the rebuild (Redis emptied again?)"))?;
    let holders = queue
        .holder_count(id)
        .await
        .with_context(|| format!("{id}: counting holders"))?;
    let queued = queue
        .queue_len(id)
        .await
        .with_context(|| format!("{id}: reading the queue length"))?;
    let log_entries = queue
        .log_len(id)
        .await
        .with_context(|| format!("{id}: reading the log length"))?;
    Ok(Recovered {
        campaign: id.to_string(),
        redis: if before.is_some() {
            Found::AlreadyWarm
        } else {
            Found::Rebuilt
        },
        stock: state.stock,
        issued: state.issued,
        remaining: state.remaining,
        holders,
        queued,
        log_entries,
    })
}

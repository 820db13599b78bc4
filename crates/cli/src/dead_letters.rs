//! `rushline dead-letters list|replay`: decision-log entries the workers could never persist.
//!
//! A worker sets such an entry aside — with its raw content, the error, the time and the worker
//! — in its campaign's dead-letter stream in Redis (see `rushline_queue::dead_letters`), and
//! `rushline_dead_letter_entries` rises above 0. `list` shows them; once the cause is fixed (the
//! campaign is created, a worker that reads the entry is deployed), `replay` puts each back into
//! its campaign's decision log, as it was, for the workers to persist. Like `recover`, this talks
//! to Redis and PostgreSQL directly.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use rushline_domain::CampaignId;
use rushline_queue::{DeadLetter, Queue, QueueConfig, Warmed};
use rushline_store::Store;
use serde_json::json;

use crate::render::Format;

/// Bound on each Redis and PostgreSQL call.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The subcommands.
#[derive(Subcommand)]
pub enum DeadLettersCommand {
    /// Every dead letter (or one campaign's): id, campaign, reason, time, worker, decisions, error.
    ///
    /// Reasons: unparsable (the entry does not decode), unknown_campaign (PostgreSQL holds no
    /// such campaign), rejected_by_record (PostgreSQL refuses its rows for good). With --json,
    /// one object per dead letter, raw content included.
    List {
        /// Only this campaign.
        #[arg(long)]
        campaign: Option<String>,
        #[command(flatten)]
        servers: Servers,
    },
    /// Put dead letters back into their campaign's decision log, for the workers to persist.
    ///
    /// Fix the cause first: replaying an entry that still cannot be persisted only sets it aside
    /// again (under a new id). The campaign must be in PostgreSQL; its Redis state is rebuilt
    /// from there first if missing, as `recover` does. Persisting decisions PostgreSQL already
    /// holds inserts nothing, so replaying is safe.
    Replay {
        /// Dead letter ids, as `list` prints them.
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
        /// Every dead letter (of --campaign, if given).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// The campaign the ids belong to (needed only if an id is found in two campaigns).
        #[arg(long)]
        campaign: Option<String>,
        #[command(flatten)]
        servers: Servers,
    },
}

/// Where Redis and PostgreSQL are.
#[derive(Args)]
pub struct Servers {
    #[command(flatten)]
    redis: crate::RedisArg,
    #[command(flatten)]
    record: crate::RecordArg,
}

impl Servers {
    fn queue(&self) -> anyhow::Result<Queue> {
        Queue::new(QueueConfig {
            namespace: self.redis.namespace(),
            timeout: BACKEND_TIMEOUT,
            cluster: self.redis.redis_cluster,
            ..QueueConfig::new(self.redis.redis_url.clone())
        })
        .context("configuring Redis")
    }
}

/// Runs a subcommand.
pub async fn run(command: DeadLettersCommand, format: Format) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List { campaign, servers } => {
            let letters = collect(&servers.queue()?, campaign.as_deref()).await?;
            print_list(&letters, format)
        }
        DeadLettersCommand::Replay {
            ids,
            all,
            campaign,
            servers,
        } => {
            let queue = servers.queue()?;
            let letters = collect(&queue, campaign.as_deref()).await?;
            let chosen = if all {
                letters
            } else {
                choose(&letters, &ids)?
            };
            let store = Store::connect(&servers.record.database_url, 1, BACKEND_TIMEOUT)
                .await
                .context("connecting to PostgreSQL")?;
            for letter in &chosen {
                replay(&queue, &store, letter, format).await?;
            }
            if format == Format::Text {
                println!("{} dead letters replayed", chosen.len());
            }
            Ok(())
        }
    }
}

async fn collect(queue: &Queue, campaign: Option<&str>) -> anyhow::Result<Vec<DeadLetter>> {
    let campaigns = match campaign {
        Some(id) => vec![CampaignId::parse(id).context("--campaign")?],
        None => queue
            .dead_letter_campaigns()
            .await
            .context("listing campaigns with dead letters")?,
    };
    let mut letters = Vec::new();
    for campaign in &campaigns {
        letters.extend(
            queue
                .dead_letters(campaign)
                .await
                .with_context(|| format!("{campaign}: reading dead letters"))?,
        );
    }
    Ok(letters)
}

/// The dead letters named by `ids`, each found exactly once.
fn choose(letters: &[DeadLetter], ids: &[String]) -> anyhow::Result<Vec<DeadLetter>> {
    let mut chosen = Vec::new();
    for id in ids {
        let found: Vec<&DeadLetter> = letters.iter().filter(|l| l.id == *id).collect();
        match found.as_slice() {
            [letter] => chosen.push((*letter).clone()),
            [] => anyhow::bail!("no dead letter {id} (see `rushline dead-letters list`)"),
            _ => anyhow::bail!("dead letter id {id} exists in several campaigns: add --campaign"),
        }
    }
    Ok(chosen)
}

async fn replay(
    queue: &Queue,
    store: &Store,
    letter: &DeadLetter,
    format: Format,
) -> anyhow::Result<()> {
    let campaign = &letter.campaign;
    // A worker cannot persist into a campaign PostgreSQL does not hold, nor read an issued
    // decision without the campaign's state in Redis: make sure of both first.
    if queue
        .warm(campaign, store)
        .await
        .with_context(|| format!("{campaign}: rebuilding Redis from PostgreSQL"))?
        == Warmed::NotFound
    {
        anyhow::bail!(
            "{campaign}: no such campaign in PostgreSQL; create it first (replaying {} now would only set it aside again)",
            letter.id
        );
    }
    let entry = queue
        .replay_dead_letter(campaign, &letter.id)
        .await
        .with_context(|| format!("{campaign}: replaying {}", letter.id))?
        .with_context(|| {
            format!(
                "{campaign}: dead letter {} is gone (replayed already?)",
                letter.id
            )
        })?;
    match format {
        Format::Json => println!(
            "{}",
            json!({"campaign": campaign.as_str(), "id": letter.id, "log_entry": entry})
        ),
        Format::Text => println!("{campaign} {} -> decision log entry {entry}", letter.id),
    }
    Ok(())
}

fn print_list(letters: &[DeadLetter], format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        for l in letters {
            let raw: serde_json::Map<String, serde_json::Value> = l
                .raw
                .iter()
                .map(|(name, value)| (name.clone(), json!(value)))
                .collect();
            println!(
                "{}",
                json!({
                    "id": l.id,
                    "campaign": l.campaign.as_str(),
                    "entry": l.entry,
                    "reason": l.reason,
                    "error": l.error,
                    "worker": l.worker,
                    "at": rushline_domain::timefmt::from_millis(l.at_ms).map(|t| t.to_rfc3339()),
                    "decisions": decisions(l),
                    "raw": raw,
                })
            );
        }
        return Ok(());
    }
    println!(
        "{:<18} {:<24} {:<18} {:<24} {:>9}  ERROR",
        "ID", "CAMPAIGN", "REASON", "AT", "DECISIONS"
    );
    for l in letters {
        let at = rushline_domain::timefmt::from_millis(l.at_ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        println!(
            "{:<18} {:<24} {:<18} {:<24} {:>9}  {} (worker {})",
            l.id,
            l.campaign,
            l.reason,
            at,
            decisions(l),
            l.error,
            l.worker
        );
    }
    println!("{} dead letters", letters.len());
    Ok(())
}

/// How many decision lines the entry held.
fn decisions(letter: &DeadLetter) -> usize {
    letter
        .raw
        .iter()
        .filter(|(name, _)| name == "d")
        .map(|(_, lines)| lines.split('\n').filter(|l| !l.is_empty()).count())
        .sum()
}

//! `rushline reconcile`: every difference between Redis and PostgreSQL (the record) for one
//! campaign or all, and with `--repair` a rebuild of each campaign that differs.
//!
//! Compared: whether Redis holds the campaign at all (`ready`) and lists it for the workers'
//! sweep; stock; window; Redis's coupon sequence against the highest recorded one (a Redis that
//! came back older than the record — a host crash, a failover to a lagging replica — is *behind*:
//! it would hand out numbers the record holds); and, once every decision Redis holds is persisted
//! (its decision log is empty), issued, remaining against stock − issued rows, and the holders
//! against the users with an issued row. While the log holds decisions those three differ
//! legitimately and are not compared (the report says so); run again once it is persisted.
//!
//! The repair is the servers' own rebuild: take the campaign's Redis state out of service
//! (`warm_invalidate.lua`, atomic with deciding), then warm it up under the lease — which waits
//! until the log is persisted, reads the record, and never moves the coupon sequence backwards.
//! Safe beside running APIs and workers (they answer `503`/wait for the few moments it takes,
//! exactly as after a Redis restart) and safe to repeat.

use std::collections::HashSet;

use anyhow::Context;
use rushline_domain::CampaignId;
use rushline_queue::{Queue, RedisCampaign, Warmed};
use rushline_store::{Store, StoredCampaign};
use serde::Serialize;

use crate::render::Format;

/// Holders read from PostgreSQL per page.
const HOLDERS_PAGE: i64 = 5_000;
/// Users named per holder difference (the count is always given).
const EXAMPLES: usize = 5;

/// Where to find the servers, and what to reconcile.
pub struct Reconcile {
    /// The record and Redis.
    pub servers: crate::recover::Servers,
    /// Only this campaign; every campaign in PostgreSQL when `None`.
    pub campaign: Option<String>,
    /// Rebuild every campaign that differs.
    pub repair: bool,
}

/// One difference between Redis and the record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
struct Difference {
    /// `not_warm`, `unregistered`, `behind`, `superseded`, `stock`, `window`, `issued`,
    /// `remaining`, `holders_missing`, `holders_extra`.
    field: &'static str,
    redis: String,
    record: String,
}

/// One campaign's report.
#[derive(Debug, Serialize)]
struct Report {
    campaign: String,
    differences: Vec<Difference>,
    /// Why issued, remaining and holders were not compared, if they were not.
    not_compared: Option<String>,
    /// `--repair`: whether a rebuild ran, and the differences left after it.
    repaired: Option<bool>,
    remaining_differences: Option<Vec<Difference>>,
}

/// Runs the comparison; fails (exit 1) when differences remain.
pub async fn run(args: Reconcile, format: Format) -> anyhow::Result<()> {
    let (store, queue) = args.servers.connect().await?;
    let campaigns = match &args.campaign {
        Some(id) => vec![CampaignId::parse(id.as_str()).context("--campaign")?],
        None => crate::recover::every_campaign(&store).await?,
    };
    let mut left = 0;
    for id in &campaigns {
        let record = store
            .campaign(id)
            .await
            .with_context(|| format!("{id}: reading PostgreSQL"))?
            .with_context(|| format!("{id}: no such campaign in PostgreSQL"))?;
        let (differences, not_compared) = compare(&queue, &store, id, &record).await?;
        let mut report = Report {
            campaign: id.to_string(),
            differences,
            not_compared,
            repaired: None,
            remaining_differences: None,
        };
        if args.repair {
            let rebuild = !report.differences.is_empty();
            if rebuild {
                queue
                    .invalidate_for_rebuild(id)
                    .await
                    .with_context(|| format!("{id}: taking Redis's state out of service"))?;
                if queue
                    .warm(id, &store)
                    .await
                    .with_context(|| format!("{id}: rebuilding Redis from PostgreSQL"))?
                    == Warmed::NotFound
                {
                    anyhow::bail!("{id}: no such campaign in PostgreSQL");
                }
            }
            let (after, _) = compare(&queue, &store, id, &record).await?;
            left += usize::from(!after.is_empty());
            report.repaired = Some(rebuild);
            report.remaining_differences = Some(after);
        } else {
            left += usize::from(!report.differences.is_empty());
        }
        print(&report, format)?;
    }
    if format == Format::Text {
        println!(
            "{} campaigns compared: {left} {}",
            campaigns.len(),
            if args.repair {
                "still differ after the repair"
            } else {
                "differ from the record (rushline reconcile --repair rebuilds them)"
            }
        );
    }
    if left > 0 {
        anyhow::bail!("{left} campaigns differ from the record");
    }
    Ok(())
}

fn print(report: &Report, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string(report)?),
        Format::Text => {
            let state = match (report.differences.is_empty(), report.repaired) {
                (true, _) => "in line with the record",
                (false, Some(true)) => "differed; rebuilt from the record",
                (false, _) => "differs from the record",
            };
            println!("{}: {state}", report.campaign);
            for d in &report.differences {
                println!(
                    "  {:<16} redis {:<24} record {}",
                    d.field, d.redis, d.record
                );
            }
            if let Some(why) = &report.not_compared {
                println!("  not compared: {why}");
            }
            for d in report.remaining_differences.iter().flatten() {
                println!(
                    "  STILL {:<10} redis {:<24} record {}",
                    d.field, d.redis, d.record
                );
            }
        }
    }
    Ok(())
}

fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

async fn compare(
    queue: &Queue,
    store: &Store,
    id: &CampaignId,
    record: &StoredCampaign,
) -> anyhow::Result<(Vec<Difference>, Option<String>)> {
    let redis: RedisCampaign = queue
        .redis_campaign(id)
        .await
        .with_context(|| format!("{id}: reading Redis"))?;
    let mut out = Vec::new();
    let mut differ = |field, redis: String, record: String| {
        out.push(Difference {
            field,
            redis,
            record,
        })
    };
    if !redis.ready {
        differ("not_warm", "not ready".into(), "campaign recorded".into());
        return Ok((out, Some("Redis does not hold the campaign".into())));
    }
    if !redis.registered {
        differ(
            "unregistered",
            "missing from the registry".into(),
            "-".into(),
        );
    }
    let stock = record.spec.stock.get() as i64;
    if redis.stock != Some(stock) {
        differ("stock", opt(redis.stock), stock.to_string());
    }
    let window = (
        Some(record.spec.opens_at.timestamp_millis()),
        record.spec.closes_at.map(|t| t.timestamp_millis()),
    );
    if (redis.opens_ms, redis.closes_ms) != window {
        differ(
            "window",
            format!("{}..{}", opt(redis.opens_ms), opt(redis.closes_ms)),
            format!("{}..{}", opt(window.0), opt(window.1)),
        );
    }
    let high = store
        .recorded_high_seq(id)
        .await
        .with_context(|| format!("{id}: reading the highest recorded coupon"))?;
    if let Some(high) = high
        && redis.seq.is_none_or(|seq| seq <= high)
    {
        differ(
            "behind",
            format!("next coupon seq {}", opt(redis.seq)),
            format!("coupon seq {high} recorded"),
        );
    }
    // A state older than the record's rebuild epoch predates a rebuild it never saw (Redis came
    // back older): the record refuses every decision it makes (they are handed back).
    let record_epoch = store
        .epoch(id)
        .await
        .with_context(|| format!("{id}: reading the rebuild epoch"))?;
    if let (Some(redis_epoch), Some(record_epoch)) = (redis.epoch, record_epoch)
        && redis_epoch < record_epoch
    {
        differ(
            "superseded",
            format!("rebuild epoch {redis_epoch}"),
            format!("rebuild epoch {record_epoch}"),
        );
    }
    if redis.log_entries > 0 {
        return Ok((
            out,
            Some(format!(
                "issued, remaining, holders: {} decided batches not yet persisted",
                redis.log_entries
            )),
        ));
    }
    // Issued rows counted after the log was found empty: nothing Redis decided is unrecorded.
    let issued = record_issued(store, id).await?;
    if redis.issued != Some(issued) {
        differ("issued", opt(redis.issued), issued.to_string());
    }
    let room = (stock - issued).max(0);
    if redis.remaining != Some(room) {
        differ(
            "remaining",
            opt(redis.remaining),
            format!("{room} (stock - issued rows)"),
        );
    }
    let in_redis = queue
        .redis_holders(id)
        .await
        .with_context(|| format!("{id}: reading Redis's holders"))?;
    let in_record = issued_users(store, id).await?;
    let missing: Vec<&String> = in_record
        .iter()
        .filter(|u| !in_redis.contains_key(*u))
        .collect();
    let extra: Vec<&String> = in_redis
        .keys()
        .filter(|u| !in_record.contains(*u))
        .collect();
    for (field, users, redis_side, record_side) in [
        ("holders_missing", &missing, "not holders", "issued"),
        ("holders_extra", &extra, "holders", "not issued"),
    ] {
        if !users.is_empty() {
            let named: Vec<&str> = users.iter().take(EXAMPLES).map(|u| u.as_str()).collect();
            differ(
                field,
                format!("{} users {redis_side}", users.len()),
                format!("{record_side}: {}", named.join(", ")),
            );
        }
    }
    Ok((out, None))
}

async fn record_issued(store: &Store, id: &CampaignId) -> anyhow::Result<i64> {
    let stored = store
        .campaign(id)
        .await
        .with_context(|| format!("{id}: reading PostgreSQL"))?
        .with_context(|| format!("{id}: no such campaign in PostgreSQL"))?;
    Ok(stored.issued as i64)
}

async fn issued_users(store: &Store, id: &CampaignId) -> anyhow::Result<HashSet<String>> {
    let mut users = HashSet::new();
    let mut after = None;
    loop {
        let page = store
            .holders_page(id, after.as_ref(), HOLDERS_PAGE)
            .await
            .with_context(|| format!("{id}: reading issued users"))?;
        let Some((last, _)) = page.last() else {
            return Ok(users);
        };
        after = Some(last.clone());
        users.extend(page.into_iter().map(|(user, _)| user.as_str().to_owned()));
    }
}

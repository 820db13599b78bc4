//! Drops: smoke, presale (S1), sold-out storm (S2), many campaigns (S4).

use std::time::Duration;

use serde::Serialize;

use super::{Context, DropSpec, ScenarioReport, run_drop};
use crate::LoadError;
use crate::monitor::redis_info;
use crate::traffic::{Answer, Load, Mix};

/// The numbers of a drop; every scenario has its defaults and each can be overridden.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DropArgs {
    /// Requests in total.
    pub requests: usize,
    /// Distinct users (requests − users are repeat presses and racing retries).
    pub users: usize,
    /// Stock per campaign.
    pub stock: i64,
    /// Campaigns opened at once (requests are spread evenly).
    pub campaigns: usize,
    /// Client tasks (connections), closed loop.
    pub concurrency: usize,
    /// Share of the extra requests sent as racing retries with one `Idempotency-Key`.
    pub racing_share: f64,
}

impl DropArgs {
    /// Smoke: 3,000 requests, 2,600 users over 2 campaigns of 500.
    pub fn smoke() -> Self {
        Self {
            requests: 3_000,
            users: 2_600,
            stock: 500,
            campaigns: 2,
            concurrency: 32,
            racing_share: 0.3,
        }
    }

    /// Concert presale (S1): stock 10,000; 200,000 requests from 180,000 users; C = 256.
    pub fn presale() -> Self {
        Self {
            requests: 200_000,
            users: 180_000,
            stock: 10_000,
            campaigns: 1,
            concurrency: 256,
            racing_share: 0.1,
        }
    }

    /// Sold-out storm (S2): stock 1,000; 500,000 requests (475,000 users); C = 256.
    pub fn sold_out_storm() -> Self {
        Self {
            requests: 500_000,
            users: 475_000,
            stock: 1_000,
            campaigns: 1,
            concurrency: 256,
            racing_share: 0.1,
        }
    }

    /// Many campaigns (S4): 100 campaigns × 2,000 requests, stock 500 each; C = 256.
    pub fn many_campaigns() -> Self {
        Self {
            requests: 200_000,
            users: 190_000,
            stock: 500,
            campaigns: 100,
            concurrency: 256,
            racing_share: 0.1,
        }
    }

    /// Counts multiplied by `factor` (stock too, so the sold-out point stays where it was).
    pub fn scaled(self, factor: f64) -> Self {
        let scale = |n: usize| ((n as f64 * factor).round() as usize).max(1);
        Self {
            requests: scale(self.requests),
            users: scale(self.users),
            stock: (self.stock as f64 * factor).round().max(1.0) as i64,
            ..self
        }
    }

    fn spec(&self, name: &str) -> DropSpec {
        DropSpec {
            name: name.into(),
            campaigns: self.campaigns,
            stock: self.stock,
            mix: Mix {
                requests: self.requests,
                users: self.users.min(self.requests),
                racing_share: self.racing_share,
            },
            load: Load::Closed {
                concurrency: self.concurrency,
            },
        }
    }
}

fn report(name: &str, description: &str, args: &DropArgs) -> ScenarioReport {
    ScenarioReport {
        name: name.into(),
        description: description.into(),
        params: serde_json::to_value(args).unwrap_or_default(),
        ..ScenarioReport::default()
    }
}

/// A few thousand requests over two campaigns with every kind of press; checks the guarantees
/// only (the test suite runs it: it never asserts a speed).
pub async fn smoke(ctx: &Context, args: &DropArgs) -> Result<ScenarioReport, LoadError> {
    let mut report = report(
        "smoke",
        "a few thousand requests, two campaigns, repeats and racing retries; guarantees only",
        args,
    );
    run_drop(ctx, &args.spec("smoke"), &mut report).await?;
    Ok(report)
}

/// Concert presale (S1): is every request final within 1.5× the time it took to post them all?
pub async fn presale(ctx: &Context, args: &DropArgs) -> Result<ScenarioReport, LoadError> {
    let mut report = report(
        "presale",
        "concert presale: one campaign, 10 % repeat presses, closed loop",
        args,
    );
    run_drop(ctx, &args.spec("presale"), &mut report).await?;
    Ok(report)
}

/// Sold-out storm (S2): does the accept rate hold once stock is gone, and what does Redis keep
/// per refused request?
pub async fn sold_out_storm(ctx: &Context, args: &DropArgs) -> Result<ScenarioReport, LoadError> {
    let mut report = report(
        "sold-out-storm",
        "sold-out storm: a small stock, a huge crowd; the sold-out fast path must carry it",
        args,
    );
    if let Some(ttl) = ctx.status_ttl {
        // Let earlier scenarios' status records expire first, so the baseline is the floor
        // (waiting out the TTL is the measurement: nothing announces an expiry).
        tokio::time::sleep(ttl + Duration::from_secs(5)).await;
    }
    let before = redis_memory(ctx).await;
    let keys_before = namespace_keys(ctx).await;
    let run = run_drop(ctx, &args.spec("sold-out-storm"), &mut report).await?;
    let after = redis_memory(ctx).await;
    let keys_after = namespace_keys(ctx).await;
    // Split the blast at the first answer that was decided at once (the fast path took over).
    let mut records: Vec<_> = run.blast.records.iter().collect();
    records.sort_unstable_by_key(|r| r.answered_us);
    let split = records
        .iter()
        .position(|r| matches!(r.answer, Answer::Decided(..)));
    if let Some(split) = split {
        let rate = |part: &[&crate::traffic::Record]| match (part.first(), part.last()) {
            (Some(a), Some(b)) if b.answered_us > a.answered_us => {
                part.len() as f64 / ((b.answered_us - a.answered_us) as f64 / 1e6)
            }
            _ => 0.0,
        };
        report.figure("rate_before_sold_out", rate(&records[..split]));
        report.figure("rate_while_sold_out", rate(&records[split..]));
    }
    if let (Some(before), Some(after)) = (before, after) {
        let refused = records.len().saturating_sub(args.stock as usize).max(1);
        report.figure(
            "redis_used_memory_growth_mib",
            (after - before) / 1_048_576.0,
        );
        report.figure("redis_bytes_per_request", (after - before) / refused as f64);
        report.notes.push(
            "Redis keeps each request's status record for RUSHLINE_STATUS_TTL_SECS after it is \
             persisted, and each Idempotency-Key for 25 h; redis_used_memory_growth_mib is \
             measured right after verification, within that TTL. Redis is shared with anything \
             else running on the machine, so memory figures include their keys."
                .into(),
        );
    }
    if let (Some(before), Some(after)) = (keys_before, keys_after) {
        report.figure("redis_keys_before", before as f64);
        report.figure("redis_keys_after", after as f64);
    }
    if let Some(ttl) = ctx.status_ttl {
        tokio::time::sleep(ttl + Duration::from_secs(5)).await;
        report.figure("status_ttl_s", ttl.as_secs_f64());
        if let (Some(before), Some(later)) = (before, redis_memory(ctx).await) {
            report.figure("redis_growth_after_ttl_mib", (later - before) / 1_048_576.0);
        }
        if let Some(later) = namespace_keys(ctx).await {
            report.figure("redis_keys_after_ttl", later as f64);
        }
    }
    Ok(report)
}

/// Many campaigns (S4) opening at once, requests interleaved across them.
pub async fn many_campaigns(ctx: &Context, args: &DropArgs) -> Result<ScenarioReport, LoadError> {
    let mut report = report(
        "many-campaigns",
        "many campaigns opening at once, requests interleaved across them",
        args,
    );
    run_drop(ctx, &args.spec("many-campaigns"), &mut report).await?;
    Ok(report)
}

/// Keys under the deployment's namespace, when Redis is reachable. Unlike `used_memory`, this
/// counts only rushline's own keys in a shared Redis.
pub async fn namespace_keys(ctx: &Context) -> Option<u64> {
    let keys = ctx.queue.as_ref()?.deployment_keys().await.ok()?;
    Some(keys.len() as u64)
}

/// Redis `used_memory` in bytes (on a cluster: summed over the nodes listed), when Redis is
/// reachable.
pub async fn redis_memory(ctx: &Context) -> Option<f64> {
    redis_info(ctx.redis_url.as_deref(), "memory")
        .await?
        .iter()
        .map(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("used_memory:"))
                .and_then(|n| n.trim().parse::<f64>().ok())
        })
        .sum()
}

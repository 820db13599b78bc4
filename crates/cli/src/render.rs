//! What the operator reads: aligned text for people, the API's JSON for scripts.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use rushline_domain::admin::Counts;
use rushline_domain::timefmt::rfc3339;

use crate::client::{Campaign, CampaignPage, Reply, Stats};

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON document per result (per refresh with `--watch`).
    Json,
}

/// Per-second rates between two stats readings.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    issued: f64,
    decided: f64,
    persisted: f64,
}

impl Rates {
    /// Rates from `before` to `after`, `elapsed` apart.
    pub fn between(before: &Stats, after: &Stats, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        Self {
            issued: rate(before.decided.issued, after.decided.issued),
            decided: rate(before.decided.total, after.decided.total),
            persisted: rate(before.persisted.total, after.persisted.total),
        }
    }
}

/// Clears a terminal so `--watch` redraws in place; does nothing when output is redirected.
pub fn clear_screen() {
    let mut out = std::io::stdout();
    if out.is_terminal() {
        let _ = write!(out, "\x1b[2J\x1b[H");
    }
}

fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// One campaign.
pub fn campaign(format: Format, reply: &Reply<Campaign>) -> anyhow::Result<()> {
    if format == Format::Json {
        return json(&reply.raw);
    }
    let c = &reply.typed;
    println!("{}  {}", c.id, c.name);
    println!("  status     {}", c.status);
    println!(
        "  stock      {}   issued {}   remaining {}",
        c.stock, c.issued, c.remaining
    );
    println!(
        "  window     {} -> {}",
        rfc3339(&c.opens_at),
        c.closes_at
            .as_ref()
            .map_or_else(|| "never closes".to_owned(), rfc3339)
    );
    println!("  decide     {}", c.decide);
    println!("  shards     {}", c.shards);
    if let Some(room) = &c.waiting_room {
        println!(
            "  waiting    {}/s   pass {} s   pre-queue {} s   proof of work {} bits",
            room.admit_per_second, room.pass_secs, room.prequeue_secs, room.proof_of_work_bits
        );
    }
    if let Some(queue) = &c.queue {
        println!(
            "  queue      joined {}   admitted through {}{}",
            queue.joined,
            queue.admitted_through,
            if queue.paused { "   PAUSED" } else { "" }
        );
    }
    Ok(())
}

/// One page of the campaign list; `header` on the first.
pub fn page(format: Format, reply: &Reply<CampaignPage>, header: bool) -> anyhow::Result<()> {
    if format == Format::Json {
        return json(&reply.raw);
    }
    let page = &reply.typed;
    if header {
        println!(
            "{:<24} {:<10} {:>10} {:>10} {:>10}  {:<8} {:>6}  NAME",
            "ID", "STATUS", "STOCK", "ISSUED", "REMAINING", "DECIDE", "SHARDS"
        );
    }
    for c in &page.campaigns {
        println!(
            "{:<24} {:<10} {:>10} {:>10} {:>10}  {:<8} {:>6}  {}",
            c.id.as_str(),
            c.status.as_str(),
            c.stock,
            c.issued,
            c.remaining,
            c.decide.as_str(),
            c.shards,
            c.name
        );
    }
    Ok(())
}

/// A stats reading, with rates since the previous one under `--watch`.
pub fn stats(format: Format, reply: &Reply<Stats>, rates: Option<Rates>) -> anyhow::Result<()> {
    let s = &reply.typed;
    if format == Format::Json {
        let mut value = reply.raw.clone();
        if let Some(r) = rates {
            value["rates_per_second"] = serde_json::json!({
                "issued": r.issued, "decided": r.decided, "persisted": r.persisted});
        }
        return json(&value);
    }
    println!("{}  {}  at {}", s.campaign_id, s.status, rfc3339(&s.at));
    println!("  stock      {}   remaining {}", s.stock, s.remaining);
    println!("  queued     {}", s.queued);
    let line = |name: &str, c: &Counts| {
        println!(
            "  {name:<10} issued {}   sold_out {}   duplicate {}   (total {})",
            c.issued, c.sold_out, c.duplicate, c.total
        );
    };
    line("decided", &s.decided.counts());
    line("persisted", &s.persisted);
    match s.persistence_lag.oldest_unpersisted_ms {
        Some(ms) => println!(
            "  lag        {} log entries, oldest {ms} ms",
            s.persistence_lag.log_entries
        ),
        None => println!("  lag        none (everything decided is persisted)"),
    }
    if let Some(seed) = &s.prequeue_seed {
        println!("  pre-queue seed {seed}  (audit: sort users by sha1hex(seed || user_id))");
    }
    if let Some(r) = rates {
        println!(
            "  rates/s    issued {:.1}   decided {:.1}   persisted {:.1}",
            r.issued, r.decided, r.persisted
        );
    }
    Ok(())
}

//! `rushline`: the operator's command line.
//!
//! # Layout
//!
//! - this file: the commands (clap derive; the help text is the manual) and what each does;
//! - [`client`]: the admin API over HTTP, one typed call per action, problem+json kept intact;
//! - [`render`]: what the operator reads — aligned text, or `--json` for scripts;
//! - [`recover`]: rebuilding campaigns' Redis state from PostgreSQL.
//! - [`reconcile`]: every difference between Redis and PostgreSQL, and the repair.
//!
//! Campaign commands and `stats` go through the admin API, the same path and checks as any other
//! admin client, so the CLI never bypasses the API's rules (close and add-stock keep Redis and
//! PostgreSQL in step there). `migrate` and `recover` talk to PostgreSQL (and Redis) directly:
//! they are what you run before any API exists, or while Redis is being brought back.

mod client;
mod dead_letters;
mod reconcile;
mod recover;
mod render;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use rushline_domain::AdmissionChange;

use crate::client::Client;
use crate::render::Format;

/// Operate a rushline deployment: create and watch campaigns, add stock, close early, migrate.
///
/// Campaign and stats commands talk to rushline-api's admin endpoints; give its address with
/// --api (or RUSHLINE_API_URL) and the admin token in RUSHLINE_ADMIN_TOKEN, the same variable the
/// API reads. `migrate` talks to PostgreSQL directly (RUSHLINE_DATABASE_URL); `recover` to
/// PostgreSQL and Redis (RUSHLINE_DATABASE_URL, RUSHLINE_REDIS_URL, RUSHLINE_KEY_NAMESPACE).
///
/// A drop, start to finish:
///
///   rushline campaign create --id concert-2026 --name "Concert presale" --stock 1000 \
///       --opens-at 2026-12-01T10:00:00Z
///
///   rushline stats concert-2026 --watch      # queue, decisions, persistence, live rates
///
///   rushline campaign add-stock concert-2026 200   # while it is still open
///
///   rushline campaign close concert-2026     # stop taking requests now
///
/// A drop behind a waiting room (people queue, a gate admits N per second):
///
///   rushline campaign create --id concert-2026 --name "Concert presale" --stock 1000 \
///       --opens-at 2026-12-01T10:00:00Z --admit-per-second 500 --prequeue-secs 900
///
///   rushline campaign admission concert-2026 --pause        # hold the line
///   rushline campaign admission concert-2026 --rate 200 --resume
///
/// After Redis lost its data:
///
///   rushline recover                         # rebuild every campaign from PostgreSQL
///
/// After Redis came back older than the record (host crash, failover to a lagging replica):
///
///   rushline reconcile                       # every difference between Redis and PostgreSQL
///   rushline reconcile --repair              # rebuild the campaigns that differ
#[derive(Parser)]
#[command(name = "rushline", version, verbatim_doc_comment)]
struct Cli {
    /// Base URL of rushline-api (any replica).
    #[arg(
        long,
        global = true,
        env = "RUSHLINE_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    api: String,
    /// Admin bearer token; prefer the environment variable, which stays out of shell history.
    #[arg(
        long,
        global = true,
        env = "RUSHLINE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print the API's JSON instead of text (for scripts and jq).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, inspect, list, close campaigns and add stock.
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// A campaign's pipeline: queued, decided by outcome, persisted, persistence lag.
    ///
    /// "decided" counts final statuses Redis has handed out; "persisted" counts PostgreSQL's rows.
    /// The gap is what workers have not written yet; once the queue drains they are equal.
    /// With --watch it refreshes every second and adds rates (per second, from the previous
    /// refresh) until Ctrl-C.
    Stats(StatsArgs),
    /// Apply the database migrations (the API also applies them at start-up).
    ///
    /// Safe while APIs are starting: migrations take an advisory lock and each applies once.
    Migrate {
        #[command(flatten)]
        record: RecordArg,
    },
    /// Make sure every campaign's Redis state exists, rebuilding it from PostgreSQL.
    ///
    /// Run it after Redis lost its data (restarted without its AOF, replaced, flushed). For each
    /// campaign in PostgreSQL (or only --campaign) it prints whether Redis already held it or it
    /// was rebuilt — remaining = stock - issued rows, holders reloaded from issued rows, coupon
    /// sequence continued past every recorded code — and then what Redis holds: stock, issued,
    /// remaining, holders, queued requests and decided batches not yet persisted (LOG).
    ///
    /// The servers rebuild a campaign themselves on first use; this does it for all of them at
    /// once and shows the result. Safe beside running APIs and workers, and safe to repeat: a
    /// campaign Redis already holds is left as it is. Requests that were only in the lost Redis
    /// queue cannot be recovered (see the README's failure model).
    Recover {
        /// Only this campaign.
        #[arg(long)]
        campaign: Option<String>,
        #[command(flatten)]
        record: RecordArg,
        #[command(flatten)]
        redis: RedisArg,
    },
    /// Report every difference between Redis and PostgreSQL; --repair rebuilds what differs.
    ///
    /// For each campaign in PostgreSQL (or only --campaign): is it warm in Redis and registered
    /// for the workers' sweep; stock; window; is Redis's coupon sequence past the highest
    /// recorded one (if not, Redis is behind the record: it came back older after a host crash or
    /// a failover); and, once Redis's decision log is persisted, issued, remaining against
    /// stock - issued rows, and holders against the users with an issued row.
    ///
    /// With --repair, each campaign that differs is rebuilt from PostgreSQL the way the servers
    /// rebuild it, under the same lease: it waits for the decision log to be persisted, so it is
    /// safe beside running APIs and workers. Exits 1 while differences remain.
    Reconcile {
        /// Only this campaign.
        #[arg(long)]
        campaign: Option<String>,
        /// Rebuild every campaign that differs from the record.
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        record: RecordArg,
        #[command(flatten)]
        redis: RedisArg,
    },
    /// Decision-log entries the workers could never persist: list them, replay them once fixed.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLettersCommand),
    /// Waiting-room ticket signing keys (RUSHLINE_TICKET_KEYS).
    #[command(subcommand)]
    TicketKey(TicketKeyCommand),
}

/// Waiting-room ticket keys.
#[derive(Subcommand)]
enum TicketKeyCommand {
    /// Print a fresh Ed25519 key for RUSHLINE_TICKET_KEYS on standard output (a secret: it signs
    /// tickets) and its public key id on standard error.
    ///
    /// Rotation: append the new key (RUSHLINE_TICKET_KEYS=OLD,NEW) and roll out, so it is
    /// published; after the JWK Set's cache time (5 minutes) put it first (NEW,OLD) and roll out,
    /// so it signs; a day later drop OLD.
    New,
}

/// Where Redis is and which key namespace the servers use: the same flags for every command that
/// reads Redis directly.
#[derive(Args)]
struct RedisArg {
    /// Redis URL.
    #[arg(
        long,
        env = "RUSHLINE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    redis_url: String,
    /// `1`: the one Redis URL is a Redis Cluster node (a comma-separated list is a cluster anyway).
    #[arg(
        long,
        env = "RUSHLINE_REDIS_CLUSTER",
        default_value = "0",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    redis_cluster: bool,
    /// Key namespace the servers use (keys start with rushline:<namespace>:).
    #[arg(long, env = "RUSHLINE_KEY_NAMESPACE")]
    key_namespace: Option<String>,
}

impl RedisArg {
    /// The namespace as the servers read it: empty means none.
    fn namespace(&self) -> Option<String> {
        self.key_namespace.clone().filter(|ns| !ns.is_empty())
    }
}

/// Where the record is: the same flag for every command that reads PostgreSQL.
#[derive(Args)]
struct RecordArg {
    /// PostgreSQL URL (the record).
    #[arg(
        long,
        env = "RUSHLINE_DATABASE_URL",
        default_value = "postgres://rushline:rushline@127.0.0.1:5432/rushline",
        hide_env_values = true
    )]
    database_url: String,
}

#[derive(Subcommand)]
enum CampaignCommand {
    /// Create a campaign. Without --opens-at it opens now; without --closes-at it never closes;
    /// without --decide instant its requests are queued for workers to decide.
    Create(CreateArgs),
    /// Show one campaign: status, stock, issued, remaining, window, decide mode, and its waiting
    /// room (rate, pass, pre-queue) with the queue's figures (joined, admitted through, paused).
    Show {
        /// Campaign id.
        id: String,
    },
    /// List campaigns in id order, one page (--limit) or every page (--all).
    List {
        /// Campaigns per page, 1-100.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Start after this campaign id (the "next" a previous page printed).
        #[arg(long)]
        after: Option<String>,
        /// Follow every page to the end.
        #[arg(long)]
        all: bool,
    },
    /// Close a campaign now: new requests get 409; those already queued are still decided.
    ///
    /// Idempotent: closing a closed campaign keeps its first close.
    Close {
        /// Campaign id.
        id: String,
    },
    /// Add coupons to a scheduled or open campaign.
    ///
    /// Refused once the campaign is sold out or closed: new stock would go to requests made after
    /// earlier ones were refused, breaking first come, first served. Start a new campaign instead.
    /// If the command fails midway (no answer), check with `campaign show` before repeating it.
    AddStock {
        /// Campaign id.
        id: String,
        /// Coupons to add (the total may not exceed 100,000,000).
        add: u64,
    },
    /// Change a waiting room's admission while the campaign runs: its rate, pause or resume.
    ///
    /// Recorded in PostgreSQL first, then applied to the serving counter (which is advanced at
    /// the old settings first). A paused line keeps its positions; nobody new is admitted until
    /// it resumes. Refused (409) for a campaign without a waiting room.
    Admission(AdmissionArgs),
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["rate", "pause", "resume"]))]
struct AdmissionArgs {
    /// Campaign id.
    id: String,
    /// Positions admitted per second from now on, 1-1,000,000.
    #[arg(long)]
    rate: Option<u64>,
    /// Stop admitting (the serving counter holds).
    #[arg(long, conflicts_with = "resume")]
    pause: bool,
    /// Admit again.
    #[arg(long)]
    resume: bool,
}

#[derive(Args)]
struct CreateArgs {
    /// Display name, 1-200 characters.
    #[arg(long)]
    name: String,
    /// Coupons to issue, 1-100,000,000.
    #[arg(long)]
    stock: u64,
    /// Id: 1-64 of a-z 0-9 - _ (generated when absent).
    #[arg(long)]
    id: Option<String>,
    /// When requests start being accepted, RFC 3339 (e.g. 2026-12-01T10:00:00Z).
    #[arg(long)]
    opens_at: Option<String>,
    /// When requests stop being accepted, RFC 3339; must be after --opens-at.
    #[arg(long)]
    closes_at: Option<String>,
    /// Who decides its requests: "queued" (a worker decides; the API answers 202) or "instant"
    /// (the accept step decides; the API answers 200 with the final status and coupon code).
    /// Fixed at creation; queued when absent.
    #[arg(long, value_parser = ["queued", "instant"])]
    decide: Option<String>,
    /// Stock shards, 1-64 (default 1): each user always maps to the same shard. Recorded and
    /// shown; today every campaign is decided on one Redis slot whatever the count.
    #[arg(long)]
    shards: Option<u64>,
    /// Put a waiting room in front of it, admitting this many positions per second
    /// (1-1,000,000). People join the line, and only admitted ones may request a coupon.
    #[arg(long)]
    admit_per_second: Option<u64>,
    /// With --admit-per-second: seconds an admitted pass stays valid, 10-86,400 (default 600).
    #[arg(long, requires = "admit_per_second")]
    pass_secs: Option<u64>,
    /// With --admit-per-second: seconds before --opens-at the line takes joins, 0-86,400
    /// (default 0); those are shuffled at the opening, ahead of later joiners.
    #[arg(long, requires = "admit_per_second")]
    prequeue_secs: Option<u64>,
    /// With --admit-per-second: leading zero bits of SHA-256 a join must show, 0-24 (default 0,
    /// none): a proof of work the /wait page solves in the browser (2^bits hashes on average;
    /// 16 bits take a phone a second or two).
    #[arg(long, requires = "admit_per_second")]
    proof_of_work_bits: Option<u64>,
}

#[derive(Args)]
struct StatsArgs {
    /// Campaign id.
    campaign: String,
    /// Refresh every second until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// With --watch: stop after this many refreshes.
    #[arg(long, requires = "watch")]
    count: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rushline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The record and Redis from their flags.
fn servers(record: RecordArg, redis: RedisArg) -> recover::Servers {
    recover::Servers {
        namespace: redis.namespace(),
        database_url: record.database_url,
        redis_url: redis.redis_url,
        redis_cluster: redis.redis_cluster,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let format = if cli.json { Format::Json } else { Format::Text };
    let client = Client::new(&cli.api, cli.token);
    match cli.command {
        Command::Campaign(command) => campaign(&client, format, command).await,
        Command::Stats(args) => stats(&client, format, args).await,
        Command::Migrate { record } => migrate(&record.database_url).await,
        Command::Recover {
            campaign,
            record,
            redis,
        } => {
            let args = recover::Recover {
                servers: servers(record, redis),
                campaign,
            };
            recover::run(args, format).await
        }
        Command::Reconcile {
            campaign,
            repair,
            record,
            redis,
        } => {
            let args = reconcile::Reconcile {
                servers: servers(record, redis),
                campaign,
                repair,
            };
            reconcile::run(args, format).await
        }
        Command::DeadLetters(command) => dead_letters::run(command, format).await,
        Command::TicketKey(TicketKeyCommand::New) => {
            let key = rushline_api::tickets::TicketKey::generate();
            println!("{}", key.to_secret_string());
            eprintln!("kid {}", key.kid());
            Ok(())
        }
    }
}

async fn campaign(client: &Client, format: Format, command: CampaignCommand) -> anyhow::Result<()> {
    match command {
        CampaignCommand::Create(args) => {
            let mut body = json!({"name": args.name, "stock": args.stock});
            for (field, value) in [
                ("id", args.id),
                ("opens_at", args.opens_at),
                ("closes_at", args.closes_at),
                ("decide", args.decide),
            ] {
                if let Some(value) = value {
                    body[field] = json!(value);
                }
            }
            if let Some(rate) = args.admit_per_second {
                let mut room = json!({"admit_per_second": rate});
                if let Some(pass) = args.pass_secs {
                    room["pass_secs"] = json!(pass);
                }
                if let Some(prequeue) = args.prequeue_secs {
                    room["prequeue_secs"] = json!(prequeue);
                }
                if let Some(bits) = args.proof_of_work_bits {
                    room["proof_of_work_bits"] = json!(bits);
                }
                body["waiting_room"] = room;
            }
            if let Some(shards) = args.shards {
                body["shards"] = json!(shards);
            }
            render::campaign(format, &client.create_campaign(&body).await?)
        }
        CampaignCommand::Show { id } => render::campaign(format, &client.campaign(&id).await?),
        CampaignCommand::List { limit, after, all } => {
            let mut after = after;
            let mut first = true;
            loop {
                let page = client.campaigns(limit, after.as_deref()).await?;
                render::page(format, &page, first)?;
                first = false;
                match page.typed.next {
                    Some(next) if all => after = Some(next.into()),
                    _ => return Ok(()),
                }
            }
        }
        CampaignCommand::Close { id } => render::campaign(format, &client.close(&id).await?),
        CampaignCommand::AddStock { id, add } => {
            render::campaign(format, &client.add_stock(&id, add).await?)
        }
        CampaignCommand::Admission(args) => {
            let paused = match (args.pause, args.resume) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let change = AdmissionChange {
                admit_per_second: args.rate,
                paused,
            };
            render::campaign(format, &client.admission(&args.id, &change).await?)
        }
    }
}

async fn stats(client: &Client, format: Format, args: StatsArgs) -> anyhow::Result<()> {
    if !args.watch {
        return render::stats(format, &client.stats(&args.campaign).await?, None);
    }
    let mut previous = None;
    let mut refreshes = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            // Polled first, so the Ctrl-C handler is registered before anything is printed.
            biased;
            _ = &mut ctrl_c => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = tokio::time::Instant::now();
        let current = match client.stats(&args.campaign).await {
            Ok(current) => current,
            // A watch outlives a restarting API or a failing backend: say so and keep watching.
            // An unknown campaign or a bad token will not fix itself, so those end it.
            Err(e @ client::ClientError::Problem { status, .. }) if status.is_client_error() => {
                return Err(e.into());
            }
            Err(e) => {
                eprintln!("rushline: {e}");
                continue;
            }
        };
        if format == Format::Text {
            render::clear_screen();
        }
        let rates = previous
            .as_ref()
            .map(|(at, before): &(_, client::Reply<client::Stats>)| {
                render::Rates::between(&before.typed, &current.typed, now - *at)
            });
        render::stats(format, &current, rates)?;
        previous = Some((now, current));
        refreshes += 1;
        if args.count.is_some_and(|count| refreshes >= count) {
            return Ok(());
        }
    }
}

async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let store = rushline_store::Store::connect(database_url, 1, Duration::from_secs(10))
        .await
        .context("connecting to PostgreSQL")?;
    store.migrate().await.context("applying migrations")?;
    println!("migrations applied");
    Ok(())
}

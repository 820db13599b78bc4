//! A test's own database and Redis namespace ([`TestEnv`]), and the set-up steps tests share.

use std::time::Duration;

use anyhow::Context;
use rushline_domain::{
    CampaignId, CampaignName, CampaignSpec, DecideMode, RequestId, Stock, UserId,
};
use rushline_queue::{AcceptItem, AcceptOutcome, Queue, QueueConfig};
use rushline_store::Store;
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::process_redis;

/// The server a test's database is created on.
pub fn admin_database_url() -> String {
    std::env::var("RUSHLINE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://rushline:rushline@127.0.0.1:5432/rushline".into())
}

/// The Redis tests use: `RUSHLINE_TEST_REDIS_URL` when set, else this test process's own
/// `redis-server` ([`process_redis`]), started on first use.
pub fn test_redis_url() -> anyhow::Result<String> {
    match std::env::var("RUSHLINE_TEST_REDIS_URL") {
        Ok(url) => Ok(url),
        Err(_) => process_redis::url(),
    }
}

/// [`test_redis_url`], for tests that need a plain string.
///
/// # Panics
///
/// When the process's own `redis-server` cannot be started (not installed: run scripts/setup);
/// no test can run without it.
pub fn redis_url() -> String {
    test_redis_url().unwrap_or_else(|e| panic!("{e:#}"))
}

/// How long [`TestEnv::cleanup`] keeps trying to delete a namespace's keys before it leaves them.
const REDIS_CLEANUP_BOUND: Duration = Duration::from_secs(30);

/// How often cleanup retries dropping a database that an autovacuum worker is busy in (100 ms
/// apart: 10 s in all).
const DROP_ATTEMPTS: u32 = 100;

/// One test's private database and Redis namespace.
pub struct TestEnv {
    /// URL of the test's own database.
    pub database_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// Redis key namespace (keys start with `rushline:<namespace>:`).
    pub namespace: String,
    /// A store on the test's database.
    pub store: Store,
    admin_url: String,
    database: String,
}

impl TestEnv {
    /// Creates and migrates a fresh database and picks a fresh namespace.
    pub async fn new() -> anyhow::Result<Self> {
        let env = Self::unmigrated().await?;
        env.store.migrate().await?;
        Ok(env)
    }

    /// Like [`TestEnv::new`], but leaves the database empty (to test start-up migrations).
    pub async fn unmigrated() -> anyhow::Result<Self> {
        Self::unmigrated_on(&admin_database_url(), &test_redis_url()?).await
    }

    /// Like [`TestEnv::new`], on the given servers (a test's private ones, see [`servers`]).
    pub async fn on(admin_url: &str, redis_url: &str) -> anyhow::Result<Self> {
        let env = Self::unmigrated_on(admin_url, redis_url).await?;
        env.store.migrate().await?;
        Ok(env)
    }

    async fn unmigrated_on(admin_url: &str, redis_url: &str) -> anyhow::Result<Self> {
        let id = Uuid::new_v4().simple().to_string();
        let database = format!("rushline_t{id}");
        let admin_url = admin_url.to_owned();
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url} (run scripts/setup first)"))?;
        admin
            .execute(format!(r#"CREATE DATABASE "{database}""#).as_str())
            .await
            .context("creating the test database (the role needs CREATEDB)")?;
        let database_url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{database}"),
            None => anyhow::bail!("database URL {admin_url} has no database name"),
        };
        let store = Store::connect(&database_url, 8, Duration::from_secs(10)).await?;
        Ok(Self {
            database_url,
            redis_url: redis_url.to_owned(),
            namespace: format!("t{id}"),
            store,
            admin_url,
            database,
        })
    }

    /// The `RUSHLINE_*` settings that point a program at this test's database, Redis and
    /// namespace, then `extra`: a lookup for the API's and the worker's `Config::from_lookup`,
    /// the in-process twin of [`TestEnv::command`].
    pub fn settings<'a>(
        &'a self,
        extra: &'a [(&str, &str)],
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| match name {
            "RUSHLINE_REDIS_URL" => Some(self.redis_url.clone()),
            "RUSHLINE_DATABASE_URL" => Some(self.database_url.clone()),
            "RUSHLINE_KEY_NAMESPACE" => Some(self.namespace.clone()),
            _ => extra
                .iter()
                .find(|(setting, _)| *setting == name)
                .map(|(_, value)| (*value).to_owned()),
        }
    }

    /// A command for one of rushline's binaries, pointed at this test's database, Redis and
    /// namespace (tests add their own tuning on top).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command
            .env("RUSHLINE_REDIS_URL", &self.redis_url)
            .env("RUSHLINE_DATABASE_URL", &self.database_url)
            .env("RUSHLINE_KEY_NAMESPACE", &self.namespace);
        command
    }

    /// [`TestEnv::command`] for tests on tokio: the child is killed if the test drops it (a
    /// failed assertion must not leave a program running against a dropped database).
    pub fn tokio_command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut command = tokio::process::Command::from(self.command(program));
        command.kill_on_drop(true);
        command
    }

    /// A connection to the test's Redis, for commands a test sends by hand.
    /// On a cluster (`RUSHLINE_TEST_REDIS_URL` lists several nodes) it routes each command by
    /// its key, as rushline's own connection does.
    pub async fn redis(&self) -> anyhow::Result<rushline_queue::RedisConnection> {
        Ok(Queue::new(self.queue_config())?.connection().await?)
    }

    /// Records an open campaign `id` with `stock` in PostgreSQL (Redis is warmed on first use).
    pub async fn create_open_campaign(&self, id: &CampaignId, stock: u64) -> anyhow::Result<()> {
        self.create_open_campaign_deciding(id, stock, DecideMode::Queued)
            .await
    }

    /// [`TestEnv::create_open_campaign`] with its requests decided as `decide` says.
    pub async fn create_open_campaign_deciding(
        &self,
        id: &CampaignId,
        stock: u64,
        decide: DecideMode,
    ) -> anyhow::Result<()> {
        let spec = CampaignSpec {
            id: id.clone(),
            name: CampaignName::parse("test campaign")?,
            stock: Stock::new(stock)?,
            opens_at: chrono::Utc::now(),
            closes_at: None,
            decide,
            waiting_room: None,
            shards: rushline_domain::ShardCount::ONE,
        };
        self.store.create_campaign(&spec, "test-code-key").await?;
        Ok(())
    }

    /// A fresh campaign with `stock` and a waiting room, opening at `opens_at`, recorded in
    /// PostgreSQL and warmed into Redis through `queue`.
    pub async fn warm_waiting_room_campaign(
        &self,
        queue: &Queue,
        stock: u64,
        opens_at: chrono::DateTime<chrono::Utc>,
        room: rushline_domain::WaitingRoom,
    ) -> anyhow::Result<CampaignId> {
        let id = CampaignId::parse(format!("w-{}", &Uuid::new_v4().simple().to_string()[..12]))?;
        let spec = CampaignSpec {
            id: id.clone(),
            name: CampaignName::parse("test waiting room")?,
            stock: Stock::new(stock)?,
            opens_at,
            closes_at: None,
            decide: DecideMode::Queued,
            waiting_room: Some(room),
            shards: rushline_domain::ShardCount::ONE,
        };
        self.store.create_campaign(&spec, "test-code-key").await?;
        queue.warm(&id, &self.store).await?;
        Ok(id)
    }

    /// A fresh open campaign with `stock`, recorded in PostgreSQL and warmed into Redis through
    /// `queue`: ready for accept and decide calls.
    pub async fn warm_open_campaign(
        &self,
        queue: &Queue,
        stock: u64,
    ) -> anyhow::Result<CampaignId> {
        self.warm_open_campaign_deciding(queue, stock, DecideMode::Queued)
            .await
    }

    /// [`TestEnv::warm_open_campaign`] with its requests decided as `decide` says.
    pub async fn warm_open_campaign_deciding(
        &self,
        queue: &Queue,
        stock: u64,
        decide: DecideMode,
    ) -> anyhow::Result<CampaignId> {
        let id = CampaignId::parse(format!("c-{}", &Uuid::new_v4().simple().to_string()[..12]))?;
        self.create_open_campaign_deciding(&id, stock, decide)
            .await?;
        queue.warm(&id, &self.store).await?;
        Ok(id)
    }

    /// Queue configuration for this test's namespace.
    pub fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            namespace: Some(self.namespace.clone()),
            ..QueueConfig::new(self.redis_url.clone())
        }
    }

    /// Deletes every Redis key of this test's namespace at once (simulates Redis losing its
    /// data).
    ///
    /// The keys are collected first ([`Queue::deployment_keys`], a `SCAN`) and deleted by one
    /// `DEL`, which is atomic: deleting them batch by batch while workers run would let a warm-up
    /// rebuild part of the state between two batches, which no real data loss does. On a cluster
    /// one `DEL` per slot (a `DEL` cannot span slots), so each campaign's state still goes at one
    /// instant.
    pub async fn flush_redis(&self) -> anyhow::Result<u64> {
        let keys = Queue::new(self.queue_config())?.deployment_keys().await?;
        let mut conn = self.redis().await?;
        let mut deleted = 0;
        for slot_keys in by_slot(&keys) {
            deleted += redis::cmd("DEL")
                .arg(&slot_keys)
                .query_async::<u64>(&mut conn)
                .await?;
        }
        Ok(deleted)
    }

    /// Drops the database, then deletes the namespace's keys.
    ///
    /// Only the database's drop can fail the test. Deleting keys is housekeeping: it is retried
    /// for up to 30 s (a Redis that is busy or restarting answers later) and then left, with a
    /// line on stderr. On the process's own server ([`process_redis`]) it scans only this
    /// process's namespaces, and the server goes away with the process anyway.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        self.store.pool().close().await;
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        let drop = format!(
            r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
            self.database
        );
        // `WITH (FORCE)` must terminate every other backend on the database; an autovacuum
        // worker busy there belongs to no role the test role may signal, so PostgreSQL refuses
        // (SQLSTATE 42501) until it finishes, which takes milliseconds. Granting the role
        // `pg_signal_backend` would let the product's role kill backends; retrying does not.
        let mut attempts = 0;
        loop {
            match admin.execute(drop.as_str()).await {
                Ok(_) => break,
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("42501") && attempts < DROP_ATTEMPTS =>
                {
                    attempts += 1;
                    // Backoff while the autovacuum worker finishes, not synchronisation.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let delete = async {
            loop {
                match self.unlink_namespace().await {
                    Ok(()) => return,
                    // Backoff between attempts, not synchronisation.
                    Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        };
        if tokio::time::timeout(REDIS_CLEANUP_BOUND, delete)
            .await
            .is_err()
        {
            eprintln!(
                "testkit: left Redis keys rushline:{}:* on {} (not deleted within {REDIS_CLEANUP_BOUND:?})",
                self.namespace, self.redis_url
            );
        }
        Ok(())
    }

    /// `UNLINK`s every key of the namespace, a thousand per call (the memory is freed in the
    /// background; unlike [`TestEnv::flush_redis`] nothing needs them gone at one instant).
    async fn unlink_namespace(&self) -> anyhow::Result<()> {
        let keys = Queue::new(self.queue_config())?.deployment_keys().await?;
        if keys.is_empty() {
            return Ok(());
        }
        let mut conn = self.redis().await?;
        for slot_keys in by_slot(&keys) {
            for chunk in slot_keys.chunks(1000) {
                redis::cmd("UNLINK")
                    .arg(chunk)
                    .query_async::<u64>(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// `keys` grouped by what Redis Cluster hashes them by (the `{tag}`, else the whole key), so each
/// group is in one slot (a multi-key command must stay in one). On a single Redis the grouping
/// costs a few extra calls and changes nothing else.
fn by_slot(keys: &[String]) -> Vec<Vec<&String>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<&String>> = Default::default();
    for key in keys {
        groups.entry(hash_tag(key)).or_default().push(key);
    }
    groups.into_values().collect()
}

/// The part of `key` Redis Cluster hashes: the first `{…}` with something inside, else the key.
fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// How many requests [`queue_requests`] hands the accept script at once.
const ACCEPT_GROUP: usize = 256;

/// Queues one request per entry of `users` for `campaign` through the accept script the API's
/// hot path uses (no idempotency key), and returns their ids in the same order.
///
/// A user named twice gets two requests. Fails unless every request was queued: the tests that
/// call it want a backlog, not accept's refusals.
pub async fn queue_requests(
    queue: &Queue,
    campaign: &CampaignId,
    users: impl IntoIterator<Item = String>,
) -> anyhow::Result<Vec<RequestId>> {
    let items = users
        .into_iter()
        .map(|user| {
            Ok(AcceptItem {
                request_id: RequestId::new_for(campaign),
                user_id: UserId::parse(user)?,
                idempotency_key: None,
                admitted: false,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for group in items.chunks(ACCEPT_GROUP) {
        let outcomes = queue.accept(campaign, group).await?;
        anyhow::ensure!(
            outcomes.iter().all(|o| *o == AcceptOutcome::Queued),
            "not every request was queued: {outcomes:?}"
        );
    }
    Ok(items.iter().map(|i| i.request_id).collect())
}

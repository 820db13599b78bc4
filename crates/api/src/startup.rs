//! Building and running the application: `main` only wires these.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rushline_queue::{Queue, QueueConfig};
use rushline_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::Acceptor;
use crate::config::Config;
use crate::state::{AppState, Parts};
use crate::waiters::Waiters;
use crate::{http, telemetry};

/// How long start-up keeps trying to reach PostgreSQL before giving up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// A bound, ready-to-serve API.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects to PostgreSQL (retrying for a while, so a stack can start in any order), applies
    /// migrations, prepares Redis and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        telemetry::metrics();
        tokio::spawn(telemetry::upkeep(shutdown.clone()));
        let store = connect_store(&config).await?;
        store.migrate().await.context("applying migrations")?;
        let queue = Queue::new(QueueConfig {
            namespace: config.key_namespace.clone(),
            timeout: config.backend_timeout,
            status_ttl: config.status_ttl,
            max_queue: config.max_queue,
            max_log_entries: config.max_log_entries,
            ..QueueConfig::new(config.redis_url.clone())
        })
        .context("configuring Redis")?;
        let listener = TcpListener::bind(&config.http_addr)
            .await
            .with_context(|| format!("binding {}", config.http_addr))?;
        let waiters = Waiters::default();
        tokio::spawn(waiters.clone().listen(
            queue.subscriber(),
            queue.keys().decided_channel(),
            shutdown.clone(),
        ));
        let acceptor = Acceptor::spawn(queue.clone(), config.accept_batch, config.accept_in_flight);
        let state = AppState::new(Parts {
            config: Arc::new(config),
            queue,
            store,
            acceptor,
            waiters,
            shutdown,
        });
        Ok(Self { listener, state })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests use its Redis and PostgreSQL handles).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token is cancelled, then stops accepting connections, wakes
    /// `?wait=` callers so they answer at once, finishes in-flight requests and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let router = http::router(self.state);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .context("serving HTTP")
    }
}

async fn connect_store(config: &Config) -> anyhow::Result<Store> {
    let deadline = tokio::time::Instant::now() + STARTUP_PATIENCE;
    loop {
        match Store::connect(
            &config.database_url,
            config.db_max_connections,
            config.backend_timeout,
        )
        .await
        {
            Ok(store) => return Ok(store),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "PostgreSQL not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context("connecting to PostgreSQL"),
        }
    }
}

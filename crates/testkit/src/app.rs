//! The API, and as many workers as a test asks for, running in this test process on port 0
//! against the test's own database and Redis namespace (a [`TestEnv`]).
//!
//! In-process rather than the binaries, so a test can reach the API's state (its queue, its
//! waiters) and a failure shows in the test's own output. Tests that kill processes start the
//! binaries instead ([`TestEnv::command`]).

use anyhow::Context;
use rushline_api::state::AppState;
use rushline_api::{Application, Config};
use rushline_queue::Queue;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::TestEnv;

/// A running API (and workers) and the environment they use. Stop it with [`TestApp::stop`],
/// which also drops the test's database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The API's shared state.
    pub state: AppState,
    /// The test's database and Redis namespace.
    pub env: TestEnv,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
    worker_shutdown: CancellationToken,
    workers: Vec<JoinHandle<()>>,
}

/// Starts the API with `admin_token` and `workers` in-process workers on a fresh [`TestEnv`].
///
/// The API gets 4 PostgreSQL connections (tests run side by side on one server); the workers
/// sweep every 200 ms, so a woken campaign is not missed for long.
pub async fn spawn_app(admin_token: &str, workers: usize) -> anyhow::Result<TestApp> {
    let env = TestEnv::new().await?;
    let config = Config::from_lookup(env.settings(&[
        ("RUSHLINE_HTTP_ADDR", "127.0.0.1:0"),
        ("RUSHLINE_ADMIN_TOKEN", admin_token),
        ("RUSHLINE_DB_MAX_CONNECTIONS", "4"),
    ]))
    .context("API configuration")?;
    let shutdown = CancellationToken::new();
    let app = Application::build(config, shutdown.clone()).await?;
    let url = format!("http://{}", app.local_addr()?);
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until_stopped());
    let worker_shutdown = CancellationToken::new();
    let mut running = Vec::with_capacity(workers);
    for _ in 0..workers {
        let config =
            rushline_worker::Config::from_lookup(env.settings(&[("RUSHLINE_SWEEP_MS", "200")]))
                .context("worker configuration")?;
        let queue = Queue::new(config.queue_config())?;
        let worker = rushline_worker::Worker::new(config, queue, env.store.clone());
        running.push(tokio::spawn(worker.run(worker_shutdown.clone())));
    }
    Ok(TestApp {
        url,
        state,
        env,
        shutdown,
        server,
        worker_shutdown,
        workers: running,
    })
}

impl TestApp {
    /// The API's Redis queue.
    pub fn queue(&self) -> &Queue {
        &self.state.queue
    }

    /// Stops the workers (each finishes what it took), then the API, then drops the database.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.worker_shutdown.cancel();
        for worker in self.workers {
            worker.await.context("worker task")?;
        }
        self.shutdown.cancel();
        self.server.await.context("server task")??;
        self.env.cleanup().await
    }
}

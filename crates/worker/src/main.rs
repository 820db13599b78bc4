//! `rushline-worker`: see the library docs for the layout.

use rushline_runtime::{config, logs, shutdown};
use rushline_worker::{Config, Worker, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--help`, or an unusable variable: print and exit before anything starts.
    let config = config::or_exit("rushline-worker", Config::from_args_and_env());
    logs::init(config.shared.log_json);
    let stop = CancellationToken::new();
    tokio::spawn(shutdown::cancel_on_signal(stop.clone()));
    let metrics = match config.metrics_addr {
        Some(addr) => telemetry::start(addr, stop.clone()).await,
        None => None,
    };
    let worker = Worker::connect(config).await?;
    tracing::info!(consumer = %worker.consumer(), "rushline-worker started");
    worker.run(stop).await;
    if let Some(metrics) = metrics {
        // Cancelled with the same token: it has stopped or is finishing its last scrape.
        let _ = metrics.await;
    }
    Ok(())
}

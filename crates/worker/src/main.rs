//! `rushline-worker`: see the library docs for the layout.

use rushline_runtime::config;
use rushline_worker::{Config, Worker, telemetry};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--help`, or an unusable variable: print and exit before anything starts.
    let config = config::or_exit("rushline-worker", Config::from_args_and_env());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: logs redirected to a file stay plain text.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if config.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let metrics = match config.metrics_addr {
        Some(addr) => telemetry::start(addr, shutdown.clone()).await,
        None => None,
    };
    let worker = Worker::connect(config).await?;
    tracing::info!(consumer = %worker.consumer(), "rushline-worker started");
    worker.run(shutdown).await;
    if let Some(metrics) = metrics {
        // Cancelled with the same token: it has stopped or is finishing its last scrape.
        let _ = metrics.await;
    }
    Ok(())
}

/// Ctrl-C or SIGTERM cancels `token`.
async fn cancel_on_signal(token: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
    token.cancel();
}

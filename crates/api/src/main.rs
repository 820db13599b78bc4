//! `rushline-api`: see the library docs for the layout.

use rushline_api::{Application, Config, telemetry};
use rushline_runtime::config;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--help`, or an unusable variable: print and exit before anything starts.
    let config = config::or_exit("rushline-api", Config::from_args_and_env());
    telemetry::init(config.log_json);
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let app = Application::build(config, shutdown).await?;
    tracing::info!(addr = %app.local_addr()?, "rushline-api listening");
    app.run_until_stopped().await?;
    tracing::info!("rushline-api stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM cancels `token`.
async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
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
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
    token.cancel();
}

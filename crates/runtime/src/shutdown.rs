//! The shutdown signal: one token per process, cancelled by Ctrl-C or SIGTERM.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on Ctrl-C or SIGTERM. `main` spawns it once; the token reaches every loop.
///
/// Should SIGTERM be impossible to listen for (never on a normal Unix), the error is logged and
/// Ctrl-C still works.
pub async fn cancel_on_signal(token: CancellationToken) {
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

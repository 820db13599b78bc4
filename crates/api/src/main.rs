//! `rushline-api`: see the library docs for the layout.

use rushline_api::{Application, Config};
use rushline_runtime::{config, logs, shutdown};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--help`, or an unusable variable: print and exit before anything starts.
    let config = config::or_exit("rushline-api", Config::from_args_and_env());
    logs::init(config.shared.log_json);
    let stop = CancellationToken::new();
    tokio::spawn(shutdown::cancel_on_signal(stop.clone()));
    let app = Application::build(config, stop).await?;
    tracing::info!(addr = %app.local_addr()?, "rushline-api listening");
    app.run_until_stopped().await?;
    tracing::info!("rushline-api stopped");
    Ok(())
}

//! Logs: one subscriber set-up for both programs.

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber: `RUST_LOG` (default `info`), JSON lines or pretty.
/// Calling it again (tests start several apps in one process) does nothing.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: logs redirected to a file stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

//! Logging to stderr with `tracing`: one line per event, as text or JSON, each line tagged with
//! the component that wrote it so that the node's log reads as one stream under journald.

use hp_cfg::LogFormat;
use tracing_subscriber::EnvFilter;

/// Starts logging for `component`. `RUST_LOG` overrides the config's `loglevel`. Safe to call
/// more than once (later calls do nothing).
pub fn init(component: &'static str, level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
    if result.is_ok() {
        tracing::debug!(component, "logging started");
    }
}

/// Reads the log format from `HP_LOG_FORMAT` (set by the supervisor for its children) when no
/// config is at hand yet.
pub fn format_from_env() -> LogFormat {
    match std::env::var("HP_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

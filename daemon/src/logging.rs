//! Logging to stderr with `tracing`: one line per event, as text or JSON. Each line names the
//! module that wrote it (`hp_consensusd::...`, `hp_userd::...`), so the node's log reads as one
//! stream under journald.

use hp_cfg::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Starts logging for `component`. `RUST_LOG` overrides the config's `loglevel`, and
/// `HP_LOG_FORMAT` (set by the supervisor for its children) overrides the config's format.
/// Colours only on a terminal. Safe to call more than once (later calls do nothing).
pub fn init(component: &'static str, level: &str, format: LogFormat) {
    let format = format_from_env().unwrap_or(format);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.with_target(true).try_init(),
    };
    if result.is_ok() {
        tracing::debug!(component, "logging started");
    }
}

/// The log format from `HP_LOG_FORMAT`, if set to `json` or `text`.
pub fn format_from_env() -> Option<LogFormat> {
    match std::env::var("HP_LOG_FORMAT").as_deref() {
        Ok("json") => Some(LogFormat::Json),
        Ok("text") => Some(LogFormat::Text),
        _ => None,
    }
}

//! What every Hot Pocket daemon does the same way: serve and call gRPC over the Unix sockets in
//! `run/`, log with `tracing`, stop on a shutdown signal, and exit with a documented code.
//!
//! # Layout
//! - [`ipc`]: Unix-socket gRPC servers and lazily reconnecting clients.
//! - [`logging`]: `tracing` to stderr, text or JSON, one line per event.
//! - [`shutdown`]: SIGINT/SIGTERM into one cancellation token.
//! - [`entry`]: the one shape of a daemon's `main` (config, logs, runtime, signals, exit code).
//! - [`exit`]: the exit codes all binaries share.
//! - [`process`]: dying with the supervisor.
//! - [`metrics`]: each daemon's Prometheus registry and its `Metrics` rpc answer.

pub mod entry;
pub mod exit;
pub mod ipc;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod shutdown;

pub use entry::Daemon;
pub use tokio_util::sync::CancellationToken;

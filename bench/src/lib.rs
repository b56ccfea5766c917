//! hp-bench measures a real local Hot Pocket cluster under load: it starts N nodes
//! (`hotpocket run`, real processes and sockets), drives websocket users that each keep a
//! window of inputs in flight, times every input from sending to its output, and reports
//! throughput, latency percentiles, ledgers, memory and where the CPU went.
//!
//! # Layout
//! - [`options`]: the command line, validated.
//! - [`contract`]: the echo contract, compiled with `cc` at start.
//! - [`cluster`]: the nodes' configs; the cluster itself is hp-localnet's, stopped always.
//! - [`payload`]: inputs that carry their identity, and cutting a round's output back into them.
//! - [`load`]: the users (hp-localnet's load generator): connect, prime, keep the window full,
//!   time each input.
//! - [`procstat`]: memory and CPU of each node's processes, read from `/proc`.
//! - [`report`]: percentiles, the table and the JSON object.
//! - [`plot`]: `--plot`: the run's latency CDF and inputs/s over time, as SVG.
//! - [`bench`]: one run from start to stop; `--protocol both`, the two protocols in turn on one
//!   cluster.

pub mod bench;
pub mod cluster;
pub mod contract;
pub mod error;
pub mod load;
pub mod options;
pub mod payload;
pub mod plot;
pub mod procstat;
pub mod report;

pub use bench::{compare, run};
pub use error::BenchError;
pub use options::Options;
pub use report::{Comparison, Report};

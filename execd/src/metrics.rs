//! execd's metrics (README, "Metrics"): how long the contract ran and how each run ended. The
//! service counts each ledger's run once (a repeated `Execute` of the same seq returns the
//! recorded result and is not counted again) and answers the `Metrics` rpc.

use hp_daemon::metrics::prometheus_client::metrics::counter::Counter;
use hp_daemon::metrics::prometheus_client::metrics::family::Family;
use hp_daemon::metrics::prometheus_client::metrics::histogram::Histogram;
use hp_daemon::metrics::prometheus_client::registry::Registry;
use hp_ledger::ExitKind;
use std::sync::Mutex;

/// The registry and its handles.
#[derive(Debug)]
pub struct ExecMetrics {
    pub registry: Registry,
    run_seconds: Histogram,
    runs: Family<[(&'static str, &'static str); 1], Counter>,
    /// The highest seq counted.
    counted: Mutex<Option<u64>>,
}

/// The `result` label of a run.
pub fn result_label(exit: &ExitKind) -> &'static str {
    match exit {
        ExitKind::Code(0) => "ok",
        ExitKind::Code(_) | ExitKind::Signal(_) => "crash",
        ExitKind::TimedOut => "timeout",
        ExitKind::SpawnError => "spawn_error",
    }
}

impl Default for ExecMetrics {
    fn default() -> Self {
        let mut registry = hp_daemon::metrics::registry();
        let run_seconds = Histogram::new(hp_daemon::metrics::duration_buckets());
        let runs = Family::default();
        registry.register(
            "contract_run_seconds",
            "Time the contract ran for one ledger (running time, as the timeout counts it)",
            run_seconds.clone(),
        );
        registry.register(
            "contract_runs",
            "Contract runs by how they ended (ok, crash, timeout, spawn_error)",
            runs.clone(),
        );
        for result in ["ok", "crash", "timeout", "spawn_error"] {
            let _ = runs.get_or_create(&[("result", result)]);
        }
        Self { registry, run_seconds, runs, counted: Mutex::new(None) }
    }
}

impl ExecMetrics {
    /// The run of ledger `seq` ended with `exit` after `run_micros` of running time; counted
    /// only the first time a seq is reported.
    pub fn ran(&self, seq: u64, exit: &ExitKind, run_micros: u64) {
        let Ok(mut counted) = self.counted.lock() else { return };
        if counted.is_some_and(|c| c >= seq) {
            return;
        }
        *counted = Some(seq);
        self.run_seconds.observe(run_micros as f64 / 1e6);
        self.runs.get_or_create(&[("result", result_label(exit))]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_is_counted_once() {
        let m = ExecMetrics::default();
        m.ran(1, &ExitKind::Code(0), 2_000);
        m.ran(1, &ExitKind::Code(0), 2_000);
        m.ran(2, &ExitKind::TimedOut, 5_000_000);
        let text = hp_daemon::metrics::encode(&m.registry).unwrap_or_default();
        assert!(text.contains("hotpocket_contract_runs_total{result=\"ok\"} 1"), "{text}");
        assert!(text.contains("hotpocket_contract_runs_total{result=\"timeout\"} 1"), "{text}");
        assert!(text.contains("hotpocket_contract_run_seconds_count 2"), "{text}");
    }
}

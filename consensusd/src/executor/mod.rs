//! Runs decided ledgers through execd, strictly in order, and reports each outcome to the node
//! loop. It owns the connection to execd: when execd restarts it retries the same ledger (execd
//! is idempotent per sequence), and when execd is behind it replays the missing ledgers from
//! the store first, so the state always follows the chain.

pub mod execd;

pub use execd::AgreedConfig;
use execd::{Execd, ExecdError, Execution};
use hp_ledger::{Ledger, Outcome, Store};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// What execd made of one ledger.
#[derive(Debug, Clone)]
pub struct Executed {
    pub seq: u64,
    pub ledger_hash: [u8; 32],
    pub state_hash: [u8; 32],
    pub outcome: Outcome,
    /// The config in force after this ledger: its members are what the network hands over
    /// to once this ledger's result is agreed.
    pub config: Option<AgreedConfig>,
}

/// What the executor tells the node.
#[derive(Debug, Clone)]
pub enum ExecReport {
    /// Where execd's state stood when the executor first reached it.
    State {
        state_hash: [u8; 32],
    },
    Executed(Executed),
    /// execd's state already reflects this ledger (it was copied from a peer).
    AlreadyApplied {
        seq: u64,
        /// The config in force after `seq`, if execd's state is at `seq`.
        config: Option<AgreedConfig>,
    },
    /// execd cannot run ledger `seq`: its state is not one the chain describes (ahead, or its
    /// committed copy is damaged), or it keeps failing to run it. The state must be copied
    /// from peers.
    NeedsStateSync {
        seq: u64,
        reason: String,
    },
}

/// The executor task: send it closed ledgers, in order; it owns the node's connection to
/// execd and hands out [`Execd`] handles for the state copies.
pub struct Executor {
    ledgers: mpsc::UnboundedSender<Ledger>,
    execd: Execd,
}

impl Executor {
    /// A handle for a stand-in executor (tests): ledgers go to `ledgers`, state calls to the
    /// execd at `execd_socket`.
    pub fn from_parts(ledgers: mpsc::UnboundedSender<Ledger>, execd_socket: &std::path::Path) -> Self {
        Self { ledgers, execd: Execd::new(execd_socket) }
    }

    /// Queues `ledger` to run after those sent before it. `false` once the task has ended.
    pub fn run(&self, ledger: Ledger) -> bool {
        self.ledgers.send(ledger).is_ok()
    }

    /// A handle on execd for copying the state to or from peers.
    pub fn execd(&self) -> Execd {
        self.execd.clone()
    }
}

/// Starts the executor task. Its reports go to `reports`, as any event type that can carry
/// them (the node loop's).
pub fn spawn<E>(
    exec_socket: PathBuf,
    store_path: PathBuf,
    contract_timeout: Duration,
    reports: mpsc::Sender<E>,
) -> Executor
where
    E: From<ExecReport> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Ledger>();
    let execd = Execd::new(&exec_socket);
    let mut task = Task {
        execd: execd.clone(),
        store_path,
        deadline: contract_timeout + Duration::from_secs(60),
        reports,
        known: None,
    };
    tokio::spawn(async move {
        if let Ok(state) = task.execd.state().await {
            task.known = Some(state.seq);
            task.report(ExecReport::State { state_hash: state.state_hash }).await;
        }
        while let Some(ledger) = rx.recv().await {
            task.run_one(ledger).await;
        }
    });
    Executor { ledgers: tx, execd }
}

struct Task<E> {
    execd: Execd,
    store_path: PathBuf,
    deadline: Duration,
    reports: mpsc::Sender<E>,
    /// execd's sequence as of the last successful call; `None` when unknown (start, errors),
    /// so the common path costs one call per ledger.
    known: Option<ExecdSeq>,
}

/// Where execd's state stands: `None` before its first execution.
type ExecdSeq = Option<u64>;

impl<E: From<ExecReport>> Task<E> {
    async fn report(&self, report: ExecReport) {
        let _ = self.reports.send(report.into()).await;
    }

    /// Runs `ledger`, first replaying from the store whatever execd lacks before it. Retries
    /// (with backoff) while execd is down; the round in flight is simply re-run. When execd is
    /// up but fails to run the ledger again and again ([`Step::Failed`]: no pipes or fds, a
    /// disk error, a request it refuses), retrying the same thing would go on for ever: after
    /// [`MAX_FAILED_RUNS`] the node is told to copy the state from a peer instead, which
    /// brings it past this ledger (its outputs then come from peers).
    async fn run_one(&mut self, ledger: Ledger) {
        let mut backoff = Duration::from_millis(20);
        let mut failed = 0u32;
        loop {
            match self.step(&ledger).await {
                Ok(()) => return,
                Err(Step::Retry(why)) => {
                    warn!(seq = ledger.seq, reason = %why, "execution not possible yet; retrying");
                }
                Err(Step::Failed(why)) => {
                    failed += 1;
                    if failed >= MAX_FAILED_RUNS {
                        error!(
                            seq = ledger.seq,
                            attempts = failed,
                            reason = %why,
                            "execd keeps failing to run this ledger (a local fault); copying the state from a peer"
                        );
                        let reason = format!("execd failed to run ledger {} {failed} times: {why}", ledger.seq);
                        self.report(ExecReport::NeedsStateSync { seq: ledger.seq, reason }).await;
                        return;
                    }
                    warn!(seq = ledger.seq, attempt = failed, reason = %why, "execd failed to run the ledger; retrying");
                }
                Err(Step::NeedsStateSync(reason)) => {
                    self.report(ExecReport::NeedsStateSync { seq: ledger.seq, reason }).await;
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn step(&mut self, ledger: &Ledger) -> Result<(), Step> {
        let result = self.step_inner(ledger).await;
        if result.is_err() {
            self.known = None;
        }
        result
    }

    async fn step_inner(&mut self, ledger: &Ledger) -> Result<(), Step> {
        let at = match self.known {
            Some(at) => at,
            None => match self.execd.state().await {
                Ok(state) => state.seq,
                Err(ExecdError::StateLost(why)) => return Err(Step::NeedsStateSync(why)),
                Err(e) => return Err(Step::Retry(e.to_string())),
            },
        };
        let next = at.map_or(1, |a| a + 1);
        if ledger.seq < next.saturating_sub(1) {
            // execd is past this ledger (its state was copied from a peer): nothing to run.
            self.report_already_applied(ledger.seq).await;
            return Ok(());
        }
        if ledger.seq > next {
            info!(execd_seq = ?at, seq = ledger.seq, "execd is behind; replaying ledgers from the store");
            self.replay(next, ledger.seq).await?;
        }
        match self.execd.execute(ledger, self.deadline).await {
            Ok(execution) => {
                self.known = Some(Some(ledger.seq.max(at.unwrap_or(0))));
                self.report_execution(ledger, execution).await;
                Ok(())
            }
            Err(ExecdError::Precondition(_)) if Some(ledger.seq) == at => {
                // The state at this sequence came from a peer: there is no local run to report.
                self.report_already_applied(ledger.seq).await;
                Ok(())
            }
            Err(e) => Err(Step::of(e)),
        }
    }

    /// Reports that execd's state already reflects `seq`, with the config in force after it
    /// when execd's state is exactly there (a state further on says nothing of `seq`'s).
    async fn report_already_applied(&mut self, seq: u64) {
        let state = self.execd.state().await.ok();
        let config = state.filter(|state| state.seq == Some(seq)).and_then(|state| state.config);
        self.report(ExecReport::AlreadyApplied { seq, config }).await;
    }

    async fn report_execution(&self, ledger: &Ledger, execution: Execution) {
        let Execution { state_hash, outcome, config } = execution;
        let done = Executed { seq: ledger.seq, ledger_hash: ledger.hash(), state_hash, outcome, config };
        self.report(ExecReport::Executed(done)).await;
    }

    /// Executes stored ledgers `from..until` (exclusive) and reports each.
    async fn replay(&mut self, from: u64, until: u64) -> Result<(), Step> {
        let store = Store::open_read_only(&self.store_path).map_err(|e| Step::Retry(e.to_string()))?;
        for seq in from..until {
            let record = store
                .get(seq)
                .map_err(|e| Step::Retry(e.to_string()))?
                .ok_or_else(|| Step::Retry(format!("ledger {seq} is not stored")))?;
            let execution = self.execd.execute(&record.ledger, self.deadline).await.map_err(Step::of)?;
            self.report_execution(&record.ledger, execution).await;
        }
        Ok(())
    }
}

/// Runs of one ledger that execd answered with a failure of its own before the node gives up
/// on running it and copies the state from a peer (about 3 s of backoff).
pub const MAX_FAILED_RUNS: u32 = 8;

enum Step {
    /// execd is not there (restarting, or shutting down): try again, for as long as it takes.
    Retry(String),
    /// execd is there and failed to run the ledger: try again a few times.
    Failed(String),
    NeedsStateSync(String),
}

impl Step {
    /// What a failed call means: execd lost its state (copy it from a peer), execd is not
    /// there (retry), or execd failed to run the ledger or answered nonsense (retry a few times).
    fn of(e: ExecdError) -> Self {
        match e {
            ExecdError::StateLost(why) => Step::NeedsStateSync(why),
            ExecdError::Unreachable(_) => Step::Retry(e.to_string()),
            ExecdError::Precondition(_) | ExecdError::Failed(_) | ExecdError::BadReply(_) => {
                Step::Failed(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use hp_ledger::LedgerBody;
    use hp_proto::v1 as pb;
    use hp_proto::v1::exec_server::{Exec, ExecServer};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tonic::{Request, Response, Status};

    /// An execd that is up but cannot run anything: every Execute fails as a run that cannot
    /// get its pipes does (`RunError::Pipes` → `internal`).
    struct BrokenExecd {
        calls: Arc<AtomicU32>,
    }

    #[tonic::async_trait]
    impl Exec for BrokenExecd {
        async fn execute(&self, _: Request<pb::ExecuteRequest>) -> Result<Response<pb::ExecuteReply>, Status> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Err(Status::internal(
                "cannot set up pipes for 4096 users (is RLIMIT_NOFILE high enough?): Too many open files",
            ))
        }
        async fn metrics(&self, _: Request<pb::MetricsRequest>) -> Result<Response<pb::MetricsReply>, Status> {
            Ok(Response::new(pb::MetricsReply::default()))
        }
        async fn state_info(&self, _: Request<pb::StateInfoRequest>) -> Result<Response<pb::StateInfoReply>, Status> {
            Ok(Response::new(pb::StateInfoReply {
                has_seq: false,
                seq: 0,
                state_hash: vec![0; 32].into(),
                ..Default::default()
            }))
        }
        async fn read(&self, _: Request<pb::ReadRequest>) -> Result<Response<pb::ReadReply>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
        type NplStream = tokio_stream::Empty<Result<pb::NplEvent, Status>>;
        async fn npl(
            &self,
            _: Request<tonic::Streaming<pb::NplDelivery>>,
        ) -> Result<Response<Self::NplStream>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
        async fn state_manifest(
            &self,
            _: Request<pb::StateManifestRequest>,
        ) -> Result<Response<pb::StateManifestReply>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
        async fn read_state_chunk(
            &self,
            _: Request<pb::ReadStateChunkRequest>,
        ) -> Result<Response<pb::ReadStateChunkReply>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
        async fn stage_state_chunk(
            &self,
            _: Request<pb::StageStateChunkRequest>,
        ) -> Result<Response<pb::StageStateChunkReply>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
        async fn apply_staged_state(
            &self,
            _: Request<pb::ApplyStagedStateRequest>,
        ) -> Result<Response<pb::ApplyStagedStateReply>, Status> {
            Err(Status::unimplemented("not in this test"))
        }
    }

    /// Issue 16: execution that cannot be set up (fds, pipes, disk) used to be retried for
    /// ever, once a second, so the node sat at that ledger without a word to its peers. Now the
    /// node is told after a few attempts, and copies the state from a peer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_ledger_execd_keeps_failing_to_run_ends_in_a_state_copy_not_endless_retries() {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("execd.sock");
        let incoming = hp_daemon::ipc::bind(&socket).expect("bind");
        let calls = Arc::new(AtomicU32::new(0));
        let server = ExecServer::new(BrokenExecd { calls: calls.clone() });
        tokio::spawn(tonic::transport::Server::builder().add_service(server).serve_with_incoming(incoming));

        let unl = [[1u8; 32]];
        let genesis = Ledger::genesis(&unl, &hp_ledger::NetworkId([0x4e; 32]));
        let store_path = dir.path().join("ledger.db");
        drop(Store::open(&store_path, &genesis).expect("store"));
        let ledger = Ledger::new(LedgerBody {
            seq: 1,
            prev_hash: genesis.hash(),
            time_ms: genesis.time_ms + 1,
            inputs: Vec::new(),
            users: Vec::new(),
            prev_result: None,
            config_hash: [0; 32],
            next_membership: None,
        });
        let (events, mut reports) = mpsc::channel::<ExecReport>(16);
        let executor = spawn(socket, store_path, Duration::from_secs(1), events);
        assert!(executor.run(ledger), "executor runs");

        let first = tokio::time::timeout(Duration::from_secs(5), reports.recv()).await.expect("state report");
        assert!(matches!(first, Some(ExecReport::State { .. })), "first the state at start: {first:?}");
        let report = tokio::time::timeout(Duration::from_secs(20), reports.recv())
            .await
            .expect("the executor still retries after 20 s")
            .expect("executor stopped");
        match report {
            ExecReport::NeedsStateSync { seq, reason } => {
                assert_eq!(seq, 1);
                assert!(reason.contains("pipes"), "the reason names the fault: {reason}");
            }
            other => panic!("expected a state copy, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::Relaxed), MAX_FAILED_RUNS);
    }
}

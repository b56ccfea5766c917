//! Runs decided ledgers through execd, strictly in order, and reports each outcome to the node
//! loop. It owns the connection to execd: when execd restarts it retries the same ledger (execd
//! is idempotent per sequence), and when execd is behind it replays the missing ledgers from
//! the store first, so the state always follows the chain.

use crate::node::Event;
use bytes::Bytes;
use hp_ledger::{ExitKind, Ledger, Outcome, Store};
use hp_proto::v1::{self as pb, exec_client::ExecClient};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::Code;
use tracing::{error, info, warn};

/// What execd made of one ledger.
#[derive(Debug, Clone)]
pub struct Executed {
    pub seq: u64,
    pub ledger_hash: [u8; 32],
    pub state_hash: [u8; 32],
    pub outcome: Outcome,
}

/// The executor could not run a ledger and the node must act.
#[derive(Debug, Clone)]
pub enum ExecFailure {
    /// execd's state is not one the chain describes (ahead, or its committed copy is damaged):
    /// it must be copied from peers.
    NeedsStateSync { seq: u64, reason: String },
}

/// Builds the request for one ledger: every listed user with their inputs in ledger order.
pub fn request(ledger: &Ledger) -> pb::ExecuteRequest {
    let users = ledger
        .contract_users()
        .into_iter()
        .map(|user| pb::UserInputs {
            pubkey: Bytes::copy_from_slice(&user),
            inputs: ledger.inputs.iter().filter(|i| i.user == user).map(|i| i.data.clone()).collect(),
        })
        .collect();
    pb::ExecuteRequest {
        seq: ledger.seq,
        ledger_hash: Bytes::copy_from_slice(&ledger.hash()),
        prev_hash: Bytes::copy_from_slice(&ledger.prev_hash),
        time_ms: ledger.time_ms,
        users,
    }
}

fn outcome(reply: &pb::ExecuteReply) -> Result<([u8; 32], Outcome), String> {
    let state_hash: [u8; 32] =
        reply.state_hash.as_ref().try_into().map_err(|_| "execd sent a state hash that is not 32 bytes".to_string())?;
    let exit = match reply.exit.as_ref().and_then(|e| e.kind.as_ref()) {
        Some(pb::exit_status::Kind::Code(c)) => ExitKind::Code(*c),
        Some(pb::exit_status::Kind::Signal(s)) => ExitKind::Signal(*s),
        Some(pb::exit_status::Kind::TimedOut(_)) => ExitKind::TimedOut,
        Some(pb::exit_status::Kind::SpawnError(_)) => ExitKind::SpawnError,
        // Malformed (execd always sets it); read as a clean exit, see `ExitKind`.
        None => ExitKind::Code(0),
    };
    let mut outputs = Vec::with_capacity(reply.outputs.len());
    for o in &reply.outputs {
        let user: [u8; 32] =
            o.pubkey.as_ref().try_into().map_err(|_| "execd sent an output for a malformed user key".to_string())?;
        outputs.push((user, o.data.clone()));
    }
    Ok((state_hash, Outcome { exit, outputs }))
}

/// The executor task's handle: send ledgers to run, in order.
pub fn spawn(
    exec_socket: PathBuf,
    store_path: PathBuf,
    contract_timeout: Duration,
    events: mpsc::Sender<Event>,
) -> mpsc::UnboundedSender<Ledger> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Ledger>();
    tokio::spawn(async move {
        let channel = hp_daemon::ipc::channel(&exec_socket);
        let client = ExecClient::new(channel)
            .max_decoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
            .max_encoding_message_size(hp_proto::MAX_LOCAL_MESSAGE);
        let mut executor =
            Executor { client, store_path, deadline: contract_timeout + Duration::from_secs(60), events, known: None };
        while let Some(ledger) = rx.recv().await {
            executor.run_one(ledger).await;
        }
    });
    tx
}

struct Executor {
    client: ExecClient<tonic::transport::Channel>,
    store_path: PathBuf,
    deadline: Duration,
    events: mpsc::Sender<Event>,
    /// execd's sequence as of the last successful call; `None` when unknown (start, errors),
    /// so the common path costs one call per ledger.
    known: Option<ExecdSeq>,
}

/// Where execd's state stands: `None` before its first execution.
type ExecdSeq = Option<u64>;

impl Executor {
    async fn call(&mut self, ledger: &Ledger) -> Result<pb::ExecuteReply, tonic::Status> {
        let mut req = tonic::Request::new(request(ledger));
        req.set_timeout(self.deadline);
        self.client.execute(req).await.map(|r| r.into_inner())
    }

    async fn state_seq(&mut self) -> Result<ExecdSeq, tonic::Status> {
        let mut req = tonic::Request::new(pb::StateInfoRequest {});
        req.set_timeout(hp_daemon::ipc::CALL_TIMEOUT);
        let info = self.client.state_info(req).await?.into_inner();
        Ok(info.has_seq.then_some(info.seq))
    }

    async fn report(&self, event: Event) {
        let _ = self.events.send(event).await;
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
                        self.report(Event::ExecFailed(ExecFailure::NeedsStateSync { seq: ledger.seq, reason })).await;
                        return;
                    }
                    warn!(seq = ledger.seq, attempt = failed, reason = %why, "execd failed to run the ledger; retrying");
                }
                Err(Step::NeedsStateSync(reason)) => {
                    self.report(Event::ExecFailed(ExecFailure::NeedsStateSync { seq: ledger.seq, reason })).await;
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
            None => match self.state_seq().await {
                Ok(at) => at,
                Err(s) if s.code() == Code::DataLoss => return Err(Step::NeedsStateSync(s.message().to_string())),
                Err(s) => return Err(Step::Retry(format!("execd: {}", s.message()))),
            },
        };
        let next = at.map_or(1, |a| a + 1);
        if ledger.seq < next.saturating_sub(1) {
            // execd is past this ledger (its state was copied from a peer): nothing to run.
            self.report(Event::AlreadyApplied { seq: ledger.seq }).await;
            return Ok(());
        }
        if ledger.seq > next {
            info!(execd_seq = ?at, seq = ledger.seq, "execd is behind; replaying ledgers from the store");
            self.replay(next, ledger.seq).await?;
        }
        match self.call(ledger).await {
            Ok(reply) => {
                self.known = Some(Some(ledger.seq.max(at.unwrap_or(0))));
                self.report_reply(ledger, &reply).await;
                Ok(())
            }
            Err(s) if s.code() == Code::FailedPrecondition && Some(ledger.seq) == at => {
                // The state at this sequence came from a peer: there is no local run to report.
                self.report(Event::AlreadyApplied { seq: ledger.seq }).await;
                Ok(())
            }
            Err(s) => Err(Step::of_failed_call(&s)),
        }
    }

    async fn report_reply(&self, ledger: &Ledger, reply: &pb::ExecuteReply) {
        match outcome(reply) {
            Ok((state_hash, outcome)) => {
                let done = Executed { seq: ledger.seq, ledger_hash: ledger.hash(), state_hash, outcome };
                self.report(Event::Executed(done)).await;
            }
            Err(reason) => {
                self.report(Event::ExecFailed(ExecFailure::NeedsStateSync { seq: ledger.seq, reason })).await;
            }
        }
    }

    /// Executes stored ledgers `from..until` (exclusive) and reports each.
    async fn replay(&mut self, from: u64, until: u64) -> Result<(), Step> {
        let store = Store::open_read_only(&self.store_path).map_err(|e| Step::Retry(e.to_string()))?;
        for seq in from..until {
            let record = store
                .get(seq)
                .map_err(|e| Step::Retry(e.to_string()))?
                .ok_or_else(|| Step::Retry(format!("ledger {seq} is not stored")))?;
            match self.call(&record.ledger).await {
                Ok(reply) => self.report_reply(&record.ledger, &reply).await,
                Err(s) => return Err(Step::of_failed_call(&s)),
            }
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
    /// What a failed Execute call means: execd lost its state (copy it from a peer), execd is
    /// not there (retry), or execd failed to run the ledger (retry a few times).
    fn of_failed_call(s: &tonic::Status) -> Self {
        let why = format!("execd: {:?} {}", s.code(), s.message());
        match s.code() {
            Code::DataLoss => Step::NeedsStateSync(s.message().to_string()),
            // No connection, execd stopping, or a run cut off by the deadline: execd itself is
            // the problem, and the supervisor restarts it.
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => Step::Retry(why),
            _ => Step::Failed(why),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use hp_ledger::{LedgerBody, Store};
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
        async fn state_info(&self, _: Request<pb::StateInfoRequest>) -> Result<Response<pb::StateInfoReply>, Status> {
            Ok(Response::new(pb::StateInfoReply { has_seq: false, ..Default::default() }))
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
        });
        let (events, mut reports) = mpsc::channel(16);
        let executor = spawn(socket, store_path, Duration::from_secs(1), events);
        executor.send(ledger).expect("executor runs");

        let report = tokio::time::timeout(Duration::from_secs(20), reports.recv())
            .await
            .expect("the executor still retries after 20 s")
            .expect("executor stopped");
        match report {
            Event::ExecFailed(ExecFailure::NeedsStateSync { seq, reason }) => {
                assert_eq!(seq, 1);
                assert!(reason.contains("pipes"), "the reason names the fault: {reason}");
            }
            other => panic!("expected a state copy, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::Relaxed), MAX_FAILED_RUNS);
    }
}

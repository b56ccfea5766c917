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
use tracing::{info, warn};

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
    /// (with backoff) while execd is down; the round in flight is simply re-run.
    async fn run_one(&mut self, ledger: Ledger) {
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.step(&ledger).await {
                Ok(()) => return,
                Err(Step::Retry(why)) => {
                    warn!(seq = ledger.seq, reason = %why, "execution not possible yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(Step::NeedsStateSync(reason)) => {
                    self.report(Event::ExecFailed(ExecFailure::NeedsStateSync { seq: ledger.seq, reason })).await;
                    return;
                }
            }
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
            Err(s) if s.code() == Code::DataLoss => Err(Step::NeedsStateSync(s.message().to_string())),
            Err(s) => Err(Step::Retry(format!("execd: {:?} {}", s.code(), s.message()))),
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
                Err(s) if s.code() == Code::DataLoss => return Err(Step::NeedsStateSync(s.message().to_string())),
                Err(s) => return Err(Step::Retry(format!("execd: {:?} {}", s.code(), s.message()))),
            }
        }
        Ok(())
    }
}

enum Step {
    Retry(String),
    NeedsStateSync(String),
}

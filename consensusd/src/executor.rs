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
        let mut client = ExecClient::new(channel)
            .max_decoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
            .max_encoding_message_size(hp_proto::MAX_LOCAL_MESSAGE);
        let deadline = contract_timeout + Duration::from_secs(60);
        while let Some(ledger) = rx.recv().await {
            run_one(&mut client, &store_path, deadline, ledger, &events).await;
        }
    });
    tx
}

async fn call(
    client: &mut ExecClient<tonic::transport::Channel>,
    deadline: Duration,
    ledger: &Ledger,
) -> Result<pb::ExecuteReply, tonic::Status> {
    let mut req = tonic::Request::new(request(ledger));
    req.set_timeout(deadline);
    client.execute(req).await.map(|r| r.into_inner())
}

async fn run_one(
    client: &mut ExecClient<tonic::transport::Channel>,
    store_path: &PathBuf,
    deadline: Duration,
    ledger: Ledger,
    events: &mpsc::Sender<Event>,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        match call(client, deadline, &ledger).await {
            Ok(reply) => {
                match outcome(&reply) {
                    Ok((state_hash, outcome)) => {
                        let done = Executed { seq: ledger.seq, ledger_hash: ledger.hash(), state_hash, outcome };
                        let _ = events.send(Event::Executed(done)).await;
                    }
                    Err(reason) => {
                        let _ = events
                            .send(Event::ExecFailed(ExecFailure::NeedsStateSync { seq: ledger.seq, reason }))
                            .await;
                    }
                }
                return;
            }
            Err(status) if status.code() == Code::FailedPrecondition => {
                // execd is at another sequence: find out where, replay what it misses.
                match state_seq(client).await {
                    Ok(Some(at)) if at + 1 < ledger.seq => {
                        info!(execd_seq = at, seq = ledger.seq, "execd is behind; replaying ledgers from the store");
                        if let Err(e) = replay(client, store_path, deadline, at + 1, ledger.seq, events).await {
                            warn!(error = %e, "replay failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                        }
                    }
                    Ok(None) if ledger.seq > 1 => {
                        if let Err(e) = replay(client, store_path, deadline, 1, ledger.seq, events).await {
                            warn!(error = %e, "replay failed; retrying");
                            tokio::time::sleep(backoff).await;
                        }
                    }
                    Ok(at) => {
                        let reason = format!("execd is at sequence {at:?}, the chain asks for {}", ledger.seq);
                        let _ = events
                            .send(Event::ExecFailed(ExecFailure::NeedsStateSync { seq: ledger.seq, reason }))
                            .await;
                        return;
                    }
                    Err(e) => {
                        warn!(error = %e, "execd state query failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                }
            }
            Err(status) if status.code() == Code::DataLoss => {
                let reason = status.message().to_string();
                let _ = events.send(Event::ExecFailed(ExecFailure::NeedsStateSync { seq: ledger.seq, reason })).await;
                return;
            }
            Err(status) => {
                // execd down or restarting: the round in flight is re-run once it is back.
                warn!(seq = ledger.seq, code = ?status.code(), message = status.message(), "execution failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn state_seq(client: &mut ExecClient<tonic::transport::Channel>) -> Result<Option<u64>, tonic::Status> {
    let mut req = tonic::Request::new(pb::StateInfoRequest {});
    req.set_timeout(hp_daemon::ipc::CALL_TIMEOUT);
    let info = client.state_info(req).await?.into_inner();
    Ok(info.has_seq.then_some(info.seq))
}

/// Executes stored ledgers `from..until` (exclusive) and reports each.
async fn replay(
    client: &mut ExecClient<tonic::transport::Channel>,
    store_path: &PathBuf,
    deadline: Duration,
    from: u64,
    until: u64,
    events: &mpsc::Sender<Event>,
) -> Result<(), String> {
    let store = Store::open_read_only(store_path).map_err(|e| e.to_string())?;
    for seq in from..until {
        let record = store.get(seq).map_err(|e| e.to_string())?.ok_or_else(|| format!("ledger {seq} is not stored"))?;
        let reply = call(client, deadline, &record.ledger).await.map_err(|s| s.message().to_string())?;
        let (state_hash, outcome) = outcome(&reply)?;
        let done = Executed { seq, ledger_hash: record.ledger.hash(), state_hash, outcome };
        let _ = events.send(Event::Executed(done)).await;
    }
    Ok(())
}

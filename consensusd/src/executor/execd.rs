//! The node's connection to its hp-execd, as typed calls: run a ledger, say where the state
//! stands, list and copy the committed state. gRPC and protobuf stop here; callers see
//! ledgers, outcomes, hashes and an [`ExecdError`] that says what a failure means for them.
//!
//! The state manifest's entries stay [`pb::StateEntry`]: the peer protocol carries the very
//! same entries from one node's execd to another's.

use bytes::Bytes;
use hp_ledger::{ExitKind, Ledger, Membership, Outcome};
use hp_proto::v1::{self as pb, exec_client::ExecClient};
use std::path::Path;
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;

/// What a failed call to execd means for the caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecdError {
    /// execd is not there (restarting, stopping), or the call ran past its deadline: execd
    /// itself is the problem, and the supervisor restarts it.
    #[error("execd is not reachable: {0}")]
    Unreachable(String),
    /// execd's committed state is lost or damaged: it must be copied from a peer.
    #[error("execd lost its state: {0}")]
    StateLost(String),
    /// execd's state is not where the call expects it (for `Execute`: it is already at that
    /// ledger, copied from a peer).
    #[error("execd refused: {0}")]
    Precondition(String),
    /// execd is there and failed to do what was asked.
    #[error("execd failed: {0}")]
    Failed(String),
    /// execd answered with something malformed.
    #[error("execd sent a malformed reply: {0}")]
    BadReply(String),
}

impl ExecdError {
    /// execd's own words, without the classification (what a peer is told).
    pub fn message(&self) -> &str {
        match self {
            ExecdError::Unreachable(m)
            | ExecdError::StateLost(m)
            | ExecdError::Precondition(m)
            | ExecdError::Failed(m)
            | ExecdError::BadReply(m) => m,
        }
    }
}

impl From<tonic::Status> for ExecdError {
    fn from(s: tonic::Status) -> Self {
        let message = s.message().to_string();
        match s.code() {
            Code::DataLoss => ExecdError::StateLost(message),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                ExecdError::Unreachable(format!("{:?} {message}", s.code()))
            }
            Code::FailedPrecondition => ExecdError::Precondition(message),
            code => ExecdError::Failed(format!("{code:?} {message}")),
        }
    }
}

/// What execd made of one ledger.
#[derive(Debug, Clone)]
pub struct Execution {
    pub state_hash: [u8; 32],
    pub outcome: Outcome,
    /// The config in force after this ledger (`patch.cfg`); `None` if execd did not say.
    pub config: Option<AgreedConfig>,
}

/// What of the agreed config (`patch.cfg`, docs/consensus.md "Membership") consensusd follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreedConfig {
    /// The members it names: what the network hands over to.
    pub members: Membership,
    /// `consensus.roundtime`; `None` if execd did not say.
    pub roundtime: Option<std::time::Duration>,
    /// The contract's `version` (what HotPocket users are told); `None` if execd did not say.
    pub version: Option<String>,
}

/// Where execd's state stands.
#[derive(Debug, Clone)]
pub struct ExecdState {
    /// The last ledger the state reflects; `None` before the first execution.
    pub seq: Option<u64>,
    pub state_hash: [u8; 32],
    /// The config in force at this state.
    pub config: Option<AgreedConfig>,
}

/// execd's committed state: every entry with its hash.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub seq: u64,
    pub state_hash: Bytes,
    pub entries: Vec<pb::StateEntry>,
}

/// A piece of a committed file.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub data: Bytes,
    pub eof: bool,
}

/// A cheap-to-clone handle on the node's execd; it reconnects by itself after execd restarts.
#[derive(Clone)]
pub struct Execd {
    client: ExecClient<Channel>,
}

impl Execd {
    /// A handle on the execd serving `socket`; nothing is dialled until the first call.
    pub fn new(socket: &Path) -> Self {
        let client = ExecClient::new(hp_daemon::ipc::channel(socket))
            .max_decoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
            .max_encoding_message_size(hp_proto::MAX_LOCAL_MESSAGE);
        Self { client }
    }

    /// Runs `ledger` (or returns execd's recorded run of it: execd is idempotent per seq).
    pub async fn execute(&mut self, ledger: &Ledger, deadline: Duration) -> Result<Execution, ExecdError> {
        let mut req = tonic::Request::new(execute_request(ledger));
        req.set_timeout(deadline);
        let reply = self.client.execute(req).await?.into_inner();
        execution(reply).map_err(ExecdError::BadReply)
    }

    /// Opens the NPL stream ([`crate::npl`]): `deliveries` go to execd, its events come back.
    pub async fn npl(
        &mut self,
        deliveries: tokio::sync::mpsc::Receiver<pb::NplDelivery>,
    ) -> Result<tonic::Streaming<pb::NplEvent>, ExecdError> {
        let stream = tokio_stream::wrappers::ReceiverStream::new(deliveries);
        Ok(self.client.npl(stream).await?.into_inner())
    }

    pub async fn state(&mut self) -> Result<ExecdState, ExecdError> {
        let mut req = tonic::Request::new(pb::StateInfoRequest {});
        req.set_timeout(hp_daemon::ipc::CALL_TIMEOUT);
        let info = self.client.state_info(req).await?.into_inner();
        let state_hash = hash32(&info.state_hash).map_err(ExecdError::BadReply)?;
        let config = config(info.config.as_ref());
        Ok(ExecdState { seq: info.has_seq.then_some(info.seq), state_hash, config })
    }

    /// The committed state's entries; `include_damaged` also lists files whose content no
    /// longer matches (what this node has, when it copies from a peer).
    pub async fn manifest(&mut self, include_damaged: bool) -> Result<Manifest, ExecdError> {
        let m = self.client.state_manifest(pb::StateManifestRequest { include_damaged }).await?.into_inner();
        Ok(Manifest { seq: m.seq, state_hash: m.state_hash, entries: m.entries })
    }

    /// Reads `length` bytes at `offset` of the committed file `path` with `content_hash`.
    pub async fn read_chunk(
        &mut self,
        path: String,
        content_hash: Bytes,
        offset: u64,
        length: u32,
    ) -> Result<Chunk, ExecdError> {
        let c = self
            .client
            .read_state_chunk(pb::ReadStateChunkRequest { path, content_hash, offset, length })
            .await?
            .into_inner();
        Ok(Chunk { data: c.data, eof: c.eof })
    }

    /// Stages a piece of a file for [`Self::apply_staged`]; `reset` empties the staging area
    /// first.
    pub async fn stage_chunk(&mut self, path: String, offset: u64, data: Bytes, reset: bool) -> Result<(), ExecdError> {
        self.client.stage_state_chunk(pb::StageStateChunkRequest { path, offset, data, reset }).await?;
        Ok(())
    }

    /// Swaps in the staged state as that after ledger `seq`; execd checks every entry and the
    /// root hash first.
    pub async fn apply_staged(
        &mut self,
        seq: u64,
        state_hash: Bytes,
        entries: Vec<pb::StateEntry>,
    ) -> Result<(), ExecdError> {
        self.client.apply_staged_state(pb::ApplyStagedStateRequest { seq, state_hash, entries }).await?;
        Ok(())
    }
}

/// The request for one ledger: every listed user with their inputs in ledger order.
pub fn execute_request(ledger: &Ledger) -> pb::ExecuteRequest {
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

fn hash32(bytes: &[u8]) -> Result<[u8; 32], String> {
    bytes.try_into().map_err(|_| "a state hash that is not 32 bytes".to_string())
}

/// The config a reply names; `None` (with a warning) when it names no usable members.
fn config(reply: Option<&pb::AgreedConfig>) -> Option<AgreedConfig> {
    let reply = reply?;
    if reply.unl.is_empty() {
        return None;
    }
    let keys: Option<Vec<[u8; 32]>> = reply.unl.iter().map(|k| k.as_ref().try_into().ok()).collect();
    let Some(keys) = keys else {
        tracing::warn!("execd named a config UNL key that is not 32 bytes");
        return None;
    };
    let members = Membership::new(keys, reply.quorum as usize)
        .and_then(|m| m.with_input_window(reply.max_input_ledger_offset))
        .map(|m| m.with_user_input_bytes(reply.user_input_bytes))
        .inspect_err(|e| tracing::warn!(error = %e, "execd named a config UNL that is not usable"))
        .ok()?;
    let roundtime = (reply.roundtime_ms > 0).then(|| std::time::Duration::from_millis(reply.roundtime_ms));
    let version = (!reply.version.is_empty()).then(|| reply.version.clone());
    Some(AgreedConfig { members, roundtime, version })
}

fn execution(reply: pb::ExecuteReply) -> Result<Execution, String> {
    let state_hash = hash32(&reply.state_hash)?;
    let config = config(reply.config.as_ref());
    let exit = match reply.exit.as_ref().and_then(|e| e.kind.as_ref()) {
        Some(pb::exit_status::Kind::Code(c)) => ExitKind::Code(*c),
        Some(pb::exit_status::Kind::Signal(s)) => ExitKind::Signal(*s),
        Some(pb::exit_status::Kind::TimedOut(_)) => ExitKind::TimedOut,
        Some(pb::exit_status::Kind::SpawnError(_)) => ExitKind::SpawnError,
        // execd always says how the contract ended; a reply that does not is not a result
        // this node may vote for (it would sign a clean exit nobody saw).
        None => return Err("no exit status".to_string()),
    };
    let mut outputs = Vec::with_capacity(reply.outputs.len());
    for o in reply.outputs {
        let user: [u8; 32] =
            o.pubkey.as_ref().try_into().map_err(|_| "an output for a malformed user key".to_string())?;
        outputs.push((user, o.data));
    }
    Ok(Execution { state_hash, outcome: Outcome { exit, outputs }, config })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(exit: Option<pb::exit_status::Kind>) -> pb::ExecuteReply {
        pb::ExecuteReply {
            state_hash: vec![3; 32].into(),
            exit: exit.map(|kind| pb::ExitStatus { kind: Some(kind) }),
            ..Default::default()
        }
    }

    #[test]
    fn a_reply_without_an_exit_status_is_malformed_not_a_clean_exit() {
        assert!(execution(reply(None)).is_err());
        let ok = execution(reply(Some(pb::exit_status::Kind::Code(0)))).map(|e| e.outcome.exit);
        assert_eq!(ok, Ok(ExitKind::Code(0)));
    }
}

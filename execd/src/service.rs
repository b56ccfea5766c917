//! The `Exec` gRPC service (proto/hotpocket/v1/execd.proto): each handler validates the request,
//! turns it into a typed call, sends it to the engine's thread and maps the outcome to a reply
//! or a status.
//!
//! Status codes consensusd acts on:
//! - `FAILED_PRECONDITION`: `Execute` out of order (the message names both seqs), no recorded
//!   result for the seq asked again, a chunk whose content changed, a staged state whose hash
//!   is not the requested one.
//! - `DATA_LOSS`: the committed copy does not match its record: fetch the state from peers
//!   (`StageStateChunk` + `ApplyStagedState` still work).
//! - `INVALID_ARGUMENT`: a malformed request or a refused state path.
//! - `UNAVAILABLE`: execd is shutting down; retry after it restarts.

use crate::convert;
use crate::engine::handle::{EngineGone, EngineHandle};
use crate::engine::{EngineError, MAX_CHUNK};
use crate::metrics::ExecMetrics;
use crate::npl::NplHub;
use crate::runner::RunError;
use crate::sync::SyncError;
use hp_proto::v1;
use hp_proto::v1::exec_server::{Exec, ExecServer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// What this node's contract says on its NPL and control channel, to consensusd.
type NplEvents = Pin<Box<dyn Stream<Item = Result<v1::NplEvent, Status>> + Send>>;

/// The `Exec` service over an engine.
pub struct ExecService {
    engine: EngineHandle,
    metrics: ExecMetrics,
    reads: Reads,
    npl: Arc<NplHub>,
}

/// Where read-only runs take their scratch copies, and what stops them.
#[derive(Clone)]
pub struct Reads {
    /// A folder on the state's file system (`hist/exec/reads`).
    pub scratch: std::path::PathBuf,
    /// Kills a running read (shutdown).
    pub cancel: hp_daemon::CancellationToken,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Reads {
    pub fn new(scratch: std::path::PathBuf, cancel: hp_daemon::CancellationToken) -> Self {
        Self { scratch, cancel, slots: std::sync::Arc::new(tokio::sync::Semaphore::new(crate::read::CONCURRENT_READS)) }
    }
}

impl ExecService {
    pub fn new(engine: EngineHandle, reads: Reads, npl: Arc<NplHub>) -> Self {
        Self { engine, metrics: ExecMetrics::default(), reads, npl }
    }

    /// The tonic server for this service, with the local message size limits.
    pub fn into_server(self) -> ExecServer<Self> {
        ExecServer::new(self)
            .max_decoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
            .max_encoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
    }
}

/// Serves the `Exec` service on `incoming` until `shutdown` completes.
pub async fn serve(
    incoming: UnixListenerStream,
    engine: EngineHandle,
    reads: Reads,
    npl: Arc<NplHub>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(ExecService::new(engine, reads, npl).into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

fn status(e: EngineError) -> Status {
    let text = e.to_string();
    match e {
        EngineError::DataLoss { .. } => Status::data_loss(text),
        EngineError::OutOfOrder { .. }
        | EngineError::NoRecordedResult { .. }
        | EngineError::ContentChanged { .. }
        | EngineError::HashMismatch { .. } => Status::failed_precondition(text),
        EngineError::Invalid(_) => Status::invalid_argument(text),
        EngineError::NotFound { .. } => Status::not_found(text),
        EngineError::Sync(SyncError::Snapshot(_)) => Status::internal(text),
        EngineError::Sync(SyncError::NotStaged { .. } | SyncError::WrongSize { .. }) => {
            Status::failed_precondition(text)
        }
        EngineError::Sync(_) => Status::invalid_argument(text),
        EngineError::Run(RunError::Cancelled) => Status::unavailable(text),
        EngineError::Run(_)
        | EngineError::RestoreFailed { .. }
        | EngineError::Runtime(_)
        | EngineError::Snapshot(_)
        | EngineError::Hash(_) => Status::internal(text),
    }
}

/// The config in force as the replies carry it; its UNL empty if it has none usable (execd
/// takes no such patch, and hp.cfg's UNL was checked when it loaded).
fn agreed_config(patch: &hp_cfg::patch::ContractPatch) -> v1::AgreedConfig {
    let (unl, quorum) = patch.membership().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the config in force has no usable UNL");
        (Vec::new(), 0)
    });
    v1::AgreedConfig {
        unl: unl.iter().map(|k| prost::bytes::Bytes::copy_from_slice(k)).collect(),
        quorum: u32::try_from(quorum).unwrap_or(u32::MAX),
        roundtime_ms: patch.consensus.roundtime,
        max_input_ledger_offset: patch.max_input_ledger_offset,
        user_input_bytes: patch.round_limits.user_input_bytes,
        version: patch.version.clone(),
    }
}

fn gone(e: EngineGone) -> Status {
    Status::unavailable(e.to_string())
}

fn hash32(bytes: &[u8], field: &str) -> Result<[u8; 32], Status> {
    bytes.try_into().map_err(|_| Status::invalid_argument(format!("{field} must be 32 bytes, got {}", bytes.len())))
}

#[tonic::async_trait]
impl Exec for ExecService {
    async fn execute(&self, request: Request<v1::ExecuteRequest>) -> Result<Response<v1::ExecuteReply>, Status> {
        let req = convert::execute_request(request.into_inner()).map_err(Status::invalid_argument)?;
        let seq = req.seq;
        let result = self
            .engine
            .call(move |engine, cancel| {
                engine.execute(req, cancel).map(|result| (result, agreed_config(engine.patch())))
            })
            .await
            .map_err(gone)?;
        match result {
            Ok((result, config)) => {
                self.metrics.ran(result.seq, &result.exit, result.run_micros);
                Ok(Response::new(v1::ExecuteReply { config: Some(config), ..convert::reply_to_proto(&result) }))
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "Execute refused");
                Err(status(e))
            }
        }
    }

    async fn read(&self, request: Request<v1::ReadRequest>) -> Result<Response<v1::ReadReply>, Status> {
        let request = request.into_inner();
        let user = hash32(&request.user, "ReadRequest.user")?;
        let _slot = self.reads.slots.acquire().await.map_err(|_| Status::unavailable("execd is stopping"))?;
        let result = crate::read::run(&self.engine, &self.reads.scratch, user, request.request, &self.reads.cancel)
            .await
            .map_err(|e| match e {
                crate::read::ReadError::Engine(e) => status(e),
                crate::read::ReadError::Gone => Status::unavailable("execd is stopping"),
                other => Status::internal(other.to_string()),
            })?;
        let exit = crate::recorded_result::exit_status(&result.exit, None);
        Ok(Response::new(v1::ReadReply {
            output: result.output.into(),
            exit: Some(exit),
            length_prefixed: result.length_prefixed,
        }))
    }

    type NplStream = NplEvents;

    /// consensusd's NPL stream: peers' messages in, this contract's out (the newest stream
    /// replaces any older one).
    async fn npl(&self, request: Request<Streaming<v1::NplDelivery>>) -> Result<Response<NplEvents>, Status> {
        let mut deliveries = request.into_inner();
        let hub = self.npl.clone();
        let events = hub.subscribe();
        tokio::spawn(async move {
            while let Ok(Some(delivery)) = deliveries.message().await {
                hub.deliver(delivery);
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(events).map(Ok))))
    }

    async fn metrics(&self, _: Request<v1::MetricsRequest>) -> Result<Response<v1::MetricsReply>, Status> {
        hp_daemon::metrics::reply(&self.metrics.registry)
    }

    async fn state_info(&self, _: Request<v1::StateInfoRequest>) -> Result<Response<v1::StateInfoReply>, Status> {
        let (info, config) = self
            .engine
            .call(|engine, _| engine.state_info().map(|info| (info, agreed_config(engine.patch()))))
            .await
            .map_err(gone)?
            .map_err(status)?;
        Ok(Response::new(v1::StateInfoReply {
            seq: info.seq.unwrap_or(0),
            has_seq: info.seq.is_some(),
            state_hash: info.state_hash.to_vec().into(),
            config: Some(config),
        }))
    }

    async fn state_manifest(
        &self,
        request: Request<v1::StateManifestRequest>,
    ) -> Result<Response<v1::StateManifestReply>, Status> {
        let include_damaged = request.into_inner().include_damaged;
        let (info, entries) =
            self.engine.call(move |engine, _| engine.manifest(include_damaged)).await.map_err(gone)?.map_err(status)?;
        let entries = entries
            .iter()
            .map(convert::entry_to_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(v1::StateManifestReply {
            seq: info.seq.unwrap_or(0),
            state_hash: info.state_hash.to_vec().into(),
            entries,
        }))
    }

    async fn read_state_chunk(
        &self,
        request: Request<v1::ReadStateChunkRequest>,
    ) -> Result<Response<v1::ReadStateChunkReply>, Status> {
        let req = request.into_inner();
        let length = req.length.min(MAX_CHUNK);
        let (data, eof) = self
            .engine
            .call(move |engine, _| engine.read_chunk(&req.path, &req.content_hash, req.offset, length))
            .await
            .map_err(gone)?
            .map_err(status)?;
        Ok(Response::new(v1::ReadStateChunkReply { data: data.into(), eof }))
    }

    async fn stage_state_chunk(
        &self,
        request: Request<v1::StageStateChunkRequest>,
    ) -> Result<Response<v1::StageStateChunkReply>, Status> {
        let req = request.into_inner();
        self.engine
            .call(move |engine, _| engine.stage_chunk(&req.path, req.offset, &req.data, req.reset))
            .await
            .map_err(gone)?
            .map_err(status)?;
        Ok(Response::new(v1::StageStateChunkReply {}))
    }

    async fn apply_staged_state(
        &self,
        request: Request<v1::ApplyStagedStateRequest>,
    ) -> Result<Response<v1::ApplyStagedStateReply>, Status> {
        let req = request.into_inner();
        let state_hash = hash32(&req.state_hash, "ApplyStagedStateRequest.state_hash")?;
        let entries = req.entries.into_iter().map(convert::wire_entry).collect();
        let seq = req.seq;
        self.engine
            .call(move |engine, _| engine.apply_staged(seq, state_hash, entries))
            .await
            .map_err(gone)?
            .map_err(status)?;
        Ok(Response::new(v1::ApplyStagedStateReply {}))
    }
}

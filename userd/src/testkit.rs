//! A stand-in consensusd for tests of userd and of the programs that talk to it (hp-client,
//! benchmarks): it serves `Consensus.UserSession` on a Unix socket, acks every input and echoes
//! it back at once as the output of a one-input "ledger".
//!
//! It runs on a thread of its own with its own runtime, so that [`FakeConsensus::stop`] ends it
//! the way a killed process ends: every connection drops at once, the socket disappears.
//!
//! Inputs starting with [`REFUSE_PREFIX`] are refused with the rest of the input as the reason.

use bytes::Bytes;
use hp_proto::v1::consensus_message::Kind as ToUserd;
use hp_proto::v1::consensus_server::{Consensus, ConsensusServer};
use hp_proto::v1::userd_message::Kind as FromUserd;
use hp_proto::v1::{
    ConsensusMessage, ConsensusStatus, ConsensusStatusRequest, InputAck, OutputBatch, UserOutput, UserdMessage,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Inputs that begin with these bytes are refused.
pub const REFUSE_PREFIX: &[u8] = b"refuse:";

/// What the fake has seen, shared across restarts.
#[derive(Debug, Default)]
struct Seen {
    /// Every message of every session, in arrival order, with the session number (from 1).
    messages: Mutex<Vec<(u64, UserdMessage)>>,
    sessions: AtomicU64,
    seq: AtomicU64,
    /// The open session's sender, for pushing outputs from the test.
    current: Mutex<Option<mpsc::UnboundedSender<Result<ConsensusMessage, Status>>>>,
    /// Echo inputs as outputs (on by default).
    echo: AtomicBool,
    /// Answer inputs with acks (on by default); off, inputs are only recorded.
    ack: AtomicBool,
    /// The UNL `Status` reports; until set, `Status` reports nothing usable.
    unl: Mutex<Option<Vec<[u8; 32]>>>,
    /// Whether `Status` says the node is behind the network (once the UNL is set).
    behind: AtomicBool,
}

/// A running (or stopped) fake consensusd.
#[derive(Debug)]
pub struct FakeConsensus {
    socket: PathBuf,
    seen: Arc<Seen>,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl FakeConsensus {
    /// Serves on `socket` (created, replacing a stale one) until stopped or dropped.
    pub fn start(socket: &Path) -> std::io::Result<Self> {
        let seen = Arc::new(Seen::default());
        seen.echo.store(true, Ordering::SeqCst);
        seen.ack.store(true, Ordering::SeqCst);
        let mut fake = Self { socket: socket.to_path_buf(), seen, running: None };
        fake.restart()?;
        Ok(fake)
    }

    /// Starts it again after [`Self::stop`], on the same socket, keeping what it has seen.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        // Bound on this thread so that the socket exists when this returns.
        if let Some(parent) = self.socket.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(&self.socket);
        let listener = std::os::unix::net::UnixListener::bind(&self.socket)?;
        listener.set_nonblocking(true)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let seen = self.seen.clone();
        let thread = std::thread::Builder::new().name("fake-consensusd".into()).spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::UnixListener::from_std(listener) else {
                    return;
                };
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                let service = ConsensusServer::new(FakeService { seen })
                    .max_decoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
                    .max_encoding_message_size(hp_proto::MAX_LOCAL_MESSAGE);
                let server = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming);
                tokio::select! {
                    _ = server => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here ends every connection task: a killed process.
            runtime.shutdown_background();
        })?;
        self.running = Some(Running { stop, thread });
        Ok(())
    }

    /// Ends it like a killed process: connections drop, the socket is removed.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.thread.join();
            let _ = std::fs::remove_file(&self.socket);
        }
        self.seen.current.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sessions opened so far.
    pub fn sessions(&self) -> u64 {
        self.seen.sessions.load(Ordering::SeqCst)
    }

    /// Every message received, with the number of the session it came on.
    pub fn messages(&self) -> Vec<(u64, UserdMessage)> {
        self.seen.messages.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The message kinds received, in order.
    pub fn kinds(&self) -> Vec<FromUserd> {
        self.messages().into_iter().filter_map(|(_, m)| m.kind).collect()
    }

    /// Whether inputs are echoed back as outputs.
    pub fn set_echo(&self, echo: bool) {
        self.seen.echo.store(echo, Ordering::SeqCst);
    }

    /// Whether inputs are answered at all (no ack, no echo when off).
    pub fn set_ack(&self, ack: bool) {
        self.seen.ack.store(ack, Ordering::SeqCst);
    }

    /// Makes `Status` answer as a node in sync whose UNL in force is `unl`.
    pub fn set_unl(&self, unl: &[[u8; 32]]) {
        *self.seen.unl.lock().unwrap_or_else(|p| p.into_inner()) = Some(unl.to_vec());
    }

    /// Makes `Status` say the node is in sync with the network, or behind it.
    pub fn set_in_sync(&self, in_sync: bool) {
        self.seen.behind.store(!in_sync, Ordering::SeqCst);
    }

    /// Sends one output to `pubkey` on the open session, as the next ledger's. False when none
    /// is open.
    pub fn push_output(&self, pubkey: [u8; 32], data: Bytes) -> bool {
        let seq = self.seen.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.push_output_at(seq, pubkey, data)
    }

    /// Sends one output to `pubkey` as ledger `seq`'s, whatever was sent before (a consensusd
    /// handing a ledger's outputs over again). False when no session is open.
    pub fn push_output_at(&self, seq: u64, pubkey: [u8; 32], data: Bytes) -> bool {
        let batch = OutputBatch {
            seq,
            outputs: vec![UserOutput { pubkey: Bytes::copy_from_slice(&pubkey), data }],
            proof: None,
            length_prefixed: false,
        };
        let current = self.seen.current.lock().unwrap_or_else(|p| p.into_inner());
        current.as_ref().is_some_and(|tx| tx.send(Ok(ConsensusMessage { kind: Some(ToUserd::Outputs(batch)) })).is_ok())
    }
}

impl Drop for FakeConsensus {
    fn drop(&mut self) {
        self.stop();
    }
}

struct FakeService {
    seen: Arc<Seen>,
}

#[tonic::async_trait]
impl Consensus for FakeService {
    type UserSessionStream = UnboundedReceiverStream<Result<ConsensusMessage, Status>>;

    async fn user_session(
        &self,
        request: Request<Streaming<UserdMessage>>,
    ) -> Result<Response<Self::UserSessionStream>, Status> {
        let session = self.seen.sessions.fetch_add(1, Ordering::SeqCst) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        *self.seen.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx.clone());
        let seen = self.seen.clone();
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                seen.messages.lock().unwrap_or_else(|p| p.into_inner()).push((session, message.clone()));
                let Some(FromUserd::Input(input)) = message.kind else {
                    continue;
                };
                if !seen.ack.load(Ordering::SeqCst) {
                    continue;
                }
                let refused = input.data.starts_with(REFUSE_PREFIX);
                let reason = if refused {
                    String::from_utf8_lossy(&input.data[REFUSE_PREFIX.len()..]).into_owned()
                } else {
                    String::new()
                };
                let ack = InputAck { request_id: input.request_id, accepted: !refused, reason };
                if tx.send(Ok(ConsensusMessage { kind: Some(ToUserd::Ack(ack)) })).is_err() {
                    break;
                }
                if !refused && seen.echo.load(Ordering::SeqCst) {
                    let seq = seen.seq.fetch_add(1, Ordering::SeqCst) + 1;
                    let output = UserOutput { pubkey: input.pubkey, data: input.data };
                    let batch = OutputBatch { seq, outputs: vec![output], proof: None, length_prefixed: false };
                    if tx.send(Ok(ConsensusMessage { kind: Some(ToUserd::Outputs(batch)) })).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }

    async fn status(&self, _request: Request<ConsensusStatusRequest>) -> Result<Response<ConsensusStatus>, Status> {
        let unl = self.seen.unl.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(unl) = unl else { return Ok(Response::new(ConsensusStatus::default())) };
        Ok(Response::new(ConsensusStatus {
            lcl_seq: self.seen.seq.load(Ordering::SeqCst),
            lcl_hash: Bytes::from_static(&[0; 32]),
            in_sync: !self.seen.behind.load(Ordering::SeqCst),
            roundtime_ms: 1000,
            max_input_ledger_offset: 10,
            unl: unl.iter().map(|k| Bytes::copy_from_slice(k)).collect(),
            ..ConsensusStatus::default()
        }))
    }

    /// The fake holds no ledgers.
    async fn ledger(
        &self,
        _request: Request<hp_proto::v1::LedgerQuery>,
    ) -> Result<Response<hp_proto::v1::LedgerQueryReply>, Status> {
        Ok(Response::new(hp_proto::v1::LedgerQueryReply::default()))
    }

    async fn metrics(
        &self,
        _request: Request<hp_proto::v1::MetricsRequest>,
    ) -> Result<Response<hp_proto::v1::MetricsReply>, Status> {
        Ok(Response::new(hp_proto::v1::MetricsReply::default()))
    }
}

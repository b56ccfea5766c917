//! Copying the contract state from a peer (docs/consensus.md, catch-up), when this node's own state
//! cannot be trusted or rebuilt: execd lost its committed copy, or this node's execution
//! disagreed with the network's certified result.
//!
//! The peer sends the manifest of its committed state (every entry with its hash). It is only
//! used if its `(seq, state_hash)` matches the result certificate this node holds for that
//! ledger — so a lying peer cannot make this node adopt a state the network never agreed on.
//! Only files whose content differs from the local committed state are fetched, in chunks of at
//! most [`CHUNK`] bytes, each file checked against its content hash as it is staged; execd
//! checks every path and the final root hash, and swaps the state in atomically, never half.
//! A peer that sends anything that does not check out is dropped from this attempt and the next
//! peer is tried.

use crate::executor::execd::Execd;
use crate::peer::PeerNet;
use crate::wire::PeerMessage;
use hp_ledger::Store;
use hp_proto::v1::{self as pb, peer as wire_pb};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{info, warn};

/// The largest chunk asked for at once.
pub const CHUNK: u32 = 1024 * 1024;
/// How long a peer has to answer one request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests in flight: request id → (the peer asked, where its reply goes).
type Waiting = HashMap<u64, (usize, oneshot::Sender<PeerMessage>)>;

/// Routes peers' replies to the sync task waiting for them, by request id and only from the
/// peer that was asked: another peer that guesses the id cannot answer in its place.
#[derive(Clone, Default)]
pub struct Replies {
    waiting: Arc<Mutex<Waiting>>,
    next: Arc<AtomicU64>,
}

impl Replies {
    fn register(&self, peer: usize) -> (u64, oneshot::Receiver<PeerMessage>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(id, (peer, tx));
        (id, rx)
    }

    /// Hands a reply from peer `from` to whoever waits for it; replies nobody asked `from` for
    /// are dropped (and returned `false`).
    pub fn deliver(&self, from: usize, message: PeerMessage) -> bool {
        let id = match &message {
            PeerMessage::StateManifestReply(r) => r.request_id,
            PeerMessage::StateChunkReply(r) => r.request_id,
            _ => return false,
        };
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.get(&id).is_none_or(|(asked, _)| *asked != from) {
            return false;
        }
        match waiting.remove(&id) {
            Some((_, tx)) => tx.send(message).is_ok(),
            None => false,
        }
    }

    fn forget(&self, id: u64) {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

/// Why one attempt with one peer failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("peer {peer} did not answer in time")]
    Timeout { peer: usize },
    #[error("peer {peer}: {problem}")]
    Peer { peer: usize, problem: String },
    #[error("peer {peer} offers state at ledger {seq}, for which this node holds no certified result yet")]
    NotYetCertified { peer: usize, seq: u64 },
    #[error("local execd: {0}")]
    Local(String),
    #[error("no peer could provide the state")]
    NoPeer,
}

/// What a successful sync did.
#[derive(Debug, Clone, Copy)]
pub struct SyncReport {
    pub seq: u64,
    pub state_hash: [u8; 32],
    pub files: u64,
    pub bytes: u64,
}

/// Everything a sync needs.
pub struct StateSync {
    pub net: PeerNet,
    pub replies: Replies,
    pub exec: Execd,
    pub store_path: PathBuf,
}

impl StateSync {
    /// Tries the peers in turn until one provides a state certified by the network.
    pub async fn run(&mut self, peers: Vec<usize>) -> Result<SyncReport, SyncError> {
        let mut last_err = SyncError::NoPeer;
        for peer in peers {
            match self.copy_from(peer).await {
                Ok(report) => return Ok(report),
                Err(e) => {
                    warn!(peer, error = %e, "state sync from this peer failed");
                    last_err = e;
                }
            }
        }
        Err(last_err)
    }

    async fn ask(&self, peer: usize, frame: impl FnOnce(u64) -> wire_pb::Frame) -> Result<PeerMessage, SyncError> {
        let (id, rx) = self.replies.register(peer);
        self.net.send(peer, &frame(id));
        match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => {
                self.replies.forget(id);
                Err(SyncError::Timeout { peer })
            }
        }
    }

    async fn copy_from(&mut self, peer: usize) -> Result<SyncReport, SyncError> {
        let bad = |problem: String| SyncError::Peer { peer, problem };
        let reply = self
            .ask(peer, |request_id| wire_pb::Frame {
                kind: Some(wire_pb::frame::Kind::StateManifestRequest(wire_pb::StateManifestRequest { request_id })),
            })
            .await?;
        let PeerMessage::StateManifestReply(manifest) = reply else { return Err(bad("wrong reply".into())) };
        if !manifest.error.is_empty() {
            return Err(bad(manifest.error));
        }
        let state_hash: [u8; 32] =
            manifest.state_hash.as_ref().try_into().map_err(|_| bad("state hash is not 32 bytes".into()))?;
        // The network must have certified exactly this state at this ledger.
        let store = Store::open_read_only(&self.store_path).map_err(|e| SyncError::Local(e.to_string()))?;
        let certified = store.get(manifest.seq).map_err(|e| SyncError::Local(e.to_string()))?.and_then(|r| r.result);
        let Some(cert) = certified else { return Err(SyncError::NotYetCertified { peer, seq: manifest.seq }) };
        if cert.state_hash != state_hash {
            return Err(bad(format!("offers a state for ledger {} that the network did not certify", manifest.seq)));
        }
        if manifest.entries.len() > 10_000_000 {
            return Err(bad("manifest too large".into()));
        }
        // What this node already has, by path and content.
        let local = self.exec.manifest(true).await.map(|m| m.entries).unwrap_or_default();
        let have: HashSet<(String, Vec<u8>)> = local.into_iter().map(|e| (e.path, e.content_hash.to_vec())).collect();
        let mut staged_any = false;
        let mut files = 0u64;
        let mut bytes = 0u64;
        for entry in &manifest.entries {
            if entry.is_dir || have.contains(&(entry.path.clone(), entry.content_hash.to_vec())) {
                continue;
            }
            bytes += self.copy_file(peer, entry, !staged_any).await?;
            staged_any = true;
            files += 1;
        }
        if !staged_any {
            // Nothing differs in content: still reset the staging area for a clean apply.
            self.exec.stage_chunk(String::new(), 0, Default::default(), true).await.ok();
        }
        let entries = manifest.entries.clone();
        self.exec
            .apply_staged(manifest.seq, manifest.state_hash.clone(), entries)
            .await
            .map_err(|e| bad(format!("the copied state does not check out: {}", e.message())))?;
        info!(peer, seq = manifest.seq, files, bytes, "state copied from peer");
        Ok(SyncReport { seq: manifest.seq, state_hash, files, bytes })
    }

    /// Fetches one file in chunks, staging each, and checks its content hash.
    async fn copy_file(&mut self, peer: usize, entry: &pb::StateEntry, reset: bool) -> Result<u64, SyncError> {
        let bad = |problem: String| SyncError::Peer { peer, problem };
        let mut hasher = Sha256::new();
        let mut offset = 0u64;
        let mut first = true;
        loop {
            let path = entry.path.clone();
            let content_hash = entry.content_hash.clone();
            let reply = self
                .ask(peer, |request_id| wire_pb::Frame {
                    kind: Some(wire_pb::frame::Kind::StateChunkRequest(wire_pb::StateChunkRequest {
                        request_id,
                        path,
                        content_hash,
                        offset,
                        length: CHUNK,
                    })),
                })
                .await?;
            let PeerMessage::StateChunkReply(chunk) = reply else { return Err(bad("wrong reply".into())) };
            if !chunk.error.is_empty() {
                return Err(bad(chunk.error));
            }
            if chunk.data.len() > CHUNK as usize || offset + chunk.data.len() as u64 > entry.size {
                return Err(bad(format!("sent more of `{}` than its size", entry.path)));
            }
            hasher.update(&chunk.data);
            self.exec
                .stage_chunk(entry.path.clone(), offset, chunk.data.clone(), reset && first)
                .await
                .map_err(|e| bad(format!("`{}` refused: {}", entry.path, e.message())))?;
            first = false;
            offset += chunk.data.len() as u64;
            if chunk.eof || chunk.data.is_empty() {
                break;
            }
        }
        let got: [u8; 32] = hasher.finalize().into();
        if got.as_slice() != entry.content_hash.as_ref() || offset != entry.size {
            return Err(bad(format!("`{}` does not match its content hash", entry.path)));
        }
        Ok(offset)
    }
}

/// Answers a peer's manifest request from the local execd.
pub async fn serve_manifest(mut exec: Execd, net: PeerNet, peer: usize, request_id: u64) {
    let reply = match exec.manifest(false).await {
        Ok(m) => wire_pb::StateManifestReply {
            request_id,
            seq: m.seq,
            state_hash: m.state_hash,
            entries: m.entries,
            error: String::new(),
        },
        Err(e) => wire_pb::StateManifestReply { request_id, error: e.message().to_string(), ..Default::default() },
    };
    net.send(peer, &wire_pb::Frame { kind: Some(wire_pb::frame::Kind::StateManifestReply(reply)) });
}

/// Answers a peer's chunk request from the local execd's committed state.
pub async fn serve_chunk(mut exec: Execd, net: PeerNet, peer: usize, req: wire_pb::StateChunkRequest) {
    let reply = match exec.read_chunk(req.path, req.content_hash, req.offset, req.length.min(CHUNK)).await {
        Ok(c) => {
            wire_pb::StateChunkReply { request_id: req.request_id, data: c.data, eof: c.eof, error: String::new() }
        }
        Err(e) => wire_pb::StateChunkReply {
            request_id: req.request_id,
            error: e.message().to_string(),
            ..Default::default()
        },
    };
    net.send(peer, &wire_pb::Frame { kind: Some(wire_pb::frame::Kind::StateChunkReply(reply)) });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn manifest_reply(request_id: u64) -> PeerMessage {
        PeerMessage::StateManifestReply(wire_pb::StateManifestReply { request_id, ..Default::default() })
    }

    #[test]
    fn a_reply_is_taken_only_from_the_peer_that_was_asked() {
        let replies = Replies::default();
        let (id, mut rx) = replies.register(2);
        assert!(!replies.deliver(1, manifest_reply(id)), "peer 1 answered a request sent to peer 2");
        assert!(rx.try_recv().is_err());
        assert!(replies.deliver(2, manifest_reply(id)));
        assert!(matches!(rx.try_recv(), Ok(PeerMessage::StateManifestReply(r)) if r.request_id == id));
        assert!(!replies.deliver(2, manifest_reply(id)), "a second answer to one request");
    }
}

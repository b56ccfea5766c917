//! The local gRPC API on `run/consensusd.sock`: the userd session and status. Protobuf and
//! tonic stop here: each handler checks what crosses the process boundary (key lengths, input
//! sizes), hands the node loop typed [`ApiEvent`]s, and maps the node's typed answers back.

use crate::api::{ApiEvent, FromUserd, NodeStatus, ToUserd, UserKey};
use crate::metrics::NodeMetrics;
use hp_daemon::metrics::prometheus_client::registry::Registry;
use hp_ledger::user_signed::{ContainerFormat, Opened, Rejection, UserSigned};
use hp_proto::v1::{
    self as pb, consensus_message::Kind as Out, consensus_server::Consensus, userd_message::Kind as In,
};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Messages queued to userd before the session counts as stuck.
const SESSION_QUEUE: usize = 65_536;

/// What the `Metrics` rpc encodes: the registry, and the node's handles to bring the computed
/// figures up to date first.
pub struct MetricsSource {
    pub registry: Arc<Registry>,
    pub node: NodeMetrics,
}

/// The service; `E` is the node loop's event type.
pub struct ConsensusService<E> {
    events: mpsc::Sender<E>,
    next_session: AtomicU64,
    /// `pubmaxsize`: larger inputs are refused here.
    max_input_bytes: usize,
    /// The ledger store, read for ledger queries.
    store_path: std::path::PathBuf,
    /// How the outputs a ledger query returns divide into messages.
    output_framing: hp_ledger::Framing,
    /// Ledger queries answered at once; more wait (each holds a read-only store connection).
    queries: std::sync::Arc<tokio::sync::Semaphore>,
    metrics: MetricsSource,
}

/// Ledger queries read from the store at once.
const CONCURRENT_QUERIES: usize = 4;

impl<E: From<ApiEvent>> ConsensusService<E> {
    pub fn new(
        events: mpsc::Sender<E>,
        max_input_bytes: usize,
        store_path: std::path::PathBuf,
        output_framing: hp_ledger::Framing,
        metrics: MetricsSource,
    ) -> Self {
        Self {
            events,
            next_session: AtomicU64::new(1),
            max_input_bytes,
            store_path,
            output_framing,
            queries: std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_QUERIES)),
            metrics,
        }
    }
}

/// Messages taken from userd's stream at once at most ([`next_chunk`]): their users'
/// signatures are checked as one batch.
const USERD_CHUNK: usize = 256;

/// How long a chunk that came with company waits for more ([`next_chunk`]).
const USERD_LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// The next messages of `stream`, at most [`USERD_CHUNK`]: those there already, and when
/// there was more than one, what arrives within `linger` ([`USERD_LINGER`]). Under load, many
/// inputs then share one signature batch, one fsync and one batch to the peers (whose checks are
/// cheaper for it too); a message that came alone, as on a quiet node, goes on at once. `None`
/// once the stream has ended.
async fn next_chunk<S, T>(stream: &mut S, linger: std::time::Duration) -> Option<Vec<T>>
where
    S: futures::Stream<Item = T> + Unpin,
{
    use futures::FutureExt;
    let mut chunk = vec![stream.next().await?];
    while chunk.len() < USERD_CHUNK {
        match stream.next().now_or_never() {
            Some(Some(message)) => chunk.push(message),
            // The end, seen again by the next call; or nothing more yet.
            Some(None) | None => break,
        }
    }
    if chunk.len() > 1 {
        let deadline = tokio::time::Instant::now() + linger;
        while chunk.len() < USERD_CHUNK {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(message)) => chunk.push(message),
                Ok(None) | Err(_) => break,
            }
        }
    }
    Some(chunk)
}

/// The checked forms of messages that came together; the users' signatures of their inputs are
/// checked as one batch first, and one by one only if the batch fails.
pub fn from_protos(messages: Vec<pb::UserdMessage>, max_input_bytes: usize) -> Vec<FromUserd> {
    let signed: Vec<([u8; 32], UserSigned)> = messages
        .iter()
        .filter_map(|m| match &m.kind {
            Some(In::Input(input)) => {
                Some((<[u8; 32]>::try_from(input.pubkey.as_ref()).ok()?, signed_part(input).ok()??))
            }
            _ => None,
        })
        .collect();
    let checked = hp_ledger::user_signed::all_signed(&signed.iter().map(|(u, s)| (u, s)).collect::<Vec<_>>());
    messages.into_iter().filter_map(|m| from_proto_checked(m, max_input_bytes, checked)).collect()
}

/// The checked form of one userd message; `None` for one that says nothing (no kind, or a
/// user event with a malformed key).
pub fn from_proto(message: pb::UserdMessage, max_input_bytes: usize) -> Option<FromUserd> {
    from_proto_checked(message, max_input_bytes, false)
}

/// [`from_proto`]; with `signature_checked`, the user's signature of an input is known to be
/// good (a batch check of it passed).
fn from_proto_checked(message: pb::UserdMessage, max_input_bytes: usize, signature_checked: bool) -> Option<FromUserd> {
    let key = |b: &[u8]| -> Option<UserKey> { b.try_into().ok() };
    Some(match message.kind? {
        In::Snapshot(s) => FromUserd::Snapshot {
            users: s.pubkeys.iter().filter_map(|k| key(k)).collect(),
            delivered_through: s.delivered_through,
        },
        In::Connected(c) => FromUserd::Connected(key(&c.pubkey)?),
        In::Disconnected(d) => FromUserd::Disconnected(key(&d.pubkey)?),
        In::Input(input) => match key(&input.pubkey) {
            None => FromUserd::Refused { request_id: input.request_id, reason: "malformed user key" },
            Some(_) if input.data.len() > max_input_bytes => {
                FromUserd::Refused { request_id: input.request_id, reason: "input exceeds pubmaxsize" }
            }
            Some(user) => match user_signed(&input, &user, signature_checked) {
                Ok(signed) => {
                    let (signed, opened) = signed.map_or((None, None), |(s, o)| (Some(s), Some(o)));
                    FromUserd::Input { request_id: input.request_id, user, data: input.data, signed, opened }
                }
                Err(reason) => FromUserd::Refused { request_id: input.request_id, reason },
            },
        },
    })
}

/// What the user signed, as sent; `None` for a seed-protocol input.
fn signed_part(input: &pb::SubmitInput) -> Result<Option<UserSigned>, &'static str> {
    if input.signed_format == 0 {
        return Ok(None);
    }
    let format = u8::try_from(input.signed_format).ok().and_then(ContainerFormat::from_code).ok_or("bad_msg_format")?;
    let signature: [u8; 64] = input.user_sig.as_ref().try_into().map_err(|_| "bad_sig")?;
    Ok(Some(UserSigned { format, container: input.signed_container.clone(), signature }))
}

/// What the user signed, checked: the signature over the container (unless `signature_checked`
/// says a batch check has passed), and that `data` is the container's input. `None` for a
/// seed-protocol input.
fn user_signed(
    input: &pb::SubmitInput,
    user: &UserKey,
    signature_checked: bool,
) -> Result<Option<(UserSigned, Opened)>, &'static str> {
    let Some(signed) = signed_part(input)? else { return Ok(None) };
    let opened = if signature_checked {
        hp_ledger::user_signed::parse_container(signed.format, &signed.container)
    } else {
        signed.open(user)
    };
    let container = opened.map_err(|why| match why {
        Rejection::BadSignature => "bad_sig",
        _ => "bad_msg_format",
    })?;
    if container.input.as_ref() != input.data.as_ref() {
        return Err("bad_msg_format");
    }
    let opened = Opened { nonce: container.nonce, max_ledger_seq: container.max_ledger_seq };
    Ok(Some((signed, opened)))
}

/// The protobuf form of what the node tells userd.
pub fn to_proto(message: ToUserd) -> pb::ConsensusMessage {
    let kind = match message {
        ToUserd::Ack { request_id, verdict } => {
            let (accepted, reason) = match verdict {
                Ok(()) => (true, String::new()),
                Err(reason) => (false, reason),
            };
            Out::Ack(pb::InputAck { request_id, accepted, reason })
        }
        ToUserd::InputStatus { input_hashes, fate } => {
            let input_hashes = input_hashes.iter().map(|h| h.to_vec().into()).collect();
            Out::InputStatus(match fate {
                Ok((seq, hash)) => pb::InputStatus {
                    input_hashes,
                    ledger_seq: seq,
                    ledger_hash: hash.to_vec().into(),
                    rejected: String::new(),
                },
                Err(why) => pb::InputStatus { input_hashes, rejected: why, ..Default::default() },
            })
        }
        ToUserd::Outputs { seq, outputs, proof, framing } => Out::Outputs(pb::OutputBatch {
            seq,
            length_prefixed: framing.flag(),
            outputs: outputs
                .into_iter()
                .map(|(user, data)| pb::UserOutput { pubkey: user.to_vec().into(), data })
                .collect(),
            proof: proof.map(|p| pb::OutputsProof {
                ledger_hash: p.ledger_hash.to_vec().into(),
                leaf_users: p.leaves.iter().map(|(user, _)| user.to_vec().into()).collect(),
                leaf_hashes: p.leaves.iter().map(|(_, hash)| hash.to_vec().into()).collect(),
                signers: p.signatures.iter().map(|(key, _)| key.to_vec().into()).collect(),
                signatures: p.signatures.iter().map(|(_, sig)| sig.to_vec().into()).collect(),
            }),
        }),
    };
    pb::ConsensusMessage { kind: Some(kind) }
}

fn status_to_proto(s: NodeStatus) -> pb::ConsensusStatus {
    pb::ConsensusStatus {
        lcl_seq: s.lcl_seq,
        lcl_hash: s.lcl_hash.to_vec().into(),
        state_hash: s.state_hash.to_vec().into(),
        peers: u32::try_from(s.peers).unwrap_or(u32::MAX),
        users: u32::try_from(s.users).unwrap_or(u32::MAX),
        in_sync: s.in_sync,
        since_close_ms: u64::try_from(s.since_close.as_millis()).unwrap_or(u64::MAX),
        unl: s.members.unl().iter().map(|k| k.to_vec().into()).collect(),
        quorum: u32::try_from(s.members.quorum()).unwrap_or(u32::MAX),
        config_hash: s.members.hash().to_vec().into(),
        role: if s.validator { "validator" } else { "observer" }.into(),
        proposal_health: s.proposal_health.map(|h| pb::ProposalHealth {
            seq: h.seq,
            comm_latency_min_ms: h.comm.min_ms,
            comm_latency_max_ms: h.comm.max_ms,
            comm_latency_avg_ms: h.comm.avg_ms,
            read_latency_min_ms: h.read.min_ms,
            read_latency_max_ms: h.read.max_ms,
            read_latency_avg_ms: h.read.avg_ms,
            batch_size: h.batch_size,
        }),
        roundtime_ms: u64::try_from(s.roundtime.as_millis()).unwrap_or(u64::MAX),
        max_input_ledger_offset: s.members.input_window(),
        contract_version: s.contract_version.unwrap_or_default(),
    }
}

type OutStream = Pin<Box<dyn Stream<Item = Result<pb::ConsensusMessage, Status>> + Send>>;

fn shutting_down<T>(_: T) -> Status {
    Status::unavailable("consensus is shutting down")
}

#[tonic::async_trait]
impl<E: From<ApiEvent> + Send + 'static> Consensus for ConsensusService<E> {
    type UserSessionStream = OutStream;

    async fn user_session(
        &self,
        request: Request<Streaming<pb::UserdMessage>>,
    ) -> Result<Response<Self::UserSessionStream>, Status> {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (to_userd, rx) = mpsc::channel(SESSION_QUEUE);
        self.events.send(ApiEvent::SessionOpened { session, to_userd }.into()).await.map_err(shutting_down)?;
        let mut inbound = request.into_inner();
        let events = self.events.clone();
        let max_input_bytes = self.max_input_bytes;
        tokio::spawn(async move {
            while let Some(chunk) = next_chunk(&mut inbound, USERD_LINGER).await {
                // Up to the first error, as one message at a time would have.
                let ended = chunk.iter().any(Result::is_err);
                let messages: Vec<pb::UserdMessage> = chunk.into_iter().map_while(Result::ok).collect();
                let messages = from_protos(messages, max_input_bytes);
                // As one event: the node takes the chunk whole, and stores its inputs together.
                if events.send(ApiEvent::FromUserd { session, messages }.into()).await.is_err() {
                    break;
                }
                if ended {
                    break;
                }
            }
            let _ = events.send(ApiEvent::SessionClosed { session }.into()).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(|m| Ok(to_proto(m))))))
    }

    async fn ledger(&self, request: Request<pb::LedgerQuery>) -> Result<Response<pb::LedgerQueryReply>, Status> {
        let _slot = self.queries.acquire().await.map_err(shutting_down)?;
        let (path, query, framing) = (self.store_path.clone(), request.into_inner(), self.output_framing);
        let reply = tokio::task::spawn_blocking(move || crate::ledger_query::answer(&path, &query, framing))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::internal)?;
        Ok(Response::new(reply))
    }

    async fn status(&self, _: Request<pb::ConsensusStatusRequest>) -> Result<Response<pb::ConsensusStatus>, Status> {
        let (tx, rx) = oneshot::channel();
        self.events.send(ApiEvent::Status(tx).into()).await.map_err(shutting_down)?;
        let status = rx.await.map_err(shutting_down)?;
        Ok(Response::new(status_to_proto(status)))
    }

    async fn metrics(&self, _: Request<pb::MetricsRequest>) -> Result<Response<pb::MetricsReply>, Status> {
        self.metrics.node.before_scrape();
        hp_daemon::metrics::reply(&self.metrics.registry)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use bytes::Bytes;

    fn input(pubkey: &[u8], data: &[u8]) -> pb::UserdMessage {
        pb::UserdMessage {
            kind: Some(In::Input(pb::SubmitInput {
                request_id: 9,
                pubkey: Bytes::copy_from_slice(pubkey),
                data: Bytes::copy_from_slice(data),
                ..Default::default()
            })),
        }
    }

    #[tokio::test]
    async fn a_lone_message_goes_on_at_once_and_one_with_company_waits_for_more() {
        // A linger no test waits out: only the stream's end or a full chunk stops it.
        let (forever, limit) = (std::time::Duration::from_secs(3600), std::time::Duration::from_secs(20));
        let (tx, rx) = mpsc::unbounded_channel::<usize>();
        let mut stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        tx.send(1).unwrap();
        let lone = tokio::time::timeout(limit, next_chunk(&mut stream, forever)).await.expect("a lone message waited");
        assert_eq!(lone, Some(vec![1]));
        // Many at once: a full chunk goes on at once, the rest come next.
        for i in 0..USERD_CHUNK + 10 {
            tx.send(i).unwrap();
        }
        let full = tokio::time::timeout(limit, next_chunk(&mut stream, forever)).await.expect("a full chunk waited");
        assert_eq!(full, Some((0..USERD_CHUNK).collect()));
        // Ten there, one more a moment later: it joins them (here the wait ends with the stream).
        let late = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.send(99).unwrap();
        });
        let rest = tokio::time::timeout(limit, next_chunk(&mut stream, forever)).await.expect("the stream ended");
        late.await.unwrap();
        let mut expected: Vec<usize> = (USERD_CHUNK..USERD_CHUNK + 10).collect();
        expected.push(99);
        assert_eq!(rest, Some(expected));
        assert_eq!(next_chunk(&mut stream, forever).await, None, "the end");
    }

    #[test]
    fn inputs_with_a_malformed_key_or_past_pubmaxsize_are_refused_at_the_edge() {
        assert_eq!(
            from_proto(input(&[1; 31], b"x"), 4),
            Some(FromUserd::Refused { request_id: 9, reason: "malformed user key" })
        );
        assert_eq!(
            from_proto(input(&[1; 32], b"12345"), 4),
            Some(FromUserd::Refused { request_id: 9, reason: "input exceeds pubmaxsize" })
        );
        assert_eq!(
            from_proto(input(&[1; 32], b"1234"), 4),
            Some(FromUserd::Input {
                request_id: 9,
                user: [1; 32],
                data: Bytes::from_static(b"1234"),
                signed: None,
                opened: None
            })
        );
    }

    #[test]
    fn user_events_with_a_malformed_key_say_nothing_and_a_snapshot_drops_them() {
        let connected =
            pb::UserdMessage { kind: Some(In::Connected(pb::UserConnected { pubkey: Bytes::from_static(&[1; 33]) })) };
        assert_eq!(from_proto(connected, 4), None);
        let snapshot = pb::UserdMessage {
            kind: Some(In::Snapshot(pb::UsersSnapshot {
                pubkeys: vec![Bytes::from_static(&[2; 32]), Bytes::from_static(&[3; 5])],
                delivered_through: 7,
            })),
        };
        assert_eq!(from_proto(snapshot, 4), Some(FromUserd::Snapshot { users: vec![[2; 32]], delivered_through: 7 }));
        assert_eq!(from_proto(pb::UserdMessage { kind: None }, 4), None);
    }

    fn signed_input(key: &ed25519_dalek::SigningKey, text: &str, nonce: u64) -> pb::UserdMessage {
        use ed25519_dalek::Signer;
        let container = format!(r#"{{"input":"{text}","nonce":{nonce},"max_ledger_seq_no":9}}"#);
        pb::UserdMessage {
            kind: Some(In::Input(pb::SubmitInput {
                request_id: nonce,
                pubkey: Bytes::copy_from_slice(&key.verifying_key().to_bytes()),
                data: Bytes::copy_from_slice(text.as_bytes()),
                signed_format: ContainerFormat::Json.code() as u32,
                user_sig: Bytes::copy_from_slice(&key.sign(container.as_bytes()).to_bytes()),
                signed_container: Bytes::from(container.into_bytes()),
            })),
        }
    }

    #[test]
    fn messages_that_came_together_get_the_verdicts_each_would_get_alone() {
        let (a, b) = (ed25519_dalek::SigningKey::from_bytes(&[1; 32]), ed25519_dalek::SigningKey::from_bytes(&[2; 32]));
        let good = vec![signed_input(&a, "one", 1), input(&[5; 32], b"seed"), signed_input(&b, "two", 1)];
        let alone: Vec<FromUserd> = good.iter().cloned().filter_map(|m| from_proto(m, 100)).collect();
        assert_eq!(from_protos(good.clone(), 100), alone);
        assert!(alone.iter().all(|m| matches!(m, FromUserd::Input { .. })));
        // One signature by another user among them: only that one is refused.
        let mut forged = signed_input(&a, "three", 2);
        if let Some(In::Input(i)) = forged.kind.as_mut() {
            i.pubkey = Bytes::copy_from_slice(&b.verifying_key().to_bytes());
        }
        let mixed = vec![good[0].clone(), forged, good[2].clone()];
        let together = from_protos(mixed.clone(), 100);
        assert_eq!(together, mixed.into_iter().filter_map(|m| from_proto(m, 100)).collect::<Vec<_>>());
        assert_eq!(together[1], FromUserd::Refused { request_id: 2, reason: "bad_sig" });
    }
}

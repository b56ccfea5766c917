//! The client side of `Consensus.UserSession` (consensusd.proto) over `run/consensusd.sock`.
//!
//! One task owns the session. On every (re)connect it first sends a `UsersSnapshot` of the
//! users in the [`Registry`], then, in order, `UserConnected` / `UserDisconnected` events and
//! `SubmitInput`s. It routes each `InputAck` to the connection waiting for it and each
//! `OutputBatch` to the connected users. When consensusd is down or restarts, the session
//! fails the inputs in flight (their users are told they were not accepted), refuses new ones
//! at once while down, and reconnects with backoff (docs/ARCHITECTURE.md, §7).
//!
//! Membership events are derived from the registry, not queued as they happen: a connection
//! only says "my user's entry changed", and the session compares the registry with what it has
//! told consensusd. So consensusd sees an exact alternation of connected/disconnected per user,
//! never a stale event, whatever the interleaving of connections and reconnects.
//!
//! # What consensusd can rely on, and must do
//! - One session at a time. Its first message is always a `UsersSnapshot`: the complete set of
//!   users connected here, replacing whatever consensusd knew from earlier sessions.
//! - After the snapshot, `UserConnected`/`UserDisconnected` strictly alternate per user. A
//!   user's `SubmitInput`s come after the message that made it connected.
//! - `request_id`s are unique for the life of one userd process only (they restart at 1 when
//!   userd restarts): consensusd must not use them to deduplicate across sessions.
//! - consensusd answers every `SubmitInput` with exactly one `InputAck`, `accepted` only once
//!   the input is durable (docs/consensus.md). userd waits `ack_timeout` (10 s by default); later,
//!   the user is told the input is unconfirmed. A refusal's `reason` is shown to the user.
//! - `OutputBatch` outputs for users not connected here are ignored, empty ones send no frame.
//!   userd never blocks on a user while routing, so it keeps reading the stream.
//! - Each snapshot carries the last ledger whose `OutputBatch` this process received
//!   (`delivered_through`, 0 for none yet). consensusd hands over again the outputs of the
//!   ledgers after it that it released — so a batch in flight when consensusd died or the
//!   stream broke is not lost — and userd drops any batch at or below it, so no user gets an
//!   output twice.
//! - When the stream ends or breaks, inputs awaiting an ack are reported to their users as
//!   unconfirmed, new inputs are refused while down, and userd reconnects (backoff 50 ms
//!   doubling to 1 s) and starts again with a fresh snapshot.

use crate::hotpocket::statuses::Statuses;
use crate::registry::Registry;
use bytes::Bytes;
use hp_cfg::PublicKeyHex;
use hp_ledger::user_signed::UserSigned;
use hp_proto::v1::consensus_client::ConsensusClient;
use hp_proto::v1::consensus_message::Kind as FromConsensus;
use hp_proto::v1::userd_message::Kind as ToConsensus;
use hp_proto::v1::{SubmitInput, UserConnected, UserDisconnected, UserdMessage, UsersSnapshot};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Commands queued from connections to the session task. Bounded: when consensusd is slow to
/// read, connections wait here (within their ack deadline) rather than piling up memory.
const COMMAND_QUEUE: usize = 4096;
/// Messages buffered towards consensusd on one attempt, beyond what HTTP/2 flow control holds.
const OUTBOUND_QUEUE: usize = 1024;
/// Forgotten acks (their connection gave up waiting) are swept after this many submissions.
const SWEEP_EVERY: u64 = 1024;

/// How the session connects.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// `run/consensusd.sock`.
    pub socket: PathBuf,
    /// Opening the stream must succeed within this.
    pub connect_timeout: Duration,
    /// First and largest pause between attempts while consensusd is down.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl SessionSettings {
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            connect_timeout: hp_daemon::ipc::CALL_TIMEOUT,
            // Quick first retries so that a consensusd restart costs users well under a second;
            // capped so that a long outage costs one attempt per second.
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// consensusd's answer to one input, as the connection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Durably accepted: nothing is sent to the user (its output will come).
    Accepted,
    /// Refused by consensusd, with its reason for the user.
    Refused(String),
    /// Not accepted: the session is down, so the input was never handed over.
    Unavailable,
    /// Handed over, but the session broke before the ack came: consensusd may or may not
    /// hold it.
    Unknown,
}

enum Command {
    /// The registry entry of this user changed: tell consensusd if it no longer matches.
    Changed(PublicKeyHex),
    Submit {
        user: PublicKeyHex,
        data: Bytes,
        /// What the user signed, for a HotPocket 0.6 input.
        signed: Option<UserSigned>,
        reply: oneshot::Sender<Ack>,
    },
}

/// The connections' side of the session. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    commands: mpsc::Sender<Command>,
    up: watch::Receiver<bool>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Changed(user) => write!(f, "Changed({user})"),
            Command::Submit { user, data, .. } => write!(f, "Submit({user}, {} bytes)", data.len()),
        }
    }
}

impl SessionHandle {
    /// Tells the session that `user`'s registry entry changed (after the registry was updated).
    pub async fn user_changed(&self, user: PublicKeyHex) {
        let _ = self.commands.send(Command::Changed(user)).await;
    }

    /// Queues one input; the receiver resolves with consensusd's answer.
    pub async fn submit(&self, user: PublicKeyHex, data: Bytes) -> oneshot::Receiver<Ack> {
        self.submit_signed(user, data, None).await
    }

    /// Queues one input with what its user signed (HotPocket 0.6); the receiver resolves with
    /// consensusd's answer. Its fate later reaches [`crate::hotpocket::statuses::Statuses`].
    pub async fn submit_signed(
        &self,
        user: PublicKeyHex,
        data: Bytes,
        signed: Option<UserSigned>,
    ) -> oneshot::Receiver<Ack> {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(Command::Submit { reply, .. })) =
            self.commands.send(Command::Submit { user, data, signed, reply }).await
        {
            let _ = reply.send(Ack::Unavailable);
        }
        answer
    }

    /// Whether the session with consensusd is open.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// A receiver that follows [`Self::is_up`].
    pub fn watch_up(&self) -> watch::Receiver<bool> {
        self.up.clone()
    }
}

/// Starts the session task. It runs until `shutdown` is cancelled.
pub fn spawn(
    settings: SessionSettings,
    registry: Registry,
    statuses: Statuses,
    shutdown: CancellationToken,
) -> (SessionHandle, tokio::task::JoinHandle<()>) {
    let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
    let (up_tx, up) = watch::channel(false);
    let client = ConsensusClient::new(hp_daemon::ipc::channel(&settings.socket))
        .max_decoding_message_size(hp_proto::MAX_LOCAL_MESSAGE)
        .max_encoding_message_size(hp_proto::MAX_LOCAL_MESSAGE);
    let session = Session {
        settings,
        client,
        registry,
        statuses,
        commands: rx,
        up: up_tx,
        next_request: 0,
        delivered_through: 0,
    };
    let task = tokio::spawn(session.run(shutdown));
    (SessionHandle { commands, up }, task)
}

struct Session {
    settings: SessionSettings,
    client: ConsensusClient<Channel>,
    registry: Registry,
    /// Where the fates of HotPocket users' signed inputs go.
    statuses: Statuses,
    commands: mpsc::Receiver<Command>,
    /// Whether the stream is open; read by connections and the status service.
    up: watch::Sender<bool>,
    /// userd's request ids, unique for the life of the process (echoed in acks).
    next_request: u64,
    /// The last ledger whose outputs this process received, from whichever session: told to
    /// consensusd in each snapshot so that it hands over what a restart left in flight, and
    /// used to drop a batch seen before.
    delivered_through: u64,
}

/// Why one attempt ended.
#[derive(Debug)]
enum AttemptEnd {
    ConnectFailed(tonic::Status),
    ConnectTimeout,
    /// consensusd ended the stream.
    Closed,
    Broken(tonic::Status),
    /// The command channel closed: userd is stopping.
    Stopped,
}

impl Session {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = self.settings.backoff_min;
        let mut unreachable_reported = false;
        loop {
            let started = tokio::time::Instant::now();
            let end = tokio::select! {
                _ = shutdown.cancelled() => break,
                end = self.attempt() => end,
            };
            let was_up = self.up.send_replace(false);
            // Only a session that lasted resets the backoff: one that consensusd ends at once,
            // again and again, is retried no faster than one that cannot open.
            if was_up && started.elapsed() >= self.settings.backoff_max {
                backoff = self.settings.backoff_min;
                unreachable_reported = false;
            }
            match &end {
                AttemptEnd::Stopped => break,
                AttemptEnd::ConnectFailed(status) if unreachable_reported => {
                    tracing::debug!(code = ?status.code(), message = status.message(), "consensusd still not reachable")
                }
                AttemptEnd::ConnectFailed(status) => {
                    unreachable_reported = true;
                    tracing::warn!(code = ?status.code(), message = status.message(), "consensusd not reachable; retrying")
                }
                AttemptEnd::ConnectTimeout => tracing::warn!("consensusd did not open the user session in time"),
                AttemptEnd::Closed => tracing::warn!("consensusd ended the user session; reconnecting"),
                AttemptEnd::Broken(status) => {
                    tracing::warn!(code = ?status.code(), message = status.message(), "user session with consensusd broke; reconnecting")
                }
            }
            // Down: refuse inputs at once instead of letting them wait for an ack that will not
            // come. Membership changes need no queueing: the next snapshot carries them.
            let pause = tokio::time::sleep(backoff);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = &mut pause => break,
                    command = self.commands.recv() => match command {
                        None => return,
                        Some(Command::Submit { reply, .. }) => { let _ = reply.send(Ack::Unavailable); }
                        Some(Command::Changed(_)) => {}
                    },
                }
            }
            backoff = (backoff * 2).min(self.settings.backoff_max);
        }
        self.up.send_replace(false);
    }

    /// One session: snapshot first, then events and inputs; until the stream ends.
    async fn attempt(&mut self) -> AttemptEnd {
        let Session { settings, client, registry, statuses, commands, up, next_request, delivered_through } = self;
        let (out_tx, out_rx) = mpsc::channel::<UserdMessage>(OUTBOUND_QUEUE);
        let mut announced: HashSet<PublicKeyHex> = registry.users().into_iter().collect();
        let snapshot = UsersSnapshot {
            pubkeys: announced.iter().map(|u| Bytes::copy_from_slice(&u.0)).collect(),
            delivered_through: *delivered_through,
        };
        let users = snapshot.pubkeys.len();
        if out_tx.try_send(UserdMessage { kind: Some(ToConsensus::Snapshot(snapshot)) }).is_err() {
            return AttemptEnd::Stopped; // cannot happen: a fresh channel has room
        }
        let pending: Mutex<HashMap<u64, oneshot::Sender<Ack>>> = Mutex::new(HashMap::new());
        let lock = || pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut client = client.clone();

        let receive = async {
            let opened =
                tokio::time::timeout(settings.connect_timeout, client.user_session(ReceiverStream::new(out_rx)));
            let mut stream = match opened.await {
                Err(_) => return AttemptEnd::ConnectTimeout,
                Ok(Err(status)) => return AttemptEnd::ConnectFailed(status),
                Ok(Ok(response)) => response.into_inner(),
            };
            up.send_replace(true);
            tracing::info!(users, "session with consensusd open; snapshot sent");
            loop {
                let message = match stream.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => return AttemptEnd::Closed,
                    Err(status) => return AttemptEnd::Broken(status),
                };
                match message.kind {
                    Some(FromConsensus::Ack(ack)) => {
                        let Some(reply) = lock().remove(&ack.request_id) else {
                            tracing::debug!(request_id = ack.request_id, "ack for an input nobody waits for");
                            continue;
                        };
                        let answer = if ack.accepted {
                            Ack::Accepted
                        } else if ack.reason.is_empty() {
                            Ack::Refused("refused by the node".into())
                        } else {
                            Ack::Refused(ack.reason)
                        };
                        let _ = reply.send(answer);
                    }
                    Some(FromConsensus::Outputs(batch)) => {
                        let seq = batch.seq;
                        if seq <= *delivered_through {
                            tracing::debug!(
                                seq,
                                delivered_through = *delivered_through,
                                "outputs seen before; ignored"
                            );
                            continue;
                        }
                        *delivered_through = seq;
                        statuses.saw_ledger(seq);
                        let delivery = crate::output::deliver(registry, batch);
                        tracing::debug!(seq, ?delivery, "outputs delivered");
                    }
                    Some(FromConsensus::InputStatus(status)) => {
                        statuses.saw_ledger(status.ledger_seq);
                        let fate = if status.rejected.is_empty() {
                            match <[u8; 32]>::try_from(status.ledger_hash.as_ref()) {
                                Ok(ledger_hash) => Ok((status.ledger_seq, ledger_hash)),
                                Err(_) => continue,
                            }
                        } else {
                            Err(status.rejected)
                        };
                        for hash in &status.input_hashes {
                            let Ok(hash) = <[u8; 32]>::try_from(hash.as_ref()) else { continue };
                            if !statuses.settle(&hash, fate.clone()) {
                                tracing::debug!("the status of a signed input nobody waits for");
                            }
                        }
                    }
                    None => tracing::warn!("consensusd sent a message with no kind; ignored"),
                }
            }
        };

        let forward = async {
            while let Some(command) = commands.recv().await {
                let message = match command {
                    Command::Changed(user) => {
                        let connected = registry.contains(&user);
                        if connected == announced.contains(&user) {
                            continue;
                        }
                        let pubkey = Bytes::copy_from_slice(&user.0);
                        if connected {
                            announced.insert(user);
                            ToConsensus::Connected(UserConnected { pubkey })
                        } else {
                            announced.remove(&user);
                            ToConsensus::Disconnected(UserDisconnected { pubkey })
                        }
                    }
                    Command::Submit { user, data, signed, reply } => {
                        *next_request += 1;
                        let request_id = *next_request;
                        let mut waiting = lock();
                        waiting.insert(request_id, reply);
                        if request_id % SWEEP_EVERY == 0 {
                            waiting.retain(|_, reply| !reply.is_closed());
                        }
                        drop(waiting);
                        let (signed_format, signed_container, user_sig) = match signed {
                            None => (0, Bytes::new(), Bytes::new()),
                            Some(s) => (u32::from(s.format.code()), s.container, Bytes::copy_from_slice(&s.signature)),
                        };
                        ToConsensus::Input(SubmitInput {
                            request_id,
                            pubkey: Bytes::copy_from_slice(&user.0),
                            data,
                            signed_format,
                            signed_container,
                            user_sig,
                        })
                    }
                };
                if out_tx.send(UserdMessage { kind: Some(message) }).await.is_err() {
                    // The stream is gone; `receive` reports why.
                    std::future::pending::<()>().await;
                }
            }
            AttemptEnd::Stopped
        };

        let end = tokio::select! {
            end = receive => end,
            end = forward => end,
        };
        // Inputs queued before the stream opened never reached consensusd; after that, an
        // unanswered one may have.
        let answer = if *up.borrow() { Ack::Unknown } else { Ack::Unavailable };
        for (_, reply) in lock().drain() {
            let _ = reply.send(answer.clone());
        }
        end
    }
}

//! One HotPocket 0.6 connection: TLS (on `hpport`), the websocket upgrade and the handshake
//! under one deadline and one read budget, then the client's requests until it leaves, stops
//! answering pings, or the node stops.

use super::handshake::{self, SignedIn};
use super::message::{Incoming, Outgoing};
use super::{HotPocketShared, Protocol};
use crate::admission::Pending;
use crate::handshake::Challenge;
use crate::metered::{Metered, PRE_AUTH_BUDGET};
use crate::outbox::{WriterEnd, outbox, write_loop};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use hp_ledger::Framing;
use hp_ledger::user_signed::{ContainerFormat, UserSigned, check_window, input_bytes, parse_container};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

/// What a TLS handshake may read on top of [`PRE_AUTH_BUDGET`] (a ClientHello with its
/// extensions, and the client's finished messages).
const TLS_BUDGET: usize = 32 * 1024;
/// Messages a connection may send that are not requests the node understands, before it is
/// closed: clients that speak another dialect learn it at once in the log, floods stop.
pub const MAX_BAD_MESSAGES: u32 = 16;
/// How long a read request may take, the contract's run included.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a connection waits for the fate of one signed input before it stops waiting (the
/// input's own window ends far sooner; this only frees the slot if consensusd never answers).
const STATUS_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// A stream whose pre-authentication read budget can be lifted.
pub trait Lift {
    fn lift(&mut self);
}

impl<S> Lift for Metered<S> {
    fn lift(&mut self) {
        Metered::lift(self)
    }
}

impl<S> Lift for tokio_rustls::server::TlsStream<Metered<S>> {
    fn lift(&mut self) {
        self.get_mut().0.lift()
    }
}

/// Serves one accepted socket to its end. `pending` is its admission slot.
pub async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    pending: Pending,
    shared: Arc<HotPocketShared>,
    tls: bool,
    shutdown: CancellationToken,
) {
    let deadline = Instant::now() + shared.seed.settings.handshake_timeout;
    let metered = Metered::new(socket, PRE_AUTH_BUDGET + if tls { TLS_BUDGET } else { 0 });
    match (&shared.tls, tls) {
        (Some(acceptor), true) => {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = timeout_at(deadline, acceptor.accept(metered)) => match accepted {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
            };
            upgraded(stream, peer, pending, &shared, deadline, &shutdown).await
        }
        (None, true) => tracing::error!(%peer, "no TLS certificate loaded; connection closed"),
        (_, false) => upgraded(metered, peer, pending, &shared, deadline, &shutdown).await,
    }
}

async fn upgraded<S>(
    stream: S,
    peer: SocketAddr,
    pending: Pending,
    shared: &HotPocketShared,
    deadline: Instant,
    shutdown: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Lift + Unpin + Send + 'static,
{
    let Some(mut ws) =
        crate::connection::upgrade(stream, shared.seed.settings.websocket, deadline, peer, shutdown).await
    else {
        return;
    };
    let (signed_in, told_unl) = match handshake(&mut ws, shared, deadline, shutdown).await {
        Ok(signed_in) => signed_in,
        Err(reason) => {
            tracing::debug!(%peer, reason, "HotPocket handshake refused");
            close(ws, CloseCode::Policy, reason).await;
            return;
        }
    };
    let slot = match pending.sign_in() {
        Ok(slot) => slot,
        Err(refused) => {
            tracing::debug!(%peer, reason = %refused, "signed-in pool full; user refused");
            close(ws, CloseCode::Again, "the node is full").await;
            return;
        }
    };
    ws.get_mut().lift();
    requests(ws, signed_in, told_unl, peer, shared, shutdown).await;
    drop(slot);
}

/// `user_challenge`, the client's signed answer, and the node's own proof if asked; with the
/// UNL in force the user was given.
async fn handshake<S>(
    ws: &mut WebSocketStream<S>,
    shared: &HotPocketShared,
    deadline: Instant,
    shutdown: &CancellationToken,
) -> Result<(SignedIn, Vec<[u8; 32]>), &'static str>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let challenge = Challenge::generate();
    // One version for the challenge and the proof that signs it.
    let version = shared.contract_version_in_force(shared.view.state().await.as_ref()).to_string();
    let hello = handshake::user_challenge(&shared.contract_id, &version, challenge.as_str());
    if !matches!(timeout_at(deadline, ws.send(Message::text(hello))).await, Ok(Ok(()))) {
        return Err("the challenge could not be sent");
    }
    let frame = loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Err("node shutting down"),
            next = timeout_at(deadline, ws.next()) => next,
        };
        match next {
            Err(_) => return Err("handshake timed out"),
            Ok(None) | Ok(Some(Err(_))) => return Err("connection lost"),
            Ok(Some(Ok(Message::Text(text)))) => break text.as_bytes().to_vec(),
            Ok(Some(Ok(Message::Binary(data)))) => break data.to_vec(),
            Ok(Some(Ok(Message::Close(_)))) => return Err("closed by the client"),
            Ok(Some(Ok(_))) => continue,
        }
    };
    let signed_in = handshake::verify_response(&frame, challenge.as_str()).map_err(|e| match e {
        handshake::HandshakeError::BadSignature => "the challenge signature does not verify",
        _ => "malformed user_challenge_response",
    })?;
    let state = shared.view.state().await;
    let unl = shared.unl_in_force(state.as_ref());
    if let Some(server_challenge) = &signed_in.server_challenge {
        let proof =
            handshake::server_challenge_response(&shared.key, server_challenge, &shared.contract_id, &version, unl);
        if !matches!(timeout_at(deadline, ws.send(Message::text(proof))).await, Ok(Ok(()))) {
            return Err("the server challenge response could not be sent");
        }
    }
    let told_unl = unl.to_vec();
    Ok((signed_in, told_unl))
}

/// Sends a close frame and waits briefly for the client's.
async fn close<S>(mut ws: WebSocketStream<S>, code: CloseCode, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let until = Instant::now() + std::time::Duration::from_secs(1);
    let frame = CloseFrame { code, reason: reason.to_string().into() };
    if matches!(timeout_at(until, ws.close(Some(frame))).await, Ok(Ok(()))) {
        while let Ok(Some(Ok(_))) = timeout_at(until, ws.next()).await {}
    }
}

/// The client's requests, until the connection ends.
async fn requests<S>(
    ws: WebSocketStream<S>,
    signed_in: SignedIn,
    told_unl: Vec<[u8; 32]>,
    peer: SocketAddr,
    shared: &HotPocketShared,
    shutdown: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = &shared.seed.settings;
    let protocol = signed_in.protocol;
    let user = hp_cfg::PublicKeyHex(signed_in.user);
    let kill = CancellationToken::new();
    let (outbox, outbox_rx) = outbox(settings.outbox, kill.clone());
    let (sink, mut stream) = ws.split();
    let mut writer = tokio::spawn(write_loop(sink, outbox_rx, kill.clone(), settings.outbox.write_timeout));
    // Registered like a seed connection: consensusd lists the user and hands over its outputs.
    let registry = &shared.seed.registry;
    let id = registry.next_id();
    let subscriptions = std::sync::Arc::new(crate::registry::Subscriptions::told(told_unl));
    let handle = crate::registry::ConnHandle {
        id,
        outbox: outbox.clone(),
        hotpocket: Some(protocol),
        subscriptions: subscriptions.clone(),
    };
    if let Some(old) = registry.insert(user, handle) {
        tracing::info!(%user, old, "user reconnected; the older connection is replaced");
    }
    shared.seed.session.user_changed(user).await;
    tracing::info!(%user, %peer, ?protocol, "HotPocket user connected");
    let mut session = Session { protocol, user: signed_in.user, bad_messages: 0, subscriptions };
    // Signed inputs waiting for their fate; at most `max_in_flight`, then reading pauses.
    let mut waiting: FuturesUnordered<BoxFuture<'static, Option<Outgoing>>> = FuturesUnordered::new();
    let mut last_heard = Instant::now();
    let mut pinged: Option<Instant> = None;
    let end: &str = loop {
        let wake = match pinged {
            Some(at) => at + settings.pong_timeout,
            None => last_heard + settings.ping_interval,
        };
        tokio::select! {
            biased;
            _ = kill.cancelled() => break "dropped",
            _ = shutdown.cancelled() => {
                outbox.close(None, CloseCode::Away);
                break "node shutting down";
            }
            written = &mut writer => match written {
                Ok(WriterEnd::Closed) => break "closed",
                _ => break "write failed",
            },
            Some(status) = waiting.next(), if !waiting.is_empty() => {
                if let Some(status) = status
                    && outbox.push(status.encode(protocol)).is_err()
                {
                    break "not reading";
                }
            }
            message = stream.next(), if waiting.len() < settings.max_in_flight => {
                let data = match message {
                    None => break "closed",
                    Some(Err(e)) => {
                        tracing::debug!(%user, error = %e, "websocket read failed");
                        break "read failed";
                    }
                    Some(Ok(Message::Binary(data))) => data.to_vec(),
                    Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                    Some(Ok(_)) => {
                        last_heard = Instant::now();
                        pinged = None;
                        continue;
                    }
                };
                last_heard = Instant::now();
                pinged = None;
                let handled = session.handle(&data, shared).await;
                for reply in handled.replies {
                    if outbox.push(reply.encode(protocol)).is_err() {
                        break;
                    }
                }
                if let Some(status) = handled.status {
                    waiting.push(status);
                }
                if session.bad_messages > MAX_BAD_MESSAGES {
                    outbox.close(None, CloseCode::Policy);
                    break "too many bad messages";
                }
            }
            _ = sleep_until(wake) => {
                if pinged.is_some() {
                    break "no answer to ping";
                }
                if outbox.push(Message::Ping(Default::default())).is_err() {
                    break "not reading";
                }
                pinged = Some(Instant::now());
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
    kill.cancel();
    if registry.remove(&user, id) {
        shared.seed.session.user_changed(user).await;
    }
    tracing::info!(%user, %peer, reason = end, "HotPocket user disconnected");
}

/// One signed-in client's state.
#[derive(Debug)]
struct Session {
    protocol: Protocol,
    user: [u8; 32],
    bad_messages: u32,
    /// The channels it subscribed to; shared with the registry, where the announcers look.
    subscriptions: std::sync::Arc<crate::registry::Subscriptions>,
}

/// What one message leads to: replies now, and perhaps one later (a signed input's fate).
#[derive(Default)]
struct Handled {
    replies: Vec<Outgoing>,
    status: Option<BoxFuture<'static, Option<Outgoing>>>,
}

impl From<Vec<Outgoing>> for Handled {
    fn from(replies: Vec<Outgoing>) -> Self {
        Self { replies, status: None }
    }
}

impl Session {
    /// Answers one message; what is not a request the node understands counts as bad.
    async fn handle(&mut self, frame: &[u8], shared: &HotPocketShared) -> Handled {
        let message = match Incoming::decode(self.protocol, frame) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(error = %e, "a HotPocket message that cannot be read");
                self.bad_messages += 1;
                return Handled::default();
            }
        };
        match message.kind() {
            "contract_input" => self.contract_input(&message, shared).await,
            "ledger_query" => self.ledger_query(&message, shared).await,
            "contract_read_request" => self.read_request(&message, shared),
            "stat" => match shared.view.state().await {
                Some(state) => vec![super::replies::stat(shared, &state)].into(),
                None => Handled::default(),
            },
            "lcl" => match shared.view.state().await {
                Some(state) => vec![super::replies::lcl(&state)].into(),
                None => Handled::default(),
            },
            "subscription" => {
                let enabled = message.bool("enabled").unwrap_or(false);
                let flag = match message.str("channel") {
                    Some("unl_change") => Some(&self.subscriptions.unl_change),
                    Some("ledger_event") => Some(&self.subscriptions.ledger_event),
                    Some("health_event") => Some(&self.subscriptions.health_event),
                    _ => None,
                };
                match flag {
                    Some(flag) => flag.store(enabled, std::sync::atomic::Ordering::Relaxed),
                    None => self.bad_messages += 1,
                }
                Handled::default()
            }
            other => {
                tracing::debug!(kind = other, "a HotPocket request this node does not serve yet");
                self.bad_messages += 1;
                Handled::default()
            }
        }
    }

    /// `contract_read_request`: a read-only run of the contract with the request as this user's
    /// input, on a copy of the last committed state (execd); it counts against the user's
    /// `pubmaxsize` and `pubmaxcpm`. No answer when the run fails (the client gives up after its
    /// own timeout).
    fn read_request(&mut self, message: &Incoming, shared: &HotPocketShared) -> Handled {
        let (Some(id), Some(content)) = (message.str("id"), message.payload("content")) else {
            self.bad_messages += 1;
            return Handled::default();
        };
        let id = id.chars().take(128).collect::<String>();
        let user = hp_cfg::PublicKeyHex(self.user);
        if shared.seed.limits.check(user, content.len(), std::time::Instant::now()).is_err() {
            return Handled::default();
        }
        let mut execd = shared.execd.clone();
        let request = hp_proto::v1::ReadRequest { user: self.user.to_vec().into(), request: content.into() };
        let answer = async move {
            let mut call = tonic::Request::new(request);
            call.set_timeout(READ_TIMEOUT);
            match execd.read(call).await {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    // The client takes one answer per request: the first message.
                    let framing = Framing::from_flag(reply.length_prefixed);
                    let first = hp_ledger::outputs::messages(framing, &reply.output).first().copied().unwrap_or(&[]);
                    Some(super::replies::read_response(&id, first))
                }
                Err(status) => {
                    tracing::debug!(error = %status.message(), "a read request failed");
                    None
                }
            }
        };
        Handled { replies: Vec::new(), status: Some(answer.boxed()) }
    }

    /// `ledger_query` by `seq_no` (the one filter hotpocket-js-client uses), with the inputs
    /// and outputs if asked; each query counts against the user's `pubmaxcpm`.
    async fn ledger_query(&mut self, message: &Incoming, shared: &HotPocketShared) -> Handled {
        let (Some(id), Some(seq)) = (message.str("id"), message.nested_u64("params", "seq_no")) else {
            self.bad_messages += 1;
            return Handled::default();
        };
        if message.str("filter_by") != Some("seq_no") {
            self.bad_messages += 1;
            return Handled::default();
        }
        let id = id.chars().take(128).collect::<String>();
        let user = hp_cfg::PublicKeyHex(self.user);
        if shared.seed.limits.check(user, 0, std::time::Instant::now()).is_err() {
            return Handled::default();
        }
        let include = message.strings("include");
        let query = hp_proto::v1::LedgerQuery {
            seq,
            inputs: include.iter().any(|i| i == "inputs"),
            outputs: include.iter().any(|i| i == "outputs"),
        };
        let reply = shared.view.ledger(query).await;
        vec![super::replies::ledger_query_result(&id, reply.as_ref())].into()
    }

    /// `contract_input`: the container, its window against the last closed ledger and the input
    /// limits here; then consensusd checks the user's signature over the container (with the
    /// other inputs that came with it, as one batch: the node's one check of it, as every
    /// other node makes its own) and takes it, and its fate (`bad_sig`, in which ledger, or why
    /// not) is the `contract_input_status` that follows.
    async fn contract_input(&mut self, message: &Incoming, shared: &HotPocketShared) -> Handled {
        let (Some(container), Some(sig)) = (message.payload("input_container"), message.bytes("sig")) else {
            self.bad_messages += 1;
            return Handled::default();
        };
        let input_hash = *blake3::hash(&sig).as_bytes();
        let rejected = |reason: &str| Handled::from(vec![super::replies::input_rejected(&input_hash, reason)]);
        let Ok(signature) = <[u8; 64]>::try_from(sig.as_slice()) else { return rejected("bad_sig") };
        let format = match self.protocol {
            Protocol::Json => ContainerFormat::Json,
            Protocol::Bson => ContainerFormat::Bson,
        };
        let signed = UserSigned { format, container: container.into(), signature };
        let (input, max_ledger_seq) = match parse_container(format, &signed.container) {
            Ok(opened) => (input_bytes(&signed.container, opened.input), opened.max_ledger_seq),
            Err(why) => return rejected(&why.to_string()),
        };
        let Some(state) = shared.view.state().await else { return rejected("node_unavailable") };
        // The cached view may be a moment old (`node_view::FRESH_FOR`); the statuses and outputs
        // that passed through here are not, and the client knows of no ledger newer than those.
        let lcl = state.lcl_seq.max(shared.statuses.seen_ledger());
        if let Err(why) = check_window(max_ledger_seq, lcl + 1, state.max_input_ledger_offset) {
            return rejected(&why.to_string());
        }
        let user = hp_cfg::PublicKeyHex(self.user);
        if let Err(e) = shared.seed.limits.check(user, input.len(), std::time::Instant::now()) {
            return rejected(&e.to_string());
        }
        let Some(fate) = shared.statuses.wait(input_hash) else { return rejected("already_submitted") };
        let ack = shared.seed.session.submit_signed(user, input, Some(signed)).await;
        let statuses = shared.statuses.clone();
        let status = async move {
            match ack.await {
                Ok(crate::session::Ack::Accepted) => {}
                Ok(crate::session::Ack::Refused(reason)) => {
                    statuses.forget(&input_hash);
                    return Some(super::replies::input_rejected(&input_hash, &reason));
                }
                _ => {
                    statuses.forget(&input_hash);
                    return Some(super::replies::input_rejected(&input_hash, "node_unavailable"));
                }
            }
            match tokio::time::timeout(STATUS_WAIT, fate).await {
                Ok(Ok(Ok((seq, hash)))) => Some(super::replies::input_accepted(&input_hash, seq, &hash)),
                Ok(Ok(Err(why))) => Some(super::replies::input_rejected(&input_hash, &why)),
                _ => {
                    statuses.forget(&input_hash);
                    None
                }
            }
        };
        Handled { replies: Vec::new(), status: Some(status.boxed()) }
    }
}

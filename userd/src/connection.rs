//! One task per user connection: the websocket upgrade and the handshake under one deadline,
//! then binary mode until the user leaves, is replaced, stops answering, or the node stops.
//!
//! Binary mode runs a reader (this task) and a writer ([`crate::outbox::write_loop`]). The
//! reader takes input frames, at most `max_in_flight` awaiting their acks (then it stops reading,
//! which pushes back on the user through TCP), pings an idle user and drops one that does not
//! answer. Whatever ends the connection, its registry entry is removed and consensusd told.

use crate::admission::{Pending, SignedIn};
use crate::handshake::{self, Challenge};
use crate::limits::InputLimits;
use crate::metered::{Metered, PRE_AUTH_BUDGET};
use crate::metrics::UserdMetrics;
use crate::outbox::{OutboxLimits, WriterEnd, outbox, write_loop};
use crate::registry::{ConnHandle, Registry};
use crate::session::SessionHandle;
use crate::{frame, input};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use hp_cfg::PublicKeyHex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_util::sync::CancellationToken;

/// After sending a close frame, how long to keep reading for the user's answer. Reading on
/// lets the error frame and the close reach the user instead of being cut off by a reset.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// How connections behave; built from the config by [`crate::Settings::from_config`].
#[derive(Debug, Clone)]
pub struct ConnSettings {
    /// The upgrade, challenge and helo must be done within this (`handshake_timeout_ms`).
    pub handshake_timeout: Duration,
    /// A user silent this long is pinged.
    pub ping_interval: Duration,
    /// A pinged user silent this long is dropped.
    pub pong_timeout: Duration,
    /// How long an input waits for consensusd's ack.
    pub ack_timeout: Duration,
    /// Inputs per connection awaiting their ack before the reader pauses.
    pub max_in_flight: usize,
    pub outbox: OutboxLimits,
    /// The websocket limits; the message size is set a little above `pubmaxsize`.
    pub websocket: WebSocketConfig,
}

/// The websocket message limit for a given `pubmaxsize`: a bit above it, so that a somewhat
/// larger input is read whole and refused with an error frame naming the limit, while a far
/// larger one closes the connection. Never below what a helo needs.
pub fn websocket_limit(pubmaxsize: u64) -> usize {
    let max = usize::try_from(pubmaxsize).unwrap_or(usize::MAX);
    max.saturating_add((max / 4).max(64 * 1024))
}

impl ConnSettings {
    pub fn new(pubmaxsize: u64, handshake_timeout: Duration) -> Self {
        let limit = websocket_limit(pubmaxsize);
        // Small read buffer: hundreds of idle connections must stay cheap; large inputs are
        // still read in one frame, the buffer only sets the read chunk.
        let websocket = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit));
        Self {
            handshake_timeout,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            ack_timeout: hp_daemon::ipc::CALL_TIMEOUT,
            max_in_flight: 64,
            outbox: OutboxLimits::default(),
            websocket,
        }
    }
}

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    pub settings: ConnSettings,
    pub registry: Registry,
    pub session: SessionHandle,
    pub limits: InputLimits,
    pub metrics: UserdMetrics,
}

/// Serves one accepted connection to its end. `pending` is its admission slot: it becomes a
/// signed-in slot at the end of the handshake, or the user is told the node is full.
pub async fn serve<S>(stream: S, peer: SocketAddr, pending: Pending, shared: Arc<Shared>, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = Instant::now() + shared.settings.handshake_timeout;
    let stream = Metered::new(stream, PRE_AUTH_BUDGET);
    let Some(mut ws) = upgrade(stream, shared.settings.websocket, deadline, peer, &shutdown).await else { return };
    let user = match handshake(&mut ws, deadline, &shared.settings, &shutdown).await {
        Ok(user) => user,
        Err(Refusal::Silent) => return,
        Err(Refusal::Tell(reason, code)) => {
            tracing::debug!(%peer, reason, "handshake refused");
            refuse(ws, &reason, code).await;
            return;
        }
    };
    let signed_in = match pending.sign_in() {
        Ok(signed_in) => signed_in,
        Err(refused) => {
            tracing::debug!(%peer, reason = %refused, "signed-in pool full; user refused");
            refuse(ws, &refused.to_string(), CloseCode::Again).await;
            return;
        }
    };
    ws.get_mut().lift();
    binary_mode(ws, user, peer, &shared, &shutdown).await;
    drop::<SignedIn>(signed_in);
}

/// The websocket upgrade of an accepted connection, by `deadline`; `None` (logged) when it
/// fails, times out or the node stops first. Shared by the seed and the HotPocket ports.
pub async fn upgrade<S>(
    stream: S,
    config: WebSocketConfig,
    deadline: Instant,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) -> Option<WebSocketStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let upgrade = tokio_tungstenite::accept_async_with_config(stream, Some(config));
    tokio::select! {
        _ = shutdown.cancelled() => None,
        upgraded = timeout_at(deadline, upgrade) => match upgraded {
            Ok(Ok(ws)) => Some(ws),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "websocket upgrade failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "websocket upgrade timed out");
                None
            }
        },
    }
}

enum Refusal {
    /// The peer went away or broke the protocol below the handshake: just drop it.
    Silent,
    /// Send an error frame with this reason, then close.
    Tell(String, CloseCode),
}

/// docs/user-protocol.md steps 1–3: send the challenge, take one helo frame, verify it.
async fn handshake<S>(
    ws: &mut WebSocketStream<S>,
    deadline: Instant,
    settings: &ConnSettings,
    shutdown: &CancellationToken,
) -> Result<PublicKeyHex, Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let challenge = Challenge::generate();
    let greeting = Message::text(handshake::challenge_frame(&challenge));
    if !matches!(timeout_at(deadline, ws.send(greeting)).await, Ok(Ok(()))) {
        return Err(Refusal::Silent);
    }
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Err(Refusal::Tell("node shutting down".into(), CloseCode::Away)),
            next = timeout_at(deadline, ws.next()) => next,
        };
        let frame = match next {
            Err(_) => {
                return Err(Refusal::Tell(frame::handshake_timeout(settings.handshake_timeout), CloseCode::Policy));
            }
            Ok(None) | Ok(Some(Err(_))) => return Err(Refusal::Silent),
            Ok(Some(Ok(message))) => message,
        };
        let verified = match &frame {
            Message::Text(text) => handshake::verify_helo(text.as_bytes(), &challenge),
            Message::Binary(data) => handshake::verify_helo(data, &challenge),
            Message::Close(_) => return Err(Refusal::Silent),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        return verified.map_err(|e| Refusal::Tell(e.to_string(), CloseCode::Policy));
    }
}

/// Sends the error frame and a close frame, then reads on briefly for the user's close.
async fn refuse<S>(mut ws: WebSocketStream<S>, reason: &str, code: CloseCode)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let until = Instant::now() + CLOSE_LINGER;
    let error = Message::text(frame::error_frame(reason));
    if !matches!(timeout_at(until, ws.send(error)).await, Ok(Ok(()))) {
        return;
    }
    let close = CloseFrame { code, reason: "".into() };
    if !matches!(timeout_at(until, ws.close(Some(close))).await, Ok(Ok(()))) {
        return;
    }
    while let Ok(Some(Ok(_))) = timeout_at(until, ws.next()).await {}
}

/// docs/user-protocol.md steps 4–5, until the connection ends.
async fn binary_mode<S>(
    ws: WebSocketStream<S>,
    user: PublicKeyHex,
    peer: SocketAddr,
    shared: &Shared,
    shutdown: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = &shared.settings;
    let id = shared.registry.next_id();
    let kill = CancellationToken::new();
    let (outbox, outbox_rx) = outbox(settings.outbox, kill.clone());
    let (sink, mut stream) = ws.split();
    let mut writer = tokio::spawn(write_loop(sink, outbox_rx, kill.clone(), settings.outbox.write_timeout));
    if let Some(old) = shared
        .registry
        .insert(user, ConnHandle { id, outbox: outbox.clone(), hotpocket: None, subscriptions: Default::default() })
    {
        tracing::info!(%user, old, "user reconnected; the older connection is replaced");
    }
    shared.session.user_changed(user).await;
    tracing::info!(%user, %peer, "user connected");

    let mut acks = FuturesUnordered::new();
    let mut last_heard = Instant::now();
    let mut pinged: Option<Instant> = None;
    // Set once a close frame is on its way: inputs are no longer taken.
    let mut closing = false;
    let mut writer_done = false;
    let mut linger_until: Option<Instant> = None;
    let end: &str = loop {
        let wake = match (linger_until, pinged) {
            (Some(until), _) => until,
            (None, Some(at)) => at + settings.pong_timeout,
            (None, None) => last_heard + settings.ping_interval,
        };
        let can_read = acks.len() < settings.max_in_flight;
        tokio::select! {
            biased;
            _ = kill.cancelled() => break "dropped",
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                outbox.close(None, CloseCode::Away);
            }
            written = &mut writer, if !writer_done => {
                writer_done = true;
                match written {
                    Ok(WriterEnd::Closed) => { closing = true; linger_until = Some(Instant::now() + CLOSE_LINGER); }
                    _ => break "write failed",
                }
            }
            Some(answer) = acks.next(), if !acks.is_empty() => {
                let answer: Option<String> = answer;
                if let Some(reason) = answer
                    && !closing
                    && outbox.push(Message::text(frame::error_frame(&reason))).is_err()
                {
                    break "not reading";
                }
            }
            message = stream.next(), if can_read => {
                let message = match message {
                    None => break "closed",
                    Some(Err(e)) => {
                        tracing::debug!(%user, error = %e, "websocket read failed");
                        break "read failed";
                    }
                    Some(Ok(message)) => message,
                };
                last_heard = Instant::now();
                pinged = None;
                let data: Bytes = match message {
                    Message::Binary(data) => data,
                    Message::Text(text) => text.into(),
                    // tungstenite answers pings and the closing handshake itself.
                    Message::Close(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                };
                if closing {
                    continue;
                }
                match input::submit(&shared.limits, &shared.metrics, &shared.session, user, data, settings.ack_timeout).await {
                    Ok(ack) => acks.push(ack),
                    Err(reason) => {
                        if outbox.push(Message::text(frame::error_frame(&reason))).is_err() {
                            break "not reading";
                        }
                    }
                }
            }
            _ = sleep_until(wake) => {
                if linger_until.is_some() {
                    break "closed";
                }
                if pinged.is_some() {
                    break "no answer to ping";
                }
                if outbox.push(Message::Ping(Bytes::new())).is_err() {
                    break "not reading";
                }
                pinged = Some(Instant::now());
            }
        }
    };
    kill.cancel();
    if !writer_done {
        let _ = timeout(Duration::from_secs(1), writer).await;
    }
    if shared.registry.remove(&user, id) {
        shared.session.user_changed(user).await;
    }
    tracing::info!(%user, %peer, reason = end, "user disconnected");
}

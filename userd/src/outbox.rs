//! A connection's bounded outgoing queue, and the writer task that drains it into the socket.
//!
//! Everything a connection sends after the handshake — outputs, error frames, pings, the
//! closing frame — goes through its [`Outbox`]. The queue is bounded in frames and in bytes: a
//! user that stops reading fills it, and the next push drops the connection instead of growing
//! memory or making the sender (the session task, which serves every user) wait.

use futures::{Sink, SinkExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

/// How much one connection may have queued.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Frames queued at most.
    pub frames: usize,
    /// Bytes queued at most; one frame larger than this still passes when the queue is empty.
    pub bytes: usize,
    /// A single write that takes longer than this drops the connection.
    pub write_timeout: Duration,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        // A few rounds' outputs for a user that reads a little late; a user that does not read
        // at all reaches either bound quickly.
        Self { frames: 1024, bytes: 32 * 1024 * 1024, write_timeout: Duration::from_secs(20) }
    }
}

/// What the writer task sends.
#[derive(Debug)]
pub enum Outgoing {
    Frame(Message),
    /// Optionally an error frame with this reason, then a close frame; the writer stops.
    Close {
        reason: Option<String>,
        code: CloseCode,
    },
}

/// The queue was full: the connection has been dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the user is not reading; connection dropped")]
pub struct Overflow;

/// The sending side, cloned into the registry so that the session can reach the user.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    /// Cancelled to drop the connection at once (overflow, failed write).
    kill: CancellationToken,
}

/// The receiving side, owned by the writer task.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
}

/// A new queue for one connection; `kill` is the connection's drop-now token.
pub fn outbox(limits: OutboxLimits, kill: CancellationToken) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(limits.frames.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (
        Outbox { tx, queued_bytes: queued_bytes.clone(), max_bytes: limits.bytes, kill },
        OutboxReceiver { rx, queued_bytes },
    )
}

impl Outbox {
    /// Queues one frame, or drops the connection when the queue is full.
    pub fn push(&self, message: Message) -> Result<(), Overflow> {
        let len = message.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.kill.cancel();
            return Err(Overflow);
        }
        if self.tx.try_send(Outgoing::Frame(message)).is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.kill.cancel();
            return Err(Overflow);
        }
        Ok(())
    }

    /// Queues an error frame (when `reason` is given) and a close frame; the connection ends
    /// after they are written. A full queue drops the connection instead.
    pub fn close(&self, reason: Option<&str>, code: CloseCode) {
        let item = Outgoing::Close { reason: reason.map(str::to_string), code };
        if self.tx.try_send(item).is_err() {
            self.kill.cancel();
        }
    }

    /// Drops the connection without a closing handshake.
    pub fn kill(&self) {
        self.kill.cancel();
    }

    /// Whether the connection has been dropped.
    pub fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }
}

impl OutboxReceiver {
    async fn recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.recv().await?;
        if let Outgoing::Frame(m) = &item {
            self.queued_bytes.fetch_sub(m.len(), Ordering::AcqRel);
        }
        Some(item)
    }

    /// The next queued frame, if one is queued now (closes are skipped).
    #[cfg(test)]
    pub(crate) fn try_frame(&mut self) -> Option<Message> {
        loop {
            match self.rx.try_recv().ok()? {
                Outgoing::Frame(m) => return Some(m),
                Outgoing::Close { .. } => continue,
            }
        }
    }
}

/// How the writer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WriterEnd {
    /// A close frame was sent: the reader may wait briefly for the user's answer.
    Closed,
    /// The connection was killed, a write failed or timed out: drop it now.
    Dropped,
}

/// Drains the queue into the websocket until a close is sent, the connection is killed, or a
/// write fails or stalls past `write_timeout`. Any end but a clean close kills the connection.
pub async fn write_loop<S>(
    mut sink: S,
    mut rx: OutboxReceiver,
    kill: CancellationToken,
    write_timeout: Duration,
) -> WriterEnd
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    let end = loop {
        let item = tokio::select! {
            biased;
            _ = kill.cancelled() => break WriterEnd::Dropped,
            item = rx.recv() => item,
        };
        let (message, last) = match item {
            None => break WriterEnd::Dropped,
            Some(Outgoing::Frame(m)) => (m, false),
            Some(Outgoing::Close { reason, code }) => {
                if let Some(reason) = reason {
                    let frame = Message::text(crate::frame::error_frame(&reason));
                    if !send(&mut sink, frame, &kill, write_timeout).await {
                        break WriterEnd::Dropped;
                    }
                }
                // The error frame carries the reason; the close frame only says why in general.
                let reason = if code == CloseCode::Away { "node shutting down" } else { "" };
                (Message::Close(Some(CloseFrame { code, reason: reason.into() })), true)
            }
        };
        if !send(&mut sink, message, &kill, write_timeout).await {
            break WriterEnd::Dropped;
        }
        if last {
            break WriterEnd::Closed;
        }
    };
    if end == WriterEnd::Dropped {
        kill.cancel();
    }
    end
}

async fn send<S>(sink: &mut S, message: Message, kill: &CancellationToken, limit: Duration) -> bool
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    tokio::select! {
        biased;
        _ = kill.cancelled() => false,
        sent = tokio::time::timeout(limit, sink.send(message)) => matches!(sent, Ok(Ok(()))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn small() -> OutboxLimits {
        OutboxLimits { frames: 3, bytes: 100, write_timeout: Duration::from_secs(1) }
    }

    #[test]
    fn frame_bound_drops_the_connection() {
        let kill = CancellationToken::new();
        let (outbox, _rx) = outbox(small(), kill.clone());
        for _ in 0..3 {
            outbox.push(Message::binary(vec![0u8; 1])).unwrap();
        }
        assert_eq!(outbox.push(Message::binary(vec![0u8; 1])), Err(Overflow));
        assert!(kill.is_cancelled());
    }

    #[test]
    fn byte_bound_drops_the_connection_but_one_large_frame_passes() {
        let kill = CancellationToken::new();
        let (outbox, _rx) = outbox(small(), kill.clone());
        outbox.push(Message::binary(vec![0u8; 500])).unwrap();
        assert!(!kill.is_cancelled());
        assert_eq!(outbox.push(Message::binary(vec![0u8; 1])), Err(Overflow));
        assert!(kill.is_cancelled());
    }

    #[tokio::test]
    async fn received_frames_free_their_bytes() {
        let kill = CancellationToken::new();
        let (outbox, mut rx) = outbox(small(), kill.clone());
        outbox.push(Message::binary(vec![0u8; 60])).unwrap();
        assert!(rx.recv().await.is_some());
        outbox.push(Message::binary(vec![0u8; 60])).unwrap();
        assert!(!kill.is_cancelled());
    }
}

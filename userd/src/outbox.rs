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
        Some(self.taken(item))
    }

    /// The next item if one is queued now.
    fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.try_recv().ok()?;
        Some(self.taken(item))
    }

    fn taken(&self, item: Outgoing) -> Outgoing {
        if let Outgoing::Frame(m) = &item {
            self.queued_bytes.fetch_sub(m.len(), Ordering::AcqRel);
        }
        item
    }

    /// The next queued frame, if one is queued now (closes are skipped).
    #[cfg(test)]
    pub(crate) fn try_frame(&mut self) -> Option<Message> {
        loop {
            match self.try_recv()? {
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

/// Frames written before one flush at most: those already queued go out in one write.
const FRAMES_PER_FLUSH: usize = 64;

/// Drains the queue into the websocket until a close is sent, the connection is killed, or a
/// write fails or stalls past `write_timeout`. Any end but a clean close kills the connection.
/// Frames queued together (the statuses of one ledger's inputs, say) are written with one
/// flush, so one write call, instead of one each.
pub async fn write_loop<S>(
    mut sink: S,
    mut rx: OutboxReceiver,
    kill: CancellationToken,
    write_timeout: Duration,
) -> WriterEnd
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    /// What ended a run of frames written together.
    enum Stop {
        /// Nothing more queued for now.
        Drained,
        /// A write failed.
        Failed,
        Close(Option<String>, CloseCode),
    }
    let end = loop {
        let mut next = tokio::select! {
            biased;
            _ = kill.cancelled() => break WriterEnd::Dropped,
            item = rx.recv() => match item {
                None => break WriterEnd::Dropped,
                item => item,
            },
        };
        let mut fed = 0;
        let stop = loop {
            match next {
                None => break Stop::Drained,
                Some(Outgoing::Frame(message)) => {
                    if !within(&kill, write_timeout, sink.feed(message)).await {
                        break Stop::Failed;
                    }
                    fed += 1;
                }
                Some(Outgoing::Close { reason, code }) => break Stop::Close(reason, code),
            }
            next = if fed < FRAMES_PER_FLUSH { rx.try_recv() } else { None };
        };
        if matches!(stop, Stop::Failed) || (fed > 0 && !within(&kill, write_timeout, sink.flush()).await) {
            break WriterEnd::Dropped;
        }
        if let Stop::Close(reason, code) = stop {
            if let Some(reason) = reason {
                let frame = Message::text(crate::frame::error_frame(&reason));
                if !within(&kill, write_timeout, sink.send(frame)).await {
                    break WriterEnd::Dropped;
                }
            }
            // The error frame carries the reason; the close frame only says why in general.
            let reason = if code == CloseCode::Away { "node shutting down" } else { "" };
            let frame = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
            break if within(&kill, write_timeout, sink.send(frame)).await {
                WriterEnd::Closed
            } else {
                WriterEnd::Dropped
            };
        }
    };
    if end == WriterEnd::Dropped {
        kill.cancel();
    }
    end
}

/// Whether `write` finished before the connection was killed and within `limit`.
async fn within<F>(kill: &CancellationToken, limit: Duration, write: F) -> bool
where
    F: std::future::Future<Output = Result<(), WsError>>,
{
    tokio::select! {
        biased;
        _ = kill.cancelled() => false,
        done = tokio::time::timeout(limit, write) => matches!(done, Ok(Ok(()))),
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

    /// A sink that records which frames each flush wrote.
    #[derive(Default)]
    struct Recorder {
        pending: Vec<Message>,
        writes: std::sync::Arc<std::sync::Mutex<Vec<Vec<Message>>>>,
    }

    impl Sink<Message> for Recorder {
        type Error = WsError;
        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), WsError>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn start_send(mut self: std::pin::Pin<&mut Self>, item: Message) -> Result<(), WsError> {
            self.pending.push(item);
            Ok(())
        }
        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), WsError>> {
            let written = std::mem::take(&mut self.pending);
            if !written.is_empty() {
                self.writes.lock().unwrap().push(written);
            }
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), WsError>> {
            self.poll_flush(cx)
        }
    }

    #[tokio::test]
    async fn frames_queued_together_are_written_with_one_flush_and_the_close_after_them() {
        let kill = CancellationToken::new();
        let limits = OutboxLimits { frames: 200, bytes: 1 << 20, write_timeout: Duration::from_secs(5) };
        let (outbox, rx) = outbox(limits, kill.clone());
        for i in 0..FRAMES_PER_FLUSH + 6 {
            outbox.push(Message::text(i.to_string())).unwrap();
        }
        outbox.close(Some("bye"), CloseCode::Normal);
        let sink = Recorder::default();
        let writes = sink.writes.clone();
        assert_eq!(write_loop(sink, rx, kill, limits.write_timeout).await, WriterEnd::Closed);
        let writes = writes.lock().unwrap();
        let sizes: Vec<usize> = writes.iter().map(Vec::len).collect();
        // At most FRAMES_PER_FLUSH at once; then the error frame and the close, each alone.
        assert_eq!(sizes, [FRAMES_PER_FLUSH, 6, 1, 1]);
        let texts: Vec<String> = writes[..2].iter().flatten().map(|m| m.to_text().unwrap().to_string()).collect();
        assert_eq!(texts, (0..FRAMES_PER_FLUSH + 6).map(|i| i.to_string()).collect::<Vec<_>>(), "in order");
        assert!(writes[3][0].is_close());
    }
}

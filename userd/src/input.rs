//! Input frames (docs/user-protocol.md steps 4–5): after the handshake every frame a user sends, text or
//! binary, is one input, byte for byte. It passes the limits, goes to consensusd as a
//! `SubmitInput`, and the user hears back only if it was not accepted.

use crate::frame;
use crate::limits::{InputLimits, LimitError};
use crate::metrics::{Refused, UserdMetrics};
use crate::session::{Ack, SessionHandle};
use bytes::Bytes;
use hp_cfg::PublicKeyHex;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Checks one input against the limits and hands it to the session. Returns the reason to send
/// the user at once (a limit), or a future that resolves to the reason to send later (`None`
/// when consensusd accepted it).
pub async fn submit(
    limits: &InputLimits,
    metrics: &UserdMetrics,
    session: &SessionHandle,
    user: PublicKeyHex,
    data: Bytes,
    ack_timeout: Duration,
) -> Result<impl Future<Output = Option<String>> + use<>, String> {
    let len = data.len();
    limits.check(user, len, Instant::now()).map_err(|e| {
        let reason = match e {
            LimitError::TooLarge { .. } => Refused::TooLarge,
            LimitError::TooFast { .. } => Refused::RateLimit,
        };
        metrics.refused(reason, len);
        e.to_string()
    })?;
    // The session's queue is bounded; a session that cannot keep up refuses rather than
    // holding this connection's reader past the deadline.
    let answer = tokio::time::timeout(ack_timeout, session.submit(user, data)).await.map_err(|_| {
        metrics.refused(Refused::Busy, len);
        frame::BUSY.to_string()
    })?;
    Ok(await_ack(answer, ack_timeout))
}

/// Every inter-process call has a deadline (docs/ARCHITECTURE.md): an input whose ack does not come in
/// time is reported to the user as unconfirmed.
async fn await_ack(answer: oneshot::Receiver<Ack>, limit: Duration) -> Option<String> {
    match tokio::time::timeout(limit, answer).await {
        Ok(Ok(Ack::Accepted)) => None,
        Ok(Ok(Ack::Refused(reason))) => Some(frame::refused(&reason)),
        Ok(Ok(Ack::Unavailable)) | Ok(Err(_)) => Some(frame::CONSENSUS_UNAVAILABLE.to_string()),
        Ok(Ok(Ack::Unknown)) => Some(frame::SESSION_BROKE.to_string()),
        Err(_) => Some(frame::ack_timeout(limit)),
    }
}

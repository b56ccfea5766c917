//! The error text frame of docs/user-protocol.md, and the reasons userd puts in it after the handshake.
//!
//! The challenge frame lives with the handshake ([`crate::handshake::challenge_frame`]); outputs
//! are plain binary frames and need no formatting.

use std::time::Duration;

/// `{"hotpocket":0.1,"type":"error","reason":"<why>"}`, byte for byte, with `reason` escaped as
/// a JSON string. Built by hand because the field order is part of the format.
pub fn error_frame(reason: &str) -> String {
    let reason = serde_json::Value::String(reason.to_string());
    format!(r#"{{"hotpocket":0.1,"type":"error","reason":{reason}}}"#)
}

/// The reason sent when an input is over `pubmaxsize`.
pub fn over_pubmaxsize(len: usize, max: u64) -> String {
    format!("input refused: {len} bytes is over the pubmaxsize limit of {max} bytes")
}

/// The reason sent when a user sends inputs faster than `pubmaxcpm`.
pub fn over_pubmaxcpm(cpm: u64) -> String {
    format!("input refused: over the pubmaxcpm limit of {cpm} inputs per minute; slow down")
}

/// The reason sent when consensusd refused an input.
pub fn refused(reason: &str) -> String {
    format!("input refused: {reason}")
}

/// The reason sent while the session with consensusd is down.
pub const CONSENSUS_UNAVAILABLE: &str =
    "input not accepted: the node's consensus service is unavailable; send it again later";

/// The reason sent for an input handed to consensusd when the session broke before its ack.
pub const SESSION_BROKE: &str = "input not confirmed: the connection to the node's consensus service broke; \
     it may or may not be processed";

/// The reason sent when the session cannot take more inputs in time.
pub const BUSY: &str = "input not accepted: the node is too busy; send it again later";

/// The reason sent when consensusd did not answer an input in time.
pub fn ack_timeout(after: Duration) -> String {
    format!(
        "input not confirmed: the node's consensus service did not answer within {}; it may or may not be processed",
        span(after)
    )
}

/// "10 s", or "300 ms" when not whole seconds.
fn span(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{} ms", d.as_millis()) }
}

/// The reason sent to a connection that a newer one with the same key replaces (§3 step 5).
pub const REPLACED: &str = "replaced by a newer connection with the same public key";

/// The reason sent when the handshake is not completed in time.
pub fn handshake_timeout(after: Duration) -> String {
    format!("handshake not completed within {}", span(after))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn error_frame_is_byte_exact_and_escaped() {
        assert_eq!(error_frame("bad"), r#"{"hotpocket":0.1,"type":"error","reason":"bad"}"#);
        assert_eq!(error_frame("a \"q\"\n"), r#"{"hotpocket":0.1,"type":"error","reason":"a \"q\"\n"}"#);
    }

    #[test]
    fn limit_reasons_name_the_limit() {
        assert!(over_pubmaxsize(10, 5).contains("pubmaxsize"));
        assert!(over_pubmaxcpm(5).contains("pubmaxcpm"));
    }
}

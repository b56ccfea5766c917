//! Output frames (docs/user-protocol.md step 4): each certified output consensusd streams goes to its
//! user, if connected here, as one binary frame per message carrying the contract's bytes
//! unchanged — or, for a HotPocket 0.6 connection, as one `contract_output` listing the
//! ledger's messages for that user, with its proof (docs/hotpocket-protocol.md). A message is
//! all the contract wrote, or, for a `hotpocket`-format contract, one length-prefixed message.

use crate::registry::Registry;
use hp_cfg::PublicKeyHex;
use hp_ledger::Framing;
use hp_ledger::outputs::messages;
use hp_proto::v1::OutputBatch;
use tokio_tungstenite::tungstenite::Message;

/// What became of one batch, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Frames queued to connected users.
    pub sent: usize,
    /// Outputs for users not connected to this node (they are connected elsewhere, or left).
    pub absent: usize,
    /// Users dropped because their outgoing queue was full.
    pub dropped: usize,
    /// Outputs with a malformed public key.
    pub malformed: usize,
}

/// Queues every output of `batch` to its user. Never waits: a user whose queue is full is
/// dropped (see [`crate::outbox`]), so one slow reader cannot hold up the others.
pub fn deliver(registry: &Registry, batch: OutputBatch) -> Delivery {
    let mut delivery = Delivery::default();
    let framing = Framing::from_flag(batch.length_prefixed);
    for output in batch.outputs {
        let Ok(key) = <[u8; 32]>::try_from(output.pubkey.as_ref()) else {
            tracing::warn!(seq = batch.seq, len = output.pubkey.len(), "output for a malformed public key ignored");
            delivery.malformed += 1;
            continue;
        };
        let user = PublicKeyHex(key);
        // No frame when the contract wrote nothing (§3 step 4).
        if output.data.is_empty() {
            continue;
        }
        let Some(handle) = registry.get(&user) else {
            delivery.absent += 1;
            continue;
        };
        let messages = messages(framing, &output.data);
        let frames: Vec<Message> = match handle.hotpocket {
            None if framing == Framing::Whole => vec![Message::Binary(output.data.clone())],
            None => messages.iter().map(|m| Message::Binary(output.data.slice_ref(m))).collect(),
            Some(protocol) => {
                vec![
                    crate::hotpocket::replies::contract_output(batch.seq, &key, &messages, batch.proof.as_ref())
                        .encode(protocol),
                ]
            }
        };
        for frame in frames {
            match handle.outbox.push(frame) {
                Ok(()) => delivery.sent += 1,
                Err(_) => {
                    tracing::warn!(%user, seq = batch.seq, "user is not reading outputs; connection dropped");
                    delivery.dropped += 1;
                    break;
                }
            }
        }
    }
    delivery
}

//! A HotPocket 0.6 user (docs/hotpocket-protocol.md) over `ws://` (`hpport_plain`), JSON
//! messages: the handshake with the node's proof of its key, signed inputs with a growing
//! nonce, and outputs accepted only with a proof from the trusted UNL — what
//! hotpocket-js-client does, so that hp-client and hp-bench can drive that protocol.
//!
//! Outputs come out of [`HpReceiver::recv`] as [`Output::Data`] only once their proof checks
//! out: the output hash, the tree to the root, and valid signatures over the root from at least
//! 80 % of the trusted keys. A refused input comes out as [`Output::Error`] with the node's
//! reason, as does an output whose proof does not hold.

use crate::{ClientError, Output, describe, ws_config};
use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hp_ledger::output_proof::{node, output_hash};
use rand::RngCore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The share of the trusted keys whose signatures an output needs (the JS client's).
pub const PASS_THRESHOLD: f64 = 0.8;

/// The keys an output's proof is checked against (the UNL of a trusted node), decoded once.
#[derive(Default)]
struct Trusted {
    keys: std::collections::HashMap<[u8; 32], VerifyingKey>,
    /// Every key the node listed, decodable or not: what the threshold counts.
    count: usize,
    /// Names this exact set (its keys and count) in [`PROVEN_ROOTS`].
    id: [u8; 32],
}

impl Trusted {
    fn new(unl: &[[u8; 32]]) -> Self {
        let keys = unl.iter().filter_map(|k| Some((*k, VerifyingKey::from_bytes(k).ok()?))).collect();
        let mut named: Vec<[u8; 32]> = unl.to_vec();
        named.sort_unstable();
        let mut count = [0u8; 32];
        count[..8].copy_from_slice(&(unl.len() as u64).to_le_bytes());
        named.push(count);
        Self { keys, count: unl.len(), id: node(&named) }
    }
}

/// Output roots already proven in this process, by trusted set: enough of its keys' signatures
/// over the root verified. Every user of a ledger gets the same root (from every node it is
/// connected to), so a process with many users, such as hp-bench, checks each root's
/// signatures once instead of once per user and connection. Each output's own hash and its
/// path to the root are still checked every time.
static PROVEN_ROOTS: std::sync::LazyLock<std::sync::Mutex<ProvenRoots>> = std::sync::LazyLock::new(Default::default);

/// The last [`ProvenRoots::KEPT`] proven (trusted set, root) pairs.
#[derive(Default)]
struct ProvenRoots {
    order: std::collections::VecDeque<([u8; 32], [u8; 32])>,
    known: std::collections::HashSet<([u8; 32], [u8; 32])>,
}

impl ProvenRoots {
    const KEPT: usize = 4096;

    fn contains(&self, set: &[u8; 32], root: &[u8; 32]) -> bool {
        self.known.contains(&(*set, *root))
    }

    fn insert(&mut self, set: [u8; 32], root: [u8; 32]) {
        if !self.known.insert((set, root)) {
            return;
        }
        self.order.push_back((set, root));
        while self.order.len() > Self::KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.known.remove(&oldest);
            }
        }
    }
}

/// Whether `root` was proven against `trusted` before (a poisoned lock only loses the cache).
fn proven_before(trusted: &Trusted, root: &[u8; 32]) -> bool {
    PROVEN_ROOTS.lock().is_ok_and(|proven| proven.contains(&trusted.id, root))
}

fn note_proven(trusted: &Trusted, root: [u8; 32]) {
    if let Ok(mut proven) = PROVEN_ROOTS.lock() {
        proven.insert(trusted.id, root);
    }
}

/// A signed-in HotPocket user.
pub struct HpClient {
    ws: Ws,
    key: SigningKey,
    trusted: Arc<Trusted>,
    lcl: Arc<AtomicU64>,
    offset: u64,
}

fn ed_hex(key: &[u8; 32]) -> String {
    format!("ed{}", hex::encode(key))
}

fn parse_ed(text: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.strip_prefix("ed")?, &mut key).ok()?;
    Some(key)
}

fn not_json() -> ClientError {
    ClientError::Protocol("a message that is not JSON".into())
}

async fn next_json(ws: &mut Ws) -> Result<Value, ClientError> {
    loop {
        let Some(message) = ws.next().await else { return Err(ClientError::Closed(None)) };
        match message? {
            Message::Text(text) => return serde_json::from_str(text.as_str()).map_err(|_| not_json()),
            Message::Binary(data) => return serde_json::from_slice(&data).map_err(|_| not_json()),
            Message::Close(frame) => return Err(ClientError::Closed(frame.map(|f| f.reason.to_string()))),
            _ => continue,
        }
    }
}

impl HpClient {
    /// Connects to `url` (`ws://host:hpport_plain`) as `key`. With `trusted` set, a node whose
    /// key is not among them is refused, and the UNL a trusted node reports becomes the trusted
    /// set, as the JS client does; without it outputs are taken unchecked.
    /// `max_ledger_offset`: how far past the last closed ledger an input may run (at most the
    /// network's `max_input_ledger_offset`).
    pub async fn connect(
        url: &str,
        key: &SigningKey,
        trusted: Option<&[[u8; 32]]>,
        max_ledger_offset: u64,
    ) -> Result<Self, ClientError> {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
            .await
            .map_err(|e| ClientError::Connect { url: url.to_string(), reason: describe(&e) })?;
        let hello = next_json(&mut ws).await?;
        if hello["type"] != "user_challenge" || !hello["hp_version"].as_str().is_some_and(|v| v.starts_with("0.6.")) {
            return Err(ClientError::Protocol("the node did not send a HotPocket 0.6 user_challenge".into()));
        }
        let challenge = hello["challenge"].as_str().unwrap_or_default();
        let contract_id = hello["contract_id"].as_str().unwrap_or_default();
        let contract_version = hello["contract_version"].as_str().unwrap_or_default();
        let mut ours = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut ours);
        let server_challenge = hex::encode(ours);
        let response = json!({
            "type": "user_challenge_response",
            "sig": hex::encode(key.sign(challenge.as_bytes()).to_bytes()),
            "pubkey": ed_hex(&key.verifying_key().to_bytes()),
            "server_challenge": server_challenge,
            "protocol": "json",
        });
        ws.send(Message::text(response.to_string())).await?;
        let proof = next_json(&mut ws).await?;
        if proof["type"] != "server_challenge_response" {
            return Err(ClientError::Refused("the node did not prove its key".into()));
        }
        let node_key =
            proof["pubkey"].as_str().and_then(parse_ed).ok_or_else(|| ClientError::Protocol("bad node key".into()))?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(proof["sig"].as_str().unwrap_or_default(), &mut sig)
            .map_err(|_| ClientError::Protocol("bad node signature".into()))?;
        let signed = format!("{server_challenge}{contract_id}{contract_version}");
        let verifies = VerifyingKey::from_bytes(&node_key)
            .is_ok_and(|k| k.verify(signed.as_bytes(), &Signature::from_bytes(&sig)).is_ok());
        if !verifies {
            return Err(ClientError::Refused("the node's proof of its key does not verify".into()));
        }
        if trusted.is_some_and(|t| !t.contains(&node_key)) {
            return Err(ClientError::Refused(format!("node {} is not among the trusted keys", ed_hex(&node_key))));
        }
        let unl: Vec<[u8; 32]> =
            proof["unl"].as_array().into_iter().flatten().filter_map(|k| k.as_str().and_then(parse_ed)).collect();
        let trusted = Arc::new(if trusted.is_some() { Trusted::new(&unl) } else { Trusted::default() });
        let lcl = Arc::new(AtomicU64::new(0));
        ws.send(Message::text(json!({"type": "lcl"}).to_string())).await?;
        loop {
            let m = next_json(&mut ws).await?;
            if m["type"] == "lcl_response" {
                lcl.store(m["ledger_seq_no"].as_u64().unwrap_or(0), Ordering::Relaxed);
                break;
            }
        }
        Ok(Self { ws, key: key.clone(), trusted, lcl, offset: max_ledger_offset })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// A sending and a receiving half, for concurrent use.
    pub fn split(self) -> (HpSender, HpReceiver) {
        let (sink, stream) = self.ws.split();
        // Nonces only grow per user: start at the clock, as the JS client does.
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        let user = self.key.verifying_key().to_bytes();
        (
            HpSender { sink, key: self.key, nonce, lcl: self.lcl.clone(), offset: self.offset },
            HpReceiver { stream, user, trusted: self.trusted, lcl: self.lcl },
        )
    }
}

/// The sending half: each input signed in a container with the next nonce.
pub struct HpSender {
    sink: SplitSink<Ws, Message>,
    key: SigningKey,
    nonce: u64,
    /// The last closed ledger this user knows of (from statuses and outputs).
    lcl: Arc<AtomicU64>,
    offset: u64,
}

impl HpSender {
    /// Signs and sends one input; JSON containers carry text, so its bytes must be UTF-8.
    pub async fn send(&mut self, input: &[u8]) -> Result<(), ClientError> {
        let key = self.key.clone();
        self.send_signed_by(input, &key).await
    }

    /// Sends one input as [`Self::send`] does but signed with `signer`: with another key than
    /// the user's, a forgery, for testing that nodes refuse it.
    pub async fn send_signed_by(&mut self, input: &[u8], signer: &SigningKey) -> Result<(), ClientError> {
        let text = std::str::from_utf8(input).map_err(|_| ClientError::Protocol("JSON inputs must be text".into()))?;
        self.nonce += 1;
        let max_ledger = self.lcl.load(Ordering::Relaxed) + self.offset;
        let container = json!({"input": text, "nonce": self.nonce, "max_ledger_seq_no": max_ledger}).to_string();
        let sig = signer.sign(container.as_bytes()).to_bytes();
        let message = json!({"type": "contract_input", "input_container": container, "sig": hex::encode(sig)});
        self.sink.send(Message::text(message.to_string())).await?;
        Ok(())
    }

    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.sink.send(Message::Close(None)).await?;
        Ok(())
    }
}

/// The receiving half: verified outputs, and refusals.
pub struct HpReceiver {
    stream: SplitStream<Ws>,
    user: [u8; 32],
    trusted: Arc<Trusted>,
    lcl: Arc<AtomicU64>,
}

impl HpReceiver {
    /// The next verified output or refusal; `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<Output> {
        loop {
            let message = match self.stream.next().await? {
                Ok(Message::Text(text)) => serde_json::from_str::<Value>(text.as_str()).ok()?,
                Ok(Message::Binary(data)) => serde_json::from_slice::<Value>(&data).ok()?,
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            };
            if let Some(seq) = message["ledger_seq_no"].as_u64() {
                self.lcl.fetch_max(seq, Ordering::Relaxed);
            }
            match message["type"].as_str() {
                Some("contract_input_status") if message["status"] == "rejected" => {
                    return Some(Output::Error(message["reason"].as_str().unwrap_or("rejected").to_string()));
                }
                Some("contract_output") => return Some(checked(&self.user, &self.trusted, &message)),
                _ => continue,
            }
        }
    }
}

/// The output of `user` if its proof holds against the trusted keys (any output when none are
/// set).
fn checked(user: &[u8; 32], trusted: &Trusted, message: &Value) -> Output {
    let outputs: Vec<&str> = message["outputs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let data = Bytes::from(outputs.concat());
    if trusted.count == 0 {
        return Output::Data(data);
    }
    let own = output_hash(user, &outputs.iter().map(|o| o.as_bytes()).collect::<Vec<_>>());
    let claimed = message["output_hash"].as_str().and_then(|h| hex::decode(h).ok());
    if claimed.as_deref() != Some(own.as_slice()) {
        return Output::Error("an output whose hash does not match it".into());
    }
    let Some(root) = tree_root(&message["hash_tree"], &own) else {
        return Output::Error("an output whose hash tree is malformed".into());
    };
    if proven_before(trusted, &root) {
        return Output::Data(data);
    }
    // One signature per trusted key, checked together; one by one only if that fails.
    let mut claimed: std::collections::HashMap<[u8; 32], (VerifyingKey, Signature)> = Default::default();
    for pair in message["unl_sig"].as_array().into_iter().flatten() {
        let (Some(key), Some(sig)) = (pair[0].as_str().and_then(parse_ed), pair[1].as_str()) else { continue };
        let mut signature = [0u8; 64];
        let Some(verifying) = trusted.keys.get(&key) else { continue };
        if hex::decode_to_slice(sig, &mut signature).is_ok() {
            claimed.entry(key).or_insert((*verifying, Signature::from_bytes(&signature)));
        }
    }
    let (keys, signatures): (Vec<VerifyingKey>, Vec<Signature>) = claimed.values().copied().unzip();
    let messages = vec![root.as_slice(); keys.len()];
    let passed = if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        keys.len()
    } else {
        claimed.values().filter(|(k, s)| k.verify(&root, s).is_ok()).count()
    };
    if (passed as f64) / (trusted.count as f64) < PASS_THRESHOLD {
        return Output::Error(format!("an output signed by {passed} of {} trusted keys", trusted.count));
    }
    note_proven(trusted, root);
    Output::Data(data)
}

/// The root of a received tree, its one `null` standing for the user's own hash.
fn tree_root(tree: &Value, own: &[u8; 32]) -> Option<[u8; 32]> {
    fn walk(tree: &Value, own: &[u8; 32], found: &mut bool) -> Option<[u8; 32]> {
        let mut children = Vec::new();
        for element in tree.as_array()? {
            let hash = match element {
                Value::Null if !*found => {
                    *found = true;
                    *own
                }
                Value::Array(_) => walk(element, own, found)?,
                Value::String(h) => <[u8; 32]>::try_from(hex::decode(h).ok()?.as_slice()).ok()?,
                _ => return None,
            };
            children.push(hash);
        }
        Some(node(&children))
    }
    let mut found = false;
    let root = walk(tree, own, &mut found)?;
    found.then_some(root)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::Signer;

    /// A `contract_output` for `user` alone in its ledger, signed over its root by `signers`.
    fn message(user: &[u8; 32], text: &str, signers: &[&SigningKey]) -> Value {
        let own = output_hash(user, &[text.as_bytes()]);
        let root = node(&[own]);
        let sigs: Vec<Value> = signers
            .iter()
            .map(|k| json!([ed_hex(&k.verifying_key().to_bytes()), hex::encode(k.sign(&root).to_bytes())]))
            .collect();
        json!({"outputs": [text], "output_hash": hex::encode(own), "hash_tree": [null], "unl_sig": sigs})
    }

    #[test]
    fn an_output_passes_with_signatures_from_80_percent_of_the_trusted_keys_and_not_otherwise() {
        let keys: Vec<SigningKey> = (1..=5u8).map(|b| SigningKey::from_bytes(&[b; 32])).collect();
        let unl: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let trusted = Trusted::new(&unl);
        let user = [9; 32];
        let all: Vec<&SigningKey> = keys.iter().collect();
        // Each case its own output, so its own root: a proven root stays proven.
        assert!(matches!(checked(&user, &trusted, &message(&user, "all", &all)), Output::Data(d) if d == "all"));
        assert!(matches!(checked(&user, &trusted, &message(&user, "four", &all[..4])), Output::Data(_)), "4 of 5");
        assert!(matches!(checked(&user, &trusted, &message(&user, "three", &all[..3])), Output::Error(_)), "3 of 5");
        // One signature over something else among five: 4 of 5 still verify, one by one.
        let mut one_bad = message(&user, "one bad", &all);
        one_bad["unl_sig"][0][1] = json!(hex::encode(keys[0].sign(b"another root").to_bytes()));
        assert!(matches!(checked(&user, &trusted, &one_bad), Output::Data(_)));
        let mut two_bad = message(&user, "two bad", &all);
        for i in 0..2 {
            two_bad["unl_sig"][i][1] = json!(hex::encode(keys[i].sign(b"another root").to_bytes()));
        }
        assert!(matches!(checked(&user, &trusted, &two_bad), Output::Error(_)), "3 of 5 verify");
        // Signers outside the trusted keys count for nothing; a changed output fails its hash.
        let strangers: Vec<SigningKey> = (10..=14u8).map(|b| SigningKey::from_bytes(&[b; 32])).collect();
        let strangers: Vec<&SigningKey> = strangers.iter().collect();
        assert!(matches!(checked(&user, &trusted, &message(&user, "strangers", &strangers)), Output::Error(_)));
        let mut changed = message(&user, "changed", &all);
        changed["outputs"] = json!(["ho"]);
        assert!(matches!(checked(&user, &trusted, &changed), Output::Error(_)));
    }

    #[test]
    fn a_root_proven_once_needs_no_signatures_again_but_only_for_the_same_trusted_keys() {
        let keys: Vec<SigningKey> = (21..=23u8).map(|b| SigningKey::from_bytes(&[b; 32])).collect();
        let unl: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        let (trusted, again) = (Trusted::new(&unl), Trusted::new(&[unl[2], unl[0], unl[1]]));
        let user = [7; 32];
        let signed = message(&user, "proven", &keys.iter().collect::<Vec<_>>());
        let mut unsigned = signed.clone();
        unsigned["unl_sig"] = json!([]);
        assert!(matches!(checked(&user, &trusted, &unsigned), Output::Error(_)), "not proven yet");
        assert!(matches!(checked(&user, &trusted, &signed), Output::Data(_)));
        // The same keys in another order are the same set; one key fewer is another.
        assert!(matches!(checked(&user, &again, &unsigned), Output::Data(_)), "proven before");
        let fewer = Trusted::new(&unl[..2]);
        assert!(matches!(checked(&user, &fewer, &unsigned), Output::Error(_)), "another trusted set");
        // The path to the root is still checked: another user's output with the same tree fails.
        let mut other = unsigned.clone();
        other["outputs"] = json!(["forged"]);
        assert!(matches!(checked(&user, &trusted, &other), Output::Error(_)));
    }
}

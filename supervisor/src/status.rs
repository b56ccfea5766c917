//! The node status as `hotpocket status` prints it (docs/command-line.md): the exact `--json` object and
//! a readable text form, converted explicitly from the control socket's `NodeStatus`.

use hp_proto::v1::{ComponentStatus, NodeStatus};
use serde::Serialize;
use std::fmt::Write;

/// One component, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentView {
    pub pid: u32,
    pub state: String,
    pub restarts: u32,
}

/// The three components, in the fixed order of the JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Components {
    pub userd: ComponentView,
    pub consensusd: ComponentView,
    pub execd: ComponentView,
}

/// The URLs a user can dial, from the node's config: `null` for a port it does not serve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// The seed protocol (`pubport`).
    pub seed: Option<String>,
    /// HotPocket 0.6 over TLS (`hpport`).
    pub hotpocket: Option<String>,
    /// HotPocket 0.6 without TLS (`hpport_plain`).
    pub hotpocket_plain: Option<String>,
}

impl Endpoints {
    pub fn of(cfg: &hp_cfg::Config) -> Self {
        let host = match cfg.ip {
            None => "localhost".to_string(),
            Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            Some(ip) => ip.to_string(),
        };
        let url = |scheme: &str, port: Option<u16>| port.map(|p| format!("{scheme}://{host}:{p}"));
        Self {
            seed: url("ws", cfg.pubport),
            hotpocket: url("wss", cfg.hpport),
            hotpocket_plain: url("ws", cfg.hpport_plain),
        }
    }
}

/// `{"lcl_seq":N,"lcl_hash":"hex","state_hash":"hex","peers":K,"users":U,"role":"validator",
/// "unl":["ed…"],"quorum":Q,"config_hash":"hex","endpoints":{...},"components":{...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    pub lcl_seq: u64,
    pub lcl_hash: String,
    pub state_hash: String,
    pub peers: u32,
    pub users: u32,
    /// `validator` or `observer`; empty while consensusd does not answer.
    pub role: String,
    /// The UNL that closes the next ledger, `ed`-prefixed hex, in order.
    pub unl: Vec<String>,
    pub quorum: u32,
    /// The hash the next ledger names as its `config_hash`.
    pub config_hash: String,
    pub endpoints: Endpoints,
    pub components: Components,
}

/// The control socket's answer lacked something `status` must print.
#[derive(Debug, thiserror::Error)]
#[error("NodeStatus.components has no entry for `{0}`")]
pub struct MissingComponent(pub &'static str);

fn component(list: &[ComponentStatus], name: &'static str) -> Result<ComponentView, MissingComponent> {
    let c = list.iter().find(|c| c.name == name).ok_or(MissingComponent(name))?;
    Ok(ComponentView { pid: c.pid, state: c.state.clone(), restarts: c.restarts })
}

impl TryFrom<NodeStatus> for StatusView {
    type Error = MissingComponent;
    fn try_from(s: NodeStatus) -> Result<Self, Self::Error> {
        Ok(Self {
            lcl_seq: s.lcl_seq,
            lcl_hash: hex::encode(&s.lcl_hash),
            state_hash: hex::encode(&s.state_hash),
            peers: s.peers,
            users: s.users,
            role: s.role,
            unl: s.unl.iter().map(|k| format!("ed{}", hex::encode(k))).collect(),
            quorum: s.quorum,
            config_hash: hex::encode(&s.config_hash),
            endpoints: Endpoints::default(),
            components: Components {
                userd: component(&s.components, "userd")?,
                consensusd: component(&s.components, "consensusd")?,
                execd: component(&s.components, "execd")?,
            },
        })
    }
}

impl StatusView {
    /// The one-line JSON object of `status --json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The readable form of `status`.
    pub fn to_text(&self) -> String {
        let or_none = |h: &str| if h.is_empty() { "-".to_string() } else { h.to_string() };
        let mut out = String::new();
        let _ = writeln!(out, "last closed ledger  {}", self.lcl_seq);
        let _ = writeln!(out, "ledger hash         {}", or_none(&self.lcl_hash));
        let _ = writeln!(out, "state hash          {}", or_none(&self.state_hash));
        let _ = writeln!(out, "peers               {}", self.peers);
        let _ = writeln!(out, "users               {}", self.users);
        let _ = writeln!(out, "role                {}", or_none(&self.role));
        let _ = writeln!(out, "unl (quorum {:>3})    {}", self.quorum, self.unl.first().map_or("-", String::as_str));
        for key in self.unl.iter().skip(1) {
            let _ = writeln!(out, "                    {key}");
        }
        let _ = writeln!(out, "config hash         {}", or_none(&self.config_hash));
        let e = &self.endpoints;
        for (name, url) in [("seed", &e.seed), ("hotpocket", &e.hotpocket), ("hotpocket plain", &e.hotpocket_plain)] {
            if let Some(url) = url {
                let _ = writeln!(out, "{name:<19} {url}");
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<12} {:>8}  {:<11} {:>8}", "component", "pid", "state", "restarts");
        let c = &self.components;
        for (name, v) in [("userd", &c.userd), ("consensusd", &c.consensusd), ("execd", &c.execd)] {
            let pid = if v.pid == 0 { "-".to_string() } else { v.pid.to_string() };
            let _ = writeln!(out, "{name:<12} {pid:>8}  {:<11} {:>8}", v.state, v.restarts);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> NodeStatus {
        let comp = |name: &str, pid| ComponentStatus { name: name.into(), pid, state: "running".into(), restarts: 1 };
        NodeStatus {
            lcl_seq: 7,
            lcl_hash: vec![0xab, 0x01].into(),
            state_hash: vec![0xff].into(),
            peers: 2,
            users: 3,
            components: vec![comp("execd", 30), comp("userd", 10), comp("consensusd", 20)],
            unl: vec![vec![0x11; 32].into(), vec![0x22; 32].into()],
            quorum: 2,
            config_hash: vec![0xcd].into(),
            role: "validator".into(),
        }
    }

    #[test]
    fn json_has_the_fixed_shape_and_order() {
        let view = StatusView::try_from(sample()).unwrap();
        assert_eq!(
            view.to_json(),
            r#"{"lcl_seq":7,"lcl_hash":"ab01","state_hash":"ff","peers":2,"users":3,"role":"validator","unl":["ed1111111111111111111111111111111111111111111111111111111111111111","ed2222222222222222222222222222222222222222222222222222222222222222"],"quorum":2,"config_hash":"cd","endpoints":{"seed":null,"hotpocket":null,"hotpocket_plain":null},"components":{"userd":{"pid":10,"state":"running","restarts":1},"consensusd":{"pid":20,"state":"running","restarts":1},"execd":{"pid":30,"state":"running","restarts":1}}}"#
        );
    }

    #[test]
    fn text_lists_every_component() {
        let text = StatusView::try_from(sample()).unwrap().to_text();
        for word in ["userd", "consensusd", "execd", "ab01", "running", "validator", "ed2222", "quorum   2"] {
            assert!(text.contains(word), "{text}");
        }
    }

    #[test]
    fn a_missing_component_is_named() {
        let mut s = sample();
        s.components.retain(|c| c.name != "execd");
        assert_eq!(StatusView::try_from(s).unwrap_err().to_string(), "NodeStatus.components has no entry for `execd`");
    }
}

//! The contract's own config, `patch.cfg`, in HotPocket 0.6's format: the part of the config
//! the network may change by agreement (the UNL, the binary, consensus settings, round
//! limits), written by the contract and agreed through the state hash.
//!
//! Why it is a file in the state: the contract changes it the way HotPocket's contract library
//! does (`updateConfig` writes `../patch.cfg`), and the state hash, the committed copy, the
//! restore after a crash and the state copy from a peer all cover it with no second
//! mechanism. execd keeps it at `state/.patch.cfg` and links `<dir>/patch.cfg` to it.
//!
//! Every node judges a written patch with the same code on the same bytes ([`ContractPatch::parse`]),
//! so a patch is taken or refused the same way everywhere. After each round execd rewrites the
//! file in its canonical form ([`ContractPatch::to_bytes`]): the patch taken, or, when the
//! contract wrote something invalid, the config still in force. The file therefore always says
//! what is in force (or about to be), and its bytes are a pure function of that config.

use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where the patch lives, relative to `state/` (a hidden name, to stay out of the contract's
/// way; the contract reaches it as `../patch.cfg`).
pub const PATCH_FILE_IN_STATE: &str = ".patch.cfg";
/// The link beside `state/` that HotPocket contracts open.
pub const PATCH_LINK: &str = "patch.cfg";
/// The largest patch file read; a larger one is refused unread.
pub const MAX_PATCH_BYTES: u64 = 64 * 1024;
/// Most UNL members a patch may name.
pub const MAX_PATCH_UNL: usize = 256;
/// Most environment variables a patch may set.
pub const MAX_PATCH_ENV: usize = 64;
/// Longest string (version, path, arguments, variable) a patch may hold.
const MAX_PATCH_STRING: usize = 4096;
/// The least memory (`round_limits.proc_mem_bytes`), open files (`proc_ofd_count`) and run time
/// (`exec_timeout`, ms) a patch may give the contract, 0 being "no limit". Below them the
/// contract could fail every run, and a contract that never runs can never change its config
/// back: the network would be stuck with it.
pub const MIN_PATCH_MEM_BYTES: u64 = 16 * 1024 * 1024;
pub const MIN_PATCH_OFD_COUNT: u64 = 16;
pub const MIN_PATCH_EXEC_TIMEOUT_MS: u64 = 100;

/// The agreed part of the config, field for field as HotPocket 0.6 writes `patch.cfg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractPatch {
    /// The contract's version (hp.cfg `contract_version`).
    pub version: String,
    /// The validators, `ed`-prefixed hex, in the order all nodes share.
    pub unl: Vec<String>,
    /// The contract binary, relative to the contract directory or absolute (hp.cfg `binary`).
    pub bin_path: String,
    /// Its arguments, one string split on whitespace (hp.cfg `binargs`).
    pub bin_args: String,
    /// Extra environment variables for the contract.
    pub environment: BTreeMap<String, String>,
    /// hp.cfg `max_input_ledger_offset`.
    pub max_input_ledger_offset: u64,
    pub consensus: ConsensusPatch,
    pub npl: NplPatch,
    pub round_limits: RoundLimitsPatch,
}

/// `consensus` of a patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusPatch {
    /// `public` or `private` (HotPocket's; kept, not used here).
    pub mode: String,
    /// hp.cfg `roundtime`, ms.
    pub roundtime: u64,
    /// HotPocket's stage length, percent (kept, not used: this node's rounds are Tendermint's).
    pub stage_slice: u64,
    /// hp.cfg `threshold`, in percent.
    pub threshold: u64,
}

/// `npl` of a patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NplPatch {
    /// `public` or `private` (kept, not used: NPL goes to the UNL only).
    pub mode: String,
}

/// `round_limits` of a patch; 0 means no limit, as in HotPocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundLimitsPatch {
    pub user_input_bytes: u64,
    pub user_output_bytes: u64,
    /// hp.cfg `npl_output_bytes`.
    pub npl_output_bytes: u64,
    pub proc_cpu_seconds: u64,
    pub proc_mem_bytes: u64,
    pub proc_ofd_count: u64,
    /// hp.cfg `contract_timeout_ms`.
    pub exec_timeout: u64,
}

/// Why a written patch was refused; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("patch.cfg is larger than {MAX_PATCH_BYTES} bytes")]
    TooLarge,
    #[error("patch.cfg is not a valid patch: {0}")]
    Format(String),
    #[error("patch.cfg `{field}`: {why}")]
    Field { field: &'static str, why: String },
}

fn field(field: &'static str, why: impl Into<String>) -> PatchError {
    PatchError::Field { field, why: why.into() }
}

impl ContractPatch {
    /// The patch a new network starts with: the agreed fields of `hp.cfg`.
    pub fn from_config(cfg: &Config) -> Self {
        ContractPatch {
            version: cfg.contract_version.clone(),
            unl: cfg.unl.iter().map(|k| format!("ed{}", hex::encode(k))).collect(),
            bin_path: cfg.binary.clone(),
            bin_args: cfg.binargs.join(" "),
            environment: BTreeMap::new(),
            max_input_ledger_offset: cfg.max_input_ledger_offset,
            consensus: ConsensusPatch {
                mode: "public".into(),
                roundtime: cfg.roundtime_ms,
                stage_slice: 25,
                threshold: (cfg.threshold * 100.0).round().clamp(1.0, 100.0) as u64,
            },
            npl: NplPatch { mode: "public".into() },
            round_limits: RoundLimitsPatch {
                user_input_bytes: 0,
                user_output_bytes: 0,
                npl_output_bytes: cfg.npl_output_bytes,
                proc_cpu_seconds: 0,
                proc_mem_bytes: 0,
                proc_ofd_count: 0,
                exec_timeout: cfg.contract_timeout_ms,
            },
        }
    }

    /// Reads and checks a patch the contract wrote. Pure: the same bytes give the same answer
    /// on every node.
    pub fn parse(bytes: &[u8]) -> Result<Self, PatchError> {
        if bytes.len() as u64 > MAX_PATCH_BYTES {
            return Err(PatchError::TooLarge);
        }
        let patch: ContractPatch = serde_json::from_slice(bytes).map_err(|e| PatchError::Format(e.to_string()))?;
        patch.validate()?;
        Ok(patch)
    }

    /// The checks of HotPocket's contract library, and those this node needs besides: keys that
    /// are Ed25519 points and appear once, a threshold that gives a safe quorum, bounded sizes.
    pub fn validate(&self) -> Result<(), PatchError> {
        printable("version", &self.version, 64)?;
        if self.unl.is_empty() {
            return Err(field("unl", "cannot be empty"));
        }
        if self.unl.len() > MAX_PATCH_UNL {
            return Err(field("unl", format!("names more than {MAX_PATCH_UNL} keys")));
        }
        let keys = self.unl_keys()?;
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].contains(key) {
                return Err(field("unl", format!("names {} twice", self.unl[i])));
            }
        }
        printable("bin_path", &self.bin_path, MAX_PATCH_STRING)?;
        if self.bin_args.len() > MAX_PATCH_STRING || self.bin_args.contains('\0') {
            return Err(field("bin_args", format!("must be at most {MAX_PATCH_STRING} bytes, without NUL")));
        }
        if self.environment.len() > MAX_PATCH_ENV {
            return Err(field("environment", format!("sets more than {MAX_PATCH_ENV} variables")));
        }
        for (name, value) in &self.environment {
            let name_ok = !name.is_empty()
                && name.len() <= 256
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !name_ok {
                return Err(field("environment", format!("`{name}` is not a variable name")));
            }
            if value.len() > MAX_PATCH_STRING || value.contains('\0') {
                return Err(field("environment", format!("the value of `{name}` is too long or holds NUL")));
            }
        }
        if !(1..=100_000).contains(&self.max_input_ledger_offset) {
            return Err(field("max_input_ledger_offset", "must be 1 to 100000"));
        }
        mode("consensus.mode", &self.consensus.mode)?;
        if !(1..=3_600_000).contains(&self.consensus.roundtime) {
            return Err(field("consensus.roundtime", "must be 1 to 3600000 ms"));
        }
        if !(1..=33).contains(&self.consensus.stage_slice) {
            return Err(field("consensus.stage_slice", "must be 1 to 33 percent"));
        }
        if !(1..=100).contains(&self.consensus.threshold) {
            return Err(field("consensus.threshold", "must be 1 to 100 percent"));
        }
        hp_consensus::quorum_for(keys.len(), self.threshold())
            .map_err(|e| field("consensus.threshold", e.to_string()))?;
        mode("npl.mode", &self.npl.mode)?;
        let limits = &self.round_limits;
        at_least("round_limits.proc_mem_bytes", limits.proc_mem_bytes, MIN_PATCH_MEM_BYTES)?;
        at_least("round_limits.proc_ofd_count", limits.proc_ofd_count, MIN_PATCH_OFD_COUNT)?;
        at_least("round_limits.exec_timeout", limits.exec_timeout, MIN_PATCH_EXEC_TIMEOUT_MS)?;
        Ok(())
    }

    /// The UNL as raw public keys, each checked to be an Ed25519 point.
    pub fn unl_keys(&self) -> Result<Vec<[u8; 32]>, PatchError> {
        self.unl
            .iter()
            .map(|text| {
                // `ed` in any case (the library's check), then a key as hp.cfg takes it.
                let hex_part = text
                    .get(..2)
                    .filter(|prefix| prefix.eq_ignore_ascii_case("ed"))
                    .map(|_| &text[2..])
                    .ok_or_else(|| field("unl", format!("`{text}` is not `ed` and 64 hex digits")))?;
                let key = crate::keys::parse_public_key(hex_part).map_err(|e| field("unl", format!("`{text}` {e}")))?;
                Ok(key.to_bytes())
            })
            .collect()
    }

    /// The UNL and the quorum its threshold gives: the membership this config hands over to.
    pub fn membership(&self) -> Result<(Vec<[u8; 32]>, usize), PatchError> {
        let unl = self.unl_keys()?;
        let quorum = hp_consensus::quorum_for(unl.len(), self.threshold())
            .map_err(|e| field("consensus.threshold", e.to_string()))?;
        Ok((unl, quorum))
    }

    /// `consensus.threshold` as the fraction hp.cfg uses.
    pub fn threshold(&self) -> f64 {
        self.consensus.threshold as f64 / 100.0
    }

    /// The canonical file: pretty JSON with 4-space indents (as HotPocket's library writes it),
    /// keys lower-case, fields in this type's order, a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let canonical = ContractPatch {
            unl: match self.unl_keys() {
                Ok(keys) => keys.iter().map(|k| format!("ed{}", hex::encode(k))).collect(),
                Err(_) => self.unl.clone(),
            },
            ..self.clone()
        };
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        // Serializing plain strings, numbers and maps of strings into a Vec cannot fail.
        let _ = canonical.serialize(&mut ser);
        out.push(b'\n');
        out
    }
}

fn printable(name: &'static str, value: &str, max: usize) -> Result<(), PatchError> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(field(name, format!("must be 1 to {max} printable characters")));
    }
    Ok(())
}

/// `value` is 0 (no limit) or at least `min`.
fn at_least(name: &'static str, value: u64, min: u64) -> Result<(), PatchError> {
    if value != 0 && value < min {
        return Err(field(name, format!("must be 0 (no limit) or at least {min}")));
    }
    Ok(())
}

fn mode(name: &'static str, value: &str) -> Result<(), PatchError> {
    match value {
        "public" | "private" => Ok(()),
        _ => Err(field(name, "must be `public` or `private`")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::keys::NodeKey;

    fn patch(nodes: usize) -> ContractPatch {
        let mut cfg = Config::new_single(NodeKey::generate());
        cfg.unl = (0..nodes).map(|_| NodeKey::generate().public_bytes()).collect();
        ContractPatch::from_config(&cfg)
    }

    #[test]
    fn the_canonical_file_of_a_config_parses_back_to_it() {
        let p = patch(3);
        let bytes = p.to_bytes();
        assert!(bytes.starts_with(b"{\n    \"version\": "), "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(ContractPatch::parse(&bytes).unwrap(), p);
        assert_eq!(p.consensus.threshold, 80);
    }

    #[test]
    fn what_the_contract_library_writes_is_taken_and_made_canonical() {
        let p = patch(1);
        let mut json: serde_json::Value = serde_json::from_slice(&p.to_bytes()).unwrap();
        json["unl"] = serde_json::json!([p.unl[0].to_uppercase().replacen("ED", "ed", 1)]);
        json["consensus"]["roundtime"] = serde_json::json!(2000);
        let written = serde_json::to_vec(&json).unwrap();
        let taken = ContractPatch::parse(&written).unwrap();
        assert_eq!(taken.consensus.roundtime, 2000);
        assert_eq!(String::from_utf8(taken.to_bytes()).unwrap().matches(&p.unl[0]).count(), 1);
    }

    #[test]
    fn bad_patches_are_refused_naming_the_field() {
        let good = patch(3);
        type Edit = Box<dyn Fn(&mut ContractPatch)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("unl", Box::new(|p| p.unl.clear())),
            ("unl", Box::new(|p| p.unl[1] = p.unl[0].clone())),
            ("unl", Box::new(|p| p.unl[0] = "ed1234".into())),
            ("unl", Box::new(|p| p.unl[0] = format!("xx{}", &p.unl[0][2..]))),
            ("bin_path", Box::new(|p| p.bin_path.clear())),
            ("version", Box::new(|p| p.version = "a\nb".into())),
            ("consensus.mode", Box::new(|p| p.consensus.mode = "open".into())),
            ("consensus.roundtime", Box::new(|p| p.consensus.roundtime = 0)),
            ("consensus.threshold", Box::new(|p| p.consensus.threshold = 101)),
            ("consensus.stage_slice", Box::new(|p| p.consensus.stage_slice = 34)),
            ("npl.mode", Box::new(|p| p.npl.mode = String::new())),
            ("max_input_ledger_offset", Box::new(|p| p.max_input_ledger_offset = 0)),
            ("environment", Box::new(|p| drop(p.environment.insert("1X".into(), "v".into())))),
            ("round_limits.proc_mem_bytes", Box::new(|p| p.round_limits.proc_mem_bytes = 4096)),
            ("round_limits.proc_ofd_count", Box::new(|p| p.round_limits.proc_ofd_count = 3)),
            ("round_limits.exec_timeout", Box::new(|p| p.round_limits.exec_timeout = 5)),
        ];
        for (name, edit) in cases {
            let mut p = good.clone();
            edit(&mut p);
            match ContractPatch::parse(&serde_json::to_vec(&p).unwrap()) {
                Err(PatchError::Field { field, .. }) => assert_eq!(field, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_patch_that_is_not_json_has_unknown_fields_or_is_too_large_is_refused() {
        assert!(matches!(ContractPatch::parse(b"{not json"), Err(PatchError::Format(_))));
        let mut json: serde_json::Value = serde_json::from_slice(&patch(1).to_bytes()).unwrap();
        json["threshhold"] = serde_json::json!(50);
        assert!(matches!(ContractPatch::parse(&serde_json::to_vec(&json).unwrap()), Err(PatchError::Format(_))));
        let big = vec![b' '; MAX_PATCH_BYTES as usize + 1];
        assert_eq!(ContractPatch::parse(&big), Err(PatchError::TooLarge));
    }
}

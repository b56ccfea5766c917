//! The node config `cfg/hp.cfg` (docs/config.md): its schema and validation, the node's keys, and
//! the layout of a contract directory.
//!
//! Every process of a node reads the same file through [`Config::load`]; a bad file stops the
//! process at start with a [`ConfigError`] that names the field and the problem.
//!
//! # Layout
//! - [`config`]: the schema, parsing (numbers as numbers or strings) and validation.
//! - [`keys`]: Ed25519 key pairs in the libsodium hex forms the config uses.
//! - [`layout`]: where things live inside a contract directory.
//! - [`patch`]: `patch.cfg`, the part of the config the network changes by agreement.
//! - [`create`]: `hotpocket new` / `rekey`: writing a fresh, working contract directory.

pub mod config;
pub mod create;
pub mod keys;
pub mod layout;
pub mod patch;

pub use config::{Config, ConfigError, ContractLimits, LogFormat, Protection, StdinFormat};
pub use keys::{KeyError, NodeKey, PublicKeyHex};
pub use layout::ContractDir;
pub use patch::{ContractPatch, PatchError};

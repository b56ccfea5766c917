//! The one definition of how Hot Pocket's processes talk: gRPC services between the four local
//! processes, and the frames consensusd peers exchange. Generated from the `.proto` files in this
//! folder; domain types live in the other crates and convert explicitly.
//!
//! # Layout
//! - [`v1`]: local services (`Exec`, `Consensus`, `Userd`, `Supervisor`) and their messages.
//! - [`v1::peer`]: the peer wire frames.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("hotpocket.v1");

    pub mod peer {
        tonic::include_proto!("hotpocket.v1.peer");
    }
}

/// The largest gRPC message any local service accepts or sends: room for a ledger's inputs and
/// a round's outputs (docs/contract-interface.md allows 10 MiB per user and many users).
pub const MAX_LOCAL_MESSAGE: usize = 512 * 1024 * 1024;

//! hp-bench and the C example contract against real nodes (the binaries of this build).
//! Each test starts its own cluster on free ports and stops it when done, also on failure.

mod echo_c;
mod smoke;

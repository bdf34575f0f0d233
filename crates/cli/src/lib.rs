//! The commands of `sdx` (the binary is `main.rs`), as a library so that the integration tests can run the
//! demo's parts (`cmd::pair`, `cmd::demo_systems`) in their own process.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

pub mod cmd;
pub mod io;

/// What a command found, when it ran to the end.
pub enum Outcome {
    /// Everything valid.
    Valid,
    /// Input was invalid (reported on stderr).
    Invalid,
}

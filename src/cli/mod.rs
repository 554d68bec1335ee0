//! Subcommands of the `rose` binary.

pub mod experiment;
pub mod fit;
pub mod simulate;

pub use super::Format;

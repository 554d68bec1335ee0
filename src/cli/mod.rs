//! Subcommands of the `rose` binary.

pub mod experiment;
pub mod fit;
pub mod mnist;
pub mod simulate;
pub mod sql;

pub use super::Format;

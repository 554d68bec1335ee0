//! The error type of the library.

use std::path::PathBuf;

/// Result alias with [`RoseError`].
pub type Result<T, E = RoseError> = std::result::Result<T, E>;

/// Everything that stops a fit. Statistics sent by Byzantine machines are not errors:
/// they are outvoted by the robust aggregation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoseError {
    /// An option has an invalid value.
    #[error("invalid {option}: {message}")]
    InvalidOption {
        /// Option name, as on the command line.
        option: String,
        /// Description of the problem and of a valid value.
        message: String,
    },

    /// The data directory does not exist or cannot be read.
    #[error("cannot read data directory {path}: {message}")]
    Directory {
        /// Directory given.
        path: PathBuf,
        /// Underlying problem.
        message: String,
    },

    /// The directory contains no Parquet file.
    #[error(
        "no Parquet files found under {path}: expected DIR/*.parquet or DIR/machine=<id>/*.parquet"
    )]
    NoParquetFiles {
        /// Directory searched.
        path: PathBuf,
    },

    /// A file's schema lacks a column, has the wrong type, or disagrees with other files.
    #[error("{file}: {message}")]
    Schema {
        /// File whose schema is wrong.
        file: PathBuf,
        /// Description of the problem.
        message: String,
    },

    /// A named column does not exist.
    #[error("column '{column}' not found in {file}; available columns: {available}")]
    MissingColumn {
        /// Column requested.
        column: String,
        /// First file checked.
        file: PathBuf,
        /// Columns present, comma separated.
        available: String,
    },

    /// The data contain a value the model cannot use.
    #[error(
        "{}column '{column}': {message}",
        if machine.is_empty() { String::new() } else { format!("machine '{machine}', ") }
    )]
    InvalidData {
        /// Machine whose rows contain the value; empty when unknown (inside SQL).
        machine: String,
        /// Column containing the value.
        column: String,
        /// Description of the problem and of the remedy.
        message: String,
    },

    /// Too few machines returned usable statistics for a robust estimate.
    #[error(
        "only {usable} of {total} machines returned usable statistics in {round}; \
         at least half are needed (failed machines: {failed})"
    )]
    TooFewUsableMachines {
        /// Usable machines.
        usable: usize,
        /// All machines.
        total: usize,
        /// Round of communication.
        round: &'static str,
        /// Failed machines with their reasons.
        failed: String,
    },

    /// The aggregated Hessian cannot be inverted.
    #[error("the aggregated Hessian is singular; {hint}")]
    SingularHessian {
        /// Likely cause and remedy.
        hint: String,
    },

    /// The query engine failed.
    #[error("query engine error: {0}")]
    Engine(String),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

impl RoseError {
    /// Builds an [`RoseError::InvalidOption`].
    pub fn option(option: &str, message: impl Into<String>) -> Self {
        RoseError::InvalidOption {
            option: option.to_string(),
            message: message.into(),
        }
    }
}

//! Subcommands of the `rose` binary.

pub mod experiment;
pub mod fit;
pub mod mnist;
pub mod simulate;
pub mod sql;

pub use super::Format;

use std::io::Write;
use std::path::{Path, PathBuf};

use rose::{Result, RoseError};

/// Writes a command's output to `path`, or to standard output when `path` is `None`.
///
/// A closed pipe on standard output (`rose ... | head`) is not an error; other write
/// failures are.
pub fn write_output(path: Option<&Path>, text: &str) -> Result<()> {
    if let Some(path) = path {
        return std::fs::write(path, text).map_err(|source| RoseError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(RoseError::Io {
            path: PathBuf::from("<standard output>"),
            source: e,
        }),
        _ => Ok(()),
    }
}

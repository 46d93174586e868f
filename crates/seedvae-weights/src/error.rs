//! One error type for everything this crate reads: every variant names the file, and the tensor
//! where one is involved, so a user can tell which download is broken and how.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OS error is part of the message (it is not also a `source`, which would print it
    /// twice in a chain).
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The container itself is malformed (bad magic, truncated header, offsets out of range...).
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// One tensor's entry is malformed or cannot be decoded.
    #[error("{}: tensor '{}': {msg}", path.display(), crate::schema::printable(tensor))]
    Tensor {
        path: PathBuf,
        tensor: String,
        msg: String,
    },
    /// A buffer this file needs does not fit in memory.
    #[error(transparent)]
    Memory(#[from] crate::memory::OutOfMemory),
    /// The file parsed, but it is not a usable SeedVR2 VAE (missing, unexpected or mis-shaped tensors).
    #[error("{}: not a valid SeedVR2 VAE checkpoint ({} problem(s)):\n{}", path.display(), problems.len(), crate::schema::format_problems(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<crate::schema::Problem>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            cause: source,
        }
    }
    pub fn format(path: &Path, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
    pub fn tensor(path: &Path, tensor: &str, msg: impl Into<String>) -> Self {
        Error::Tensor {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            msg: msg.into(),
        }
    }
}

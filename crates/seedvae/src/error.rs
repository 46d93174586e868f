//! The library's error: each lower crate's error kept whole as the source, plus what only the
//! front door knows (a model that cannot serve the request, a backend that cannot run here).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Weights(#[from] seedvae_weights::Error),
    #[error(transparent)]
    Onnx(#[from] seedvae_onnx::Error),
    #[error(transparent)]
    Engine(#[from] seedvae_engine::Error),
    #[error(transparent)]
    Runner(#[from] seedvae_runner::Error),
    /// A file could not be read or written (the OS error is part of the message, not also a
    /// `source`, which would print it twice).
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The request cannot be served with this input; the message names the file and what to change.
    #[error("{0}")]
    Invalid(String),
    /// A backend cannot run on this machine (no GPU, unsupported GPU, library missing...).
    #[error(transparent)]
    Unavailable(#[from] seedvae_runner::Unavailable),
    /// `--backend auto` skipped TensorRT-RTX, and the CPU could not run the model either.
    #[error("TensorRT-RTX cannot run here ({reason}), and the CPU fallback failed")]
    Fallback {
        reason: String,
        #[source]
        source: Box<Error>,
    },
    /// A run was stopped by its [`crate::CancelToken`].
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            cause: source,
        }
    }

    /// True when the run stopped because it was cancelled (Ctrl-C), not because it failed.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            Error::Interrupted | Error::Runner(seedvae_runner::Error::Interrupted)
        )
    }
}

/// `Invalid` with a formatted message.
macro_rules! invalid {
    ($($t:tt)*) => { $crate::Error::Invalid(format!($($t)*)) };
}
pub(crate) use invalid;

//! The library's error: each lower crate's error kept whole as the source, plus what only the
//! front door knows (a model that cannot serve the request, a backend that cannot run here).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A list of backends (`auto`) skipped the first ones, and the last could not run the model
    /// either.
    #[error("{reason}; and the fallback, {last}, failed")]
    Fallback {
        /// Why each earlier backend was not used.
        reason: String,
        /// The last backend tried.
        last: &'static str,
        #[source]
        source: Box<Error>,
    },
    /// A host buffer does not fit in this machine's memory (the message says what, how much
    /// it needs and how much there is).
    #[error(transparent)]
    Memory(#[from] seedvae_weights::OutOfMemory),
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

    /// Is this "the machine cannot do it" (no or old driver, GPU out of memory, TensorRT-RTX
    /// refusing this GPU, a CUDA or JIT failure) rather than "the model or input is wrong"? The
    /// first kind makes `--backend auto` fall back to the CPU; the second is the user's to fix.
    pub fn is_environment_failure(&self) -> bool {
        use seedvae_engine::Error as E;
        use seedvae_runner::Error as R;
        matches!(
            self,
            Error::Unavailable(_)
                | Error::Runner(R::Unavailable(_) | R::Backend(_) | R::TrtCall { .. })
                | Error::Engine(E::TensorRt { .. } | E::Library(_) | E::Load { .. } | E::Shared(_))
        )
    }

    /// Did a buffer not fit in memory (too large an input or output for this machine)?
    pub fn is_out_of_memory(&self) -> bool {
        use seedvae_runner::Error as R;
        use seedvae_weights::Error as W;
        matches!(
            self,
            Error::Memory(_)
                | Error::Weights(W::Memory(_))
                | Error::Runner(R::Memory(_) | R::Weights(W::Memory(_)))
        )
    }

    /// Is this the input's or a setting's fault — a bad file, shape, value or option, whose
    /// message says what to change — rather than the machine's or seedvae's?
    pub fn is_invalid_input(&self) -> bool {
        use seedvae_runner::Error as R;
        !self.is_out_of_memory()
            && matches!(
                self,
                Error::Invalid(_)
                    | Error::Weights(_)
                    | Error::Runner(R::Input(_) | R::Plan(_) | R::Weights(_))
            )
    }

    /// True when the run stopped because it was cancelled (Ctrl-C), not because it failed.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            Error::Interrupted
                | Error::Runner(seedvae_runner::Error::Interrupted)
                | Error::Engine(seedvae_engine::Error::Cancelled)
        )
    }
}

/// An error and its causes on one line (`what: cause: cause`), as the CLI prints errors: for
/// reasons kept in text (a fallback's), where a library error keeps its detail in its source.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// `Invalid` with a formatted message.
macro_rules! invalid {
    ($($t:tt)*) => { $crate::Error::Invalid(format!($($t)*)) };
}
pub(crate) use invalid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_failures_are_told_from_model_errors() {
        let env = [
            Error::Unavailable(seedvae_runner::Unavailable("no NVIDIA driver".into())),
            Error::Runner(seedvae_runner::Error::Backend(
                "CUDA_ERROR_OUT_OF_MEMORY".into(),
            )),
            Error::Engine(seedvae_engine::Error::Library("cannot load".into())),
        ];
        assert!(env.iter().all(Error::is_environment_failure));
        let model = [
            Error::Invalid("x.onnx is an encoder model".into()),
            Error::Runner(seedvae_runner::Error::Input("latent: bad shape".into())),
            Error::Interrupted,
        ];
        assert!(!model.iter().any(Error::is_environment_failure));
        assert!(model[..2].iter().all(Error::is_invalid_input));
        assert!(!env.iter().chain(&model[2..]).any(Error::is_invalid_input));
    }
}

//! # seedvae-engine — engine building and the engine cache
//!
//! Owns: TensorRT-RTX engine builds from seedvae ONNX graphs, ahead of time for named GPU
//! architectures (no GPU needed); build profiles; the cache and its whole layout ([`cache`]:
//! engines, recipes, converted graphs, locks, staging, gc — nothing outside it joins cache
//! paths); engine packs ([`pack`]); and locating the TensorRT-RTX libraries ([`libs`], which
//! also holds the setup-venv search the runner uses for ONNX Runtime).
//!
//! Must not touch: weight parsing or graph construction (it reads graphs through their
//! `seedvae-onnx` contract), running engines (the runner's job), the CLI. No network code.

pub mod build;
pub mod cache;
pub mod job;
pub mod layers;
pub mod libs;
pub mod pack;
pub mod profile;

pub use build::{
    build_engine, load_libraries, BuildOutput, BuildRequest, Libraries, Range3, ShapeRange, Target,
};
pub use cache::{
    is_key, locate, read_manifest, sidecar, Cache, Entry, GcReport, KeyParts, Manifest, Outcome,
};
pub use job::{inspect_graph, Graph, Job};
pub use layers::{summarize as summarize_layers, LayerSummary};
pub use pack::Installed;
pub use profile::{EnginePrecision, FieldError, Profile, DEFAULT_PROFILE};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A library that cannot be used (not found: the message says what to install).
    #[error("{0}")]
    Library(String),
    /// A library file that cannot be loaded or is not the one expected; the loader's error is
    /// the source.
    #[error("{what}")]
    Load {
        what: String,
        #[source]
        source: libloading::Error,
    },
    /// An earlier failure, kept once for the process and shared (e.g. loading the libraries).
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
    #[error("{0}")]
    Config(String),
    #[error("engine cache: {0}")]
    Cache(String),
    #[error("{0}")]
    Pack(String),
    /// An engine, manifest or cache entry that does not hold up (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// The OS error is part of the message (not also a `source`: it would print twice).
    #[error("{}: {cause}", path.display())]
    Io {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    /// A TensorRT-RTX call failed; `what` says which step, the source is TensorRT-RTX's error.
    #[error("{what}")]
    TensorRt {
        what: String,
        #[source]
        source: trtx::Error,
    },
    #[error(transparent)]
    Onnx(#[from] seedvae_onnx::Error),
    /// A build stopped by its cancel flag (Ctrl-C): nothing was written.
    #[error("interrupted")]
    Cancelled,
    #[error(transparent)]
    Weights(#[from] seedvae_weights::Error),
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            cause: source,
        }
    }
}

//! # seedvae-engine — engine building and the engine cache
//!
//! Owns: TensorRT-RTX engine builds from seedvae ONNX graphs, ahead of time for named GPU
//! architectures (no GPU needed), and locating the TensorRT-RTX libraries ([`libs`], which also
//! holds the setup-venv search the runner uses for ONNX Runtime).
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
pub use layers::{summarize as summarize_layers, LayerSummary};
pub use profile::{EnginePrecision, Profile, DEFAULT_PROFILE};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Library(String),
    #[error("TensorRT-RTX could not parse the ONNX graph: {0}")]
    Parse(String),
    #[error("{0}")]
    Build(String),
    #[error("{0}")]
    Config(String),
    #[error("engine cache: {0}")]
    Cache(String),
    #[error("{0}")]
    Pack(String),
    #[error(transparent)]
    Onnx(#[from] seedvae_onnx::Error),
}

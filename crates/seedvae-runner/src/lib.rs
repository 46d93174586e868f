//! # seedvae-runner — running exported graphs and engines
//!
//! Owns: the [`backend::Backend`] trait and its implementations (ONNX Runtime on the CPU here;
//! TensorRT-RTX on RTX GPUs), locating their native libraries ([`libs`]), and everything that
//! drives a backend: temporal streaming with carried causal state, spatial tiling, frame I/O.
//!
//! Must not touch: weight parsing (uses `seedvae-weights`), graph construction (uses
//! `seedvae-onnx`), engine building. No networking code, by construction.

pub mod backend;
pub mod calibrate;
pub mod frames;
pub mod io;
pub mod libs;
pub mod ort_backend;
pub mod pipeline;
pub mod planner;
pub mod precision;
pub mod prepare;
pub mod stream;
pub mod tensor;
pub mod tiling;
pub mod trt_backend;
pub mod video;
pub mod y4m;

pub use backend::Backend;
pub use ort_backend::OrtBackend;
pub use tensor::Tensor;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Onnx(#[from] seedvae_onnx::Error),
    #[error(transparent)]
    Weights(#[from] seedvae_weights::Error),
    #[error("{0}")]
    Backend(String),
    #[error("{0}")]
    Input(String),
    #[error("interrupted")]
    Interrupted,
}

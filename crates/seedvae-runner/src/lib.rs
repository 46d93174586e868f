//! # seedvae-runner — running exported graphs and engines
//!
//! Owns: the [`backend::Backend`] trait and its two implementations ([`ort_backend`]: ONNX
//! Runtime on the CPU; [`trt_backend`]: TensorRT-RTX on RTX GPUs, with the checks that decide
//! whether it can run), locating their native libraries ([`libs`]), and everything that drives a
//! backend, in spec order: temporal streaming with carried causal state ([`stream`]), spatial
//! tiling and blending ([`tiling`]), cutting a clip into calls within a backend's limits
//! ([`planner`]), whole-clip decode and encode ([`pipeline`]), frame and latent I/O ([`io`],
//! [`video`], [`frames`], [`y4m`]), FP8 calibration and precision checks.
//!
//! Must not touch: weight parsing (uses `seedvae-weights`), graph construction (uses
//! `seedvae-onnx`), engine building and caching (uses `seedvae-engine`). No networking code, by
//! construction (tests/tests/offline.rs).

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
pub mod refit;
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

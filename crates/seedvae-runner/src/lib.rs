//! # seedvae-runner — running exported graphs and engines
//!
//! Owns, in folders by job:
//! - [`backend`]: the [`Backend`] trait and its implementations (`ort`: ONNX Runtime on the
//!   CPU and through CUDA; [`tensorrt`]: TensorRT-RTX on RTX GPUs, with the checks that decide
//!   whether it can run here; `native`: seedvae's own executor, `seedvae-exec`), and locating
//!   their native libraries;
//! - the core that drives a backend, in spec order: temporal streaming with carried causal
//!   state (`stream`), spatial tiling and blending (`tiling`), cutting a clip into calls within
//!   a backend's limits ([`planner`]), whole-clip decode and encode ([`pipeline`]);
//! - [`media`]: frames and tensors in and out, one file per format (png, y4m, npy, safetensors);
//! - [`color`]: colour correction in a run (a correcting sink, a video in memory), the
//!   arithmetic being `seedvae-color`'s;
//! - [`prepare`]: build-time graph preparation, which needs ONNX Runtime — the FP8 policy in one
//!   place (graph recipes, calibration, the precision report, refit from the user's weights).
//!
//! Must not touch: weight parsing (uses `seedvae-weights`), colour arithmetic (`seedvae-color`),
//! graph construction (uses
//! `seedvae-onnx`), engine building and caching (uses `seedvae-engine`), orchestration and user
//! messages about flags (the `seedvae` crate). No networking code, by construction
//! (tests/tests/offline.rs).

pub mod backend;
pub mod color;
pub mod media;
pub mod pipeline;
pub mod planner;
pub mod prepare;
mod stream;
mod tensor;
mod tiling;

pub use backend::libs::onnxruntime as onnxruntime_library;
pub use backend::native::{cuda_executor_ready, open_cuda_executor, NativeBackend};
pub use backend::ort::{cuda_ready, OrtBackend, OrtDevice};
pub use backend::tensorrt::{self, TrtBackend};
pub use backend::{Backend, BackendKind, DeviceMemory, Unavailable};
pub use media::{check_latent, crop, read_latent, read_tensor, read_video, write_tensor};
pub use pipeline::{Pad, RunStats};
pub use planner::Limits;
pub use prepare::{calibration_inputs, default_calibration, default_evaluation, GraphRecipe};
pub use seedvae_exec::Foreign;
pub use stream::{
    concat_time, host_chunk, slice_time, Chunk, HostChunk, HostRun, HostStreamed, StreamId,
    Streamer, Streams,
};
pub use tensor::{Data, Tensor};
pub use tiling::{plan_axis, Blender, Tile};

// Library errors keep the library's own error as their `source` and say only what failed in
// their message: callers print the chain (`{:#}` in the CLI, joined in Python's messages).

/// An input or output problem, naming the file.
pub(crate) fn bad(path: &std::path::Path, msg: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: {msg}", path.display()))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Onnx(#[from] seedvae_onnx::Error),
    #[error(transparent)]
    Weights(#[from] seedvae_weights::Error),
    #[error(transparent)]
    Engine(#[from] seedvae_engine::Error),
    /// A backend cannot run on this machine.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// A host buffer the run needs does not fit in memory.
    #[error(transparent)]
    Memory(#[from] seedvae_weights::OutOfMemory),
    /// A TensorRT-RTX call failed: `what` says which, the source is TensorRT-RTX's own error.
    #[error("{what}")]
    TrtCall {
        what: String,
        #[source]
        source: trtx::Error,
    },
    /// An ONNX Runtime call failed: `what` says which (and on which graph), the source is ONNX
    /// Runtime's own error.
    #[error("{what}")]
    Ort {
        what: String,
        #[source]
        source: ort::Error,
    },
    /// A CUDA driver call failed: `what` says which, the source is the driver's error.
    #[error("{what}")]
    Cuda {
        what: String,
        #[source]
        source: cudarc::driver::DriverError,
    },
    /// A backend returned something the contract does not allow (no library error behind it).
    #[error("{0}")]
    Backend(String),
    /// An input or output file is wrong (the message names it).
    #[error("{0}")]
    Input(String),
    /// The clip cannot be cut into calls this model takes (the message says what to change).
    #[error("{0}")]
    Plan(String),
    #[error("interrupted")]
    Interrupted,
}

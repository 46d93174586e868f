//! The TensorRT-RTX backend: runs a cached engine on an RTX GPU. In files by job:
//! - `device`: can it run here (GPU, compute capability, library version) — plain checks,
//!   unit-tested without a GPU;
//! - `contract`: the engine against its I/O contract (limits per call, I/O table, shapes, bytes);
//! - `runtime`: the process-wide logger and runtime (made once), refit, the runtime cache file;
//! - `states`: a stream's carried state on the GPU (two sets, ping-pong);
//! - `backend`: [`TrtBackend`], a thin sequence of documented TensorRT-RTX calls — deserialize,
//!   one execution context (one optimization profile: ours have one), user-managed activation
//!   memory sized for the current shapes, `setInputShape`, `setTensorAddress`, `enqueueV3` on a
//!   CUDA stream, pinned host staging — with the JIT runtime cache kept beside the engine.
//!
//! How much memory a tile needs is the shared memory plan's (`planner::memory`). CUDA memory
//! and streams come from `cudarc`, whose driver library (`libcuda.so.1` / `nvcuda.dll`) is loaded
//! at run time, so this compiles and runs its checks everywhere.
//!
//! Not tested here: the execution path needs a supported GPU (this workplace's H100/H200 is
//! compute capability 9.0, which TensorRT-RTX refuses).

mod backend;
mod contract;
mod device;
mod runtime;
mod states;

pub use backend::TrtBackend;
pub use contract::{activation_size, check_io_table, limits, output_shape, EngineTensor};
pub use device::{
    check_device, check_version, invalidity_text, preflight, probe_gpu, runtime_ready, GpuInfo,
    SUPPORTED_CC,
};
pub use runtime::{refit_count, runtime_cache_path};

use crate::Error;

/// A failed TensorRT-RTX call, its own error kept as the source.
fn trt(what: &'static str) -> impl Fn(trtx::Error) -> Error {
    move |source| Error::TrtCall {
        what: format!("TensorRT-RTX: {what}"),
        source,
    }
}

/// A failed CUDA driver call, its own error kept as the source.
fn cuda(what: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |source| Error::Cuda {
        what: format!("CUDA: {what}"),
        source,
    }
}

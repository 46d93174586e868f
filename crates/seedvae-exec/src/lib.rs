//! # seedvae-exec — the SeedVR2 VAE, layer by layer
//!
//! Owns the VAE's forward pass as seedvae runs it natively: the decoder and encoder of
//! `../shared/spec/seedvr2_vae.md` (§5, §6) as a schedule of layers ([`Vae`]) built from the
//! schema's blocks and the user's weights, run one time chunk at a time with every causal
//! conv's last frames carried to the next chunk ([`Stream`], §8) — so streaming equals one-shot.
//! The layers run on a [`Device`]: [`Reference`] is plain Rust (f32 storage, f64 statistics; the
//! oracle the GPU device is held to, and `--backend reference`); [`Cuda`] is an NVIDIA GPU
//! (cuDNN, cuBLAS and seedvae's own kernels; `--backend cuda`).
//!
//! Must not touch: weight files (read through `seedvae-weights`), ONNX graphs, engines, the
//! runner's backend contract (the runner adapts this crate to it), or anything that prints.

mod device;
mod vae;

pub use device::cuda::plan::{
    planned_peak, split_within, workspace_allowance, Fit, MemoryPlanner, Planned, PlannedParked,
};
pub use device::cuda::{
    cuda_ready, wheel_lib_dirs, Cuda, CudaOptions, Download, Elem, GpuBuf, Parked,
};
pub use device::reference::Reference;
pub use device::{Act, AttnWeights, ConvWeights, Device, Dims, Foreign, NormWeights, Pad};
pub use vae::{Split, Stream, Vae};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Weights(#[from] seedvae_weights::Error),
    /// An input or a weight of a shape the VAE cannot take (the message says which).
    #[error("{0}")]
    Shape(String),
    /// A device failed (the message names the operation).
    #[error("{0}")]
    Device(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! What can run on this machine, and why not: a cheap query per backend (its libraries load, a
//! GPU it supports answers) that opens no model. `prepare` walks a backend list with it; the
//! selftest, the CLI (`seedvae backends`), Python (`seedvae.backends()`) and the ComfyUI loader
//! show it. Also the vocabulary of backends: their kinds, settings and GPUs.

use crate::options::{BackendChoice, BackendSpec};
use seedvae_runner::tensorrt;

pub use crate::options::{
    BackendSettings, CpuOptions, CudaOptions, OrtCudaOptions, TensorrtOptions,
};
pub use seedvae_runner::tensorrt::{probe_gpu, runtime_ready as tensorrt_ready, GpuInfo};
pub use seedvae_runner::{BackendKind, Unavailable};

/// Whether one backend can run here.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Availability {
    /// Written as its name ("tensorrt-rtx", "seedvae-cuda", "onnxruntime-cuda",
    /// "onnxruntime-cpu", "reference").
    pub backend: BackendKind,
    /// The GPU it would run on (GPU backends that can run).
    pub gpu: Option<GpuInfo>,
    /// Why it cannot run here; None when it can.
    pub unavailable: Option<String>,
}

/// Can `spec`'s backend run here, and on which GPU? Loads libraries and asks the driver; opens
/// no model and allocates nothing on the GPU.
pub(crate) fn ready(spec: &BackendSpec) -> Result<Option<GpuInfo>, Unavailable> {
    match spec {
        BackendSpec::Tensorrt(t) => tensorrt::runtime_ready(t.library_dir.as_deref()).map(Some),
        BackendSpec::Cuda(_) => seedvae_runner::cuda_executor_ready().map(Some),
        BackendSpec::OrtCuda(_) => seedvae_runner::cuda_ready().map(Some),
        BackendSpec::Reference(_) => Ok(None),
        BackendSpec::Cpu(_) => match seedvae_runner::backend::ort::environment(None) {
            Ok(_) => Ok(None),
            Err(seedvae_runner::Error::Unavailable(u)) => Err(u),
            Err(e) => Err(Unavailable(e.to_string())),
        },
    }
}

/// Whether `spec`'s backend can run here ([`ready`] as a report).
pub fn availability(spec: &BackendSpec) -> Availability {
    let (gpu, unavailable) = match ready(spec) {
        Ok(gpu) => (gpu, None),
        Err(why) => (None, Some(why.0)),
    };
    Availability {
        backend: spec.kind(),
        gpu,
        unavailable,
    }
}

/// Every backend seedvae has, in `auto`'s order, with default settings (`settings` for the
/// library folder and the like): what can run here and why not.
pub fn available(settings: &BackendSettings) -> Vec<Availability> {
    BackendChoice::Auto
        .specs(settings)
        .iter()
        .map(availability)
        .collect()
}

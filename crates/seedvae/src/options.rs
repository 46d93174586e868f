//! How to open a model: the backends to try, in order, each with its own settings (the way ONNX
//! Runtime lists execution providers), and what all of them share (memory budget, cache).

use crate::error::{invalid, Result};
use seedvae_runner::BackendKind;
use std::path::PathBuf;

/// TensorRT-RTX's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorrtOptions {
    /// Folder with the TensorRT-RTX libraries; None: `$SEEDVAE_TENSORRT_DIR`, else the setup venv.
    pub library_dir: Option<PathBuf>,
    /// Engine profile when an engine is built from weights or ONNX for this GPU.
    pub profile: String,
}

impl Default for TensorrtOptions {
    fn default() -> Self {
        TensorrtOptions {
            library_dir: None,
            profile: seedvae_engine::DEFAULT_PROFILE.to_string(),
        }
    }
}

/// seedvae's CUDA executor's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CudaOptions {
    /// Keep activations in fp32 with fp32 arithmetic (no TF32) instead of fp16 storage on the
    /// tensor cores (fp32 accumulation).
    pub fp32: bool,
}

/// ONNX Runtime's CUDA provider's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrtCudaOptions {
    /// Run the fp32 graph (TF32 off) instead of the fp16 one.
    pub fp32: bool,
}

/// ONNX Runtime on the CPU: its settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuOptions {
    /// Intra-op threads; 0: all cores.
    pub threads: usize,
}

/// One backend to try, with its own settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BackendSpec {
    /// A TensorRT-RTX engine on an RTX GPU (built for it from weights or ONNX when needed).
    Tensorrt(TensorrtOptions),
    /// seedvae's own executor on GPU 0: the VAE layer by layer from the weights (cuDNN,
    /// cuBLAS and seedvae's kernels), whole frames, exact.
    Cuda(CudaOptions),
    /// ONNX Runtime's CUDA provider on GPU 0 (the streaming fp16 graph, or fp32).
    OrtCuda(OrtCudaOptions),
    /// ONNX Runtime on the CPU (the streaming fp32 graph).
    Cpu(CpuOptions),
    /// seedvae's own executor on its reference device: the VAE layer by layer in plain Rust on
    /// the CPU, from the weights (slow; exact; the oracle the GPU executor is held to).
    Reference(CpuOptions),
}

impl BackendSpec {
    /// The backend this spec opens.
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendSpec::Tensorrt(_) => BackendKind::TensorrtRtx,
            BackendSpec::Cuda(_) => BackendKind::Cuda,
            BackendSpec::OrtCuda(_) => BackendKind::OrtCuda,
            BackendSpec::Cpu(_) => BackendKind::OrtCpu,
            BackendSpec::Reference(_) => BackendKind::Reference,
        }
    }

    /// How messages name it.
    pub(crate) fn title(&self) -> &'static str {
        title(self.kind())
    }
}

/// How messages name a backend (the reasons `auto` gives for passing one by).
pub(crate) fn title(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::TensorrtRtx => "TensorRT-RTX",
        BackendKind::Cuda => "seedvae's CUDA executor",
        BackendKind::OrtCuda => "ONNX Runtime's CUDA provider",
        BackendKind::OrtCpu => "the CPU (ONNX Runtime)",
        BackendKind::Reference => "the reference executor (CPU)",
        other => other.name(),
    }
}

/// The usual choices, as `seedvae --backend` and Python's `backend=` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BackendChoice {
    /// TensorRT-RTX when a supported GPU and engine are there, else seedvae's CUDA executor,
    /// else ONNX Runtime's CUDA provider, else the CPU (each skip with its reason).
    #[default]
    Auto,
    /// TensorRT-RTX on the GPU, or an error with the reason.
    Tensorrt,
    /// seedvae's own CUDA executor on any NVIDIA GPU, from the weights, or an error with the
    /// reason.
    Cuda,
    /// ONNX Runtime's CUDA provider on any NVIDIA GPU (fp16 graphs), or an error with the reason.
    #[serde(rename = "ort-cuda")]
    OrtCuda,
    /// ONNX Runtime on the CPU.
    Cpu,
    /// seedvae's own executor on its plain-Rust reference device (slow, exact; tests and checks).
    Reference,
}

/// Every backend's settings, for turning a [`BackendChoice`] into its list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendSettings {
    pub tensorrt: TensorrtOptions,
    pub cuda: CudaOptions,
    pub ort_cuda: OrtCudaOptions,
    pub cpu: CpuOptions,
}

impl BackendChoice {
    /// The backends this choice tries, in order, with `settings`.
    pub fn specs(self, settings: &BackendSettings) -> Vec<BackendSpec> {
        let trt = || BackendSpec::Tensorrt(settings.tensorrt.clone());
        let cuda = || BackendSpec::Cuda(settings.cuda.clone());
        let ort_cuda = || BackendSpec::OrtCuda(settings.ort_cuda.clone());
        let cpu = || BackendSpec::Cpu(settings.cpu.clone());
        match self {
            BackendChoice::Auto => vec![trt(), cuda(), ort_cuda(), cpu()],
            BackendChoice::Tensorrt => vec![trt()],
            BackendChoice::Cuda => vec![cuda()],
            BackendChoice::OrtCuda => vec![ort_cuda()],
            BackendChoice::Cpu => vec![cpu()],
            BackendChoice::Reference => vec![BackendSpec::Reference(settings.cpu.clone())],
        }
    }
}

/// How to open a model. `ModelOptions::default()` is what `seedvae decode` does without flags.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The backends to try, in order. The first that can run here and opens runs the model;
    /// with more than one, a GPU backend that fails to open or fails its very first call gives
    /// way to the next (each skip reported with its reason).
    pub backends: Vec<BackendSpec>,
    /// GPU memory to plan tiles within, in GB; None: the GPU's free memory less 0.5 GB.
    pub vram_budget_gb: Option<f64>,
    /// Engine and graph cache directory; None: `$SEEDVAE_CACHE`, else the user cache directory.
    pub cache: Option<PathBuf>,
    /// With an engine as the model: the user's weights (refit, or the graph backends).
    pub weights: Option<PathBuf>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions::new(BackendChoice::Auto)
    }
}

impl ModelOptions {
    /// `choice`'s backends with default settings.
    pub fn new(choice: BackendChoice) -> ModelOptions {
        ModelOptions {
            backends: choice.specs(&BackendSettings::default()),
            vram_budget_gb: None,
            cache: None,
            weights: None,
        }
    }

    /// Refuse settings that cannot be meant: no backend or one twice, more threads than cores,
    /// a budget that is not a positive number of GB.
    pub fn validate(&self) -> Result<()> {
        if self.backends.is_empty() {
            return Err(invalid!("`backends` is empty: name at least one backend"));
        }
        for (i, b) in self.backends.iter().enumerate() {
            if self.backends[..i].iter().any(|a| a.kind() == b.kind()) {
                return Err(invalid!("`backends` names {} twice", b.kind()));
            }
            if let BackendSpec::Cpu(c) | BackendSpec::Reference(c) = b {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                if c.threads > cores {
                    return Err(invalid!(
                        "`threads` {}: this machine has {cores} logical cores; use at most {cores} (0 = all)",
                        c.threads
                    ));
                }
            }
        }
        if let Some(gb) = self.vram_budget_gb {
            if !(gb.is_finite() && gb > 0.0 && gb <= 4096.0) {
                return Err(invalid!(
                    "`vram_budget_gb` {gb}: give the GPU memory to plan within in GB, e.g. 12"
                ));
            }
        }
        Ok(())
    }

    /// The CPU's settings: the listed ones, else the defaults (the first-run check's reference
    /// runs on the CPU whatever the list).
    pub(crate) fn cpu(&self) -> CpuOptions {
        self.backends
            .iter()
            .find_map(|b| match b {
                BackendSpec::Cpu(c) => Some(c.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// GPU memory to plan within: `vram_budget_gb`, else the free memory less 0.5 GB.
    pub(crate) fn plan_budget(&self, free_bytes: u64) -> u64 {
        match self.vram_budget_gb {
            Some(gb) => (gb * 1e9) as u64,
            None => free_bytes.saturating_sub(512 << 20),
        }
    }
}

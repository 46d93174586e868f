//! Flags shared by several commands, and their translation into the library's option structs
//! (the only place clap types meet library types).

use seedvae::{
    backends::{BackendSettings, CpuOptions, CudaOptions, OrtCudaOptions, TensorrtOptions},
    engines::EnginePrecision,
    weights::Precision,
    BackendChoice, DType, ModelOptions, Part, TileOptions,
};
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PartArg {
    Decoder,
    Encoder,
}

impl From<PartArg> for Part {
    fn from(p: PartArg) -> Part {
        match p {
            PartArg::Decoder => Part::Decoder,
            PartArg::Encoder => Part::Encoder,
        }
    }
}

/// Graph precision (`convert`).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Fp16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Fp16 => Precision::Fp16,
        }
    }
}

/// Engine precision (`build`).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EnginePrecisionArg {
    Fp8,
    Fp16,
    Fp32,
}

impl From<EnginePrecisionArg> for EnginePrecision {
    fn from(p: EnginePrecisionArg) -> EnginePrecision {
        match p {
            EnginePrecisionArg::Fp8 => EnginePrecision::Fp8,
            EnginePrecisionArg::Fp16 => EnginePrecision::Fp16,
            EnginePrecisionArg::Fp32 => EnginePrecision::Fp32,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// TensorRT-RTX when a supported GPU and engine are there, else seedvae's CUDA executor,
    /// else ONNX Runtime's CUDA provider, else the CPU (says why).
    Auto,
    /// TensorRT-RTX on the GPU, or fail with the reason.
    Tensorrt,
    /// seedvae's own CUDA executor on any NVIDIA GPU, from the weights: exact at any size (no
    /// tiles; bands of rows when memory needs them, the same values) (needs the NVIDIA driver
    /// and the CUDA libraries NVRTC, cuDNN 9, cuBLAS).
    Cuda,
    /// ONNX Runtime's CUDA provider on any NVIDIA GPU (needs `scripts/setup.sh --gpu`).
    OrtCuda,
    /// ONNX Runtime on the CPU.
    Cpu,
    /// seedvae's own executor, layer by layer in plain Rust on the CPU, from the weights: slow,
    /// exact (the oracle its GPU executor is checked against). --threads applies.
    Reference,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> BackendChoice {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Tensorrt => BackendChoice::Tensorrt,
            BackendArg::Cuda => BackendChoice::Cuda,
            BackendArg::OrtCuda => BackendChoice::OrtCuda,
            BackendArg::Cpu => BackendChoice::Cpu,
            BackendArg::Reference => BackendChoice::Reference,
        }
    }
}

#[derive(clap::Args)]
pub struct ModelArgs {
    /// The model: SeedVR2 VAE weights (.safetensors / .gguf), an ONNX graph from `seedvae convert`,
    /// an engine from `seedvae build -o` (with its .manifest.json), a cache entry or its key.
    #[arg(long, short = 'm')]
    pub model: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendArg,
    /// Engine profile when an engine is built from weights or ONNX for this GPU.
    #[arg(long, default_value = seedvae::engines::DEFAULT_PROFILE)]
    pub profile: String,
    /// GPU memory to plan tiles within, in GB (default: the GPU's free memory less 0.5 GB).
    #[arg(long)]
    pub vram_budget: Option<f64>,
    /// CPU threads for ONNX Runtime (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Engine and graph cache directory (default: $SEEDVAE_CACHE, else ~/.cache/seedvae or
    /// %LOCALAPPDATA%\seedvae).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Folder with the TensorRT-RTX libraries (default: $SEEDVAE_TENSORRT_DIR, else the setup venv).
    #[arg(long)]
    pub tensorrt_dir: Option<PathBuf>,
    /// With an engine as --model: your weights file. Refits a weightless engine (checked against
    /// the hash in its manifest first) and lets the CPU run when TensorRT-RTX cannot.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// With --backend cuda or ort-cuda: compute in fp32 (TF32 off; matches the CPU to ~1e-6,
    /// several times slower and twice the memory) instead of fp16.
    #[arg(long)]
    pub cuda_fp32: bool,
}

impl ModelArgs {
    /// Open the model for `part`; a refused `--backend tensorrt` says how to run anyway.
    pub fn open(&self, part: Part, progress: &seedvae::Progress) -> anyhow::Result<seedvae::Model> {
        let m = seedvae::Model::open(&self.model, part, &self.options(), progress);
        if self.backend == BackendArg::Tensorrt {
            use anyhow::Context;
            return m.context(
                "the TensorRT-RTX backend cannot run here (--backend cpu runs on the CPU)",
            );
        }
        Ok(m?)
    }

    pub fn options(&self) -> ModelOptions {
        let settings = BackendSettings {
            tensorrt: TensorrtOptions {
                library_dir: self.tensorrt_dir.clone(),
                profile: self.profile.clone(),
            },
            cuda: CudaOptions {
                fp32: self.cuda_fp32,
            },
            ort_cuda: OrtCudaOptions {
                fp32: self.cuda_fp32,
            },
            cpu: CpuOptions {
                threads: self.threads,
            },
        };
        ModelOptions {
            backends: BackendChoice::from(self.backend).specs(&settings),
            vram_budget_gb: self.vram_budget,
            cache: self.cache.clone(),
            weights: self.weights.clone(),
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DTypeArg {
    F32,
    F16,
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> DType {
        match d {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
        }
    }
}

/// Output flags shared by decode and encode.
#[derive(clap::Args)]
pub struct OutArgs {
    /// Value type of a .safetensors / .npy output.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DTypeArg,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary at the end.
    #[arg(long)]
    pub json: bool,
}

/// Spatial tiling flags shared by decode and encode.
#[derive(clap::Args)]
pub struct TileArgs {
    /// Tile edge in output pixels (the ComfyUI node's tile size); frames larger than this, or
    /// than the engine takes, are decoded in overlapping tiles blended with a raised cosine. On
    /// seedvae's executor (`--backend cuda`, `reference`) a size other than the default is a band
    /// height instead: taller frames run every layer this many rows at a time, exactly (no
    /// overlap, no blending).
    #[arg(long, default_value_t = TileOptions::default().tile_px)]
    pub tile_size: usize,
    /// Tile overlap in output pixels.
    #[arg(long, default_value_t = TileOptions::default().overlap_px)]
    pub tile_overlap: usize,
    /// Never tile: a frame larger than the model takes is an error.
    #[arg(long)]
    pub no_tiling: bool,
    /// Latent frames per backend call (streaming models; default: the largest the engine takes,
    /// 1 on the CPU). Results do not depend on it.
    #[arg(long)]
    pub chunk: Option<usize>,
}

impl TileArgs {
    pub fn options(&self) -> TileOptions {
        TileOptions {
            tile_px: self.tile_size,
            overlap_px: self.tile_overlap,
            no_tiling: self.no_tiling,
            chunk: self.chunk,
        }
    }
}

/// The end-of-run summary of decode and encode (printed as text or JSON).
#[derive(serde::Serialize)]
pub struct Summary {
    pub output: PathBuf,
    #[serde(flatten)]
    pub run: seedvae::RunReport,
    /// Peak resident host memory of the whole process (Linux only).
    pub peak_host_bytes: Option<u64>,
}

impl Summary {
    pub fn new(output: &std::path::Path, run: seedvae::RunReport) -> Summary {
        Summary {
            output: output.to_path_buf(),
            run,
            peak_host_bytes: super::peak_host_bytes(),
        }
    }

    /// The summary, text or JSON, in the CLI's words (a fallback reason names flags and
    /// `scripts/setup.sh`; no replacement holds a quote, so the JSON stays valid).
    pub fn print(&self, json: bool, verb: &str) -> anyhow::Result<()> {
        if json {
            println!(
                "{}",
                super::flags::speak_cli(&serde_json::to_string_pretty(self)?)
            );
            return Ok(());
        }
        let r = &self.run;
        let line = format!(
            "{verb} {} frames of {}×{} in {:.1}s ({:.2} frames/s) on {}{}; {} chunk(s), {} tile(s){} → {}",
            r.frames,
            r.width,
            r.height,
            r.seconds,
            r.frames_per_second,
            r.backend,
            r.fallback_reason
                .as_ref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default(),
            r.chunks,
            r.tiles,
            r.tile_px.map(|t| format!(" of {t} px")).unwrap_or_default(),
            self.output.display()
        );
        println!("{}", super::flags::speak_cli(&line));
        Ok(())
    }
}

//! # seedvae — the SeedVR2 video VAE, fast and offline
//!
//! The library front door: the CLI, the benches, the demo and the Python binding call this and
//! nothing below it. It owns the orchestration — what a model path names, which backend runs it
//! and why another was skipped, engines fetched or converted / calibrated / built behind one
//! call, clip-level decode and encode with progress and cancellation, and packs. It must not
//! own formats, graph construction, engine building or backends (the crates below do), and it
//! never prints: progress and notices go through [`Progress`].
//!
//! ```text
//! weights (.safetensors/.gguf) ─ seedvae_weights ─► ONNX graph ─ seedvae_onnx
//!        └─ ensure_engine ─ seedvae_engine (cache, TensorRT-RTX build) ─► engine
//! Model::open ─ seedvae_runner (backends, planner, streaming, tiling, media) ─► frames
//! ```
//!
//! A full decode of the tiny test VAE on the CPU, checked against the original PyTorch
//! module's output:
//!
//! ```
//! use seedvae::{BackendChoice, LatentLayout, Model, ModelOptions, Part, Progress, TileOptions};
//!
//! let fixtures = seedvae_tests::fixture("vae_tiny");
//! let cache = tempfile::tempdir()?;
//! let opts = ModelOptions {
//!     backend: BackendChoice::Cpu,
//!     cache: Some(cache.path().to_path_buf()),
//!     ..ModelOptions::default()
//! };
//! let mut model = Model::open(fixtures.join("weights.safetensors"), Part::Decoder, &opts, &Progress::default())?;
//! let latent = seedvae::read_latent(&fixtures.join("latent_t3_8x8.safetensors"), LatentLayout::Vae)?;
//! let (video, report) = model.decode_tensor(&latent, &TileOptions::default(), &Progress::default())?;
//! assert_eq!(video.shape, [1, 3, 9, 64, 64]); // 4T − 3 frames of 8h × 8w
//! assert_eq!(report.backend, "onnxruntime-cpu");
//!
//! let golden = seedvae::read_tensor(&fixtures.join("decoded_t3_8x8.safetensors"), "decoded")?;
//! let (v, g) = (video.to_f32(), golden.to_f32());
//! let err: f64 = v.iter().zip(&g).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt();
//! let norm: f64 = g.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt();
//! assert!(err / norm < 1e-5, "relative L2 {}", err / norm);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backends;
mod check;
mod convert;
mod engine;
mod error;
mod graphs;
mod inspect;
mod latent;
mod load;
mod model;
mod options;
mod prepare;
mod progress;
mod run;
mod selftest;
mod ship;
mod source;

/// Host memory checked before it is taken: what the machine can give, and fallible buffers.
pub mod memory {
    pub use seedvae_weights::memory::{available, check, with_capacity, zeroed, OutOfMemory};
}

pub use backends::{availability, available, Availability};
pub use check::Bound;
pub use convert::{convert, synth, verify_precision, PrecisionRequest};
pub use engine::{ensure_engine, export_engine, EngineEntry, EngineRequest};
pub use error::{Error, Result};
pub use inspect::{verify_engine_file, WeightSummary};
pub use latent::{from_dit, read_latent, to_dit, LatentLayout, DIT_SCALE};
pub use model::Model;
pub use options::{
    BackendChoice, BackendSettings, BackendSpec, CpuOptions, CudaOptions, ModelOptions,
    TensorrtOptions,
};
pub use prepare::{prepare, Prepared};
pub use progress::{CancelToken, Event, Progress};
pub use run::{
    check_output, correct_colors, name_input, open_frames, ColorCorrection, ColorMethod,
    FileOutput, RunReport, TileOptions,
};
pub use selftest::{selftest, Check, SelftestOptions, SelftestReport, Status};
pub use ship::{install_pack, pack_engines, verify_pack, InstallReport, PackCheck};
pub use source::ModelSource;

// The vocabulary of the crates below that callers need, re-exported so that they depend on
// this crate alone.
pub use seedvae_engine::pack::PackManifest;
pub use seedvae_engine::{
    locate as locate_engine, read_manifest, sidecar, Cache, EnginePrecision, Entry, GcReport,
    Installed, Manifest, Outcome, Profile, Target, DEFAULT_PROFILE,
};
pub use seedvae_onnx::contract::METADATA_KEY as CONTRACT_METADATA_KEY;
pub use seedvae_onnx::{read_contract, Contract, ExportOptions, Precision, TensorIo};
pub use seedvae_runner::media::{FrameSink, FrameSource, MemorySink, TensorFrames};
pub use seedvae_runner::tensorrt::{probe_gpu, runtime_ready as tensorrt_ready, GpuInfo};
pub use seedvae_runner::{read_tensor, write_tensor, BackendKind, Pad, Tensor, Unavailable};
pub use seedvae_weights::output::remove_temporaries;
pub use seedvae_weights::schema::{FULL_WIDTHS, TINY_WIDTHS};
pub use seedvae_weights::synth::{Rng, SynthFormat, SynthOptions};
pub use seedvae_weights::{DType, Model as Architecture, Part, WeightFile};

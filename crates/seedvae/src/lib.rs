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
//! prepare: weights (.safetensors/.gguf) ─ seedvae_weights ─► ONNX graph ─ seedvae_onnx
//!          └─ engines::ensure_engine ─ seedvae_engine (cache, TensorRT-RTX build) ─► engine
//! load:    the first backend of the list that runs here (first-run check on a GPU) ─► Model
//! run:     Model::decode / encode ─ seedvae_runner (planner, streaming, tiling, media) ─► frames
//! ```
//!
//! [`prepare`] does the slow file work (conversion, engine builds: minutes the first time, cached
//! after) and needs no GPU; [`Prepared::load`] opens a backend (seconds); [`Model::open`] is both.
//! The root holds what opening and running a model needs; the rest is grouped: [`backends`]
//! (what can run here), [`engines`], [`weights`], [`media`], [`latent`], [`selftest`],
//! [`memory`].
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
//!     cache: Some(cache.path().to_path_buf()),
//!     ..ModelOptions::new(BackendChoice::Cpu)
//! };
//! let mut model = Model::open(fixtures.join("weights.safetensors"), Part::Decoder, &opts, &Progress::default())?;
//! let latent = seedvae::read_latent(&fixtures.join("latent_t3_8x8.safetensors"), LatentLayout::Vae)?;
//! let (video, report) = model.decode_tensor(&latent, &TileOptions::default(), &Progress::default())?;
//! assert_eq!(video.shape(), [1, 3, 9, 64, 64]); // 4T − 3 frames of 8h × 8w
//! assert_eq!(report.backend, "onnxruntime-cpu");
//!
//! let golden = seedvae::read_tensor(&fixtures.join("decoded_t3_8x8.safetensors"), "decoded")?;
//! let (v, g) = (video.to_f32(), golden.to_f32());
//! let err: f64 = v.iter().zip(&g).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt();
//! let norm: f64 = g.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt();
//! assert!(err / norm < 1e-5, "relative L2 {}", err / norm);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod backends;
mod check;
mod convert;
mod engine;
mod error;
mod graphs;
mod inspect;
pub mod latent;
mod load;
mod model;
mod options;
mod prepare;
mod progress;
mod run;
pub mod selftest;
mod ship;
mod source;

// The front door: opening and running a model.
pub use error::{Error, Result};
pub use latent::{read_latent, LatentLayout};
pub use model::Model;
pub use options::{BackendChoice, BackendSpec, ModelOptions};
pub use prepare::{prepare, Prepared};
pub use progress::{CancelToken, Event, Progress};
pub use run::{ColorCorrection, ColorMethod, FileOutput, RunReport, TileOptions};
pub use seedvae_runner::{read_tensor, write_tensor, Foreign, Pad, Tensor};
pub use seedvae_weights::{DType, Part};

/// Engines: built (or found in the cache) for a GPU, exported, packed for other machines and
/// installed from packs, and the cache they live in.
pub mod engines {
    pub use crate::engine::{ensure_engine, export_engine, EngineEntry, EngineRequest};
    pub use crate::inspect::verify_engine_file;
    pub use crate::ship::{install_pack, pack_engines, verify_pack, InstallReport, PackCheck};
    pub use seedvae_engine::pack::PackManifest;
    pub use seedvae_engine::{
        locate, read_manifest, sidecar, Cache, EnginePrecision, Entry, GcReport, Installed,
        Manifest, Outcome, Profile, Target, DEFAULT_PROFILE,
    };
}

/// Weights and graphs: inspecting and synthesizing weight files, converting them to ONNX, and
/// the graphs' I/O contract.
pub mod weights {
    pub use crate::convert::{convert, synth, verify_precision, PrecisionRequest};
    pub use crate::inspect::WeightSummary;
    pub use seedvae_onnx::contract::METADATA_KEY as CONTRACT_METADATA_KEY;
    pub use seedvae_onnx::{read_contract, Contract, ExportOptions, Precision, TensorIo};
    pub use seedvae_weights::schema::{FULL_WIDTHS, TINY_WIDTHS};
    pub use seedvae_weights::synth::{Rng, SynthFormat, SynthOptions};
    pub use seedvae_weights::{Model as Architecture, WeightFile};
}

/// Frames in and out: sources and sinks, output rules, colour correction of a decoded video.
pub mod media {
    pub use crate::run::{check_output, correct_colors, name_input, open_frames};
    pub use seedvae_runner::media::{FrameSink, FrameSource, MemorySink, TensorFrames};
    pub use seedvae_weights::output::remove_temporaries;
}

/// Host memory checked before it is taken: what the machine can give, and fallible buffers.
pub mod memory {
    pub use seedvae_weights::memory::{available, check, with_capacity, zeroed, OutOfMemory};
}

//! # seedvae-weights — weights and the model schema
//!
//! Owns: reading the user's SeedVR2 VAE checkpoint (`.safetensors`, `.gguf` v2/v3 with every
//! quantization the ComfyUI node accepts), the hardcoded model schema (spec `seedvr2_vae.md`
//! §2-§6: blocks, tensor names and shapes), validation of a file against it, random-weight
//! checkpoints (`synth`), and the output discipline every seedvae writer follows ([`output`]:
//! temporary name then rename, what `--force` may replace, temporaries removed on a second
//! Ctrl-C). It sits here, in the crate everything depends on, so that there is one.
//!
//! Must not touch: ONNX, TensorRT, inference or the CLI. It has no network code and no
//! configuration files: the model is in [`schema`], not read from anywhere.

pub mod dtype;
pub mod error;
pub mod gguf;
pub mod memory;
pub mod output;
pub mod quant;
pub mod safetensors;
pub mod schema;
pub mod synth;
pub mod weights;

pub use dtype::DType;
pub use error::{Error, Result};
pub use memory::OutOfMemory;
pub use quant::GgmlType;
pub use schema::{Block, Conv, Model, Part, Problem, Report, Variant};
pub use weights::{Format, Tensor, WeightFile};

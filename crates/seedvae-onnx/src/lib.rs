//! # seedvae-onnx — ONNX export
//!
//! Owns: turning a validated SeedVR2 VAE weight set into ONNX graphs — decoder and encoder,
//! one-shot and streaming (causal conv state as graph I/O), fp32 and fp16 — and the graph I/O
//! contract ([`contract`]) that engines and the runner rely on. The graph is a small mutable IR
//! ([`graph`]) so later passes (FP8 Q/DQ) edit it instead of re-exporting.
//!
//! Must not touch: TensorRT, inference, engine caches or the CLI. Reads weights only through
//! `seedvae-weights`; no network, no config files.
//!
//! Layout follows the spec: [`ops`] has one function per ONNX operator, [`blocks`] one per VAE
//! block (§4), [`export`] assembles §5 (decoder) and §6 (encoder), [`write`] serializes.

pub mod blocks;
pub mod contract;
pub mod export;
pub mod fp8;
pub mod graph;
pub mod ops;
pub mod proto;
pub mod quantize;
pub mod write;

pub use contract::{Contract, Precision, StateSpec, TensorIo};
pub use export::ExportOptions;
pub use graph::{Dim, Elem, Graph};

use seedvae_weights::WeightFile;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Weights(#[from] seedvae_weights::Error),
    /// The OS error is part of the message (named `cause`, not `source`, so that a chain does
    /// not print it twice).
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Metadata keys written into every exported model.
pub mod meta {
    pub const SOURCE_HASH: &str = "seedvae.source_blake3";
    pub const SOURCE_FILE: &str = "seedvae.source_file";
    pub const VARIANT: &str = "seedvae.variant";
    pub const PART: &str = "seedvae.part";
    pub const PRECISION: &str = "seedvae.precision";
    pub const STREAMING: &str = "seedvae.streaming";
    pub const VERSION: &str = "seedvae.version";
    pub const QUANTIZATION: &str = "seedvae.quantization";
}

/// An initializer that holds the checkpoint's weights (or their FP8 form), as opposed to shape
/// constants: what a weightless engine strips and a refit supplies.
pub fn is_model_weight(name: &str) -> bool {
    name.starts_with("encoder.") || name.starts_with("decoder.")
}

/// The metadata of a model exported from `w` (whose content hash is `hash`) with `c`.
pub fn metadata(w: &WeightFile, hash: String, c: &Contract) -> Vec<(String, String)> {
    vec![
        (meta::SOURCE_HASH.into(), hash),
        (
            meta::SOURCE_FILE.into(),
            w.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        (meta::VARIANT.into(), w.report().variant.to_string()),
        (meta::PART.into(), c.part.to_string()),
        (meta::PRECISION.into(), c.precision.name().into()),
        (meta::STREAMING.into(), c.streaming.to_string()),
        (meta::VERSION.into(), env!("CARGO_PKG_VERSION").into()),
        (
            contract::METADATA_KEY.into(),
            serde_json::to_string(c).expect("serializable"),
        ),
    ]
}

/// Export one part of `w` to `out`. Returns the contract and write statistics.
pub fn convert(
    w: &WeightFile,
    opts: ExportOptions,
    out: &Path,
    progress: impl FnMut(usize, usize),
) -> Result<(Contract, write::WriteStats), Error> {
    let (g, c) = export::build(w, opts)?;
    // Hash the source on the second core while the first converts and writes.
    let stats = std::thread::scope(|s| {
        let hash = s.spawn(|| w.content_hash());
        let md = || Ok(metadata(w, hash.join().expect("hash thread"), &c));
        write::write_model(&g, md, out, write::EXTERNAL_DATA_THRESHOLD, progress)
    })?;
    Ok((c, stats))
}

/// The contract in a model's metadata; a clear error, naming `origin`, for any ONNX file seedvae
/// did not write.
pub fn contract_in(md: &[(String, String)], origin: &str) -> Result<Contract, Error> {
    let c = md
        .iter()
        .find(|(k, _)| k == contract::METADATA_KEY)
        .ok_or_else(|| {
            Error::Other(format!(
                "{origin}: not a seedvae model (no {} metadata). seedvae only uses graphs it wrote, \
                 whose I/O it knows: export one with `seedvae convert WEIGHTS -o MODEL.onnx`, or pass \
                 the weights file itself",
                contract::METADATA_KEY
            ))
        })?;
    serde_json::from_str(&c.1)
        .map_err(|e| Error::Other(format!("{origin}: bad {}: {e}", contract::METADATA_KEY)))
}

/// Read the contract of a model written by seedvae; a clear error for any other ONNX file.
pub fn read_contract(path: &Path) -> Result<(Contract, Vec<(String, String)>), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        cause: e,
    })?;
    let md = write::read_metadata(&bytes)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let c = contract_in(&md, &path.display().to_string())?;
    Ok((c, md))
}

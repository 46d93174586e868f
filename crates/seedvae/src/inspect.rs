//! What a file is: a weights checkpoint's summary, an engine checked against its manifest.

use crate::error::{Error, Result};
use seedvae_engine::Manifest;
use seedvae_weights::{Problem, Variant, WeightFile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A weights file at a glance: format, tensors, dtypes, variant, size, and what is wrong.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WeightSummary {
    pub file: PathBuf,
    pub format: String,
    pub file_bytes: u64,
    pub tensors: usize,
    pub dtypes: BTreeMap<String, usize>,
    pub variant: Variant,
    pub variant_text: String,
    pub parameters: u64,
    pub valid: bool,
    pub problems: Vec<Problem>,
}

impl WeightSummary {
    pub fn of(w: &WeightFile) -> WeightSummary {
        let report = w.report();
        let mut dtypes = BTreeMap::new();
        for t in w.tensors() {
            *dtypes.entry(t.stored.clone()).or_insert(0) += 1;
        }
        WeightSummary {
            file: w.path.clone(),
            format: w.format.to_string(),
            file_bytes: w.file_size() as u64,
            tensors: w.tensors().len(),
            dtypes,
            variant_text: report.variant.to_string(),
            variant: report.variant,
            parameters: w.tensors().iter().map(|t| t.numel() as u64).sum(),
            valid: report.problems.is_empty(),
            problems: report.problems,
        }
    }
}

/// Check the engine file at `engine` against its manifest; the reason when it does not hold.
pub fn verify_engine_file(m: &Manifest, engine: &Path) -> Result<()> {
    let bytes = std::fs::read(engine).map_err(|e| Error::io(engine, e))?;
    Ok(m.verify(&bytes)?)
}

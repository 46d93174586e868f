//! One tensor in a `.safetensors` file: read through seedvae-weights' checked SafeTensors parser
//! (the same one that reads checkpoints; every offset checked, F32/F16/BF16/F64), written with a
//! header of one tensor.
//!
//! Not Hugging Face's `safetensors` crate: seedvae-weights' reader is the one audited and
//! fuzzed parser for this format in the project (`scripts/fuzz.sh`), with the per-tensor errors
//! the checkpoint path needs and a copying fallback for unaligned data, which the crate's
//! zero-copy views assume away (../shared/notes/dependencies.md); two parsers of one format would
//! disagree at the edges.

use crate::tensor::Tensor;
use crate::{bad, Error};
use seedvae_weights::DType;
use std::path::Path;

/// The tensor `name` of `path` (or its only tensor) as f32.
pub fn read(path: &Path, name: &str) -> Result<Tensor, Error> {
    let w = seedvae_weights::WeightFile::open(path)?;
    let t = match w.get(name) {
        Some(t) => t,
        None if w.tensors().len() == 1 => &w.tensors()[0],
        None => {
            let names: Vec<&str> = w.tensors().iter().map(|t| t.name.as_str()).collect();
            return Err(bad(
                path,
                format!("no tensor '{name}' (found: {})", names.join(", ")),
            ));
        }
    };
    let v = w.f32(&t.name)?.into_owned();
    Ok(Tensor::f32(t.shape.clone(), v))
}

/// The header of a file holding one tensor `name` of `dtype` and `shape` (data follows it).
pub fn header(name: &str, dtype: DType, shape: &[usize]) -> Vec<u8> {
    let bytes = shape.iter().product::<usize>() * dtype.size();
    seedvae_weights::safetensors::header_for(&Default::default(), &[(name, dtype, shape, bytes)])
}

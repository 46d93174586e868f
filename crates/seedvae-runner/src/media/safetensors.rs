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
use std::io::Seek;
use std::path::Path;

/// The tensor `name` of `path` (or its only tensor) as f32. The header is read and checked
/// first, the data's extent against the file's length included; the data is read only then,
/// into memory checked to fit (a huge or padded file is refused without reading it).
pub fn read(path: &Path, name: &str) -> Result<Tensor, Error> {
    use seedvae_weights::safetensors::{parse_prefix, MAX_HEADER};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| bad(path, e))?;
    let total = f.metadata().map_err(|e| bad(path, e))?.len();
    let mut head = Vec::new();
    (&mut f)
        .take(8)
        .read_to_end(&mut head)
        .map_err(|e| bad(path, e))?;
    if head.len() == 8 {
        let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        (&mut f)
            .take(n.min(MAX_HEADER))
            .read_to_end(&mut head)
            .map_err(|e| bad(path, e))?;
    }
    let header = parse_prefix(path, &head, total)?;
    let values: usize = header
        .tensors
        .iter()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    let what = || format!("{}: its tensors as f32", path.display());
    seedvae_weights::memory::check(total.saturating_add(4 * values as u64), what)?;
    let mut bytes = seedvae_weights::memory::with_capacity(total as usize, || {
        format!("{}: its bytes", path.display())
    })?;
    f.rewind().map_err(|e| bad(path, e))?;
    f.read_to_end(&mut bytes).map_err(|e| bad(path, e))?;
    let w = seedvae_weights::WeightFile::from_bytes(path, bytes)?;
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
    Tensor::f32(t.shape.clone(), v)
}

/// The header of a file holding one tensor `name` of `dtype` and `shape` (data follows it).
pub fn header(name: &str, dtype: DType, shape: &[usize]) -> Vec<u8> {
    let bytes = shape.iter().product::<usize>() * dtype.size();
    seedvae_weights::safetensors::header_for(&Default::default(), &[(name, dtype, shape, bytes)])
}

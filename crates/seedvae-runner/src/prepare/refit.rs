//! Weightless engines get their weights at load time from the user's own checkpoint. Before a
//! single weight reaches the GPU, everything is checked on the CPU: the file is the one the
//! engine was built from (its content hash is in the engine's manifest), and converting it with
//! the engine's recipe reproduces the engine's ONNX graph byte for byte (its blake3 is the
//! engine's key part `onnx_blake3`). The refit then supplies exactly that graph's model weights
//! (`seedvae_onnx::is_model_weight`), the ones the build stripped.

use crate::prepare::GraphRecipe;
use crate::Error;
use seedvae_engine::cache::Manifest;
use seedvae_engine::Profile;
use seedvae_onnx::write::Initializer;
use seedvae_onnx::Elem;
use seedvae_weights::WeightFile;
use std::path::Path;

/// The source weights' hash recorded in an engine's manifest.
pub fn source_hash(m: &Manifest) -> Option<&str> {
    m.info
        .source
        .get(seedvae_onnx::meta::SOURCE_HASH)
        .map(String::as_str)
}

/// Is `weights` the checkpoint the engine was built from?
pub fn check_weights(m: &Manifest, weights: &WeightFile, path: &Path) -> Result<(), Error> {
    let want = source_hash(m).ok_or_else(|| {
        Error::Input(format!(
            "engine {} does not record the weights it was built from; it cannot be refitted",
            m.key
        ))
    })?;
    let found = weights.content_hash();
    if found != want {
        return Err(Error::Input(format!(
            "{}: these weights (content blake3 {found}) are not the ones engine {} was built from ({want})",
            path.display(),
            m.key
        )));
    }
    Ok(())
}

/// The model weights for refitting `m`, regenerated from `weights` (already checked with
/// [`check_weights`]) and proven identical to the engine's graph.
pub fn regenerate(m: &Manifest, weights: &WeightFile) -> Result<Vec<Initializer>, Error> {
    let k = &m.key_parts;
    let profile = Profile::load(&m.info.profile).map_err(|e| {
        Error::Input(format!(
            "engine {}: its profile '{}' is not available here: {e}",
            m.key, m.info.profile
        ))
    })?;
    let recipe = GraphRecipe {
        weights,
        part: k.part,
        streaming: k.streaming,
        precision: k.precision,
        fp16_blocks: profile.fp16_blocks.clone(),
        calibration: vec![],
    };
    let dir = std::env::temp_dir();
    let tmp = seedvae_weights::output::temp_path(&dir.join("refit.onnx"));
    let bytes = recipe.write(&tmp).and_then(|_| {
        std::fs::read(&tmp).map_err(|e| Error::Input(format!("{}: {e}", tmp.display())))
    });
    let _ = std::fs::remove_file(&tmp);
    let bytes = bytes?;
    let got = blake3::hash(&bytes).to_hex().to_string();
    if got != k.onnx_blake3 {
        return Err(Error::Input(format!(
            "engine {}: converting these weights with its recipe gives graph {got}, not the engine's {} \
             (built with custom calibration data or another seedvae version?); rebuild the engine here instead",
            m.key, k.onnx_blake3
        )));
    }
    Ok(seedvae_onnx::write::read_initializers(&bytes)?
        .into_iter()
        .filter(|i| seedvae_onnx::is_model_weight(&i.name))
        .collect())
}

/// TensorRT-RTX's type, and its element size, for an ONNX `data_type` code of a seedvae graph.
pub fn trt_data_type(onnx: i32) -> Option<(trtx::DataType, usize)> {
    let e = Elem::from_onnx(onnx)?;
    let t = match e {
        Elem::F32 => trtx::DataType::kFLOAT,
        Elem::F16 => trtx::DataType::kHALF,
        Elem::I64 => trtx::DataType::kINT64,
        Elem::F8E4M3 => trtx::DataType::kFP8,
    };
    Some((t, e.size()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_types() {
        assert_eq!(trt_data_type(17), Some((trtx::DataType::kFP8, 1)));
        assert_eq!(trt_data_type(10), Some((trtx::DataType::kHALF, 2)));
        assert_eq!(trt_data_type(3), None);
    }
}

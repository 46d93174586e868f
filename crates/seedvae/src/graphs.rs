//! Graphs for ONNX Runtime: an ONNX file as the user gave it, or the streaming graph converted
//! from their weights once per weights file into the cache (verified on every hit).

use crate::error::{invalid, Error, Result};
use crate::options::ModelOptions;
use crate::progress::Progress;
use crate::source::ModelSource;
use seedvae_engine::{Cache, EnginePrecision};
use seedvae_runner::GraphRecipe;
use seedvae_weights::{Part, WeightFile};
use std::path::PathBuf;

/// A graph ready for ONNX Runtime.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub path: PathBuf,
    /// Its blake3 as the cache recorded it when it verified or stored it (None: the user's file).
    recorded: Option<String>,
}

impl Graph {
    /// The graph's identity for first-run records: the blake3 of its bytes (a graph replaced by
    /// another of the same size and time is another graph), hashed only when not recorded.
    pub fn identity(&self) -> Result<String> {
        let hex = match &self.recorded {
            Some(h) => h.clone(),
            None => {
                let mut f =
                    std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
                let mut h = blake3::Hasher::new();
                std::io::copy(&mut f, &mut h).map_err(|e| Error::io(&self.path, e))?;
                h.finalize().to_hex().to_string()
            }
        };
        Ok(format!("graph blake3 {hex}"))
    }
}

/// The graph `source` names for a graph backend at `precision`: an ONNX file as it is, else
/// converted from the weights (an engine's own weights given with `weights`, checked first).
pub(crate) fn graph_for(
    source: &ModelSource,
    part: Part,
    precision: EnginePrecision,
    o: &ModelOptions,
    progress: &Progress,
) -> Result<Graph> {
    match source {
        ModelSource::Onnx(p) => Ok(Graph {
            path: p.clone(),
            recorded: None,
        }),
        ModelSource::Weights(p) => {
            let file = WeightFile::open(p)?;
            cached_graph(&file, part, precision, &Cache::open(o.cache.as_deref())?, progress)
        }
        ModelSource::Engine { engine, manifest } => match &o.weights {
            Some(w) => {
                // Opened (and hashed) once for the check and the conversion.
                let file = WeightFile::open(w)?;
                seedvae_runner::prepare::refit::check_weights(manifest, &file, w)?;
                cached_graph(&file, part, precision, &Cache::open(o.cache.as_deref())?, progress)
            }
            None => Err(invalid!(
                "{} is a TensorRT-RTX engine; ONNX Runtime needs the weights or an ONNX graph as `model` \
                 (or the weights as `weights`)",
                engine.display()
            )),
        },
    }
}

/// The streaming graph at `precision` (fp32 for the CPU, fp16 for CUDA), converted once per
/// weights file into the cache and verified on every hit.
fn cached_graph(
    w: &WeightFile,
    part: Part,
    precision: EnginePrecision,
    cache: &Cache,
    progress: &Progress,
) -> Result<Graph> {
    w.model_for(part)?;
    let recipe = GraphRecipe {
        weights: w,
        part,
        streaming: true,
        precision,
        fp16_blocks: vec![],
        calibration: vec![],
    };
    let rh = recipe.hash()?;
    let found = |path: PathBuf| Graph {
        recorded: cache.recorded_graph_hash(&path),
        path,
    };
    match cache.verified_graph(&rh, &w.content_hash()) {
        Ok(Some(path)) => return Ok(found(path)),
        Ok(None) => {}
        Err(why) => tracing::warn!("cached CPU graph not used: {why}; converting again"),
    }
    let what = format!(
        "converting {} to a streaming {} {part} graph (once; cached)",
        w.path.display(),
        precision.name()
    );
    use seedvae_weights::output;
    let tmp = output::temp_path(&cache.graph_path(&rh)?);
    output::register_temporary(&tmp);
    let r = progress
        .stage(&what, || recipe.write(&tmp))
        .map_err(Error::from)
        .and_then(|_| progress.check())
        .and_then(|_| Ok(cache.store_graph(&rh, &tmp)?));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    output::forget_temporary(&tmp);
    r.map(found)
}

//! What a model path names — a built engine (with its verified manifest), an ONNX graph, or
//! weights — and whether it is the part a command needs.

use crate::error::{invalid, Error, Result};
use seedvae_engine::Manifest;
use seedvae_weights::Part;
use std::path::{Path, PathBuf};

/// What a model path names.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A built engine (a `build -o` file with its manifest, a cache entry, or a key).
    Engine {
        engine: PathBuf,
        manifest: Box<Manifest>,
    },
    /// A graph written by `seedvae convert`.
    Onnx(PathBuf),
    /// SeedVR2 VAE weights (.safetensors / .gguf).
    Weights(PathBuf),
}

impl ModelSource {
    /// Classify `spec`; an engine is verified against its manifest here.
    pub fn resolve(spec: &Path, cache: Option<&Path>) -> Result<ModelSource> {
        if let Some((m, e)) = seedvae_engine::locate(spec, cache) {
            let manifest = seedvae_engine::read_manifest(&m)
                .map_err(|err| invalid!("{}: {err}", spec.display()))?;
            let bytes = std::fs::read(&e).map_err(|err| Error::io(&e, err))?;
            manifest.verify(&bytes).map_err(|why| {
                invalid!("{}: {why}; rebuild it with `seedvae build`", e.display())
            })?;
            return Ok(ModelSource::Engine {
                engine: e,
                manifest: Box::new(manifest),
            });
        }
        if !spec.exists() {
            return Err(invalid!(
                "{}: no such file, and not an engine key in the cache",
                spec.display()
            ));
        }
        let ext = spec
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("onnx") => Ok(ModelSource::Onnx(spec.to_path_buf())),
            Some("trt" | "engine" | "plan") => Err(invalid!(
                "{}: an engine needs its manifest beside it ({}); engines written by `seedvae build -o` have one",
                spec.display(),
                seedvae_engine::sidecar(spec).display()
            )),
            _ => Ok(ModelSource::Weights(spec.to_path_buf())),
        }
    }
}

/// Refuse a model of the other part, naming the file.
pub(crate) fn check_part(found: Part, want: Part, path: &Path) -> Result<()> {
    if found != want {
        return Err(invalid!(
            "{} is {} {found} model; this command needs the {want}",
            path.display(),
            match found {
                Part::Encoder => "an",
                Part::Decoder => "a",
            }
        ));
    }
    Ok(())
}

//! Engines as files to ship: pack them, verify a pack against this machine, install it into a
//! cache. The pack format and its paranoid reader live in `seedvae_engine::pack`; this adds
//! the machine checks (TensorRT-RTX version, GPU) that need the runner.

use crate::error::{invalid, Result};
use crate::progress::Progress;
use seedvae_engine::pack::{self, PackManifest, Source};
use seedvae_engine::{Cache, Installed};
use seedvae_runner::tensorrt;
use std::path::{Path, PathBuf};

/// Pack `engines` (cache keys, cache entry directories, or engine files with their manifest)
/// into `out`; every engine is checked against its manifest on the way.
pub fn pack_engines(
    engines: &[PathBuf],
    cache: Option<&Path>,
    out: &Path,
    force: bool,
) -> Result<PackManifest> {
    let mut sources = Vec::new();
    for e in engines {
        let (m, f) = seedvae_engine::locate(e, cache).ok_or_else(|| {
            invalid!(
                "{}: not an engine (a cache key, a cache entry directory, or an engine file with its .manifest.json)",
                e.display()
            )
        })?;
        sources.push(Source {
            manifest: seedvae_engine::read_manifest(&m)?,
            manifest_file: m,
            engine_file: f,
        });
    }
    // The pack must not replace an engine it packs (or its manifest), however it was named.
    let mut inputs: Vec<&Path> = engines.iter().map(PathBuf::as_path).collect();
    for s in &sources {
        inputs.extend([s.engine_file.as_path(), s.manifest_file.as_path()]);
    }
    seedvae_weights::output::check_output(out, force, &inputs)?;
    Ok(pack::pack(&sources, out)?)
}

/// A verified pack, and what it means for this machine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PackCheck {
    pub manifest: PackManifest,
    /// Reasons the pack cannot run here (another TensorRT-RTX version, a GPU it was not built for).
    pub problems: Vec<String>,
    /// What could not be checked here (no TensorRT-RTX library, no GPU).
    pub unchecked: Vec<String>,
}

/// Verify `pack_file` (every size, sha256 and manifest), then its fit with this machine.
pub fn verify_pack(pack_file: &Path, tensorrt_dir: Option<&Path>) -> Result<PackCheck> {
    let manifest = pack::read_pack(pack_file, None)?;
    let (mut problems, mut unchecked) = (Vec::new(), Vec::new());
    match seedvae_engine::load_libraries(tensorrt_dir) {
        Ok(l) => problems.extend(pack::incompatible(&manifest, &l.version)),
        Err(e) => unchecked.push(format!("TensorRT-RTX version not checked: {e}")),
    }
    match tensorrt::probe_gpu() {
        Ok(gpu) => {
            for e in &manifest.engines {
                if let Err(why) = tensorrt::check_device(&gpu, &e.targets) {
                    problems.push(format!("engine {}: {why}", e.key));
                }
            }
        }
        Err(why) => unchecked.push(format!("GPU not checked: {why}")),
    }
    Ok(PackCheck {
        manifest,
        problems,
        unchecked,
    })
}

/// What an install did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InstallReport {
    pub engines: Vec<(String, Installed)>,
    /// The cache's engine directory.
    pub into: PathBuf,
    /// Why the engines cannot run on this machine's GPU, when there is none to run them.
    pub no_gpu: Option<String>,
}

/// Verify the whole pack into a staging folder of the cache, then move each engine into place.
/// Nothing is installed on any failure.
pub fn install_pack(
    pack_file: &Path,
    cache: Option<&Path>,
    tensorrt_dir: Option<&Path>,
    progress: &Progress,
) -> Result<InstallReport> {
    let libs = seedvae_engine::load_libraries(tensorrt_dir).map_err(|e| {
        invalid!("cannot check the pack's TensorRT-RTX version against this machine: {e}")
    })?;
    let cache = Cache::open(cache)?;
    let what = format!("verifying and installing {}", pack_file.display());
    progress.check()?;
    let engines = progress.stage(&what, || pack::install(&cache, pack_file, &libs.version))?;
    Ok(InstallReport {
        engines,
        into: cache.engines_dir(),
        no_gpu: tensorrt::probe_gpu().err().map(|e| e.to_string()),
    })
}

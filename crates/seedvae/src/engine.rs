//! Engines on demand: weights or a seedvae ONNX graph → a verified cache entry, converted,
//! calibrated and built only when the cache has none ([`ensure_engine`]).

use crate::error::{invalid, Error, Result};
use crate::progress::Progress;
use seedvae_engine::{Cache, EnginePrecision, Entry, Graph, Job, Outcome, Profile, Target};
use seedvae_runner::GraphRecipe;
use seedvae_weights::{Part, WeightFile};
use std::path::{Path, PathBuf};

/// What engine to get. [`EngineRequest::new`] gives the defaults of `seedvae build`.
#[derive(Debug, Clone)]
pub struct EngineRequest {
    /// SeedVR2 VAE weights (converted on the way) or an ONNX graph from `seedvae convert`.
    pub model: PathBuf,
    /// A shipped profile name or a profile YAML file.
    pub profile: String,
    /// GPU architectures; empty: the profile's.
    pub targets: Vec<Target>,
    /// None: the profile's (for an ONNX model: the graph's).
    pub precision: Option<EnginePrecision>,
    /// None: the decoder (an ONNX graph says which it is).
    pub part: Option<Part>,
    /// The streaming form (weights only; an ONNX graph is what it is).
    pub streaming: bool,
    /// FP8 calibration files; empty: the fixed default inputs.
    pub calibration: Vec<PathBuf>,
    /// Cache directory; None: `$SEEDVAE_CACHE`, else the user cache directory.
    pub cache: Option<PathBuf>,
    /// TensorRT-RTX library folder; None: `$SEEDVAE_TENSORRT_DIR`, else the setup venv.
    pub tensorrt_dir: Option<PathBuf>,
    /// Strip the weights (refitted at run time from the user's file).
    pub weightless: bool,
    /// Also write the engine here, with its manifest beside it ([`seedvae_engine::sidecar`]).
    pub output: Option<PathBuf>,
    /// Replace `output` if it exists.
    pub force: bool,
}

impl EngineRequest {
    pub fn new(model: impl Into<PathBuf>) -> EngineRequest {
        EngineRequest {
            model: model.into(),
            profile: seedvae_engine::DEFAULT_PROFILE.to_string(),
            targets: vec![],
            precision: None,
            part: None,
            streaming: false,
            calibration: vec![],
            cache: None,
            tensorrt_dir: None,
            weightless: false,
            output: None,
            force: false,
        }
    }
}

/// The engine, and whether it came from the cache.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineEntry {
    pub entry: Entry,
    pub outcome: Outcome,
}

fn is_onnx(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// The engine for `req`: from the cache, or converted / calibrated / built now (reported as
/// stages on `progress`). With `req.output`, also written there with its manifest.
pub fn ensure_engine(req: &EngineRequest, progress: &Progress) -> Result<EngineEntry> {
    if let Some(o) = &req.output {
        check_export(o, req.force, &[&req.model])?;
    }
    let profile = Profile::load(&req.profile)?;
    let mut targets = if req.targets.is_empty() {
        profile.targets.clone()
    } else {
        req.targets.clone()
    };
    // `--target sm_120,sm_120` is one target (and one cache key).
    let mut seen = Vec::new();
    targets.retain(|t| {
        let new = !seen.contains(t);
        seen.push(*t);
        new
    });
    let cache = Cache::open(req.cache.as_deref())?;
    let job = Job {
        cache: &cache,
        profile: &profile,
        targets,
        tensorrt_dir: req.tensorrt_dir.clone(),
        weightless: req.weightless,
        cancel: Some(progress.cancel_token().flag()),
    };
    let got = if is_onnx(&req.model) {
        from_graph(req, &job, &profile, progress)?
    } else {
        from_weights(req, &job, &cache, &profile, progress)?
    };
    // A build cannot be stopped inside TensorRT-RTX: a cancel takes effect once it returns (the
    // finished engine stays in the cache; nothing else is written).
    progress.check()?;
    if let Some(o) = &req.output {
        export_engine(&got.entry, o, req.force)?;
    }
    Ok(got)
}

/// The engine for a graph, cached or built; a stage only while TensorRT-RTX builds.
fn engine(job: &Job, onnx: &[u8], g: &Graph, progress: &Progress) -> Result<EngineEntry> {
    let what = format!(
        "building the engine with TensorRT-RTX for {} (takes a while; no GPU needed)",
        Target::list(&job.targets)
    );
    let mut building = false;
    let r = job.engine(onnx, g, || {
        building = true;
        progress.emit(crate::Event::Stage(&what));
    });
    if building {
        progress.emit(crate::Event::StageDone);
    }
    let (entry, outcome) = r?;
    Ok(EngineEntry { entry, outcome })
}

fn from_graph(
    req: &EngineRequest,
    job: &Job,
    profile: &Profile,
    progress: &Progress,
) -> Result<EngineEntry> {
    let onnx = std::fs::read(&req.model).map_err(|e| Error::io(&req.model, e))?;
    let g = seedvae_engine::inspect_graph(&onnx, &req.model.display().to_string())?;
    let c = &g.contract;
    if req.part.is_some_and(|p| p != c.part) || (req.streaming && !c.streaming) {
        return Err(invalid!(
            "{} is a {} {} graph; `part` / `streaming` cannot change that: convert the form you want \
             with `seedvae convert`, or pass the weights file",
            req.model.display(),
            c.part,
            if c.streaming { "streaming" } else { "one-shot" }
        ));
    }
    match req.precision {
        Some(want) if want != g.precision => {
            return Err(invalid!(
                "{} is a {} graph, `precision` {} asked: pass the weights file instead (it is converted at the \
                 precision asked), or convert it with `precision` {} first",
                req.model.display(),
                g.precision.name(),
                want.name(),
                want.name()
            ))
        }
        None if g.precision != profile.precision => tracing::warn!(
            "profile {} says {}, {} is a {} graph: building {}",
            profile.name,
            profile.precision.name(),
            req.model.display(),
            g.precision.name(),
            g.precision.name()
        ),
        _ => {}
    }
    engine(job, &onnx, &g, progress)
}

fn from_weights(
    req: &EngineRequest,
    job: &Job,
    cache: &Cache,
    profile: &Profile,
    progress: &Progress,
) -> Result<EngineEntry> {
    let w = WeightFile::open(&req.model)?;
    let part = req.part.unwrap_or(Part::Decoder);
    w.model_for(part)?;
    let precision = req.precision.unwrap_or(profile.precision);
    let recipe = GraphRecipe {
        weights: &w,
        part,
        streaming: req.streaming,
        precision,
        fp16_blocks: profile.fp16_blocks.clone(),
        calibration: req.calibration.clone(),
    };
    let rh = recipe.hash()?;
    // A known recipe gives the graph's hash, hence the key, without converting again.
    if let Some(h) = cache.recipe(&rh) {
        let parts = job.key_parts(&h, precision, part, req.streaming)?;
        if let Some(entry) = job.cached(&parts) {
            // The recipe file is only a pointer: the engine must say it came from these weights.
            let source = entry
                .manifest
                .info
                .source
                .get(seedvae_onnx::meta::SOURCE_HASH);
            if source.is_some_and(|s| *s == w.content_hash()) {
                return Ok(EngineEntry {
                    entry,
                    outcome: Outcome::Hit,
                });
            }
            tracing::warn!(
                "cache recipe {rh} points at engine {}, built from other weights; converting again",
                entry.manifest.key
            );
        }
    }
    let what = format!(
        "converting {} to a {} {} graph{}",
        req.model.display(),
        precision.name(),
        part,
        if precision == EnginePrecision::Fp8 {
            " (calibrating on the CPU)"
        } else {
            ""
        }
    );
    let staged = cache.staging_file("graph.onnx");
    seedvae_weights::output::register_temporary(&staged);
    let r = (|| -> Result<EngineEntry> {
        progress.stage(&what, || recipe.write(&staged))?;
        progress.check()?;
        let onnx = std::fs::read(&staged).map_err(|e| Error::io(&staged, e))?;
        let g = seedvae_engine::inspect_graph(&onnx, &staged.display().to_string())?;
        cache.set_recipe(&rh, &g.blake3)?;
        engine(job, &onnx, &g, progress)
    })();
    let _ = std::fs::remove_file(&staged);
    seedvae_weights::output::forget_temporary(&staged);
    r
}

/// The engine file and its manifest are one output: both may be written, or neither.
fn check_export(path: &Path, force: bool, inputs: &[&Path]) -> Result<()> {
    seedvae_weights::output::check_output(path, force, inputs)?;
    seedvae_weights::output::check_output(&seedvae_engine::sidecar(path), force, inputs)?;
    Ok(())
}

/// Write a cached engine to `path`, and its manifest beside it: both written under temporary
/// names first, then renamed; if the second rename fails the first file is removed again.
pub fn export_engine(entry: &Entry, path: &Path, force: bool) -> Result<PathBuf> {
    use seedvae_weights::output::AtomicFile;
    use std::io::Write;
    check_export(path, force, &[&entry.engine])?;
    let side = seedvae_engine::sidecar(path);
    let engine = std::fs::read(&entry.engine).map_err(|e| Error::io(&entry.engine, e))?;
    let m = serde_json::to_vec_pretty(&entry.manifest)
        .map_err(|e| invalid!("{}: cannot write the manifest: {e}", side.display()))?;
    let mut e = AtomicFile::create(path)?;
    e.write_all(&engine).map_err(|err| Error::io(path, err))?;
    let mut s = AtomicFile::create(&side)?;
    s.write_all(&m).map_err(|err| Error::io(&side, err))?;
    s.commit()?;
    if let Err(err) = e.commit() {
        let _ = std::fs::remove_file(&side);
        return Err(err.into());
    }
    Ok(side)
}

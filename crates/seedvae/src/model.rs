//! A model ready to run: what the user named (weights, ONNX graph, engine, cache key), the
//! backend chosen for this machine, and what the planner needs to know about it.

use crate::engine::{ensure_engine, EngineRequest};
use crate::error::{invalid, Error, Result};
use crate::progress::{Event, Progress};
use seedvae_engine::{Cache, EnginePrecision, Manifest, Target};
use seedvae_runner::tensorrt::{self, TrtBackend};
use seedvae_runner::{Backend, GraphRecipe, Limits, OrtBackend};
use seedvae_weights::{Part, WeightFile};
use std::path::{Path, PathBuf};

/// Which backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// TensorRT-RTX when a supported GPU and engine are there, else the CPU (with the reason).
    #[default]
    Auto,
    /// TensorRT-RTX on the GPU, or an error with the reason.
    Tensorrt,
    /// ONNX Runtime on the CPU.
    Cpu,
}

/// How to open a model. `ModelOptions::default()` is what `seedvae decode` does without flags.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub backend: BackendChoice,
    /// Engine profile when an engine is built from weights or ONNX for this GPU.
    pub profile: String,
    /// GPU memory to plan tiles within, in GB; None: the GPU's free memory less 0.5 GB.
    pub vram_budget_gb: Option<f64>,
    /// CPU threads for ONNX Runtime; 0: all cores.
    pub threads: usize,
    /// Engine and graph cache directory; None: `$SEEDVAE_CACHE`, else the user cache directory.
    pub cache: Option<PathBuf>,
    /// TensorRT-RTX library folder; None: `$SEEDVAE_TENSORRT_DIR`, else the setup venv.
    pub tensorrt_dir: Option<PathBuf>,
    /// With an engine as the model: the user's weights (refit, or the CPU fallback).
    pub weights: Option<PathBuf>,
}

impl ModelOptions {
    /// Refuse settings that cannot be meant: more threads than cores, a budget that is not a
    /// positive number of GB.
    pub fn validate(&self) -> Result<()> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.threads > cores {
            return Err(invalid!(
                "--threads {}: this machine has {cores} logical cores; use at most {cores} (0 = all)",
                self.threads
            ));
        }
        if let Some(gb) = self.vram_budget_gb {
            if !(gb.is_finite() && gb > 0.0 && gb <= 4096.0) {
                return Err(invalid!(
                    "--vram-budget {gb}: give the GPU memory to plan within in GB, e.g. 12"
                ));
            }
        }
        Ok(())
    }
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            backend: BackendChoice::Auto,
            profile: seedvae_engine::DEFAULT_PROFILE.to_string(),
            vram_budget_gb: None,
            threads: 0,
            cache: None,
            tensorrt_dir: None,
            weights: None,
        }
    }
}

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

/// A model with a backend ready to run decode or encode calls.
pub struct Model {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) limits: Limits,
    /// Largest tile edge (the part's input units) that fits the memory budget.
    pub(crate) memory_cap: Option<usize>,
    pub(crate) fallback: Option<String>,
    pub(crate) part: Part,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("backend", &self.backend.name())
            .field("part", &self.part)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl Model {
    /// Open `spec` (weights, ONNX graph, engine or cache key) for `part` with the backend that
    /// `opts` asks for. Under [`BackendChoice::Auto`] a machine that cannot run TensorRT-RTX
    /// gives the CPU, the reason reported as an [`Event::Notice`] and kept in
    /// [`Model::fallback_reason`]; a broken model is an error either way.
    pub fn open(
        spec: impl AsRef<Path>,
        part: Part,
        opts: &ModelOptions,
        progress: &Progress,
    ) -> Result<Model> {
        opts.validate()?;
        let source = ModelSource::resolve(spec.as_ref(), opts.cache.as_deref())?;
        match opts.backend {
            BackendChoice::Cpu => open_cpu(&source, part, opts, progress),
            BackendChoice::Tensorrt => open_tensorrt(&source, part, opts, progress),
            BackendChoice::Auto => {
                let why = match &source {
                    ModelSource::Engine { manifest, .. } => {
                        tensorrt::preflight(manifest, opts.tensorrt_dir.as_deref()).err()
                    }
                    _ => tensorrt::runtime_ready(opts.tensorrt_dir.as_deref()).err(),
                };
                let reason = match why {
                    None => match open_tensorrt(&source, part, opts, progress) {
                        // Past the checks, the GPU can still fail to open the engine (an old
                        // driver, too little memory, a JIT failure): that too falls back.
                        Err(e)
                            if e.is_environment_failure()
                                && !progress.cancel_token().is_cancelled() =>
                        {
                            e.to_string()
                        }
                        r => return r,
                    },
                    Some(why) => why.to_string(),
                };
                progress.emit(Event::Notice(&format!(
                    "TensorRT-RTX not used: {reason}; running on the CPU (ONNX Runtime)"
                )));
                let mut m =
                    open_cpu(&source, part, opts, progress).map_err(|e| Error::Fallback {
                        reason: reason.clone(),
                        source: Box::new(e),
                    })?;
                m.fallback = Some(reason);
                Ok(m)
            }
        }
    }

    /// The backend's short name ("onnxruntime-cpu", "tensorrt-rtx").
    pub fn backend_name(&self) -> &str {
        self.backend.name()
    }

    /// Why TensorRT-RTX was not used (auto only).
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    pub fn part(&self) -> Part {
        self.part
    }

    /// Streaming models decode clips of any length chunk by chunk.
    pub fn is_streaming(&self) -> bool {
        self.backend.contract().streaming
    }
}

/// The fp32 streaming graph for the CPU, converted once per weights file into the cache.
fn cpu_graph(w: &WeightFile, part: Part, cache: &Cache, progress: &Progress) -> Result<PathBuf> {
    w.model_for(part)?;
    let recipe = GraphRecipe {
        weights: w,
        part,
        streaming: true,
        precision: EnginePrecision::Fp32,
        fp16_blocks: vec![],
        calibration: vec![],
    };
    let rh = recipe.hash()?;
    match cache.verified_graph(&rh, &w.content_hash()) {
        Ok(Some(path)) => return Ok(path),
        Ok(None) => {}
        Err(why) => tracing::warn!("cached CPU graph not used: {why}; converting again"),
    }
    let what = format!(
        "converting {} to a streaming fp32 {part} graph for the CPU (once; cached)",
        w.path.display()
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
    r
}

fn check_part(found: Part, want: Part, path: &Path) -> Result<()> {
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

fn open_cpu(
    source: &ModelSource,
    part: Part,
    o: &ModelOptions,
    progress: &Progress,
) -> Result<Model> {
    let graph = match source {
        ModelSource::Onnx(p) => p.clone(),
        ModelSource::Weights(p) => {
            let file = WeightFile::open(p)?;
            cpu_graph(&file, part, &Cache::open(o.cache.as_deref())?, progress)?
        }
        ModelSource::Engine { engine, manifest } => match &o.weights {
            Some(w) => {
                // Opened (and hashed) once for the check and the conversion.
                let file = WeightFile::open(w)?;
                seedvae_runner::prepare::refit::check_weights(manifest, &file, w)?;
                cpu_graph(&file, part, &Cache::open(o.cache.as_deref())?, progress)?
            }
            None => {
                return Err(invalid!(
                    "{} is a TensorRT-RTX engine; the CPU backend needs the weights or an ONNX graph as --model \
                     (or the weights as --weights)",
                    engine.display()
                ))
            }
        },
    };
    let b = OrtBackend::open(&graph, o.threads)?;
    check_part(b.contract().part, part, &graph)?;
    Ok(Model {
        backend: Box::new(b),
        limits: Limits::unbounded(part),
        memory_cap: None,
        fallback: None,
        part,
    })
}

/// The engine for this GPU: the named one, or built (cached) from weights / ONNX for its target.
fn open_tensorrt(
    source: &ModelSource,
    part: Part,
    o: &ModelOptions,
    progress: &Progress,
) -> Result<Model> {
    let (engine, manifest) = match source {
        ModelSource::Engine { engine, manifest } => (engine.clone(), (**manifest).clone()),
        ModelSource::Onnx(p) | ModelSource::Weights(p) => {
            // Refuse before building anything when no engine could run here.
            let gpu = tensorrt::runtime_ready(o.tensorrt_dir.as_deref())?;
            let (ma, mi) = gpu.compute_capability;
            let target = Target::of_compute_capability(ma, mi).ok_or_else(|| {
                invalid!("no TensorRT-RTX target for compute capability {ma}.{mi}")
            })?;
            let req = EngineRequest {
                profile: o.profile.clone(),
                targets: vec![target],
                part: Some(part),
                streaming: matches!(source, ModelSource::Weights(_)),
                cache: o.cache.clone(),
                tensorrt_dir: o.tensorrt_dir.clone(),
                ..EngineRequest::new(p)
            };
            let got = ensure_engine(&req, progress)?;
            (got.entry.engine, got.entry.manifest)
        }
    };
    check_part(manifest.key_parts.part, part, &engine)?;
    let limits = tensorrt::limits(&manifest).map_err(|e| invalid!("{}: {e}", engine.display()))?;
    let refit = if manifest.key_parts.weightless {
        // The cheap checks first: the right file, then a GPU, then the (slow) regeneration.
        let w = o.weights.as_ref().ok_or_else(|| {
            invalid!(
                "{} is a weightless engine: pass your weights file with --weights to refit it",
                engine.display()
            )
        })?;
        let file = WeightFile::open(w)?;
        seedvae_runner::prepare::refit::check_weights(&manifest, &file, w)?;
        tensorrt::preflight(&manifest, o.tensorrt_dir.as_deref())?;
        let r = progress.stage(
            "regenerating the engine's weights from your checkpoint",
            || seedvae_runner::prepare::refit::regenerate(&manifest, &file),
        );
        Some(r?)
    } else {
        None
    };
    let b = TrtBackend::open(
        &engine,
        &manifest,
        o.tensorrt_dir.as_deref(),
        refit.as_deref(),
    )?;
    let budget = match o.vram_budget_gb {
        Some(gb) => (gb * 1e9) as u64,
        None => b.gpu.free_bytes.saturating_sub(512 << 20),
    };
    let memory_cap = tensorrt::memory_cap(&manifest, &limits, budget)
        .map_err(|e| invalid!("{}: {e}", engine.display()))?;
    Ok(Model {
        backend: Box::new(b),
        limits,
        memory_cap,
        fallback: None,
        part,
    })
}

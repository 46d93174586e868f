//! `prepare`: everything a model needs before a GPU is touched, for each backend of the list
//! that can run here — the model path resolved, weights converted to graphs (cached), an engine
//! found or built for this GPU (minutes; cached), a weightless engine's weights regenerated, and
//! the CPU reference for a first-run check that is due. Needs no GPU memory; reports progress;
//! may take minutes the first time and milliseconds after (cache hits are verified, not redone).
//! [`Prepared::load`](crate::Prepared::load) then opens the first backend that works.

use crate::backends::ready;
use crate::check::{self, Bound};
use crate::engine::{ensure_engine, EngineRequest};
use crate::error::{chain, invalid, Error, Result};
use crate::graphs::{graph_for, Graph};
use crate::options::{BackendSpec, ModelOptions, TensorrtOptions};
use crate::progress::Progress;
use crate::source::{check_part, ModelSource};
use seedvae_engine::{Cache, EnginePrecision, Manifest, Target};
use seedvae_onnx::write::Initializer;
use seedvae_runner::tensorrt::{self, GpuInfo};
use seedvae_runner::{BackendKind, Unavailable};
use seedvae_weights::{Part, WeightFile};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// What one backend runs.
pub(crate) enum Artifact {
    /// A TensorRT-RTX engine; a weightless one with the weights to refit it with.
    Engine {
        engine: PathBuf,
        manifest: Box<Manifest>,
        refit: Option<Vec<Initializer>>,
    },
    /// An ONNX graph for ONNX Runtime.
    Graph(Graph),
    /// The weights themselves (seedvae's own executor).
    Weights(PathBuf),
}

/// A backend of the list, prepared.
pub(crate) struct Candidate {
    pub spec: BackendSpec,
    pub artifact: Artifact,
    /// The GPU it runs on (GPU backends).
    pub gpu: Option<GpuInfo>,
    /// GPU backends: what the first-run check records it under, and the bound it must hold.
    pub check: Option<(String, Bound)>,
}

/// A model prepared for the backends that can run it here, in the list's order: what
/// [`Prepared::load`](crate::Prepared::load) opens.
pub struct Prepared {
    pub(crate) part: Part,
    pub(crate) options: ModelOptions,
    pub(crate) candidates: VecDeque<Candidate>,
    /// Why listed backends are not used, one reason each (reported when another runs).
    pub(crate) reasons: Vec<String>,
    /// The fp32 graph on the CPU, for first-run checks that are due.
    pub(crate) reference: Option<Graph>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("part", &self.part)
            .field("backends", &self.backends())
            .field("reasons", &self.reasons)
            .finish()
    }
}

impl Prepared {
    pub fn part(&self) -> Part {
        self.part
    }

    /// The backends `load` will try, in order.
    pub fn backends(&self) -> Vec<BackendKind> {
        self.candidates.iter().map(|c| c.spec.kind()).collect()
    }

    /// Why the listed backends before them are not used, one reason each.
    pub fn skipped(&self) -> &[String] {
        &self.reasons
    }
}

/// Prepare `spec` (weights, ONNX graph, engine or cache key) for `part` on the backends `opts`
/// lists. With one backend, anything that stops it is the error. With several, a backend that
/// cannot run here (or cannot run this model) is skipped with its reason; if the last one fails
/// too, the error says why each was skipped.
pub fn prepare(
    spec: impl AsRef<Path>,
    part: Part,
    opts: &ModelOptions,
    progress: &Progress,
) -> Result<Prepared> {
    opts.validate()?;
    let source = ModelSource::resolve(spec.as_ref(), opts.cache.as_deref())?;
    let several = opts.backends.len() > 1;
    let mut p = Prepared {
        part,
        options: opts.clone(),
        candidates: VecDeque::new(),
        reasons: Vec::new(),
        reference: None,
    };
    let last = opts.backends.len() - 1;
    for (i, spec) in opts.backends.iter().enumerate() {
        match candidate(spec, &source, part, opts, progress) {
            Ok(c) => p.candidates.push_back(c),
            // One that cannot run here gives way to the next; the last one too when an earlier
            // one is there to run.
            Err(e)
                if several && skippable(&e, progress) && (i < last || !p.candidates.is_empty()) =>
            {
                p.reasons
                    .push(format!("{} not used: {}", spec.title(), chain(&e)))
            }
            // The last resort failed too: its error, with why the others were not used.
            Err(e) if p.candidates.is_empty() && !p.reasons.is_empty() => {
                return Err(Error::Fallback {
                    reason: p.reasons.join("; "),
                    last: spec.title(),
                    source: Box::new(e),
                })
            }
            Err(e) => return Err(e),
        }
    }
    if p.candidates.is_empty() {
        return Err(Error::Unavailable(Unavailable(p.reasons.join("; "))));
    }
    // A first-run check that is due needs the model on the CPU to compare with.
    let cache = || Cache::open(opts.cache.as_deref());
    let due = p.candidates.iter().any(|c| match (&c.check, &c.gpu) {
        (Some((id, bound)), Some(gpu)) => match cache() {
            Ok(cache) => !check::passed_before(&cache, id, gpu, *bound),
            Err(_) => true,
        },
        _ => false,
    });
    if due {
        p.reference = p
            .candidates
            .iter()
            .find_map(|c| match (&c.spec, &c.artifact) {
                (BackendSpec::Cpu(_), Artifact::Graph(g)) => Some(g.clone()),
                _ => None,
            })
            .map(Ok)
            .unwrap_or_else(|| {
                let quiet = Progress::new(|_| {}).with_cancel(progress.cancel_token().clone());
                graph_for(&source, part, EnginePrecision::Fp32, opts, &quiet)
            })
            .map_err(|e| tracing::info!("no CPU reference for the first-run check: {e}"))
            .ok();
    }
    Ok(p)
}

/// May a list of backends go on to the next after `e`? When this one cannot run here (the
/// machine's fault), not when the model or input is wrong, nor after a cancel.
pub(crate) fn skippable(e: &Error, progress: &Progress) -> bool {
    e.is_environment_failure() && !progress.cancel_token().is_cancelled()
}

/// Prepare one backend for `source`, or say why it cannot run it here.
fn candidate(
    spec: &BackendSpec,
    source: &ModelSource,
    part: Part,
    o: &ModelOptions,
    progress: &Progress,
) -> Result<Candidate> {
    progress.check()?;
    match spec {
        BackendSpec::Tensorrt(t) => engine_for(spec, t, source, part, o, progress),
        BackendSpec::OrtCuda(c) => {
            let gpu = ready(spec)?;
            no_bare_engine(spec, source, o)?;
            let precision = if c.fp32 {
                EnginePrecision::Fp32
            } else {
                EnginePrecision::Fp16
            };
            let graph = graph_for(source, part, precision, o, progress)?;
            let bound = match precision {
                EnginePrecision::Fp32 => check::FP32,
                _ => check::FP16,
            };
            let id = format!("onnxruntime-cuda {}", graph.identity()?);
            Ok(Candidate {
                spec: spec.clone(),
                artifact: Artifact::Graph(graph),
                gpu,
                check: Some((id, bound)),
            })
        }
        BackendSpec::Reference(_) => Ok(Candidate {
            spec: spec.clone(),
            artifact: Artifact::Weights(weights_for(spec, source, o)?),
            gpu: None,
            check: None,
        }),
        BackendSpec::Cuda(c) => {
            let gpu = ready(spec)?;
            let weights = weights_for(spec, source, o)?;
            let bound = if c.fp32 { check::FP32 } else { check::FP16 };
            let id = format!(
                "seedvae-cuda {} {}",
                if c.fp32 { "fp32" } else { "fp16" },
                weights_identity(&weights)?
            );
            Ok(Candidate {
                spec: spec.clone(),
                artifact: Artifact::Weights(weights),
                gpu,
                check: Some((id, bound)),
            })
        }
        BackendSpec::Cpu(_) => {
            let graph = graph_for(source, part, EnginePrecision::Fp32, o, progress)?;
            Ok(Candidate {
                spec: spec.clone(),
                artifact: Artifact::Graph(graph),
                gpu: None,
                check: None,
            })
        }
    }
}

/// The weights seedvae's executor runs: the model itself, or an engine's own weights given with
/// `weights` (checked against its manifest). An ONNX graph or a bare engine cannot run on it.
fn weights_for(spec: &BackendSpec, source: &ModelSource, o: &ModelOptions) -> Result<PathBuf> {
    match (source, &o.weights) {
        (ModelSource::Weights(p), _) => Ok(p.clone()),
        (ModelSource::Engine { manifest, .. }, Some(w)) => {
            let file = WeightFile::open(w)?;
            seedvae_runner::prepare::refit::check_weights(manifest, &file, w)?;
            Ok(w.clone())
        }
        _ => Err(Error::Unavailable(Unavailable(format!(
            "{} runs the weights (.safetensors / .gguf), not an ONNX graph or an engine: give \
             the weights as `model` (or as `weights`)",
            spec.title()
        )))),
    }
}

/// What the first-run record of the executor names: the weights' content (blake3).
fn weights_identity(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(format!("weights blake3 {}", h.finalize().to_hex()))
}

/// A graph backend in a list cannot run an engine given without its weights: that is a reason
/// to go on to the next (the last one reports the full error).
fn no_bare_engine(spec: &BackendSpec, source: &ModelSource, o: &ModelOptions) -> Result<()> {
    if matches!(source, ModelSource::Engine { .. }) && o.weights.is_none() {
        return Err(Error::Unavailable(Unavailable(format!(
            "an engine needs TensorRT-RTX ({} runs the weights or an ONNX graph)",
            spec.kind()
        ))));
    }
    Ok(())
}

/// The engine for this GPU: the named one (checked against this machine), or built (cached)
/// from weights / ONNX for its target; a weightless one with its weights regenerated.
fn engine_for(
    spec: &BackendSpec,
    t: &TensorrtOptions,
    source: &ModelSource,
    part: Part,
    o: &ModelOptions,
    progress: &Progress,
) -> Result<Candidate> {
    let dir = t.library_dir.as_deref();
    let (engine, manifest, built_for) = match source {
        ModelSource::Engine { engine, manifest } => (engine.clone(), (**manifest).clone(), None),
        ModelSource::Onnx(p) | ModelSource::Weights(p) => {
            // Refuse before building anything when no engine could run here.
            let gpu = ready(spec)?.ok_or_else(|| invalid!("TensorRT-RTX found no GPU"))?;
            let (ma, mi) = gpu.compute_capability;
            let target = Target::of_compute_capability(ma, mi).ok_or_else(|| {
                invalid!("no TensorRT-RTX target for compute capability {ma}.{mi}")
            })?;
            let req = EngineRequest {
                profile: t.profile.clone(),
                targets: vec![target],
                part: Some(part),
                streaming: matches!(source, ModelSource::Weights(_)),
                cache: o.cache.clone(),
                tensorrt_dir: t.library_dir.clone(),
                ..EngineRequest::new(p)
            };
            let got = ensure_engine(&req, progress)?;
            (got.entry.engine, got.entry.manifest, Some(gpu))
        }
    };
    check_part(manifest.key_parts.part, part, &engine)?;
    tensorrt::limits(&manifest).map_err(|e| invalid!("{}: {e}", engine.display()))?;
    // The cheap checks first: the right weights file, then a GPU, then the (slow) regeneration.
    let weights = if manifest.key_parts.weightless {
        let w = o.weights.as_ref().ok_or_else(|| {
            invalid!(
                "{} is a weightless engine: pass your weights file with `weights` to refit it",
                engine.display()
            )
        })?;
        let file = WeightFile::open(w)?;
        seedvae_runner::prepare::refit::check_weights(&manifest, &file, w)?;
        Some(file)
    } else {
        None
    };
    let gpu = match built_for {
        Some(gpu) => gpu,
        None => tensorrt::preflight(&manifest, dir)?,
    };
    let refit = match weights {
        Some(file) => Some(progress.stage(
            "regenerating the engine's weights from your checkpoint",
            || seedvae_runner::prepare::refit::regenerate(&manifest, &file),
        )?),
        None => None,
    };
    let id = format!("tensorrt-rtx engine {}", manifest.key);
    Ok(Candidate {
        spec: spec.clone(),
        artifact: Artifact::Engine {
            engine,
            manifest: Box::new(manifest),
            refit,
        },
        gpu: Some(gpu),
        check: Some((id, check::ENGINE)),
    })
}

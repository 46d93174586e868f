//! `--model` for decode and encode: what it names, and the backend that runs it.

use super::Ui;
use anyhow::{anyhow, bail, Context, Result};
use seedvae_engine::cache::{Cache, Manifest};
use seedvae_engine::EnginePrecision;
use seedvae_runner::planner::Limits;
use seedvae_runner::prepare::GraphRecipe;
use seedvae_runner::trt_backend::{self, TrtBackend};
use seedvae_runner::{Backend, OrtBackend};
use seedvae_weights::{Part, WeightFile};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// TensorRT-RTX when a supported GPU and engine are there, else the CPU (says why).
    Auto,
    /// TensorRT-RTX on the GPU, or fail with the reason.
    Tensorrt,
    /// ONNX Runtime on the CPU.
    Cpu,
}

#[derive(clap::Args)]
pub struct ModelArgs {
    /// The model: SeedVR2 VAE weights (.safetensors / .gguf), an ONNX graph from `seedvae convert`,
    /// an engine from `seedvae build -o` (with its .manifest.json), a cache entry or its key.
    #[arg(long, short = 'm')]
    pub model: PathBuf,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendArg,
    /// Engine profile when an engine is built from weights or ONNX for this GPU.
    #[arg(long, default_value = seedvae_engine::DEFAULT_PROFILE)]
    pub profile: String,
    /// GPU memory to plan tiles within, in GB (default: the GPU's free memory less 0.5 GB).
    #[arg(long)]
    pub vram_budget: Option<f64>,
    /// CPU threads for ONNX Runtime (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Engine and graph cache directory (default: $SEEDVAE_CACHE, else ~/.cache/seedvae or
    /// %LOCALAPPDATA%\seedvae).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Folder with the TensorRT-RTX libraries (default: $SEEDVAE_TENSORRT_DIR, else the setup venv).
    #[arg(long)]
    pub tensorrt_dir: Option<PathBuf>,
    /// With an engine as --model: your weights file. Refits a weightless engine (checked against
    /// the hash in its manifest first) and lets the CPU run when TensorRT-RTX cannot.
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

/// What `--model` names.
pub enum Model {
    Engine {
        engine: PathBuf,
        manifest: Box<Manifest>,
    },
    Onnx(PathBuf),
    Weights(PathBuf),
}

pub fn resolve(a: &ModelArgs) -> Result<Model> {
    let p = &a.model;
    if let Some((m, e)) = super::inspect::engine_files(p, a.cache.as_deref()) {
        let text = std::fs::read(&m).map_err(|err| {
            anyhow!(
                "{}: no engine manifest at {} ({err})",
                p.display(),
                m.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|err| anyhow!("{}: not a seedvae engine manifest: {err}", m.display()))?;
        let bytes = std::fs::read(&e).with_context(|| e.display().to_string())?;
        manifest
            .verify(&bytes)
            .map_err(|why| anyhow!("{}: {why}; rebuild it with `seedvae build`", e.display()))?;
        return Ok(Model::Engine {
            engine: e,
            manifest: Box::new(manifest),
        });
    }
    if !p.exists() {
        bail!(
            "{}: no such file, and not an engine key in the cache",
            p.display()
        );
    }
    let ext = p
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("onnx") => Ok(Model::Onnx(p.clone())),
        Some("trt" | "engine" | "plan") => bail!(
            "{}: an engine needs its manifest beside it ({}); engines written by `seedvae build -o` have one",
            p.display(),
            super::build::sidecar(p).display()
        ),
        _ => Ok(Model::Weights(p.clone())),
    }
}

/// A backend ready to run, and what the planner needs to know about it.
pub struct Opened {
    pub backend: Box<dyn Backend>,
    pub limits: Limits,
    /// Largest tile edge (the part's input units) that fits the memory budget.
    pub memory_cap: Option<usize>,
    /// Why TensorRT-RTX was not used (auto only).
    pub fallback: Option<String>,
}

/// The fp32 streaming graph for the CPU, converted once per weights file into the cache.
fn cpu_graph(weights: &Path, part: Part, cache: &Cache, ui: &Ui) -> Result<PathBuf> {
    let w = WeightFile::open(weights)?;
    w.model_for(part)?;
    let recipe = GraphRecipe {
        weights: &w,
        part,
        streaming: true,
        precision: EnginePrecision::Fp32,
        fp16_blocks: vec![],
        calibration: vec![],
    };
    let dir = cache.root.join("graphs");
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let path = dir.join(format!("{}.onnx", recipe.hash()?));
    if !path.exists() {
        let pb = ui.spinner(&format!(
            "converting {} to a streaming fp32 {part} graph for the CPU (once; cached)",
            weights.display()
        ));
        let tmp = seedvae_weights::atomic::temp_path(&path);
        let r = recipe.write(&tmp);
        pb.finish_and_clear();
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())?;
    }
    Ok(path)
}

fn open_cpu(model: &Model, part: Part, a: &ModelArgs, ui: &Ui) -> Result<Opened> {
    let graph = match model {
        Model::Onnx(p) => p.clone(),
        Model::Weights(p) => cpu_graph(p, part, &Cache::open(a.cache.as_deref())?, ui)?,
        Model::Engine { engine, manifest } => match &a.weights {
            Some(w) => {
                let file = WeightFile::open(w)?;
                seedvae_runner::refit::check_weights(manifest, &file, w)?;
                cpu_graph(w, part, &Cache::open(a.cache.as_deref())?, ui)?
            }
            None => bail!(
                "{} is a TensorRT-RTX engine; the CPU backend needs the weights or an ONNX graph as --model \
                 (or the weights as --weights)",
                engine.display()
            ),
        },
    };
    let b = OrtBackend::open(&graph, a.threads)?;
    check_part(b.contract().part, part, &graph)?;
    Ok(Opened {
        backend: Box::new(b),
        limits: Limits::unbounded(part),
        memory_cap: None,
        fallback: None,
    })
}

fn check_part(found: Part, want: Part, path: &Path) -> Result<()> {
    if found != want {
        bail!(
            "{} is a {found} model; this command needs the {want}",
            path.display()
        );
    }
    Ok(())
}

/// The engine for this GPU: the named one, or built (cached) from weights / ONNX for its target.
fn open_tensorrt(model: &Model, part: Part, a: &ModelArgs, ui: &Ui) -> Result<Opened> {
    let (engine, manifest) = match model {
        Model::Engine { engine, manifest } => (engine.clone(), (**manifest).clone()),
        Model::Onnx(p) | Model::Weights(p) => {
            // Refuse before building anything when no engine could run here.
            let gpu =
                trt_backend::runtime_ready(a.tensorrt_dir.as_deref()).map_err(|e| anyhow!(e))?;
            let (ma, mi) = gpu.compute_capability;
            let target = seedvae_engine::Target::of_compute_capability(ma, mi)
                .expect("runtime_ready checked that this GPU has a target");
            let args = super::build::Args {
                model: p.clone(),
                profile: a.profile.clone(),
                target: vec![target.name().to_string()],
                precision: None,
                part: Some(match part {
                    Part::Decoder => super::convert::PartArg::Decoder,
                    Part::Encoder => super::convert::PartArg::Encoder,
                }),
                streaming: matches!(model, Model::Weights(_)),
                calibrate: vec![],
                cache: a.cache.clone(),
                output: None,
                force: false,
                tensorrt_dir: a.tensorrt_dir.clone(),
                json: false,
                weightless: false,
            };
            let (entry, _) = super::build::build(&args, ui)?;
            (entry.engine, entry.manifest)
        }
    };
    check_part(manifest.key_parts.part, part, &engine)?;
    let limits =
        trt_backend::limits(&manifest).map_err(|e| anyhow!("{}: {e}", engine.display()))?;
    let refit = if manifest.key_parts.weightless {
        // The cheap checks first: the right file, then a GPU, then the (slow) regeneration.
        let w = a.weights.as_ref().ok_or_else(|| {
            anyhow!(
                "{} is a weightless engine: pass your weights file with --weights to refit it",
                engine.display()
            )
        })?;
        let file = WeightFile::open(w)?;
        seedvae_runner::refit::check_weights(&manifest, &file, w)?;
        trt_backend::preflight(&manifest, a.tensorrt_dir.as_deref()).map_err(|e| anyhow!(e))?;
        let pb = ui.spinner("regenerating the engine's weights from your checkpoint");
        let r = seedvae_runner::refit::regenerate(&manifest, &file);
        pb.finish_and_clear();
        Some(r?)
    } else {
        None
    };
    let b = TrtBackend::open(
        &engine,
        &manifest,
        a.tensorrt_dir.as_deref(),
        refit.as_deref(),
    )?;
    let budget = match a.vram_budget {
        Some(gb) => (gb * 1e9) as u64,
        None => b.gpu.free_bytes.saturating_sub(512 << 20),
    };
    let memory_cap = trt_backend::memory_cap(&manifest, &limits, budget)
        .map_err(|e| anyhow!("{}: {e}", engine.display()))?;
    Ok(Opened {
        backend: Box::new(b),
        limits,
        memory_cap,
        fallback: None,
    })
}

/// Open `--model` for `part` with the chosen backend.
pub fn open(a: &ModelArgs, part: Part, ui: &Ui) -> Result<Opened> {
    let model = resolve(a)?;
    match a.backend {
        BackendArg::Cpu => open_cpu(&model, part, a, ui),
        BackendArg::Tensorrt => open_tensorrt(&model, part, a, ui)
            .context("the TensorRT-RTX backend cannot run here (--backend cpu runs on the CPU)"),
        BackendArg::Auto => {
            // Only what says "not on this machine" falls back; a broken model is an error.
            let why = match &model {
                Model::Engine { manifest, .. } => {
                    trt_backend::preflight(manifest, a.tensorrt_dir.as_deref()).err()
                }
                _ => trt_backend::runtime_ready(a.tensorrt_dir.as_deref()).err(),
            };
            match why {
                None => open_tensorrt(&model, part, a, ui),
                Some(why) => {
                    let line =
                        format!("TensorRT-RTX not used: {why}; running on the CPU (ONNX Runtime)");
                    if !ui.quiet {
                        eprintln!("{line}");
                    }
                    let mut o = open_cpu(&model, part, a, ui).with_context(|| {
                        format!("TensorRT-RTX cannot run here ({why}), and the CPU fallback failed")
                    })?;
                    o.fallback = Some(why);
                    Ok(o)
                }
            }
        }
    }
}

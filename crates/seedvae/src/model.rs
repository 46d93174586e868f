//! A model ready to run: what the user named (weights, ONNX graph, engine, cache key), the
//! backend chosen for this machine, and what the planner needs to know about it.

use crate::engine::{ensure_engine, EngineRequest};
use crate::error::{invalid, Error, Result};
use crate::progress::{Event, Progress};
use seedvae_engine::{Cache, EnginePrecision, Manifest, Target};
use seedvae_runner::tensorrt::{self, TrtBackend};
use seedvae_runner::{Backend, BackendKind, GraphRecipe, Limits, OrtBackend, OrtDevice};
use seedvae_weights::{Part, WeightFile};
use std::path::{Path, PathBuf};

/// Which backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// TensorRT-RTX when a supported GPU and engine are there, else ONNX Runtime's CUDA
    /// provider, else the CPU (each skip with its reason).
    #[default]
    Auto,
    /// TensorRT-RTX on the GPU, or an error with the reason.
    Tensorrt,
    /// ONNX Runtime's CUDA provider on any NVIDIA GPU (fp16 graphs), or an error with the reason.
    Cuda,
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
    /// The CUDA provider runs the fp32 graph (TF32 off) instead of the fp16 one.
    pub cuda_fp32: bool,
}

impl ModelOptions {
    /// Refuse settings that cannot be meant: more threads than cores, a budget that is not a
    /// positive number of GB.
    pub fn validate(&self) -> Result<()> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.threads > cores {
            return Err(invalid!(
                "`threads` {}: this machine has {cores} logical cores; use at most {cores} (0 = all)",
                self.threads
            ));
        }
        if let Some(gb) = self.vram_budget_gb {
            if !(gb.is_finite() && gb > 0.0 && gb <= 4096.0) {
                return Err(invalid!(
                    "`vram_budget_gb` {gb}: give the GPU memory to plan within in GB, e.g. 12"
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
            cuda_fp32: false,
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
    /// Largest tile edge (the part's input units) that fits the memory budget (engines).
    pub(crate) memory_cap: Option<usize>,
    /// Graph backends on a GPU: the memory plan, whose tile cap depends on the chunk.
    pub(crate) graph_memory: Option<seedvae_runner::planner::GraphMemory>,
    /// Opened by auto on a GPU: what to reopen from if its first call fails.
    pub(crate) auto: Option<Box<(ModelSource, ModelOptions)>>,
    pub(crate) fallback: Option<String>,
    pub(crate) part: Part,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("backend", &self.backend.kind())
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
            BackendChoice::Cuda => open_cuda(&source, part, opts, progress),
            BackendChoice::Auto => {
                let mut m = open_auto(&source, part, opts, progress, Vec::new(), true)?;
                if m.backend.kind() != BackendKind::OrtCpu {
                    m.auto = Some(Box::new((source, opts.clone())));
                }
                Ok(m)
            }
        }
    }

    /// Under `--backend auto`, a GPU backend whose very first call failed for an environment
    /// reason (out of memory, a CUDA or JIT failure) gives way to the next one in auto's order
    /// (TensorRT-RTX → CUDA provider → CPU) before anything was output; the caller runs again.
    /// Anything else is `e` back.
    pub(crate) fn fall_back_at_first_call(
        &mut self,
        e: Error,
        calls: usize,
        progress: &Progress,
    ) -> Result<()> {
        let first =
            calls == 0 && e.is_environment_failure() && !progress.cancel_token().is_cancelled();
        let Some(auto) = self.auto.take().filter(|_| first) else {
            return Err(e);
        };
        let (source, opts) = *auto;
        let was_tensorrt = self.backend.kind() == BackendKind::TensorrtRtx;
        let what = if was_tensorrt {
            "TensorRT-RTX"
        } else {
            "ONNX Runtime's CUDA provider"
        };
        let mut reasons: Vec<String> = self.fallback.iter().cloned().collect();
        reasons.push(format!("{what} failed at its first call: {e}"));
        // The failed backend's memory goes before the next one opens.
        self.backend = Box::new(Closed(self.backend.contract().clone()));
        let mut m = open_auto(&source, self.part, &opts, progress, reasons, false)?;
        if was_tensorrt && m.backend.kind() != BackendKind::OrtCpu {
            m.auto = Some(Box::new((source, opts)));
        }
        *self = m;
        Ok(())
    }

    /// Which backend runs the model.
    pub fn backend_kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// The backend's short name ("onnxruntime-cpu", "onnxruntime-cuda", "tensorrt-rtx").
    pub fn backend_name(&self) -> &'static str {
        self.backend.kind().name()
    }

    /// Why the preferred backends were not used (auto only), one reason each.
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

/// Auto's order from TensorRT-RTX (when `try_tensorrt`) over the CUDA provider to the CPU, each
/// skip given with its reason (`reasons` holds earlier ones).
fn open_auto(
    source: &ModelSource,
    part: Part,
    opts: &ModelOptions,
    progress: &Progress,
    mut reasons: Vec<String>,
    try_tensorrt: bool,
) -> Result<Model> {
    if try_tensorrt {
        let why = match source {
            ModelSource::Engine { manifest, .. } => {
                tensorrt::preflight(manifest, opts.tensorrt_dir.as_deref()).err()
            }
            _ => tensorrt::runtime_ready(opts.tensorrt_dir.as_deref()).err(),
        };
        match why {
            None => match open_tensorrt(source, part, opts, progress) {
                // Past the checks, the GPU can still fail to open the engine (an old
                // driver, too little memory, a JIT failure): that too falls back.
                Err(e) if e.is_environment_failure() && !progress.cancel_token().is_cancelled() => {
                    reasons.push(format!("TensorRT-RTX not used: {e}"))
                }
                r => return r,
            },
            Some(why) => reasons.push(format!("TensorRT-RTX not used: {why}")),
        }
    }
    // An engine runs only on TensorRT-RTX; the CUDA provider needs a graph.
    let cuda = match seedvae_runner::cuda_ready() {
        Ok(_) if !matches!(source, ModelSource::Engine { .. }) || opts.weights.is_some() => {
            open_cuda(source, part, opts, progress)
        }
        Ok(_) => Err(invalid!("an engine needs TensorRT-RTX")),
        Err(why) => Err(Error::Unavailable(why)),
    };
    match cuda {
        Ok(mut m) => {
            let reason = reasons.join("; ");
            progress.emit(Event::Notice(&format!(
                "{reason}; running on ONNX Runtime's CUDA provider"
            )));
            m.fallback = Some(reason);
            return Ok(m);
        }
        Err(e) if e.is_environment_failure() || matches!(e, Error::Invalid(_)) => {
            reasons.push(format!("ONNX Runtime's CUDA provider not used: {e}"))
        }
        Err(e) => return Err(e),
    }
    let reason = reasons.join("; ");
    progress.emit(Event::Notice(&format!(
        "{reason}; running on the CPU (ONNX Runtime)"
    )));
    let mut m = open_cpu(source, part, opts, progress).map_err(|e| Error::Fallback {
        reason: reason.clone(),
        source: Box::new(e),
    })?;
    m.fallback = Some(reason);
    Ok(m)
}

/// What a model holds between a failed backend and the next one (and keeps if no next one
/// opens): its contract, and an error for every call.
struct Closed(seedvae_onnx::Contract);

impl Backend for Closed {
    fn kind(&self) -> BackendKind {
        BackendKind::Other("closed")
    }
    fn contract(&self) -> &seedvae_onnx::Contract {
        &self.0
    }
    fn run(
        &mut self,
        _: &[(&str, &seedvae_runner::Tensor)],
    ) -> std::result::Result<
        std::collections::HashMap<String, seedvae_runner::Tensor>,
        seedvae_runner::Error,
    > {
        Err(seedvae_runner::Error::Backend(
            "the GPU backend failed and no other one could open (see the earlier error)".into(),
        ))
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
) -> Result<PathBuf> {
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
    match cache.verified_graph(&rh, &w.content_hash()) {
        Ok(Some(path)) => return Ok(path),
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

/// The graph `source` names for a graph backend at `precision`: an ONNX file as it is, else
/// converted from the weights (an engine's own weights given with `--weights`, checked first).
fn graph_for(
    source: &ModelSource,
    part: Part,
    precision: EnginePrecision,
    o: &ModelOptions,
    progress: &Progress,
) -> Result<PathBuf> {
    match source {
        ModelSource::Onnx(p) => Ok(p.clone()),
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
                "{} is a TensorRT-RTX engine; the CPU backend needs the weights or an ONNX graph as `model` \
                 (or the weights as `weights`)",
                engine.display()
            )),
        },
    }
}

/// A graph backend (ONNX Runtime on the CPU or through CUDA) for `source`.
fn open_graph(
    source: &ModelSource,
    part: Part,
    device: OrtDevice,
    budget: Option<u64>,
    o: &ModelOptions,
    progress: &Progress,
) -> Result<(Model, PathBuf)> {
    let precision = match device {
        OrtDevice::Cuda { .. } => cuda_precision(o),
        _ => EnginePrecision::Fp32,
    };
    let graph = graph_for(source, part, precision, o, progress)?;
    let b = OrtBackend::open_on(&graph, device)?;
    check_part(b.contract().part, part, &graph)?;
    let graph_memory = match (device, budget) {
        (OrtDevice::Cuda { .. }, Some(budget)) => {
            let bytes = std::fs::metadata(&graph).map_or(0, |m| m.len());
            Some(seedvae_runner::planner::GraphMemory::new(
                b.contract(),
                bytes,
                budget,
            ))
        }
        _ => None,
    };
    let m = Model {
        backend: Box::new(b),
        limits: Limits::unbounded(part),
        memory_cap: None,
        graph_memory,
        auto: None,
        fallback: None,
        part,
    };
    Ok((m, graph))
}

pub(crate) fn open_cpu(
    source: &ModelSource,
    part: Part,
    o: &ModelOptions,
    progress: &Progress,
) -> Result<Model> {
    let cpu = OrtDevice::Cpu { threads: o.threads };
    Ok(open_graph(source, part, cpu, None, o, progress)?.0)
}

/// ONNX Runtime's CUDA provider on GPU 0, running the fp16 streaming graph.
fn open_cuda(
    source: &ModelSource,
    part: Part,
    o: &ModelOptions,
    progress: &Progress,
) -> Result<Model> {
    let gpu = seedvae_runner::cuda_ready()?;
    let budget = plan_budget(o, gpu.free_bytes);
    // With --vram-budget the arena is held to it, less what lives outside it (the CUDA context,
    // cuDNN/cuBLAS handles: the plan's overhead): an allocation past it is an error, not a spill.
    let mem_limit = o
        .vram_budget_gb
        .map(|_| budget.saturating_sub(seedvae_runner::planner::GraphMemory::OVERHEAD) as usize);
    let device = OrtDevice::Cuda { id: 0, mem_limit };
    let (mut m, graph) = open_graph(source, part, device, Some(budget), o, progress)?;
    let bound = match cuda_precision(o) {
        EnginePrecision::Fp32 => crate::probe::FP32,
        _ => crate::probe::FP16,
    };
    let id = format!("onnxruntime-cuda {}", graph_identity(&graph)?);
    crate::probe::first_run(&mut m, source, o, &gpu, &id, bound, progress)?;
    Ok(m)
}

/// The graph precision the CUDA provider runs.
fn cuda_precision(o: &ModelOptions) -> EnginePrecision {
    if o.cuda_fp32 {
        EnginePrecision::Fp32
    } else {
        EnginePrecision::Fp16
    }
}

/// A graph file's identity for probe records: the blake3 of its bytes (a graph replaced by
/// another of the same size and time is another graph).
fn graph_identity(graph: &Path) -> Result<String> {
    let mut f = std::fs::File::open(graph).map_err(|e| Error::io(graph, e))?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(graph, e))?;
    Ok(format!("graph blake3 {}", h.finalize().to_hex()))
}

/// GPU memory to plan within: `--vram-budget`, else the free memory less 0.5 GB.
fn plan_budget(o: &ModelOptions, free_bytes: u64) -> u64 {
    match o.vram_budget_gb {
        Some(gb) => (gb * 1e9) as u64,
        None => free_bytes.saturating_sub(512 << 20),
    }
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
                "{} is a weightless engine: pass your weights file with `weights` to refit it",
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
    let mut b = TrtBackend::open(
        &engine,
        &manifest,
        o.tensorrt_dir.as_deref(),
        refit.as_deref(),
    )?;
    let budget = plan_budget(o, b.gpu.free_bytes);
    let memory_cap = tensorrt::measured_memory_cap(&mut b, &manifest, &limits, budget)
        .map_err(|e| invalid!("{}: {e}", engine.display()))?;
    let gpu = b.gpu.clone();
    let mut m = Model {
        backend: Box::new(b),
        limits,
        memory_cap,
        graph_memory: None,
        auto: None,
        fallback: None,
        part,
    };
    let bound = crate::probe::ENGINE;
    let id = format!("tensorrt-rtx engine {}", manifest.key);
    crate::probe::first_run(&mut m, source, o, &gpu, &id, bound, progress)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::TileOptions;
    use seedvae_runner::Tensor;
    use std::collections::HashMap;

    /// A GPU backend stand-in over a CPU backend: fails its call number `fail_at` the way a GPU
    /// does when memory runs out (0: never), scales its frames by `1 + err` (wrong kernels), and
    /// counts its calls.
    struct MockGpu {
        inner: Box<dyn Backend>,
        fail_at: usize,
        err: f32,
        calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl MockGpu {
        fn new(inner: Box<dyn Backend>, fail_at: usize, err: f32) -> MockGpu {
            MockGpu {
                inner,
                fail_at,
                err,
                calls: Default::default(),
            }
        }
    }

    impl Backend for MockGpu {
        fn kind(&self) -> BackendKind {
            BackendKind::Other("mock-gpu")
        }
        fn contract(&self) -> &seedvae_onnx::Contract {
            self.inner.contract()
        }
        fn run(
            &mut self,
            inputs: &[(&str, &Tensor)],
        ) -> std::result::Result<HashMap<String, Tensor>, seedvae_runner::Error> {
            let n = 1 + self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == self.fail_at {
                return Err(seedvae_runner::Error::Backend(
                    "CUDA failure 2: out of memory".into(),
                ));
            }
            let mut out = self.inner.run(inputs)?;
            if let Some(seedvae_runner::Data::F32(v)) = out.get_mut("video").map(|t| &mut t.data) {
                v.iter_mut().for_each(|x| *x *= 1.0 + self.err);
            }
            Ok(out)
        }
    }

    fn flaky(fail_at: usize, cache: &Path) -> (Model, ModelOptions) {
        let weights = seedvae_tests::fixture("vae_tiny/weights.safetensors");
        let opts = ModelOptions {
            backend: BackendChoice::Auto,
            cache: Some(cache.to_path_buf()),
            threads: 1,
            ..ModelOptions::default()
        };
        let quiet = Progress::new(|_| {});
        let mut m = Model::open(&weights, Part::Decoder, &opts, &quiet).unwrap();
        assert_eq!(
            m.backend_kind(),
            BackendKind::OrtCpu,
            "this machine has no GPU"
        );
        let source = ModelSource::resolve(&weights, Some(cache)).unwrap();
        let closed = Box::new(Closed(m.backend.contract().clone()));
        let cpu = std::mem::replace(&mut m.backend, closed);
        m.backend = Box::new(MockGpu::new(cpu, fail_at, 0.0));
        m.auto = Some(Box::new((source, opts.clone())));
        (m, opts)
    }

    #[test]
    fn a_gpu_failing_its_first_call_gives_way_to_the_next_backend() {
        let dir = tempfile::tempdir().unwrap();
        let latent = seedvae_runner::read_latent(&seedvae_tests::fixture(
            "vae_tiny/latent_t2_8x8.safetensors",
        ))
        .unwrap();
        let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = notices.clone();
        let progress = Progress::new(move |e| {
            if let Event::Notice(n) = e {
                seen.lock().unwrap().push(n.to_string());
            }
        });
        let opts = TileOptions {
            chunk: Some(1),
            ..TileOptions::default()
        };
        let (mut m, _) = flaky(1, dir.path());
        let (video, report) = m.decode_tensor(&latent, &opts, &progress).unwrap();
        assert_eq!(video.shape, vec![1, 3, 5, 64, 64]);
        assert_eq!(report.backend, BackendKind::OrtCpu);
        let why = report.fallback_reason.unwrap();
        assert!(
            why.contains("failed at its first call: CUDA failure 2: out of memory"),
            "{why}"
        );
        assert!(notices
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.contains("first call")));
        // Once a call has completed, output may exist: a later failure is the run's error.
        let (mut m, _) = flaky(2, dir.path());
        let e = m.decode_tensor(&latent, &opts, &progress).unwrap_err();
        assert!(e.to_string().contains("out of memory"), "{e}");
        assert_eq!(m.backend_name(), "mock-gpu");
    }
    #[test]
    fn the_first_run_on_a_gpu_is_checked_against_the_cpu_once() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let (mut m, opts) = flaky(0, dir.path());
        let weights = seedvae_tests::fixture("vae_tiny/weights.safetensors");
        let source = ModelSource::resolve(&weights, Some(dir.path())).unwrap();
        let gpu = seedvae_runner::tensorrt::GpuInfo {
            name: "Mock GPU".into(),
            uuid: "00ff".into(),
            compute_capability: (12, 0),
            free_bytes: 1 << 34,
            total_bytes: 1 << 34,
        };
        let quiet = Progress::new(|_| {});
        let bound = crate::probe::FP16;
        let mut with = |err: f32| {
            let inner = open_cpu(&source, Part::Decoder, &opts, &quiet)
                .unwrap()
                .backend;
            let mock = MockGpu::new(inner, 0, err);
            let calls = mock.calls.clone();
            m.backend = Box::new(mock);
            let r = crate::probe::first_run(&mut m, &source, &opts, &gpu, "model-x", bound, &quiet);
            (r, calls.load(Ordering::SeqCst))
        };
        // 5% off (broken kernels): refused as an environment failure (auto falls back), nothing
        // recorded.
        let (r, calls) = with(0.05);
        let e = r.unwrap_err();
        assert!(e.is_environment_failure(), "{e}");
        assert!(
            e.to_string().contains("gives wrong results on Mock GPU"),
            "{e}"
        );
        assert!(calls > 0);
        let probes = dir.path().join("probes");
        assert!(!probes.exists());
        // Exact: passes and is recorded; the next open of the same model on the same GPU skips it.
        let (r, _) = with(0.0);
        r.unwrap();
        assert_eq!(std::fs::read_dir(&probes).unwrap().count(), 1);
        let (r, calls) = with(0.5);
        r.unwrap();
        assert_eq!(calls, 0, "a recorded pass is not checked again");
        // A record is read, not trusted for existing: junk, or another model's pass copied over
        // it, is checked again (and a broken GPU then refused).
        let record = std::fs::read_dir(&probes)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let good = std::fs::read_to_string(&record).unwrap();
        for junk in [
            "{}".to_string(),
            "garbage".into(),
            good.replace("model-x", "model-y"),
        ] {
            std::fs::write(&record, &junk).unwrap();
            let (r, calls) = with(0.5);
            assert!(r.is_err() && calls > 0, "{junk} was trusted");
        }
        // A pass whose record cannot be written (a read-only cache, a full disk) is a pass.
        std::fs::remove_dir_all(&probes).unwrap();
        std::fs::write(&probes, b"not a folder").unwrap();
        let (r, calls) = with(0.0);
        r.unwrap();
        assert!(calls > 0);
        let (_, calls) = with(0.0);
        assert!(calls > 0, "not recorded, so checked again");
    }
}

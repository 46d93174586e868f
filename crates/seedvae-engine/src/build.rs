//! Ahead-of-time TensorRT-RTX engine builds from seedvae ONNX graphs. TensorRT-RTX compiles for
//! named compute capabilities without a GPU (kSM120 for RTX 50, kSM89 for RTX 40, ...), so this
//! runs on any machine. Thin, on the documented builder API: logger → builder → network (always
//! strongly typed in TensorRT-RTX 1.7, flags 0) → ONNX parser → config (targets, workspace,
//! optimization profile) → serialized engine.

use crate::Error;
use seedvae_onnx::Contract;
use seedvae_weights::Part;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use trtx::builder::MemoryPoolType;
use trtx::{Builder, Logger};

/// GPU architectures an engine can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Target {
    #[serde(rename = "sm_75")]
    Sm75,
    #[serde(rename = "sm_80")]
    Sm80,
    #[serde(rename = "sm_86")]
    Sm86,
    #[serde(rename = "sm_89")]
    Sm89,
    #[serde(rename = "sm_120")]
    Sm120,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Sm75,
        Target::Sm80,
        Target::Sm86,
        Target::Sm89,
        Target::Sm120,
    ];

    /// The target a GPU of compute capability `major.minor` runs (None: no engine target).
    pub fn of_compute_capability(major: i32, minor: i32) -> Option<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.compute_capability() == (major, minor))
    }

    pub fn compute_capability(self) -> (i32, i32) {
        match self {
            Target::Sm75 => (7, 5),
            Target::Sm80 => (8, 0),
            Target::Sm86 => (8, 6),
            Target::Sm89 => (8, 9),
            Target::Sm120 => (12, 0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Sm75 => "sm_75",
            Target::Sm80 => "sm_80",
            Target::Sm86 => "sm_86",
            Target::Sm89 => "sm_89",
            Target::Sm120 => "sm_120",
        }
    }

    pub fn parse(s: &str) -> Result<Target, Error> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown target '{s}' (TensorRT-RTX 1.7 builds for: {})",
                    Target::ALL.map(|t| t.name()).join(", ")
                ))
            })
    }

    /// "sm_120, sm_89".
    pub fn list(targets: &[Target]) -> String {
        targets
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the architecture has FP8 tensor cores (Ada sm_89, Blackwell sm_120).
    pub fn has_fp8(self) -> bool {
        matches!(self, Target::Sm89 | Target::Sm120)
    }

    fn trt(self) -> trtx::ComputeCapability {
        match self {
            Target::Sm75 => trtx::ComputeCapability::kSM75,
            Target::Sm80 => trtx::ComputeCapability::kSM80,
            Target::Sm86 => trtx::ComputeCapability::kSM86,
            Target::Sm89 => trtx::ComputeCapability::kSM89,
            Target::Sm120 => trtx::ComputeCapability::kSM120,
        }
    }
}

/// min / opt / max of one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range3 {
    pub min: usize,
    pub opt: usize,
    pub max: usize,
}

/// The dynamic shape range of a part's main input: T (frames or latent frames), H, W (latent
/// units for the decoder, pixels for the encoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeRange {
    pub t: Range3,
    pub h: Range3,
    pub w: Range3,
}

#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub targets: Vec<Target>,
    pub shapes: ShapeRange,
    pub workspace_bytes: usize,
    /// Capture TensorRT-RTX's detailed per-layer build report (for FP8 checks).
    pub detailed: bool,
    /// Strip the weights from the plan (`kSTRIP_PLAN`, refit identical): the engine is refitted
    /// at load time from the same graph's weights.
    pub weightless: bool,
    /// Set to stop the build: TensorRT-RTX's progress monitor asks it at every step, and the
    /// build returns [`Error::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Cancels a build from inside TensorRT-RTX (between its steps) once the flag is set.
struct CancelMonitor(Arc<AtomicBool>);

impl trtx::interfaces::MonitorProgress for CancelMonitor {
    fn phase_start(&self, _phase: &str, _parent: Option<&str>, _steps: i32) {}
    fn step_complete(&self, _phase: &str, _step: i32) -> std::ops::ControlFlow<()> {
        if self.0.load(Ordering::SeqCst) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }
    fn phase_finish(&self, _phase: &str) {}
}

pub struct BuildOutput {
    pub engine: Vec<u8>,
    /// Every message TensorRT-RTX logged during the build, with its severity.
    pub log: Vec<(String, String)>,
}

/// Warnings that are expected for seedvae graphs and say nothing actionable, logged at debug:
/// ONNX (opset 21) requires Q/DQ scales of the activation type, fp16 here, which TensorRT-RTX
/// widens to fp32 once per conv.
const BENIGN: [&str; 3] = [
    // The shape-only chunk marker of streaming graphs (contract.rs).
    "Input Tensor continuation is unused or used only at compile-time",
    "Converting conv weight scales to fp32",
    "Converting conv activation scales to fp32",
];

struct Capture {
    lines: Arc<Mutex<Vec<(String, String)>>>,
}

impl trtx::logger::LogHandler for Capture {
    fn log(&self, severity: trtx::logger::Severity, message: &str) {
        use trtx::logger::Severity as S;
        let sev = match severity {
            S::InternalError => "internal_error",
            S::Error => "error",
            S::Warning => "warning",
            S::Info => "info",
            _ => "verbose",
        };
        match severity {
            S::InternalError | S::Error => tracing::error!("TensorRT-RTX: {message}"),
            S::Warning if BENIGN.iter().any(|b| message.contains(b)) => {
                tracing::debug!("TensorRT-RTX: {message}")
            }
            S::Warning => tracing::warn!("TensorRT-RTX: {message}"),
            S::Info => tracing::debug!("TensorRT-RTX: {message}"),
            _ => tracing::trace!("TensorRT-RTX: {message}"),
        }
        self.lines
            .lock()
            .expect("log lock")
            .push((sev.to_string(), message.to_string()));
    }
}

/// The TensorRT-RTX libraries this process loaded.
#[derive(Debug, Clone)]
pub struct Libraries {
    pub runtime: std::path::PathBuf,
    pub parser: std::path::PathBuf,
    /// The runtime's own version, `major.minor.patch.build` (e.g. 1.7.1.116); engines are only
    /// valid for the version that built them.
    pub version: String,
}

/// Ask the loaded runtime library for its version (`getInferLibVersion`: major·10000 + minor·100
/// + patch; `getInferLibBuildVersion`: the build number).
fn library_version(rt: &Path) -> Result<String, Error> {
    // SAFETY: the library is already loaded by trtx (this only takes another reference), and
    // both symbols are `int32_t (void)` C functions exported by every TensorRT-RTX runtime.
    unsafe {
        let lib = libloading::Library::new(rt).map_err(|source| Error::Load {
            what: rt.display().to_string(),
            source,
        })?;
        let v: libloading::Symbol<unsafe extern "C" fn() -> i32> =
            lib.get(b"getInferLibVersion\0").map_err(|e| Error::Load {
                what: format!("{}: not a TensorRT-RTX runtime", rt.display()),
                source: e,
            })?;
        let v = v();
        let build = lib
            .get::<unsafe extern "C" fn() -> i32>(b"getInferLibBuildVersion\0")
            .map(|f| f())
            .unwrap_or(0);
        Ok(format!(
            "{}.{}.{}.{build}",
            v / 10000,
            (v / 100) % 100,
            v % 100
        ))
    }
}

/// Load the TensorRT-RTX runtime and ONNX parser libraries once per process (`dir`: an explicit
/// folder; else `$SEEDVAE_TENSORRT_DIR`, else the setup venv).
pub fn load_libraries(dir: Option<&Path>) -> Result<&'static Libraries, Error> {
    // The libraries are loaded once per process; a failure is kept whole, shared by every caller.
    static LOADED: std::sync::OnceLock<Result<Libraries, Arc<Error>>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let (rt, parser) = crate::libs::tensorrt(dir)?;
            trtx::dynamically_load_tensorrt(Some(&rt)).map_err(|source| Error::TensorRt {
                what: format!("cannot load {}", rt.display()),
                source,
            })?;
            trtx::dynamically_load_tensorrt_onnxparser(Some(&parser)).map_err(|source| {
                Error::TensorRt {
                    what: format!("cannot load {}", parser.display()),
                    source,
                }
            })?;
            let version = library_version(&rt)?;
            tracing::debug!("TensorRT-RTX {version} loaded from {}", rt.display());
            Ok(Libraries {
                runtime: rt,
                parser,
                version,
            })
        })
        .as_ref()
        .map_err(|e| Error::Shared(e.clone()))
}

/// Per-input (min, opt, max) dims for a contract and a shape range.
pub fn profile_dims(c: &Contract, r: &ShapeRange) -> Vec<(String, [Vec<i64>; 3])> {
    let mut out = Vec::new();
    let main = &c.inputs[0];
    let ch = match c.part {
        Part::Decoder => 16,
        Part::Encoder => 3,
    };
    let pick = |sel: usize, x: &Range3| [x.min, x.opt, x.max][sel];
    let dims = |sel: usize| {
        vec![
            1,
            ch,
            pick(sel, &r.t) as i64,
            pick(sel, &r.h) as i64,
            pick(sel, &r.w) as i64,
        ]
    };
    out.push((main.name.clone(), [dims(0), dims(1), dims(2)]));
    if let Some(name) = &c.continuation {
        // Length 1 on the first chunk, 2 afterwards (only its shape is read).
        out.push((name.clone(), [vec![1], vec![2], vec![2]]));
    }
    for s in &c.states {
        let d = |sel: usize, frames: usize| {
            let (h, w) = s.spatial(pick(sel, &r.h), pick(sel, &r.w));
            vec![1, s.channels as i64, frames as i64, h as i64, w as i64]
        };
        out.push((
            s.input.clone(),
            [d(0, s.frames), d(1, s.frames), d(2, s.frames)],
        ));
    }
    out
}

fn dims64(v: &[i64]) -> trtx::trtx_sys::Dims64 {
    trtx::trtx_sys::Dims64::from_slice(v)
}

/// Refuse FP8 graphs for targets without FP8 tensor cores, before TensorRT-RTX does with a
/// less helpful message.
pub fn check_targets(fp8: bool, targets: &[Target]) -> Result<(), Error> {
    if targets.is_empty() {
        return Err(Error::Config(
            "no target GPU architecture given (e.g. `target` sm_120)".into(),
        ));
    }
    if fp8 {
        let bad: Vec<&str> = targets
            .iter()
            .filter(|t| !t.has_fp8())
            .map(|t| t.name())
            .collect();
        if !bad.is_empty() {
            return Err(Error::Config(format!(
                "FP8 needs FP8 tensor cores: sm_89 (RTX 40) or sm_120 (RTX 50); {} has none. Build with `precision` fp16 for {}",
                bad.join(", "),
                if bad.len() == 1 { "it" } else { "them" }
            )));
        }
    }
    Ok(())
}

/// A failed TensorRT-RTX call as an error naming the step, TensorRT-RTX's own error as its source.
fn trt(what: &str) -> impl FnOnce(trtx::Error) -> Error + '_ {
    move |source| Error::TensorRt {
        what: what.to_string(),
        source,
    }
}

/// Build a serialized engine from ONNX bytes with a known contract.
pub fn build_engine(
    onnx: &[u8],
    contract: &Contract,
    req: &BuildRequest,
) -> Result<BuildOutput, Error> {
    let md = seedvae_onnx::write::read_metadata(onnx)?;
    let fp8 = md
        .iter()
        .any(|(k, v)| k == seedvae_onnx::meta::QUANTIZATION && v.starts_with("fp8"));
    check_targets(fp8, &req.targets)?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let logger = Logger::new(Capture {
        lines: lines.clone(),
    })
    .map_err(trt("logger"))?;
    let collected = |msg: String| {
        let errs: Vec<String> = lines
            .lock()
            .expect("log lock")
            .iter()
            .filter(|(s, _)| s.contains("error"))
            .map(|(_, m)| m.clone())
            .collect();
        if errs.is_empty() {
            msg
        } else {
            format!("{msg}: {}", errs.join("; "))
        }
    };
    let mut builder = Builder::new(&logger).map_err(trt("builder"))?;
    let network = builder.create_network(0).map_err(trt("network"))?;
    // The parser owns the network (it holds the weights) until the build is done.
    let mut parser = trtx::OnnxParser::new(network, &logger).map_err(trt("ONNX parser"))?;
    parser.parse(onnx).map_err(|source| Error::TensorRt {
        what: collected("TensorRT-RTX could not parse the ONNX graph".into()),
        source,
    })?;
    let mut config = builder.create_config().map_err(trt("config"))?;
    if let Some(flag) = &req.cancel {
        config
            .set_progress_monitor(Box::new(CancelMonitor(flag.clone())))
            .map_err(trt("progress monitor"))?;
    }
    let cancelled = || {
        req.cancel
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    };
    config.set_memory_pool_limit(MemoryPoolType::kWORKSPACE, req.workspace_bytes);
    if req.detailed {
        config.set_profiling_verbosity(trtx::ProfilingVerbosity::kDETAILED);
    }
    if req.weightless {
        // Only the weights marked below (the model's) are refittable and stripped; shape
        // constants stay in the plan (TensorRT-RTX refuses refittable shape inputs).
        config.set_flag(trtx::BuilderFlag::kSTRIP_PLAN);
        config.set_flag(trtx::BuilderFlag::kREFIT_INDIVIDUAL);
    }
    config
        .set_nb_compute_capabilities(req.targets.len() as i32)
        .map_err(|source| Error::TensorRt {
            what: format!("setting {} compute capabilities", req.targets.len()),
            source,
        })?;
    for (i, t) in req.targets.iter().enumerate() {
        config
            .set_compute_capability(t.trt(), i as i32)
            .map_err(|source| Error::TensorRt {
                what: format!("target {}", t.name()),
                source,
            })?;
    }
    let mut profile = builder
        .creata_optimization_profile()
        .map_err(trt("profile"))?;
    for (name, [min, opt, max]) in profile_dims(contract, &req.shapes) {
        for (sel, d) in [
            (trtx::OptProfileSelector::kMIN, &min),
            (trtx::OptProfileSelector::kOPT, &opt),
            (trtx::OptProfileSelector::kMAX, &max),
        ] {
            profile
                .set_dimensions(&name, sel, &dims64(d))
                .map_err(|source| Error::TensorRt {
                    what: format!("profile dims {d:?} for input '{name}'"),
                    source,
                })?;
        }
    }
    config
        .add_optimization_profile(&mut profile)
        .map_err(|source| Error::TensorRt {
            what: collected("adding the optimization profile".into()),
            source,
        })?;
    let engine = builder
        .build_serialized_network(
            {
                let net = parser.network_mut();
                if req.weightless {
                    let names = seedvae_onnx::write::read_initializer_names(onnx)
                        ?;
                    let model = names.iter().filter(|n| seedvae_onnx::is_model_weight(n));
                    // Weights the parser folded away have no name left to mark: skipped.
                    let marked = model
                        .filter(|n| net.mark_weights_refittable(n).is_ok())
                        .count();
                    tracing::debug!("weightless: {marked} of {} initializers refittable", names.len());
                }
                net
            },
            &mut config,
        )
        .map_err(|e| {
            if cancelled() {
                return Error::Cancelled;
            }
            let log = lines.lock().expect("log lock");
            match crate::layers::exceeded_budget(&log) {
                Some((budget, need)) => Error::TensorRt {
                    what: format!(
                        "at the profile's largest tile the engine needs {:.2} GB of device memory for activations, \
                         but the workspace limit is {:.2} GB: raise workspace_mib (and vram_budget_gb) in the profile, \
                         or lower its max sizes",
                        need as f64 / 1e9,
                        budget as f64 / 1e9
                    ),
                    source: e,
                },
                None if req.weightless
                    && log.iter().any(|(_, m)| m.contains("CUDA_SUCCESS")) =>
                {
                    Error::TensorRt {
                        what: "weightless engines need a CUDA GPU at build time: TensorRT-RTX 1.7 compiles \
                               refittable kernels with CUDA, which this machine does not have. Build the \
                               weightless engine on a PC with an NVIDIA GPU, or build a regular engine here"
                            .into(),
                        source: e,
                    }
                }
                None => {
                    drop(log);
                    Error::TensorRt {
                        what: collected("TensorRT-RTX build failed".into()),
                        source: e,
                    }
                }
            }
        })?;
    if cancelled() {
        return Err(Error::Cancelled);
    }
    let engine = engine.as_ref().to_vec();
    let log = std::mem::take(&mut *lines.lock().expect("log lock"));
    Ok(BuildOutput { engine, log })
}

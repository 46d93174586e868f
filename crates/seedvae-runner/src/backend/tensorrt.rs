//! The TensorRT-RTX backend: runs a cached engine on an RTX GPU.
//!
//! Two halves. The checks (which GPU, which targets, which library version, what the engine's
//! profile accepts, how much memory a tile needs, buffer sizes) are plain functions, unit-tested
//! on machines without a GPU. The execution ([`TrtBackend`]) is a thin sequence of documented
//! TensorRT-RTX calls — deserialize, one execution context (one optimization profile: ours have
//! one), user-managed activation memory sized for the current shapes, `setInputShape`,
//! `setTensorAddress`, `enqueueV3` on a CUDA stream, pinned host staging — with the runtime cache
//! (JIT-compiled kernels) kept in a file beside the engine. CUDA memory and streams come from
//! `cudarc`, whose driver library (`libcuda.so.1` / `nvcuda.dll`) is loaded at run time, so this
//! compiles and runs its checks everywhere.
//!
//! Streaming keeps the carried causal states on the GPU ([`Backend::step`]): two device sets per
//! stream, ping-pong — the state outputs of one call are the state inputs of the next, bound by
//! address, and the set a call read becomes the next call's output set.
//!
//! Not tested here: the execution path needs a supported GPU (this workplace's H100/H200 is
//! compute capability 9.0, which TensorRT-RTX refuses).

use crate::backend::{Backend, BackendKind};
use crate::planner::Limits;
use crate::stream::{check_chunk, marker, Carried};
use crate::tensor::{Data, Tensor};
use crate::{Error, Unavailable};
use seedvae_engine::build::Target;
use seedvae_engine::cache::Manifest;
use seedvae_onnx::{Contract, Elem};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Compute capabilities TensorRT-RTX 1.7 runs on, from NVIDIA's support matrix (7.5 needs an
/// opt-in we do not make; 8.0, the A100, is not listed).
pub const SUPPORTED_CC: [(i32, i32); 4] = [(8, 6), (8, 9), (12, 0), (12, 1)];

/// The GPU this process would run on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GpuInfo {
    pub name: String,
    /// The driver's UUID of the GPU (hex): what first-run probes are recorded under.
    pub uuid: String,
    pub compute_capability: (i32, i32),
    pub free_bytes: u64,
    pub total_bytes: u64,
}

impl GpuInfo {
    fn cc(&self) -> String {
        format!(
            "{}.{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }
}

/// GPU 0's primary context, retained once for the process: the probe and the backend share it
/// (dropping a cudarc context releases the primary context, which stayed current on the thread
/// deinitialized, and every open paid for its setup again; review B7).
fn gpu0() -> Result<Arc<cudarc::driver::CudaContext>, Unavailable> {
    static CTX: std::sync::OnceLock<Result<Arc<cudarc::driver::CudaContext>, Unavailable>> =
        std::sync::OnceLock::new();
    CTX.get_or_init(|| {
        cudarc::driver::CudaContext::new(0)
            .map_err(|e| Unavailable(format!("cannot open GPU 0: {e}")))
    })
    .clone()
}

/// Find GPU 0 through the CUDA driver; the reason in one line when there is none.
pub fn probe_gpu() -> Result<GpuInfo, Unavailable> {
    use cudarc::driver::{sys, CudaContext};
    // SAFETY: only tries to load the driver library; no driver call is made if it is absent.
    if !unsafe { sys::is_culib_present() } {
        return Err(Unavailable(
            "no NVIDIA driver found (libcuda / nvcuda.dll is not installed)".into(),
        ));
    }
    let n = CudaContext::device_count()
        .map_err(|e| Unavailable(format!("the CUDA driver failed: {e}")))?;
    if n < 1 {
        return Err(Unavailable("the NVIDIA driver reports no GPU".into()));
    }
    let ctx = gpu0()?;
    let (free, total) = ctx
        .mem_get_info()
        .map_err(|e| Unavailable(format!("GPU 0: {e}")))?;
    let uuid = ctx
        .uuid()
        .map(|u| {
            u.bytes
                .iter()
                .map(|b| format!("{:02x}", *b as u8))
                .collect()
        })
        .unwrap_or_default();
    Ok(GpuInfo {
        uuid,
        name: ctx.name().unwrap_or_else(|_| "GPU 0".into()),
        compute_capability: ctx
            .compute_capability()
            .map_err(|e| Unavailable(format!("GPU 0: {e}")))?,
        free_bytes: free as u64,
        total_bytes: total as u64,
    })
}

/// Can an engine built for `targets` run on `gpu`? The reason, naming both, when not.
pub fn check_device(gpu: &GpuInfo, targets: &[Target]) -> Result<Target, Unavailable> {
    if !SUPPORTED_CC.contains(&gpu.compute_capability) {
        return Err(Unavailable(format!(
            "TensorRT-RTX does not support {} (compute capability {}); it runs on RTX GPUs of \
             compute capability 8.6, 8.9 and 12.x",
            gpu.name,
            gpu.cc()
        )));
    }
    let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
    let (ma, mi) = gpu.compute_capability;
    match Target::of_compute_capability(ma, mi) {
        Some(t) if targets.contains(&t) => Ok(t),
        Some(t) => Err(Unavailable(format!(
            "the engine was built for {}, but {} is {}: build one with `target` {}",
            names.join(", "),
            gpu.name,
            t.name(),
            t.name()
        ))),
        None => Err(Unavailable(format!(
            "the engine was built for {}; seedvae builds no engine target for {} (compute \
             capability {})",
            names.join(", "),
            gpu.name,
            gpu.cc()
        ))),
    }
}

/// Engines only load in the TensorRT-RTX version that built them.
pub fn check_version(built_with: &str, loaded: &str) -> Result<(), Unavailable> {
    if built_with == loaded {
        Ok(())
    } else {
        Err(Unavailable(format!(
            "the engine was built with TensorRT-RTX {built_with}, this machine has {loaded}: \
             rebuild it here (`seedvae build`)"
        )))
    }
}

/// What an engine accepts per call, from its manifest's input ranges (the part's main input).
pub fn limits(m: &Manifest) -> Result<Limits, Error> {
    let main = &m.info.contract.inputs[0].name;
    let r = m
        .info
        .input_ranges
        .iter()
        .find(|r| &r.name == main)
        .ok_or_else(|| Error::Backend(format!("the manifest has no input range for '{main}'")))?;
    let dim = |i: usize| -> Result<(usize, usize), Error> {
        match (r.min.get(i), r.max.get(i)) {
            (Some(&a), Some(&b)) if a >= 1 && b >= a => Ok((a as usize, b as usize)),
            _ => Err(Error::Backend(format!(
                "bad input range for '{main}': {:?}..{:?}",
                r.min, r.max
            ))),
        }
    };
    Ok(Limits {
        t: dim(2)?,
        h: dim(3)?,
        w: dim(4)?,
    })
}

/// Bytes of a tensor of `shape` and element type.
pub fn io_bytes(shape: &[usize], elem: Elem) -> usize {
    shape.iter().product::<usize>() * elem.size()
}

/// Device bytes of one call on an `e × e` tile (input units) at the profile's longest call:
/// weights; activations from the builder's report at the profile's largest tile, scaled with the
/// tile's area; for a streaming engine two sets of carried state (exact, from the contract: the
/// set a call reads and the set it writes, both bound by address; review A2); the call's I/O;
/// and 5% on top for what TensorRT-RTX may allocate itself (review B4).
pub fn call_bytes(m: &Manifest, lim: &Limits, e: usize) -> Option<u64> {
    let dm = m.info.device_memory.as_ref()?;
    let max_edge = lim.h.1.min(lim.w.1).max(1) as f64;
    let act = dm.activation_bytes as f64 * (e as f64 / max_edge).powi(2);
    Some(call_bytes_with(m, lim, e, act as u64))
}

/// [`call_bytes`] with the activation bytes `act` of that call given (e.g. asked of the
/// execution context at that shape).
pub fn call_bytes_with(m: &Manifest, lim: &Limits, e: usize, act: u64) -> u64 {
    let c = &m.info.contract;
    let weights = m.info.device_memory.as_ref().map_or(0, |d| d.weight_bytes);
    let states = 2 * crate::planner::state_bytes(c, e, e);
    let io = crate::planner::io_bytes(c.part, lim.t.1, e, e);
    weights + ((act + states + io) as f64 * 1.05) as u64
}

/// The largest square tile edge (the part's input units: latent pixels or video pixels) whose
/// call fits `budget` ([`call_bytes`]). None when the profile's largest tile fits or the
/// builder's report is missing.
pub fn memory_cap(m: &Manifest, lim: &Limits, budget: u64) -> Result<Option<usize>, Error> {
    largest_edge(lim, budget, |e| call_bytes(m, lim, e)).unwrap_or(Ok(None))
}

/// [`memory_cap`] from the execution context's own activation numbers at candidate tiles
/// ([`TrtBackend::activation_bytes_at`]); the builder's report scaled by area where the context
/// cannot say (logged).
pub fn measured_memory_cap(
    b: &mut TrtBackend,
    m: &Manifest,
    lim: &Limits,
    budget: u64,
) -> Result<Option<usize>, Error> {
    let t = lim.t.1;
    let asked = |e: usize| match b.activation_bytes_at(t, e, e) {
        Ok(act) => Some(call_bytes_with(m, lim, e, act)),
        Err(err) => {
            tracing::info!(
                "TensorRT-RTX could not size a {e}×{e} tile ({err}); using the builder's report"
            );
            None
        }
    };
    largest_edge(lim, budget, asked).unwrap_or_else(|| memory_cap(m, lim, budget))
}

/// The largest square edge within `lim` whose call `bytes(e)` fits `budget`: Ok(None) when the
/// largest fits, an error when not even the smallest does; None when `bytes` cannot say at
/// either end (a failure mid-search counts as not fitting).
fn largest_edge(
    lim: &Limits,
    budget: u64,
    mut bytes: impl FnMut(usize) -> Option<u64>,
) -> Option<Result<Option<usize>, Error>> {
    let max_edge = lim.h.1.min(lim.w.1);
    let min_edge = lim.h.0.max(lim.w.0).max(1);
    if bytes(max_edge)? <= budget {
        return Some(Ok(None));
    }
    let least = bytes(min_edge)?;
    if least > budget {
        return Some(Err(Error::Backend(format!(
            "the engine needs {:.2} GB at its smallest tile (weights, activations, carried \
             state), more than the {:.2} GB budget (`vram_budget_gb`)",
            least as f64 / 1e9,
            budget as f64 / 1e9
        ))));
    }
    Some(Ok(Some(crate::planner::largest_fitting(
        min_edge,
        max_edge,
        |e| bytes(e).is_some_and(|b| b <= budget),
    ))))
}

/// The runtime cache file kept beside an engine (`engine.trt` → `engine.trt.rtcache`).
pub fn runtime_cache_path(engine: &Path) -> PathBuf {
    let mut s = engine.as_os_str().to_owned();
    s.push(".rtcache");
    PathBuf::from(s)
}

/// TensorRT-RTX can run here at all: its libraries load and there is a GPU it supports.
pub fn runtime_ready(tensorrt_dir: Option<&Path>) -> Result<GpuInfo, Unavailable> {
    let libs = seedvae_engine::build::load_libraries(tensorrt_dir)
        .map_err(|e| Unavailable(e.to_string()))?;
    let gpu = probe_gpu()?;
    check_device(&gpu, &Target::ALL)?;
    // TensorRT-RTX loads NVRTC by name when its JIT needs it (review B8): an nvidia-cuda-nvrtc
    // wheel beside it (`scripts/setup.sh --gpu` installs one) is loaded first, so it is found.
    crate::backend::libs::preload_cuda_libraries(&libs.runtime);
    Ok(gpu)
}

/// Everything checked before an engine is deserialized, cheapest and most specific first: the
/// library version it was built with (no GPU needed), then the GPU and its targets.
pub fn preflight(m: &Manifest, tensorrt_dir: Option<&Path>) -> Result<GpuInfo, Unavailable> {
    let libs = seedvae_engine::build::load_libraries(tensorrt_dir)
        .map_err(|e| Unavailable(e.to_string()))?;
    check_version(&m.key_parts.tensorrt_rtx, &libs.version)?;
    let gpu = probe_gpu()?;
    check_device(&gpu, &m.key_parts.targets)?;
    crate::backend::libs::preload_cuda_libraries(&libs.runtime);
    Ok(gpu)
}

/// An output's shape as TensorRT-RTX reports it: no rank (not an I/O tensor) or a −1 dimension
/// (a data-dependent shape) is an error naming the tensor, not an index out of bounds.
pub fn output_shape(name: &str, nb_dims: i32, d: &[i64]) -> Result<Vec<usize>, Error> {
    let rank = usize::try_from(nb_dims)
        .ok()
        .filter(|&r| r <= d.len())
        .ok_or_else(|| {
            Error::Backend(format!(
                "the engine reports no shape for output '{name}' (rank {nb_dims}): it does not \
                 match this model's contract"
            ))
        })?;
    d[..rank]
        .iter()
        .map(|&x| usize::try_from(x))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            Error::Backend(format!(
                "the engine reports shape {:?} for output '{name}'; seedvae needs every dimension known",
                &d[..rank]
            ))
        })
}

/// TensorRT-RTX's engine-invalidity bits (`getEngineValidity`) as reasons a user can act on.
pub fn invalidity_text(bits: u64) -> String {
    const REASONS: [&str; 7] = [
        "it was built by another TensorRT-RTX version (rebuild it with `seedvae build`)",
        "this GPU's compute capability is not supported",
        "the NVIDIA driver is older than the one it was built with (update the driver; the cu13 \
         libraries need R580 or newer)",
        "the CUDA runtime is older than the one it was built with",
        "the GPU has too little free memory for its weights (close other GPU programs)",
        "the file is not a well-formed engine (corrupt: rebuild it)",
        "the CUDA driver or runtime is not installed correctly",
    ];
    let said: Vec<&str> = (0..REASONS.len())
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| REASONS[i])
        .collect();
    if said.is_empty() {
        format!("no reason given (diagnostics {bits:#x})")
    } else {
        said.join("; ")
    }
}

/// One I/O tensor as a deserialized engine describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineTensor {
    pub name: String,
    pub input: bool,
    /// None: a type seedvae graphs never have.
    pub elem: Option<Elem>,
    pub on_device: bool,
    pub shape_io: bool,
    pub linear: bool,
}

/// The engine's I/O table against the contract it was built from (review B3): every contract
/// tensor is there, with its direction and element type, as a linear device tensor that is not a
/// shape input; and nothing else is. The first mismatch, naming the tensor, is the error.
pub fn check_io_table(c: &Contract, engine: &[EngineTensor]) -> Result<(), Error> {
    let bad = |name: &str, why: String| {
        Err(Error::Backend(format!(
            "the engine's tensor '{name}' {why}: the engine does not match its manifest's contract \
             (rebuild it with `seedvae build`)"
        )))
    };
    let want = c
        .inputs
        .iter()
        .map(|t| (t, true))
        .chain(c.outputs.iter().map(|t| (t, false)));
    for (t, input) in want {
        let Some(e) = engine.iter().find(|e| e.name == t.name) else {
            return bad(&t.name, "is missing".into());
        };
        if e.input != input {
            let dir = |i: bool| if i { "an input" } else { "an output" };
            return bad(
                &t.name,
                format!("is {}, expected {}", dir(e.input), dir(input)),
            );
        }
        if e.elem != Some(t.elem) {
            return bad(
                &t.name,
                format!("has type {:?}, expected {:?}", e.elem, t.elem),
            );
        }
        if !e.on_device || e.shape_io || !e.linear {
            return bad(
                &t.name,
                "is not a linear device tensor (host, shape or vectorized tensors are not supported)"
                    .into(),
            );
        }
    }
    let known = |n: &str| c.inputs.iter().chain(&c.outputs).any(|t| t.name == n);
    if let Some(e) = engine.iter().find(|e| !known(&e.name)) {
        return bad(&e.name, "is not in the contract".into());
    }
    Ok(())
}

/// The engine's I/O table, read through TensorRT-RTX.
fn io_table(eng: &trtx::CudaEngine) -> Result<Vec<EngineTensor>, Error> {
    let n = eng.nb_io_tensors().map_err(trt("I/O tensor count"))?;
    (0..n)
        .map(|i| {
            let name = eng.io_tensor_name(i).map_err(trt("I/O tensor name"))?;
            let elem = match eng.tensor_data_type(&name).map_err(trt("tensor type"))? {
                trtx::DataType::kFLOAT => Some(Elem::F32),
                trtx::DataType::kHALF => Some(Elem::F16),
                trtx::DataType::kINT64 => Some(Elem::I64),
                trtx::DataType::kFP8 => Some(Elem::F8E4M3),
                _ => None,
            };
            Ok(EngineTensor {
                input: eng.tensor_io_mode(&name).map_err(trt("tensor I/O mode"))?
                    == trtx::TensorIOMode::kINPUT,
                on_device: eng.tensor_location(&name).map_err(trt("tensor location"))?
                    == trtx::TensorLocation::kDEVICE,
                shape_io: eng.is_shape_inference_io(&name).map_err(trt("shape I/O"))?,
                linear: eng.tensor_format(&name).map_err(trt("tensor format"))?
                    == trtx::TensorFormat::kLINEAR,
                elem,
                name,
            })
        })
        .collect()
}

/// `updateDeviceMemorySizeForShapes` answers 0 when it failed.
pub fn activation_size(bytes: usize) -> Result<usize, Error> {
    if bytes == 0 {
        return Err(Error::Backend(
            "TensorRT-RTX could not size the activation memory for these input shapes (are they \
             inside the engine's profile?)"
                .into(),
        ));
    }
    Ok(bytes)
}

/// A device buffer that grows to the largest size asked of it.
struct DeviceBuf(Option<cudarc::driver::CudaSlice<u8>>);

impl DeviceBuf {
    fn ensure(
        &mut self,
        stream: &Arc<cudarc::driver::CudaStream>,
        bytes: usize,
    ) -> Result<&mut cudarc::driver::CudaSlice<u8>, Error> {
        if self.0.as_ref().is_none_or(|b| b.len() < bytes) {
            self.0 = None; // free first: the old and new buffer need not coexist
            self.0 = Some(stream.alloc_zeros::<u8>(bytes.max(1)).map_err(|e| {
                Error::Backend(format!("cannot allocate {bytes} bytes on the GPU: {e}"))
            })?);
        }
        Ok(self.0.as_mut().expect("allocated"))
    }
}

fn tensor_bytes(t: &Tensor) -> &[u8] {
    // SAFETY: f32 and f16 are plain 4- and 2-byte values without padding; the slice covers
    // exactly the vector's initialized elements and borrows it.
    unsafe {
        match &t.data {
            Data::F32(v) => std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4),
            Data::F16(v) => std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 2),
        }
    }
}

fn tensor_from_bytes(shape: Vec<usize>, elem: Elem, b: &[u8]) -> Tensor {
    let data = match elem {
        Elem::F16 => Data::F16(
            b.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        _ => Data::F32(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
    };
    Tensor { shape, data }
}

/// Supply every weight the engine was stripped of, by name, from host memory, then refit.
fn refit_engine(
    eng: &trtx::CudaEngine<'static>,
    logger: &'static trtx::Logger,
    weights: &[seedvae_onnx::write::Initializer],
) -> Result<(), Error> {
    let by_name: HashMap<&str, &seedvae_onnx::write::Initializer> =
        weights.iter().map(|w| (w.name.as_str(), w)).collect();
    let mut r = trtx::Refitter::new(eng, logger).map_err(trt("refitter"))?;
    let names = r.all_weights(1 << 20).map_err(trt("refittable weights"))?;
    for name in &names {
        let w = by_name.get(name.as_str()).ok_or_else(|| {
            Error::Input(format!(
                "the engine wants weights '{name}', which the graph does not have"
            ))
        })?;
        let Some((ty, size)) = crate::prepare::refit::trt_data_type(w.data_type) else {
            return Err(Error::Input(format!(
                "weights '{name}': ONNX data type {} cannot be refitted",
                w.data_type
            )));
        };
        let count = refit_count(name, w.raw.len(), size)?;
        // What the engine was built with: type and count must be the same (review B9).
        let proto = r.weights_prototype(name);
        let want: trtx::trtx_sys::nvinfer1::DataType = ty.into();
        if proto.count != count || proto.type_ != want {
            return Err(Error::Input(format!(
                "weights '{name}': the engine holds {} values of TensorRT type {}, the regenerated \
                 graph gives {count} of {ty:?} ({}): the weights file does not match this engine",
                proto.count,
                proto.type_.clone() as i32,
                want.clone() as i32
            )));
        }
        let raw = trtx::trtx_sys::nvinfer1::Weights {
            type_: ty.into(),
            values: w.raw.as_ptr().cast(),
            count,
        };
        // SAFETY: `raw` points into `weights`, which outlives the refit below; the count is
        // the initializer's element count for its type; the data is in host memory.
        unsafe { r.set_named_weights_with_location(name, raw, trtx::TensorLocation::kHOST.into()) }
            .map_err(|e| Error::TrtCall {
                what: format!("TensorRT-RTX refused weights '{name}' ({count} values of {ty:?})"),
                source: e,
            })?;
    }
    if let Err(e) = r.refit_cuda_engine() {
        let missing = r.missing_weights(16).unwrap_or_default();
        return Err(Error::TrtCall {
            what: format!(
                "refitting the engine failed; weights still missing: {}",
                if missing.is_empty() {
                    "none reported".into()
                } else {
                    missing.join(", ")
                }
            ),
            source: e,
        });
    }
    tracing::info!("refitted {} weights into the engine", names.len());
    Ok(())
}

/// The element count of `bytes` bytes of `size`-byte elements; a remainder means the regenerated
/// weights are not what the engine expects.
pub fn refit_count(name: &str, bytes: usize, size: usize) -> Result<i64, Error> {
    if size == 0 || !bytes.is_multiple_of(size) {
        return Err(Error::Input(format!(
            "weights '{name}': {bytes} bytes is not a whole number of {size}-byte values"
        )));
    }
    i64::try_from(bytes / size)
        .map_err(|_| Error::Input(format!("weights '{name}': {bytes} bytes is too many")))
}

/// An engine loaded on the GPU. Field order matters: the context is dropped before the engine.
pub struct TrtBackend {
    context: trtx::ExecutionContext<'static>,
    _engine: trtx::CudaEngine<'static>,
    cache: Arc<trtx::RuntimeCache>,
    cache_file: PathBuf,
    stream: Arc<cudarc::driver::CudaStream>,
    buffers: HashMap<String, DeviceBuf>,
    scratch: DeviceBuf,
    pinned: Option<cudarc::driver::PinnedHostSlice<u8>>,
    /// The state set the last streaming call read: the next call writes into it (ping-pong).
    spare: Option<Vec<cudarc::driver::CudaSlice<u8>>>,
    contract: Contract,
    pub gpu: GpuInfo,
}

/// A stream's carried state on the GPU: one buffer per state tensor, in the contract's order.
struct TrtStates(Vec<cudarc::driver::CudaSlice<u8>>);

/// A tensor bound by device address (a carried state), with the shape it has.
struct DeviceIo {
    name: String,
    shape: Vec<usize>,
    ptr: cudarc::driver::sys::CUdeviceptr,
    bytes: usize,
}

fn trt(what: &str) -> impl Fn(trtx::Error) -> Error + '_ {
    move |e| Error::Backend(format!("TensorRT-RTX: {what}: {e}"))
}

fn cuda(what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| Error::Backend(format!("CUDA: {what}: {e}"))
}

impl TrtBackend {
    /// Load `engine` after [`preflight`], checking its bytes against `manifest` (again when the
    /// caller already did: the file is read here anyway, and may have changed since). A weightless
    /// engine is refitted from `refit` ([`crate::prepare::refit::regenerate`]).
    pub fn open(
        engine: &Path,
        manifest: &Manifest,
        tensorrt_dir: Option<&Path>,
        refit: Option<&[seedvae_onnx::write::Initializer]>,
    ) -> Result<TrtBackend, Error> {
        let gpu = preflight(manifest, tensorrt_dir)?;
        let bytes = std::fs::read(engine)
            .map_err(|e| Error::Input(format!("{}: {e}", engine.display())))?;
        manifest
            .verify(&bytes)
            .map_err(|e| Error::Input(format!("{}: {e}", engine.display())))?;
        let ctx = gpu0()?;
        let stream = ctx.new_stream().map_err(cuda("create a stream"))?;
        // The logger and runtime live as long as the process: engines borrow them.
        let logger: &'static trtx::Logger =
            Box::leak(Box::new(trtx::Logger::log_crate().map_err(trt("logger"))?));
        let runtime: &'static mut trtx::Runtime<'static> = Box::leak(Box::new(
            trtx::Runtime::new(logger).map_err(trt("runtime"))?,
        ));
        let (validity, why) = runtime
            .engine_validity(&bytes)
            .map_err(trt("engine header"))?;
        if validity == trtx::EngineValidity::kINVALID {
            return Err(Error::Backend(format!(
                "{}: TensorRT-RTX says this engine cannot run here: {}",
                engine.display(),
                invalidity_text(why.bits())
            )));
        }
        let mut eng = runtime.deserialize_cuda_engine(&bytes).map_err(|e| {
            Error::Backend(format!("{}: cannot load the engine: {e}", engine.display()))
        })?;
        check_io_table(&manifest.info.contract, &io_table(&eng)?)
            .map_err(|e| Error::Backend(format!("{}: {e}", engine.display())))?;
        if manifest.key_parts.weightless {
            let weights = refit.ok_or_else(|| {
                Error::Input(format!(
                    "{}: a weightless engine needs your weights file to refit it (`weights`)",
                    engine.display()
                ))
            })?;
            refit_engine(&eng, logger, weights)?;
        }
        let mut config = eng.create_runtime_config().map_err(trt("runtime config"))?;
        config.set_execution_context_allocation_strategy(
            trtx::ExecutionContextAllocationStrategy::kUSER_MANAGED,
        );
        let cache = Arc::new(
            config
                .create_runtime_cache()
                .map_err(trt("runtime cache"))?,
        );
        let cache_file = runtime_cache_path(engine);
        if let Ok(blob) = std::fs::read(&cache_file) {
            if let Err(e) = cache.deserialize(&blob) {
                tracing::warn!("{}: ignoring the runtime cache: {e}", cache_file.display());
            }
        }
        config
            .set_runtime_cache(cache.clone())
            .map_err(trt("runtime cache"))?;
        let context = eng
            .create_execution_context_with_config(std::rc::Rc::new(config))
            .map_err(trt("execution context"))?;
        Ok(TrtBackend {
            context,
            _engine: eng,
            cache,
            cache_file,
            stream,
            buffers: HashMap::new(),
            scratch: DeviceBuf(None),
            pinned: None,
            spare: None,
            contract: manifest.info.contract.clone(),
            gpu,
        })
    }

    /// Copy through a pinned staging buffer (grown as needed): pageable copies are synchronous
    /// and slower.
    fn staging(&mut self, bytes: usize) -> Result<&mut cudarc::driver::PinnedHostSlice<u8>, Error> {
        if self.pinned.as_ref().is_none_or(|p| p.len() < bytes) {
            self.pinned = None;
            // SAFETY: the buffer is fully written before any read of it (below).
            self.pinned = Some(unsafe {
                self.stream
                    .context()
                    .alloc_pinned::<u8>(bytes.max(1))
                    .map_err(cuda("pinned host memory"))?
            });
        }
        Ok(self.pinned.as_mut().expect("allocated"))
    }

    fn save_runtime_cache(&self) -> Result<(), Error> {
        let blob = self
            .cache
            .serialize()
            .map_err(|e| Error::Backend(e.to_string()))?;
        seedvae_weights::output::write_atomic(&self.cache_file, |f| {
            std::io::Write::write_all(f, &blob)
        })?;
        Ok(())
    }
}

impl Drop for TrtBackend {
    fn drop(&mut self) {
        // Work an error path left queued must finish before the context is destroyed.
        let _ = self.stream.synchronize();
        if let Err(e) = self.save_runtime_cache() {
            tracing::warn!(
                "{}: runtime cache not saved: {e}",
                self.cache_file.display()
            );
        }
    }
}

impl TrtBackend {
    /// The activation memory TensorRT-RTX's execution context asks for at a call of `t` frames
    /// on an `h × w` tile (every input set to its matching shape): the JIT runtime's own number
    /// (`updateDeviceMemorySizeForShapes`), which the memory plan searches over.
    pub fn activation_bytes_at(&mut self, t: usize, h: usize, w: usize) -> Result<u64, Error> {
        let c = self.contract.clone();
        let channels = match c.part {
            seedvae_weights::Part::Decoder => 16,
            seedvae_weights::Part::Encoder => 3,
        };
        let mut shapes: Vec<(String, Vec<usize>)> =
            vec![(c.inputs[0].name.clone(), vec![1, channels, t, h, w])];
        if let Some(name) = &c.continuation {
            shapes.push((name.clone(), vec![2]));
        }
        for s in &c.states {
            shapes.push((s.input.clone(), s.shape(h, w).to_vec()));
        }
        for (name, shape) in &shapes {
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            self.context
                .set_input_shape(name, &trtx::trtx_sys::Dims64::from_slice(&dims))
                .map_err(|e| Error::Backend(format!("input '{name}' {shape:?}: {e}")))?;
        }
        Ok(activation_size(self.context.update_device_memory_size_for_shapes())? as u64)
    }

    /// One enqueue: `inputs` from host memory (through pinned staging), `dev_in` and `dev_out`
    /// bound by address; every other output is copied back to the host and returned.
    fn execute(
        &mut self,
        inputs: &[(&str, &Tensor)],
        dev_in: &[DeviceIo],
        dev_out: &[DeviceIo],
    ) -> Result<HashMap<String, Tensor>, Error> {
        use cudarc::driver::DevicePtrMut;
        let stream = self.stream.clone();
        for d in dev_in {
            let dims: Vec<i64> = d.shape.iter().map(|&x| x as i64).collect();
            self.context
                .set_input_shape(&d.name, &trtx::trtx_sys::Dims64::from_slice(&dims))
                .map_err(|e| Error::Input(format!("input '{}' {:?}: {e}", d.name, d.shape)))?;
            // SAFETY: the caller's buffer holds `d.bytes` = this shape's size and outlives the
            // enqueue (it is synchronized before returning).
            unsafe { self.context.set_tensor_address(&d.name, d.ptr as *mut _) }
                .map_err(trt("state input address"))?;
        }
        for (name, t) in inputs {
            let dims: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            self.context
                .set_input_shape(name, &trtx::trtx_sys::Dims64::from_slice(&dims))
                .map_err(|e| Error::Input(format!("input '{name}' {:?}: {e}", t.shape)))?;
            let b = tensor_bytes(t);
            let n = b.len();
            self.staging(n)?.as_mut_slice().map_err(cuda("staging"))?[..n].copy_from_slice(b);
            let pinned = self
                .pinned
                .take()
                .ok_or_else(|| Error::Backend("the staging buffer is missing".into()))?;
            let dev = self
                .buffers
                .entry(name.to_string())
                .or_insert(DeviceBuf(None))
                .ensure(&stream, n)?;
            // Only this input's `n` bytes: the staging buffer keeps the largest size seen, and a
            // copy of all of it into an `n`-byte slice would fail cudarc's length assertion
            // (review A1). The buffer is reused for the next input: wait for this copy.
            let r = pinned
                .as_slice()
                .and_then(|src| stream.memcpy_htod(&src[..n], &mut dev.slice_mut(..n)))
                .and_then(|_| stream.synchronize());
            self.pinned = Some(pinned);
            r.map_err(cuda("copy to the GPU"))?;
            let (ptr, _sync) = dev.device_ptr_mut(&stream);
            // SAFETY: the buffer holds `n` bytes = this input's size, and stays allocated (in
            // `self.buffers`) until it is replaced by a larger one before a later call.
            unsafe { self.context.set_tensor_address(name, ptr as *mut _) }
                .map_err(trt("input address"))?;
        }
        let mut outs = Vec::new();
        // Public outputs and the carried states' outputs (all in the contract's outputs).
        for o in self.contract.outputs.clone() {
            let d = self
                .context
                .tensor_shape(&o.name)
                .map_err(trt("output shape"))?;
            let shape = output_shape(&o.name, d.nbDims, &d.d)?;
            let n = io_bytes(&shape, o.elem);
            if let Some(b) = dev_out.iter().find(|b| b.name == o.name) {
                if shape != b.shape || n > b.bytes {
                    return Err(Error::Backend(format!(
                        "TensorRT-RTX gives state '{}' the shape {shape:?}; the contract says {:?}",
                        o.name, b.shape
                    )));
                }
                // SAFETY: the caller's buffer holds at least `n` bytes and outlives the enqueue.
                unsafe { self.context.set_tensor_address(&o.name, b.ptr as *mut _) }
                    .map_err(trt("state output address"))?;
                continue;
            }
            let dev = self
                .buffers
                .entry(o.name.clone())
                .or_insert(DeviceBuf(None))
                .ensure(&stream, n)?;
            let (ptr, _sync) = dev.device_ptr_mut(&stream);
            // SAFETY: as for inputs; sized from the context's own output shape.
            unsafe { self.context.set_tensor_address(&o.name, ptr as *mut _) }
                .map_err(trt("output address"))?;
            outs.push((o.name.clone(), shape, o.elem));
        }
        let need = activation_size(self.context.update_device_memory_size_for_shapes())?;
        let scratch = self.scratch.ensure(&stream, need)?;
        let (ptr, _sync) = scratch.device_ptr_mut(&stream);
        // SAFETY: `need` bytes, as the context asked for these shapes; kept in `self.scratch`.
        unsafe {
            self.context
                .set_device_memory_v2(ptr as *mut _, need as i64)
        };
        // SAFETY: every I/O address is bound above; the stream belongs to this context's device.
        unsafe { self.context.enqueue_v3(stream.cu_stream() as *mut _) }.map_err(trt("enqueue"))?;
        let mut result = HashMap::new();
        for (name, shape, elem) in outs {
            let n = io_bytes(&shape, elem);
            let dev = self
                .buffers
                .get(&name)
                .and_then(|b| b.0.as_ref())
                .ok_or_else(|| Error::Backend(format!("output '{name}' has no buffer")))?;
            let mut host = vec![0u8; n];
            stream
                .memcpy_dtoh(&dev.slice(..n), &mut host)
                .map_err(cuda("copy from the GPU"))?;
            result.insert(name, tensor_from_bytes(shape, elem, &host));
        }
        stream.synchronize().map_err(cuda("synchronize"))?;
        Ok(result)
    }
}

impl Backend for TrtBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::TensorrtRtx
    }

    fn contract(&self) -> &Contract {
        &self.contract
    }

    fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<HashMap<String, Tensor>, Error> {
        self.execute(inputs, &[], &[])
    }

    /// Streaming with the states on the GPU (two sets, ping-pong; see the module doc).
    fn step(
        &mut self,
        carried: Option<Carried>,
        input: &Tensor,
    ) -> Result<(HashMap<String, Tensor>, Carried), Error> {
        use cudarc::driver::DevicePtr;
        let c = self.contract.clone();
        let hw = check_chunk(&c, input, carried.as_ref())?;
        let first = carried.is_none();
        let shapes: Vec<Vec<usize>> = c
            .states
            .iter()
            .map(|s| s.shape(hw.0, hw.1).to_vec())
            .collect();
        let sizes: Vec<usize> = shapes.iter().map(|s| io_bytes(s, c.state_elem())).collect();
        let alloc = |stream: &Arc<cudarc::driver::CudaStream>| -> Result<Vec<_>, Error> {
            sizes
                .iter()
                .map(|&n| {
                    stream.alloc_zeros::<u8>(n.max(1)).map_err(|e| {
                        Error::Backend(format!(
                            "cannot allocate {n} bytes of carried state on the GPU: {e}"
                        ))
                    })
                })
                .collect()
        };
        let fits = |set: &Vec<cudarc::driver::CudaSlice<u8>>| {
            set.len() == sizes.len() && set.iter().zip(&sizes).all(|(b, &n)| b.len() == n.max(1))
        };
        // First chunk: zero states (the graph slices them away, but reads stay defined).
        let read = match carried {
            Some(s) => s.take::<TrtStates>(self.kind().name())?.0,
            None => alloc(&self.stream)?,
        };
        let write = match self.spare.take() {
            Some(set) if fits(&set) => set,
            _ => alloc(&self.stream)?,
        };
        if !fits(&read) {
            return Err(Error::Backend(
                "a carried state does not fit its stream".into(),
            ));
        }
        let stream = self.stream.clone();
        let bind = |set: &[cudarc::driver::CudaSlice<u8>], output: bool| -> Vec<DeviceIo> {
            c.states
                .iter()
                .zip(set)
                .zip(&shapes)
                .map(|((s, b), shape)| DeviceIo {
                    name: if output {
                        s.output.clone()
                    } else {
                        s.input.clone()
                    },
                    shape: shape.clone(),
                    ptr: b.device_ptr(&stream).0,
                    bytes: b.len(),
                })
                .collect()
        };
        let (dev_in, dev_out) = (bind(&read, false), bind(&write, true));
        let m = marker(first);
        let mut host: Vec<(&str, &Tensor)> = vec![(c.inputs[0].name.as_str(), input)];
        if let Some(name) = &c.continuation {
            host.push((name.as_str(), &m));
        }
        let out = self.execute(&host, &dev_in, &dev_out)?;
        self.spare = Some(read);
        let bytes = sizes.iter().sum();
        Ok((out, Carried::new(bytes, hw, TrtStates(write))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(name: &str, cc: (i32, i32)) -> GpuInfo {
        GpuInfo {
            uuid: String::new(),
            name: name.into(),
            compute_capability: cc,
            free_bytes: 15 << 30,
            total_bytes: 16 << 30,
        }
    }

    #[test]
    fn device_checks_name_the_gpu_and_the_targets() {
        let ti = gpu("NVIDIA GeForce RTX 5070 Ti", (12, 0));
        assert_eq!(check_device(&ti, &[Target::Sm120]).unwrap(), Target::Sm120);
        let e = check_device(&gpu("NVIDIA H100", (9, 0)), &[Target::Sm120])
            .unwrap_err()
            .0;
        assert!(
            e.contains("does not support NVIDIA H100") && e.contains("9.0"),
            "{e}"
        );
        let e = check_device(&gpu("NVIDIA GeForce RTX 4090", (8, 9)), &[Target::Sm120])
            .unwrap_err()
            .0;
        assert!(
            e.contains("built for sm_120") && e.contains("`target` sm_89"),
            "{e}"
        );
        assert!(check_device(&gpu("RTX 4090", (8, 9)), &[Target::Sm120, Target::Sm89]).is_ok());
        let e = check_device(&gpu("DGX Spark", (12, 1)), &[Target::Sm120])
            .unwrap_err()
            .0;
        assert!(e.contains("no engine target"), "{e}");
        let e = check_version("1.6.0.20", "1.7.1.116").unwrap_err().0;
        assert!(e.contains("1.6.0.20") && e.contains("1.7.1.116"), "{e}");
        assert!(check_version("1.7.1.116", "1.7.1.116").is_ok());
    }

    #[test]
    fn buffer_sizes() {
        assert_eq!(
            io_bytes(&[1, 16, 2, 104, 104], Elem::F32),
            16 * 2 * 104 * 104 * 4
        );
        assert_eq!(
            io_bytes(&[1, 512, 2, 104, 104], Elem::F16),
            512 * 2 * 104 * 104 * 2
        );
        let t = Tensor::f32(vec![2], vec![1.5, -2.0]);
        let back = tensor_from_bytes(vec![2], Elem::F32, tensor_bytes(&t));
        assert_eq!(back, t);
        let h = Tensor {
            shape: vec![1],
            data: Data::F16(vec![half::f16::from_f32(0.5)]),
        };
        assert_eq!(tensor_from_bytes(vec![1], Elem::F16, tensor_bytes(&h)), h);
        assert_eq!(
            runtime_cache_path(Path::new("/c/engines/k/engine.trt")),
            PathBuf::from("/c/engines/k/engine.trt.rtcache")
        );
    }

    #[test]
    fn no_gpu_here_is_a_one_line_reason() {
        // This workplace has no GPU (and CI neither); on a GPU machine this still must not panic.
        match probe_gpu() {
            Ok(g) => eprintln!("GPU present: {g:?}"),
            Err(Unavailable(e)) => assert!(!e.contains('\n') && !e.is_empty(), "{e}"),
        }
    }

    #[test]
    fn bad_output_shapes_and_sizes_are_errors_not_panics() {
        assert_eq!(output_shape("video", 2, &[3, 4, 0, 0]).unwrap(), vec![3, 4]);
        let e = output_shape("video", -1, &[0; 8]).unwrap_err().to_string();
        assert!(e.contains("'video'") && e.contains("rank -1"), "{e}");
        assert!(output_shape("video", 9, &[1; 8]).is_err());
        let e = output_shape("state_out.3", 2, &[1, -1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("state_out.3") && e.contains("[1, -1]"), "{e}");
        assert!(activation_size(0).is_err());
        assert_eq!(activation_size(42).unwrap(), 42);
    }

    #[test]
    fn an_a100_is_refused_up_front() {
        let e = check_device(&gpu("NVIDIA A100", (8, 0)), &Target::ALL)
            .unwrap_err()
            .0;
        assert!(e.contains("does not support NVIDIA A100"), "{e}");
    }

    #[test]
    fn engine_invalidity_reads_as_reasons() {
        let t = invalidity_text(trtx::EngineInvalidityDiagnostics::OLD_CUDA_DRIVER.bits() | 1);
        assert!(
            t.contains("driver is older") && t.contains("another TensorRT-RTX version"),
            "{t}"
        );
        assert!(invalidity_text(0).contains("no reason"));
    }

    /// The I/O table an engine built from `c` would have.
    fn table_of(c: &Contract) -> Vec<EngineTensor> {
        let io = |t: &seedvae_onnx::TensorIo, input| EngineTensor {
            name: t.name.clone(),
            input,
            elem: Some(t.elem),
            on_device: true,
            shape_io: false,
            linear: true,
        };
        c.inputs
            .iter()
            .map(|t| io(t, true))
            .chain(c.outputs.iter().map(|t| io(t, false)))
            .collect()
    }

    #[test]
    fn an_engine_whose_io_table_differs_from_its_contract_is_refused() {
        let w = seedvae_weights::WeightFile::open(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/fixtures/vae_tiny/weights.safetensors"),
        );
        let Ok(w) = w else { return }; // the shared fixtures are beside the checkout in CI too
        let opts = seedvae_onnx::ExportOptions {
            part: seedvae_weights::Part::Decoder,
            precision: seedvae_onnx::Precision::Fp16,
            streaming: true,
        };
        let (_, c) = seedvae_onnx::export::build(&w, opts).unwrap();
        let good = table_of(&c);
        check_io_table(&c, &good).unwrap();
        let victim = c.states[5].input.clone();
        let mut t = good.clone();
        t.retain(|e| e.name != victim);
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains(&format!("'{victim}' is missing")));
        let mut t = good.clone();
        t[0].elem = Some(if t[0].elem == Some(Elem::F32) {
            Elem::F16
        } else {
            Elem::F32
        });
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains("has type"));
        let mut t = good.clone();
        t[1].shape_io = true;
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains("linear device tensor"));
        let mut t = good.clone();
        t.last_mut().unwrap().input = true;
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains("expected an output"));
        let mut t = good;
        t.push(EngineTensor {
            name: "extra".into(),
            ..t[0].clone()
        });
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains("'extra' is not in the contract"));
    }

    #[test]
    fn refit_counts_are_whole() {
        assert_eq!(refit_count("w", 12, 2).unwrap(), 6);
        let e = refit_count("decoder.conv_in.weight", 7, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("decoder.conv_in.weight") && e.contains("7 bytes"),
            "{e}"
        );
    }
}

//! The ONNX Runtime CPU backend: the reference for tests and the fallback for users without a
//! supported GPU. ONNX Runtime is loaded at run time (`ort` with `load-dynamic`).

use crate::backend::{Backend, BackendKind, Unavailable};
use crate::stream::{marker, StreamId, Streams};
use crate::tensor::{Data, Tensor};
use crate::Error;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::value::{DynTensor, DynValue, Tensor as OrtTensor, TensorElementType};
use seedvae_onnx::Contract;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

static ENV: OnceLock<Result<ort::environment::Environment, Unavailable>> = OnceLock::new();

/// Load ONNX Runtime once per process (from `lib`, or the default search of `backend::libs`).
pub fn environment(lib: Option<&Path>) -> Result<&'static ort::environment::Environment, Error> {
    let r = ENV.get_or_init(|| {
        let path = crate::backend::libs::onnxruntime(lib)?;
        tracing::debug!("loading ONNX Runtime from {}", path.display());
        let b = ort::init_from(&path).map_err(|e| {
            Unavailable(format!(
                "cannot load ONNX Runtime from {}: {e}",
                path.display()
            ))
        })?;
        let log = Arc::new(OrtLog::default());
        let env = b
            .with_name("seedvae")
            .with_logger(Arc::new(move |level, category, _id, _at, message| {
                log.line(level, category, message)
            }))
            .build()
            .map_err(|e| {
                Unavailable(format!(
                    "ONNX Runtime from {} failed to start: {e}",
                    path.display()
                ))
            })?;
        // Warnings and above reach the logger at all (ONNX Runtime formats nothing below).
        env.set_log_level(ort::logging::LogLevel::Warning);
        Ok(env)
    });
    r.as_ref().map_err(|e| Error::Unavailable(e.clone()))
}

/// ONNX Runtime's own log lines, through seedvae's logging (`tracing`) instead of its coloured
/// stderr: each warning or error once at `warn` (recognised by its text with the numbers taken
/// out), repeats at `debug` — the CUDA provider's cuDNN retries ("No execution plans support the
/// graph", once per convolution shape) are one line, not a screenful. A failure that matters
/// comes back from the call as an error anyway.
#[derive(Default)]
struct OrtLog {
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl OrtLog {
    /// The level seedvae logs ONNX Runtime's `message` at: None below warnings.
    fn level(&self, level: ort::logging::LogLevel, message: &str) -> Option<tracing::Level> {
        use ort::logging::LogLevel;
        if level < LogLevel::Warning {
            return None;
        }
        let shape: String = message
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(160)
            .collect();
        let first = match self.seen.lock() {
            Ok(mut seen) => seen.len() < 1024 && seen.insert(shape),
            Err(_) => false,
        };
        Some(if first {
            tracing::Level::WARN
        } else {
            tracing::Level::DEBUG
        })
    }

    fn line(&self, level: ort::logging::LogLevel, category: &str, message: &str) {
        match self.level(level, message) {
            Some(tracing::Level::WARN) => tracing::warn!("ONNX Runtime ({category}): {message}"),
            Some(_) => tracing::debug!("ONNX Runtime ({category}), again: {message}"),
            None => {}
        }
    }
}

/// Can ONNX Runtime's CUDA provider run here: a GPU with a driver, and the provider library
/// beside the ONNX Runtime library that would be loaded (the onnxruntime-gpu package's)?
pub fn cuda_ready() -> Result<crate::tensorrt::GpuInfo, Unavailable> {
    let lib = crate::backend::libs::onnxruntime(None)?;
    let provider = if cfg!(windows) {
        "onnxruntime_providers_cuda.dll"
    } else {
        "libonnxruntime_providers_cuda.so"
    };
    let dir = lib.parent().unwrap_or(Path::new("."));
    if !dir.join(provider).is_file() {
        return Err(Unavailable(format!(
            "ONNX Runtime's CUDA provider is not installed ({} has no {provider}): \
             `install_cuda`, or point SEEDVAE_ORT_LIB at an onnxruntime-gpu library",
            dir.display()
        )));
    }
    let gpu = crate::tensorrt::probe_gpu()?;
    crate::backend::libs::preload_cuda_libraries(&lib);
    Ok(gpu)
}

pub struct OrtBackend {
    session: Session,
    contract: Contract,
    path: PathBuf,
    kind: BackendKind,
    device: OrtDevice,
    streams: Streams<OrtStates>,
}

/// Where ONNX Runtime runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrtDevice {
    Cpu {
        threads: usize,
    },
    /// The CUDA execution provider on GPU `id` (needs the onnxruntime-gpu libraries); its
    /// memory arena capped at `mem_limit` bytes (an allocation past it fails, never spills).
    Cuda {
        id: i32,
        mem_limit: Option<usize>,
    },
}

impl OrtBackend {
    /// Open a seedvae-exported model on the CPU with `threads` intra-op threads (0: all cores).
    pub fn open(model: &Path, threads: usize) -> Result<Self, Error> {
        Self::open_on(model, OrtDevice::Cpu { threads })
    }

    /// Open a seedvae-exported model on `device`. CUDA: a provider that cannot start (no
    /// onnxruntime-gpu library, no driver, an old one) is [`Error::Unavailable`], never a
    /// silent CPU run; cuDNN picks convolution algorithms by heuristics (exhaustive search took
    /// 9–13× longer here) and TF32 is off (fp32 graphs keep their precision).
    pub fn open_on(model: &Path, device: OrtDevice) -> Result<Self, Error> {
        let (contract, md) = seedvae_onnx::read_contract(model)?;
        let quantized = md
            .iter()
            .any(|(k, _)| k == seedvae_onnx::meta::QUANTIZATION);
        let env = environment(None)?;
        let ctx = failed(format!("{}: ONNX Runtime", model.display()));
        let mut b = Session::builder(env).map_err(&ctx)?;
        let kind = match device {
            OrtDevice::Cpu { threads } => {
                if threads > 0 {
                    b = b.with_intra_threads(threads).map_err(|e| ctx(e.into()))?;
                }
                BackendKind::OrtCpu
            }
            OrtDevice::Cuda { id, mem_limit } => {
                use ort::ep::cuda::{ConvAlgorithmSearch, CUDA};
                use ort::ep::ArenaExtendStrategy;
                // The arena grows by what is asked (not powers of two): peak memory stays what
                // the memory plan counts.
                let mut ep = CUDA::default()
                    .with_device_id(id)
                    .with_conv_algorithm_search(ConvAlgorithmSearch::Heuristic)
                    .with_tf32(false)
                    .with_arena_extend_strategy(ArenaExtendStrategy::SameAsRequested);
                if let Some(limit) = mem_limit {
                    ep = ep.with_memory_limit(limit);
                }
                // Measurement knob (benches/README.md): NHWC convolutions.
                if std::env::var_os("SEEDVAE_CUDA_NHWC").is_some_and(|v| v == "1") {
                    ep = ep.with_prefer_nhwc(true);
                }
                let ep = ep.build().error_on_failure();
                b = b.with_execution_providers([ep]).map_err(|e| {
                    Error::Unavailable(crate::Unavailable(format!(
                        "ONNX Runtime's CUDA provider cannot start: {e}"
                    )))
                })?;
                BackendKind::OrtCuda
            }
        };
        if quantized {
            // Run Q/DQ literally (simulated FP8): ORT's QDQ fusions target int8 kernels and
            // have none for FP8 (e.g. MatMulIntegerToFloat rejects float8e4m3fn).
            b = b
                .with_config_entry("session.disable_quant_qdq", "1")
                .map_err(|e| ctx(e.into()))?;
        }
        // Measurement knob (benches/README.md): ONNX Runtime's per-node profile, written as
        // `<prefix>_<date>.json` when the session closes.
        if let Some(prefix) = std::env::var_os("SEEDVAE_ORT_PROFILE") {
            b = b.with_profiling(prefix).map_err(|e| ctx(e.into()))?;
        }
        let session = b.commit_from_file(model).map_err(ctx)?;
        Ok(OrtBackend {
            session,
            contract,
            path: model.to_path_buf(),
            kind,
            device,
            streams: Streams::default(),
        })
    }
}

/// A failed ONNX Runtime call: `what` says which, ONNX Runtime's error is kept as the source.
fn failed(what: String) -> impl Fn(ort::Error) -> Error {
    move |source| Error::Ort {
        what: what.clone(),
        source,
    }
}

fn to_ort(t: &Tensor) -> Result<DynValue, ort::Error> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Ok(match &t.data {
        Data::F32(v) => OrtTensor::from_array((shape, v.clone()))?.into_dyn(),
        Data::F16(v) => OrtTensor::from_array((shape, v.clone()))?.into_dyn(),
    })
}

fn from_ort(v: &DynValue) -> Result<Tensor, ort::Error> {
    if let Ok((shape, data)) = v.try_extract_tensor::<f32>() {
        return Ok(Tensor {
            shape: shape.iter().map(|&d| d as usize).collect(),
            data: Data::F32(data.to_vec()),
        });
    }
    let (shape, data) = v.try_extract_tensor::<half::f16>()?;
    Ok(Tensor {
        shape: shape.iter().map(|&d| d as usize).collect(),
        data: Data::F16(data.to_vec()),
    })
}

/// A stream's carried state as ONNX Runtime values in the memory the session computes in (the
/// GPU for CUDA): handed from one call's outputs to the next call's inputs without a copy.
struct OrtStates(Vec<DynValue>);

impl OrtBackend {
    /// Where carried states live: the session's device.
    fn state_memory(&self) -> Result<MemoryInfo<'static>, ort::Error> {
        let (dev, id) = match self.device {
            OrtDevice::Cpu { .. } => (AllocationDevice::CPU, 0),
            OrtDevice::Cuda { id, .. } => (AllocationDevice::CUDA, id),
        };
        MemoryInfo::new(dev, id, AllocatorType::Device, MemoryType::Default)
    }

    /// The first chunk's state inputs: allocated on the device, left uninitialized — the graph
    /// only slices them away on a first chunk (the `continuation` marker says so), never reads
    /// their values.
    fn first_states(&self, hw: (usize, usize)) -> Result<Vec<DynValue>, ort::Error> {
        let alloc = Allocator::new(&self.session, self.state_memory()?)?;
        let ty = match self.contract.state_elem() {
            seedvae_onnx::Elem::F16 => TensorElementType::Float16,
            _ => TensorElementType::Float32,
        };
        let mut v = Vec::with_capacity(self.contract.states.len());
        for s in &self.contract.states {
            v.push(DynTensor::new(&alloc, ty, s.shape(hw.0, hw.1))?.into_dyn());
        }
        Ok(v)
    }
}

impl Backend for OrtBackend {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn contract(&self) -> &Contract {
        &self.contract
    }

    fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<HashMap<String, Tensor>, Error> {
        let ctx = failed(format!("{}: ONNX Runtime", self.path.display()));
        let mut values: Vec<(String, DynValue)> = Vec::with_capacity(inputs.len());
        for (n, t) in inputs {
            values.push((n.to_string(), to_ort(t).map_err(&ctx)?));
        }
        let outputs = self.session.run(values).map_err(&ctx)?;
        let mut out = HashMap::new();
        for (name, v) in outputs.iter() {
            out.insert(
                name.to_string(),
                from_ort(&v).map_err(failed(format!("{}: output {name}", self.path.display())))?,
            );
        }
        Ok(out)
    }

    /// Streaming through I/O binding: the state outputs are bound to the session's device and
    /// become the next call's state inputs as they are, so on a GPU only the chunk's input and
    /// its public outputs cross PCIe. A fresh binding per call: ONNX Runtime reuses an output
    /// buffer that stays bound, which would alias the state a call reads with the one it writes.
    fn step(&mut self, id: StreamId, input: &Tensor) -> Result<HashMap<String, Tensor>, Error> {
        let chunk = self
            .streams
            .take(id, self.kind.name(), &self.contract, input)?;
        let (hw, first) = (chunk.hw, chunk.state.is_none());
        let path = self.path.clone();
        let ctx = failed(format!("{}: ONNX Runtime", path.display()));
        let states = match chunk.state {
            Some(c) => c.0,
            None => self.first_states(hw).map_err(&ctx)?,
        };
        let host = MemoryInfo::new(
            AllocationDevice::CPU,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map_err(&ctx)?;
        let device = self.state_memory().map_err(&ctx)?;
        let mut b = self.session.create_binding().map_err(&ctx)?;
        let c = self.contract.clone();
        b.bind_input(&c.inputs[0].name, &to_ort(input).map_err(&ctx)?)
            .map_err(&ctx)?;
        if let Some(name) = &c.continuation {
            b.bind_input(name, &to_ort(&marker(first)).map_err(&ctx)?)
                .map_err(&ctx)?;
        }
        for (s, v) in c.states.iter().zip(&states) {
            b.bind_input(&s.input, v).map_err(&ctx)?;
        }
        for o in &c.outputs {
            let state = c.states.iter().any(|s| s.output == o.name);
            b.bind_output_to_device(&o.name, if state { &device } else { &host })
                .map_err(&ctx)?;
        }
        let mut outs = self.session.run_binding(&b).map_err(ctx)?;
        drop(states);
        // Bytes from the values ONNX Runtime returned (what the memory plan is tested against).
        let mut next = Vec::with_capacity(c.states.len());
        let mut bytes = 0;
        for s in &c.states {
            let v = outs
                .remove(&s.output)
                .ok_or_else(|| Error::Backend(format!("backend returned no '{}'", s.output)))?;
            let shape: Vec<usize> = v
                .shape()
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect();
            bytes += crate::planner::tensor_bytes(&shape, c.state_elem());
            next.push(v);
        }
        let mut public = HashMap::new();
        for (name, v) in outs.iter() {
            public.insert(
                name.to_string(),
                from_ort(&v).map_err(failed(format!("{}: output {name}", path.display())))?,
            );
        }
        drop(outs);
        drop(b);
        self.streams.put(id, hw, bytes, OrtStates(next));
        Ok(public)
    }

    fn begin_stream(&mut self) -> StreamId {
        self.streams.begin()
    }

    fn end_stream(&mut self, id: StreamId) {
        self.streams.end(id)
    }

    fn state_bytes(&self, id: StreamId) -> usize {
        self.streams.bytes(id)
    }
}

#[cfg(test)]
mod tests {
    /// ONNX Runtime's warnings and errors reach seedvae's log once each, numbers aside; repeats
    /// and its chatter below warnings do not.
    #[test]
    fn onnx_runtimes_lines_are_said_once() {
        use ort::logging::LogLevel;
        let log = super::OrtLog::default();
        let retry = |n: u32| format!("CUDNN failure {n}: No execution plans support the graph");
        assert_eq!(
            log.level(LogLevel::Error, &retry(5000)),
            Some(tracing::Level::WARN)
        );
        for n in 0..300 {
            assert_eq!(
                log.level(LogLevel::Error, &retry(n)),
                Some(tracing::Level::DEBUG)
            );
        }
        assert_eq!(
            log.level(LogLevel::Warning, "another"),
            Some(tracing::Level::WARN)
        );
        assert_eq!(log.level(LogLevel::Info, "chatter"), None);
        assert_eq!(log.level(LogLevel::Verbose, "chatter"), None);
    }
}

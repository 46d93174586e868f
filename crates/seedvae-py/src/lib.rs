//! # seedvae-py — the `seedvae` Python package's native module (`seedvae._seedvae`)
//!
//! Owns the crossing between Python and the library: numpy arrays in and out, the GIL released
//! while the library works, progress events called back into Python, Ctrl-C and callback
//! exceptions turned into a cancel at the next chunk, and library errors raised as Python
//! exceptions with the CLI's messages. It must not own decoding, formats or policy: every
//! decision is the `seedvae` crate's. torch tensors, DLPack and library discovery are the
//! Python half's (`python/seedvae/__init__.py`).
//!
//! A model lives on a thread of its own (its worker), opened and used there only: GPU contexts
//! and the backends' handles are tied to a thread, and ComfyUI calls nodes from a thread of its
//! choosing. Each call sends a job to the worker and waits, the GIL released, checking for
//! Ctrl-C between short waits.

mod convert;
mod errors;
mod log;
mod worker;

use convert::{array_out, tensor_in};
use errors::to_py;
use numpy::{PyArrayDyn, PyReadonlyArrayDyn};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use seedvae::{
    backends::BackendSettings,
    engines::{EnginePrecision, EngineRequest, Outcome, Target},
    BackendChoice, ColorMethod, ModelOptions, Pad, Part, RunReport, TileOptions,
};
use std::path::PathBuf;
use worker::{hooks, run_detached, Worker};

/// Pick `name` from `choices` or say which names there are.
fn choose<T: Copy>(what: &str, name: &str, choices: &[(&str, T)]) -> PyResult<T> {
    choices
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            PyValueError::new_err(format!(
                "{what} {name:?}: choose one of {}",
                names.join(", ")
            ))
        })
}

fn part_of(name: &str) -> PyResult<Part> {
    choose(
        "part",
        name,
        &[("decoder", Part::Decoder), ("encoder", Part::Encoder)],
    )
}

fn color_of(name: &str) -> PyResult<ColorMethod> {
    let all: Vec<(&str, ColorMethod)> = ColorMethod::ALL.iter().map(|m| (m.name(), *m)).collect();
    choose("colour method", name, &all)
}

fn tiles(
    tile: Option<usize>,
    overlap: Option<usize>,
    no_tiling: bool,
    chunk: Option<usize>,
) -> TileOptions {
    let d = TileOptions::default();
    TileOptions {
        tile_px: tile.unwrap_or(d.tile_px),
        overlap_px: overlap.unwrap_or(d.overlap_px),
        no_tiling,
        chunk,
    }
}

/// What a run did, as a dict: the report's own serialization (the CLI's `--json` fields).
fn report_dict<'py>(py: Python<'py>, r: &RunReport) -> PyResult<Bound<'py, PyDict>> {
    let json = serde_json::to_string(r)
        .map_err(|e| errors::SeedvaeError::new_err(format!("internal: report: {e}")))?;
    Ok(py
        .import("json")?
        .call_method1("loads", (json,))?
        .cast_into::<PyDict>()?)
}

/// A shared stop flag: `cancel()` from any thread (or a Ctrl-C) stops a run at its next chunk
/// with `CancelledError`, leaving nothing half-written.
#[pyclass(name = "CancelToken", module = "seedvae._seedvae", frozen)]
#[derive(Clone, Default)]
struct PyCancelToken(seedvae::CancelToken);

#[pymethods]
impl PyCancelToken {
    #[new]
    fn new() -> Self {
        Self::default()
    }
    fn cancel(&self) {
        self.0.cancel()
    }
    #[getter]
    fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// A SeedVR2 VAE decoder or encoder, opened once, run many times (see the package docs).
#[pyclass(name = "Model", module = "seedvae._seedvae", frozen)]
struct PyModel {
    worker: Worker,
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (model, part = "decoder", backend = "auto", *, cache = None, profile = None,
        vram_budget_gb = None, threads = 0, weights = None, tensorrt_dir = None, cuda_fp32 = false,
        progress = None, cancel = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: PathBuf,
        part: &str,
        backend: &str,
        cache: Option<PathBuf>,
        profile: Option<String>,
        vram_budget_gb: Option<f64>,
        threads: usize,
        weights: Option<PathBuf>,
        tensorrt_dir: Option<PathBuf>,
        cuda_fp32: bool,
        progress: Option<Py<PyAny>>,
        cancel: Option<PyRef<'_, PyCancelToken>>,
    ) -> PyResult<Self> {
        let backend = choose(
            "backend",
            backend,
            &[
                ("auto", BackendChoice::Auto),
                ("tensorrt", BackendChoice::Tensorrt),
                ("cuda", BackendChoice::Cuda),
                ("ort-cuda", BackendChoice::OrtCuda),
                ("cpu", BackendChoice::Cpu),
                ("reference", BackendChoice::Reference),
            ],
        )?;
        let mut settings = BackendSettings::default();
        if let Some(p) = profile {
            settings.tensorrt.profile = p;
        }
        settings.tensorrt.library_dir = tensorrt_dir;
        settings.cuda.fp32 = cuda_fp32;
        settings.ort_cuda.fp32 = cuda_fp32;
        settings.cpu.threads = threads;
        let opts = ModelOptions {
            backends: backend.specs(&settings),
            vram_budget_gb,
            cache,
            weights,
        };
        let part = part_of(part)?;
        let h = hooks(progress, cancel.map(|c| c.0.clone()));
        let worker = Worker::open(py, model, part, opts, &h)?;
        Ok(PyModel { worker })
    }

    /// Free the model now (its GPU memory included) instead of when it is garbage-collected;
    /// later calls raise. Waits for a run in progress on another thread.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.worker.close())
    }

    /// The backend that runs the model ("tensorrt-rtx", "seedvae-cuda", "onnxruntime-cuda",
    /// "onnxruntime-cpu", "reference").
    #[getter]
    fn backend(&self) -> String {
        self.worker.info().backend.clone()
    }

    /// Why `backend="auto"` skipped the faster backends, or None.
    #[getter]
    fn fallback_reason(&self) -> Option<String> {
        self.worker.info().fallback_reason.clone()
    }

    #[getter]
    fn part(&self) -> &'static str {
        match self.worker.info().part {
            Part::Decoder => "decoder",
            Part::Encoder => "encoder",
        }
    }

    /// The most GPU memory a run over an input of `shape` (`[1, C, T, H, W]`) takes, in bytes,
    /// where the backend plans it (seedvae's CUDA executor); None elsewhere.
    fn device_need(&self, py: Python<'_>, shape: Vec<usize>) -> PyResult<Option<u64>> {
        let h = hooks(None, None);
        self.worker.run(py, &h, move |m| m.device_need(&shape))
    }

    /// Streaming models take clips of any length, chunk by chunk.
    #[getter]
    fn streaming(&self) -> bool {
        self.worker.info().streaming
    }

    /// Decode a VAE-space latent `[1, 16, T, h, w]` (float32, C order) into a video
    /// `[1, 3, 4T − 3, 8h, 8w]` in [−1, 1]; returns `(video, report)`.
    #[pyo3(signature = (latent, *, tile = None, overlap = None, no_tiling = false, chunk = None,
        progress = None, cancel = None))]
    #[allow(clippy::too_many_arguments)]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        latent: PyReadonlyArrayDyn<'py, f32>,
        tile: Option<usize>,
        overlap: Option<usize>,
        no_tiling: bool,
        chunk: Option<usize>,
        progress: Option<Py<PyAny>>,
        cancel: Option<PyRef<'_, PyCancelToken>>,
    ) -> PyResult<(Bound<'py, PyArrayDyn<f32>>, Bound<'py, PyDict>)> {
        let latent = tensor_in(&latent)?;
        let opts = tiles(tile, overlap, no_tiling, chunk);
        let h = hooks(progress, cancel.map(|c| c.0.clone()));
        let progress = h.progress.clone();
        let (video, report) = self
            .worker
            .run(py, &h, move |m| m.decode_tensor(&latent, &opts, &progress))?;
        Ok((array_out(py, video)?, report_dict(py, &report)?))
    }

    /// Decode or encode in place in GPU memory (DLPack hand-over; the Python wrapper calls it
    /// for torch CUDA tensors on seedvae's CUDA executor): the input (a latent `[1, 16, T, h,
    /// w]`, or frames `[1, 3, 4n + 1, H, W]` padded by the caller) and the output (the video
    /// `[1, 3, 4T − 3, 8h, 8w]`, or the latent `[1, 16, n + 1, H/8, W/8]`) given by their data
    /// pointers and shapes, float32, C order, on GPU 0 (on the reference device: host memory).
    /// The caller keeps both alive, has their writers done (torch's stream synchronized) and
    /// reads the output after this returns. Returns the report.
    #[pyo3(signature = (input_ptr, input_shape, output_ptr, output_shape, *, tile = None,
        chunk = None, progress = None, cancel = None))]
    #[allow(clippy::too_many_arguments)]
    fn _run_device<'py>(
        &self,
        py: Python<'py>,
        input_ptr: u64,
        input_shape: Vec<usize>,
        output_ptr: u64,
        output_shape: Vec<usize>,
        tile: Option<usize>,
        chunk: Option<usize>,
        progress: Option<Py<PyAny>>,
        cancel: Option<PyRef<'_, PyCancelToken>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        // SAFETY: the wrapper's promise above (its tensors, alive and synchronized, their
        // shapes as torch reports them).
        let (input, output) = unsafe {
            (
                seedvae::Foreign::with_shape(input_ptr, &input_shape),
                seedvae::Foreign::with_shape(output_ptr, &output_shape),
            )
        };
        let (input, output) = (
            input.map_err(foreign_error)?,
            output.map_err(foreign_error)?,
        );
        let opts = tiles(tile, None, false, chunk);
        let h = hooks(progress, cancel.map(|c| c.0.clone()));
        let progress = h.progress.clone();
        let report = self.worker.run(py, &h, move |m| match m.part() {
            Part::Decoder => m.decode_foreign(&input, &output, &opts, &progress),
            Part::Encoder => m.encode_foreign(&input, &output, &opts, &progress),
        })?;
        report_dict(py, &report)
    }

    /// Encode frames `[1, 3, T, H, W]` in [−1, 1] (H, W multiples of 8; T padded to 4n + 1 by
    /// `pad`, "reflect" or "repeat") into the posterior mean `[1, 16, (T' − 1)/4 + 1, H/8, W/8]`;
    /// returns `(latent, report)`.
    #[pyo3(signature = (frames, *, pad = "reflect", tile = None, overlap = None, no_tiling = false,
        chunk = None, progress = None, cancel = None))]
    #[allow(clippy::too_many_arguments)]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        frames: PyReadonlyArrayDyn<'py, f32>,
        pad: &str,
        tile: Option<usize>,
        overlap: Option<usize>,
        no_tiling: bool,
        chunk: Option<usize>,
        progress: Option<Py<PyAny>>,
        cancel: Option<PyRef<'_, PyCancelToken>>,
    ) -> PyResult<(Bound<'py, PyArrayDyn<f32>>, Bound<'py, PyDict>)> {
        let pad = choose(
            "pad",
            pad,
            &[("reflect", Pad::Reflect), ("repeat", Pad::Repeat)],
        )?;
        let frames = tensor_in(&frames)?;
        if !matches!(frames.shape(), [1, 3, _, _, _]) {
            return Err(errors::InvalidInputError::new_err(format!(
                "frames must be [1, 3, T, H, W] in [-1, 1]; found {:?}",
                frames.shape()
            )));
        }
        let opts = tiles(tile, overlap, no_tiling, chunk);
        let h = hooks(progress, cancel.map(|c| c.0.clone()));
        let progress = h.progress.clone();
        let (latent, report) = self.worker.run(py, &h, move |m| {
            m.encode(
                &mut seedvae::media::TensorFrames(frames),
                pad,
                &opts,
                &progress,
            )
        })?;
        Ok((array_out(py, latent)?, report_dict(py, &report)?))
    }
}

/// A tensor handed over in device memory that cannot be one (its shape or address).
fn foreign_error(e: impl std::fmt::Display) -> PyErr {
    errors::InvalidInputError::new_err(e.to_string())
}

/// Which backends can run on this machine, in `backend="auto"`'s order: a list of dicts with
/// `backend` (its name), `gpu` (a dict, or None) and `unavailable` (why not, or None). Opens no
/// model.
#[pyfunction]
#[pyo3(signature = (*, tensorrt_dir = None))]
fn backends(py: Python<'_>, tensorrt_dir: Option<PathBuf>) -> PyResult<Bound<'_, PyAny>> {
    let mut settings = seedvae::backends::BackendSettings::default();
    settings.tensorrt.library_dir = tensorrt_dir;
    let list = py.detach(|| seedvae::backends::available(&settings));
    log::flush(py);
    let json = serde_json::to_string(&list)
        .map_err(|e| errors::SeedvaeError::new_err(format!("internal: {e}")))?;
    let text = errors::keywords(&json);
    py.import("json")?.call_method1("loads", (text,))
}

/// Colour-correct `video` `[1, 3, F, H, W]` in [−1, 1] against `reference` `[1, 3, T, H', W']`
/// in [−1, 1] with one of the numz node's methods; returns the corrected video.
/// The source frame of each frame of a clip of `t` frames padded to 4n + 1 by `pad`
/// ("reflect" or "repeat"), as `encode` pads: what the wrapper gathers on the GPU for an
/// in-place encode.
#[pyfunction]
fn _pad_sources(t: usize, pad: &str) -> PyResult<Vec<usize>> {
    let pad = choose(
        "pad",
        pad,
        &[("reflect", Pad::Reflect), ("repeat", Pad::Repeat)],
    )?;
    if t == 0 {
        return Err(errors::InvalidInputError::new_err("no frames to encode"));
    }
    Ok((0..Pad::padded_len(t)).map(|i| pad.source(i, t)).collect())
}

#[pyfunction]
#[pyo3(signature = (video, reference, method = "lab", batch = 5))]
fn correct_colors<'py>(
    py: Python<'py>,
    video: PyReadonlyArrayDyn<'py, f32>,
    reference: PyReadonlyArrayDyn<'py, f32>,
    method: &str,
    batch: usize,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let method = color_of(method)?;
    let video = tensor_in(&video)?;
    let reference = tensor_in(&reference)?;
    let h = hooks(None, None);
    let video = run_detached(py, &h, move || {
        seedvae::media::correct_colors(video, reference, method, batch)
    })?;
    array_out(py, video)
}

/// Get the TensorRT-RTX engine for `model` (weights or a seedvae ONNX graph) from the cache, or
/// convert, calibrate and build it now (minutes; any machine, no GPU needed). Returns a dict:
/// `key`, `engine` (path), `dir`, `outcome` ("hit", "built", "rebuilt: why").
#[pyfunction]
#[pyo3(signature = (model, *, part = None, profile = None, precision = None, targets = None,
    streaming = false, cache = None, tensorrt_dir = None, weightless = false, progress = None,
    cancel = None))]
#[allow(clippy::too_many_arguments)]
fn ensure_engine<'py>(
    py: Python<'py>,
    model: PathBuf,
    part: Option<&str>,
    profile: Option<String>,
    precision: Option<&str>,
    targets: Option<Vec<String>>,
    streaming: bool,
    cache: Option<PathBuf>,
    tensorrt_dir: Option<PathBuf>,
    weightless: bool,
    progress: Option<Py<PyAny>>,
    cancel: Option<PyRef<'_, PyCancelToken>>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut req = EngineRequest::new(model);
    if let Some(p) = profile {
        req.profile = p;
    }
    req.part = part.map(part_of).transpose()?;
    req.precision = precision
        .map(|p| {
            EnginePrecision::parse(p).ok_or_else(|| {
                PyValueError::new_err(format!("precision {p:?}: choose one of fp8, fp16, fp32"))
            })
        })
        .transpose()?;
    for t in targets.unwrap_or_default() {
        req.targets
            .push(Target::parse(&t).map_err(|e| to_py(seedvae::Error::Engine(e)))?);
    }
    req.streaming = streaming;
    req.cache = cache;
    req.tensorrt_dir = tensorrt_dir;
    req.weightless = weightless;
    let h = hooks(progress, cancel.map(|c| c.0.clone()));
    let progress = h.progress.clone();
    let got = run_detached(py, &h, move || {
        seedvae::engines::ensure_engine(&req, &progress)
    })?;
    let d = PyDict::new(py);
    d.set_item(
        "key",
        got.entry.dir.file_name().map(|n| n.to_string_lossy()),
    )?;
    d.set_item("engine", &got.entry.engine)?;
    d.set_item("dir", &got.entry.dir)?;
    d.set_item(
        "outcome",
        match &got.outcome {
            Outcome::Hit => "hit".to_string(),
            Outcome::Built => "built".to_string(),
            Outcome::Rebuilt(why) => format!("rebuilt: {why}"),
        },
    )?;
    Ok(d)
}

#[pymodule]
fn _seedvae(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let methods: Vec<&str> = ColorMethod::ALL.iter().map(|c| c.name()).collect();
    m.add("COLOR_METHODS", pyo3::types::PyTuple::new(m.py(), methods)?)?;
    m.add("DIT_SCALE", seedvae::latent::DIT_SCALE)?;
    m.add_class::<PyModel>()?;
    m.add_class::<PyCancelToken>()?;
    m.add_function(wrap_pyfunction!(backends, m)?)?;
    m.add_function(wrap_pyfunction!(correct_colors, m)?)?;
    m.add_function(wrap_pyfunction!(_pad_sources, m)?)?;
    m.add_function(wrap_pyfunction!(ensure_engine, m)?)?;
    log::install();
    errors::register(m)
}

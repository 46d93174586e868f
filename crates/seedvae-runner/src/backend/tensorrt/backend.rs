//! The execution: an engine deserialized on the GPU, one execution context with user-managed
//! activation memory, inputs staged through pinned memory, outputs copied back, and the
//! streams' carried state bound by address.

use super::contract::activation_size;
use super::contract::{check_io_table, io_table, output_shape, tensor_bytes, tensor_from_bytes};
use super::device::{gpu0, invalidity_text, preflight, GpuInfo};
use super::runtime::{refit_engine, runtime_cache_path};
use super::states::TrtStates;
use crate::backend::{Backend, BackendKind};
use crate::planner::tensor_bytes as io_bytes;
use crate::stream::{marker, StreamId, Streams};
use crate::tensor::Tensor;
use crate::Error;
use seedvae_engine::cache::Manifest;
use seedvae_onnx::Contract;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
            self.0 =
                Some(
                    stream
                        .alloc_zeros::<u8>(bytes.max(1))
                        .map_err(|source| Error::Cuda {
                            what: format!("cannot allocate {bytes} bytes on the GPU"),
                            source,
                        })?,
                );
        }
        Ok(self.0.as_mut().expect("allocated"))
    }
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
    /// Each stream's carried state on the GPU.
    streams: Streams<TrtStates>,
    contract: Contract,
    pub gpu: GpuInfo,
}

/// A tensor bound by device address (a carried state), with the shape it has.
pub(super) struct DeviceIo {
    pub(super) name: String,
    pub(super) shape: Vec<usize>,
    pub(super) ptr: cudarc::driver::sys::CUdeviceptr,
    pub(super) bytes: usize,
}

// SAFETY: TensorRT-RTX objects may be used from any thread, one thread at a time (NVIDIA's
// thread-safety rules: an engine and its execution context are not bound to the thread that made
// them; a context must not run concurrently, which `&mut self` rules out). The context's
// `Rc<RuntimeConfig>` is the config's only handle (made and moved into it in `open`), so moving
// the backend moves every count of it together. The CUDA stream and buffers are cudarc's `Send`
// types.
unsafe impl Send for TrtBackend {}

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
        let bytes = std::fs::read(engine).map_err(|e| seedvae_weights::Error::io(engine, e))?;
        manifest
            .verify(&bytes)
            .map_err(|e| Error::Input(format!("{}: {e}", engine.display())))?;
        let ctx = gpu0()?;
        let stream = ctx.new_stream().map_err(super::cuda("create a stream"))?;
        let mut eng = super::runtime::with_runtime(|runtime| {
            let (validity, why) = runtime
                .engine_validity(&bytes)
                .map_err(super::trt("engine header"))?;
            if validity == trtx::EngineValidity::kINVALID {
                return Err(Error::Backend(format!(
                    "{}: TensorRT-RTX says this engine cannot run here: {}",
                    engine.display(),
                    invalidity_text(why.bits())
                )));
            }
            runtime
                .deserialize_cuda_engine(&bytes)
                .map_err(|e| Error::TrtCall {
                    what: format!("{}: cannot load the engine", engine.display()),
                    source: e,
                })
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
            refit_engine(&eng, super::runtime::logger()?, weights)?;
        }
        let mut config = eng
            .create_runtime_config()
            .map_err(super::trt("runtime config"))?;
        config.set_execution_context_allocation_strategy(
            trtx::ExecutionContextAllocationStrategy::kUSER_MANAGED,
        );
        let cache = Arc::new(
            config
                .create_runtime_cache()
                .map_err(super::trt("runtime cache"))?,
        );
        let cache_file = runtime_cache_path(engine);
        if let Ok(blob) = std::fs::read(&cache_file) {
            if let Err(e) = cache.deserialize(&blob) {
                tracing::warn!("{}: ignoring the runtime cache: {e}", cache_file.display());
            }
        }
        config
            .set_runtime_cache(cache.clone())
            .map_err(super::trt("runtime cache"))?;
        let context = eng
            .create_execution_context_with_config(std::rc::Rc::new(config))
            .map_err(super::trt("execution context"))?;
        Ok(TrtBackend {
            context,
            _engine: eng,
            cache,
            cache_file,
            stream,
            buffers: HashMap::new(),
            scratch: DeviceBuf(None),
            pinned: None,
            streams: Streams::default(),
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
                    .map_err(super::cuda("pinned host memory"))?
            });
        }
        Ok(self.pinned.as_mut().expect("allocated"))
    }

    fn save_runtime_cache(&self) -> Result<(), Error> {
        let blob = self
            .cache
            .serialize()
            .map_err(super::trt("serialize the runtime cache"))?;
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
                .map_err(|source| Error::TrtCall {
                    what: format!("TensorRT-RTX: input '{name}' {shape:?}"),
                    source,
                })?;
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
                .map_err(|source| Error::TrtCall {
                    what: format!("TensorRT-RTX: input '{}' {:?}", d.name, d.shape),
                    source,
                })?;
            // SAFETY: the caller's buffer holds `d.bytes` = this shape's size and outlives the
            // enqueue (it is synchronized before returning).
            unsafe { self.context.set_tensor_address(&d.name, d.ptr as *mut _) }
                .map_err(super::trt("state input address"))?;
        }
        for (name, t) in inputs {
            let dims: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
            self.context
                .set_input_shape(name, &trtx::trtx_sys::Dims64::from_slice(&dims))
                .map_err(|source| Error::TrtCall {
                    what: format!("TensorRT-RTX: input '{name}' {:?}", t.shape),
                    source,
                })?;
            let b = tensor_bytes(t);
            let n = b.len();
            self.staging(n)?
                .as_mut_slice()
                .map_err(super::cuda("staging"))?[..n]
                .copy_from_slice(b);
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
            r.map_err(super::cuda("copy to the GPU"))?;
            let (ptr, _sync) = dev.device_ptr_mut(&stream);
            // SAFETY: the buffer holds `n` bytes = this input's size, and stays allocated (in
            // `self.buffers`) until it is replaced by a larger one before a later call.
            unsafe { self.context.set_tensor_address(name, ptr as *mut _) }
                .map_err(super::trt("input address"))?;
        }
        let mut outs = Vec::new();
        // Public outputs and the carried states' outputs (all in the contract's outputs).
        for o in self.contract.outputs.clone() {
            let d = self
                .context
                .tensor_shape(&o.name)
                .map_err(super::trt("output shape"))?;
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
                    .map_err(super::trt("state output address"))?;
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
                .map_err(super::trt("output address"))?;
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
        unsafe { self.context.enqueue_v3(stream.cu_stream() as *mut _) }
            .map_err(super::trt("enqueue"))?;
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
                .map_err(super::cuda("copy from the GPU"))?;
            result.insert(name, tensor_from_bytes(shape, elem, &host));
        }
        stream.synchronize().map_err(super::cuda("synchronize"))?;
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

    /// Streaming with the states on the GPU (two sets, ping-pong: `states`).
    fn step(&mut self, id: StreamId, input: &Tensor) -> Result<HashMap<String, Tensor>, Error> {
        let c = self.contract.clone();
        let chunk = self.streams.take(id, self.kind().name(), &c, input)?;
        let (hw, first) = (chunk.hw, chunk.state.is_none());
        let mut states = TrtStates::for_chunk(chunk.state, &self.stream, &c, hw)?;
        let (dev_in, dev_out) = states.bind(&self.stream, &c);
        let m = marker(first);
        let mut host: Vec<(&str, &Tensor)> = vec![(c.inputs[0].name.as_str(), input)];
        if let Some(name) = &c.continuation {
            host.push((name.as_str(), &m));
        }
        let out = self.execute(&host, &dev_in, &dev_out)?;
        states.swap();
        self.streams.put(id, hw, states.bytes(), states);
        Ok(out)
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

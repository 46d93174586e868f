//! seedvae's own executor (`seedvae-exec`) as a backend: the VAE layer by layer on a device —
//! the reference (plain Rust) or an NVIDIA GPU — from the user's weights (no graph, no engine),
//! each stream's causal state kept on the device between chunks by the executor.

use crate::backend::{Backend, BackendKind};
use crate::stream::{StreamId, Streams};
use crate::tensor::Tensor;
use crate::tensorrt::GpuInfo;
use crate::Error;
use crate::Unavailable;
use seedvae_exec::{
    Cuda, CudaOptions, Device, Dims, Fit, Foreign, MemoryPlanner, Reference, Split, Stream, Vae,
};
use seedvae_onnx::contract::{self, Contract, Precision, TensorIo};
use seedvae_onnx::{Dim, Elem};
use seedvae_weights::schema::{LATENT_CHANNELS, RGB_CHANNELS};
use seedvae_weights::{Part, WeightFile};
use std::collections::HashMap;
use std::path::PathBuf;

/// A stream's carried state on device `D`.
type DevStream<D> = Stream<<D as Device>::Buf, <D as Device>::Parked>;

/// The executor on device `D`.
pub struct NativeBackend<D: Device> {
    dev: D,
    vae: Vae<D::Buf>,
    contract: Contract,
    kind: BackendKind,
    /// Each stream's carried state and the cut its chunks run in.
    streams: Streams<(DevStream<D>, Split)>,
    /// Band height the caller asked for (frame pixels); None: whole frames unless the memory
    /// budget needs bands.
    band_px: Option<usize>,
    /// The device's memory plan and budget (the CUDA device), and the last stream's plan.
    memory: Option<Budget>,
    /// Chunks submitted and not collected, oldest first: their stream, output shape and the
    /// download under way.
    queued: std::collections::VecDeque<(StreamId, [usize; 5], D::Pending)>,
}

/// A device memory budget, and the plan that keeps a stream within it.
struct Budget {
    planner: MemoryPlanner,
    /// Bytes the executor's pool may hold (the budget less the allowance for cuDNN's
    /// workspace, the CUDA context and the libraries' handles).
    pool: u64,
    budget: u64,
    planned: Option<u64>,
    /// Host bytes the plan parks states in (0: none parked).
    parked: u64,
}

/// What the device memory plan sets aside outside the executor's own buffers: the CUDA
/// context and the libraries' handles (as for ONNX Runtime), and cuDNN's workspace.
fn outside_pool(value_bytes: usize) -> u64 {
    crate::planner::GraphMemory::OVERHEAD + seedvae_exec::workspace_allowance(value_bytes)
}

impl NativeBackend<Reference> {
    /// The reference device (plain Rust on the CPU, `threads` cores; 0: all) running `part` of
    /// the VAE in `weights`.
    pub fn reference(weights: &WeightFile, part: Part, threads: usize) -> Result<Self, Error> {
        NativeBackend::open(
            weights,
            part,
            Reference::new(threads),
            BackendKind::Reference,
        )
    }
}

impl<E: seedvae_exec::Elem> NativeBackend<Cuda<E>> {
    /// seedvae's CUDA executor on GPU 0 storing activations as `E` (f16: tensor cores; f32:
    /// fp32 arithmetic, no TF32), running `part` of the VAE in `weights`; its kernels compiled
    /// once per GPU and driver and kept in `kernel_cache`.
    /// Every stream is planned to stay within `budget` bytes of device memory: its
    /// full-resolution layers run in the largest frame groups that fit, or the stream is refused
    /// with what it needs.
    pub fn cuda(
        weights: &WeightFile,
        part: Part,
        kernel_cache: Option<PathBuf>,
        budget: u64,
    ) -> Result<Self, Error> {
        let dev = Cuda::<E>::open(&cuda_options(kernel_cache)).map_err(exec_error)?;
        NativeBackend::open(weights, part, dev, BackendKind::Cuda)?.within(weights, budget)
    }
}

/// seedvae's CUDA executor running `part` of `weights`: fp16 storage on the tensor cores, or
/// fp32 arithmetic throughout (`fp32`, no TF32).
/// Every stream is planned within `budget` bytes of device memory.
pub fn open_cuda_executor(
    weights: &WeightFile,
    part: Part,
    fp32: bool,
    kernel_cache: Option<PathBuf>,
    budget: u64,
) -> Result<Box<dyn Backend>, Error> {
    Ok(if fp32 {
        Box::new(NativeBackend::<Cuda<f32>>::cuda(
            weights,
            part,
            kernel_cache,
            budget,
        )?)
    } else {
        Box::new(NativeBackend::<Cuda<half::f16>>::cuda(
            weights,
            part,
            kernel_cache,
            budget,
        )?)
    })
}

/// Where the CUDA executor finds NVRTC, cuDNN and cuBLAS: the `nvidia-*` wheels of each
/// site-packages in `$SEEDVAE_SITE_PACKAGES` (a path list; the Python package sets it to its
/// own environment's), then the setup venv's; then the system's search.
fn cuda_options(kernel_cache: Option<PathBuf>) -> CudaOptions {
    let mut sites: Vec<PathBuf> = std::env::var_os("SEEDVAE_SITE_PACKAGES")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    sites.extend(seedvae_engine::libs::site_packages());
    CudaOptions {
        lib_dirs: sites
            .iter()
            .flat_map(|s| seedvae_exec::wheel_lib_dirs(s))
            .collect(),
        kernel_cache,
    }
}

/// Can seedvae's CUDA executor run here: a driver and a GPU, NVRTC, cuDNN and cuBLAS? Loads
/// the libraries and asks the driver; makes no context.
pub fn cuda_executor_ready() -> Result<GpuInfo, Unavailable> {
    seedvae_exec::cuda_ready(&cuda_options(None)).map_err(|e| {
        Unavailable(format!(
            "{e}: seedvae's CUDA executor needs the NVIDIA driver and the CUDA 12/13 libraries \
             NVRTC, cuDNN 9 and cuBLAS (pip packages nvidia-cuda-nvrtc, nvidia-cudnn, \
             nvidia-cublas; a CUDA build of PyTorch brings them)"
        ))
    })?;
    crate::tensorrt::probe_gpu()
}

impl<D: Device> NativeBackend<D> {
    pub fn open(w: &WeightFile, part: Part, mut dev: D, kind: BackendKind) -> Result<Self, Error> {
        let model = w.model_for(part)?;
        let vae = Vae::load(w, part, &mut dev).map_err(exec_error)?;
        Ok(NativeBackend {
            dev,
            vae,
            contract: contract_of(&model, part),
            kind,
            streams: Streams::default(),
            memory: None,
            queued: Default::default(),
            band_px: None,
        })
    }

    /// Run every layer in bands of `px` rows of the frame (exact: the same values as whole
    /// frames, less memory at once).
    pub fn in_bands(mut self, px: Option<usize>) -> Self {
        self.band_px = px;
        self
    }

    /// Queue one chunk of stream `s` on `x` and its download: the output's shape and the
    /// download under way.
    fn queue_chunk(
        dev: &mut D,
        vae: &Vae<D::Buf>,
        s: &mut DevStream<D>,
        x: &Tensor,
        split: Split,
    ) -> Result<([usize; 5], D::Pending), Error> {
        let d = match x.shape() {
            &[1, c, t, h, w] => Dims::new(c, t, h, w),
            other => {
                return Err(Error::Input(format!(
                    "the {} takes [1, C, T, H, W]; found {other:?}",
                    vae.part()
                )))
            }
        };
        let a = dev.upload(&x.values(), d).map_err(exec_error)?;
        let y = vae.step_split(dev, s, a, split).map_err(exec_error)?;
        let o = y.dims;
        let p = dev.download_start(&y).map_err(exec_error)?;
        Ok(([1, o.c, o.t, o.h, o.w], p))
    }

    /// Plan every stream within `budget` bytes of device memory on the CUDA device's rules (the
    /// values stored as this device stores them): the largest frame groups of the
    /// full-resolution layers that fit, or the stream refused with what it needs.
    pub fn within(mut self, weights: &WeightFile, budget: u64) -> Result<Self, Error> {
        let vb = self.dev.value_bytes();
        let planner = MemoryPlanner::load(weights, self.vae.part(), vb).map_err(exec_error)?;
        self.memory = Some(Budget {
            planner,
            pool: budget.saturating_sub(outside_pool(vb)),
            budget,
            planned: None,
            parked: 0,
        });
        Ok(self)
    }

    /// The cut a new stream whose chunks look like `x` runs in: within the memory budget (the
    /// device's peak measured from here), or an error saying what it needs.
    fn plan_stream(&mut self, shape: &[usize]) -> Result<Split, Error> {
        let asked = Split {
            band_px: self.band_px,
            ..Split::default()
        };
        let Some(m) = self.memory.as_mut() else {
            return Ok(asked);
        };
        let d = match *shape {
            [1, c, t, h, w] => Dims::new(c, t, h, w),
            _ => return Ok(asked), // refused with its shape by the chunk itself
        };
        let (fit, (w, h)) = fit_stream(&mut m.planner, d, self.band_px, m.pool)?;
        let vb = self.dev.value_bytes();
        match fit {
            Fit::Fits { split, planned } => {
                m.planned = Some(planned);
                // The planner's last plan is the chosen cut's.
                m.parked = m.planner.host_peak() as u64;
                // Host memory earlier streams parked in is kept for this one, up to its plan:
                // only the rest has to be found.
                let kept = self.dev.keep_parked(m.parked as usize) as u64;
                if m.parked > kept {
                    seedvae_weights::memory::check(m.parked - kept, || {
                        format!(
                            "the carried state of {w}×{h} frames parked in page-locked host \
                             memory (the GPU holds {:.1} GiB within `vram_budget_gb`)",
                            planned as f64 / (1u64 << 30) as f64
                        )
                    })?;
                }
                self.dev.reset_measured_peak().map_err(exec_error)?;
                if split.band_px != self.band_px || split.groups.is_some() || split.park {
                    tracing::info!(
                        "{w}×{h} frames within the memory budget: the full-resolution layers \
                         {} frame(s) at a time, every layer in bands of {} px{}",
                        split.groups.map_or("all".into(), |g| g.to_string()),
                        split.band_px.unwrap_or(h),
                        if split.park {
                            format!(
                                ", the carried frames parked in {:.1} GB of host memory between \
                                 uses (page-locked at first use, several seconds per 10 GB, then \
                                 kept for the session's next clips; copied over PCIe at every \
                                 use, beside the compute: slower where the GPU outruns the bus)",
                                m.parked as f64 / 1e9
                            )
                        } else {
                            String::new()
                        }
                    );
                }
                Ok(split)
            }
            Fit::TooLarge { least } => Err(Error::Memory(seedvae_weights::OutOfMemory {
                what: format!(
                    "seedvae's CUDA executor on {w}×{h} frames (calls of {} input frames, \
                         the full-resolution layers one frame at a time in bands down to 8 px, \
                         the carried frames parked in host memory, within `vram_budget_gb`)",
                    d.t
                ),
                need: least + outside_pool(vb),
                available: Some(m.budget),
            })),
        }
    }

    fn output_name(&self) -> &'static str {
        match self.vae.part() {
            Part::Decoder => contract::VIDEO,
            Part::Encoder => contract::LATENT_MEAN,
        }
    }
}

/// What the VAE's `part` makes of a whole input of extent `d` (`[C, T, H, W]`): the decoder
/// `[3, 4T − 3, 8H, 8W]`, the encoder (of 4n + 1 frames, sides multiples of 8) `[16, n + 1, H/8,
/// W/8]`; an error naming what the input lacks.
fn foreign_output(part: Part, d: Dims) -> Result<Dims, Error> {
    let bad = |want: &str| {
        Error::Input(format!(
            "the {part} takes {want}; found [1, {}, {}, {}, {}]",
            d.c, d.t, d.h, d.w
        ))
    };
    match part {
        Part::Decoder if d.c == LATENT_CHANNELS && d.t > 0 && d.h > 0 && d.w > 0 => {
            let frames = crate::planner::decoded_frames(0, d.t);
            Ok(Dims::new(RGB_CHANNELS, frames, 8 * d.h, 8 * d.w))
        }
        Part::Decoder => Err(bad("a latent [1, 16, T, h, w]")),
        Part::Encoder
            if d.c == RGB_CHANNELS
                && d.t % 4 == 1
                && d.h > 0
                && d.w > 0
                && d.h.is_multiple_of(8)
                && d.w.is_multiple_of(8) =>
        {
            Ok(Dims::new(LATENT_CHANNELS, d.t / 4 + 1, d.h / 8, d.w / 8))
        }
        Part::Encoder => Err(bad(
            "frames [1, 3, 4n + 1, H, W] with H and W multiples of 8 (pad them first)",
        )),
    }
}

/// How a stream whose first chunk is `d` fits `budget` pool bytes, planned over its first chunk
/// and a later one (it carries state: as long for the decoder, 4n frames after the encoder's
/// first 4n + 1); and the size `(w, h)` of its frames.
fn fit_stream(
    planner: &mut MemoryPlanner,
    d: Dims,
    band_px: Option<usize>,
    budget: u64,
) -> Result<(Fit, (usize, usize)), Error> {
    let (next, (w, h)) = match planner.part() {
        Part::Decoder => (d, (8 * d.w, 8 * d.h)),
        Part::Encoder => {
            let t = if d.t > 1 { d.t - 1 } else { 4 };
            (Dims { t, ..d }, (d.w, d.h))
        }
    };
    let fit = seedvae_exec::split_within(budget, h, band_px, |sp| planner.peak(&[d, next], sp))
        .map_err(exec_error)?;
    Ok((fit, (w, h)))
}

/// The contract of the streaming graph of the same model (what the planner and pipeline read):
/// its input and output names, and the causal states it carries (for the memory plan; the
/// executor keeps them itself, so there is no `continuation` input).
pub(crate) fn contract_of(model: &seedvae_weights::Model, part: Part) -> Contract {
    let io = |name: &str, c: usize| TensorIo {
        name: name.into(),
        elem: Elem::F32,
        dims: [Dim::Fixed(1), Dim::Fixed(c as i64)]
            .into_iter()
            .chain(["T", "H", "W"].map(|d| Dim::Named(d.into())))
            .collect(),
    };
    let (input, output) = match part {
        Part::Decoder => (
            io(contract::LATENT, LATENT_CHANNELS),
            io(contract::VIDEO, RGB_CHANNELS),
        ),
        Part::Encoder => (
            io(contract::VIDEO, RGB_CHANNELS),
            io(contract::LATENT_MEAN, LATENT_CHANNELS),
        ),
    };
    Contract {
        part,
        precision: Precision::Fp32,
        streaming: true,
        widths: model.widths,
        inputs: vec![input],
        outputs: vec![output],
        continuation: None,
        states: contract::state_specs(model, part),
    }
}

fn exec_error(e: seedvae_exec::Error) -> Error {
    match e {
        seedvae_exec::Error::Weights(w) => Error::Weights(w),
        seedvae_exec::Error::Shape(m) => Error::Input(m),
        other => Error::Backend(other.to_string()),
    }
}

impl<D> Backend for NativeBackend<D>
where
    D: Device + Send,
    D::Buf: Send,
    D::Pending: Send,
    D::Parked: Send,
{
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn contract(&self) -> &Contract {
        &self.contract
    }

    /// One call over the whole input: a stream of one chunk.
    fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<HashMap<String, Tensor>, Error> {
        let name = &self.contract.inputs[0].name;
        let x = inputs
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::Input(format!("no input '{name}'")))?
            .1;
        let split = self.plan_stream(x.shape())?;
        let mut s = self.vae.stream();
        let (shape, p) = Self::queue_chunk(&mut self.dev, &self.vae, &mut s, x, split)?;
        let y = Tensor::f32(
            shape.to_vec(),
            self.dev.download_finish(p).map_err(exec_error)?,
        )?;
        Ok(HashMap::from([(self.output_name().to_string(), y)]))
    }

    fn begin_stream(&mut self) -> StreamId {
        self.streams.begin()
    }

    fn step(&mut self, id: StreamId, input: &Tensor) -> Result<HashMap<String, Tensor>, Error> {
        if !self.queued.is_empty() {
            return Err(Error::Backend(
                "internal: a chunk was stepped while others are queued".into(),
            ));
        }
        self.submit(id, input)?;
        self.collect()
    }

    /// The chunk's layers and its download are queued on the device; the host goes on.
    fn submit(
        &mut self,
        id: StreamId,
        input: &Tensor,
    ) -> Result<Option<HashMap<String, Tensor>>, Error> {
        let chunk = self
            .streams
            .take(id, self.kind.name(), &self.contract, input)?;
        let (mut s, split) = match chunk.state {
            Some(state) => state,
            None => (self.vae.stream(), self.plan_stream(input.shape())?),
        };
        let (shape, p) = Self::queue_chunk(&mut self.dev, &self.vae, &mut s, input, split)?;
        let bytes = s.bytes(self.dev.value_bytes());
        self.streams.put(id, chunk.hw, bytes, (s, split));
        self.queued.push_back((id, shape, p));
        Ok(None)
    }

    fn collect(&mut self) -> Result<HashMap<String, Tensor>, Error> {
        let (_, shape, p) = self.queued.pop_front().ok_or_else(|| {
            Error::Backend(format!("internal: {} has no chunk queued", self.kind))
        })?;
        let y = Tensor::f32(
            shape.to_vec(),
            self.dev.download_finish(p).map_err(exec_error)?,
        )?;
        Ok(HashMap::from([(self.output_name().to_string(), y)]))
    }

    fn run_foreign(
        &mut self,
        input: &Foreign,
        output: &Foreign,
        chunks: &[(usize, usize)],
        on_chunk: &mut dyn FnMut(usize) -> Result<(), Error>,
    ) -> Result<usize, Error> {
        let (d, part) = (input.dims, self.vae.part());
        let made = foreign_output(part, d)?;
        if output.dims != made {
            return Err(Error::Input(format!(
                "the output tensor is [1, {}, {}, {}, {}]; the {part} makes [1, {}, {}, {}, {}] \
                 of [1, {}, {}, {}, {}]",
                output.dims.c,
                output.dims.t,
                output.dims.h,
                output.dims.w,
                made.c,
                made.t,
                made.h,
                made.w,
                d.c,
                d.t,
                d.h,
                d.w
            )));
        }
        let follows = chunks.first().is_some_and(|c| c.0 == 0)
            && chunks.windows(2).all(|w| w[0].1 == w[1].0)
            && chunks.iter().all(|c| c.0 < c.1)
            && chunks.last().is_some_and(|c| c.1 == d.t);
        if !follows {
            return Err(Error::Backend(format!(
                "internal: calls {chunks:?} do not cut {} input frames",
                d.t
            )));
        }
        let split = self.plan_stream(&[1, d.c, chunks[0].1, d.h, d.w])?;
        let mut s = self.vae.stream();
        let vb = self.dev.value_bytes();
        let mut run = || -> Result<usize, Error> {
            let (mut f0, mut state) = (0, 0);
            for &(t0, t1) in chunks {
                let a = self.dev.upload_foreign(input, t0, t1).map_err(exec_error)?;
                let y = self
                    .vae
                    .step_split(&mut self.dev, &mut s, a, split)
                    .map_err(exec_error)?;
                self.dev
                    .download_foreign(&y, output, f0)
                    .map_err(exec_error)?;
                f0 += y.dims.t;
                state = state.max(s.bytes(vb));
                on_chunk(match part {
                    Part::Decoder => f0,
                    Part::Encoder => t1,
                })?;
            }
            Ok(state)
        };
        let r = run();
        // The caller's tensors are free to use (or to free) only once the device is done with
        // them: waited for on every path, an error's too.
        let done = self.dev.synchronize().map_err(exec_error);
        done.and(r)
    }

    fn device_need(&mut self, input: &[usize]) -> Result<Option<u64>, Error> {
        let &[1, c, t, h, w] = input else {
            return Err(Error::Input(format!(
                "the {} takes [1, C, T, H, W]; found {input:?}",
                self.vae.part()
            )));
        };
        let vb = self.dev.value_bytes();
        let Some(m) = self.memory.as_mut() else {
            return Ok(None);
        };
        // The first cut the schedule takes, whatever it costs.
        match fit_stream(
            &mut m.planner,
            Dims::new(c, t, h, w),
            self.band_px,
            u64::MAX,
        )?
        .0
        {
            Fit::Fits { planned, .. } => Ok(Some(planned + outside_pool(vb))),
            Fit::TooLarge { .. } => Ok(None),
        }
    }

    fn set_band_px(&mut self, px: Option<usize>) {
        self.band_px = px;
    }

    fn device_memory(&self) -> Option<crate::DeviceMemory> {
        let planned = self.memory.as_ref()?.planned?;
        Some(crate::DeviceMemory {
            planned_bytes: planned,
            peak_bytes: self.dev.measured_peak(),
            parked_bytes: self.memory.as_ref()?.parked,
        })
    }

    fn end_stream(&mut self, id: StreamId) {
        self.queued.retain(|q| q.0 != id);
        self.streams.end(id)
    }

    fn state_bytes(&self, id: StreamId) -> usize {
        self.streams.bytes(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights() -> WeightFile {
        WeightFile::open(seedvae_tests::fixture("vae_tiny/weights.safetensors")).unwrap()
    }

    /// Two one-latent-frame chunks of a seeded `[1, 16, 1, 16, 16]` stream through `b`.
    fn two_chunks(b: &mut dyn Backend) -> Result<Vec<Tensor>, Error> {
        let id = b.begin_stream();
        let mut out = Vec::new();
        for seed in [1, 2] {
            let mut v = vec![0f32; 16 * 16 * 16];
            seedvae_weights::synth::Rng::new(seed).fill_normal(&mut v);
            let x = Tensor::f32(vec![1, 16, 1, 16, 16], v)?;
            assert!(b.submit(id, &x)?.is_none(), "the executor queues");
            out.extend(b.collect()?.into_values());
        }
        b.end_stream(id);
        Ok(out)
    }

    /// A clip handed over in the device's own memory (here the reference device's: the host's)
    /// decodes and encodes to the values the host path gives, chunk by chunk into its place in
    /// the output; a wrong output shape or input is refused, naming both, before anything runs.
    #[test]
    fn tensors_in_device_memory_run_in_place_as_the_host_path_does() {
        let w = weights();
        for (part, shape) in [
            (Part::Decoder, [1, 16, 3, 6, 10]),
            (Part::Encoder, [1, 3, 9, 16, 24]),
        ] {
            let mut b = NativeBackend::reference(&w, part, 2).unwrap();
            let n = shape.iter().product();
            let mut x = vec![0f32; n];
            seedvae_weights::synth::Rng::new(7).fill_normal(&mut x);
            x.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
            let made =
                foreign_output(part, Dims::new(shape[1], shape[2], shape[3], shape[4])).unwrap();
            let want = b
                .run(&[(
                    &b.contract.inputs[0].name.clone(),
                    &Tensor::f32(shape.to_vec(), x.clone()).unwrap(),
                )])
                .unwrap()
                .into_values()
                .next()
                .unwrap();
            assert_eq!(
                want.shape(),
                [1, made.c, made.t, made.h, made.w],
                "{part}: the output extent"
            );
            let mut y = vec![f32::NAN; made.count().unwrap()];
            // SAFETY: both buffers outlive the run and nothing else touches them meanwhile.
            let (input, output) = unsafe {
                (
                    Foreign::with_shape(x.as_ptr() as u64, &shape).unwrap(),
                    Foreign::new(y.as_mut_ptr() as u64, made).unwrap(),
                )
            };
            let mut done = Vec::new();
            let chunks = crate::planner::plan_chunks(
                part,
                shape[2],
                true,
                Some(1),
                &crate::planner::Limits::unbounded(part),
            )
            .unwrap();
            b.run_foreign(&input, &output, &chunks, &mut |f| {
                done.push(f);
                Ok(())
            })
            .unwrap();
            let e = y
                .iter()
                .zip(want.values().iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(e < 1e-6, "{part}: the in-place run differs by {e}");
            let calls = match part {
                Part::Decoder => vec![1, 5, 9],
                Part::Encoder => vec![5, 9],
            };
            assert_eq!(done, calls, "{part}: progress after each call");

            // The output one frame short: refused, nothing written.
            let short = Dims {
                t: made.t - 1,
                ..made
            };
            let mut z = vec![0f32; short.count().unwrap()];
            // SAFETY: as above.
            let wrong = unsafe { Foreign::new(z.as_mut_ptr() as u64, short).unwrap() };
            let e = b
                .run_foreign(&input, &wrong, &chunks, &mut |_| Ok(()))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("output tensor") && e.contains(&made.t.to_string()),
                "{e}"
            );
            assert!(z.iter().all(|&v| v == 0.0));
        }
        // Frames that are not 4n + 1 long: the encoder says to pad them.
        let mut b = NativeBackend::reference(&w, Part::Encoder, 2).unwrap();
        let x = vec![0f32; 3 * 8 * 16 * 16];
        let mut y = vec![0f32; 16 * 2 * 2 * 2];
        // SAFETY: as above.
        let (i, o) = unsafe {
            (
                Foreign::new(x.as_ptr() as u64, Dims::new(3, 8, 16, 16)).unwrap(),
                Foreign::new(y.as_mut_ptr() as u64, Dims::new(16, 2, 2, 2)).unwrap(),
            )
        };
        let e = b
            .run_foreign(&i, &o, &[(0, 5), (5, 8)], &mut |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("4n + 1") && e.contains("pad"), "{e}");
    }

    /// Within a budget a stream runs in the frame groups, then the bands, that fit — the frames
    /// it gives without one — and the plan is reported; a budget nothing fits refuses the stream
    /// with the need and the budget, before anything runs.
    #[test]
    fn a_budget_picks_frame_groups_then_bands_or_refuses_with_the_need() {
        let w = weights();
        let open = || NativeBackend::reference(&w, Part::Decoder, 2).unwrap();
        let want = two_chunks(&mut open()).unwrap();
        let d = Dims::new(16, 1, 16, 16);
        let mut planner = MemoryPlanner::load(&w, Part::Decoder, 4).unwrap();
        let whole = planner.peak(&[d, d], Split::default()).unwrap() as u64;
        let single = planner.peak(&[d, d], Split::groups(Some(1))).unwrap() as u64;
        assert!(single < whole, "{single} !< {whole}");
        let outside = outside_pool(4);

        let mut fits = open().within(&w, single + outside).unwrap();
        let got = two_chunks(&mut fits).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, e) in got.iter().zip(&want) {
            assert_eq!(g.shape(), e.shape());
            assert_eq!(g.values(), e.values(), "frame groups change nothing");
        }
        let m = fits.device_memory().unwrap();
        assert!(m.planned_bytes <= single && m.peak_bytes.is_none(), "{m:?}");

        // What a host application is told to free: the whole chunk's plan and the allowance.
        let need = open()
            .within(&w, 1)
            .unwrap()
            .device_need(&[1, 16, 1, 16, 16])
            .unwrap();
        assert_eq!(need, Some(whole + outside));
        assert_eq!(open().device_need(&[1, 16, 1, 16, 16]).unwrap(), None);

        let mut roomy = open().within(&w, whole + outside).unwrap();
        two_chunks(&mut roomy).unwrap();
        assert_eq!(roomy.device_memory().unwrap().planned_bytes, whole);

        // Below one frame at a time: bands of rows, the same values again.
        let mut banded = open().within(&w, single + outside - 1).unwrap();
        let got = two_chunks(&mut banded).unwrap();
        for (g, e) in got.iter().zip(&want) {
            assert_eq!(g.values(), e.values(), "bands change nothing");
        }
        assert!(banded.device_memory().unwrap().planned_bytes < single);

        let eight = Split {
            groups: Some(1),
            band_px: Some(8),
            park: true,
        };
        let least = planner.peak(&[d, d], eight).unwrap() as u64;
        let mut tight = open().within(&w, least + outside - 1).unwrap();
        let e = two_chunks(&mut tight).unwrap_err().to_string();
        assert!(
            e.contains("128×128") && e.contains("`vram_budget_gb`") && e.contains("needs"),
            "{e}"
        );
    }
}

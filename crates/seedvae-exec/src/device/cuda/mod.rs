//! The CUDA device: the layers on an NVIDIA GPU — convolutions through cuDNN's graph API (an
//! execution plan found once per shape and kept, [`conv`]), the attention's products through
//! cuBLAS, the rest as seedvae's own kernels (`kernels/vae.cu`, compiled by NVRTC for this GPU
//! at first use and cached). Activations are channels-last `[T, H, W, C]` — what the tensor
//! cores' convolutions read and write, frames contiguous — stored as the element `E`: `f32`
//! (fp32 arithmetic without TF32: held to the reference device) or `half::f16` (tensor cores,
//! fp32 accumulation, GroupNorm statistics in f32 around a pivot summed in f64, softmax in f32).
//!
//! Every activation a causal conv reads next (GroupNorm's and the shuffle's outputs, uploads)
//! is made with two frames of room in front, so the conv's head frames are written there and
//! cuDNN reads `[head ; x]` in place instead of a joined copy.
//!
//! The CUDA driver comes through cudarc (loaded at run time); NVRTC, cuDNN and cuBLAS through
//! [`ffi`] from the folders the caller names (the `nvidia-*` wheels) or the system's search.
//! Memory comes from the driver's stream-ordered pool, kept between calls (not given back to
//! the system at every synchronization); [`Cuda::peak_bytes`] reads its high-water mark.
//!
//! Parked states ([`Device::park`]) travel on two copy streams, one each way, beside the
//! compute: a band's head rows are fetched while the band before it computes, and a state's
//! buffer waits in the [`outbox`] until its copy out is done instead of stalling the compute.

mod conv;
mod ffi;
mod kernels;
mod outbox;
pub mod plan;

use super::{shapes, Act, AttnWeights, ConvWeights, Device, Dims, Foreign, NormWeights, Pad};
use crate::{Error, Result};
use conv::{ConvPlan, EngineId, Geometry};
use cudarc::driver::{
    sys, CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PinnedHostSlice,
    PushKernelArg,
};
use outbox::Outbox;
use seedvae_weights::schema::{NORM_EPS, NORM_GROUPS};
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Where the device finds its libraries and keeps compiled kernels.
#[derive(Debug, Clone, Default)]
pub struct CudaOptions {
    /// Folders holding NVRTC, cuDNN and cuBLAS (searched before the system's paths).
    pub lib_dirs: Vec<PathBuf>,
    /// Where compiled kernels are kept (None: compiled every time).
    pub kernel_cache: Option<PathBuf>,
}

/// How activations are stored on the GPU.
pub trait Elem:
    cudarc::driver::DeviceRepr
    + cudarc::driver::ValidAsZeroBits
    + Copy
    + Default
    + Send
    + Sync
    + Unpin
    + 'static
{
    /// The kernels' suffix in kernels/vae.cu.
    const NAME: &'static str;
    /// cuDNN's and cuBLAS's codes for it.
    const CUDNN: i32;
    const CUDA_R: i32;
    /// Plain fp32 arithmetic only: no tensor cores (TF32), no down-converted inputs.
    const STRICT: bool;
    fn of(v: f32) -> Self;
    fn f32(self) -> f32;
}

impl Elem for f32 {
    const NAME: &'static str = "f32";
    const CUDNN: i32 = ffi::CUDNN_DATA_FLOAT;
    const CUDA_R: i32 = ffi::CUDA_R_32F;
    const STRICT: bool = true;
    fn of(v: f32) -> f32 {
        v
    }
    fn f32(self) -> f32 {
        self
    }
}

impl Elem for half::f16 {
    const NAME: &'static str = "f16";
    const CUDNN: i32 = ffi::CUDNN_DATA_HALF;
    const CUDA_R: i32 = ffi::CUDA_R_16F;
    const STRICT: bool = false;
    fn of(v: f32) -> half::f16 {
        half::f16::from_f32(v)
    }
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

/// A buffer on the GPU: `room` elements reserved in front of its values (a causal conv's head
/// frames go there).
pub struct GpuBuf<E> {
    mem: CudaSlice<E>,
    room: usize,
    /// The copy filling it from host memory on the upload stream ([`Device::unpark_part`]):
    /// the compute stream waits for it at the buffer's first use, or before giving it back.
    arrival: Cell<Option<CudaEvent>>,
}

impl<E> GpuBuf<E> {
    fn new(mem: CudaSlice<E>, room: usize) -> Self {
        GpuBuf {
            mem,
            room,
            arrival: Cell::new(None),
        }
    }

    /// Have `stream` wait for the copy filling this buffer, if one is pending.
    fn arrive(&self, stream: &CudaStream) {
        if let Some(ev) = self.arrival.take() {
            // Waiting on the host is as correct (and a failed wait means a lost context, which
            // the next call reports).
            if stream.wait(&ev).is_err() {
                let _ = ev.synchronize();
            }
        }
    }
}

impl<E> Drop for GpuBuf<E> {
    fn drop(&mut self) {
        // Never used: the memory goes back to the pool (in the compute stream's order) only
        // after the copy that fills it.
        let stream = self.mem.stream().clone();
        self.arrive(&stream);
    }
}

/// A download under way: the page-locked buffer it lands in and the event after its copy.
pub struct Download {
    host: PinnedHostSlice<f32>,
    n: usize,
    done: cudarc::driver::CudaEvent,
}

// SAFETY: page-locked host memory and an event: both may be used from any thread.
unsafe impl Send for Download {}

/// Host memory a state is parked in: page-locked (the copies run beside the compute), or
/// pageable where the system will not lock more (each copy then waits on the host, and the
/// driver bounces it through a buffer of its own: slower, still exact).
enum HostMem {
    Locked(PinnedHostSlice<u8>),
    Pageable(Vec<u8>),
}

impl HostMem {
    fn len(&self) -> usize {
        match self {
            HostMem::Locked(h) => h.len(),
            HostMem::Pageable(v) => v.len(),
        }
    }

    fn bytes(&self) -> Result<&[u8]> {
        match self {
            HostMem::Locked(h) => h.as_slice().map_err(driver("parked memory")),
            HostMem::Pageable(v) => Ok(v),
        }
    }

    fn bytes_mut(&mut self) -> Result<&mut [u8]> {
        match self {
            HostMem::Locked(h) => h.as_mut_slice().map_err(driver("parked memory")),
            HostMem::Pageable(v) => Ok(v),
        }
    }
}

/// A carried state parked in host memory, with the events after the last copy into it
/// (download stream) and out of it (upload stream): a copy the other way waits for them.
pub struct Parked {
    host: Option<HostMem>,
    dims: Dims,
    written: Option<CudaEvent>,
    read: Cell<Option<CudaEvent>>,
    /// Where its host memory goes when it is dropped: the device's pool, while the device lives.
    pool: Weak<Mutex<Pool>>,
}

/// Host memory a parked state gave back, with the events after its last copies in and out
/// (the next copies into it wait for them).
type Pooled = (HostMem, Option<CudaEvent>, Option<CudaEvent>);

/// Host buffers of parked states, free for the next, and how many bytes of them to keep.
struct Pool {
    free: Vec<Pooled>,
    keep: usize,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            free: Vec::new(),
            keep: usize::MAX,
        }
    }
}

impl Pool {
    fn bytes(&self) -> usize {
        self.free.iter().map(|p| p.0.len()).sum()
    }

    /// Free the smallest buffers until at most `keep` bytes are held.
    fn trim(&mut self) {
        self.free.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        while self.bytes() > self.keep {
            if let Some(p) = self.free.pop() {
                release(p);
            }
        }
    }
}

/// Free host memory once the copies into and out of it are done.
fn release((host, written, read): Pooled) {
    if let Some(w) = &written {
        let _ = w.synchronize();
    }
    if let Some(r) = &read {
        let _ = r.synchronize();
    }
    drop(host);
}

impl Parked {
    fn mem(&self) -> Result<&HostMem> {
        self.host.as_ref().ok_or_else(given_back)
    }

    fn mem_mut(&mut self) -> Result<&mut HostMem> {
        self.host.as_mut().ok_or_else(given_back)
    }
}

fn given_back() -> Error {
    Error::Device("a parked activation used after it was given back".into())
}

impl Drop for Parked {
    fn drop(&mut self) {
        let Some(host) = self.host.take() else {
            return;
        };
        let pooled = (host, self.written.take(), self.read.take());
        // Kept for the next park, of this stream or the next clip's, within what the plan
        // parks: page-locking is slow (about 10 s of system time for the 20 GB a 1080p clip
        // within 7 GB parks).
        if let Some(pool) = self.pool.upgrade() {
            if let Ok(mut p) = pool.lock() {
                if p.bytes() + pooled.0.len() <= p.keep {
                    p.free.push(pooled);
                    return;
                }
            }
        }
        // The device is gone, or the pool is full: freed once its copies are done.
        release(pooled);
    }
}

// SAFETY: as for `Download`.
unsafe impl Send for Parked {}

/// GroupNorm's statistics of `t` frames of `c` channels, as a scale and shift per frame and
/// channel (the affine folded in).
pub struct NormStats {
    ab: CudaSlice<f32>,
    t: usize,
    c: usize,
}

/// Frames of room in front of an activation a causal conv reads next: its head (kT − 1 = 2
/// frames, or the carried frames of a temporal downsampler, fewer).
pub(crate) const HEAD_ROOM: usize = 2;

/// GPU 0, activations stored as `E`.
pub struct Cuda<E: Elem = f32> {
    /// Kept for the stream, kernels and buffers made in it.
    _ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Parked states come back on `up` and go out on `down` (a copy engine each way), beside
    /// the compute on `stream`; events order them.
    up: Arc<CudaStream>,
    down: Arc<CudaStream>,
    /// Device buffers the copies on `down` still read, with the event after each copy.
    outbox: Outbox<(GpuBuf<E>, CudaEvent)>,
    cudnn: ffi::Cudnn,
    cudnn_handle: ffi::Handle,
    cublas: ffi::Cublas,
    cublas_handle: ffi::Handle,
    k: kernels::Kernels,
    plans: HashMap<Geometry, ConvPlan>,
    /// Plan choices timed before (this GPU, cuDNN and storage type), from `tuned_file`: a shape
    /// met again in a later process skips the timing when cuDNN offers the same candidates.
    tuned: HashMap<Geometry, (usize, usize)>,
    /// Per conv family ([`Geometry::family`]: the conv without its frames and rows), the
    /// engine it first ran with, from `tuned_file` too: its other frame groups and bands run
    /// that engine when cuDNN builds it for them, so a budget changes no rounding.
    engines: HashMap<Geometry, EngineId>,
    tuned_file: Option<PathBuf>,
    workspace: Option<CudaSlice<u8>>,
    /// Page-locked staging buffers for downloads, free for the next (the driver copies
    /// pageable memory through a bounce buffer at a fraction of the speed).
    staging: Vec<PinnedHostSlice<f32>>,
    /// Page-locked buffers uploads are staged through, oldest first, each with the event after
    /// its copy: the host fills one while the GPU may still read the other.
    uploads: std::collections::VecDeque<(PinnedHostSlice<f32>, cudarc::driver::CudaEvent)>,
    /// Page-locked buffers of parked states, free for the next, each with the events after its
    /// last copies in and out (its next copies wait for them).
    parking: Arc<Mutex<Pool>>,
    /// The system refused to page-lock more: parked states go to pageable memory from then on.
    pageable: bool,
    pool: sys::CUmemoryPool,
    _elem: std::marker::PhantomData<E>,
    /// The GPU's name and compute capability.
    pub name: String,
    pub compute_capability: (i32, i32),
}

// SAFETY: the cuDNN and cuBLAS handles, descriptors and the pool handle are used only through
// `&mut self`, one thread at a time (NVIDIA: a handle may move between threads; it must not be
// used by two at once); the driver objects are cudarc's `Send` types.
unsafe impl<E: Elem> Send for Cuda<E> {}

fn driver(what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| Error::Device(format!("CUDA {what}: {e}"))
}

/// Launch kernel `$f` over `$cfg` (a [`LaunchConfig`], or an element count for a grid-stride
/// launch) with the arguments its declaration in kernels/vae.cu lists.
macro_rules! launch {
    ($dev:expr, $f:ident, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        let mut b = $dev.stream.launch_builder(&$dev.k.$f);
        $( b.arg($arg); )+
        // SAFETY: the arguments are the kernel's, in order; every index stays in its buffer.
        unsafe { b.launch(LaunchConfig::from($cfg)) }
            .map_err(driver(stringify!($f)))
            .map(|_| ())
    }};
}

/// A grid-stride launch over `n` elements.
struct Grid(usize);

impl From<Grid> for LaunchConfig {
    fn from(Grid(n): Grid) -> LaunchConfig {
        let blocks = n.div_ceil(256).clamp(1, 65535 * 8) as u32;
        LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// What the tuned-plans file holds, in its name's key: a file from before family engines were
/// probed in bands is not read (its families would keep engines that round by extent).
const TUNED_FORMAT: &str = "family engines probed in bands";

/// How much slower than the fastest a conv family's engine may be to keep its bits at every
/// extent (bands and frame groups equal to the whole frame).
const EXACT_SLACK: f32 = 1.10;

/// GPU 0's primary context, retained once for the process: a cudarc context dropped releases the
/// primary context while it stays current on the thread, and a device opened after it then
/// computed garbage without an error (seen on the H200: the second device of a process). The
/// device orders its streams itself (events between the compute and the copy streams), so
/// cudarc's cross-stream event tracking is off.
fn gpu0() -> Result<Arc<CudaContext>> {
    static CTX: std::sync::OnceLock<std::result::Result<Arc<CudaContext>, String>> =
        std::sync::OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = CudaContext::new(0).map_err(|e| format!("CUDA: open GPU 0: {e}"))?;
        // SAFETY: every buffer, kernel and library call of this device runs on its compute
        // stream; its copy streams use a buffer only between events the device records.
        unsafe { ctx.disable_event_tracking() };
        Ok(ctx)
    })
    .clone()
    .map_err(Error::Device)
}

/// The channels a conv's filter is stored with, out and in: a multiple of 8 (16 bytes of f16),
/// the alignment cuDNN's tensor-core kernels need — the decoder's RGB output conv (3 channels)
/// ran 30× slower unpadded on the H200. The padded filters are zero: the conv's output is cut
/// back, its input padded with zero channels.
pub(crate) fn stored_channels(c: usize) -> usize {
    c.next_multiple_of(8)
}

/// The attention's queries per block of scores: blocks of at most 256 MB (f32) over all the
/// frame's `p` keys.
pub(crate) fn score_block(p: usize) -> usize {
    ((256usize << 20) / (4 * p).max(1)).clamp(1, p)
}

/// The memory-bound kernels' eight-value (16- or 32-byte) accesses need whole groups of 8
/// channels a pixel and buffers that start 16-byte aligned (every VAE layer they serve has
/// channels a multiple of 32; the device's buffers start at whole pixels of 256-byte aligned
/// allocations).
fn eight_at_a_time(what: &str, c: usize, ptrs: &[u64]) -> Result<()> {
    if c.is_multiple_of(8) && ptrs.iter().all(|p| p.is_multiple_of(16)) {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "{what} over {c} channels: the CUDA device takes a multiple of 8"
        )))
    }
}

impl<E: Elem> Cuda<E> {
    /// Open GPU 0: the driver, NVRTC (the kernels compiled or read from the cache), cuDNN and
    /// cuBLAS on one compute stream, with a copy stream each way for parked states. Every
    /// failure is an error saying what is missing.
    pub fn open(o: &CudaOptions) -> Result<Self> {
        // SAFETY: only tries to load the driver library; no driver call is made without it.
        if !unsafe { sys::is_culib_present() } {
            return Err(Error::Device(
                "no NVIDIA driver found (libcuda / nvcuda.dll is not installed)".into(),
            ));
        }
        let ctx = gpu0()?;
        let stream = ctx.default_stream();
        let up = ctx.new_stream().map_err(driver("stream"))?;
        let down = ctx.new_stream().map_err(driver("stream"))?;
        let cc = ctx
            .compute_capability()
            .map_err(driver("compute capability"))?;
        let name = ctx.name().unwrap_or_else(|_| "GPU 0".into());
        let nvrtc = ffi::Nvrtc::open(&o.lib_dirs)?;
        let k = kernels::Kernels::load(&ctx, &nvrtc, cc, E::NAME, o.kernel_cache.as_deref())?;
        let cudnn = ffi::Cudnn::open(&o.lib_dirs)?;
        let cublas = ffi::Cublas::open(&o.lib_dirs)?;
        // The pool keeps what it holds between synchronizations (a chunk's buffers are the
        // next chunk's); its high-water mark is the measured peak.
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        // SAFETY: the driver writes one pool handle for this device; the threshold is a u64.
        unsafe {
            sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
                .result()
                .map_err(driver("memory pool"))?;
            let mut keep = u64::MAX;
            sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                &mut keep as *mut u64 as *mut c_void,
            )
            .result()
            .map_err(driver("memory pool"))?;
        }
        let raw_stream = stream.cu_stream() as *mut c_void;
        let mut cudnn_handle = std::ptr::null_mut();
        // SAFETY: plain handle creation; the stream outlives the handles (both live in `Cuda`,
        // destroyed in its Drop).
        cudnn.check(unsafe { (cudnn.create)(&mut cudnn_handle) }, "create")?;
        let mut cublas_handle = std::ptr::null_mut();
        let made = cudnn
            .check(
                unsafe { (cudnn.set_stream)(cudnn_handle, raw_stream) },
                "set stream",
            )
            .and_then(|()| {
                ffi::Cublas::check(unsafe { (cublas.create)(&mut cublas_handle) }, "create")
            })
            .and_then(|()| {
                ffi::Cublas::check(
                    unsafe { (cublas.set_stream)(cublas_handle, raw_stream) },
                    "set stream",
                )
            });
        if let Err(e) = made {
            // SAFETY: each handle made above is destroyed once.
            unsafe {
                (cudnn.destroy)(cudnn_handle);
                if !cublas_handle.is_null() {
                    (cublas.destroy)(cublas_handle);
                }
            }
            return Err(e);
        }
        // SAFETY: a plain query.
        let cudnn_version = unsafe { (cudnn.version)() };
        let tuned_file = o.kernel_cache.as_ref().map(|d| {
            let key = kernels::fnv(&[
                name.as_bytes(),
                format!("{cc:?} cudnn {cudnn_version} {}", E::NAME).as_bytes(),
                TUNED_FORMAT.as_bytes(),
            ]);
            d.join(format!("conv-plans-{key:016x}.txt"))
        });
        let tuned = tuned_file.as_deref().map(read_tuned).unwrap_or_default();
        let engines = tuned_file.as_deref().map(read_engines).unwrap_or_default();
        tracing::info!(
            "CUDA device: {name} (compute capability {}.{}); NVRTC {}, cuDNN {} ({}), cuBLAS {}",
            cc.0,
            cc.1,
            nvrtc.path.display(),
            cudnn.path.display(),
            cudnn_version,
            cublas.path.display()
        );
        Ok(Self {
            _ctx: ctx,
            stream,
            up,
            down,
            outbox: Outbox::default(),
            cudnn,
            cudnn_handle,
            cublas,
            cublas_handle,
            k,
            plans: HashMap::new(),
            tuned,
            engines,
            tuned_file,
            workspace: None,
            staging: Vec::new(),
            uploads: Default::default(),
            parking: Arc::default(),
            pageable: false,
            pool,
            _elem: std::marker::PhantomData,
            name,
            compute_capability: cc,
        })
    }

    /// The most device memory the pool has handed out since the last [`Cuda::reset_peak`]
    /// (weights, activations, states, workspaces: everything but the libraries' own).
    pub fn peak_bytes(&self) -> Result<u64> {
        let mut v = 0u64;
        // SAFETY: the attribute is a u64.
        unsafe {
            sys::cuMemPoolGetAttribute(
                self.pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                &mut v as *mut u64 as *mut c_void,
            )
        }
        .result()
        .map_err(driver("memory pool"))?;
        Ok(v)
    }

    /// The bytes of the convolutions' workspace (the largest the chosen plans need).
    pub fn workspace_bytes(&self) -> usize {
        self.workspace.as_ref().map_or(0, |w| w.len())
    }

    /// Start measuring the peak again from what is in use now.
    pub fn reset_peak(&mut self) -> Result<()> {
        self.synchronize()?;
        let mut zero = 0u64;
        // SAFETY: the attribute is a u64 (only 0 may be set).
        unsafe {
            sys::cuMemPoolSetAttribute(
                self.pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                &mut zero as *mut u64 as *mut c_void,
            )
        }
        .result()
        .map_err(driver("memory pool"))
    }

    /// `n` values of `T`, not initialized: every kernel and library call writes its whole
    /// output before anything reads it.
    fn alloc<T: cudarc::driver::DeviceRepr>(&self, n: usize) -> Result<CudaSlice<T>> {
        // SAFETY: see above; the memory is only ever read on the GPU after being written.
        unsafe { self.stream.alloc::<T>(n.max(1)) }.map_err(|e| {
            Error::Device(format!(
                "cannot allocate {} MB on the GPU: {e}",
                (n * std::mem::size_of::<T>()) >> 20
            ))
        })
    }

    /// A page-locked buffer of at least `n` values to stage an upload in: two take turns, so
    /// the older one's copy (queued a whole chunk ago) has finished by the time it is reused.
    fn upload_staging(&mut self, n: usize) -> Result<PinnedHostSlice<f32>> {
        if self.uploads.len() >= 2 {
            if let Some((host, done)) = self.uploads.pop_front() {
                done.synchronize().map_err(driver("upload"))?;
                if host.len() >= n {
                    return Ok(host);
                }
            }
        }
        // SAFETY: page-locked, write-combined host memory (fast to fill and for the GPU to
        // read; the host never reads it), written in full before the copy that reads it.
        unsafe {
            self._ctx
                .alloc_pinned_with_flags::<f32>(n, sys::CU_MEMHOSTALLOC_WRITECOMBINED)
        }
        .map_err(driver("page-locked staging"))
    }

    /// An activation of `dims` with `room` frames of room in front.
    fn act(&self, dims: Dims, room: usize) -> Result<Act<GpuBuf<E>>> {
        let room = room * dims.plane() * dims.c;
        let n = dims
            .count()?
            .checked_add(room)
            .ok_or_else(|| Error::Shape(format!("an activation of {dims:?} is too large")))?;
        Ok(Act {
            buf: GpuBuf::new(self.alloc::<E>(n)?, room),
            dims,
        })
    }

    /// The device address of `b`'s first value.
    fn ptr(&self, b: &GpuBuf<E>) -> u64 {
        b.arrive(&self.stream);
        b.mem.device_ptr(&self.stream).0 + (b.room * size_of::<E>()) as u64
    }

    /// An activation of `dims` from f32 values `[C, T·H·W]` on the device (an upload's last step).
    fn channels_last_of(&self, src: &CudaSlice<f32>, dims: Dims) -> Result<Act<GpuBuf<E>>> {
        let a = self.act(dims, HEAD_ROOM)?;
        let (dst, c, tp) = (
            self.ptr(&a.buf),
            dims.c as i32,
            (dims.t * dims.plane()) as i64,
        );
        launch!(
            self,
            to_channels_last,
            Grid(dims.count()?),
            src,
            &dst,
            &c,
            &tp
        )?;
        Ok(a)
    }

    /// `a`'s values as f32 `[C, T·H·W]` on the device (a download's first step).
    fn channels_first_of(&self, a: &Act<GpuBuf<E>>) -> Result<CudaSlice<f32>> {
        let d = a.dims;
        let out = self.alloc::<f32>(d.count()?)?;
        let (src, c, tp) = (self.ptr(&a.buf), d.c as i32, (d.t * d.plane()) as i64);
        launch!(
            self,
            to_channels_first,
            Grid(d.count()?),
            &src,
            &out,
            &c,
            &tp
        )?;
        Ok(out)
    }

    /// Copy `n` values between device addresses, in stream order.
    fn copy(&self, dst: u64, src: u64, n: usize) -> Result<()> {
        self.copy_bytes(dst, src, n * size_of::<E>())
    }

    /// Copy `bytes` between device addresses, in stream order.
    fn copy_bytes(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        // SAFETY: both ranges lie in live device buffers (the callers' extents), used in this
        // stream's order.
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream())
        }
        .map_err(driver("copy"))
    }

    /// Frames `[t0, t0 + n)` of `src` to frame `d0` of `dst` (same frame size).
    fn copy_frames(
        &self,
        src: &Act<GpuBuf<E>>,
        t0: usize,
        dst: u64,
        d0: usize,
        n: usize,
    ) -> Result<()> {
        let f = src.dims.plane() * src.dims.c;
        let es = size_of::<E>() as u64;
        self.copy(
            dst + (d0 * f) as u64 * es,
            self.ptr(&src.buf) + (t0 * f) as u64 * es,
            n * f,
        )
    }

    /// A workspace of at least `n` bytes.
    fn workspace(&mut self, n: usize) -> Result<u64> {
        if self.workspace.as_ref().is_none_or(|b| b.len() < n) {
            self.workspace = None;
            self.workspace = Some(self.alloc::<u8>(n)?);
        }
        let ws = self.workspace.as_ref().expect("made above");
        Ok(ws.device_ptr(&self.stream).0)
    }

    /// Run the conv `geo` on these buffers: its plans made on first use, and when there are
    /// several, each timed once on this call's buffers and the fastest kept.
    fn run_conv(&mut self, geo: &Geometry, x: u64, w: u64, y: u64) -> Result<()> {
        let family = geo.family();
        if !self.plans.contains_key(geo) {
            let want = self.engines.get(&family);
            let p = ConvPlan::new::<E>(&self.cudnn, self.cudnn_handle, geo, want)?;
            self.plans.insert(*geo, p);
        }
        let count = self.plans[geo].plans.len();
        let chosen = match self.plans[geo].chosen {
            Some(i) => i,
            None => {
                // The family's engine where this shape has it within the workspace the memory
                // plan allows, else as recorded, else timed.
                let cap = plan::workspace_allowance(size_of::<E>()) as usize;
                let same = self.engines.get(&family).and_then(|id| {
                    let p = &self.plans[geo];
                    (0..p.plans.len())
                        .find(|&i| p.plans[i].2.as_ref() == Some(id) && p.plans[i].1 <= cap)
                });
                let i = match (same, self.tuned.get(geo)) {
                    (Some(i), _) => i,
                    (None, Some(&(i, n))) if n == count && i < count => i,
                    (None, _) => {
                        let new_family = !self.engines.contains_key(&family);
                        if !new_family {
                            tracing::debug!(
                                "{geo:?}: cuDNN does not build its family's engine; timed anew"
                            );
                        }
                        let (fastest, times) = self.tune(geo, x, w, y)?;
                        let i = match new_family {
                            true => {
                                let i = self.extent_exact(geo, fastest, &times, x, w, y);
                                // Only the chosen plan's workspace stays (as after timing).
                                self.workspace = None;
                                i
                            }
                            false => fastest,
                        };
                        self.tuned.insert(*geo, (i, count));
                        if let Some(f) = &self.tuned_file {
                            append_tuned(f, geo, i, count);
                        }
                        i
                    }
                };
                tracing::debug!(
                    "conv {geo:?}: engine {:?} of {count} (the family's {:?}: {})",
                    self.plans[geo].plans[i].2.as_ref().map(EngineId::to_words),
                    self.engines.get(&family).map(EngineId::to_words),
                    if same.is_some() {
                        "taken"
                    } else {
                        "not among the plans"
                    }
                );
                self.plans.get_mut(geo).expect("made above").chosen = Some(i);
                i
            }
        };
        if !self.engines.contains_key(&family) {
            if let Some(id) = self.plans[geo].plans[chosen].2.clone() {
                if let Some(f) = &self.tuned_file {
                    append_engine(f, &family, &id);
                }
                self.engines.insert(family, id);
            }
        }
        let ws = self.workspace(self.plans[geo].plans[chosen].1)?;
        self.plans[geo].run(chosen, &self.cudnn, self.cudnn_handle, x, w, y, ws)
    }

    /// The fastest of `geo`'s plans on these buffers (each run once to warm, once timed), with
    /// the time of each plan in the running (ms, index); a plan whose workspace cannot be had
    /// or that fails to run is passed over.
    fn tune(
        &mut self,
        geo: &Geometry,
        x: u64,
        w: u64,
        y: u64,
    ) -> Result<(usize, Vec<(f32, usize)>)> {
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let mut times = Vec::new();
        let mut last_err = None;
        for i in 0..self.plans[geo].plans.len() {
            let need = self.plans[geo].plans[i].1;
            let timed = (|| {
                let ws = self.workspace(need)?;
                let p = &self.plans[geo];
                p.run(i, &self.cudnn, self.cudnn_handle, x, w, y, ws)?;
                let start = self.stream.record_event(timing).map_err(driver("event"))?;
                p.run(i, &self.cudnn, self.cudnn_handle, x, w, y, ws)?;
                let end = self.stream.record_event(timing).map_err(driver("event"))?;
                start.elapsed_ms(&end).map_err(driver("event"))
            })();
            match timed {
                Ok(ms) => times.push((ms, need, i)),
                Err(e) => last_err = Some(e),
            }
        }
        // Only the chosen plan's workspace stays.
        self.workspace = None;
        // Within the memory plan's allowance for the workspace when any is (the fp32 plans'
        // fastest asked for gigabytes); the fastest, or one within 5% of it that needs less.
        let cap = plan::workspace_allowance(size_of::<E>()) as usize;
        if times.iter().any(|t| t.1 <= cap) {
            times.retain(|t| t.1 <= cap);
        }
        let fastest = times.iter().map(|t| t.0).fold(f32::INFINITY, f32::min);
        let chosen = times
            .iter()
            .filter(|t| t.0 <= fastest * 1.05)
            .min_by_key(|t| t.1);
        match chosen {
            Some(&(ms, ws, i)) => {
                tracing::debug!(
                    "cuDNN plan {i} of {} for {geo:?}: {ms:.3} ms, workspace {ws} B",
                    self.plans[geo].plans.len()
                );
                Ok((i, times.iter().map(|t| (t.0, t.2)).collect()))
            }
            None => Err(last_err
                .unwrap_or_else(|| Error::Device(format!("cuDNN: no plan ran for {geo:?}")))),
        }
    }

    /// Of `geo`'s timed plans (`times`: ms, index), the fastest within [`EXACT_SLACK`] of
    /// `fastest` whose engine gives the same bits over bands of the first output frame's top
    /// rows as over all of `geo` — the engine the conv's family then runs at every extent. An
    /// engine that picks its kernel by extent (on the H200, cuDNN's knob-less engines did for
    /// some shapes) rounds a budget's bands and frame groups differently from the whole frame;
    /// when none within the slack keeps its bits, `fastest` (said at debug level). A probe that
    /// fails (no memory for it) changes nothing.
    fn extent_exact(
        &mut self,
        geo: &Geometry,
        fastest: usize,
        times: &[(f32, usize)],
        x: u64,
        w: u64,
        y: u64,
    ) -> usize {
        // Bands of a strided conv (the encoder's downsamplers) start on even rows; not probed.
        if (geo.st, geo.ss) != (1, 1) {
            return fastest;
        }
        let Some(&(best, _)) = times.iter().find(|t| t.1 == fastest) else {
            return fastest;
        };
        let mut order: Vec<(f32, usize)> = times
            .iter()
            .copied()
            .filter(|&(ms, i)| ms <= best * EXACT_SLACK && i != fastest)
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        order.insert(0, (best, fastest));
        for (ms, i) in order {
            let id = self.plans[geo].plans[i].2.as_ref().map(EngineId::to_words);
            match self.same_bits_in_bands(geo, i, x, w, y) {
                Ok(true) => {
                    tracing::debug!(
                        "{geo:?}: engine {id:?} ({ms:.3} ms, fastest {best:.3}) keeps its bits in bands"
                    );
                    return i;
                }
                Ok(false) => tracing::debug!("{geo:?}: engine {id:?} rounds bands differently"),
                Err(e) => {
                    tracing::debug!("{geo:?}: engine {id:?} not probed: {e}");
                    return fastest;
                }
            }
        }
        tracing::debug!(
            "{geo:?}: no engine within {EXACT_SLACK}× of the fastest keeps its bits in bands"
        );
        fastest
    }

    /// Whether plan `i` of `geo` gives, over the first output frame's top 9 rows and over its
    /// top third (input and output at most 64 MiB), each with its own cuDNN plan of the same engine,
    /// the bits it gives over all of `geo` on these buffers (`y` is overwritten).
    fn same_bits_in_bands(
        &mut self,
        geo: &Geometry,
        i: usize,
        x: u64,
        w: u64,
        y: u64,
    ) -> Result<bool> {
        let Some(id) = self.plans[geo].plans[i].2.clone() else {
            return Ok(false);
        };
        let ws = self.workspace(self.plans[geo].plans[i].1)?;
        self.plans[geo].run(i, &self.cudnn, self.cudnn_handle, x, w, y, ws)?;
        let (d, o, es) = (geo.x, geo.out(), size_of::<E>());
        let row = o.w * o.c;
        // A band's input and output rows within 64 MiB (beside what the memory plan holds).
        let band_row = (geo.kt * d.w * d.c + row) * es;
        let third = (d.h / 3).min((64 << 20) / band_row).max(1);
        for rows in [9, third] {
            let hb = (rows + geo.p).min(d.h);
            let sub = Geometry {
                x: Dims {
                    t: geo.kt,
                    h: hb,
                    ..d
                },
                ..*geo
            };
            if sub == *geo {
                continue;
            }
            // An engine that will not build for a band, or only with more workspace than the
            // memory plan allows, is not what the band would run.
            let Ok(mut plan) = ConvPlan::engine::<E>(&self.cudnn, self.cudnn_handle, &sub, &id)
            else {
                return Ok(false);
            };
            if plan.plans[0].1 > plan::workspace_allowance(size_of::<E>()) as usize {
                plan.destroy(&self.cudnn);
                return Ok(false);
            }
            let r = (|| {
                // The band's input: the first kt frames' top rows.
                let xb = self.act(sub.x, 0)?;
                let frame = d.h * d.w * d.c;
                let band = hb * d.w * d.c;
                for f in 0..geo.kt {
                    let (to, from) = ((f * band * es) as u64, (f * frame * es) as u64);
                    self.copy(self.ptr(&xb.buf) + to, x + from, band)?;
                }
                let yb = self.act(sub.out(), 0)?;
                let ws = self.workspace(plan.plans[0].1)?;
                plan.run(
                    0,
                    &self.cudnn,
                    self.cudnn_handle,
                    self.ptr(&xb.buf),
                    w,
                    self.ptr(&yb.buf),
                    ws,
                )?;
                // Rows the band's bottom edge does not reach (all when it is the frame).
                let exact = if hb == d.h { hb } else { hb - geo.p };
                self.count_unequal(y, self.ptr(&yb.buf), exact * row)
            })();
            plan.destroy(&self.cudnn);
            if r? != 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// How many of the first `n` values at `a` and `b` differ, bit for bit.
    fn count_unequal(&self, a: u64, b: u64, n: usize) -> Result<u64> {
        let count = self
            .stream
            .alloc_zeros::<u64>(1)
            .map_err(driver("a count"))?;
        let n = n as i64;
        launch!(self, count_unequal, Grid(n as usize), &a, &b, &n, &count)?;
        let v = self.stream.clone_dtoh(&count).map_err(driver("a count"))?;
        Ok(v[0])
    }

    /// GroupNorm's statistics of every frame of `x`, folded with the affine into a scale and
    /// shift per frame and channel.
    fn stats(&self, x: &Act<GpuBuf<E>>, nw: &NormWeights<GpuBuf<E>>) -> Result<NormStats> {
        let d = x.dims;
        let per = shapes::norm(d, nw.c)?;
        if d.c > 8 * 1024 {
            return Err(Error::Shape(format!(
                "GroupNorm over {} channels: the CUDA device takes at most 8192",
                d.c
            )));
        }
        let groups = NORM_GROUPS;
        let acc = self
            .stream
            .alloc_zeros::<f64>(2 * d.t * groups)
            .map_err(driver("GroupNorm sums"))?;
        let ab = self.alloc::<f32>(2 * d.t * d.c)?;
        let xp = self.ptr(&x.buf);
        eight_at_a_time("GroupNorm", d.c, &[xp])?;
        // A thread for each 8 channels of a pixel, `lanes` pixels at once, 64 pixels a lane
        // per block.
        let per_pixel = d.c / 8;
        let lanes = (256 / per_pixel).max(1);
        let pixels = lanes * 64;
        let cfg = LaunchConfig {
            grid_dim: (d.plane().div_ceil(pixels) as u32, d.t as u32, 1),
            block_dim: ((lanes * per_pixel) as u32, 1, 1),
            shared_mem_bytes: (2 * groups * size_of::<f64>()) as u32,
        };
        let (plane, c, per_i) = (d.plane() as i32, d.c as i32, per as i32);
        let (lanes, pixels) = (lanes as i32, pixels as i32);
        launch!(self, gn_sums_v8, cfg, &xp, &plane, &c, &per_i, &lanes, &pixels, &acc)?;
        let (g, b, t) = (self.ptr(&nw.gamma), self.ptr(&nw.beta), d.t as i32);
        let grid = Grid(d.t * d.c);
        launch!(self, gn_finish, grid, &xp, &acc, &g, &b, &ab, &t, &plane, &c, &per_i, &NORM_EPS)?;
        Ok(NormStats { ab, t: d.t, c: d.c })
    }

    /// GroupNorm of rows `[r0, r1)` of `x` (+ SiLU) with statistics `st` into the buffer at
    /// `y` (`[T, r1 − r0, W, C]`): one launch for whole frames, one a frame for a band.
    fn norm_with(
        &self,
        x: &Act<GpuBuf<E>>,
        st: &NormStats,
        silu: bool,
        (r0, r1): (usize, usize),
        y: u64,
    ) -> Result<()> {
        let d = x.dims;
        shapes::rows(d, r0, r1)?;
        if (st.t, st.c) != (d.t, d.c) {
            return Err(Error::Shape(format!(
                "GroupNorm statistics of {} frames of {} channels for {d:?}",
                st.t, st.c
            )));
        }
        let xp = self.ptr(&x.buf);
        eight_at_a_time("GroupNorm", d.c, &[xp, y])?;
        let ab = st.ab.device_ptr(&self.stream).0;
        let (c, silu) = (d.c as i32, silu as i32);
        let band = (r1 - r0) * d.w * d.c;
        let es = size_of::<E>() as u64;
        // A launch's frame index picks the scale and shift: a band's launch is one frame's.
        let launches: Vec<(u64, u64, u64, usize)> = if band == d.plane() * d.c {
            vec![(xp, y, ab, d.t * band)]
        } else {
            (0..d.t)
                .map(|t| {
                    let from = ((t * d.h + r0) * d.w * d.c) as u64 * es;
                    let to = (t * band) as u64 * es;
                    let abt = (t * 2 * d.c * size_of::<f32>()) as u64;
                    (xp + from, y + to, ab + abt, band)
                })
                .collect()
        };
        for (src, dst, abt, n) in launches {
            let (frame, n64) = (band as i64, n as i64);
            launch!(
                self,
                gn_apply_v8,
                Grid(n / 8),
                &src,
                &dst,
                &abt,
                &c,
                &frame,
                &n64,
                &silu
            )?;
        }
        Ok(())
    }

    /// Rows `[s0, s0 + n)` of every frame of `src` to rows `[d0, d0 + n)` of the frames at `dst`
    /// (`dst_h` rows high; same channels, frames and width): a copy per frame.
    fn copy_rows(
        &self,
        src: &Act<GpuBuf<E>>,
        s0: usize,
        dst: u64,
        dst_h: usize,
        d0: usize,
        n: usize,
    ) -> Result<()> {
        let d = src.dims;
        let row = d.w * d.c;
        let es = size_of::<E>() as u64;
        let sp = self.ptr(&src.buf);
        for t in 0..d.t {
            self.copy(
                dst + ((t * dst_h + d0) * row) as u64 * es,
                sp + ((t * d.h + s0) * row) as u64 * es,
                n * row,
            )?;
        }
        Ok(())
    }

    /// cuBLAS `C = op(A)·op(B)` (column-major; A and B stored as `E`, C as `c_type`; fp32
    /// accumulation, no TF32).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        ta: bool,
        tb: bool,
        (m, n, k): (usize, usize, usize),
        (a, lda): (u64, usize),
        (b, ldb): (u64, usize),
        (c, ldc): (u64, usize),
        c_type: i32,
    ) -> Result<()> {
        let (one, zero) = (1f32, 0f32);
        let op = |t| {
            if t {
                ffi::CUBLAS_OP_T
            } else {
                ffi::CUBLAS_OP_N
            }
        };
        // SAFETY: the pointers address buffers of at least the stated matrix extents.
        ffi::Cublas::check(
            unsafe {
                (self.cublas.gemm_ex)(
                    self.cublas_handle,
                    op(ta),
                    op(tb),
                    m as i32,
                    n as i32,
                    k as i32,
                    &one as *const f32 as *const c_void,
                    a as *const c_void,
                    E::CUDA_R,
                    lda as i32,
                    b as *const c_void,
                    E::CUDA_R,
                    ldb as i32,
                    &zero as *const f32 as *const c_void,
                    c as *mut c_void,
                    c_type,
                    ldc as i32,
                    ffi::CUBLAS_COMPUTE_32F,
                    ffi::CUBLAS_GEMM_DEFAULT,
                )
            },
            "GemmEx",
        )
    }

    /// `y[i] += b[channel]` over `n` values of `c` channels at `y`.
    fn bias(&self, y: u64, b: &GpuBuf<E>, c: usize, n: usize) -> Result<()> {
        let bp = self.ptr(b);
        let (ci, n64) = (c as i32, n as i64);
        eight_at_a_time("a bias", c, &[y, bp])?;
        launch!(self, add_bias_v8, Grid(n / 8), &y, &bp, &ci, &n64)
    }
}

impl<E: Elem> Drop for Cuda<E> {
    fn drop(&mut self) {
        let _ = self.empty_outbox();
        let _ = self.stream.synchronize();
        let _ = self.down.synchronize();
        let _ = self.up.synchronize();
        for p in self.plans.values_mut() {
            p.destroy(&self.cudnn);
        }
        // SAFETY: the handles were made in `open` and are destroyed once, here.
        unsafe {
            (self.cudnn.destroy)(self.cudnn_handle);
            (self.cublas.destroy)(self.cublas_handle);
        }
    }
}

impl<E: Elem> Device for Cuda<E> {
    type Buf = GpuBuf<E>;

    fn constant(&mut self, v: &[f32]) -> Result<GpuBuf<E>> {
        let host: Vec<E> = v.iter().map(|&x| E::of(x)).collect();
        Ok(GpuBuf::new(
            self.stream
                .clone_htod(&host)
                .map_err(driver("copy weights"))?,
            0,
        ))
    }

    fn filter(&mut self, v: &[f32], [co, ci, kt, kh, kw]: [usize; 5]) -> Result<GpuBuf<E>> {
        if v.len() != co * ci * kt * kh * kw {
            return Err(Error::Shape(format!(
                "a filter of {:?} holds {} values; found {}",
                [co, ci, kt, kh, kw],
                co * ci * kt * kh * kw,
                v.len()
            )));
        }
        // [cout, cin, kt, kh, kw] → channels-last [cout, kt, kh, kw, cin], zero filters and
        // input channels after the last up to the stored counts.
        let taps = kt * kh * kw;
        let cs = stored_channels(ci);
        let mut out = vec![0f32; stored_channels(co) * taps * cs];
        for o in 0..co {
            for i in 0..ci {
                for k in 0..taps {
                    out[(o * taps + k) * cs + i] = v[(o * ci + i) * taps + k];
                }
            }
        }
        self.constant(&out)
    }

    fn upload(&mut self, v: &[f32], dims: Dims) -> Result<Act<GpuBuf<E>>> {
        shapes::upload(v.len(), dims)?;
        // Through page-locked memory: the copy then queues behind the work in flight, where
        // pageable memory has the driver bounce it while the GPU waits.
        let mut host = self.upload_staging(v.len())?;
        host.as_mut_slice().map_err(driver("upload"))?[..v.len()].copy_from_slice(v);
        let src = self.alloc::<f32>(v.len())?;
        // SAFETY: `src` holds exactly `v.len()` values; the staging buffer is not written again
        // before `done`.
        unsafe {
            cudarc::driver::result::memcpy_htod_async(
                src.device_ptr(&self.stream).0,
                &host.as_slice().map_err(driver("upload"))?[..v.len()],
                self.stream.cu_stream(),
            )
        }
        .map_err(driver("upload"))?;
        let done = self.stream.record_event(None).map_err(driver("upload"))?;
        self.uploads.push_back((host, done));
        self.channels_last_of(&src, dims)
    }

    fn upload_foreign(&mut self, src: &Foreign, t0: usize, t1: usize) -> Result<Act<GpuBuf<E>>> {
        let d = src.dims;
        shapes::frames(d, t0, t1)?;
        let dims = Dims { t: t1 - t0, ..d };
        let n = dims.count()?;
        // Each channel's frames [t0, t1) are one run of the tensor: gathered into [C, T·H·W],
        // then into the activation's layout, as an upload from the host is.
        let staged = self.alloc::<f32>(n)?;
        let (at, run) = (staged.device_ptr(&self.stream).0, dims.t * d.plane() * 4);
        for c in 0..d.c {
            let from = src.ptr() + ((c * d.t + t0) * d.plane() * 4) as u64;
            self.copy_bytes(at + (c * run) as u64, from, run)?;
        }
        self.channels_last_of(&staged, dims)
    }

    fn download_foreign(&mut self, a: &Act<GpuBuf<E>>, dst: &Foreign, f0: usize) -> Result<()> {
        let (d, ad) = (dst.dims, a.dims);
        shapes::into_frames(d, ad, f0)?;
        let out = self.channels_first_of(a)?;
        let (from, run) = (out.device_ptr(&self.stream).0, ad.t * ad.plane() * 4);
        for c in 0..d.c {
            let to = dst.ptr() + ((c * d.t + f0) * d.plane() * 4) as u64;
            self.copy_bytes(to, from + (c * run) as u64, run)?;
        }
        Ok(())
    }

    type Pending = Download;

    fn download_start(&mut self, a: &Act<GpuBuf<E>>) -> Result<Download> {
        let n = a.dims.count()?;
        let out = self.channels_first_of(a)?;
        let mut host = match self.staging.iter().position(|s| s.len() >= n) {
            Some(i) => self.staging.swap_remove(i),
            // SAFETY: page-locked host memory (not write-combined: the host reads it), written
            // by the copy below before it is read.
            None => unsafe { self._ctx.alloc_pinned_with_flags::<f32>(n, 0) }
                .map_err(driver("page-locked staging"))?,
        };
        let dst = &mut host.as_mut_slice().map_err(driver("download"))?[..n];
        // SAFETY: `dst` holds exactly the `n` values `out` holds; it is read only after `done`.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(
                dst,
                out.device_ptr(&self.stream).0,
                self.stream.cu_stream(),
            )
        }
        .map_err(driver("download"))?;
        let done = self.stream.record_event(None).map_err(driver("download"))?;
        Ok(Download { host, n, done })
    }

    fn download_finish(&mut self, p: Download) -> Result<Vec<f32>> {
        p.done.synchronize().map_err(driver("download"))?;
        let v = p.host.as_slice().map_err(driver("download"))?[..p.n].to_vec();
        self.staging.push(p.host);
        Ok(v)
    }

    fn conv(
        &mut self,
        x: &Act<GpuBuf<E>>,
        head: Option<&Act<GpuBuf<E>>>,
        w: &ConvWeights<GpuBuf<E>>,
        st: usize,
        pad: Pad,
    ) -> Result<Act<GpuBuf<E>>> {
        let d = x.dims;
        shapes::conv(d, head.map(|h| h.dims), w.cin, w.kt)?;
        let frame = d.plane() * d.c;
        let es = size_of::<E>() as u64;
        // The input cuDNN reads: [head ; x] — the head written into x's room where it has
        // room, else both copied into a joined buffer — then padded right/bottom.
        let (mut input, mut dims) = (self.ptr(&x.buf), d);
        let mut _joined = None;
        if let Some(h) = head {
            let n = h.dims.t * frame;
            if x.buf.room >= n {
                input -= n as u64 * es;
                self.copy_frames(h, 0, input, 0, h.dims.t)?;
            } else {
                let j = self.act(
                    Dims {
                        t: h.dims.t + d.t,
                        ..d
                    },
                    0,
                )?;
                input = self.ptr(&j.buf);
                self.copy_frames(h, 0, input, 0, h.dims.t)?;
                self.copy_frames(x, 0, input, h.dims.t, d.t)?;
                _joined = Some(j);
            }
            dims.t += h.dims.t;
        }
        let mut _wide = None;
        if stored_channels(dims.c) != dims.c {
            // The encoder's RGB input, to the filter's 8 channels.
            let p = self.act(
                Dims {
                    c: stored_channels(dims.c),
                    ..dims
                },
                0,
            )?;
            let (dst, n, cs, px) = (
                self.ptr(&p.buf),
                dims.c as i32,
                p.dims.c as i32,
                (dims.t * dims.plane()) as i64,
            );
            launch!(
                self,
                pad_channels,
                Grid(p.dims.count()?),
                &input,
                &dst,
                &n,
                &cs,
                &px
            )?;
            (input, dims) = (dst, p.dims);
            _wide = Some(p);
        }
        let mut _padded = None;
        if pad == Pad::RightBottom {
            let p = self.act(Dims::new(dims.c, dims.t, dims.h + 1, dims.w + 1), 0)?;
            let (dst, f, h, wd, c) = (
                self.ptr(&p.buf),
                dims.t as i32,
                dims.h as i32,
                dims.w as i32,
                dims.c as i32,
            );
            launch!(
                self,
                pad_right_bottom,
                Grid(p.dims.count()?),
                &input,
                &dst,
                &f,
                &h,
                &wd,
                &c
            )?;
            (input, dims) = (dst, p.dims);
            _padded = Some(p);
        }
        let geo = Geometry::of(dims, w, st, pad);
        let out = geo.out();
        let y = self.act(Dims { c: w.cout, ..out }, 0)?;
        let (wp, yp) = (self.ptr(&w.w), self.ptr(&y.buf));
        if geo.cout == w.cout {
            self.run_conv(&geo, input, wp, yp)?;
            self.bias(yp, &w.b, w.cout, y.dims.count()?)?;
        } else {
            let padded = self.act(out, 0)?;
            let pp = self.ptr(&padded.buf);
            self.run_conv(&geo, input, wp, pp)?;
            let (bp, cs, n, px) = (
                self.ptr(&w.b),
                geo.cout as i32,
                w.cout as i32,
                (out.t * out.plane()) as i64,
            );
            launch!(
                self,
                take_channels_bias,
                Grid(y.dims.count()?),
                &pp,
                &yp,
                &bp,
                &cs,
                &n,
                &px
            )?;
        }
        Ok(y)
    }

    fn tail(
        &mut self,
        x: &Act<GpuBuf<E>>,
        head: Option<&Act<GpuBuf<E>>>,
        n: usize,
    ) -> Result<Act<GpuBuf<E>>> {
        let d = x.dims;
        let nh = head.map_or(0, |h| h.dims.t);
        shapes::tail(d, nh, n)?;
        let out = self.act(Dims { t: n, ..d }, 0)?;
        let o = self.ptr(&out.buf);
        // The last n of [head ; x]: from x where it has them, the rest from the head's end.
        let from_x = n.min(d.t);
        let from_h = n - from_x;
        if let (Some(h), true) = (head, from_h > 0) {
            self.copy_frames(h, nh - from_h, o, 0, from_h)?;
        }
        self.copy_frames(x, d.t - from_x, o, from_h, from_x)?;
        Ok(out)
    }

    fn repeat_first(&mut self, x: &Act<GpuBuf<E>>, n: usize) -> Result<Act<GpuBuf<E>>> {
        let out = self.act(Dims { t: n, ..x.dims }, 0)?;
        let o = self.ptr(&out.buf);
        for i in 0..n {
            self.copy_frames(x, 0, o, i, 1)?;
        }
        Ok(out)
    }

    type Stats = NormStats;

    fn norm_stats(&mut self, x: &Act<GpuBuf<E>>, nw: &NormWeights<GpuBuf<E>>) -> Result<NormStats> {
        self.stats(x, nw)
    }

    fn norm_rows(
        &mut self,
        x: &Act<GpuBuf<E>>,
        st: &NormStats,
        nw: &NormWeights<GpuBuf<E>>,
        silu: bool,
        r0: usize,
        r1: usize,
    ) -> Result<Act<GpuBuf<E>>> {
        shapes::norm(x.dims, nw.c)?;
        shapes::rows(x.dims, r0, r1)?;
        let y = self.act(
            Dims {
                h: r1 - r0,
                ..x.dims
            },
            HEAD_ROOM,
        )?;
        self.norm_with(x, st, silu, (r0, r1), self.ptr(&y.buf))?;
        Ok(y)
    }

    fn rows(
        &mut self,
        x: &Act<GpuBuf<E>>,
        r0: usize,
        r1: usize,
        head_room: bool,
    ) -> Result<Act<GpuBuf<E>>> {
        shapes::rows(x.dims, r0, r1)?;
        let room = if head_room { HEAD_ROOM } else { 0 };
        let out = self.act(
            Dims {
                h: r1 - r0,
                ..x.dims
            },
            room,
        )?;
        self.copy_rows(x, r0, self.ptr(&out.buf), r1 - r0, 0, r1 - r0)?;
        Ok(out)
    }

    fn empty(&mut self, dims: Dims) -> Result<Act<GpuBuf<E>>> {
        self.act(dims, 0)
    }

    fn put_rows(
        &mut self,
        dst: &mut Act<GpuBuf<E>>,
        src: &Act<GpuBuf<E>>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> Result<()> {
        shapes::put_rows(dst.dims, src.dims, s0, d0, n)?;
        self.copy_rows(src, s0, self.ptr(&dst.buf), dst.dims.h, d0, n)
    }

    fn add(&mut self, a: &mut Act<GpuBuf<E>>, b: &Act<GpuBuf<E>>) -> Result<()> {
        shapes::add(a.dims, b.dims)?;
        let n = a.dims.count()?;
        let (ap, bp, n64) = (self.ptr(&a.buf), self.ptr(&b.buf), n as i64);
        eight_at_a_time("a residual add", a.dims.c, &[ap, bp])?;
        launch!(self, add_into_v8, Grid(n / 8), &ap, &bp, &n64)
    }

    fn shuffle(
        &mut self,
        u: &Act<GpuBuf<E>>,
        c: usize,
        temporal: bool,
        drop_sub1: bool,
    ) -> Result<Act<GpuBuf<E>>> {
        let z = if temporal { 2 } else { 1 };
        let d = u.dims;
        let (dims, drop) = shapes::shuffle(d, c, z, drop_sub1)?;
        let out = self.act(dims, HEAD_ROOM)?;
        let (up, op) = (self.ptr(&u.buf), self.ptr(&out.buf));
        eight_at_a_time("the upsampler's shuffle", c, &[up, op])?;
        let (ci, t, h, w, zi, dr) = (
            c as i32,
            d.t as i32,
            d.h as i32,
            d.w as i32,
            z as i32,
            drop as i32,
        );
        launch!(
            self,
            shuffle,
            Grid(out.dims.count()? / 8),
            &up,
            &op,
            &ci,
            &t,
            &h,
            &w,
            &zi,
            &dr
        )?;
        Ok(out)
    }

    fn attention(
        &mut self,
        x: &Act<GpuBuf<E>>,
        a: &AttnWeights<GpuBuf<E>>,
    ) -> Result<Act<GpuBuf<E>>> {
        let d = x.dims;
        let c = a.c;
        shapes::attention(d, c)?;
        let nrm = self.act(d, 0)?;
        let st = self.stats(x, &a.norm)?;
        self.norm_with(x, &st, false, (0, d.h), self.ptr(&nrm.buf))?;
        drop(st);
        let p = d.plane();
        let out = self.act(d, 0)?;
        self.copy_frames(x, 0, self.ptr(&out.buf), 0, d.t)?;
        // Column-major views of channels-last frames: a frame's tokens are the C×P matrix at
        // `frame` (ld C), and so are Q, K, V, the mix and the output; scores come in blocks of
        // queries, each query's keys contiguous for the softmax.
        let [q, k, v, mixed, o] = [(); 5].map(|()| self.alloc::<E>(p * c));
        let (q, k, v, mixed, o) = (q?, k?, v?, mixed?, o?);
        let ptr = |b: &CudaSlice<E>| b.device_ptr(&self.stream).0;
        let (qp, kp, vp, mp, op) = (ptr(&q), ptr(&k), ptr(&v), ptr(&mixed), ptr(&o));
        let qb = score_block(p);
        let scores = self.alloc::<f32>(p * qb)?;
        let probs = self.alloc::<E>(p * qb)?;
        let (sp, pp) = (scores.device_ptr(&self.stream).0, ptr(&probs));
        let es = size_of::<E>() as u64;
        let scale = 1.0 / (c as f32).sqrt();
        for t in 0..d.t {
            let at = (t * p * c) as u64 * es;
            let frame = self.ptr(&nrm.buf) + at;
            for (wb, dst) in [(&a.q, qp), (&a.k, kp), (&a.v, vp)] {
                // Q^T = W · X^T (W stored [out, in]: column-major in × out, transposed).
                self.gemm(
                    true,
                    false,
                    (c, p, c),
                    (self.ptr(&wb.0), c),
                    (frame, c),
                    (dst, c),
                    E::CUDA_R,
                )?;
                self.bias(dst, &wb.1, c, p * c)?;
            }
            for q0 in (0..p).step_by(qb) {
                let nq = qb.min(p - q0);
                let qs = qp + (q0 * c) as u64 * es;
                // S'(j, i) = Σ_c K(j, c) Q(q0 + i, c): keys down, this block's queries across.
                self.gemm(
                    true,
                    false,
                    (p, nq, c),
                    (kp, c),
                    (qs, c),
                    (sp, p),
                    ffi::CUDA_R_32F,
                )?;
                let (pi, cols) = (p as i32, nq as i32);
                let cfg = LaunchConfig {
                    grid_dim: (nq as u32, 1, 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                };
                launch!(
                    self,
                    softmax_columns,
                    cfg,
                    &scores,
                    &probs,
                    &pi,
                    &cols,
                    &scale
                )?;
                // The mix of this block's queries: A(c, i) = Σ_j V(j, c) P'(j, i).
                let ms = mp + (q0 * c) as u64 * es;
                self.gemm(
                    false,
                    false,
                    (c, nq, p),
                    (vp, c),
                    (pp, p),
                    (ms, c),
                    E::CUDA_R,
                )?;
            }
            self.gemm(
                true,
                false,
                (c, p, c),
                (self.ptr(&a.o.0), c),
                (mp, c),
                (op, c),
                E::CUDA_R,
            )?;
            let (dst, bo, ci, n) = (
                self.ptr(&out.buf) + at,
                self.ptr(&a.o.1),
                c as i32,
                (p * c) as i64,
            );
            launch!(self, add_bias_into, Grid(p * c), &dst, &op, &bo, &ci, &n)?;
        }
        Ok(out)
    }

    fn max_elements(&self) -> Option<usize> {
        Some(i32::MAX as usize)
    }

    fn value_bytes(&self) -> usize {
        size_of::<E>()
    }

    fn measured_peak(&self) -> Option<u64> {
        self.peak_bytes().ok()
    }

    fn reset_measured_peak(&mut self) -> Result<()> {
        self.reset_peak()
    }

    fn keep_parked(&mut self, bytes: usize) -> usize {
        let mut pool = self.parking.lock().unwrap_or_else(|e| e.into_inner());
        pool.keep = bytes;
        pool.trim();
        pool.bytes()
    }

    fn synchronize(&mut self) -> Result<()> {
        self.empty_outbox()?;
        self.stream.synchronize().map_err(driver("synchronize"))?;
        // The copy streams' work was all waited for by the compute stream's, or is a copy out
        // of a buffer already freed after it: nothing of theirs is left but events.
        self.down.synchronize().map_err(driver("synchronize"))?;
        self.up.synchronize().map_err(driver("synchronize"))
    }

    fn frames(&mut self, x: &Act<GpuBuf<E>>, t0: usize, t1: usize) -> Result<Act<GpuBuf<E>>> {
        shapes::frames(x.dims, t0, t1)?;
        let out = self.act(
            Dims {
                t: t1 - t0,
                ..x.dims
            },
            0,
        )?;
        self.copy_frames(x, t0, self.ptr(&out.buf), 0, t1 - t0)?;
        Ok(out)
    }

    fn concat(&mut self, parts: &[Act<GpuBuf<E>>]) -> Result<Act<GpuBuf<E>>> {
        let dims = shapes::concat(&parts.iter().map(|a| a.dims).collect::<Vec<_>>())?;
        let out = self.act(dims, 0)?;
        let o = self.ptr(&out.buf);
        let mut at = 0;
        for a in parts {
            self.copy_frames(a, 0, o, at, a.dims.t)?;
            at += a.dims.t;
        }
        Ok(out)
    }

    fn channels(&mut self, x: &Act<GpuBuf<E>>, n: usize) -> Result<Act<GpuBuf<E>>> {
        let d = x.dims;
        shapes::channels(d, n)?;
        let out = self.act(Dims { c: n, ..d }, 0)?;
        let (src, dst, cs, ni, px) = (
            self.ptr(&x.buf),
            self.ptr(&out.buf),
            d.c as i32,
            n as i32,
            (d.t * d.plane()) as i64,
        );
        launch!(
            self,
            take_channels,
            Grid(out.dims.count()?),
            &src,
            &dst,
            &cs,
            &ni,
            &px
        )?;
        Ok(out)
    }

    type Parked = Parked;

    fn park(&mut self, a: Act<GpuBuf<E>>) -> Result<Parked> {
        let mut p = self.park_empty(a.dims)?;
        let h = a.dims.h;
        self.park_band(&mut p, a, 0, 0, h)?;
        Ok(p)
    }

    fn unpark(&mut self, p: Parked) -> Result<Act<GpuBuf<E>>> {
        let d = p.dims;
        self.unpark_part(&p, (0, d.t), (0, d.h))
    }

    fn park_empty(&mut self, dims: Dims) -> Result<Parked> {
        let bytes = dims.count()? * size_of::<E>();
        let pooled = {
            // A panic while the lock was held (none is reachable) leaves the pool to be rebuilt.
            let mut pool = self.parking.lock().unwrap_or_else(|e| e.into_inner());
            let best = pool
                .free
                .iter()
                .enumerate()
                .filter(|(_, h)| h.0.len() >= bytes)
                .min_by_key(|(_, h)| h.0.len())
                .map(|(i, _)| i);
            best.map(|i| pool.free.swap_remove(i))
        };
        let (host, written, read) = match pooled {
            Some(p) => p,
            None => (self.host_mem(bytes)?, None, None),
        };
        Ok(Parked {
            host: Some(host),
            dims,
            written,
            read: Cell::new(read),
            pool: Arc::downgrade(&self.parking),
        })
    }

    fn park_band(
        &mut self,
        dst: &mut Parked,
        src: Act<GpuBuf<E>>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> Result<()> {
        let from = self.ptr(&src.buf);
        let done = self.copy_to_host(dst, from, src.dims, s0, d0, n)?;
        // `src` itself is what the copy reads: held until it is surely done.
        self.hold_for_copy(src.buf, done)
    }

    fn unpark_part(
        &mut self,
        p: &Parked,
        (t0, t1): (usize, usize),
        (r0, r1): (usize, usize),
    ) -> Result<Act<GpuBuf<E>>> {
        let d = p.dims;
        shapes::frames(d, t0, t1)?;
        shapes::rows(d, r0, r1)?;
        let (n, row) = (r1 - r0, d.w * d.c * size_of::<E>());
        let a = self.act(
            Dims {
                t: t1 - t0,
                h: n,
                ..d
            },
            0,
        )?;
        // The copy on the upload stream once the buffer is the new activation's (after the
        // compute stream's work so far) and the state is all in host memory; the compute
        // stream waits for it at the activation's first use. A band fetched before the
        // previous band's conv is queued so arrives while that conv runs.
        let ap = a.buf.mem.device_ptr(&self.stream).0 + (a.buf.room * size_of::<E>()) as u64;
        let made = self.stream.record_event(None).map_err(driver("unpark"))?;
        self.up.wait(&made).map_err(driver("unpark"))?;
        if let Some(w) = &p.written {
            self.up.wait(w).map_err(driver("unpark"))?;
        }
        let host = p.mem()?.bytes()?;
        let whole = n == d.h;
        let runs = if whole { 1 } else { t1 - t0 };
        let len = if whole { (t1 - t0) * n * row } else { n * row };
        for i in 0..runs {
            let from = ((t0 + i) * d.h + r0) * row;
            // SAFETY: both ranges lie inside their buffers (the extents checked above); the
            // host buffer is written next only by a copy that waits for `read`, the device
            // buffer read only after `arrival`.
            unsafe {
                cudarc::driver::result::memcpy_htod_async(
                    ap + (i * n * row) as u64,
                    &host[from..from + len],
                    self.up.cu_stream(),
                )
            }
            .map_err(driver("unpark"))?;
        }
        a.buf
            .arrival
            .set(Some(self.up.record_event(None).map_err(driver("unpark"))?));
        p.read
            .set(Some(self.up.record_event(None).map_err(driver("unpark"))?));
        Ok(a)
    }
}

impl<E: Elem> Cuda<E> {
    /// `bytes` of host memory for parked states: page-locked while the system gives it, then
    /// pageable (said once), an error naming the size when there is none.
    fn host_mem(&mut self, bytes: usize) -> Result<HostMem> {
        if !self.pageable {
            // SAFETY: page-locked host memory only the GPU's copies touch (ordered by events).
            match unsafe { self._ctx.alloc_pinned_with_flags::<u8>(bytes, 0) } {
                Ok(h) => return Ok(HostMem::Locked(h)),
                Err(e) => {
                    tracing::warn!(
                        "cannot page-lock {} MB more host memory ({e}): the states parked from \
                         here on go to pageable memory (copies slower, results the same)",
                        bytes >> 20
                    );
                    self.pageable = true;
                }
            }
        }
        let mut v = Vec::new();
        v.try_reserve_exact(bytes).map_err(|_| {
            Error::Device(format!(
                "cannot allocate {} MB of host memory for a parked activation",
                bytes >> 20
            ))
        })?;
        v.resize(bytes, 0);
        Ok(HostMem::Pageable(v))
    }

    /// Rows `[s0, s0 + n)` of the activation of `sd` at device address `src` into rows
    /// `[d0, d0 + n)` of `dst`, on the download stream after the compute stream's work so far
    /// (and after the host buffer's last copy out); the event after the copy.
    fn copy_to_host(
        &mut self,
        dst: &mut Parked,
        src: u64,
        sd: Dims,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> Result<CudaEvent> {
        let dd = dst.dims;
        shapes::put_rows(dd, sd, s0, d0, n)?;
        let row = sd.w * sd.c * size_of::<E>();
        let made = self.stream.record_event(None).map_err(driver("park"))?;
        self.down.wait(&made).map_err(driver("park"))?;
        if let Some(r) = dst.read.take() {
            self.down.wait(&r).map_err(driver("park"))?;
        }
        let host = dst.mem_mut()?.bytes_mut()?;
        // Channels-last frames: a frame's rows are one run of bytes, so a copy per frame (one
        // in all when every row goes).
        let runs = if n == sd.h && n == dd.h { 1 } else { sd.t };
        let len = if runs == 1 { sd.t * n * row } else { n * row };
        for t in 0..runs {
            let from = (t * sd.h + s0) * row;
            let to = (t * dd.h + d0) * row;
            // SAFETY: both ranges lie inside their buffers (the extents checked above); the host
            // never reads this memory, its next copy out waits for `written`, and the device
            // buffer is held until the event returned.
            unsafe {
                cudarc::driver::result::memcpy_dtoh_async(
                    &mut host[to..to + len],
                    src + from as u64,
                    self.down.cu_stream(),
                )
            }
            .map_err(driver("park"))?;
        }
        dst.written = Some(self.down.record_event(None).map_err(driver("park"))?);
        self.down.record_event(None).map_err(driver("park"))
    }

    /// Keep `buf` until its copy to host memory (`done`) has surely finished: the compute
    /// stream waits for a copy only when its buffer leaves the outbox.
    fn hold_for_copy(&mut self, buf: GpuBuf<E>, done: CudaEvent) -> Result<()> {
        let bytes = buf.mem.len() * size_of::<E>();
        for (b, ev) in self.outbox.push((buf, done), bytes) {
            self.stream.wait(&ev).map_err(driver("park"))?;
            drop(b);
        }
        Ok(())
    }

    /// Let every held buffer go, after its copy.
    fn empty_outbox(&mut self) -> Result<()> {
        for (b, ev) in self.outbox.drain() {
            self.stream.wait(&ev).map_err(driver("park"))?;
            drop(b);
        }
        Ok(())
    }
}

/// A tuned-plans line: the geometry's ten numbers, the chosen candidate and how many there were.
fn tuned_line(g: &Geometry, i: usize, n: usize) -> String {
    let x = g.x;
    format!(
        "{} {} {} {} {} {} {} {} {} {} {i} {n}\n",
        x.c, x.t, x.h, x.w, g.cout, g.kt, g.ks, g.st, g.ss, g.p
    )
}

/// The tuned plans recorded in `file` (none when it is missing; unreadable lines are skipped:
/// a record only saves time).
fn read_tuned(file: &Path) -> HashMap<Geometry, (usize, usize)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let v: Vec<usize> = l
                .split(' ')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            let [c, t, h, w, cout, kt, ks, st, ss, p, i, n] = v[..] else {
                return None;
            };
            let geo = Geometry {
                x: Dims::new(c, t, h, w),
                cout,
                kt,
                ks,
                st,
                ss,
                p,
            };
            Some((geo, (i, n)))
        })
        .collect()
}

/// The family engines recorded in `file`: lines `engine c w cout kt ks st ss p index
/// type:value …` (unreadable lines skipped; the first line of a family counts).
fn read_engines(file: &Path) -> HashMap<Geometry, EngineId> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut out = HashMap::new();
    for l in text.lines() {
        let mut w = l.split(' ');
        if w.next() != Some("engine") {
            continue;
        }
        let v: Option<Vec<usize>> = w.by_ref().take(8).map(|n| n.parse().ok()).collect();
        let (Some([c, width, cout, kt, ks, st, ss, p]), Some(id)) = (
            v.and_then(|v| <[usize; 8]>::try_from(v).ok()),
            EngineId::from_words(w),
        ) else {
            continue;
        };
        let family = Geometry {
            x: Dims::new(c, 0, 0, width),
            cout,
            kt,
            ks,
            st,
            ss,
            p,
        };
        out.entry(family).or_insert(id);
    }
    out
}

/// Record the engine of a conv family (as [`append_tuned`]).
fn append_engine(file: &Path, g: &Geometry, id: &EngineId) {
    let x = g.x;
    append_line(
        file,
        &format!(
            "engine {} {} {} {} {} {} {} {} {}\n",
            x.c,
            x.w,
            g.cout,
            g.kt,
            g.ks,
            g.st,
            g.ss,
            g.p,
            id.to_words()
        ),
    );
}

/// Record a tuned plan (appended: processes that tune at once add whole lines; a cache that
/// cannot be written only means timing again next time).
fn append_tuned(file: &Path, g: &Geometry, i: usize, n: usize) {
    append_line(file, &tuned_line(g, i, n));
}

fn append_line(file: &Path, line: &str) {
    use std::io::Write;
    let _ = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
        })
        .and_then(|mut f| f.write_all(line.as_bytes()));
}

/// Can the CUDA device open here: a driver, and NVRTC, cuDNN and cuBLAS found (`o.lib_dirs`
/// first, then the system's search)? Loads the libraries; makes no context, allocates nothing.
pub fn cuda_ready(o: &CudaOptions) -> Result<()> {
    // SAFETY: only tries to load the driver library.
    if !unsafe { sys::is_culib_present() } {
        return Err(Error::Device(
            "no NVIDIA driver found (libcuda / nvcuda.dll is not installed)".into(),
        ));
    }
    ffi::Nvrtc::open(&o.lib_dirs)?;
    ffi::Cudnn::open(&o.lib_dirs)?;
    ffi::Cublas::open(&o.lib_dirs)?;
    Ok(())
}

/// The folders the `nvidia-*` wheels put their libraries in under a site-packages folder.
pub fn wheel_lib_dirs(site_packages: &Path) -> Vec<PathBuf> {
    let sub = if cfg!(windows) { "bin" } else { "lib" };
    let Ok(rd) = std::fs::read_dir(site_packages.join("nvidia")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path().join(sub))
        .filter(|d| d.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parked state of `bytes` in pageable memory whose buffer goes to `pool` when dropped.
    fn parked(bytes: usize, pool: &Arc<Mutex<Pool>>) -> Parked {
        Parked {
            host: Some(HostMem::Pageable(vec![0; bytes])),
            dims: Dims::new(1, 1, 1, bytes),
            written: None,
            read: None.into(),
            pool: Arc::downgrade(pool),
        }
    }

    /// Dropped parked states give their memory to the device's pool up to what it keeps; a new
    /// plan's keep frees the smallest first; once the device is gone they free it themselves.
    #[test]
    fn the_parking_pool_keeps_what_the_plan_parks_and_no_more() {
        let pool: Arc<Mutex<Pool>> = Arc::default();
        let sizes = |p: &Arc<Mutex<Pool>>| {
            let mut v: Vec<usize> = p.lock().unwrap().free.iter().map(|f| f.0.len()).collect();
            v.sort_unstable();
            v
        };
        for b in [10, 20, 30] {
            drop(parked(b, &pool));
        }
        assert_eq!(sizes(&pool), [10, 20, 30]);
        {
            let mut p = pool.lock().unwrap();
            p.keep = 35;
            p.trim();
        }
        assert_eq!(
            sizes(&pool),
            [30],
            "the smallest freed first, down to the keep"
        );
        drop(parked(10, &pool));
        assert_eq!(sizes(&pool), [30], "beyond the keep: freed, not pooled");
        drop(parked(5, &pool));
        assert_eq!(sizes(&pool), [5, 30]);
        let orphan = parked(7, &pool);
        drop(pool);
        drop(orphan); // the device gone: freed by the state itself
    }

    /// Tuned plans come back as they were recorded; a damaged line is passed over.
    #[test]
    fn tuned_plans_and_family_engines_are_read_back_as_recorded() {
        let dir = std::env::temp_dir().join(format!("seedvae-tuned-{}", std::process::id()));
        let file = dir.join("conv-plans-test.txt");
        let _ = std::fs::remove_file(&file);
        let g = Geometry {
            x: Dims::new(128, 6, 720, 1248),
            cout: 128,
            kt: 3,
            ks: 3,
            st: 1,
            ss: 1,
            p: 1,
        };
        let g2 = Geometry { cout: 8, ..g };
        append_tuned(&file, &g, 4, 6);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"12 x 3\n"))
            .unwrap();
        append_tuned(&file, &g2, 0, 2);
        // Engines by family, among the plans: the first line of a family counts.
        let id = EngineId {
            index: 57,
            knobs: vec![(3, 1), (11, -2)],
        };
        append_engine(&file, &g.family(), &id);
        append_engine(
            &file,
            &g.family(),
            &EngineId {
                index: 9,
                knobs: vec![],
            },
        );
        append_engine(
            &file,
            &g2.family(),
            &EngineId {
                index: 0,
                knobs: vec![],
            },
        );
        let t = read_tuned(&file);
        assert_eq!(t.len(), 2);
        assert_eq!(t[&g], (4, 6));
        assert_eq!(t[&g2], (0, 2));
        let e = read_engines(&file);
        assert_eq!(e.len(), 2);
        // A band or frame group of the conv is of the same family.
        let band = Geometry {
            x: Dims::new(128, 3, 90, 1248),
            ..g
        };
        assert_eq!(e[&band.family()], id);
        assert_eq!(e[&g2.family()].index, 0);
        assert!(read_tuned(&dir.join("missing.txt")).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The CUDA device: the layers on an NVIDIA GPU — convolutions through cuDNN (its fastest
//! algorithm found once per shape and kept), the attention's products through cuBLAS, the rest
//! as seedvae's own kernels (`kernels/vae.cu`, compiled by NVRTC for this GPU at first use and
//! cached). Activations `[C, T, H, W]` as on the reference device, stored as the element `E`:
//! `f32` (fp32 arithmetic without TF32: held to the reference device) or `half::f16` (tensor
//! cores, fp32 accumulation, GroupNorm statistics in f64, softmax in f32).
//!
//! The CUDA driver comes through cudarc (loaded at run time); NVRTC, cuDNN and cuBLAS through
//! [`ffi`] from the folders the caller names (the `nvidia-*` wheels) or the system's search.

mod ffi;
mod kernels;

use super::{shapes, Act, AttnWeights, ConvWeights, Device, Dims, NormWeights, Pad};
use crate::{Error, Result};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};
use seedvae_weights::schema::{NORM_EPS, NORM_GROUPS};
use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// cuDNN's math: FMA for f32 (no TF32), tensor cores for f16.
    const MATH: i32;
    fn of(v: f32) -> Self;
    fn f32(self) -> f32;
}

impl Elem for f32 {
    const NAME: &'static str = "f32";
    const CUDNN: i32 = ffi::CUDNN_DATA_FLOAT;
    const CUDA_R: i32 = ffi::CUDA_R_32F;
    const MATH: i32 = ffi::CUDNN_FMA_MATH;
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
    const MATH: i32 = ffi::CUDNN_TENSOR_OP_MATH;
    fn of(v: f32) -> half::f16 {
        half::f16::from_f32(v)
    }
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

/// A conv's cuDNN descriptors and chosen algorithm, for one input shape.
struct ConvPlan {
    x: ffi::Desc,
    w: ffi::Desc,
    conv: ffi::Desc,
    y: ffi::Desc,
    algo: i32,
    workspace: usize,
    out: Dims,
}

type ConvKey = (usize, usize, usize, usize, usize, usize, usize, usize, bool);

/// GPU 0, activations stored as `E`.
pub struct Cuda<E: Elem = f32> {
    /// Kept for the stream, kernels and buffers made in it.
    _ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    cudnn: ffi::Cudnn,
    cudnn_handle: ffi::Handle,
    cublas: ffi::Cublas,
    cublas_handle: ffi::Handle,
    k: kernels::Kernels,
    plans: HashMap<ConvKey, ConvPlan>,
    workspace: Option<CudaSlice<u8>>,
    _elem: std::marker::PhantomData<E>,
    /// The GPU's name and compute capability.
    pub name: String,
    pub compute_capability: (i32, i32),
}

// SAFETY: the cuDNN and cuBLAS handles and descriptors are used only through `&mut self`, one
// thread at a time (NVIDIA: a handle may move between threads; it must not be used by two at
// once); the driver objects are cudarc's `Send` types.
unsafe impl<E: Elem> Send for Cuda<E> {}

fn driver(what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| Error::Device(format!("CUDA {what}: {e}"))
}

/// Launch the grid-stride kernel `$f` over `$n` elements with the arguments its declaration in
/// kernels/vae.cu lists.
macro_rules! launch {
    ($dev:expr, $f:expr, $n:expr, $($arg:expr),+ $(,)?) => {{
        let mut b = $dev.stream.launch_builder($f);
        $( b.arg($arg); )+
        // SAFETY: the arguments are the kernel's, in order; every index stays in its buffer.
        unsafe { b.launch(grid($n)) }.map_err(driver("kernel launch")).map(|_| ())
    }};
}

/// GPU 0's primary context, retained once for the process: a cudarc context dropped releases the
/// primary context while it stays current on the thread, and a device opened after it then
/// computed garbage without an error (seen on the H200: the second device of a process).
fn gpu0() -> Result<Arc<CudaContext>> {
    static CTX: std::sync::OnceLock<std::result::Result<Arc<CudaContext>, String>> =
        std::sync::OnceLock::new();
    CTX.get_or_init(|| CudaContext::new(0).map_err(|e| format!("CUDA: open GPU 0: {e}")))
        .clone()
        .map_err(Error::Device)
}

/// Extents and strides as cuDNN takes them: 32-bit, or an error (a wrapped stride would make
/// cuDNN read the wrong values, not fail).
fn i32s(v: &[usize]) -> Result<Vec<i32>> {
    v.iter()
        .map(|&d| i32::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Shape(format!("{v:?} is past cuDNN's 32-bit indexing")))
}

/// A cuDNN descriptor of a contiguous 5-D tensor of `E` with extents `d`.
fn tensor_desc<E: Elem>(c: &ffi::Cudnn, d: &[usize; 5], what: &str) -> Result<ffi::Desc> {
    let mut strides = [1usize; 5];
    for i in (0..4).rev() {
        strides[i] = strides[i + 1] * d[i + 1];
    }
    // The whole tensor too: cuDNN's offsets are 32-bit.
    i32s(&[strides[0] * d[0]])?;
    let (dims, strides) = (i32s(d)?, i32s(&strides)?);
    let mut desc = std::ptr::null_mut();
    // SAFETY: arrays of 5; the descriptor is destroyed here on failure, else with the plan.
    unsafe {
        c.check((c.create_tensor)(&mut desc), what)?;
        let r = c.check(
            (c.set_tensor_nd)(desc, E::CUDNN, 5, dims.as_ptr(), strides.as_ptr()),
            what,
        );
        if r.is_err() {
            (c.destroy_tensor)(desc);
        }
        r?;
    }
    Ok(desc)
}

/// Fill `plan` with the descriptors of a conv of `w` over `x` (strides `st`, `ss`, spatial pad
/// `p`) and the fastest algorithm cuDNN finds for it; what was made stays in `plan` either way,
/// for [`destroy`].
fn describe<E: Elem>(
    c: &ffi::Cudnn,
    handle: ffi::Handle,
    plan: &mut ConvPlan,
    x: Dims,
    w: &ConvWeights<CudaSlice<E>>,
    (st, ss, p): (usize, usize, usize),
) -> Result<()> {
    let xd = [1, x.c, x.t, x.h, x.w];
    let wd = [w.cout, w.cin, w.kt, w.ks, w.ks];
    let o = plan.out;
    let wd32 = i32s(&wd)?;
    plan.x = tensor_desc::<E>(c, &xd, "input descriptor")?;
    plan.y = tensor_desc::<E>(c, &[1, o.c, o.t, o.h, o.w], "output descriptor")?;
    // SAFETY: descriptor calls with arrays of the stated lengths; each descriptor is kept in
    // `plan` as soon as it exists.
    unsafe {
        c.check((c.create_filter)(&mut plan.w), "filter descriptor")?;
        c.check(
            (c.set_filter_nd)(plan.w, E::CUDNN, ffi::CUDNN_TENSOR_NCHW, 5, wd32.as_ptr()),
            "filter descriptor",
        )?;
        c.check((c.create_conv)(&mut plan.conv), "conv descriptor")?;
        let pads = [0, p as i32, p as i32];
        let stride = [st as i32, ss as i32, ss as i32];
        let dil = [1i32; 3];
        c.check(
            (c.set_conv_nd)(
                plan.conv,
                3,
                pads.as_ptr(),
                stride.as_ptr(),
                dil.as_ptr(),
                ffi::CUDNN_CROSS_CORRELATION,
                ffi::CUDNN_DATA_FLOAT,
            ),
            "conv descriptor",
        )?;
        c.check((c.set_conv_math)(plan.conv, E::MATH), "conv math type")?;
    }
    let mut found = [ffi::FwdAlgoPerf::default(); 8];
    let mut n = 0;
    // SAFETY: cuDNN allocates what it benchmarks with; `found` holds 8 results.
    c.check(
        unsafe {
            (c.find_fwd)(
                handle,
                plan.x,
                plan.w,
                plan.conv,
                plan.y,
                8,
                &mut n,
                found.as_mut_ptr(),
            )
        },
        "algorithm search",
    )?;
    let best = found[..n.max(0) as usize]
        .iter()
        .find(|f| f.status == 0)
        .ok_or_else(|| {
            Error::Device(format!(
                "cuDNN has no algorithm for a conv of {wd:?} on {xd:?}"
            ))
        })?;
    plan.algo = best.algo;
    // SAFETY: as above.
    c.check(
        unsafe {
            (c.fwd_workspace)(
                handle,
                plan.x,
                plan.w,
                plan.conv,
                plan.y,
                plan.algo,
                &mut plan.workspace,
            )
        },
        "workspace size",
    )
}

/// Destroy the descriptors `plan` holds (each once; those never made are null).
fn destroy(c: &ffi::Cudnn, plan: &ConvPlan) {
    // SAFETY: each non-null descriptor was made once for this plan and is destroyed once, here.
    unsafe {
        for d in [plan.x, plan.y] {
            if !d.is_null() {
                (c.destroy_tensor)(d);
            }
        }
        if !plan.w.is_null() {
            (c.destroy_filter)(plan.w);
        }
        if !plan.conv.is_null() {
            (c.destroy_conv)(plan.conv);
        }
    }
}

/// A grid-stride launch over `n` elements.
fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 65535 * 8) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl<E: Elem> Cuda<E> {
    /// Open GPU 0: the driver, NVRTC (the kernels compiled or read from the cache), cuDNN and
    /// cuBLAS on one stream. Every failure is an error saying what is missing.
    pub fn open(o: &CudaOptions) -> Result<Self> {
        // SAFETY: only tries to load the driver library; no driver call is made without it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::Device(
                "no NVIDIA driver found (libcuda / nvcuda.dll is not installed)".into(),
            ));
        }
        let ctx = gpu0()?;
        let stream = ctx.default_stream();
        let cc = ctx
            .compute_capability()
            .map_err(driver("compute capability"))?;
        let name = ctx.name().unwrap_or_else(|_| "GPU 0".into());
        let nvrtc = ffi::Nvrtc::open(&o.lib_dirs)?;
        let k = kernels::Kernels::load(&ctx, &nvrtc, cc, E::NAME, o.kernel_cache.as_deref())?;
        let cudnn = ffi::Cudnn::open(&o.lib_dirs)?;
        let cublas = ffi::Cublas::open(&o.lib_dirs)?;
        let raw_stream = stream.cu_stream() as *mut c_void;
        let mut cudnn_handle = std::ptr::null_mut();
        // SAFETY: plain handle creation; the stream outlives the handles (both live in `Cuda`).
        cudnn.check(unsafe { (cudnn.create)(&mut cudnn_handle) }, "create")?;
        cudnn.check(
            unsafe { (cudnn.set_stream)(cudnn_handle, raw_stream) },
            "set stream",
        )?;
        let mut cublas_handle = std::ptr::null_mut();
        ffi::Cublas::check(unsafe { (cublas.create)(&mut cublas_handle) }, "create")?;
        ffi::Cublas::check(
            unsafe { (cublas.set_stream)(cublas_handle, raw_stream) },
            "set stream",
        )?;
        tracing::info!(
            "CUDA device: {name} (compute capability {}.{}); NVRTC {}, cuDNN {} ({}), cuBLAS {}",
            cc.0,
            cc.1,
            nvrtc.path.display(),
            cudnn.path.display(),
            // SAFETY: a plain query.
            unsafe { (cudnn.version)() },
            cublas.path.display()
        );
        Ok(Self {
            _ctx: ctx,
            stream,
            cudnn,
            cudnn_handle,
            cublas,
            cublas_handle,
            k,
            plans: HashMap::new(),
            workspace: None,
            _elem: std::marker::PhantomData,
            name,
            compute_capability: cc,
        })
    }

    fn alloc<T: Elem>(&self, n: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(n.max(1)).map_err(|e| {
            Error::Device(format!(
                "cannot allocate {} MB on the GPU: {e}",
                (n * std::mem::size_of::<T>()) >> 20
            ))
        })
    }

    fn ptr<T: Elem>(&self, b: &CudaSlice<T>) -> u64 {
        b.device_ptr(&self.stream).0
    }

    fn act(&self, dims: Dims) -> Result<Act<CudaSlice<E>>> {
        Ok(Act {
            buf: self.alloc::<E>(dims.count()?)?,
            dims,
        })
    }

    /// Frames `[t0, t0 + n)` of `src` into frames `[d0, …)` of `dst` (same channels and size).
    fn copy_frames(
        &self,
        src: &Act<CudaSlice<E>>,
        t0: usize,
        dst: &mut Act<CudaSlice<E>>,
        d0: usize,
        n: usize,
    ) -> Result<()> {
        let (s, d) = (src.dims, dst.dims);
        let count = s.c * n * s.plane();
        let (st, dt, t0, d0, n, c, p) = (
            s.t as i32,
            d.t as i32,
            t0 as i32,
            d0 as i32,
            n as i32,
            s.c as i32,
            s.plane() as i32,
        );
        let mut b = self.stream.launch_builder(&self.k.copy_frames);
        b.arg(&src.buf)
            .arg(&st)
            .arg(&t0)
            .arg(&mut dst.buf)
            .arg(&dt)
            .arg(&d0);
        b.arg(&n).arg(&c).arg(&p);
        // SAFETY: the kernel's arguments match kernels/vae.cu; every index stays in its buffer.
        unsafe { b.launch(grid(count)) }.map_err(driver("copy_frames"))?;
        Ok(())
    }

    /// The cuDNN plan for a conv of `w` over an input `[cin, t, h, w]` (pads `p` all round).
    fn plan(
        &mut self,
        x: Dims,
        w: &ConvWeights<CudaSlice<E>>,
        st: usize,
        ss: usize,
        p: usize,
    ) -> Result<ConvKey> {
        let key: ConvKey = (x.c, w.cout, w.kt, w.ks, x.t, x.h, x.w, st, ss == 2);
        if self.plans.contains_key(&key) {
            return Ok(key);
        }
        let to = (x.t - w.kt) / st + 1;
        let ho = (x.h + 2 * p - w.ks) / ss + 1;
        let wo = (x.w + 2 * p - w.ks) / ss + 1;
        let null = std::ptr::null_mut();
        let mut plan = ConvPlan {
            x: null,
            w: null,
            conv: null,
            y: null,
            algo: 0,
            workspace: 0,
            out: Dims::new(w.cout, to, ho, wo),
        };
        match describe::<E>(&self.cudnn, self.cudnn_handle, &mut plan, x, w, (st, ss, p)) {
            Ok(()) => {
                self.plans.insert(key, plan);
                Ok(key)
            }
            Err(e) => {
                destroy(&self.cudnn, &plan);
                Err(e)
            }
        }
    }

    /// cuBLAS `C = op(A)·op(B)` (column-major; A and B stored as `E`, C as `c_type`; fp32
    /// accumulation, no TF32) on raw device pointers.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        a: u64,
        lda: usize,
        b: u64,
        ldb: usize,
        c: u64,
        ldc: usize,
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
}

impl<E: Elem> Drop for Cuda<E> {
    fn drop(&mut self) {
        let _ = self.stream.synchronize();
        for p in self.plans.values() {
            destroy(&self.cudnn, p);
        }
    }
}

impl<E: Elem> Device for Cuda<E> {
    type Buf = CudaSlice<E>;

    fn constant(&mut self, v: &[f32]) -> Result<CudaSlice<E>> {
        let host: Vec<E> = v.iter().map(|&x| E::of(x)).collect();
        self.stream
            .clone_htod(&host)
            .map_err(driver("copy weights"))
    }

    fn upload(&mut self, v: &[f32], dims: Dims) -> Result<Act<CudaSlice<E>>> {
        shapes::upload(v.len(), dims)?;
        let host: Vec<E> = v.iter().map(|&x| E::of(x)).collect();
        Ok(Act {
            buf: self.stream.clone_htod(&host).map_err(driver("upload"))?,
            dims,
        })
    }

    fn download(&mut self, a: &Act<CudaSlice<E>>) -> Result<Vec<f32>> {
        let v = self.stream.clone_dtoh(&a.buf).map_err(driver("download"))?;
        Ok(v[..a.dims.count()?].iter().map(|x| x.f32()).collect())
    }

    fn conv(
        &mut self,
        x: &Act<CudaSlice<E>>,
        head: Option<&Act<CudaSlice<E>>>,
        w: &ConvWeights<CudaSlice<E>>,
        st: usize,
        pad: Pad,
    ) -> Result<Act<CudaSlice<E>>> {
        let d = x.dims;
        shapes::conv(d, head.map(|h| h.dims), w.cin, w.kt)?;
        // The input cuDNN reads: [head ; x] joined in time, then padded right/bottom.
        let joined = match head {
            Some(h) => {
                let mut j = self.act(Dims {
                    t: h.dims.t + d.t,
                    ..d
                })?;
                self.copy_frames(h, 0, &mut j, 0, h.dims.t)?;
                self.copy_frames(x, 0, &mut j, h.dims.t, d.t)?;
                Some(j)
            }
            None => None,
        };
        let input = joined.as_ref().unwrap_or(x);
        let padded = match pad {
            Pad::Same => None,
            Pad::RightBottom => {
                let i = input.dims;
                let mut p = self.act(Dims::new(i.c, i.t, i.h + 1, i.w + 1))?;
                let (ct, h, wd) = ((i.c * i.t) as i32, i.h as i32, i.w as i32);
                let n = p.dims.count()?;
                let f = self.k.pad_right_bottom.clone();
                launch!(self, &f, n, &input.buf, &mut p.buf, &ct, &h, &wd)?;
                Some(p)
            }
        };
        let input = padded.as_ref().unwrap_or(input);
        let (ss, p) = match pad {
            Pad::Same => (1, w.ks / 2),
            Pad::RightBottom => (2, 0),
        };
        let key = self.plan(input.dims, w, st, ss, p)?;
        let (out_dims, ws_need) = {
            let pl = &self.plans[&key];
            (pl.out, pl.workspace)
        };
        if self.workspace.as_ref().is_none_or(|b| b.len() < ws_need) {
            self.workspace = None;
            self.workspace = Some(
                self.stream
                    .alloc_zeros::<u8>(ws_need.max(1))
                    .map_err(driver("conv workspace"))?,
            );
        }
        let mut y = self.act(out_dims)?;
        let (one, zero) = (1f32, 0f32);
        let pl = &self.plans[&key];
        let ws = self.workspace.as_ref().expect("allocated above");
        let (xp, wp, yp, wsp) = (
            self.ptr(&input.buf),
            self.ptr(&w.w),
            self.ptr(&y.buf),
            ws.device_ptr(&self.stream).0,
        );
        let c = &self.cudnn;
        // SAFETY: the descriptors describe these buffers' extents; the workspace holds the
        // size cuDNN asked for this algorithm.
        c.check(
            unsafe {
                (c.forward)(
                    self.cudnn_handle,
                    &one as *const f32 as *const c_void,
                    pl.x,
                    xp as *const c_void,
                    pl.w,
                    wp as *const c_void,
                    pl.conv,
                    pl.algo,
                    wsp as *mut c_void,
                    pl.workspace,
                    &zero as *const f32 as *const c_void,
                    pl.y,
                    yp as *mut c_void,
                )
            },
            "convolution",
        )?;
        let per = (out_dims.t * out_dims.plane()) as i64;
        let cout = w.cout as i32;
        let n = out_dims.count()?;
        let f = self.k.add_bias.clone();
        launch!(self, &f, n, &mut y.buf, &w.b, &cout, &per)?;
        Ok(y)
    }

    fn tail(
        &mut self,
        x: &Act<CudaSlice<E>>,
        head: Option<&Act<CudaSlice<E>>>,
        n: usize,
    ) -> Result<Act<CudaSlice<E>>> {
        let d = x.dims;
        let nh = head.map_or(0, |h| h.dims.t);
        shapes::tail(d, nh, n)?;
        let mut out = self.act(Dims { t: n, ..d })?;
        // The last n of [head ; x]: from x where it has them, the rest from the head's end.
        let from_x = n.min(d.t);
        let from_h = n - from_x;
        if let (Some(h), true) = (head, from_h > 0) {
            self.copy_frames(h, nh - from_h, &mut out, 0, from_h)?;
        }
        self.copy_frames(x, d.t - from_x, &mut out, from_h, from_x)?;
        Ok(out)
    }

    fn repeat_first(&mut self, x: &Act<CudaSlice<E>>, n: usize) -> Result<Act<CudaSlice<E>>> {
        let mut out = self.act(Dims { t: n, ..x.dims })?;
        for i in 0..n {
            self.copy_frames(x, 0, &mut out, i, 1)?;
        }
        Ok(out)
    }

    fn group_norm(
        &mut self,
        x: &Act<CudaSlice<E>>,
        nw: &NormWeights<CudaSlice<E>>,
        silu: bool,
    ) -> Result<Act<CudaSlice<E>>> {
        let d = x.dims;
        let per = shapes::norm(d, nw.c)?;
        let mut acc = self
            .stream
            .alloc_zeros::<f64>(2 * d.t * NORM_GROUPS)
            .map_err(driver("GroupNorm sums"))?;
        let values = per * d.plane();
        let splits = values.div_ceil(256 * 64).clamp(1, 256) as u32;
        let (t, p, per_i, g) = (d.t as i32, d.plane() as i32, per as i32, NORM_GROUPS as i32);
        let mut b = self.stream.launch_builder(&self.k.gn_sums);
        b.arg(&x.buf)
            .arg(&t)
            .arg(&p)
            .arg(&per_i)
            .arg(&g)
            .arg(&mut acc);
        let cfg = LaunchConfig {
            grid_dim: ((d.t * NORM_GROUPS) as u32, splits, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: arguments as gn_sums declares; 256 threads, as its shared arrays assume.
        unsafe { b.launch(cfg) }.map_err(driver("gn_sums"))?;
        let mut y = self.act(d)?;
        let (c, eps, silu) = (d.c as i32, NORM_EPS, silu as i32);
        let n = d.count()?;
        let f = self.k.gn_apply.clone();
        launch!(
            self, &f, n, &x.buf, &mut y.buf, &nw.gamma, &nw.beta, &acc, &c, &t, &p, &per_i, &g,
            &eps, &silu
        )?;
        Ok(y)
    }

    fn add(&mut self, a: &mut Act<CudaSlice<E>>, b: &Act<CudaSlice<E>>) -> Result<()> {
        shapes::add(a.dims, b.dims)?;
        let n = a.dims.count()?;
        let n64 = n as i64;
        let f = self.k.add_into.clone();
        launch!(self, &f, n, &mut a.buf, &b.buf, &n64)
    }

    fn shuffle(
        &mut self,
        u: &Act<CudaSlice<E>>,
        c: usize,
        temporal: bool,
        drop_sub1: bool,
    ) -> Result<Act<CudaSlice<E>>> {
        let z = if temporal { 2 } else { 1 };
        let d = u.dims;
        shapes::shuffle(d, c, z)?;
        let drop = drop_sub1 && d.t * z >= 2;
        let out_dims = Dims::new(c, d.t * z - drop as usize, 2 * d.h, 2 * d.w);
        let mut out = self.act(out_dims)?;
        let (ci, t, h, w, zi, dr) = (
            c as i32,
            d.t as i32,
            d.h as i32,
            d.w as i32,
            z as i32,
            drop as i32,
        );
        let n = out_dims.count()?;
        let f = self.k.shuffle.clone();
        launch!(self, &f, n, &u.buf, &mut out.buf, &ci, &t, &h, &w, &zi, &dr)?;
        Ok(out)
    }

    fn attention(
        &mut self,
        x: &Act<CudaSlice<E>>,
        a: &AttnWeights<CudaSlice<E>>,
    ) -> Result<Act<CudaSlice<E>>> {
        let d = x.dims;
        let c = a.c;
        shapes::attention(d, c)?;
        let nrm = self.group_norm(x, &a.norm, false)?;
        let p = d.plane();
        let mut out = self.act(d)?;
        self.copy_frames(x, 0, &mut out, 0, d.t)?;
        // Per frame, column-major views: the frame's tokens are the P×C matrix at `frame`
        // (ld T·P); projections Q, K, V, the mix and the output are P×C (ld P); scores come in
        // blocks of queries, keys contiguous for the softmax.
        let q = self.alloc::<E>(p * c)?;
        let k = self.alloc::<E>(p * c)?;
        let v = self.alloc::<E>(p * c)?;
        let mixed = self.alloc::<E>(p * c)?;
        let o = self.alloc::<E>(p * c)?;
        // Score blocks of at most 256 MB (f32) over the whole frame's keys.
        let block = (256usize << 20) / (4 * p).max(1);
        let qb = block.clamp(1, p);
        let scores = self.alloc::<f32>(p * qb)?;
        let mut probs = self.alloc::<E>(p * qb)?;
        let es = std::mem::size_of::<E>() as u64;
        let scale = 1.0 / (c as f32).sqrt();
        let (ci, pi) = (c as i32, p as i32);
        for t in 0..d.t {
            let frame = self.ptr(&nrm.buf) + (t * p) as u64 * es;
            for (wb, dst) in [(&a.q, &q), (&a.k, &k), (&a.v, &v)] {
                self.gemm(
                    false,
                    false,
                    p,
                    c,
                    c,
                    frame,
                    d.t * p,
                    self.ptr(&wb.0),
                    c,
                    self.ptr(dst),
                    p,
                    E::CUDA_R,
                )?;
                let f = self.k.add_bias_rows.clone();
                let dst_ptr = self.ptr(dst);
                launch!(self, &f, p * c, &dst_ptr, &wb.1, &ci, &pi)?;
            }
            for q0 in (0..p).step_by(qb) {
                let nq = qb.min(p - q0);
                let (kp, qp, sp, vp) = (
                    self.ptr(&k),
                    self.ptr(&q) + q0 as u64 * es,
                    self.ptr(&scores),
                    self.ptr(&v),
                );
                // Keys × queries of this block: S'(j, i) = Σ_c K(j, c) Q(q0 + i, c).
                self.gemm(false, true, p, nq, c, kp, p, qp, p, sp, p, ffi::CUDA_R_32F)?;
                let cols = nq as i32;
                let mut b = self.stream.launch_builder(&self.k.softmax_columns);
                b.arg(&scores)
                    .arg(&mut probs)
                    .arg(&pi)
                    .arg(&cols)
                    .arg(&scale);
                let cfg = LaunchConfig {
                    grid_dim: (nq as u32, 1, 1),
                    block_dim: (256, 1, 1),
                    shared_mem_bytes: 0,
                };
                // SAFETY: as softmax_columns declares; 256 threads for its shared arrays.
                unsafe { b.launch(cfg) }.map_err(driver("softmax"))?;
                // Mixed rows q0.. : A(i, c) = Σ_j S'(j, i) V(j, c).
                let mp = self.ptr(&mixed) + q0 as u64 * es;
                let pp = self.ptr(&probs);
                self.gemm(true, false, nq, c, p, pp, p, vp, p, mp, p, E::CUDA_R)?;
            }
            self.gemm(
                false,
                false,
                p,
                c,
                c,
                self.ptr(&mixed),
                p,
                self.ptr(&a.o.0),
                c,
                self.ptr(&o),
                p,
                E::CUDA_R,
            )?;
            let (ti, tt) = (t as i32, d.t as i32);
            let f = self.k.attn_residual.clone();
            launch!(
                self,
                &f,
                p * c,
                &mut out.buf,
                &o,
                &a.o.1,
                &ci,
                &tt,
                &ti,
                &pi
            )?;
        }
        Ok(out)
    }

    fn max_elements(&self) -> Option<usize> {
        Some(i32::MAX as usize)
    }

    fn synchronize(&mut self) -> Result<()> {
        self.stream.synchronize().map_err(driver("synchronize"))
    }

    fn frames(&mut self, x: &Act<CudaSlice<E>>, t0: usize, t1: usize) -> Result<Act<CudaSlice<E>>> {
        shapes::frames(x.dims, t0, t1)?;
        let mut out = self.act(Dims {
            t: t1 - t0,
            ..x.dims
        })?;
        self.copy_frames(x, t0, &mut out, 0, t1 - t0)?;
        Ok(out)
    }

    fn concat(&mut self, parts: &[Act<CudaSlice<E>>]) -> Result<Act<CudaSlice<E>>> {
        let dims = shapes::concat(&parts.iter().map(|a| a.dims).collect::<Vec<_>>())?;
        let mut out = self.act(dims)?;
        let mut at = 0;
        for a in parts {
            self.copy_frames(a, 0, &mut out, at, a.dims.t)?;
            at += a.dims.t;
        }
        Ok(out)
    }

    fn channels(&mut self, x: &Act<CudaSlice<E>>, n: usize) -> Result<Act<CudaSlice<E>>> {
        let d = x.dims;
        shapes::channels(d, n)?;
        let dims = Dims { c: n, ..d };
        let mut out = self.act(dims)?;
        let len = dims.count()?;
        self.stream
            .memcpy_dtod(&x.buf.slice(..len), &mut out.buf)
            .map_err(driver("copy channels"))?;
        Ok(out)
    }
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

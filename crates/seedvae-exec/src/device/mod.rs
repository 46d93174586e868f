//! What a device does: one function per kind of layer in spec §4, on activations of extent
//! `[C, T, H, W]` (one batch item) that live on the device, in the layout the device chooses
//! (the reference keeps `[C, T, H, W]`, CUDA channels-last `[T, H, W, C]`); the host sees
//! `[C, T, H, W]` values. The schedule (`vae.rs`) only calls these.

pub mod cuda;
pub mod reference;
mod shapes;

use crate::Result;

/// The extent of an activation `[C, T, H, W]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dims {
    pub c: usize,
    pub t: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    pub fn new(c: usize, t: usize, h: usize, w: usize) -> Dims {
        Dims { c, t, h, w }
    }

    /// Values of one frame of one channel.
    pub fn plane(&self) -> usize {
        self.h * self.w
    }

    /// All values (checked: an extent too large to count is an error).
    pub fn count(&self) -> Result<usize> {
        [self.c, self.t, self.h, self.w]
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| crate::Error::Shape(format!("an activation of {self:?} is too large")))
    }
}

/// A `[C, T, H, W]` f32 tensor in the device's own memory that another library owns — a torch
/// CUDA tensor handed over by DLPack (for the reference device: host memory) — read or written
/// in place by [`Device::upload_foreign`] and [`Device::download_foreign`], without a copy
/// through the host.
#[derive(Debug, Clone, Copy)]
pub struct Foreign {
    ptr: u64,
    pub dims: Dims,
}

impl Foreign {
    /// # Safety
    /// `ptr` is the address, in the memory of the device it is given to, of `dims.count()`
    /// contiguous f32 values that stay allocated, and that nothing else writes (for an output:
    /// reads or writes) while that device uses them, until it is synchronized after the last use.
    pub unsafe fn new(ptr: u64, dims: Dims) -> Result<Foreign> {
        dims.count()?
            .checked_mul(4)
            .filter(|_| ptr != 0 && ptr.is_multiple_of(4))
            .ok_or_else(|| {
                crate::Error::Shape(format!("a tensor of {dims:?} at address {ptr:#x}"))
            })?;
        Ok(Foreign { ptr, dims })
    }

    /// [`Foreign::new`] from a tensor's shape `[1, C, T, H, W]` (one batch item).
    ///
    /// # Safety
    /// As for [`Foreign::new`].
    pub unsafe fn with_shape(ptr: u64, shape: &[usize]) -> Result<Foreign> {
        match *shape {
            // SAFETY: the caller's promise, passed on.
            [1, c, t, h, w] => unsafe { Foreign::new(ptr, Dims::new(c, t, h, w)) },
            _ => Err(crate::Error::Shape(format!(
                "a tensor of shape {shape:?}: expected [1, C, T, H, W]"
            ))),
        }
    }

    pub fn ptr(&self) -> u64 {
        self.ptr
    }
}

/// An activation on a device.
pub struct Act<B> {
    pub buf: B,
    pub dims: Dims,
}

/// Spatial padding of a conv (spec §4.1, §4.6): `k/2` zeros on every side, or the encoder
/// downsampler's one zero row and column at the bottom and right only (then stride 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    Same,
    RightBottom,
}

/// A conv's weights `[cout, cin, kt, ks, ks]` and bias `[cout]`, on the device.
pub struct ConvWeights<B> {
    pub w: B,
    pub b: B,
    pub cin: usize,
    pub cout: usize,
    pub kt: usize,
    pub ks: usize,
}

/// A GroupNorm's affine parameters `[c]` (32 groups, eps 1e-6: spec §4.2).
pub struct NormWeights<B> {
    pub gamma: B,
    pub beta: B,
    pub c: usize,
}

/// Mid-block attention (spec §4.4): its GroupNorm, and `to_q`, `to_k`, `to_v`, `to_out.0` as
/// `[c, c]` weights (`[out, in]`, as the checkpoint stores them) with `[c]` biases.
pub struct AttnWeights<B> {
    pub norm: NormWeights<B>,
    pub q: (B, B),
    pub k: (B, B),
    pub v: (B, B),
    pub o: (B, B),
    pub c: usize,
}

/// Where the layers run.
pub trait Device {
    /// A buffer of f32 values on the device.
    type Buf;

    /// Weights (or any constant), copied to the device once.
    fn constant(&mut self, v: &[f32]) -> Result<Self::Buf>;
    /// A conv's weights as the checkpoint holds them, `[cout, cin, kt, ks, ks]`, copied to the
    /// device once in the layout its convs read.
    fn filter(&mut self, v: &[f32], shape: [usize; 5]) -> Result<Self::Buf>;
    /// An activation from host values `[C, T, H, W]`.
    fn upload(&mut self, v: &[f32], dims: Dims) -> Result<Act<Self::Buf>>;
    /// What a started download holds until it is finished.
    type Pending;
    /// Queue the copy of `a`'s values to the host, as they are at this point of the device's
    /// queue; [`Device::download_finish`] waits for them. The host takes one chunk's values
    /// while the device computes the next.
    fn download_start(&mut self, a: &Act<Self::Buf>) -> Result<Self::Pending>;
    /// A started download's values `[C, T, H, W]`.
    fn download_finish(&mut self, p: Self::Pending) -> Result<Vec<f32>>;
    /// Frames `[t0, t1)` of a tensor another library keeps in this device's memory, as an
    /// activation (an error on a device that takes none).
    fn upload_foreign(&mut self, src: &Foreign, t0: usize, t1: usize) -> Result<Act<Self::Buf>> {
        let _ = (src, t0, t1);
        Err(crate::Error::Device(
            "this device takes no tensors in another library's memory".into(),
        ))
    }
    /// `a` into frames `[f0, f0 + a.dims.t)` of `dst` (same channels and frame size), queued
    /// behind the device's work; the values are there once the device is synchronized.
    fn download_foreign(&mut self, a: &Act<Self::Buf>, dst: &Foreign, f0: usize) -> Result<()> {
        let _ = (a, dst, f0);
        Err(crate::Error::Device(
            "this device writes no tensors in another library's memory".into(),
        ))
    }
    /// An activation's values on the host.
    fn download(&mut self, a: &Act<Self::Buf>) -> Result<Vec<f32>> {
        let p = self.download_start(a)?;
        self.download_finish(p)
    }

    /// A conv over `[head ; x]` along time (the head prepended: replicated first frames or the
    /// carried state), temporal stride `st`, spatial stride 2 with [`Pad::RightBottom`] else 1.
    fn conv(
        &mut self,
        x: &Act<Self::Buf>,
        head: Option<&Act<Self::Buf>>,
        w: &ConvWeights<Self::Buf>,
        st: usize,
        pad: Pad,
    ) -> Result<Act<Self::Buf>>;
    /// The last `n` frames of `[head ; x]`: what a causal conv carries to the next chunk.
    fn tail(
        &mut self,
        x: &Act<Self::Buf>,
        head: Option<&Act<Self::Buf>>,
        n: usize,
    ) -> Result<Act<Self::Buf>>;
    /// Frame 0 of `x`, `n` times.
    fn repeat_first(&mut self, x: &Act<Self::Buf>, n: usize) -> Result<Act<Self::Buf>>;
    /// GroupNorm's statistics of every frame of `x`, as the device keeps them (with the
    /// affine folded in where it likes).
    type Stats;
    /// GroupNorm's statistics per frame: over the group's channels and the whole frame.
    fn norm_stats(&mut self, x: &Act<Self::Buf>, n: &NormWeights<Self::Buf>)
        -> Result<Self::Stats>;
    /// GroupNorm of rows `[r0, r1)` of `x` (all of them, or a band) with `x`'s statistics
    /// `s`, then SiLU when `silu`: a causal conv's input next (CUDA leaves room for its head).
    fn norm_rows(
        &mut self,
        x: &Act<Self::Buf>,
        s: &Self::Stats,
        n: &NormWeights<Self::Buf>,
        silu: bool,
        r0: usize,
        r1: usize,
    ) -> Result<Act<Self::Buf>>;
    /// GroupNorm per frame (statistics over the group's channels and the frame), then SiLU when
    /// `silu`.
    fn group_norm(
        &mut self,
        x: &Act<Self::Buf>,
        n: &NormWeights<Self::Buf>,
        silu: bool,
    ) -> Result<Act<Self::Buf>> {
        let s = self.norm_stats(x, n)?;
        self.norm_rows(x, &s, n, silu, 0, x.dims.h)
    }
    /// Rows `[r0, r1)` of every frame of `x` (a band of it); with room in front for a causal
    /// conv's head when `head_room` (where the device keeps one).
    fn rows(
        &mut self,
        x: &Act<Self::Buf>,
        r0: usize,
        r1: usize,
        head_room: bool,
    ) -> Result<Act<Self::Buf>>;
    /// An activation of `dims` that [`Device::put_rows`] fills.
    fn empty(&mut self, dims: Dims) -> Result<Act<Self::Buf>>;
    /// Rows `[s0, s0 + n)` of `src` into rows `[d0, d0 + n)` of `dst` (same channels, frames
    /// and width).
    fn put_rows(
        &mut self,
        dst: &mut Act<Self::Buf>,
        src: &Act<Self::Buf>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> Result<()>;
    /// `a + b` (the residual), into `a`.
    fn add(&mut self, a: &mut Act<Self::Buf>, b: &Act<Self::Buf>) -> Result<()>;
    /// The upsampler's shuffle (spec §4.5): `u` of `c·(4·z)` channels to `c` channels, `z·T`
    /// frames (z = 2 when `temporal`), 2H × 2W; sub-frame 1 dropped when `drop_sub1`.
    fn shuffle(
        &mut self,
        u: &Act<Self::Buf>,
        c: usize,
        temporal: bool,
        drop_sub1: bool,
    ) -> Result<Act<Self::Buf>>;
    /// Single-head attention per frame over its H·W tokens, with the residual: `x + attn(x)`.
    fn attention(
        &mut self,
        x: &Act<Self::Buf>,
        a: &AttnWeights<Self::Buf>,
    ) -> Result<Act<Self::Buf>>;
    /// Frames `[t0, t1)` of `x`.
    fn frames(&mut self, x: &Act<Self::Buf>, t0: usize, t1: usize) -> Result<Act<Self::Buf>>;
    /// `parts` joined along time (same channels and size).
    fn concat(&mut self, parts: &[Act<Self::Buf>]) -> Result<Act<Self::Buf>>;
    /// The most values one tensor may hold on this device (cuDNN indexes with 32 bits); None:
    /// no limit. The schedule cuts the full-resolution layers into frame groups to stay within it.
    fn max_elements(&self) -> Option<usize> {
        None
    }
    /// The most memory the device has held since [`Device::reset_measured_peak`], where it
    /// measures it (the CUDA device's pool); None: it does not.
    fn measured_peak(&self) -> Option<u64> {
        None
    }
    /// Start measuring the peak again from what is held now.
    fn reset_measured_peak(&mut self) -> Result<()> {
        Ok(())
    }
    /// Keep at most `bytes` of host memory that parked states gave back, for the next ones
    /// (what a new stream's plan parks); returns how much is kept now (free for that stream).
    fn keep_parked(&mut self, bytes: usize) -> usize {
        let _ = bytes;
        0
    }
    /// Bytes one stored value takes (what a carried state costs).
    fn value_bytes(&self) -> usize {
        4
    }
    /// Wait until the work queued so far is done (timing; a host device has nothing queued).
    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }
    /// The first `n` channels (the encoder's posterior mean).
    fn channels(&mut self, x: &Act<Self::Buf>, n: usize) -> Result<Act<Self::Buf>>;
    /// A carried state held off the device (host memory) between its uses.
    type Parked;
    /// Move `a` off the device: its device memory is free once the queued copy is done (in the
    /// device's order, so nothing waits).
    fn park(&mut self, a: Act<Self::Buf>) -> Result<Self::Parked>;
    /// A parked state back on the device, for its next use.
    fn unpark(&mut self, p: Self::Parked) -> Result<Act<Self::Buf>>;
    /// A parked activation of `dims` that [`Device::park_band`] fills.
    fn park_empty(&mut self, dims: Dims) -> Result<Self::Parked>;
    /// Rows `[s0, s0 + n)` of the band `src` into rows `[d0, d0 + n)` of the parked `dst`
    /// (same channels, frames and width), queued like [`Device::park`]: the band is the
    /// device's from here, so the copy may read it where it lies.
    fn park_band(
        &mut self,
        dst: &mut Self::Parked,
        src: Act<Self::Buf>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> Result<()>;
    /// Frames `[t0, t1)`, rows `[r0, r1)` of a parked activation, on the device (it stays
    /// parked).
    fn unpark_part(
        &mut self,
        p: &Self::Parked,
        frames: (usize, usize),
        rows: (usize, usize),
    ) -> Result<Act<Self::Buf>>;
}

//! The CUDA device's memory, planned without a GPU: [`Planned`] runs the schedule on extents
//! alone, allocating for every call what [`Cuda`](super::Cuda) allocates (the same rules: two
//! frames of room in front of GroupNorm's, the shuffle's and the upload's outputs, output
//! channels padded to 8, the attention's projections and score blocks, f32 staging), and
//! counts the bytes alive at once. [`planned_peak`] is a decode's or encode's high-water mark:
//! what the driver's pool reports as the device's peak, less cuDNN's workspace (known only once
//! the plans are timed; a few MB in fp16 on the H200).

use super::{stored_cout, HEAD_ROOM};
use crate::device::{shapes, Act, AttnWeights, ConvWeights, Device, Dims, NormWeights, Pad};
use crate::{Result, Vae};
use seedvae_weights::schema::NORM_GROUPS;
use seedvae_weights::{Part, WeightFile};
use std::cell::Cell;
use std::rc::Rc;

#[derive(Default)]
struct Meter {
    live: Cell<usize>,
    peak: Cell<usize>,
}

/// A buffer of the plan: its bytes, counted while it lives.
pub struct PlannedBuf {
    bytes: usize,
    /// Values reserved in front (a causal conv's head goes there).
    room: usize,
    meter: Rc<Meter>,
}

impl Drop for PlannedBuf {
    fn drop(&mut self) {
        self.meter.live.set(self.meter.live.get() - self.bytes);
    }
}

/// The CUDA device's allocations, without the device.
pub struct Planned {
    value_bytes: usize,
    meter: Rc<Meter>,
}

impl Planned {
    /// Values of `value_bytes` bytes (2: f16 storage, 4: f32).
    pub fn new(value_bytes: usize) -> Planned {
        Planned {
            value_bytes,
            meter: Rc::default(),
        }
    }

    /// The most bytes alive at once so far.
    pub fn peak(&self) -> usize {
        self.meter.peak.get()
    }

    fn alloc(&self, bytes: usize) -> PlannedBuf {
        let live = self.meter.live.get() + bytes;
        self.meter.live.set(live);
        self.meter.peak.set(self.meter.peak.get().max(live));
        PlannedBuf {
            bytes,
            room: 0,
            meter: self.meter.clone(),
        }
    }

    fn act(&self, dims: Dims, room_frames: usize) -> Result<Act<PlannedBuf>> {
        let room = room_frames * dims.plane() * dims.c;
        let mut buf = self.alloc((dims.count()? + room) * self.value_bytes);
        buf.room = room;
        Ok(Act { buf, dims })
    }

    /// An input chunk as [`Device::upload`] makes it (f32 staging, then the activation).
    pub fn input(&mut self, dims: Dims) -> Result<Act<PlannedBuf>> {
        let _staging = self.alloc(dims.count()? * 4);
        self.act(dims, HEAD_ROOM)
    }

    /// GroupNorm's statistics and folded affine (alive with its output).
    fn norm_scratch(&self, d: Dims) -> [PlannedBuf; 2] {
        [
            self.alloc(2 * d.t * NORM_GROUPS * 8),
            self.alloc(2 * d.t * d.c * 4),
        ]
    }
}

impl Device for Planned {
    type Buf = PlannedBuf;
    type Pending = ();

    fn constant(&mut self, v: &[f32]) -> Result<PlannedBuf> {
        Ok(self.alloc(v.len() * self.value_bytes))
    }

    fn filter(&mut self, v: &[f32], [co, ..]: [usize; 5]) -> Result<PlannedBuf> {
        Ok(self.alloc(v.len() / co.max(1) * stored_cout(co) * self.value_bytes))
    }

    fn upload(&mut self, v: &[f32], dims: Dims) -> Result<Act<PlannedBuf>> {
        shapes::upload(v.len(), dims)?;
        self.input(dims)
    }

    fn download_start(&mut self, a: &Act<PlannedBuf>) -> Result<()> {
        let _f32 = self.alloc(a.dims.count()? * 4);
        Ok(())
    }

    fn download_finish(&mut self, _: ()) -> Result<Vec<f32>> {
        Ok(Vec::new())
    }

    fn conv(
        &mut self,
        x: &Act<PlannedBuf>,
        head: Option<&Act<PlannedBuf>>,
        w: &ConvWeights<PlannedBuf>,
        st: usize,
        pad: Pad,
    ) -> Result<Act<PlannedBuf>> {
        let d = x.dims;
        shapes::conv(d, head.map(|h| h.dims), w.cin, w.kt)?;
        let mut dims = d;
        let mut _joined = None;
        if let Some(h) = head {
            dims.t += h.dims.t;
            if x.buf.room < h.dims.t * d.plane() * d.c {
                _joined = Some(self.act(dims, 0)?);
            }
        }
        let mut _padded = None;
        if pad == Pad::RightBottom {
            dims = Dims::new(dims.c, dims.t, dims.h + 1, dims.w + 1);
            _padded = Some(self.act(dims, 0)?);
        }
        let (ss, p) = super::spatial(pad, w.ks);
        let out = super::conv::Geometry {
            x: dims,
            cout: stored_cout(w.cout),
            kt: w.kt,
            ks: w.ks,
            st,
            ss,
            p,
        }
        .out();
        let y = self.act(Dims { c: w.cout, ..out }, 0)?;
        let _cut = (out.c != w.cout).then(|| self.act(out, 0)).transpose()?;
        Ok(y)
    }

    fn tail(
        &mut self,
        x: &Act<PlannedBuf>,
        head: Option<&Act<PlannedBuf>>,
        n: usize,
    ) -> Result<Act<PlannedBuf>> {
        shapes::tail(x.dims, head.map_or(0, |h| h.dims.t), n)?;
        self.act(Dims { t: n, ..x.dims }, 0)
    }

    fn repeat_first(&mut self, x: &Act<PlannedBuf>, n: usize) -> Result<Act<PlannedBuf>> {
        self.act(Dims { t: n, ..x.dims }, 0)
    }

    fn group_norm(
        &mut self,
        x: &Act<PlannedBuf>,
        n: &NormWeights<PlannedBuf>,
        _silu: bool,
    ) -> Result<Act<PlannedBuf>> {
        shapes::norm(x.dims, n.c)?;
        let y = self.act(x.dims, HEAD_ROOM)?;
        let _scratch = self.norm_scratch(x.dims);
        Ok(y)
    }

    fn add(&mut self, a: &mut Act<PlannedBuf>, b: &Act<PlannedBuf>) -> Result<()> {
        shapes::add(a.dims, b.dims)
    }

    fn shuffle(
        &mut self,
        u: &Act<PlannedBuf>,
        c: usize,
        temporal: bool,
        drop_sub1: bool,
    ) -> Result<Act<PlannedBuf>> {
        let z = if temporal { 2 } else { 1 };
        let d = u.dims;
        shapes::shuffle(d, c, z)?;
        let drop = drop_sub1 && d.t * z >= 2;
        self.act(
            Dims::new(c, d.t * z - drop as usize, 2 * d.h, 2 * d.w),
            HEAD_ROOM,
        )
    }

    fn attention(
        &mut self,
        x: &Act<PlannedBuf>,
        a: &AttnWeights<PlannedBuf>,
    ) -> Result<Act<PlannedBuf>> {
        let d = x.dims;
        shapes::attention(d, a.c)?;
        let _nrm = self.act(d, 0)?;
        drop(self.norm_scratch(d));
        let out = self.act(d, 0)?;
        let p = d.plane();
        let _qkvmo: Vec<_> = (0..5)
            .map(|_| self.alloc(p * a.c * self.value_bytes))
            .collect();
        let qb = super::score_block(p);
        let _scores = self.alloc(p * qb * 4);
        let _probs = self.alloc(p * qb * self.value_bytes);
        Ok(out)
    }

    fn frames(&mut self, x: &Act<PlannedBuf>, t0: usize, t1: usize) -> Result<Act<PlannedBuf>> {
        shapes::frames(x.dims, t0, t1)?;
        self.act(
            Dims {
                t: t1 - t0,
                ..x.dims
            },
            0,
        )
    }

    fn concat(&mut self, parts: &[Act<PlannedBuf>]) -> Result<Act<PlannedBuf>> {
        let dims = shapes::concat(&parts.iter().map(|a| a.dims).collect::<Vec<_>>())?;
        self.act(dims, 0)
    }

    fn channels(&mut self, x: &Act<PlannedBuf>, n: usize) -> Result<Act<PlannedBuf>> {
        shapes::channels(x.dims, n)?;
        self.act(Dims { c: n, ..x.dims }, 0)
    }

    fn max_elements(&self) -> Option<usize> {
        Some(i32::MAX as usize)
    }

    fn value_bytes(&self) -> usize {
        self.value_bytes
    }
}

/// The peak device bytes of running `part` of `w` over input `chunks` (one stream, in order,
/// each as the executor is called with it) with the full-resolution layers in `groups` frames,
/// on a CUDA device storing `value_bytes`-byte values; each chunk's download queued, as the
/// runner does. cuDNN's workspace is not included.
pub fn planned_peak(
    w: &WeightFile,
    part: Part,
    value_bytes: usize,
    chunks: &[Dims],
    groups: Option<usize>,
) -> Result<usize> {
    let mut dev = Planned::new(value_bytes);
    let vae = Vae::load(w, part, &mut dev)?;
    let mut s = vae.stream();
    for &d in chunks {
        let x = dev.input(d)?;
        let y = vae.step_grouped(&mut dev, &mut s, x, groups)?;
        dev.download_start(&y)?;
    }
    Ok(dev.peak())
}

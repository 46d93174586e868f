//! The CUDA device's memory, planned without a GPU: [`Planned`] runs the schedule on extents
//! alone, allocating for every call what [`Cuda`](super::Cuda) allocates (the same rules: two
//! frames of room in front of GroupNorm's, the shuffle's and the upload's outputs, output
//! channels padded to 8, the attention's projections and score blocks, f32 staging), and
//! counts the bytes alive at once. [`planned_peak`] is a decode's or encode's high-water mark:
//! what the driver's pool reports as the device's peak, less cuDNN's workspace (known only once
//! the plans are timed; a few MB in fp16 on the H200).

use super::outbox::Outbox;
use super::{stored_channels, HEAD_ROOM};
use crate::device::{shapes, Act, AttnWeights, ConvWeights, Device, Dims, NormWeights, Pad};
use crate::{Result, Split, Vae};
use seedvae_weights::schema::NORM_GROUPS;
use seedvae_weights::{Part, WeightFile};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Bytes alive at once, and the most so far (the device's, or the host's parked states).
#[derive(Default)]
struct Meter {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Meter {
    /// `bytes` counted until the returned hold drops.
    fn hold(self: &Arc<Meter>, bytes: usize) -> Held {
        let live = self.live.fetch_add(bytes, Relaxed) + bytes;
        self.peak.fetch_max(live, Relaxed);
        Held {
            bytes,
            meter: self.clone(),
        }
    }

    /// Count the peak again from what is alive now.
    fn restart(&self) {
        self.peak.store(self.live.load(Relaxed), Relaxed);
    }
}

/// Bytes counted on a meter while they live.
struct Held {
    bytes: usize,
    meter: Arc<Meter>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.meter.live.fetch_sub(self.bytes, Relaxed);
    }
}

/// A buffer of the plan: its bytes, counted while it lives.
pub struct PlannedBuf {
    _held: Held,
    /// Values reserved in front (a causal conv's head goes there).
    room: usize,
}

/// A state parked in host memory: its extent, its bytes counted on the host while it lives.
pub struct PlannedParked {
    dims: Dims,
    _held: Held,
}

/// The CUDA device's allocations, without the device.
pub struct Planned {
    value_bytes: usize,
    meter: Arc<Meter>,
    /// Host bytes of parked states.
    host: Arc<Meter>,
    /// The buffers parking copies read, held as the device holds them.
    outbox: Outbox<PlannedBuf>,
}

impl Planned {
    /// Values of `value_bytes` bytes (2: f16 storage, 4: f32).
    pub fn new(value_bytes: usize) -> Planned {
        Planned {
            value_bytes,
            meter: Arc::default(),
            host: Arc::default(),
            outbox: Outbox::default(),
        }
    }

    /// The most bytes alive at once so far.
    pub fn peak(&self) -> usize {
        self.meter.peak.load(Relaxed)
    }

    /// The most host bytes parked states held at once so far.
    pub fn host_peak(&self) -> usize {
        self.host.peak.load(Relaxed)
    }

    fn alloc(&self, bytes: usize) -> PlannedBuf {
        PlannedBuf {
            _held: self.meter.hold(bytes),
            room: 0,
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

    /// GroupNorm's statistics: the f64 sums (gone once folded) and the folded affine.
    fn norm_scratch(&self, d: Dims) -> PlannedBuf {
        let ab = self.alloc(2 * d.t * d.c * 4);
        let _sums = self.alloc(2 * d.t * NORM_GROUPS * 8);
        ab
    }
}

impl Device for Planned {
    type Buf = PlannedBuf;
    type Pending = ();

    fn constant(&mut self, v: &[f32]) -> Result<PlannedBuf> {
        Ok(self.alloc(v.len() * self.value_bytes))
    }

    fn filter(&mut self, _: &[f32], [co, ci, kt, kh, kw]: [usize; 5]) -> Result<PlannedBuf> {
        let n = stored_channels(co) * kt * kh * kw * stored_channels(ci);
        Ok(self.alloc(n * self.value_bytes))
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
        let mut _wide = None;
        if stored_channels(dims.c) != dims.c {
            dims.c = stored_channels(dims.c);
            _wide = Some(self.act(dims, 0)?);
        }
        let mut _padded = None;
        if pad == Pad::RightBottom {
            dims = Dims::new(dims.c, dims.t, dims.h + 1, dims.w + 1);
            _padded = Some(self.act(dims, 0)?);
        }
        let out = super::conv::Geometry::of(dims, w, st, pad).out();
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

    type Stats = PlannedBuf;

    fn norm_stats(
        &mut self,
        x: &Act<PlannedBuf>,
        n: &NormWeights<PlannedBuf>,
    ) -> Result<PlannedBuf> {
        shapes::norm(x.dims, n.c)?;
        Ok(self.norm_scratch(x.dims))
    }

    fn norm_rows(
        &mut self,
        x: &Act<PlannedBuf>,
        _s: &PlannedBuf,
        n: &NormWeights<PlannedBuf>,
        _silu: bool,
        r0: usize,
        r1: usize,
    ) -> Result<Act<PlannedBuf>> {
        shapes::norm(x.dims, n.c)?;
        shapes::rows(x.dims, r0, r1)?;
        self.act(
            Dims {
                h: r1 - r0,
                ..x.dims
            },
            HEAD_ROOM,
        )
    }

    fn rows(
        &mut self,
        x: &Act<PlannedBuf>,
        r0: usize,
        r1: usize,
        head_room: bool,
    ) -> Result<Act<PlannedBuf>> {
        shapes::rows(x.dims, r0, r1)?;
        let room = if head_room { HEAD_ROOM } else { 0 };
        self.act(
            Dims {
                h: r1 - r0,
                ..x.dims
            },
            room,
        )
    }

    fn empty(&mut self, dims: Dims) -> Result<Act<PlannedBuf>> {
        self.act(dims, 0)
    }

    fn put_rows(
        &mut self,
        dst: &mut Act<PlannedBuf>,
        src: &Act<PlannedBuf>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> Result<()> {
        shapes::put_rows(dst.dims, src.dims, s0, d0, n)
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
        self.act(shapes::shuffle(d, c, z, drop_sub1)?.0, HEAD_ROOM)
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

    type Parked = PlannedParked;

    fn park(&mut self, a: Act<PlannedBuf>) -> Result<PlannedParked> {
        let mut p = self.park_empty(a.dims)?;
        let h = a.dims.h;
        self.park_band(&mut p, a, 0, 0, h)?;
        Ok(p)
    }

    fn unpark(&mut self, p: PlannedParked) -> Result<Act<PlannedBuf>> {
        self.act(p.dims, 0)
    }

    fn park_empty(&mut self, dims: Dims) -> Result<PlannedParked> {
        Ok(PlannedParked {
            dims,
            _held: self.host.hold(dims.count()? * self.value_bytes),
        })
    }

    fn park_band(
        &mut self,
        dst: &mut PlannedParked,
        src: Act<PlannedBuf>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> Result<()> {
        shapes::put_rows(dst.dims, src.dims, s0, d0, n)?;
        // Held while the copy to host runs, as the device's outbox holds it.
        let bytes = src.buf._held.bytes;
        drop(self.outbox.push(src.buf, bytes));
        Ok(())
    }

    fn unpark_part(
        &mut self,
        p: &PlannedParked,
        (t0, t1): (usize, usize),
        (r0, r1): (usize, usize),
    ) -> Result<Act<PlannedBuf>> {
        shapes::frames(p.dims, t0, t1)?;
        shapes::rows(p.dims, r0, r1)?;
        self.act(
            Dims {
                t: t1 - t0,
                h: r1 - r0,
                ..p.dims
            },
            0,
        )
    }

    fn value_bytes(&self) -> usize {
        self.value_bytes
    }
}

/// A decode's or encode's device memory, planned on the CUDA device's rules: the schedule of
/// `part` with its weights counted (not held), run on extents for each question.
pub struct MemoryPlanner {
    dev: Planned,
    vae: Vae<PlannedBuf>,
}

impl MemoryPlanner {
    /// `part` of `w` stored as `value_bytes`-byte values (2: f16, 4: f32).
    pub fn load(w: &WeightFile, part: Part, value_bytes: usize) -> Result<MemoryPlanner> {
        let mut dev = Planned::new(value_bytes);
        let vae = Vae::load(w, part, &mut dev)?;
        Ok(MemoryPlanner { dev, vae })
    }

    /// The most host bytes parked states held in the last [`MemoryPlanner::peak`].
    pub fn host_peak(&self) -> usize {
        self.dev.host_peak()
    }

    /// The part of the VAE it plans.
    pub fn part(&self) -> Part {
        self.vae.part()
    }

    /// The peak bytes of one stream over input `chunks` (in order, each as the executor is
    /// called with it) cut as `split` says, each chunk's download queued as the runner does;
    /// cuDNN's workspace not included.
    pub fn peak(&mut self, chunks: &[Dims], split: Split) -> Result<usize> {
        self.dev.meter.restart();
        self.dev.host.restart();
        let mut s = self.vae.stream();
        for &d in chunks {
            let x = self.dev.input(d)?;
            let y = self.vae.step_split(&mut self.dev, &mut s, x, split)?;
            self.dev.download_start(&y)?;
        }
        Ok(self.dev.peak())
    }
}

/// [`MemoryPlanner::peak`] of `part` of `w`, loaded for the question.
pub fn planned_peak(
    w: &WeightFile,
    part: Part,
    value_bytes: usize,
    chunks: &[Dims],
    split: Split,
) -> Result<usize> {
    MemoryPlanner::load(w, part, value_bytes)?.peak(chunks, split)
}

/// What the plan sets aside for cuDNN's workspace (the executor keeps to it when any plan
/// does), and for the CUDA context and the libraries' handles, outside the pool.
pub fn workspace_allowance(value_bytes: usize) -> u64 {
    if value_bytes <= 2 {
        256 << 20
    } else {
        1 << 30
    }
}

/// How a chunk fits a memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Run the step cut as `split`; the plan then needs `planned` bytes.
    Fits { split: Split, planned: u64 },
    /// Nothing fits: the least any cut tried needs is `least` bytes.
    TooLarge { least: u64 },
}

/// The cut to run within `budget` bytes (`peak(split)` plans one): the whole chunk when it
/// fits, else the largest frame group of the full-resolution layers that does, else one frame
/// at a time in the tallest bands that do — halving down to 8 px of a frame `frame_h` px high.
/// With `band_px` (the user's), the frame groups are tried in those bands, and the bands halved
/// from there. Then the same with the carried states parked in host memory (each copied out
/// and back at every use, so the fewest uses first: the whole chunk, in bands, then two frames
/// and one frame at a time in bands).
pub fn split_within(
    budget: u64,
    frame_h: usize,
    band_px: Option<usize>,
    mut peak: impl FnMut(Split) -> Result<usize>,
) -> Result<Fit> {
    let tallest = band_px.unwrap_or(frame_h).min(frame_h);
    let halved = || {
        std::iter::successors(Some(tallest.div_ceil(2)), |&px| Some(px.div_ceil(2)))
            .take_while(move |&px| px >= 8 && px < tallest)
    };
    let cut = |groups, band_px, park| Split {
        groups,
        band_px,
        park,
    };
    let mut cuts: Vec<Split> = [None, Some(8), Some(4), Some(2), Some(1)]
        .into_iter()
        .map(|groups| cut(groups, band_px, false))
        .collect();
    cuts.extend(halved().map(|px| cut(Some(1), Some(px), false)));
    cuts.push(cut(None, band_px, true));
    cuts.extend(halved().map(|px| cut(None, Some(px), true)));
    cuts.extend(halved().map(|px| cut(Some(2), Some(px), true)));
    cuts.extend(halved().map(|px| cut(Some(1), Some(px), true)));
    // A cut the schedule refuses (a tensor past the device's limit) is one that does not fit.
    let (mut least, mut refused) = (u64::MAX, None);
    for split in cuts {
        match peak(split) {
            Ok(planned) if planned as u64 <= budget => {
                return Ok(Fit::Fits {
                    split,
                    planned: planned as u64,
                })
            }
            Ok(planned) => least = least.min(planned as u64),
            Err(e) => refused = Some(e),
        }
    }
    match refused {
        Some(e) if least == u64::MAX => Err(e),
        _ => Ok(Fit::TooLarge { least }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole chunk when it fits; else the largest group that fits; else one frame at a
    /// time in the tallest bands that fit; else the least any cut needs.
    #[test]
    fn the_largest_cut_within_the_budget_is_chosen() {
        // A plan that needs 10 + 2 per frame of a group (a whole chunk: 12 frames); a band of
        // a frame 256 px high costs its share of the frame's 32.
        let peak = |s: Split| {
            let frame = s.band_px.map_or(32, |px| px / 8);
            Ok(10 + frame * s.groups.unwrap_or(12) / 16)
        };
        let fits = |groups, band_px, planned| Fit::Fits {
            split: Split {
                groups,
                band_px,
                park: false,
            },
            planned,
        };
        assert_eq!(
            split_within(40, 256, None, peak).unwrap(),
            fits(None, None, 34)
        );
        assert_eq!(
            split_within(20, 256, None, peak).unwrap(),
            fits(Some(4), None, 18)
        );
        assert_eq!(
            split_within(11, 256, None, peak).unwrap(),
            fits(Some(1), Some(128), 11)
        );
        assert_eq!(
            split_within(10, 256, None, peak).unwrap(),
            fits(Some(1), Some(64), 10)
        );
        assert_eq!(
            split_within(9, 256, None, peak).unwrap(),
            Fit::TooLarge { least: 10 }
        );
        // Parked states (here 4 less) come after every cut that keeps them: the whole chunk in
        // the tallest bands that fit, before one frame at a time.
        let parking = |s: Split| peak(s).map(|p| if s.park { p - 4 } else { p });
        assert_eq!(
            split_within(9, 256, None, parking).unwrap(),
            Fit::Fits {
                split: Split {
                    groups: None,
                    band_px: Some(32),
                    park: true
                },
                planned: 9
            }
        );
        assert_eq!(
            split_within(10, 256, None, parking).unwrap(),
            fits(Some(1), Some(64), 10)
        );
        // Cuts the schedule refuses (whole frames past a tensor limit) give way to bands.
        let limited = |s: Split| match s.band_px {
            None => Err(crate::Error::Shape("past the limit".into())),
            Some(_) => peak(s),
        };
        assert_eq!(
            split_within(40, 256, None, limited).unwrap(),
            fits(Some(1), Some(128), 11)
        );
        let refused = |_| Err::<usize, _>(crate::Error::Shape("past the limit".into()));
        assert!(split_within(40, 256, None, refused).is_err());
        // The user's bands are kept while a frame group fits in them; then halved.
        assert_eq!(
            split_within(20, 256, Some(64), peak).unwrap(),
            fits(None, Some(64), 16)
        );
        assert_eq!(
            split_within(10, 256, Some(128), peak).unwrap(),
            fits(Some(1), Some(64), 10)
        );
    }
}

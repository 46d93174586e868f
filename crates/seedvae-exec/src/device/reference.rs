//! The reference device: every layer in plain Rust on the host, written to be read against the
//! spec rather than to be fast — f32 storage and products, f64 sums for GroupNorm statistics and
//! softmax. Convolutions split their output channels over the machine's cores. The oracle the
//! GPU device is held to, and `--backend reference`.

use super::{shapes, Act, AttnWeights, ConvWeights, Device, Dims, Foreign, NormWeights, Pad};
use crate::{Error, Result};
use seedvae_weights::schema::{NORM_EPS, NORM_GROUPS};

/// Plain Rust on the host.
#[derive(Debug, Clone)]
pub struct Reference {
    threads: usize,
    /// A tensor-size limit to behave like a device that has one (tests of the frame groups).
    max_elements: Option<usize>,
}

impl Default for Reference {
    fn default() -> Self {
        Reference::new(0)
    }
}

impl Reference {
    /// `threads` worker threads for convolutions; 0: every core.
    pub fn new(threads: usize) -> Reference {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Reference {
            threads: if threads == 0 { cores } else { threads },
            max_elements: None,
        }
    }

    /// As if no tensor could hold more than `n` values (as cuDNN's 32-bit indexing limits the
    /// GPU device): the schedule then runs its full-resolution layers in frame groups.
    pub fn limited(threads: usize, n: usize) -> Reference {
        Reference {
            max_elements: Some(n),
            ..Reference::new(threads)
        }
    }
}

/// Host values of `d`, zeroed; the size checked first.
fn zeros(d: Dims) -> Result<Vec<f32>> {
    let n = d.count()?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::Device(format!(
            "cannot allocate {} MB for an activation {d:?}",
            (n * 4) >> 20
        ))
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Frame `t` of channel `c` of `[head ; x]` (time-concatenated without copying).
fn frame<'a>(
    x: &'a Act<Vec<f32>>,
    head: Option<&'a Act<Vec<f32>>>,
    c: usize,
    t: usize,
) -> &'a [f32] {
    let p = x.dims.plane();
    let nh = head.map_or(0, |h| h.dims.t);
    let (a, t) = match head {
        Some(h) if t < nh => (h, t),
        _ => (x, t - nh),
    };
    let base = (c * a.dims.t + t) * p;
    &a.buf[base..base + p]
}

fn sigmoid_silu(y: f32) -> f32 {
    y / (1.0 + (-y).exp())
}

impl Device for Reference {
    type Buf = Vec<f32>;

    fn constant(&mut self, v: &[f32]) -> Result<Vec<f32>> {
        Ok(v.to_vec())
    }

    fn filter(&mut self, v: &[f32], _shape: [usize; 5]) -> Result<Vec<f32>> {
        Ok(v.to_vec())
    }

    fn upload(&mut self, v: &[f32], dims: Dims) -> Result<Act<Vec<f32>>> {
        shapes::upload(v.len(), dims)?;
        Ok(Act {
            buf: v.to_vec(),
            dims,
        })
    }

    fn upload_foreign(&mut self, src: &Foreign, t0: usize, t1: usize) -> Result<Act<Vec<f32>>> {
        let d = src.dims;
        shapes::frames(d, t0, t1)?;
        let n = d.count()?;
        // SAFETY: `Foreign::new`'s contract: `n` f32 values in this device's (host) memory.
        let all = unsafe { std::slice::from_raw_parts(src.ptr() as *const f32, n) };
        let p = d.plane();
        let buf = (0..d.c)
            .flat_map(|c| all[(c * d.t + t0) * p..(c * d.t + t1) * p].iter().copied())
            .collect();
        Ok(Act {
            buf,
            dims: Dims { t: t1 - t0, ..d },
        })
    }

    fn download_foreign(&mut self, a: &Act<Vec<f32>>, dst: &Foreign, f0: usize) -> Result<()> {
        let (d, ad) = (dst.dims, a.dims);
        shapes::into_frames(d, ad, f0)?;
        // SAFETY: as above, and nothing else uses the values while the device writes them.
        let all = unsafe { std::slice::from_raw_parts_mut(dst.ptr() as *mut f32, d.count()?) };
        let run = ad.t * ad.plane();
        for c in 0..d.c {
            let at = (c * d.t + f0) * d.plane();
            all[at..at + run].copy_from_slice(&a.buf[c * run..(c + 1) * run]);
        }
        Ok(())
    }

    type Pending = Vec<f32>;

    fn download_start(&mut self, a: &Act<Vec<f32>>) -> Result<Vec<f32>> {
        Ok(a.buf.clone())
    }

    fn download_finish(&mut self, p: Vec<f32>) -> Result<Vec<f32>> {
        Ok(p)
    }

    fn conv(
        &mut self,
        x: &Act<Vec<f32>>,
        head: Option<&Act<Vec<f32>>>,
        w: &ConvWeights<Vec<f32>>,
        st: usize,
        pad: Pad,
    ) -> Result<Act<Vec<f32>>> {
        let d = x.dims;
        let t_in = shapes::conv(d, head.map(|h| h.dims), w.cin, w.kt)?;
        let ks = w.ks;
        // Output size, and the rows/columns of zeros before the input (top/left).
        let (ss, before, (ho, wo)) = match pad {
            Pad::Same => (1, ks / 2, (d.h, d.w)),
            // One zero row/column after the input, none before, stride 2, no other padding.
            Pad::RightBottom => (2, 0, ((d.h + 1 - ks) / 2 + 1, (d.w + 1 - ks) / 2 + 1)),
        };
        let to = (t_in - w.kt) / st + 1;
        let out_dims = Dims::new(w.cout, to, ho, wo);
        let mut out = zeros(out_dims)?;
        let per_c = to * ho * wo;
        let chunk = w.cout.div_ceil(self.threads.max(1)).max(1);
        std::thread::scope(|scope| {
            for (ci, outs) in out.chunks_mut(chunk * per_c).enumerate() {
                scope.spawn(move || {
                    for (k, o) in outs.chunks_mut(per_c).enumerate() {
                        let co = ci * chunk + k;
                        o.fill(w.b[co]);
                        for t in 0..to {
                            let ot = &mut o[t * ho * wo..(t + 1) * ho * wo];
                            for c in 0..w.cin {
                                for dt in 0..w.kt {
                                    let src = frame(x, head, c, t * st + dt);
                                    for dy in 0..ks {
                                        for dx in 0..ks {
                                            let wv = w.w[(((co * w.cin + c) * w.kt + dt) * ks
                                                + dy)
                                                * ks
                                                + dx];
                                            accumulate(
                                                ot,
                                                src,
                                                wv,
                                                (d.h, d.w),
                                                (ho, wo),
                                                ss,
                                                before,
                                                (dy, dx),
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                });
            }
        });
        Ok(Act {
            buf: out,
            dims: out_dims,
        })
    }

    fn tail(
        &mut self,
        x: &Act<Vec<f32>>,
        head: Option<&Act<Vec<f32>>>,
        n: usize,
    ) -> Result<Act<Vec<f32>>> {
        let d = x.dims;
        let total = d.t + head.map_or(0, |h| h.dims.t);
        shapes::tail(d, total - d.t, n)?;
        let dims = Dims::new(d.c, n, d.h, d.w);
        let mut v = Vec::with_capacity(dims.count()?);
        for c in 0..d.c {
            for t in total - n..total {
                v.extend_from_slice(frame(x, head, c, t));
            }
        }
        Ok(Act { buf: v, dims })
    }

    fn repeat_first(&mut self, x: &Act<Vec<f32>>, n: usize) -> Result<Act<Vec<f32>>> {
        let d = x.dims;
        let dims = Dims::new(d.c, n, d.h, d.w);
        let mut v = Vec::with_capacity(dims.count()?);
        for c in 0..d.c {
            for _ in 0..n {
                v.extend_from_slice(frame(x, None, c, 0));
            }
        }
        Ok(Act { buf: v, dims })
    }

    /// Per frame and group: the mean and 1/√(var + ε), in f64.
    type Stats = Vec<(f64, f64)>;

    fn norm_stats(
        &mut self,
        x: &Act<Vec<f32>>,
        n: &NormWeights<Vec<f32>>,
    ) -> Result<Vec<(f64, f64)>> {
        let d = x.dims;
        let per = shapes::norm(d, n.c)?;
        let p = d.plane();
        let mut stats = Vec::with_capacity(d.t * NORM_GROUPS);
        for t in 0..d.t {
            for g in 0..NORM_GROUPS {
                let chans = g * per..(g + 1) * per;
                let plane = |c: usize| &x.buf[(c * d.t + t) * p..(c * d.t + t + 1) * p];
                let count = (per * p) as f64;
                let mean = chans
                    .clone()
                    .flat_map(plane)
                    .map(|&v| v as f64)
                    .sum::<f64>()
                    / count;
                let var = chans
                    .flat_map(plane)
                    .map(|&v| (v as f64 - mean).powi(2))
                    .sum::<f64>()
                    / count;
                stats.push((mean, 1.0 / (var + NORM_EPS as f64).sqrt()));
            }
        }
        Ok(stats)
    }

    fn norm_rows(
        &mut self,
        x: &Act<Vec<f32>>,
        stats: &Vec<(f64, f64)>,
        n: &NormWeights<Vec<f32>>,
        silu: bool,
        r0: usize,
        r1: usize,
    ) -> Result<Act<Vec<f32>>> {
        let d = x.dims;
        let per = shapes::norm(d, n.c)?;
        shapes::rows(d, r0, r1)?;
        if stats.len() != d.t * NORM_GROUPS {
            return Err(Error::Shape(format!(
                "GroupNorm statistics of {} frames for {d:?}",
                stats.len() / NORM_GROUPS
            )));
        }
        let dims = Dims { h: r1 - r0, ..d };
        let mut out = zeros(dims)?;
        let band = dims.plane();
        for c in 0..d.c {
            let (gm, bt) = (n.gamma[c] as f64, n.beta[c] as f64);
            for t in 0..d.t {
                let (mean, inv) = stats[t * NORM_GROUPS + c / per];
                let src = &frame(x, None, c, t)[r0 * d.w..r1 * d.w];
                let o = &mut out[(c * d.t + t) * band..(c * d.t + t + 1) * band];
                for (o, &v) in o.iter_mut().zip(src) {
                    let y = ((v as f64 - mean) * inv * gm + bt) as f32;
                    *o = if silu { sigmoid_silu(y) } else { y };
                }
            }
        }
        Ok(Act { buf: out, dims })
    }

    fn rows(
        &mut self,
        x: &Act<Vec<f32>>,
        r0: usize,
        r1: usize,
        _head_room: bool,
    ) -> Result<Act<Vec<f32>>> {
        let d = x.dims;
        shapes::rows(d, r0, r1)?;
        let dims = Dims { h: r1 - r0, ..d };
        let mut v = Vec::with_capacity(dims.count()?);
        for c in 0..d.c {
            for t in 0..d.t {
                v.extend_from_slice(&frame(x, None, c, t)[r0 * d.w..r1 * d.w]);
            }
        }
        Ok(Act { buf: v, dims })
    }

    fn empty(&mut self, dims: Dims) -> Result<Act<Vec<f32>>> {
        Ok(Act {
            buf: zeros(dims)?,
            dims,
        })
    }

    fn put_rows(
        &mut self,
        dst: &mut Act<Vec<f32>>,
        src: &Act<Vec<f32>>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> Result<()> {
        let (dd, sd) = (dst.dims, src.dims);
        shapes::put_rows(dd, sd, s0, d0, n)?;
        for ct in 0..dd.c * dd.t {
            let from = ct * sd.plane() + s0 * sd.w;
            let to = ct * dd.plane() + d0 * dd.w;
            dst.buf[to..to + n * dd.w].copy_from_slice(&src.buf[from..from + n * sd.w]);
        }
        Ok(())
    }

    fn add(&mut self, a: &mut Act<Vec<f32>>, b: &Act<Vec<f32>>) -> Result<()> {
        shapes::add(a.dims, b.dims)?;
        a.buf.iter_mut().zip(&b.buf).for_each(|(x, y)| *x += y);
        Ok(())
    }

    fn shuffle(
        &mut self,
        u: &Act<Vec<f32>>,
        c: usize,
        temporal: bool,
        drop_sub1: bool,
    ) -> Result<Act<Vec<f32>>> {
        let z = if temporal { 2 } else { 1 };
        let d = u.dims;
        shapes::shuffle(d, c, z, drop_sub1)?;
        let full = Dims::new(c, d.t * z, 2 * d.h, 2 * d.w);
        let mut out = zeros(full)?;
        let (oh, ow) = (full.h, full.w);
        // out[c, t·z + sz, 2h + sx, 2w + sy] = u[((sx·2 + sy)·z + sz)·c + ch, t, h, w] (§4.5)
        for sx in 0..2 {
            for sy in 0..2 {
                for sz in 0..z {
                    for ch in 0..c {
                        let k = ((sx * 2 + sy) * z + sz) * c + ch;
                        for t in 0..d.t {
                            let src =
                                &u.buf[(k * d.t + t) * d.plane()..(k * d.t + t + 1) * d.plane()];
                            let ot = t * z + sz;
                            let base = (ch * full.t + ot) * oh * ow;
                            for h in 0..d.h {
                                for w in 0..d.w {
                                    out[base + (2 * h + sx) * ow + 2 * w + sy] = src[h * d.w + w];
                                }
                            }
                        }
                    }
                }
            }
        }
        let act = Act {
            buf: out,
            dims: full,
        };
        if !drop_sub1 || full.t < 2 {
            return Ok(act);
        }
        // The first chunk keeps sub-frame 0 of frame 0 and drops sub-frame 1 (spec §4.5, step 3).
        let dims = Dims::new(c, full.t - 1, oh, ow);
        let mut v = Vec::with_capacity(dims.count()?);
        for ch in 0..c {
            for t in (0..full.t).filter(|&t| t != 1) {
                v.extend_from_slice(frame(&act, None, ch, t));
            }
        }
        Ok(Act { buf: v, dims })
    }

    fn attention(&mut self, x: &Act<Vec<f32>>, a: &AttnWeights<Vec<f32>>) -> Result<Act<Vec<f32>>> {
        let d = x.dims;
        let c = a.c;
        shapes::attention(d, c)?;
        let n = self.group_norm(x, &a.norm, false)?;
        let p = d.plane();
        let mut out = x.buf.clone();
        let scale = 1.0 / (c as f64).sqrt();
        for t in 0..d.t {
            // Tokens [p, c] of this frame, and the projections `tokens · Wᵀ + b`.
            let tokens: Vec<f32> = (0..p)
                .flat_map(|i| (0..c).map(move |ch| (i, ch)))
                .map(|(i, ch)| n.buf[(ch * d.t + t) * p + i])
                .collect();
            let project = |(w, b): &(Vec<f32>, Vec<f32>), input: &[f32]| -> Vec<f32> {
                let mut o = vec![0f32; p * c];
                for i in 0..p {
                    let row = &input[i * c..(i + 1) * c];
                    for j in 0..c {
                        let wr = &w[j * c..(j + 1) * c];
                        o[i * c + j] = b[j] + row.iter().zip(wr).map(|(x, y)| x * y).sum::<f32>();
                    }
                }
                o
            };
            let (q, k, v) = (
                project(&a.q, &tokens),
                project(&a.k, &tokens),
                project(&a.v, &tokens),
            );
            let mut mixed = vec![0f32; p * c];
            let mut scores = vec![0f64; p];
            for i in 0..p {
                let qi = &q[i * c..(i + 1) * c];
                for (j, s) in scores.iter_mut().enumerate() {
                    let kj = &k[j * c..(j + 1) * c];
                    *s = qi.iter().zip(kj).map(|(x, y)| (x * y) as f64).sum::<f64>() * scale;
                }
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores
                    .iter_mut()
                    .map(|s| {
                        *s = (*s - max).exp();
                        *s
                    })
                    .sum();
                let mi = &mut mixed[i * c..(i + 1) * c];
                for (j, s) in scores.iter().enumerate() {
                    let pj = (s / sum) as f32;
                    for (m, vv) in mi.iter_mut().zip(&v[j * c..(j + 1) * c]) {
                        *m += pj * vv;
                    }
                }
            }
            let o = project(&a.o, &mixed);
            for i in 0..p {
                for ch in 0..c {
                    out[(ch * d.t + t) * p + i] += o[i * c + ch];
                }
            }
        }
        Ok(Act { buf: out, dims: d })
    }

    fn max_elements(&self) -> Option<usize> {
        self.max_elements
    }

    fn frames(&mut self, x: &Act<Vec<f32>>, t0: usize, t1: usize) -> Result<Act<Vec<f32>>> {
        let d = x.dims;
        shapes::frames(d, t0, t1)?;
        let dims = Dims::new(d.c, t1 - t0, d.h, d.w);
        let mut v = Vec::with_capacity(dims.count()?);
        for c in 0..d.c {
            for t in t0..t1 {
                v.extend_from_slice(frame(x, None, c, t));
            }
        }
        Ok(Act { buf: v, dims })
    }

    fn concat(&mut self, parts: &[Act<Vec<f32>>]) -> Result<Act<Vec<f32>>> {
        let dims = shapes::concat(&parts.iter().map(|a| a.dims).collect::<Vec<_>>())?;
        let first = dims;
        let mut v = Vec::with_capacity(dims.count()?);
        for c in 0..first.c {
            for a in parts {
                for t in 0..a.dims.t {
                    v.extend_from_slice(frame(a, None, c, t));
                }
            }
        }
        Ok(Act { buf: v, dims })
    }

    fn channels(&mut self, x: &Act<Vec<f32>>, n: usize) -> Result<Act<Vec<f32>>> {
        let d = x.dims;
        shapes::channels(d, n)?;
        let dims = Dims::new(n, d.t, d.h, d.w);
        Ok(Act {
            buf: x.buf[..dims.count()?].to_vec(),
            dims,
        })
    }

    /// The host is the device: parking changes nothing.
    type Parked = Act<Vec<f32>>;

    fn park(&mut self, a: Act<Vec<f32>>) -> Result<Act<Vec<f32>>> {
        Ok(a)
    }

    fn unpark(&mut self, p: Act<Vec<f32>>) -> Result<Act<Vec<f32>>> {
        Ok(p)
    }

    fn park_empty(&mut self, dims: Dims) -> Result<Act<Vec<f32>>> {
        self.empty(dims)
    }

    fn park_band(
        &mut self,
        dst: &mut Act<Vec<f32>>,
        src: Act<Vec<f32>>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> Result<()> {
        self.put_rows(dst, &src, s0, d0, n)
    }

    fn unpark_part(
        &mut self,
        p: &Act<Vec<f32>>,
        (t0, t1): (usize, usize),
        (r0, r1): (usize, usize),
    ) -> Result<Act<Vec<f32>>> {
        let f = self.frames(p, t0, t1)?;
        self.rows(&f, r0, r1, false)
    }
}

/// `out += wv · shifted(src)` for one kernel tap `(dy, dx)`: output pixel `(y, x)` reads input
/// `(y·ss + dy − before, x·ss + dx − before)`, zero outside the input.
#[allow(clippy::too_many_arguments)]
fn accumulate(
    out: &mut [f32],
    src: &[f32],
    wv: f32,
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    ss: usize,
    before: usize,
    (dy, dx): (usize, usize),
) {
    for y in 0..ho {
        let Some(yi) = (y * ss + dy).checked_sub(before).filter(|&yi| yi < h) else {
            continue;
        };
        let row = &src[yi * w..(yi + 1) * w];
        let o = &mut out[y * wo..(y + 1) * wo];
        if ss == 1 {
            // Columns whose input x + dx − before lies inside the row.
            let lo = before.saturating_sub(dx);
            let hi = (w + before).saturating_sub(dx).min(wo);
            if lo < hi {
                let s = &row[lo + dx - before..hi + dx - before];
                for (o, s) in o[lo..hi].iter_mut().zip(s) {
                    *o += wv * s;
                }
            }
        } else {
            for (x, o) in o.iter_mut().enumerate() {
                if let Some(xi) = (x * ss + dx).checked_sub(before).filter(|&xi| xi < w) {
                    *o += wv * row[xi];
                }
            }
        }
    }
}

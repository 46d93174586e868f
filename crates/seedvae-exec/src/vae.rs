//! The VAE as a schedule of layers, read off the schema's blocks (spec §5 decoder, §6 encoder),
//! each with its weights on the device, and run one time chunk at a time (spec §8): every causal
//! conv with kT = 3 takes two copies of frame 0 in front on a stream's first chunk and the
//! frames it kept from the previous chunk afterwards; temporal upsamplers drop sub-frame 1 on
//! the first chunk only. The chunks of a stream give what one call over the whole clip gives.

use crate::device::{Act, AttnWeights, ConvWeights, Device, Dims, NormWeights, Pad};
use crate::{Error, Result};
use seedvae_weights::schema::{Block, Conv, LATENT_CHANNELS, RGB_CHANNELS};
use seedvae_weights::{Part, WeightFile};

/// A causal conv of the schedule: its weights, temporal stride, padding, and the slot of the
/// state it carries (kT = 3 convs only).
struct Causal<B> {
    w: ConvWeights<B>,
    st: usize,
    pad: Pad,
    slot: Option<usize>,
}

/// One step of the forward pass, as the spec names them.
enum Layer<B> {
    Conv(Causal<B>),
    Resnet {
        norm1: NormWeights<B>,
        conv1: Causal<B>,
        norm2: NormWeights<B>,
        conv2: Causal<B>,
        shortcut: Option<ConvWeights<B>>,
    },
    Attention(AttnWeights<B>),
    Upsample {
        upscale: ConvWeights<B>,
        ch: usize,
        temporal: bool,
        conv: Causal<B>,
    },
    Downsample(Causal<B>),
    NormSilu(NormWeights<B>),
}

/// The decoder or the encoder with its weights on a device.
pub struct Vae<B> {
    part: Part,
    layers: Vec<Layer<B>>,
    slots: usize,
}

/// One stream's carried state: per causal conv, the frames it kept from the last chunk (on the
/// device, or parked off it: `P`, the device's [`Device::Parked`]). A conv that has kept
/// nothing yet is at the stream's start (and so is an upsampler whose conv is): each layer
/// knows its own first call, so any layer boundary may cut a chunk in time.
pub struct Stream<B, P> {
    kept: Vec<Option<Kept<B, P>>>,
    /// Park each state as it is made (the step's [`Split::park`]).
    park: bool,
}

/// An activation on the device, or parked off it with its extent.
enum Kept<B, P> {
    Here(Act<B>),
    Parked(P, Dims),
}

impl<B, P> Kept<B, P> {
    fn dims(&self) -> Dims {
        match self {
            Kept::Here(a) => a.dims,
            Kept::Parked(_, d) => *d,
        }
    }

    /// On the device (brought back when parked).
    fn here<D: Device<Buf = B, Parked = P>>(self, dev: &mut D) -> Result<Act<B>> {
        match self {
            Kept::Here(a) => Ok(a),
            Kept::Parked(p, _) => dev.unpark(p),
        }
    }
}

/// Rows `[s0, s0 + n)` of a band `src` (done with) into rows `[d0, d0 + n)` of `dst`, which the
/// first band makes `h` rows high: on the device, or parked in host memory when `park`.
#[allow(clippy::too_many_arguments)]
fn put_band<D: Device>(
    dev: &mut D,
    dst: &mut Option<Kept<D::Buf, D::Parked>>,
    h: usize,
    park: bool,
    src: Act<D::Buf>,
    s0: usize,
    d0: usize,
    n: usize,
) -> Result<()> {
    let k = match dst {
        Some(k) => k,
        None => {
            let d = Dims { h, ..src.dims };
            dst.insert(match park {
                true => Kept::Parked(dev.park_empty(d)?, d),
                false => Kept::Here(dev.empty(d)?),
            })
        }
    };
    match k {
        Kept::Here(a) => dev.put_rows(a, &src, s0, d0, n),
        Kept::Parked(p, _) => dev.park_band(p, src, s0, d0, n),
    }
}

impl<B, P> Stream<B, P> {
    /// Device bytes held between chunks, at `value_bytes` a value ([`Device::value_bytes`]).
    pub fn bytes(&self, value_bytes: usize) -> usize {
        self.sum(value_bytes, false)
    }

    /// Host bytes of the states parked off the device.
    pub fn parked_bytes(&self, value_bytes: usize) -> usize {
        self.sum(value_bytes, true)
    }

    fn sum(&self, value_bytes: usize, parked: bool) -> usize {
        self.kept
            .iter()
            .flatten()
            .filter(|k| matches!(k, Kept::Parked(..)) == parked)
            .map(|k| k.dims().count().unwrap_or(0) * value_bytes)
            .sum()
    }

    /// Whether conv `slot` has kept frames (else it is at the stream's start).
    fn started(&self, slot: usize) -> bool {
        self.kept[slot].is_some()
    }

    /// Conv `slot`'s kept frames, on the device.
    fn take<D: Device<Buf = B, Parked = P>>(
        &mut self,
        dev: &mut D,
        slot: usize,
    ) -> Result<Option<Act<B>>> {
        self.kept[slot].take().map(|k| k.here(dev)).transpose()
    }

    /// Bring conv `c`'s parked frames back now, ahead of its call: the copy then runs beside
    /// the work queued before that call (they are on the device from here on).
    fn fetch<D: Device<Buf = B, Parked = P>>(&mut self, dev: &mut D, c: &Causal<B>) -> Result<()> {
        if let Some(k) = c.slot {
            if let Some(Kept::Parked(..)) = &self.kept[k] {
                self.kept[k] = self.take(dev, k)?.map(Kept::Here);
            }
        }
        Ok(())
    }

    /// Keep `a` for conv `slot`'s next call: parked off the device when the step says so.
    fn keep<D: Device<Buf = B, Parked = P>>(
        &mut self,
        dev: &mut D,
        slot: usize,
        a: Act<B>,
    ) -> Result<()> {
        self.kept[slot] = Some(if self.park {
            let d = a.dims;
            Kept::Parked(dev.park(a)?, d)
        } else {
            Kept::Here(a)
        });
        Ok(())
    }
}

/// How a step is cut to hold less at once, exactly: the full-resolution layers in frame
/// groups, and every layer but the attention in bands of rows. Neither changes a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    /// Frames per group of the full-resolution layers (None: the whole chunk).
    pub groups: Option<usize>,
    /// Band height in pixels of the frame (the decoder's output, the encoder's input): a layer
    /// at 1/s of the frame's size runs in bands of ⌈band_px / s⌉ of its output rows, each
    /// reading its rows and the halo its kernel needs, GroupNorm's statistics taken over the
    /// whole frame first. None: whole frames.
    pub band_px: Option<usize>,
    /// Each causal conv's carried frames parked off the device (host memory) from one use to
    /// the next: the device holds one conv's at a time, at the cost of copying every state out
    /// and back each use.
    pub park: bool,
}

impl Split {
    pub fn groups(groups: Option<usize>) -> Split {
        Split {
            groups,
            ..Split::default()
        }
    }
}

/// A step's bands: `px` rows of a frame `frame_h` rows high.
#[derive(Clone, Copy)]
struct Bands {
    px: usize,
    frame_h: usize,
}

impl Bands {
    /// Output rows per band of a layer whose output is `h` rows high.
    fn rows(&self, h: usize) -> usize {
        (self.px * h).div_ceil(self.frame_h).max(1)
    }
}

/// What takes a conv's bands: `(device, band, s0, o0, n)` — output rows `[o0, o0 + n)` are
/// rows `[s0, s0 + n)` of the band.
type Emit<'a, D, B> = dyn FnMut(&mut D, Act<B>, usize, usize, usize) -> Result<()> + 'a;

/// A conv as a band schedule calls it: weights, temporal stride, padding, carried state.
#[derive(Clone, Copy)]
struct ConvCall<'a, B> {
    w: &'a ConvWeights<B>,
    st: usize,
    pad: Pad,
    slot: Option<usize>,
}

impl<'a, B> From<&'a Causal<B>> for ConvCall<'a, B> {
    fn from(c: &'a Causal<B>) -> Self {
        ConvCall {
            w: &c.w,
            st: c.st,
            pad: c.pad,
            slot: c.slot,
        }
    }
}

/// Layers up to `end` (from the previous segment's end), run `frames` frames at a time.
struct Segment {
    end: usize,
    frames: Option<usize>,
}

/// Loads the weights of the schedule as it is built, numbering the carried states.
struct Loader<'a, D: Device> {
    w: &'a WeightFile,
    dev: &'a mut D,
    slots: usize,
}

impl<'a, D: Device> Loader<'a, D> {
    fn tensor(&mut self, name: &str, want: &[usize]) -> Result<D::Buf> {
        let v = self.values(name, want)?;
        self.dev.constant(&v)
    }

    /// The values of tensor `name`, which must have the shape `want`.
    fn values(&self, name: &str, want: &[usize]) -> Result<std::borrow::Cow<'a, [f32]>> {
        let t = self.w.get(name).ok_or_else(|| {
            Error::Shape(format!(
                "{}: tensor '{name}' is missing",
                self.w.path.display()
            ))
        })?;
        if t.shape != want {
            return Err(Error::Shape(format!(
                "{}: tensor '{name}' is {:?}; the VAE needs {want:?}",
                self.w.path.display(),
                t.shape
            )));
        }
        let w: &'a WeightFile = self.w;
        Ok(w.f32(name)?)
    }

    fn conv_weights(&mut self, c: &Conv) -> Result<ConvWeights<D::Buf>> {
        let name = format!("{}.weight", c.name);
        let shape = [c.cout, c.cin, c.kt, c.ks, c.ks];
        let v = self.values(&name, &shape)?;
        Ok(ConvWeights {
            w: self.dev.filter(&v, shape)?,
            b: self.tensor(&format!("{}.bias", c.name), &[c.cout])?,
            cin: c.cin,
            cout: c.cout,
            kt: c.kt,
            ks: c.ks,
        })
    }

    fn causal(&mut self, c: &Conv, st: usize, pad: Pad) -> Result<Causal<D::Buf>> {
        let slot = (c.kt == 3).then(|| {
            self.slots += 1;
            self.slots - 1
        });
        Ok(Causal {
            w: self.conv_weights(c)?,
            st,
            pad,
            slot,
        })
    }

    fn norm(&mut self, name: &str, c: usize) -> Result<NormWeights<D::Buf>> {
        Ok(NormWeights {
            gamma: self.tensor(&format!("{name}.weight"), &[c])?,
            beta: self.tensor(&format!("{name}.bias"), &[c])?,
            c,
        })
    }

    fn linear(&mut self, name: &str, c: usize) -> Result<(D::Buf, D::Buf)> {
        Ok((
            self.tensor(&format!("{name}.weight"), &[c, c])?,
            self.tensor(&format!("{name}.bias"), &[c])?,
        ))
    }

    fn layer(&mut self, b: &Block) -> Result<Layer<D::Buf>> {
        let conv = |name: String, cin, cout, kt, ks| Conv {
            name,
            cin,
            cout,
            kt,
            ks,
        };
        Ok(match b {
            Block::Conv(c) => Layer::Conv(self.causal(c, 1, Pad::Same)?),
            Block::Resnet { prefix, cin, cout } => {
                let (cin, cout) = (*cin, *cout);
                Layer::Resnet {
                    norm1: self.norm(&format!("{prefix}.norm1"), cin)?,
                    conv1: self.causal(
                        &conv(format!("{prefix}.conv1"), cin, cout, 3, 3),
                        1,
                        Pad::Same,
                    )?,
                    norm2: self.norm(&format!("{prefix}.norm2"), cout)?,
                    conv2: self.causal(
                        &conv(format!("{prefix}.conv2"), cout, cout, 3, 3),
                        1,
                        Pad::Same,
                    )?,
                    shortcut: (cin != cout)
                        .then(|| {
                            self.conv_weights(&conv(
                                format!("{prefix}.conv_shortcut"),
                                cin,
                                cout,
                                1,
                                1,
                            ))
                        })
                        .transpose()?,
                }
            }
            Block::Attention { prefix, ch } => Layer::Attention(AttnWeights {
                norm: self.norm(&format!("{prefix}.group_norm"), *ch)?,
                q: self.linear(&format!("{prefix}.to_q"), *ch)?,
                k: self.linear(&format!("{prefix}.to_k"), *ch)?,
                v: self.linear(&format!("{prefix}.to_v"), *ch)?,
                o: self.linear(&format!("{prefix}.to_out.0"), *ch)?,
                c: *ch,
            }),
            Block::Upsample {
                prefix,
                ch,
                temporal,
            } => {
                let r = if *temporal { 8 } else { 4 };
                Layer::Upsample {
                    upscale: self.conv_weights(&conv(
                        format!("{prefix}.upscale_conv"),
                        *ch,
                        ch * r,
                        1,
                        1,
                    ))?,
                    ch: *ch,
                    temporal: *temporal,
                    conv: self.causal(
                        &conv(format!("{prefix}.conv"), *ch, *ch, 3, 3),
                        1,
                        Pad::Same,
                    )?,
                }
            }
            Block::Downsample {
                prefix,
                ch,
                temporal,
            } => {
                let (kt, st) = if *temporal { (3, 2) } else { (1, 1) };
                Layer::Downsample(self.causal(
                    &conv(format!("{prefix}.conv"), *ch, *ch, kt, 3),
                    st,
                    Pad::RightBottom,
                )?)
            }
            Block::NormSilu { name, ch } => Layer::NormSilu(self.norm(name, *ch)?),
        })
    }
}

impl<B> Vae<B> {
    /// The `part` of the VAE in `w` (its widths read from the file), weights put on `dev`.
    pub fn load<D: Device<Buf = B>>(w: &WeightFile, part: Part, dev: &mut D) -> Result<Vae<B>> {
        let model = w.model_for(part)?;
        let mut l = Loader { w, dev, slots: 0 };
        let layers = model
            .blocks(part)
            .iter()
            .map(|b| l.layer(b))
            .collect::<Result<Vec<_>>>()?;
        Ok(Vae {
            part,
            layers,
            slots: l.slots,
        })
    }

    pub fn part(&self) -> Part {
        self.part
    }

    /// Channels of the input (16 latent channels, or RGB).
    pub fn in_channels(&self) -> usize {
        match self.part {
            Part::Decoder => LATENT_CHANNELS,
            Part::Encoder => RGB_CHANNELS,
        }
    }

    /// A new stream, before its first chunk.
    pub fn stream<P>(&self) -> Stream<B, P> {
        Stream {
            kept: (0..self.slots).map(|_| None).collect(),
            park: false,
        }
    }

    /// Run the next chunk of `s` on `x` (`[16, T, h, w]` latents, or `[3, T, H, W]` frames:
    /// 4n + 1 on a stream's first chunk, 4n after). Returns the chunk's frames `[3, F, 8h, 8w]`
    /// (F = 4T − 3 first, 4T after) or posterior mean `[16, T', H/8, W/8]`.
    pub fn step<D: Device<Buf = B>>(
        &self,
        dev: &mut D,
        s: &mut Stream<B, D::Parked>,
        x: Act<B>,
    ) -> Result<Act<B>> {
        self.step_split(dev, s, x, Split::default())
    }

    /// [`Vae::step`] cut as `split` says. Frame groups run the full-resolution layers a group
    /// of frames at a time: the decoder's layers after its last temporal upsampler, the
    /// encoder's before its first temporal downsampler — where the activations are largest, so
    /// memory holds only a group's worth of them. Exact: a layer's frames depend only on earlier
    /// frames, and each causal conv carries its last frames from group to group as from chunk
    /// to chunk. Bands run each layer a band of rows at a time (its input and output whole, its
    /// intermediates a band's worth): exact, since a band reads every input row its output rows
    /// depend on and GroupNorm's statistics are the whole frame's.
    pub fn step_split<D: Device<Buf = B>>(
        &self,
        dev: &mut D,
        s: &mut Stream<B, D::Parked>,
        x: Act<B>,
        split: Split,
    ) -> Result<Act<B>> {
        let groups = split.groups;
        if groups == Some(0) || split.band_px == Some(0) {
            return Err(Error::Shape(format!(
                "a step cut into groups or bands of 0: {split:?}"
            )));
        }
        let d = x.dims;
        if d.c != self.in_channels() || d.t == 0 || d.h == 0 || d.w == 0 {
            return Err(Error::Shape(format!(
                "the {} takes [{}, T, H, W] with every size ≥ 1; found {:?}",
                self.part,
                self.in_channels(),
                [d.c, d.t, d.h, d.w]
            )));
        }
        if self.part == Part::Encoder && (!d.h.is_multiple_of(8) || !d.w.is_multiple_of(8)) {
            return Err(Error::Shape(format!(
                "the encoder takes frames whose sides are multiples of 8; found {}×{}",
                d.w, d.h
            )));
        }
        let bands = split.band_px.map(|px| Bands {
            px,
            frame_h: match self.part {
                Part::Decoder => 8 * d.h,
                Part::Encoder => d.h,
            },
        });
        // A device that limits tensor sizes gets groups small enough for the largest tensor of
        // the full-resolution layers: head frames included where a conv reads the whole tensor
        // joined with them; in bands only a band meets the head (the whole tensors hold the
        // group's frames alone).
        let groups = match dev.max_elements() {
            Some(max) => {
                let per_frame = self
                    .full_resolution_frame_elements(d.h, d.w, bands.is_some())
                    .max(1);
                let head = if bands.is_some() { 0 } else { 2 };
                let fit = (max / per_frame).saturating_sub(head);
                if fit == 0 {
                    return Err(Error::Shape(format!(
                        "an input of {}×{} needs tensors of {per_frame} values a frame at full \
                         resolution; this device holds at most {max} in one{}",
                        d.w,
                        d.h,
                        if bands.is_some() {
                            ""
                        } else {
                            " (run it in bands: a smaller tile size)"
                        }
                    )));
                }
                Some(groups.map_or(fit, |g| g.min(fit)))
            }
            None => groups,
        };
        s.park = split.park;
        // Between segments the activation is on the device, or parked in host memory when the
        // states are and the next segment takes it a frame group at a time.
        let segments = self.segments(groups);
        let mut x = Kept::Here(x);
        let mut at = 0;
        for (i, seg) in segments.iter().enumerate() {
            let d = x.dims();
            x = match seg.frames {
                Some(g) if g < d.t => {
                    let mut outs = Vec::with_capacity(d.t.div_ceil(g));
                    for t0 in (0..d.t).step_by(g) {
                        let t1 = (t0 + g).min(d.t);
                        let mut y = match &x {
                            Kept::Here(a) => dev.frames(a, t0, t1)?,
                            Kept::Parked(p, _) => dev.unpark_part(p, (t0, t1), (0, d.h))?,
                        };
                        for layer in &self.layers[at..seg.end] {
                            y = self.apply(dev, s, layer, y, bands)?;
                        }
                        outs.push(y);
                    }
                    // Its host memory back to the device's pool now (a parked state's drop).
                    if let Kept::Parked(p, _) = x {
                        drop(p);
                    }
                    Kept::Here(dev.concat(&outs)?)
                }
                _ => {
                    let mut a = x.here(dev)?;
                    let to_host =
                        split.park && segments.get(i + 1).is_some_and(|n| n.frames.is_some());
                    let layers = &self.layers[at..seg.end];
                    match layers.split_last() {
                        Some((last, rest)) if to_host => {
                            for layer in rest {
                                a = self.apply(dev, s, layer, a, bands)?;
                            }
                            self.apply_to_host(dev, s, last, a, bands)?
                        }
                        _ => {
                            for layer in layers {
                                a = self.apply(dev, s, layer, a, bands)?;
                            }
                            Kept::Here(a)
                        }
                    }
                }
            };
            at = seg.end;
        }
        let mut x = x.here(dev)?;
        if self.part == Part::Encoder {
            x = dev.channels(&x, LATENT_CHANNELS)?;
        }
        Ok(x)
    }

    /// The values of the largest tensor a frame has in the full-resolution layers (the decoder's
    /// after its last temporal upsampler, the encoder's before its first temporal downsampler),
    /// for an input of `h × w`: channels × size, walked layer by layer. In bands (`banded`),
    /// only the whole tensors count (a layer's input and output; the upsampler's wide conv
    /// output and the downsampler's padded input are a band's).
    pub fn full_resolution_frame_elements(&self, h: usize, w: usize, banded: bool) -> usize {
        let (mut hh, mut ww) = (h, w);
        let full = self.segments(Some(1));
        let grouped = full.iter().position(|s| s.frames.is_some()).unwrap_or(0);
        let start = if grouped == 0 {
            0
        } else {
            full[grouped - 1].end
        };
        let range = start..full[grouped].end;
        let mut most = 0;
        for (i, layer) in self.layers.iter().enumerate() {
            let here = match layer {
                Layer::Conv(k) => k.w.cin.max(k.w.cout) * hh * ww,
                Layer::Resnet { conv1, conv2, .. } => conv1.w.cin.max(conv2.w.cout) * hh * ww,
                Layer::Attention(a) => a.c * hh * ww,
                Layer::Upsample { upscale, ch, .. } => {
                    let m = if banded { 0 } else { upscale.cout * hh * ww };
                    hh *= 2;
                    ww *= 2;
                    m.max(ch * hh * ww)
                }
                Layer::Downsample(k) => {
                    let m = if banded {
                        k.w.cin * hh * ww
                    } else {
                        k.w.cin * (hh + 1) * (ww + 1)
                    };
                    hh /= 2;
                    ww /= 2;
                    m
                }
                Layer::NormSilu(n) => n.c * hh * ww,
            };
            if range.contains(&i) {
                most = most.max(here);
            }
        }
        most
    }

    /// Multiply-adds ×2 of one frame in steady state, counted from the layer shapes: per
    /// output frame of the decoder (for a latent of `h × w`), per input frame of the encoder
    /// (frames of `h × w`). Convolutions and the attention's products; the elementwise layers
    /// are left out (memory-bound, not arithmetic).
    pub fn flops_per_frame(&self, h: usize, w: usize) -> f64 {
        let (mut hh, mut ww, mut frames) = (h as f64, w as f64, 1.0f64);
        let conv =
            |c: &ConvWeights<B>, px: f64| 2.0 * (c.cin * c.cout * c.kt * c.ks * c.ks) as f64 * px;
        let mut total = 0.0;
        for layer in &self.layers {
            total += match layer {
                Layer::Conv(k) => frames * conv(&k.w, hh * ww),
                Layer::Resnet {
                    conv1,
                    conv2,
                    shortcut,
                    ..
                } => {
                    let px = hh * ww;
                    frames
                        * (conv(&conv1.w, px)
                            + conv(&conv2.w, px)
                            + shortcut.as_ref().map_or(0.0, |s| conv(s, px)))
                }
                Layer::Attention(a) => {
                    let (p, c) = (hh * ww, a.c as f64);
                    // Q, K, V and the output projection; the scores and the mix.
                    frames * (4.0 * 2.0 * c * c * p + 2.0 * 2.0 * p * p * c)
                }
                Layer::Upsample {
                    upscale,
                    temporal,
                    conv: k,
                    ..
                } => {
                    let up = frames * conv(upscale, hh * ww);
                    hh *= 2.0;
                    ww *= 2.0;
                    if *temporal {
                        frames *= 2.0;
                    }
                    up + frames * conv(&k.w, hh * ww)
                }
                Layer::Downsample(k) => {
                    hh /= 2.0;
                    ww /= 2.0;
                    if k.st > 1 {
                        frames /= 2.0;
                    }
                    frames * conv(&k.w, hh * ww)
                }
                Layer::NormSilu(_) => 0.0,
            };
        }
        // Counted per input frame: the decoder's per latent frame, which gives `frames`.
        match self.part {
            Part::Decoder => total / frames,
            Part::Encoder => total,
        }
    }

    /// The layer ranges of a step and the frames per group of each (None: the whole chunk).
    fn segments(&self, groups: Option<usize>) -> Vec<Segment> {
        let n = self.layers.len();
        let temporal = |l: &Layer<B>| match l {
            Layer::Upsample { temporal, .. } => *temporal,
            Layer::Downsample(c) => c.st > 1,
            _ => false,
        };
        let Some(g) = groups else {
            return vec![Segment {
                end: n,
                frames: None,
            }];
        };
        match self.part {
            Part::Decoder => {
                let tail = self.layers.iter().rposition(temporal).map_or(0, |i| i + 1);
                vec![
                    Segment {
                        end: tail,
                        frames: None,
                    },
                    Segment {
                        end: n,
                        frames: Some(g),
                    },
                ]
            }
            Part::Encoder => {
                let head = self.layers.iter().position(temporal).unwrap_or(n);
                vec![
                    Segment {
                        end: head,
                        frames: Some(g),
                    },
                    Segment {
                        end: n,
                        frames: None,
                    },
                ]
            }
        }
    }

    fn causal<D: Device<Buf = B>>(
        &self,
        dev: &mut D,
        s: &mut Stream<B, D::Parked>,
        c: &Causal<B>,
        x: &Act<B>,
    ) -> Result<Act<B>> {
        let Some(slot) = c.slot else {
            return dev.conv(x, None, &c.w, c.st, c.pad);
        };
        // Spec §4.1: two copies of frame 0 in front on the first call, the kept frames after.
        let head = match s.take(dev, slot)? {
            Some(kept) => kept,
            None => dev.repeat_first(x, 2)?,
        };
        if s.park {
            // Parked: the kept frames start their way to host memory before the conv is
            // queued, so the copy runs beside it.
            let kept = dev.tail(x, Some(&head), c.w.kt - c.st)?;
            s.keep(dev, slot, kept)?;
            return dev.conv(x, Some(&head), &c.w, c.st, c.pad);
        }
        let y = dev.conv(x, Some(&head), &c.w, c.st, c.pad)?;
        let kept = dev.tail(x, Some(&head), c.w.kt - c.st)?;
        drop(head);
        s.keep(dev, slot, kept)?;
        Ok(y)
    }

    fn apply<D: Device<Buf = B>>(
        &self,
        dev: &mut D,
        s: &mut Stream<B, D::Parked>,
        layer: &Layer<B>,
        x: Act<B>,
        bands: Option<Bands>,
    ) -> Result<Act<B>> {
        if let Some(b) = bands {
            return self.apply_in_bands(dev, s, layer, x, b);
        }
        Ok(match layer {
            Layer::Conv(c) => self.causal(dev, s, c, &x)?,
            Layer::Resnet {
                norm1,
                conv1,
                norm2,
                conv2,
                shortcut,
            } => {
                // Each intermediate goes as soon as the next exists (shadowing would keep all
                // four to the end of the block: the decoder's peak memory). Parked frames come
                // back a step early: conv1's beside the GroupNorm, conv2's beside conv1.
                s.fetch(dev, conv1)?;
                let n1 = dev.group_norm(&x, norm1, true)?;
                s.fetch(dev, conv2)?;
                let h1 = self.causal(dev, s, conv1, &n1)?;
                drop(n1);
                let n2 = dev.group_norm(&h1, norm2, true)?;
                drop(h1);
                let h = self.causal(dev, s, conv2, &n2)?;
                drop(n2);
                let mut out = match shortcut {
                    Some(w) => dev.conv(&x, None, w, 1, Pad::Same)?,
                    None => x,
                };
                dev.add(&mut out, &h)?;
                out
            }
            Layer::Attention(a) => dev.attention(&x, a)?,
            Layer::Upsample {
                upscale,
                ch,
                temporal,
                conv,
            } => {
                s.fetch(dev, conv)?;
                let u = dev.conv(&x, None, upscale, 1, Pad::Same)?;
                drop(x);
                let first = conv.slot.is_some_and(|k| !s.started(k));
                let y = dev.shuffle(&u, *ch, *temporal, *temporal && first)?;
                drop(u);
                self.causal(dev, s, conv, &y)?
            }
            Layer::Downsample(c) => self.causal(dev, s, c, &x)?,
            Layer::NormSilu(n) => dev.group_norm(&x, n, true)?,
        })
    }

    /// [`Vae::apply`] a band of rows at a time: the layer's input and output whole, the rest a
    /// band's worth. The attention and the final GroupNorm run whole (their inputs are small,
    /// or as large as their outputs).
    fn apply_in_bands<D: Device<Buf = B>>(
        &self,
        dev: &mut D,
        s: &mut Stream<B, D::Parked>,
        layer: &Layer<B>,
        x: Act<B>,
        b: Bands,
    ) -> Result<Act<B>> {
        Ok(match layer {
            Layer::Conv(c) | Layer::Downsample(c) => {
                self.conv_in_bands(dev, s, c.into(), &x, None, b)?
            }
            Layer::Resnet {
                norm1,
                conv1,
                norm2,
                conv2,
                shortcut,
            } => {
                let st1 = dev.norm_stats(&x, norm1)?;
                let h1 = self.conv_in_bands(dev, s, conv1.into(), &x, Some((norm1, &st1)), b)?;
                drop(st1);
                let st2 = dev.norm_stats(&h1, norm2)?;
                // The residual band by band as conv2's bands come: into x itself, or into the
                // shortcut's output (x then read a band at a time).
                let (mut out, src) = match shortcut {
                    Some(_) => (
                        dev.empty(Dims {
                            c: conv2.w.cout,
                            ..x.dims
                        })?,
                        Some(x),
                    ),
                    None => (x, None),
                };
                self.conv_bands(
                    dev,
                    s,
                    conv2.into(),
                    &h1,
                    Some((norm2, &st2)),
                    b,
                    &mut |dev, hb, s0, o0, n| {
                        let mut ob = match (&src, shortcut) {
                            (Some(x), Some(w)) => {
                                let xb = dev.rows(x, o0, o0 + n, false)?;
                                dev.conv(&xb, None, w, 1, Pad::Same)?
                            }
                            _ => dev.rows(&out, o0, o0 + n, false)?,
                        };
                        let own = dev.rows(&hb, s0, s0 + n, false)?;
                        dev.add(&mut ob, &own)?;
                        dev.put_rows(&mut out, &ob, 0, o0, n)
                    },
                )?;
                out
            }
            Layer::Attention(a) => dev.attention(&x, a)?,
            Layer::Upsample {
                upscale,
                ch,
                temporal,
                conv,
            } => {
                let y = self.shuffled_in_bands(dev, s, (upscale, *ch, *temporal), conv, x, b)?;
                self.conv_in_bands(dev, s, conv.into(), &y, None, b)?
            }
            Layer::NormSilu(n) => dev.group_norm(&x, n, true)?,
        })
    }

    /// An upsampler's 1×1×1 upscale and shuffle (spec §4.5) in bands `b` of its input rows:
    /// the input of its conv.
    fn shuffled_in_bands<D: Device<Buf = B>>(
        &self,
        dev: &mut D,
        s: &Stream<B, D::Parked>,
        (upscale, ch, temporal): (&ConvWeights<B>, usize, bool),
        conv: &Causal<B>,
        x: Act<B>,
        b: Bands,
    ) -> Result<Act<B>> {
        let first = conv.slot.is_some_and(|k| !s.started(k));
        let d = x.dims;
        let step = (b.rows(2 * d.h) / 2).max(1);
        let mut y = None;
        for r0 in (0..d.h).step_by(step) {
            let r1 = (r0 + step).min(d.h);
            let xb = dev.rows(&x, r0, r1, false)?;
            let ub = dev.conv(&xb, None, upscale, 1, Pad::Same)?;
            drop(xb);
            let yb = dev.shuffle(&ub, ch, temporal, temporal && first)?;
            drop(ub);
            put_band(dev, &mut y, 2 * d.h, false, yb, 0, 2 * r0, 2 * (r1 - r0))?;
        }
        y.ok_or_else(|| Error::Shape(format!("an upsampler given {d:?}")))?
            .here(dev)
    }

    /// [`Vae::apply`] with its output parked in host memory (the input of a segment run in
    /// frame groups): an upsampler in bands sends its conv's bands there as they come, so the
    /// device never holds its whole output.
    fn apply_to_host<D: Device<Buf = B>>(
        &self,
        dev: &mut D,
        s: &mut Stream<B, D::Parked>,
        layer: &Layer<B>,
        x: Act<B>,
        bands: Option<Bands>,
    ) -> Result<Kept<B, D::Parked>> {
        if let (
            Some(b),
            Layer::Upsample {
                upscale,
                ch,
                temporal,
                conv,
            },
        ) = (bands, layer)
        {
            let y = self.shuffled_in_bands(dev, s, (upscale, *ch, *temporal), conv, x, b)?;
            let out_h = out_rows(y.dims.h, conv.w.ks, conv.pad)?;
            let mut out = None;
            self.conv_bands(
                dev,
                s,
                conv.into(),
                &y,
                None,
                b,
                &mut |dev, yb, s0, o0, n| put_band(dev, &mut out, out_h, true, yb, s0, o0, n),
            )?;
            return out.ok_or_else(|| Error::Shape(format!("an upsampler given {:?}", y.dims)));
        }
        let y = self.apply(dev, s, layer, x, bands)?;
        let d = y.dims;
        Ok(Kept::Parked(dev.park(y)?, d))
    }

    /// A conv of `x` (GroupNorm+SiLU first when `norm`) in bands `b`, into one output.
    fn conv_in_bands<D: Device<Buf = B>>(
        &self,
        dev: &mut D,
        s: &mut Stream<B, D::Parked>,
        c: ConvCall<'_, B>,
        x: &Act<B>,
        norm: Option<(&NormWeights<B>, &D::Stats)>,
        b: Bands,
    ) -> Result<Act<B>> {
        let out_h = out_rows(x.dims.h, c.w.ks, c.pad)?;
        let mut y = None;
        self.conv_bands(dev, s, c, x, norm, b, &mut |dev, yb, s0, o0, n| {
            put_band(dev, &mut y, out_h, false, yb, s0, o0, n)
        })?;
        y.ok_or_else(|| Error::Shape(format!("a conv given {:?}", x.dims)))?
            .here(dev)
    }

    /// A conv of `x` in bands `b` of its output rows: each band reads its input rows with the
    /// halo its kernel needs (GroupNorm+SiLU applied to them first when `norm`: the conv's
    /// zero padding lies outside the frame, so it stays zero), with the same rows of the
    /// carried frames in front. `emit(band, s0, o0, n)` takes output rows `[o0, o0 + n)`, rows
    /// `[s0, s0 + n)` of the band. The frames carried to the next call are assembled from each
    /// band's own input rows.
    #[allow(clippy::too_many_arguments)]
    fn conv_bands<D: Device<Buf = B>>(
        &self,
        dev: &mut D,
        s: &mut Stream<B, D::Parked>,
        c: ConvCall<'_, B>,
        x: &Act<B>,
        norm: Option<(&NormWeights<B>, &D::Stats)>,
        b: Bands,
        emit: &mut Emit<'_, D, B>,
    ) -> Result<()> {
        let (h, ks) = (x.dims.h, c.w.ks);
        let out_h = out_rows(h, ks, c.pad)?;
        let rows = b.rows(out_h);
        // Output row o reads input rows o·ss − before … o·ss − before + ks − 1.
        let (ss, before) = match c.pad {
            Pad::Same => (1, ks / 2),
            Pad::RightBottom => (2, 0),
        };
        // Spec §4.1: two copies of frame 0 in front on the first call, the kept frames after
        // (each band reads its rows of them: from the host when they are parked).
        let head = c.slot.map(|k| s.kept[k].take());
        let mut kept: Option<Kept<B, D::Parked>> = None;
        // Each band: its output rows [o0, o1) and the input rows [lo, hi) they read.
        let bands: Vec<_> = (0..out_h)
            .step_by(rows)
            .map(|o0| {
                let o1 = (o0 + rows).min(out_h);
                let lo = (o0 * ss).saturating_sub(before);
                let hi = ((o1 - 1) * ss + ks - before).min(h);
                (o0, o1, lo, hi)
            })
            .collect();
        // Parked head rows are fetched a band early: the copy from host memory runs beside
        // the band before's conv (one band of them more on the device).
        let mut ahead = None;
        for (i, &(o0, o1, lo, hi)) in bands.iter().enumerate() {
            let xb = match norm {
                Some((n, st)) => dev.norm_rows(x, st, n, true, lo, hi)?,
                None => dev.rows(x, lo, hi, c.slot.is_some())?,
            };
            let hb = match &head {
                None => None,
                Some(None) => Some(dev.repeat_first(&xb, 2)?),
                Some(Some(Kept::Here(k))) => Some(dev.rows(k, lo, hi, false)?),
                Some(Some(Kept::Parked(p, d))) => {
                    let this = match ahead.take() {
                        Some(a) => a,
                        None => dev.unpark_part(p, (0, d.t), (lo, hi))?,
                    };
                    if let Some(&(_, _, lo, hi)) = bands.get(i + 1) {
                        ahead = Some(dev.unpark_part(p, (0, d.t), (lo, hi))?);
                    }
                    Some(this)
                }
            };
            let yb = dev.conv(&xb, hb.as_ref(), c.w, c.st, c.pad)?;
            // The band's output row i is output row lo/ss + i (its top padding stands in for
            // the rows above it, and only touches rows before o0).
            emit(dev, yb, o0 - lo / ss, o0, o1 - o0)?;
            if let Some(hb) = &hb {
                let tb = dev.tail(&xb, Some(hb), c.w.kt - c.st)?;
                let own0 = o0 * ss;
                let own1 = if o1 == out_h { h } else { o1 * ss };
                put_band(dev, &mut kept, h, s.park, tb, own0 - lo, own0, own1 - own0)?;
            }
        }
        if let Some(Some(Kept::Parked(p, _))) = head {
            drop(p);
        }
        if let Some(k) = c.slot {
            s.kept[k] = kept;
        }
        Ok(())
    }
}

/// Output rows of a conv of kernel `ks` over `h` rows (spec §4.1, §4.6).
fn out_rows(h: usize, ks: usize, pad: Pad) -> Result<usize> {
    match pad {
        Pad::Same => Ok(h),
        Pad::RightBottom => (h + 1)
            .checked_sub(ks)
            .map(|r| r / 2 + 1)
            .ok_or_else(|| Error::Shape(format!("a downsampler given {h} rows"))),
    }
}

//! The schedule on the reference device against the original PyTorch module's goldens (the
//! reduced-width fixture): the decoder and encoder in one call and streamed in chunks, which
//! must give what one call gives.

use seedvae_exec::{Act, Device, Dims, Reference, Split, Vae};
use seedvae_tests::{fixture, fixture_tensor, rel_l2, to_f64};
use seedvae_weights::{Part, WeightFile};

fn weights() -> WeightFile {
    WeightFile::open(fixture("vae_tiny/weights.safetensors")).unwrap()
}

/// The golden of `file`: its fp64 tensor where the fixture has one, else fp32.
fn golden(file: &str, names: &[&str]) -> (Vec<usize>, Vec<f64>) {
    let w = WeightFile::open(fixture(file)).unwrap();
    let name = names.iter().find(|n| w.get(n).is_some()).unwrap();
    fixture_tensor(file, name)
}

fn input(file: &str, name: &str) -> (Dims, Vec<f32>) {
    let (s, v) = fixture_tensor(file, name);
    (
        Dims::new(s[1], s[2], s[3], s[4]),
        v.iter().map(|&x| x as f32).collect(),
    )
}

/// `[C, T, H, W]` frames `[t0, t1)` of `v`.
fn frames(v: &[f32], d: Dims, t0: usize, t1: usize) -> Vec<f32> {
    let p = d.plane();
    (0..d.c)
        .flat_map(|c| v[(c * d.t + t0) * p..(c * d.t + t1) * p].iter().copied())
        .collect()
}

/// Run `vae` over `x` in chunks of `sizes` frames (one stream); the outputs joined along time.
fn run(
    vae: &Vae<Vec<f32>>,
    dev: &mut Reference,
    x: &[f32],
    d: Dims,
    sizes: &[usize],
) -> (Dims, Vec<f32>) {
    let mut s = vae.stream();
    let mut outs: Vec<Act<Vec<f32>>> = Vec::new();
    let mut t0 = 0;
    for &n in sizes {
        let chunk = dev
            .upload(&frames(x, d, t0, t0 + n), Dims { t: n, ..d })
            .unwrap();
        outs.push(vae.step(dev, &mut s, chunk).unwrap());
        t0 += n;
    }
    assert_eq!(t0, d.t, "chunks cover the input");
    let o = outs[0].dims;
    let t: usize = outs.iter().map(|a| a.dims.t).sum();
    let joined = Dims { t, ..o };
    let mut v = Vec::new();
    for c in 0..o.c {
        for a in &outs {
            let n = a.dims.t * o.plane();
            v.extend_from_slice(&a.buf[c * n..(c + 1) * n]);
        }
    }
    (joined, v)
}

#[test]
fn the_decoder_reproduces_the_goldens_in_one_call_and_in_chunks() {
    let mut dev = Reference::default();
    let vae = Vae::load(&weights(), Part::Decoder, &mut dev).unwrap();
    for case in ["t3_8x8", "t2_8x8", "t2_6x10", "t1_8x8"] {
        let (d, z) = input(&format!("vae_tiny/latent_{case}.safetensors"), "latent");
        let (gs, gold) = golden(
            &format!("vae_tiny/decoded_{case}.safetensors"),
            &["decoded_f64", "decoded"],
        );
        let (od, whole) = run(&vae, &mut dev, &z, d, &[d.t]);
        assert_eq!(vec![1, od.c, od.t, od.h, od.w], gs, "{case}");
        let e = rel_l2(&to_f64(&whole), &gold);
        eprintln!("decoder {case}: one call, relative L2 {e:.2e}");
        assert!(e <= 1e-5, "{case}: {e:.2e}");
        // The original pipeline's slices ([2, 1, 1, …]) and one latent frame at a time.
        for first in [2, 1].into_iter().filter(|&f| f < d.t) {
            let mut sizes = vec![first];
            sizes.extend(std::iter::repeat_n(1, d.t - first));
            let (_, streamed) = run(&vae, &mut dev, &z, d, &sizes);
            let s = rel_l2(&to_f64(&streamed), &to_f64(&whole));
            eprintln!("decoder {case}: chunks {sizes:?} vs one call {s:.2e}");
            assert!(s <= 1e-6, "{case}: {s:.2e}");
        }
    }
}

#[test]
fn the_encoder_reproduces_the_golden_mean_in_one_call_and_in_chunks() {
    let mut dev = Reference::default();
    let vae = Vae::load(&weights(), Part::Encoder, &mut dev).unwrap();
    let (d, x) = input("vae_tiny/video_t9_32x48.safetensors", "video");
    let (gs, gold) = golden(
        "vae_tiny/encoded_t9_32x48.safetensors",
        &["latent_mean_f64", "latent_mean"],
    );
    let (od, whole) = run(&vae, &mut dev, &x, d, &[9]);
    assert_eq!(vec![1, od.c, od.t, od.h, od.w], gs);
    let e = rel_l2(&to_f64(&whole), &gold);
    eprintln!("encoder: one call, relative L2 {e:.2e}");
    assert!(e <= 1e-5, "{e:.2e}");
    for sizes in [[5, 4].as_slice(), &[1, 4, 4]] {
        let (_, streamed) = run(&vae, &mut dev, &x, d, sizes);
        let s = rel_l2(&to_f64(&streamed), &to_f64(&whole));
        eprintln!("encoder: chunks {sizes:?} vs one call {s:.2e}");
        assert!(s <= 1e-6, "{s:.2e}");
    }
}

/// The full-resolution layers run a few frames at a time (the decoder's after its last temporal
/// upsampler, the encoder's before its first temporal downsampler) give what one call gives:
/// the memory a step holds shrinks, the result does not change.
#[test]
fn frame_groups_at_full_resolution_change_nothing() {
    let mut dev = Reference::default();
    let w = weights();
    let dec = Vae::load(&w, Part::Decoder, &mut dev).unwrap();
    let (d, z) = input("vae_tiny/latent_t3_8x8.safetensors", "latent");
    let whole = {
        let x = dev.upload(&z, d).unwrap();
        let y = dec.step(&mut dev, &mut dec.stream(), x).unwrap();
        dev.download(&y).unwrap()
    };
    for g in [1, 3] {
        let x = dev.upload(&z, d).unwrap();
        let y = dec
            .step_split(&mut dev, &mut dec.stream(), x, Split::groups(Some(g)))
            .unwrap();
        assert_eq!((y.dims.c, y.dims.t, y.dims.h, y.dims.w), (3, 9, 64, 64));
        let e = rel_l2(&to_f64(&dev.download(&y).unwrap()), &to_f64(&whole));
        eprintln!("decoder tail in groups of {g} frames vs one call: {e:.2e}");
        assert!(e <= 1e-6, "groups of {g}: {e:.2e}");
    }
    let enc = Vae::load(&w, Part::Encoder, &mut dev).unwrap();
    let (d, v) = input("vae_tiny/video_t9_32x48.safetensors", "video");
    let whole = {
        let x = dev.upload(&v, d).unwrap();
        let y = enc.step(&mut dev, &mut enc.stream(), x).unwrap();
        dev.download(&y).unwrap()
    };
    for g in [1, 2] {
        let x = dev.upload(&v, d).unwrap();
        let y = enc
            .step_split(&mut dev, &mut enc.stream(), x, Split::groups(Some(g)))
            .unwrap();
        let e = rel_l2(&to_f64(&dev.download(&y).unwrap()), &to_f64(&whole));
        eprintln!("encoder head in groups of {g} frames vs one call: {e:.2e}");
        assert!(e <= 1e-6, "groups of {g}: {e:.2e}");
    }
    let x = dev.upload(&v, d).unwrap();
    assert!(enc
        .step_split(&mut dev, &mut enc.stream(), x, Split::groups(Some(0)))
        .is_err());
}

/// Every layer run a band of rows at a time gives what whole frames give — any band height,
/// even or odd, with frame groups, and streamed in chunks (the carried frames assembled from
/// the bands): the decoder's and the encoder's.
#[test]
fn bands_of_rows_change_nothing() {
    let mut dev = Reference::default();
    let w = weights();
    let bands = |groups, px| Split {
        groups,
        band_px: Some(px),
        park: false,
    };
    let check = |dev: &mut Reference,
                 vae: &Vae<Vec<f32>>,
                 (x, d): (&[f32], Dims),
                 chunks: &[usize],
                 splits: &[Split]| {
        let (_, whole) = run(vae, dev, x, d, chunks);
        for &split in splits {
            let mut s = vae.stream();
            let mut got = Vec::new();
            let mut t0 = 0;
            for &n in chunks {
                let a = dev
                    .upload(&frames(x, d, t0, t0 + n), Dims { t: n, ..d })
                    .unwrap();
                got.push(vae.step_split(dev, &mut s, a, split).unwrap());
                t0 += n;
            }
            let o = got[0].dims;
            let joined: Vec<f32> = (0..o.c)
                .flat_map(|c| {
                    got.iter().flat_map(move |a| {
                        let n = a.dims.t * o.plane();
                        a.buf[c * n..(c + 1) * n].iter().copied()
                    })
                })
                .collect();
            let e = rel_l2(&to_f64(&joined), &to_f64(&whole));
            eprintln!(
                "{} in chunks {chunks:?}, {split:?} vs whole frames: {e:.2e}",
                vae.part()
            );
            assert!(e <= 1e-6, "{split:?}: {e:.2e}");
        }
    };
    let dec = Vae::load(&w, Part::Decoder, &mut dev).unwrap();
    let (d, z) = input("vae_tiny/latent_t3_8x8.safetensors", "latent");
    check(
        &mut dev,
        &dec,
        (&z, d),
        &[2, 1],
        &[bands(None, 24), bands(Some(1), 8)],
    );
    let (d, z) = input("vae_tiny/latent_t2_6x10.safetensors", "latent");
    check(&mut dev, &dec, (&z, d), &[1, 1], &[bands(Some(2), 16)]);
    let enc = Vae::load(&w, Part::Encoder, &mut dev).unwrap();
    let (d, v) = input("vae_tiny/video_t9_32x48.safetensors", "video");
    check(
        &mut dev,
        &enc,
        (&v, d),
        &[5, 4],
        &[bands(None, 8), bands(Some(1), 24)],
    );
    let x = dev.upload(&v, d).unwrap();
    assert!(enc
        .step_split(&mut dev, &mut enc.stream(), x, bands(None, 0))
        .is_err());
}

/// States parked off the device between uses: the same values in chunks, groups and bands, no
/// state left on the device after a parked step, and the plan's device peak lower by about
/// the state, which the host holds instead.
#[test]
fn parked_states_change_nothing_and_leave_the_device() {
    use seedvae_exec::MemoryPlanner;
    let mut dev = Reference::default();
    let w = weights();
    for (part, file, name, chunks) in [
        (
            Part::Decoder,
            "vae_tiny/latent_t3_8x8.safetensors",
            "latent",
            vec![2, 1],
        ),
        (
            Part::Encoder,
            "vae_tiny/video_t9_32x48.safetensors",
            "video",
            vec![5, 4],
        ),
    ] {
        let vae = Vae::load(&w, part, &mut dev).unwrap();
        let (d, x) = input(file, name);
        let (_, want) = run(&vae, &mut dev, &x, d, &chunks);
        for split in [
            Split::default(),
            Split::groups(Some(1)),
            Split {
                groups: Some(1),
                band_px: Some(16),
                park: false,
            },
        ] {
            let parked = Split {
                park: true,
                ..split
            };
            let mut s = vae.stream();
            let mut got = Vec::new();
            let mut t0 = 0;
            for &n in &chunks {
                let a = dev
                    .upload(&frames(&x, d, t0, t0 + n), Dims { t: n, ..d })
                    .unwrap();
                got.push(vae.step_split(&mut dev, &mut s, a, parked).unwrap());
                assert_eq!(
                    s.bytes(4),
                    0,
                    "{part} {parked:?}: a state left on the device"
                );
                assert!(s.parked_bytes(4) > 0, "{part} {parked:?}: nothing parked");
                t0 += n;
            }
            let o = got[0].dims;
            let joined: Vec<f32> = (0..o.c)
                .flat_map(|c| {
                    got.iter().flat_map(move |a| {
                        let n = a.dims.t * o.plane();
                        a.buf[c * n..(c + 1) * n].iter().copied()
                    })
                })
                .collect();
            assert_eq!(joined, want, "{part} {parked:?}");
            // A step without parking brings the states back to stay.
            let a = dev
                .upload(&frames(&x, d, 0, chunks[1]), Dims { t: chunks[1], ..d })
                .unwrap();
            vae.step_split(&mut dev, &mut s, a, split).unwrap();
            assert!(s.bytes(4) > 0 && s.parked_bytes(4) == 0, "{part} {split:?}");
        }
    }
    // The plan: the device holds one conv's state at a time (a band's rows of it in bands),
    // the host all of them.
    let mut planner = MemoryPlanner::load(&w, Part::Decoder, 2).unwrap();
    let chunks = [Dims::new(16, 1, 32, 32); 3];
    let here = planner.peak(&chunks, Split::default()).unwrap();
    assert_eq!(planner.host_peak(), 0);
    let parked = planner
        .peak(
            &chunks,
            Split {
                park: true,
                ..Split::default()
            },
        )
        .unwrap();
    let host = planner.host_peak();
    let mut dev = seedvae_exec::Planned::new(2);
    let vae = Vae::load(&w, Part::Decoder, &mut dev).unwrap();
    let mut s = vae.stream();
    for d in chunks {
        let x = dev.input(d).unwrap();
        vae.step(&mut dev, &mut s, x).unwrap();
    }
    // Every state, and the tail's input while its frame groups run.
    let state = s.bytes(2);
    assert!(
        host >= state,
        "the host holds every state: {host} < {state}"
    );
    assert!(
        parked < here && here - parked > state / 2,
        "parked {parked} vs {here}, state {state}"
    );
}

/// A device that limits tensor sizes (cuDNN indexes with 32 bits) gets frame groups sized from
/// the largest full-resolution tensor, head frames included — the result unchanged — and a clear
/// error when not even one frame fits.
#[test]
fn a_tensor_size_limit_cuts_frame_groups_and_changes_nothing() {
    let w = weights();
    let mut dev = Reference::default();
    let dec = Vae::load(&w, Part::Decoder, &mut dev).unwrap();
    // The tiny decoder's tail: 32 channels at 64 × 64 (and its upscale conv: 128 at 32 × 32).
    let per = dec.full_resolution_frame_elements(8, 8, false);
    assert_eq!(per, 32 * 64 * 64);
    assert_eq!(dec.full_resolution_frame_elements(8, 8, true), per);
    let enc = Vae::load(&w, Part::Encoder, &mut dev).unwrap();
    // The encoder's head: its first downsampler reads 32 channels of 33 × 49 (padded).
    assert_eq!(
        enc.full_resolution_frame_elements(32, 48, false),
        32 * 33 * 49
    );
    // In bands the padded input is a band's: the whole tensors are 32 × 32 × 48.
    assert_eq!(
        enc.full_resolution_frame_elements(32, 48, true),
        32 * 32 * 48
    );
    let (d, z) = input("vae_tiny/latent_t3_8x8.safetensors", "latent");
    let whole = {
        let x = dev.upload(&z, d).unwrap();
        let y = dec.step(&mut dev, &mut dec.stream(), x).unwrap();
        dev.download(&y).unwrap()
    };
    // Room for 4 frames of the largest tensor: groups of 2 (plus the 2 head frames).
    let mut limited = Reference::limited(0, 4 * per);
    let x = limited.upload(&z, d).unwrap();
    let y = dec.step(&mut limited, &mut dec.stream(), x).unwrap();
    let e = rel_l2(&to_f64(&limited.download(&y).unwrap()), &to_f64(&whole));
    assert!(e <= 1e-6, "{e:.2e}");
    let mut tiny = Reference::limited(0, 2 * per);
    let x = tiny.upload(&z, d).unwrap();
    let err = match dec.step(&mut tiny, &mut dec.stream(), x) {
        Ok(_) => panic!("one frame cannot fit"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("at most") && err.contains("input of 8×8") && err.contains("in bands"),
        "{err}"
    );
    // In bands only a band meets the head frames: the same limit takes groups of 2 frames.
    let x = tiny.upload(&z, d).unwrap();
    let bands = Split {
        band_px: Some(16),
        ..Split::default()
    };
    let y = dec
        .step_split(&mut tiny, &mut dec.stream(), x, bands)
        .unwrap();
    let e = rel_l2(&to_f64(&tiny.download(&y).unwrap()), &to_f64(&whole));
    assert!(e <= 1e-6, "{e:.2e}");
}

/// Counts the arithmetic of the calls a schedule makes (convolutions by their output, attention
/// by its tokens), on the reference device.
struct Counting {
    dev: Reference,
    flops: f64,
}

impl Device for Counting {
    type Buf = Vec<f32>;
    type Pending = Vec<f32>;
    fn constant(&mut self, v: &[f32]) -> seedvae_exec::Result<Vec<f32>> {
        self.dev.constant(v)
    }
    fn filter(&mut self, v: &[f32], s: [usize; 5]) -> seedvae_exec::Result<Vec<f32>> {
        self.dev.filter(v, s)
    }
    fn upload(&mut self, v: &[f32], d: Dims) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.upload(v, d)
    }
    fn download_start(&mut self, a: &Act<Vec<f32>>) -> seedvae_exec::Result<Vec<f32>> {
        self.dev.download_start(a)
    }
    fn download_finish(&mut self, p: Vec<f32>) -> seedvae_exec::Result<Vec<f32>> {
        self.dev.download_finish(p)
    }
    fn conv(
        &mut self,
        x: &Act<Vec<f32>>,
        head: Option<&Act<Vec<f32>>>,
        w: &seedvae_exec::ConvWeights<Vec<f32>>,
        st: usize,
        pad: seedvae_exec::Pad,
    ) -> seedvae_exec::Result<Act<Vec<f32>>> {
        let y = self.dev.conv(x, head, w, st, pad)?;
        let taps = (w.cin * w.kt * w.ks * w.ks) as f64;
        self.flops += 2.0 * taps * y.dims.count().unwrap() as f64;
        Ok(y)
    }
    fn tail(
        &mut self,
        x: &Act<Vec<f32>>,
        h: Option<&Act<Vec<f32>>>,
        n: usize,
    ) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.tail(x, h, n)
    }
    fn repeat_first(&mut self, x: &Act<Vec<f32>>, n: usize) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.repeat_first(x, n)
    }
    type Stats = Vec<(f64, f64)>;
    fn norm_stats(
        &mut self,
        x: &Act<Vec<f32>>,
        n: &seedvae_exec::NormWeights<Vec<f32>>,
    ) -> seedvae_exec::Result<Self::Stats> {
        self.dev.norm_stats(x, n)
    }
    fn norm_rows(
        &mut self,
        x: &Act<Vec<f32>>,
        s: &Self::Stats,
        n: &seedvae_exec::NormWeights<Vec<f32>>,
        silu: bool,
        r0: usize,
        r1: usize,
    ) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.norm_rows(x, s, n, silu, r0, r1)
    }
    fn rows(
        &mut self,
        x: &Act<Vec<f32>>,
        a: usize,
        b: usize,
        room: bool,
    ) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.rows(x, a, b, room)
    }
    fn empty(&mut self, d: Dims) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.empty(d)
    }
    fn put_rows(
        &mut self,
        dst: &mut Act<Vec<f32>>,
        src: &Act<Vec<f32>>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> seedvae_exec::Result<()> {
        self.dev.put_rows(dst, src, s0, d0, n)
    }
    fn add(&mut self, a: &mut Act<Vec<f32>>, b: &Act<Vec<f32>>) -> seedvae_exec::Result<()> {
        self.dev.add(a, b)
    }
    fn shuffle(
        &mut self,
        u: &Act<Vec<f32>>,
        c: usize,
        t: bool,
        d: bool,
    ) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.shuffle(u, c, t, d)
    }
    fn attention(
        &mut self,
        x: &Act<Vec<f32>>,
        a: &seedvae_exec::AttnWeights<Vec<f32>>,
    ) -> seedvae_exec::Result<Act<Vec<f32>>> {
        let (p, c, t) = (x.dims.plane() as f64, a.c as f64, x.dims.t as f64);
        // Q, K, V and the output projection; scores and the mix.
        self.flops += t * (8.0 * c * c * p + 4.0 * p * p * c);
        self.dev.attention(x, a)
    }
    fn frames(
        &mut self,
        x: &Act<Vec<f32>>,
        a: usize,
        b: usize,
    ) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.frames(x, a, b)
    }
    fn concat(&mut self, parts: &[Act<Vec<f32>>]) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.concat(parts)
    }
    fn channels(&mut self, x: &Act<Vec<f32>>, n: usize) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.channels(x, n)
    }
    type Parked = Act<Vec<f32>>;
    fn park(&mut self, a: Act<Vec<f32>>) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.park(a)
    }
    fn unpark(&mut self, p: Act<Vec<f32>>) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.unpark(p)
    }
    fn park_empty(&mut self, dims: Dims) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.park_empty(dims)
    }
    fn park_band(
        &mut self,
        dst: &mut Act<Vec<f32>>,
        src: Act<Vec<f32>>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> seedvae_exec::Result<()> {
        self.dev.park_band(dst, src, s0, d0, n)
    }
    fn unpark_part(
        &mut self,
        p: &Act<Vec<f32>>,
        t: (usize, usize),
        r: (usize, usize),
    ) -> seedvae_exec::Result<Act<Vec<f32>>> {
        self.dev.unpark_part(p, t, r)
    }
}

/// The arithmetic the executor states per frame is what a steady-state chunk's calls do: the
/// decoder's second one-latent-frame chunk (4 output frames) and the encoder's second chunk of
/// 4 frames, counted call by call.
#[test]
fn the_stated_flops_per_frame_are_what_the_calls_do() {
    let w = weights();
    let mut dev = Counting {
        dev: Reference::default(),
        flops: 0.0,
    };
    let (d, x) = input("vae_tiny/latent_t3_8x8.safetensors", "latent");
    let dec = Vae::load(&w, Part::Decoder, &mut dev).unwrap();
    let mut s = dec.stream();
    let first = dev
        .upload(&frames(&x, d, 0, 1), Dims { t: 1, ..d })
        .unwrap();
    dec.step(&mut dev, &mut s, first).unwrap();
    dev.flops = 0.0;
    let second = dev
        .upload(&frames(&x, d, 1, 2), Dims { t: 1, ..d })
        .unwrap();
    let y = dec.step(&mut dev, &mut s, second).unwrap();
    assert_eq!(y.dims.t, 4);
    let stated = dec.flops_per_frame(d.h, d.w);
    let counted = dev.flops / 4.0;
    assert!(
        (stated / counted - 1.0).abs() < 1e-12,
        "{stated} vs {counted}"
    );

    let (d, x) = input("vae_tiny/video_t9_32x48.safetensors", "video");
    let enc = Vae::load(&w, Part::Encoder, &mut dev).unwrap();
    let mut s = enc.stream();
    let first = dev
        .upload(&frames(&x, d, 0, 5), Dims { t: 5, ..d })
        .unwrap();
    enc.step(&mut dev, &mut s, first).unwrap();
    dev.flops = 0.0;
    let second = dev
        .upload(&frames(&x, d, 5, 9), Dims { t: 4, ..d })
        .unwrap();
    enc.step(&mut dev, &mut s, second).unwrap();
    let stated = enc.flops_per_frame(d.h, d.w);
    let counted = dev.flops / 4.0;
    assert!(
        (stated / counted - 1.0).abs() < 1e-12,
        "{stated} vs {counted}"
    );
}

/// The CUDA device's memory plan (host-only): a steady chunk holds at least the weights and the
/// carried state; frame groups lower the peak of a large frame; the activations grow with the
/// frame's area.
#[test]
fn the_cuda_memory_plan_counts_weights_state_and_groups() {
    use seedvae_exec::{planned_peak, Planned};
    let w = weights();
    let latent = |t, h, wd| Dims::new(16, t, h, wd);
    let chunks = |h, wd| vec![latent(1, h, wd), latent(1, h, wd), latent(1, h, wd)];
    for vb in [2, 4] {
        let mut dev = Planned::new(vb);
        let vae = Vae::load(&w, Part::Decoder, &mut dev).unwrap();
        let weights = dev.peak();
        let mut s = vae.stream();
        for d in chunks(32, 32) {
            let x = dev.input(d).unwrap();
            vae.step(&mut dev, &mut s, x).unwrap();
        }
        let whole = planned_peak(&w, Part::Decoder, vb, &chunks(32, 32), Split::default()).unwrap();
        assert!(
            whole > weights + s.bytes(vb),
            "{whole} vs {weights} + {}",
            s.bytes(vb)
        );
        let one = Split::groups(Some(1));
        let grouped = planned_peak(&w, Part::Decoder, vb, &chunks(32, 32), one).unwrap();
        assert!(grouped < whole, "{grouped} !< {whole}");
        // Bands of a quarter of the 256 px frame hold less again.
        let banded = Split {
            band_px: Some(64),
            ..one
        };
        let bands = planned_peak(&w, Part::Decoder, vb, &chunks(32, 32), banded).unwrap();
        assert!(bands < grouped, "{bands} !< {grouped}");
        let bigger =
            planned_peak(&w, Part::Decoder, vb, &chunks(64, 64), Split::default()).unwrap();
        let ratio = (bigger - weights) as f64 / (whole - weights) as f64;
        assert!(
            (3.5..=4.5).contains(&ratio),
            "4x the area: {ratio:.2}x the bytes"
        );
    }
    let d = [Dims::new(3, 5, 64, 64)];
    let grouped = planned_peak(&w, Part::Encoder, 2, &d, Split::groups(Some(1))).unwrap();
    let bands = Split {
        groups: Some(1),
        band_px: Some(16),
        park: false,
    };
    let banded = planned_peak(&w, Part::Encoder, 2, &d, bands).unwrap();
    assert!(banded < grouped, "{banded} !< {grouped}");
}

//! seedvae's own executor on the GPU (`seedvae-exec`, device `cuda`), checked and timed.
//!
//! `exec check FIXTURES` — the tiny fixture's decoder and encoder on the CUDA device against the
//! reference device and the original module's goldens (one call, chunks, frame groups, bands); exit 1
//! on a miss (fp32 storage within 1e-5, fp16 within 3e-3). `exec time WEIGHTS H W T [GROUP|-] [BAND_PX|-] [park]`
//! (fp16 storage; `time32`: fp32) — decode a seeded latent `[16, T, H/8, W/8]` (VAE space) in
//! chunks of one latent frame, the tail in groups of GROUP frames, every layer in bands of
//! BAND_PX rows of the frame, the carried states parked in host memory with `park`; prints the time per output frame and the device's peak memory
//! against the plan. `exec time-enc WEIGHTS H W T …` times the encoder on T seeded frames of
//! H × W (fp16; calls of 4n + 1 frames, then 4n), per input frame.
//!
//! Library folders: `$SEEDVAE_SITE_PACKAGES` (its `nvidia/*/lib`), kernel cache `$SEEDVAE_KERNELS`.

use seedvae_exec::{Cuda, CudaOptions, Device, Dims, Elem, Reference, Split, Vae};
use seedvae_weights::{Part, WeightFile};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn options() -> CudaOptions {
    let lib_dirs = std::env::var_os("SEEDVAE_SITE_PACKAGES")
        .map(|s| seedvae_exec::wheel_lib_dirs(Path::new(&s)))
        .unwrap_or_default();
    CudaOptions {
        lib_dirs,
        kernel_cache: std::env::var_os("SEEDVAE_KERNELS").map(PathBuf::from),
    }
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let n: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (d / n.max(1e-300)).sqrt()
}

fn tensor(file: &Path, names: &[&str]) -> (Vec<usize>, Vec<f32>) {
    let w = WeightFile::open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let name = names.iter().find(|n| w.get(n).is_some()).expect("tensor");
    (
        w.get(name).unwrap().shape.clone(),
        w.f32(name).unwrap().into_owned(),
    )
}

/// `[C, T, H, W]` frames [t0, t1).
fn frames(v: &[f32], d: Dims, t0: usize, t1: usize) -> Vec<f32> {
    let p = d.plane();
    (0..d.c)
        .flat_map(|c| v[(c * d.t + t0) * p..(c * d.t + t1) * p].to_vec())
        .collect()
}

/// Run `vae` on `x` in chunks `sizes`, each cut as `split`; the output joined in time.
fn run<D: Device>(
    vae: &Vae<D::Buf>,
    dev: &mut D,
    x: &[f32],
    d: Dims,
    sizes: &[usize],
    split: Split,
) -> Vec<f32> {
    let mut s = vae.stream();
    let mut outs = Vec::new();
    let mut t0 = 0;
    for &n in sizes {
        let a = dev
            .upload(&frames(x, d, t0, t0 + n), Dims { t: n, ..d })
            .unwrap();
        let y = vae.step_split(dev, &mut s, a, split).unwrap();
        outs.push((y.dims, dev.download(&y).unwrap()));
        t0 += n;
    }
    let (o, _) = outs[0];
    let mut v = Vec::new();
    for c in 0..o.c {
        for (od, ov) in &outs {
            let n = od.t * od.plane();
            v.extend_from_slice(&ov[c * n..(c + 1) * n]);
        }
    }
    v
}

/// `[C, T, H, W]` rows [r0, r1) of every frame.
fn rows_of(v: &[f32], d: Dims, r0: usize, r1: usize) -> Vec<f32> {
    (0..d.c * d.t)
        .flat_map(|ct| v[(ct * d.h + r0) * d.w..(ct * d.h + r1) * d.w].to_vec())
        .collect()
}

/// Max |a − b| and how many values differ at all.
fn diff(a: &[f32], b: &[f32]) -> (f32, usize) {
    a.iter().zip(b).fold((0f32, 0), |(m, n), (x, y)| {
        ((x - y).abs().max(m), n + (x != y) as usize)
    })
}

/// Where a budget's cuts round differently from the whole frame, at `h × w`: each conv shape
/// the decoder calls against the same conv over its top half of rows (with their halo) and over
/// its first frame alone, then the decoder over `t` latent frames whole, in frame groups, in
/// bands and parked, each against the whole run (and the whole run against itself); `t` = 0:
/// the convs of one latent frame alone.
fn cuts(weights: &Path, h: usize, w: usize, t: usize) {
    let wf = WeightFile::open(weights).unwrap();
    let mut dev =
        Cuda::<half::f16>::open(&options()).unwrap_or_else(|e| panic!("CUDA device: {e}"));
    let mut rng = seedvae_weights::synth::Rng::new(5);
    let mut rand = |n: usize, scale: f32| {
        let mut v = vec![0f32; n];
        rng.fill_normal(&mut v);
        v.iter_mut().for_each(|x| *x *= scale);
        v
    };
    // Every conv the decoder calls, once per shape, against its own cuts.
    {
        let mut checked = Profiled {
            dev: Cuda::<half::f16>::open(&options()).unwrap_or_else(|e| panic!("CUDA: {e}")),
            spent: Default::default(),
            cuts: Some(Default::default()),
            differing: 0,
        };
        let vae = Vae::load(&wf, Part::Decoder, &mut checked).unwrap();
        let n = t.clamp(1, 2);
        let d = Dims::new(16, n, h / 8, w / 8);
        let z = rand(d.count().unwrap(), 1.0);
        run(&vae, &mut checked, &z, d, &vec![1; n], Split::default());
        let shapes = checked.cuts.as_ref().map_or(0, |c| c.len());
        println!(
            "{} of {shapes} conv shapes round differently over half their rows or one frame",
            checked.differing
        );
    }
    if t == 0 {
        return;
    }
    let vae = Vae::load(&wf, Part::Decoder, &mut dev).unwrap();
    let d = Dims::new(16, t, h / 8, w / 8);
    let z = rand(d.count().unwrap(), 1.0);
    let sizes = vec![1; t];
    let whole = run(&vae, &mut dev, &z, d, &sizes, Split::default());
    let band = Split {
        groups: None,
        band_px: Some(h / 4),
        park: false,
    };
    for split in [
        Split::default(),
        Split::groups(Some(1)),
        band,
        Split {
            groups: Some(1),
            ..band
        },
        Split { park: true, ..band },
    ] {
        let got = run(&vae, &mut dev, &z, d, &sizes, split);
        let (m, n) = diff(&got, &whole);
        println!(
            "decode {w}x{h}, {t} latent frames, {split:?}: vs whole rel L2 {:.3e}, max abs {m:.3e}, {n} of {} values differ",
            rel(&got, &whole),
            got.len()
        );
    }
}

/// A check: its name, input and golden files, the golden's tensor names, and the chunk
/// patterns to run (empty: one call; `[1]`: one frame at a time).
type Case = (String, PathBuf, PathBuf, Vec<&'static str>, Vec<Vec<usize>>);

/// The CUDA device storing `E` against the reference device and the goldens, within `bound`.
fn check<E: Elem>(dir: &Path, bound: f64) -> bool {
    let w = WeightFile::open(dir.join("weights.safetensors")).unwrap();
    let mut cuda = Cuda::<E>::open(&options()).unwrap_or_else(|e| panic!("CUDA device: {e}"));
    println!(
        "GPU: {} (compute capability {:?}), storage {}, bound {bound:.0e}",
        cuda.name,
        cuda.compute_capability,
        E::NAME
    );
    let mut reference = Reference::default();
    let mut ok = true;
    for part in [Part::Decoder, Part::Encoder] {
        let gpu = Vae::load(&w, part, &mut cuda).unwrap();
        let cpu = Vae::load(&w, part, &mut reference).unwrap();
        let cases: Vec<Case> = match part {
            Part::Decoder => ["t3_8x8", "t2_6x10"]
                .iter()
                .map(|c| {
                    (
                        format!("decode {c}"),
                        dir.join(format!("latent_{c}.safetensors")),
                        dir.join(format!("decoded_{c}.safetensors")),
                        vec!["decoded_f64", "decoded"],
                        vec![vec![], vec![1]],
                    )
                })
                .collect(),
            Part::Encoder => vec![(
                "encode t9_32x48".into(),
                dir.join("video_t9_32x48.safetensors"),
                dir.join("encoded_t9_32x48.safetensors"),
                vec!["latent_mean_f64", "latent_mean"],
                vec![vec![], vec![5, 4]],
            )],
        };
        for (name, input, golden, keys, patterns) in cases {
            let (s, x) = tensor(&input, &["latent", "video"]);
            let d = Dims::new(s[1], s[2], s[3], s[4]);
            let (_, g) = tensor(&golden, &keys);
            let want = run(&cpu, &mut reference, &x, d, &[d.t], Split::default());
            for pat in patterns {
                let sizes = if pat.is_empty() {
                    vec![d.t]
                } else if pat == [1] {
                    vec![1; d.t]
                } else {
                    pat.clone()
                };
                let bands = Split {
                    groups: Some(1),
                    band_px: Some(24),
                    park: false,
                };
                let parked = Split {
                    park: true,
                    ..Split::default()
                };
                let parked_bands = Split {
                    park: true,
                    ..bands
                };
                // Also each cut against the whole chunk on this GPU: the rounding a budget
                // changes (the convs of a family run one cuDNN engine at every extent).
                let mut whole = None;
                for split in [
                    Split::default(),
                    Split::groups(Some(1)),
                    bands,
                    parked,
                    parked_bands,
                ] {
                    let got = run(&gpu, &mut cuda, &x, d, &sizes, split);
                    let (e_ref, e_gold) = (rel(&got, &want), rel(&got, &g));
                    let e_whole = rel(&got, whole.get_or_insert_with(|| got.clone()));
                    let pass = e_ref <= bound && e_gold <= bound;
                    ok &= pass;
                    println!(
                        "{name} chunks {sizes:?} {split:?}: vs reference {e_ref:.2e}, vs golden {e_gold:.2e}, vs whole {e_whole:.2e} {}",
                        if pass { "ok" } else { "FAIL" }
                    );
                }
            }
        }
    }
    ok
}

/// Every device function on a seeded random input, on the CUDA device storing `E` and on the
/// reference device: the relative L2 of each (a NaN or a miss names the function).
fn ops<E: Elem>() -> bool {
    use seedvae_exec::{AttnWeights, ConvWeights, NormWeights, Pad};
    let mut g = Reference::default();
    let mut c = Cuda::<E>::open(&options()).unwrap_or_else(|e| panic!("CUDA device: {e}"));
    let mut rng = seedvae_weights::synth::Rng::new(11);
    let mut rand = |n: usize, scale: f32| {
        let mut v = vec![0f32; n];
        rng.fill_normal(&mut v);
        v.iter_mut().for_each(|x| *x *= scale);
        v
    };
    let d = Dims::new(64, 3, 10, 12);
    let x = rand(d.count().unwrap(), 1.0);
    let head = rand(64 * 2 * 120, 1.0);
    let conv = |cin: usize,
                cout: usize,
                kt: usize,
                ks: usize,
                rand: &mut dyn FnMut(usize, f32) -> Vec<f32>| {
        let s = 1.0 / ((cin * kt * ks * ks) as f32).sqrt();
        (
            rand(cout * cin * kt * ks * ks, s),
            rand(cout, 0.1),
            cin,
            cout,
            kt,
            ks,
        )
    };
    let w3 = conv(64, 32, 3, 3, &mut rand);
    let w1 = conv(64, 128, 1, 1, &mut rand);
    let w_rgb_in = conv(3, 32, 3, 3, &mut rand);
    let w_rgb_out = conv(64, 3, 3, 3, &mut rand);
    let rgb = rand(3 * 3 * 120, 1.0);
    let rgb_head = rand(3 * 2 * 120, 1.0);
    let gamma = rand(64, 1.0);
    let beta = rand(64, 0.5);
    let lin: Vec<(Vec<f32>, Vec<f32>)> = (0..4)
        .map(|_| (rand(64 * 64, 0.125), rand(64, 0.1)))
        .collect();
    let tol = if E::NAME == "f16" { 3e-3 } else { 1e-5 };
    let mut ok = true;
    macro_rules! both {
        ($name:expr, |$dev:ident| $body:expr) => {{
            let want = {
                let $dev = &mut g;
                $body
            };
            let got = {
                let $dev = &mut c;
                $body
            };
            let e = rel(&got, &want);
            let pass = e <= tol;
            ok &= pass;
            println!(
                "{} {:<28} rel L2 {e:.2e} {}",
                E::NAME,
                $name,
                if pass { "ok" } else { "FAIL" }
            );
        }};
    }
    fn cw<D: Device>(
        dev: &mut D,
        w: &(Vec<f32>, Vec<f32>, usize, usize, usize, usize),
    ) -> ConvWeights<D::Buf> {
        ConvWeights {
            w: dev.filter(&w.0, [w.3, w.2, w.4, w.5, w.5]).unwrap(),
            b: dev.constant(&w.1).unwrap(),
            cin: w.2,
            cout: w.3,
            kt: w.4,
            ks: w.5,
        }
    }
    both!("upload, download", |dev| {
        let a = dev.upload(&x, d).unwrap();
        dev.download(&a).unwrap()
    });
    both!("frames (a copy)", |dev| {
        let a = dev.upload(&x, d).unwrap();
        let f = dev.frames(&a, 0, 3).unwrap();
        dev.download(&f).unwrap()
    });
    /// A conv of `w` over `x` (`d`) with two head frames `head`.
    fn with_head<D: Device>(
        dev: &mut D,
        (x, head, d): (&[f32], &[f32], Dims),
        w: &(Vec<f32>, Vec<f32>, usize, usize, usize, usize),
        st: usize,
        pad: Pad,
    ) -> Vec<f32> {
        let a = dev.upload(x, d).unwrap();
        let h = dev.upload(head, Dims { t: 2, ..d }).unwrap();
        let w = cw(dev, w);
        let y = dev.conv(&a, Some(&h), &w, st, pad).unwrap();
        dev.download(&y).unwrap()
    }
    let rgb_d = Dims { c: 3, ..d };
    both!("conv 3x3x3 with head", |dev| with_head(
        dev,
        (&x, &head, d),
        &w3,
        1,
        Pad::Same
    ));
    both!("group norm, conv with head", |dev| {
        // GroupNorm's output has room for the head in front (CUDA): the conv reads in place.
        let a = dev.upload(&x, d).unwrap();
        let n = NormWeights {
            gamma: dev.constant(&gamma).unwrap(),
            beta: dev.constant(&beta).unwrap(),
            c: 64,
        };
        let y = dev.group_norm(&a, &n, true).unwrap();
        let h = dev.repeat_first(&y, 2).unwrap();
        let w = cw(dev, &w3);
        let z = dev.conv(&y, Some(&h), &w, 1, Pad::Same).unwrap();
        let kept = dev.tail(&y, Some(&h), 2).unwrap();
        let z2 = dev.conv(&y, Some(&kept), &w, 1, Pad::Same).unwrap();
        let j = dev.concat(&[z, z2]).unwrap();
        dev.download(&j).unwrap()
    });
    both!("conv 3 -> 32 with head", |dev| with_head(
        dev,
        (&rgb, &rgb_head, rgb_d),
        &w_rgb_in,
        1,
        Pad::Same
    ));
    both!("conv 64 -> 3 with head", |dev| with_head(
        dev,
        (&x, &head, d),
        &w_rgb_out,
        1,
        Pad::Same
    ));
    both!("channels (first 16)", |dev| {
        let a = dev.upload(&x, d).unwrap();
        let y = dev.channels(&a, 16).unwrap();
        dev.download(&y).unwrap()
    });
    both!("conv 1x1x1", |dev| {
        let a = dev.upload(&x, d).unwrap();
        let w = cw(dev, &w1);
        let y = dev.conv(&a, None, &w, 1, Pad::Same).unwrap();
        dev.download(&y).unwrap()
    });
    both!("conv stride 2, right/bottom pad", |dev| with_head(
        dev,
        (&x, &head, d),
        &w3,
        2,
        Pad::RightBottom
    ));
    both!("group norm + silu", |dev| {
        let a = dev.upload(&x, d).unwrap();
        let n = NormWeights {
            gamma: dev.constant(&gamma).unwrap(),
            beta: dev.constant(&beta).unwrap(),
            c: 64,
        };
        let y = dev.group_norm(&a, &n, true).unwrap();
        dev.download(&y).unwrap()
    });
    both!("bands: rows, a band's GroupNorm, rows put back", |dev| {
        // Rows 3..8 of each frame normalized with the whole frame's statistics, put into
        // rows 1..6 of a frame 10 rows high whose other rows come from a second band.
        let a = dev.upload(&x, d).unwrap();
        let n = NormWeights {
            gamma: dev.constant(&gamma).unwrap(),
            beta: dev.constant(&beta).unwrap(),
            c: 64,
        };
        let st = dev.norm_stats(&a, &n).unwrap();
        let nb = dev.norm_rows(&a, &st, &n, true, 3, 8).unwrap();
        let mut out = dev.empty(d).unwrap();
        let rest = dev.rows(&a, 0, d.h, true).unwrap();
        dev.put_rows(&mut out, &rest, 0, 0, d.h).unwrap();
        dev.put_rows(&mut out, &nb, 0, 1, 5).unwrap();
        dev.download(&out).unwrap()
    });
    both!("add", |dev| {
        let mut a = dev.upload(&x, d).unwrap();
        let b = dev.upload(&x, d).unwrap();
        dev.add(&mut a, &b).unwrap();
        dev.download(&a).unwrap()
    });
    both!("shuffle temporal, drop", |dev| {
        let a = dev.upload(&x, d).unwrap();
        let y = dev.shuffle(&a, 8, true, true).unwrap();
        dev.download(&y).unwrap()
    });
    both!("tail / repeat / frames / concat", |dev| {
        let a = dev.upload(&x, d).unwrap();
        let h = dev.upload(&head, Dims { t: 2, ..d }).unwrap();
        let t = dev.tail(&a, Some(&h), 2).unwrap();
        let r = dev.repeat_first(&a, 2).unwrap();
        let f = dev.frames(&a, 1, 3).unwrap();
        let j = dev.concat(&[t, r, f]).unwrap();
        dev.download(&j).unwrap()
    });
    both!("attention", |dev| {
        let a = dev.upload(&x, d).unwrap();
        let lw: Vec<_> = lin
            .iter()
            .map(|(w, b)| (dev.constant(w).unwrap(), dev.constant(b).unwrap()))
            .collect();
        let mut lw = lw.into_iter();
        let norm = NormWeights {
            gamma: dev.constant(&gamma).unwrap(),
            beta: dev.constant(&beta).unwrap(),
            c: 64,
        };
        let at = AttnWeights {
            norm,
            q: lw.next().unwrap(),
            k: lw.next().unwrap(),
            v: lw.next().unwrap(),
            o: lw.next().unwrap(),
            c: 64,
        };
        let y = dev.attention(&a, &at).unwrap();
        dev.download(&y).unwrap()
    });
    ok
}

/// A device that times every call (synchronizing before and after): where a decode's time goes.
struct Profiled<D> {
    dev: D,
    spent: std::collections::BTreeMap<&'static str, (usize, f64)>,
    /// Some: every conv shape met is also run over its top half of rows and its first frame
    /// alone, and the differences printed (the shapes already checked).
    cuts: Option<std::collections::BTreeSet<String>>,
    /// How many of those shapes rounded differently in a cut.
    differing: usize,
}

impl<D: Device> Profiled<D> {
    fn timed<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut D) -> seedvae_exec::Result<T>,
    ) -> seedvae_exec::Result<T> {
        self.dev.synchronize()?;
        let t = Instant::now();
        let r = f(&mut self.dev)?;
        self.dev.synchronize()?;
        let e = self.spent.entry(what).or_default();
        e.0 += 1;
        e.1 += t.elapsed().as_secs_f64();
        Ok(r)
    }

    /// The conv `y` of `x` (with `head`) against the same conv over the rows its top half
    /// reads and over its first frame alone (a band's and a frame group's call), once a shape.
    fn check_cuts(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        head: Option<&seedvae_exec::Act<D::Buf>>,
        w: &seedvae_exec::ConvWeights<D::Buf>,
        y: &seedvae_exec::Act<D::Buf>,
    ) -> seedvae_exec::Result<()> {
        let (d, yd) = (x.dims, y.dims);
        let key = format!(
            "conv {}->{} {}x{}x{} over {}x{}x{}{}",
            w.cin,
            w.cout,
            w.kt,
            w.ks,
            w.ks,
            d.t,
            d.h,
            d.w,
            if head.is_some() { " with head" } else { "" }
        );
        if d.h < 8 || !self.cuts.as_mut().is_some_and(|c| c.insert(key.clone())) {
            return Ok(());
        }
        let dev = &mut self.dev;
        let whole = dev.download(y)?;
        let (mid, hi) = (d.h / 2, d.h / 2 + w.ks / 2);
        let xb = dev.rows(x, 0, hi, head.is_some())?;
        let hb = head.map(|h| dev.rows(h, 0, hi, false)).transpose()?;
        let yb = dev.conv(&xb, hb.as_ref(), w, 1, seedvae_exec::Pad::Same)?;
        let got = rows_of(&dev.download(&yb)?, yb.dims, 0, mid);
        let band = diff(&got, &rows_of(&whole, yd, 0, mid));
        let mut frame = None;
        if yd.t >= 2 {
            let x0 = dev.frames(x, 0, 1)?;
            let y0 = dev.conv(&x0, head, w, 1, seedvae_exec::Pad::Same)?;
            let got = dev.download(&y0)?;
            frame = Some(diff(&got, &frames(&whole, yd, 0, 1)));
        }
        println!("{key}: top half {band:?}, first frame {frame:?} (max abs, values differing)");
        if band.1 > 0 || frame.is_some_and(|f| f.1 > 0) {
            self.differing += 1;
        }
        Ok(())
    }

    fn report(&self) {
        let total: f64 = self.spent.values().map(|v| v.1).sum();
        for (k, (n, s)) in &self.spent {
            println!(
                "  {k:<14} {n:>5} calls {:>8.1} ms {:>5.1}%",
                s * 1e3,
                100.0 * s / total
            );
        }
    }
}

impl<D: Device> Device for Profiled<D> {
    type Buf = D::Buf;
    fn constant(&mut self, v: &[f32]) -> seedvae_exec::Result<D::Buf> {
        self.dev.constant(v)
    }
    fn filter(&mut self, v: &[f32], shape: [usize; 5]) -> seedvae_exec::Result<D::Buf> {
        self.dev.filter(v, shape)
    }
    fn upload(&mut self, v: &[f32], d: Dims) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("upload", |x| x.upload(v, d))
    }
    type Pending = D::Pending;
    fn download_start(
        &mut self,
        a: &seedvae_exec::Act<D::Buf>,
    ) -> seedvae_exec::Result<D::Pending> {
        self.timed("download", |x| x.download_start(a))
    }
    fn download_finish(&mut self, p: D::Pending) -> seedvae_exec::Result<Vec<f32>> {
        self.timed("download", |x| x.download_finish(p))
    }
    fn conv(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        head: Option<&seedvae_exec::Act<D::Buf>>,
        w: &seedvae_exec::ConvWeights<D::Buf>,
        st: usize,
        pad: seedvae_exec::Pad,
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        let what = match (w.kt, w.ks) {
            (1, 1) => "conv 1x1x1",
            (1, _) => "conv 1x3x3",
            _ => "conv 3x3x3",
        };
        let y = self.timed(what, |d| d.conv(x, head, w, st, pad))?;
        if self.cuts.is_some() && pad == seedvae_exec::Pad::Same && st == 1 {
            self.check_cuts(x, head, w, &y)?;
        }
        Ok(y)
    }
    fn tail(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        head: Option<&seedvae_exec::Act<D::Buf>>,
        n: usize,
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("keep frames", |d| d.tail(x, head, n))
    }
    fn repeat_first(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        n: usize,
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("keep frames", |d| d.repeat_first(x, n))
    }
    type Stats = D::Stats;
    fn norm_stats(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        n: &seedvae_exec::NormWeights<D::Buf>,
    ) -> seedvae_exec::Result<D::Stats> {
        self.timed("group norm", |d| d.norm_stats(x, n))
    }
    fn norm_rows(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        s: &D::Stats,
        n: &seedvae_exec::NormWeights<D::Buf>,
        silu: bool,
        r0: usize,
        r1: usize,
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("group norm", |d| d.norm_rows(x, s, n, silu, r0, r1))
    }
    fn rows(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        r0: usize,
        r1: usize,
        room: bool,
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("bands", |d| d.rows(x, r0, r1, room))
    }
    fn empty(&mut self, dims: Dims) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.dev.empty(dims)
    }
    fn put_rows(
        &mut self,
        dst: &mut seedvae_exec::Act<D::Buf>,
        src: &seedvae_exec::Act<D::Buf>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> seedvae_exec::Result<()> {
        self.timed("bands", |d| d.put_rows(dst, src, s0, d0, n))
    }
    fn add(
        &mut self,
        a: &mut seedvae_exec::Act<D::Buf>,
        b: &seedvae_exec::Act<D::Buf>,
    ) -> seedvae_exec::Result<()> {
        self.timed("add", |d| d.add(a, b))
    }
    fn shuffle(
        &mut self,
        u: &seedvae_exec::Act<D::Buf>,
        c: usize,
        t: bool,
        drop: bool,
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("shuffle", |d| d.shuffle(u, c, t, drop))
    }
    fn attention(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        a: &seedvae_exec::AttnWeights<D::Buf>,
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("attention", |d| d.attention(x, a))
    }
    fn frames(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        t0: usize,
        t1: usize,
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("frames", |d| d.frames(x, t0, t1))
    }
    fn concat(
        &mut self,
        parts: &[seedvae_exec::Act<D::Buf>],
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("frames", |d| d.concat(parts))
    }
    fn channels(
        &mut self,
        x: &seedvae_exec::Act<D::Buf>,
        n: usize,
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("channels", |d| d.channels(x, n))
    }
    type Parked = D::Parked;
    fn park(&mut self, a: seedvae_exec::Act<D::Buf>) -> seedvae_exec::Result<D::Parked> {
        self.timed("park", |d| d.park(a))
    }
    fn unpark(&mut self, p: D::Parked) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("park", |d| d.unpark(p))
    }
    fn park_empty(&mut self, dims: Dims) -> seedvae_exec::Result<D::Parked> {
        self.timed("park", |d| d.park_empty(dims))
    }
    fn park_band(
        &mut self,
        dst: &mut D::Parked,
        src: seedvae_exec::Act<D::Buf>,
        s0: usize,
        d0: usize,
        n: usize,
    ) -> seedvae_exec::Result<()> {
        self.timed("park", |d| d.park_band(dst, src, s0, d0, n))
    }
    fn unpark_part(
        &mut self,
        p: &D::Parked,
        t: (usize, usize),
        r: (usize, usize),
    ) -> seedvae_exec::Result<seedvae_exec::Act<D::Buf>> {
        self.timed("park", |d| d.unpark_part(p, t, r))
    }
    fn synchronize(&mut self) -> seedvae_exec::Result<()> {
        self.dev.synchronize()
    }
}

/// One 1248×720-style decode on a profiled CUDA device: the time of each kind of layer.
fn profile<E: Elem>(part: Part, weights: &Path, h: usize, w: usize, t: usize) {
    let wf = WeightFile::open(weights).unwrap();
    let cuda = Cuda::<E>::open(&options()).unwrap_or_else(|e| panic!("CUDA device: {e}"));
    let mut dev = Profiled {
        dev: cuda,
        spent: Default::default(),
        cuts: None,
        differing: 0,
    };
    let vae = Vae::load(&wf, part, &mut dev).unwrap();
    // The decoder one latent frame a call; the encoder 5 frames, then 4 a call.
    let (d, sizes) = match part {
        Part::Decoder => (Dims::new(16, t, h / 8, w / 8), vec![1; t]),
        Part::Encoder => (
            Dims::new(3, t, h, w),
            std::iter::once(t.min(5))
                .chain(std::iter::repeat_n(4, t.saturating_sub(5) / 4))
                .collect(),
        ),
    };
    let mut rng = seedvae_weights::synth::Rng::new(3);
    let mut z = vec![0f32; d.count().unwrap()];
    rng.fill_normal(&mut z);
    if part == Part::Encoder {
        z.iter_mut().for_each(|v| *v = (*v * 0.5).clamp(-1.0, 1.0));
    }
    let whole = Split::default();
    let _ = run(&vae, &mut dev, &z, d, &sizes, whole); // the algorithm searches
    dev.spent.clear();
    let start = Instant::now();
    let _ = run(&vae, &mut dev, &z, d, &sizes, whole);
    println!(
        "profile {part:?}, {} storage, {w}x{h}, {t} input frames in calls of {sizes:?}: {:.2} s (synchronized after every call)",
        E::NAME,
        start.elapsed().as_secs_f64()
    );
    dev.report();
}

/// Time `part` on a seeded input of `t` frames (latent frames for the decoder, frames for the
/// encoder) of `h × w` frame pixels, fp16 or fp32 storage, cut as `split`; print the time per
/// frame (output frames decoded, input frames encoded), the arithmetic rate, and the memory plan
/// beside the pool's measured peak.
fn time<E: Elem>(part: Part, weights: &Path, (h, w, t): (usize, usize, usize), split: Split) {
    if !weights.exists() {
        // Full-size random weights (fp16, as the real checkpoint), as `seedvae synth` writes them.
        let opts = seedvae_weights::synth::SynthOptions {
            model: seedvae_weights::Model::default(),
            dtype: seedvae_weights::DType::F16,
            seed: 1,
            format: seedvae_weights::synth::SynthFormat::SafeTensors,
        };
        seedvae_weights::synth::synth(weights, &opts, |_, _| {}).unwrap();
    }
    let wf = WeightFile::open(weights).unwrap();
    let mut cuda = Cuda::<E>::open(&options()).unwrap_or_else(|e| panic!("CUDA device: {e}"));
    let vae = Vae::load(&wf, part, &mut cuda).unwrap();
    let d = match part {
        Part::Decoder => Dims::new(16, t, h / 8, w / 8),
        Part::Encoder => Dims::new(3, t, h, w),
    };
    let mut rng = seedvae_weights::synth::Rng::new(3);
    let mut x = vec![0f32; d.count().unwrap()];
    rng.fill_normal(&mut x);
    if part == Part::Encoder {
        x.iter_mut().for_each(|v| *v = (*v * 0.5).clamp(-1.0, 1.0));
    }
    // Latent frames per call: `$SEEDVAE_EXEC_CHUNK` (default 1); the encoder's calls take the
    // frames of as many latent frames (4n + 1 first, 4n after).
    let chunk: usize = std::env::var("SEEDVAE_EXEC_CHUNK")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut calls = Vec::new();
    let mut k = 0;
    while k < t {
        let n = match part {
            Part::Decoder => chunk,
            Part::Encoder => 4 * chunk + (k == 0) as usize,
        }
        .min(t - k);
        calls.push((k, n));
        k += n;
    }
    // Each call's input gathered before the clock starts (the runner reads its input on
    // another thread); each chunk's output taken on the host while the device computes the next.
    let inputs: Vec<Vec<f32>> = calls
        .iter()
        .map(|&(k, n)| frames(&x, d, k, k + n))
        .collect();
    let run = |cuda: &mut Cuda<E>| {
        let mut s = vae.stream();
        let mut out_frames = 0;
        let mut pending = None;
        for (&(k, n), input) in calls.iter().zip(&inputs) {
            let a = cuda.upload(input, Dims { t: n, ..d }).unwrap();
            let y = vae
                .step_split(cuda, &mut s, a, split)
                .unwrap_or_else(|e| panic!("frames {k}..{}: {e}", k + n));
            out_frames += y.dims.t;
            let next = cuda.download_start(&y).unwrap();
            if let Some(p) = pending.replace(next) {
                let _ = cuda.download_finish(p).unwrap();
            }
        }
        if let Some(p) = pending {
            let _ = cuda.download_finish(p).unwrap();
        }
        out_frames
    };
    // The same run once untimed: cuDNN's plans for every shape it meets.
    run(&mut cuda);
    cuda.reset_peak().unwrap();
    // Three timed runs; the median counts (the GPU's clocks vary between runs by a few %).
    let mut times = Vec::new();
    let mut out_frames = 0;
    for _ in 0..3 {
        let start = Instant::now();
        out_frames = run(&mut cuda);
        times.push(start.elapsed().as_secs_f64());
    }
    let runs = format!("{times:.3?}");
    times.sort_by(f64::total_cmp);
    let secs = times[1];
    let (frames_timed, flops, verb) = match part {
        Part::Decoder => (out_frames, vae.flops_per_frame(h / 8, w / 8), "decode"),
        Part::Encoder => (t, vae.flops_per_frame(h, w), "encode"),
    };
    let per_frame = secs / frames_timed as f64;
    let dims: Vec<Dims> = calls.iter().map(|&(_, n)| Dims { t: n, ..d }).collect();
    let planned = seedvae_exec::planned_peak(&wf, part, std::mem::size_of::<E>(), &dims, split)
        .unwrap() as f64;
    let gib = (1u64 << 30) as f64;
    let measured = cuda.peak_bytes().unwrap() as f64;
    let ws = cuda.workspace_bytes() as f64;
    println!(
        "  memory: planned {:.2} GiB + workspace {:.2} GiB = {:.2} GiB; measured {:.2} GiB ({:+.1}%)",
        planned / gib,
        ws / gib,
        (planned + ws) / gib,
        measured / gib,
        100.0 * (measured / (planned + ws) - 1.0)
    );
    println!(
        "{verb} {w}x{h}, {t} input frames -> {out_frames} frames, {} storage, {} call(s), {split:?}: {secs:.2} s (median of {runs} s), {:.1} ms/frame ({flops:.3e} FLOP a frame: {:.0} TFLOP/s), device pool peak {:.2} GiB (conv workspace {:.2} GiB)",
        E::NAME,
        calls.len(),
        1e3 * per_frame,
        flops / per_frame / 1e12,
        measured / gib,
        ws / gib
    );
}

fn main() {
    // The device's own lines (which GPU, which NVRTC / cuDNN / cuBLAS it loaded) on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("ops") => {
            // fp16 first: a device opened after another one was dropped must work too.
            let b = ops::<half::f16>();
            let a = ops::<f32>();
            if !(a && b) {
                std::process::exit(1);
            }
        }
        Some(p @ ("profile" | "profile-enc")) => profile::<half::f16>(
            if p == "profile" {
                Part::Decoder
            } else {
                Part::Encoder
            },
            Path::new(&a[2]),
            a[3].parse().unwrap(),
            a[4].parse().unwrap(),
            a[5].parse().unwrap(),
        ),
        Some("cuts") => cuts(
            Path::new(&a[2]),
            a[3].parse().unwrap(),
            a[4].parse().unwrap(),
            a[5].parse().unwrap(),
        ),
        Some("check") => {
            // fp32 to the reference's precision; fp16 to the selftest's fp16 bound.
            let f32_ok = check::<f32>(Path::new(&a[2]), 1e-5);
            let f16_ok = check::<half::f16>(Path::new(&a[2]), 3e-3);
            if !(f32_ok && f16_ok) {
                std::process::exit(1);
            }
        }
        Some(p @ ("plan" | "plan-enc")) => {
            // The fp16 memory plan of a decode in one-latent-frame calls (an encode in calls of
            // 5, then 4 frames): the cut the budget picks, and what each cut needs.
            let part = if p == "plan" {
                Part::Decoder
            } else {
                Part::Encoder
            };
            let wf = WeightFile::open(&a[2]).unwrap();
            let (h, w): (usize, usize) = (a[3].parse().unwrap(), a[4].parse().unwrap());
            let budget_gb: f64 = a.get(5).map_or(16.0, |b| b.parse().unwrap());
            let calls = match part {
                Part::Decoder => vec![Dims::new(16, 1, h / 8, w / 8); 3],
                Part::Encoder => vec![Dims::new(3, 5, h, w), Dims::new(3, 4, h, w)],
            };
            let mut planner = seedvae_exec::MemoryPlanner::load(&wf, part, 2).unwrap();
            let gib = (1u64 << 30) as f64;
            let pool =
                (budget_gb * 1e9) as u64 - seedvae_exec::workspace_allowance(2) - (512 << 20);
            let fit = seedvae_exec::split_within(pool, h, None, |sp| {
                let p = planner.peak(&calls, sp);
                match &p {
                    Ok(b) => println!(
                        "  {sp:?}: {:.2} GiB (host: {:.2} GiB parked)",
                        *b as f64 / gib,
                        planner.host_peak() as f64 / gib
                    ),
                    Err(e) => println!("  {sp:?}: {e}"),
                }
                p
            })
            .unwrap();
            println!(
                "{part} {w}x{h} within {budget_gb} GB (pool {:.2} GiB): {fit:?}",
                pool as f64 / gib
            );
        }
        Some(p @ ("time" | "time32" | "time-enc")) => {
            let part = if p == "time-enc" {
                Part::Encoder
            } else {
                Part::Decoder
            };
            let shape = (
                a[3].parse().unwrap(),
                a[4].parse().unwrap(),
                a[5].parse().unwrap(),
            );
            let split = Split {
                groups: a.get(6).filter(|g| *g != "-").map(|g| g.parse().unwrap()),
                band_px: a.get(7).filter(|b| *b != "-").map(|b| b.parse().unwrap()),
                park: a.get(8).is_some_and(|p| p == "park"),
            };
            if p == "time32" {
                time::<f32>(part, Path::new(&a[2]), shape, split)
            } else {
                time::<half::f16>(part, Path::new(&a[2]), shape, split)
            }
        }
        _ => {
            eprintln!(
                "usage: exec ops | exec check FIXTURES | exec cuts WEIGHTS H W T | exec time|time32|time-enc WEIGHTS H W T [GROUP|-] [BAND_PX|-] [park] | exec plan|plan-enc WEIGHTS H W [BUDGET_GB] | exec profile|profile-enc WEIGHTS H W T"
            );
            std::process::exit(2);
        }
    }
}

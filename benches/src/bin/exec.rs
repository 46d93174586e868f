//! seedvae's own executor on the GPU (`seedvae-exec`, device `cuda`), checked and timed.
//!
//! `exec check FIXTURES` — the tiny fixture's decoder and encoder on the CUDA device against the
//! reference device and the original module's goldens (one call, chunks, frame groups); exit 1
//! on a miss. `exec time WEIGHTS H W T [GROUP]` — decode a seeded latent `[16, T, H/8, W/8]`
//! (VAE space) in chunks of one latent frame, the tail in groups of GROUP frames; prints the
//! time per output frame and the device's peak memory.
//!
//! Library folders: `$SEEDVAE_SITE_PACKAGES` (its `nvidia/*/lib`), kernel cache `$SEEDVAE_KERNELS`.

use seedvae_exec::{Cuda, CudaOptions, Device, Dims, Reference, Vae};
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

/// Run `vae` on `x` in chunks `sizes` with frame groups `groups`; the output joined in time.
fn run<D: Device>(
    vae: &Vae<D::Buf>,
    dev: &mut D,
    x: &[f32],
    d: Dims,
    sizes: &[usize],
    groups: Option<usize>,
) -> Vec<f32> {
    let mut s = vae.stream();
    let mut outs = Vec::new();
    let mut t0 = 0;
    for &n in sizes {
        let a = dev
            .upload(&frames(x, d, t0, t0 + n), Dims { t: n, ..d })
            .unwrap();
        let y = vae.step_grouped(dev, &mut s, a, groups).unwrap();
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

/// A check: its name, input and golden files, the golden's tensor names, and the chunk
/// patterns to run (empty: one call; `[1]`: one frame at a time).
type Case = (String, PathBuf, PathBuf, Vec<&'static str>, Vec<Vec<usize>>);

fn check(dir: &Path) -> bool {
    let w = WeightFile::open(dir.join("weights.safetensors")).unwrap();
    let mut cuda = Cuda::open(&options()).unwrap_or_else(|e| panic!("CUDA device: {e}"));
    println!(
        "GPU: {} (compute capability {:?})",
        cuda.name, cuda.compute_capability
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
            let want = run(&cpu, &mut reference, &x, d, &[d.t], None);
            for pat in patterns {
                let sizes = if pat.is_empty() {
                    vec![d.t]
                } else if pat == [1] {
                    vec![1; d.t]
                } else {
                    pat.clone()
                };
                for groups in [None, Some(1)] {
                    let got = run(&gpu, &mut cuda, &x, d, &sizes, groups);
                    let (e_ref, e_gold) = (rel(&got, &want), rel(&got, &g));
                    let pass = e_ref <= 1e-5 && e_gold <= 1e-5;
                    ok &= pass;
                    println!(
                        "{name} chunks {sizes:?} groups {groups:?}: vs reference {e_ref:.2e}, vs golden {e_gold:.2e} {}",
                        if pass { "ok" } else { "FAIL" }
                    );
                }
            }
        }
    }
    ok
}

fn time(weights: &Path, h: usize, w: usize, t: usize, group: Option<usize>) {
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
    let mut cuda = Cuda::open(&options()).unwrap_or_else(|e| panic!("CUDA device: {e}"));
    let vae = Vae::load(&wf, Part::Decoder, &mut cuda).unwrap();
    let d = Dims::new(16, t, h / 8, w / 8);
    let mut rng = seedvae_weights::synth::Rng::new(3);
    let mut z = vec![0f32; d.count().unwrap()];
    rng.fill_normal(&mut z);
    // Warm-up: the algorithm searches of every shape (first chunk and later ones).
    let _ = run(
        &vae,
        &mut cuda,
        &z,
        Dims { t: 2.min(t), ..d },
        &vec![1; 2.min(t)],
        group,
    );
    let start = Instant::now();
    let mut s = vae.stream();
    let mut out_frames = 0;
    for k in 0..t {
        let a = cuda
            .upload(&frames(&z, d, k, k + 1), Dims { t: 1, ..d })
            .unwrap();
        let y = vae.step_grouped(&mut cuda, &mut s, a, group).unwrap();
        out_frames += y.dims.t;
        let _ = cuda.download(&y).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "decode {w}x{h}, {t} latent frames -> {out_frames} frames, groups {group:?}: {secs:.2} s, {:.1} ms/frame",
        1e3 * secs / out_frames as f64
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("check") => {
            if !check(Path::new(&a[2])) {
                std::process::exit(1);
            }
        }
        Some("time") => time(
            Path::new(&a[2]),
            a[3].parse().unwrap(),
            a[4].parse().unwrap(),
            a[5].parse().unwrap(),
            a.get(6).map(|g| g.parse().unwrap()),
        ),
        _ => {
            eprintln!("usage: exec check FIXTURES | exec time WEIGHTS H W T [GROUP]");
            std::process::exit(2);
        }
    }
}

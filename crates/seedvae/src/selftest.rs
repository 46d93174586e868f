//! `seedvae selftest`: does this machine decode and encode correctly, on every backend that can
//! load here? A tiny VAE (the reduced-width fixture: its weights and the original PyTorch
//! module's fp64 goldens when `fixtures` is given, else the same architecture synthesized here
//! from a fixed seed, with PyTorch's fp64 goldens for it built into seedvae: [`GOLDENS`]) is
//! decoded in one call and streamed in two chunk patterns, from the largest latent to the
//! smallest on one opened model (calls of shrinking shape), and a short clip is encoded; every
//! output, the CPU's included, is compared with PyTorch's within its precision's bound.

use crate::backends::availability;
pub use crate::check::Bound;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::options::{
    BackendSpec, CpuOptions, CudaOptions, ModelOptions, OrtCudaOptions, TensorrtOptions,
};
use crate::progress::Progress;
use crate::run::TileOptions;
use seedvae_runner::media::TensorFrames;
use seedvae_runner::{read_tensor, Pad, Tensor};
use seedvae_weights::synth::{Rng, SynthFormat, SynthOptions};
use seedvae_weights::{DType, Model as Architecture, Part};
use std::path::{Path, PathBuf};

/// Did a check pass, fail, or not run (a backend that cannot load here)?
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    Pass,
    Fail,
    Skipped,
}

/// What to test.
#[derive(Debug, Clone, Default)]
pub struct SelftestOptions {
    /// The `vae_tiny` fixture folder (weights and goldens); None: synthesize, CPU reference.
    pub fixtures: Option<PathBuf>,
    /// Cache for the graphs and engines it converts (None: a temporary one, removed after).
    pub cache: Option<PathBuf>,
    pub tensorrt_dir: Option<PathBuf>,
}

/// One checked output.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Check {
    /// "cpu fp32", "cuda fp16" (seedvae's executor), "ort-cuda fp16", "tensorrt"...
    pub backend: String,
    /// What ran: "decode t3_8x8 one call", "decode t3_8x8 chunks of 1", "encode t9_32x48".
    pub case: String,
    /// The measured value (rel L2 or PSNR, as the bound says).
    pub value: Option<f64>,
    pub bound: Bound,
    pub status: Status,
    /// Why a backend was not tested, or what failed.
    pub note: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct SelftestReport {
    pub seedvae: &'static str,
    pub reference: String,
    pub gpu: Option<crate::backends::GpuInfo>,
    pub checks: Vec<Check>,
}

impl SelftestReport {
    /// Every backend that loaded passed every check (backends that cannot load here are
    /// skipped, with the reason), and at least one ran.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
            && self.checks.iter().any(|c| c.status == Status::Pass)
    }
}

/// A latent case: name, latent, reference frames.
struct Case {
    name: String,
    latent: Tensor,
    reference: Tensor,
}

/// PyTorch's decode and encode (float64, the original module's math: `../shared/oracle/
/// torch_decoder.py`, `tests/oracle/torch_encoder.py`) of [`synthesized_inputs`] on the tiny VAE
/// [`synthesize`] writes, as float32; made by `tests/oracle/selftest_goldens.py` and held to it
/// by this module's test (which rewrites the file with `SEEDVAE_WRITE_GOLDENS=1`).
const GOLDENS: &[u8] = include_bytes!("selftest_goldens.safetensors");

/// The latent cases (largest first: later calls shrink) and the clip to encode.
const NAMES: [&str; 4] = ["t3_8x8", "t2_8x8", "t2_6x10", "t1_8x8"];
const VIDEO: &str = "t9_32x48";

/// The tiny VAE a selftest without fixtures runs: fp16 weights of a fixed seed.
fn synthesize(path: &Path, progress: &Progress) -> Result<()> {
    let tiny = SynthOptions {
        model: Architecture {
            widths: seedvae_weights::schema::TINY_WIDTHS,
        },
        dtype: DType::F16,
        seed: 1,
        format: SynthFormat::SafeTensors,
    };
    crate::convert::synth(path, &tiny, true, progress)?;
    Ok(())
}

/// Seeded inputs for [`synthesize`]'s VAE: a latent for each of [`NAMES`], and a clip.
fn synthesized_inputs() -> (Vec<(String, Tensor)>, Tensor) {
    let mut rng = Rng::new(7);
    let mut random = |shape: Vec<usize>| {
        let mut v = vec![0f32; shape.iter().product()];
        rng.fill_normal(&mut v);
        (shape, v)
    };
    let latents = NAMES
        .iter()
        .map(|n| {
            let d: Vec<usize> = n[1..]
                .split(['_', 'x'])
                .filter_map(|s| s.parse().ok())
                .collect();
            let (shape, v) = random(vec![1, 16, d[0], d[1], d[2]]);
            (
                n.to_string(),
                Tensor::f32(shape, v).expect("the shape's own values"),
            )
        })
        .collect();
    let (shape, v) = random(vec![1, 3, 9, 32, 48]);
    let video = Tensor::f32(shape, v.iter().map(|x| x.clamp(-1.0, 1.0)).collect())
        .expect("the shape's own values");
    (latents, video)
}

/// One of the built-in goldens.
fn golden(name: &str) -> Result<Tensor> {
    let w = seedvae_weights::WeightFile::from_bytes(
        "seedvae's built-in selftest goldens",
        GOLDENS.to_vec(),
    )?;
    let shape = w
        .get(name)
        .ok_or_else(|| Error::Invalid(format!("no built-in golden '{name}'")))?
        .shape
        .clone();
    Ok(Tensor::f32(shape, w.f32(name)?.into_owned())?)
}

/// The backends and graph precisions a selftest tries (`tensorrt_dir` for TensorRT-RTX), with
/// the bound each is held to.
fn variants(tensorrt_dir: Option<&Path>) -> [(&'static str, BackendSpec, Bound); 6] {
    let cuda = |fp32| BackendSpec::Cuda(CudaOptions { fp32 });
    let ort_cuda = |fp32| BackendSpec::OrtCuda(OrtCudaOptions { fp32 });
    let trt = TensorrtOptions {
        library_dir: tensorrt_dir.map(Path::to_path_buf),
        ..TensorrtOptions::default()
    };
    [
        (
            "cpu fp32",
            BackendSpec::Cpu(CpuOptions::default()),
            Bound::RelL2(1e-5),
        ),
        ("cuda fp32", cuda(true), Bound::RelL2(1e-5)),
        ("cuda fp16", cuda(false), Bound::RelL2(3e-3)),
        ("ort-cuda fp32", ort_cuda(true), Bound::RelL2(1e-5)),
        ("ort-cuda fp16", ort_cuda(false), Bound::RelL2(3e-3)),
        ("tensorrt", BackendSpec::Tensorrt(trt), Bound::PsnrDb(30.0)),
    ]
}

/// Run the selftest; `Err` only for what stops it as a whole (no fixture, no CPU backend).
pub fn selftest(o: &SelftestOptions, progress: &Progress) -> Result<SelftestReport> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io(Path::new("temporary folder"), e))?;
    let cache = o.cache.clone().unwrap_or_else(|| tmp.path().join("cache"));
    let (weights, reference) = match &o.fixtures {
        Some(dir) => (
            dir.join("weights.safetensors"),
            "the PyTorch module's goldens (fp64 where the fixture has them, else fp32)".to_string(),
        ),
        None => {
            let w = tmp.path().join("tiny.safetensors");
            synthesize(&w, progress)?;
            (
                w,
                "PyTorch's fp64 goldens (the original module's math) for a tiny VAE synthesized \
                 here, built into seedvae"
                    .to_string(),
            )
        }
    };
    let opts = |spec: &BackendSpec| ModelOptions {
        backends: vec![spec.clone()],
        cache: Some(cache.clone()),
        ..ModelOptions::default()
    };
    let (cases, video, mean) = inputs(o.fixtures.as_deref())?;
    let mut checks = Vec::new();
    for (label, spec, bound) in variants(o.tensorrt_dir.as_deref()) {
        progress.check()?;
        let skip = |why: String| Check {
            backend: label.into(),
            case: "all".into(),
            value: None,
            bound,
            status: Status::Skipped,
            note: Some(why),
        };
        if let Some(why) = availability(&spec).unavailable {
            checks.push(skip(why));
            continue;
        }
        let mut dec = match Model::open(&weights, Part::Decoder, &opts(&spec), progress) {
            Ok(m) => m,
            Err(e) if e.is_environment_failure() => {
                checks.push(skip(crate::error::chain(&e)));
                continue;
            }
            Err(e) => return Err(e),
        };
        let quiet = Progress::new(|_| {}).with_cancel(progress.cancel_token().clone());
        for case in &cases {
            let t = case.latent.shape()[2];
            for (mode, chunk) in [
                ("one call", Some(t)),
                ("chunks of 1", Some(1)),
                ("chunks of 2", Some(2)),
            ] {
                if chunk.unwrap_or(1) > t || (mode != "one call" && chunk == Some(t)) {
                    continue;
                }
                let tile = TileOptions {
                    no_tiling: true,
                    chunk,
                    ..TileOptions::default()
                };
                let r = dec.decode_tensor(&case.latent, &tile, &quiet);
                checks.push(check(
                    label,
                    &format!("decode {} {mode}", case.name),
                    r.map(|(v, _)| v),
                    &case.reference,
                    bound,
                ));
            }
        }
        drop(dec);
        match Model::open(&weights, Part::Encoder, &opts(&spec), progress) {
            Ok(mut enc) => {
                let mut src = TensorFrames(video.clone());
                let r = enc.encode(
                    &mut src,
                    Pad::Repeat,
                    &TileOptions {
                        no_tiling: true,
                        ..TileOptions::default()
                    },
                    &quiet,
                );
                checks.push(check(
                    label,
                    "encode t9_32x48",
                    r.map(|(v, _)| v),
                    &mean,
                    bound,
                ));
            }
            Err(e) => checks.push(check(label, "encode t9_32x48", Err(e), &mean, bound)),
        }
    }
    Ok(SelftestReport {
        seedvae: env!("CARGO_PKG_VERSION"),
        reference,
        gpu: crate::backends::probe_gpu().ok(),
        checks,
    })
}

fn check(backend: &str, case: &str, got: Result<Tensor>, want: &Tensor, bound: Bound) -> Check {
    let (value, ok, note) = match got {
        Ok(v) if v.shape() == want.shape() => {
            let (value, ok) = bound.measure(&v.to_f32(), &want.to_f32());
            (Some(value), ok, None)
        }
        Ok(v) => (
            None,
            false,
            Some(format!(
                "shape {:?}, expected {:?}",
                v.shape(),
                want.shape()
            )),
        ),
        Err(e) => (None, false, Some(e.to_string())),
    };
    Check {
        backend: backend.into(),
        case: case.into(),
        value,
        bound,
        status: if ok { Status::Pass } else { Status::Fail },
        note,
    }
}

/// The latents (largest first: later calls shrink), the clip to encode, and their references:
/// the fixture's files, or the synthesized inputs and the built-in goldens.
fn inputs(fixtures: Option<&Path>) -> Result<(Vec<Case>, Tensor, Tensor)> {
    let Some(dir) = fixtures else {
        let (latents, video) = synthesized_inputs();
        let cases = latents
            .into_iter()
            .map(|(name, latent)| {
                Ok(Case {
                    reference: golden(&format!("decoded_{name}"))?,
                    name,
                    latent,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok((cases, video, golden(&format!("encoded_{VIDEO}"))?));
    };
    let golden = |file: String, keys: &[&str]| -> Result<Tensor> {
        let p = dir.join(file);
        let mut last = None;
        for k in keys {
            match read_tensor(&p, k) {
                Ok(t) => return Ok(t),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("a key").into())
    };
    let cases = NAMES
        .iter()
        .map(|n| {
            Ok(Case {
                name: n.to_string(),
                latent: read_tensor(&dir.join(format!("latent_{n}.safetensors")), "latent")?,
                reference: golden(
                    format!("decoded_{n}.safetensors"),
                    &["decoded_f64", "decoded"],
                )?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let video = read_tensor(&dir.join(format!("video_{VIDEO}.safetensors")), "video")?;
    let mean = golden(
        format!("encoded_{VIDEO}.safetensors"),
        &["latent_mean_f64", "latent_mean"],
    )?;
    Ok((cases, video, mean))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in goldens are PyTorch's: `tests/oracle/selftest_goldens.py` (its oracles first
    /// held to the fixture's goldens of the original module) recomputes them from the inputs and
    /// the synthesized VAE written here. Needs the test venv's torch (`scripts/setup.sh
    /// --comfyui`, which the README's test command runs). `SEEDVAE_WRITE_GOLDENS=1` rewrites
    /// the built-in file from PyTorch's output.
    #[test]
    fn the_built_in_goldens_are_pytorchs() {
        if std::env::var_os("SEEDVAE_NO_TORCH").is_some_and(|v| v == "1") {
            eprintln!(
                "not run: SEEDVAE_NO_TORCH=1 (scripts/test.sh --quick); the full suite runs it"
            );
            return;
        }
        let root = seedvae_tests::repo_root();
        let python = root.join(if cfg!(windows) {
            ".venv/comfyui/Scripts/python.exe"
        } else {
            ".venv/comfyui/bin/python"
        });
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh --comfyui (the README's test command does)",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        synthesize(
            &dir.path().join("weights.safetensors"),
            &Progress::default(),
        )
        .unwrap();
        let (latents, video) = synthesized_inputs();
        for (name, t) in &latents {
            let p = dir.path().join(format!("latent_{name}.safetensors"));
            seedvae_runner::write_tensor(&p, "latent", t, DType::F32, false).unwrap();
        }
        let p = dir.path().join(format!("video_{VIDEO}.safetensors"));
        seedvae_runner::write_tensor(&p, "video", &video, DType::F32, false).unwrap();
        let out = std::process::Command::new(&python)
            .arg(root.join("tests/oracle/selftest_goldens.py"))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", seedvae_tests::output_text(&out));
        let made = dir.path().join("goldens.safetensors");
        if std::env::var_os("SEEDVAE_WRITE_GOLDENS").is_some_and(|v| v == "1") {
            std::fs::copy(
                &made,
                root.join("crates/seedvae/src/selftest_goldens.safetensors"),
            )
            .unwrap();
            return;
        }
        let names: Vec<String> = NAMES
            .iter()
            .map(|n| format!("decoded_{n}"))
            .chain([format!("encoded_{VIDEO}")])
            .collect();
        for name in names {
            let torch = read_tensor(&made, &name).unwrap();
            let ours = golden(&name).unwrap();
            assert_eq!(torch.shape(), ours.shape(), "{name}");
            let (a, b) = (
                seedvae_tests::to_f64(&ours.to_f32()),
                seedvae_tests::to_f64(&torch.to_f32()),
            );
            let e = seedvae_tests::rel_l2(&a, &b);
            assert!(
                e <= 1e-7,
                "{name}: the built-in golden is {e:.2e} from PyTorch's"
            );
        }
    }
}

//! Holding a backend's output to a reference: the [`Bound`]s (shared by `seedvae selftest` and the
//! first-run check), and the first run of a model on a GPU — before the user's data, a small
//! decode (or encode) on the GPU backend is checked against the same model on the CPU, and a pass
//! is recorded in the cache under the model and the GPU's UUID, so later runs skip it. A
//! miscompiled engine, broken kernels or a bad driver then show up as a clear error — under
//! `auto`, as a fallback with the reason — instead of as wrong frames.
//!
//! It checks backends it is handed, through the runner's pipeline: it knows nothing of models,
//! options or runs.

use crate::error::{Error, Result};
use crate::progress::Progress;
use seedvae_engine::Cache;
use seedvae_runner::media::{MemorySink, TensorFrames};
use seedvae_runner::planner::{self, Limits, TileRequest};
use seedvae_runner::tensorrt::GpuInfo;
use seedvae_runner::{pipeline, Backend, Pad, Tensor, Unavailable};
use seedvae_weights::synth::Rng;
use seedvae_weights::Part;
use std::path::PathBuf;

/// How an output is held to its reference: relative L2 for fp32 graphs (≤ 1e-5) and fp16 ones
/// (≤ 3e-3: fp16 arithmetic on a GPU gives 2.2–2.4e-3 on the tiny fixture — eager PyTorch fp16
/// 2.18–2.27e-3, the CUDA provider 2.30–2.36e-3, measured on the H200, benches/README.md — so
/// issue 12's 2e-3 cannot be held by either); PSNR for engines, which may be FP8 (≥ 30 dB,
/// peak-to-peak 2).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    RelL2(f64),
    PsnrDb(f64),
}

impl Bound {
    /// Does a measured `value` hold?
    pub(crate) fn holds(self, value: f64) -> bool {
        match self {
            Bound::RelL2(b) => value <= b,
            Bound::PsnrDb(b) => value >= b,
        }
    }

    /// The measured value and whether it holds.
    pub(crate) fn measure(self, got: &[f32], want: &[f32]) -> (f64, bool) {
        let (mut d, mut n) = (0f64, 0f64);
        for (&x, &y) in got.iter().zip(want) {
            d += (x as f64 - y as f64).powi(2);
            n += (y as f64).powi(2);
        }
        let d = if d.is_nan() { f64::INFINITY } else { d };
        let value = match self {
            Bound::RelL2(_) => (d / n.max(1e-300)).sqrt(),
            Bound::PsnrDb(_) => {
                let mse = d / got.len().max(1) as f64;
                10.0 * (4.0 / mse.max(1e-300)).log10()
            }
        };
        (value, self.holds(value))
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::RelL2(b) => write!(f, "rel L2 ≤ {b:.0e}"),
            Bound::PsnrDb(b) => write!(f, "PSNR ≥ {b} dB"),
        }
    }
}

/// The probe's bounds catch broken kernels, drivers or engines (errors of 1e-1 and more), not
/// precision: that is `seedvae selftest`'s job, on the fixture it has goldens for. A full-size
/// model's fp16 run lands near 2e-3 of fp32 (benches/README.md) and FP8 near 30 dB on random
/// weights, so the probe leaves them room rather than refusing a working GPU.
pub(crate) const FP32: Bound = Bound::RelL2(1e-4);
pub(crate) const FP16: Bound = Bound::RelL2(1e-2);
pub(crate) const ENGINE: Bound = Bound::PsnrDb(24.0);

/// What was checked, kept as the record of a pass; read back and verified before a check is
/// skipped on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Record {
    model: String,
    backend: String,
    gpu: String,
    gpu_uuid: String,
    value: f64,
    bound: Bound,
}

impl Record {
    /// Does this record say that `model_id` passed `bound` on `gpu`?
    fn vouches_for(&self, model_id: &str, gpu: &GpuInfo, bound: Bound) -> bool {
        self.model == model_id
            && self.gpu_uuid == gpu.uuid
            && self.bound == bound
            && bound.holds(self.value)
    }
}

fn record_path(cache: &Cache, model_id: &str, gpu: &GpuInfo) -> PathBuf {
    let key = blake3::hash(format!("{model_id}\n{}\n{}", gpu.uuid, gpu.name).as_bytes());
    cache.probe_record(&key.to_hex()[..32])
}

/// A recorded pass for `model_id` on `gpu` at `bound`, read and verified; anything else
/// (missing, unreadable, junk, another model's, a failing value) is no record.
fn recorded(path: &std::path::Path, model_id: &str, gpu: &GpuInfo, bound: Bound) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    match serde_json::from_slice::<Record>(&bytes) {
        Ok(r) if r.vouches_for(model_id, gpu, bound) => true,
        _ => {
            tracing::info!(
                "first-run record {} does not vouch for this model and GPU; checking again",
                path.display()
            );
            false
        }
    }
}

/// The probe's input: a seeded 2-latent-frame 8×8 latent, or a 5-frame 32×32 clip.
fn input(part: Part) -> Tensor {
    let shape = match part {
        Part::Decoder => vec![1, 16, 2, 8, 8],
        Part::Encoder => vec![1, 3, 5, 32, 32],
    };
    let mut v = vec![0f32; shape.iter().product()];
    Rng::new(17).fill_normal(&mut v);
    if part == Part::Encoder {
        v.iter_mut().for_each(|x| *x = x.clamp(-1.0, 1.0));
    }
    Tensor::f32(shape, v).expect("the shape's own number of values")
}

/// One run of `b` on `x` through the runner's pipeline: streamed in chunks of one (latent)
/// frame where the graph streams, untiled.
fn run(b: &mut dyn Backend, limits: &Limits, x: &Tensor, progress: &Progress) -> Result<Tensor> {
    let part = b.contract().part;
    let streaming = b.contract().streaming;
    let [t, h, w] = [x.shape()[2], x.shape()[3], x.shape()[4]];
    let untiled = TileRequest {
        allow: false,
        ..TileRequest::default()
    };
    let chunks = planner::plan_chunks(part, t, streaming, Some(1), limits)?;
    let (ph, pw) = match part {
        Part::Decoder => (h, w),
        Part::Encoder => (h / 8, w / 8),
    };
    let plan = planner::plan_spatial(part, ph, pw, limits, &untiled)?;
    let mut hook = |_| {
        progress
            .check()
            .map_err(|_| seedvae_runner::Error::Interrupted)
    };
    Ok(match part {
        Part::Decoder => {
            let frames = chunks
                .iter()
                .map(|&(s, e)| planner::decoded_frames(s, e))
                .sum();
            let mut sink = MemorySink::new(8 * h, 8 * w, frames)?;
            pipeline::decode(b, x, &plan, &chunks, &mut sink, &mut hook)?;
            sink.into_tensor()
        }
        Part::Encoder => {
            let mut src = TensorFrames(x.clone());
            pipeline::encode(b, &mut src, Pad::Repeat, &plan, &chunks, &mut hook)?.0
        }
    })
}

/// Has `model_id` passed `bound` on `gpu` before (a verified record in `cache`)? Then no check
/// is due and no CPU reference needs preparing.
pub(crate) fn passed_before(cache: &Cache, model_id: &str, gpu: &GpuInfo, bound: Bound) -> bool {
    recorded(&record_path(cache, model_id, gpu), model_id, gpu, bound)
}

/// What a first-run check looks at: a backend just opened on `gpu` (within `limits`), and the
/// name and bound of what runs on it (an engine's key, a graph's hash; its precision's bound).
pub(crate) struct Subject<'a> {
    pub backend: &'a mut dyn Backend,
    pub limits: &'a Limits,
    pub gpu: &'a GpuInfo,
    pub model_id: &'a str,
    pub bound: Bound,
}

/// Check `s` against `reference()` (the same model on the CPU, opened only when no pass is
/// recorded) once per model and GPU, and record a pass in `cache`. Without a reference (an engine
/// given without its weights) the check is skipped, and said so.
pub(crate) fn first_run(
    s: Subject,
    reference: impl FnOnce() -> Result<Option<Box<dyn Backend>>>,
    cache: &Cache,
    progress: &Progress,
) -> Result<()> {
    let Subject {
        backend,
        limits,
        gpu,
        model_id,
        bound,
    } = s;
    let record = record_path(cache, model_id, gpu);
    if recorded(&record, model_id, gpu, bound) {
        return Ok(());
    }
    let Some(mut reference) = reference()? else {
        tracing::info!("first-run check of {model_id} skipped: no CPU reference");
        return Ok(());
    };
    let quiet = Progress::new(|_| {}).with_cancel(progress.cancel_token().clone());
    let name = backend.kind().name();
    let what = format!(
        "checking {name} on {} against the CPU (once for this model and GPU)",
        gpu.name
    );
    let x = input(backend.contract().part);
    let cpu_limits = Limits::unbounded(backend.contract().part);
    let (got, want) = progress.stage(&what, || {
        Ok::<_, Error>((
            run(backend, limits, &x, &quiet)?,
            run(reference.as_mut(), &cpu_limits, &x, &quiet)?,
        ))
    })?;
    let (value, ok) = if got.shape() == want.shape() {
        bound.measure(&got.to_f32(), &want.to_f32())
    } else {
        (f64::NAN, false)
    };
    if !ok {
        return Err(Error::Unavailable(Unavailable(format!(
            "{name} gives wrong results on {}: its first-run check against the CPU measured \
             {value:.3e}, beyond {bound} ({model_id}); run `seedvae selftest` and report it",
            gpu.name
        ))));
    }
    let text = serde_json::to_vec_pretty(&Record {
        model: model_id.into(),
        backend: name.into(),
        gpu: gpu.name.clone(),
        gpu_uuid: gpu.uuid.clone(),
        value,
        bound,
    })
    .map_err(|e| Error::Invalid(e.to_string()))?;
    // The check passed: a record that cannot be written (a read-only cache, a full disk) only
    // means it runs again next time.
    let written = record
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(|e| Error::io(&record, e))
        .and_then(|()| {
            seedvae_weights::output::write_atomic(&record, |f| std::io::Write::write_all(f, &text))
                .map_err(Error::from)
        });
    if let Err(e) = written {
        tracing::warn!("first-run check passed, but its record could not be written ({e}); it runs again next time");
    }
    Ok(())
}

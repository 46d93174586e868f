//! The first run of a model on a GPU: before the user's data, a small decode (or encode) on the
//! GPU is checked against the CPU, and a pass is recorded in the cache under the model and the
//! GPU's UUID, so later runs skip it. A miscompiled engine, broken kernels or a bad driver then
//! show up as a clear error — under `--backend auto`, as a fallback with the reason — instead of
//! as wrong frames.

use crate::error::{Error, Result};
use crate::model::{Model, ModelOptions, ModelSource};
use crate::progress::Progress;
use crate::run::TileOptions;
use crate::selftest::Bound;
use seedvae_engine::Cache;
use seedvae_runner::media::TensorFrames;
use seedvae_runner::tensorrt::GpuInfo;
use seedvae_runner::{Pad, Tensor, Unavailable};
use seedvae_weights::synth::Rng;
use seedvae_weights::Part;
use std::path::PathBuf;

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
    Tensor::f32(shape, v)
}

/// One streamed run (chunks of one latent frame), untiled.
fn run(m: &mut Model, x: &Tensor, progress: &Progress) -> Result<Tensor> {
    let opts = TileOptions {
        no_tiling: true,
        chunk: Some(1),
        ..TileOptions::default()
    };
    Ok(match m.part() {
        Part::Decoder => m.decode_tensor(x, &opts, progress)?.0,
        Part::Encoder => {
            m.encode(&mut TensorFrames(x.clone()), Pad::Repeat, &opts, progress)?
                .0
        }
    })
}

/// Check `m` (just opened on `gpu`) against the CPU once per model and GPU. `model_id` names
/// what runs (an engine's key, a graph file); `bound` is what its precision must hold. Without
/// a CPU reference (an engine given without its weights) the check is skipped, and said so.
pub(crate) fn first_run(
    m: &mut Model,
    source: &ModelSource,
    o: &ModelOptions,
    gpu: &GpuInfo,
    model_id: &str,
    bound: Bound,
    progress: &Progress,
) -> Result<()> {
    let cache = Cache::open(o.cache.as_deref())?;
    let record = record_path(&cache, model_id, gpu);
    if recorded(&record, model_id, gpu, bound) {
        return Ok(());
    }
    let quiet = Progress::new(|_| {}).with_cancel(progress.cancel_token().clone());
    let mut reference = match crate::model::open_cpu(source, m.part(), o, &quiet) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!("first-run check of {model_id} skipped: no CPU reference ({e})");
            return Ok(());
        }
    };
    let backend = m.backend_name().to_string();
    let what = format!(
        "checking {backend} on {} against the CPU (once for this model and GPU)",
        gpu.name
    );
    let x = input(m.part());
    let (got, want) = progress.stage(&what, || {
        Ok::<_, Error>((run(m, &x, &quiet)?, run(&mut reference, &x, &quiet)?))
    })?;
    let (value, ok) = if got.shape == want.shape {
        bound.measure(&got.to_f32(), &want.to_f32())
    } else {
        (f64::NAN, false)
    };
    if !ok {
        return Err(Error::Unavailable(Unavailable(format!(
            "{backend} gives wrong results on {}: its first-run check against the CPU measured \
             {value:.3e}, beyond {bound} ({model_id}); run `seedvae selftest` and report it",
            gpu.name
        ))));
    }
    let text = serde_json::to_vec_pretty(&Record {
        model: model_id.into(),
        backend,
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

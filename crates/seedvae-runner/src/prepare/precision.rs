//! How much FP16 and FP8 change the VAE's output, measured on the CPU: the fp32, fp16 and FP8
//! (Q/DQ on fp16, as engines are built) graphs run on ONNX Runtime over the same inputs, and the
//! lower precisions are compared with fp32. TensorRT-RTX's FP8 kernels accumulate differently
//! from ORT's reference Q/DQ arithmetic, so this measures the quantization, not the engine.

use crate::backend::Backend;
use crate::tensor::Tensor;
use crate::{Error, OrtBackend};
use seedvae_onnx::{ExportOptions, Precision};
use seedvae_weights::{Part, WeightFile};
use std::path::Path;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Quality {
    pub precision: String,
    /// Peak signal-to-noise ratio vs fp32, dB. Peak: 2 for decoded pixels (range [−1, 1]); the
    /// fp32 output's own max − min for encoded latents.
    pub psnr_db: f64,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub part: Part,
    pub inputs: usize,
    /// The output compared: `video` (decoder) or `latent_mean` (encoder).
    pub output: String,
    pub results: Vec<Quality>,
    pub fp8: seedvae_onnx::quantize::QdqStats,
}

/// Accumulated error of `y` against `reference` over several outputs.
#[derive(Default)]
struct Acc {
    sq: f64,
    abs: f64,
    max: f64,
    n: usize,
}

impl Acc {
    fn add(&mut self, y: &[f32], reference: &[f32]) {
        for (a, b) in y.iter().zip(reference) {
            let d = (*a as f64 - *b as f64).abs();
            self.sq += d * d;
            self.abs += d;
            self.max = self.max.max(d);
        }
        self.n += y.len();
    }

    fn quality(&self, precision: &str, peak: f64) -> Quality {
        let mse = self.sq / self.n.max(1) as f64;
        Quality {
            precision: precision.into(),
            psnr_db: 10.0 * (peak * peak / mse).log10(),
            max_abs_error: self.max,
            mean_abs_error: self.abs / self.n.max(1) as f64,
        }
    }
}

/// Compare fp16 and FP8 with fp32 for `part` of `w` on `inputs`; the FP8 graph is calibrated on
/// `calibration` and keeps `keep` in FP16. Graphs are written to `workdir` and removed.
pub fn verify(
    w: &WeightFile,
    part: Part,
    inputs: &[Tensor],
    calibration: &[Tensor],
    keep: &[String],
    workdir: &Path,
    mut progress: impl FnMut(&str),
) -> Result<Report, Error> {
    if inputs.is_empty() {
        return Err(Error::Input(
            "verify-precision needs at least one input".into(),
        ));
    }
    let opts = |precision| ExportOptions {
        part,
        precision,
        streaming: false,
    };
    let path = |n: &str| seedvae_weights::output::temp_path(&workdir.join(format!("{n}.onnx")));
    let (p32, p16, p8) = (path("fp32"), path("fp16"), path("fp8"));
    let result = (|| {
        progress("exporting fp32 and fp16 graphs");
        let (c, _) = seedvae_onnx::convert(w, opts(Precision::Fp32), &p32, |_, _| {})?;
        seedvae_onnx::convert(w, opts(Precision::Fp16), &p16, |_, _| {})?;
        progress("calibrating and exporting the FP8 graph");
        let (_, fp8) = crate::prepare::calibrate::export_fp8(
            w,
            opts(Precision::Fp16),
            calibration,
            keep,
            &p8,
        )?;
        let input = c.inputs[0].name.clone();
        let output = match part {
            Part::Decoder => seedvae_onnx::contract::VIDEO,
            Part::Encoder => seedvae_onnx::contract::LATENT_MEAN,
        };
        let run = |p: &Path,
                   what: &str,
                   progress: &mut dyn FnMut(&str)|
         -> Result<Vec<Vec<f32>>, Error> {
            let mut b = OrtBackend::open(p, 0)?;
            inputs
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    progress(&format!(
                        "running {what} on input {}/{}",
                        i + 1,
                        inputs.len()
                    ));
                    let mut out = b.run(&[(input.as_str(), x)])?;
                    out.remove(output).map(|t| t.to_f32()).ok_or_else(|| {
                        Error::Backend(format!("{what} graph has no output {output}"))
                    })
                })
                .collect()
        };
        let r32 = run(&p32, "fp32", &mut progress)?;
        let mut results = Vec::new();
        for (p, name) in [(&p16, "fp16"), (&p8, "fp8")] {
            let ys = run(p, name, &mut progress)?;
            let mut acc = Acc::default();
            let mut peak = 0f64;
            for (y, r) in ys.iter().zip(&r32) {
                acc.add(y, r);
                let (lo, hi) = r
                    .iter()
                    .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                peak = peak.max((hi - lo) as f64);
            }
            let peak = if part == Part::Decoder { 2.0 } else { peak };
            results.push(acc.quality(name, peak));
        }
        Ok(Report {
            part,
            inputs: inputs.len(),
            output: output.into(),
            results,
            fp8,
        })
    })();
    for p in [&p32, &p16, &p8] {
        let _ = std::fs::remove_file(p);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_a_known_error() {
        let mut a = Acc::default();
        // Error 0.02 everywhere: MSE 4e-4, peak 2 → 10·log10(4 / 4e-4) = 40 dB.
        a.add(&[0.02, -0.98, 0.52], &[0.0, -1.0, 0.5]);
        let q = a.quality("x", 2.0);
        assert!((q.psnr_db - 40.0).abs() < 1e-4, "{q:?}");
        assert!((q.max_abs_error - 0.02).abs() < 1e-6);
    }
}

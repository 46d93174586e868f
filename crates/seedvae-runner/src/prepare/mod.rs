//! The graph an engine is built from when the user gives weights: exported at the engine's
//! precision and, for FP8, calibrated on the CPU (ORT) and quantized. A [`GraphRecipe`] names
//! everything that determines that graph, so a cache can find an engine without converting again.

pub mod calibrate;
pub mod precision;
pub mod refit;

use crate::media::{crop, read_latent, read_video};
use crate::tensor::Tensor;
use crate::Error;
use seedvae_engine::EnginePrecision;
use seedvae_onnx::ExportOptions;
use seedvae_weights::{Part, WeightFile};
use std::path::{Path, PathBuf};

/// Calibration inputs are cropped to this (decoder: latent frames and pixels; encoder: frames
/// and pixels) so that calibrating the full-size model on a CPU takes seconds, not hours.
pub const CALIBRATION_CROP: [(usize, usize, usize); 2] = [(2, 16, 16), (5, 128, 128)];

fn crop_for(part: Part) -> (usize, usize, usize) {
    match part {
        Part::Decoder => CALIBRATION_CROP[0],
        Part::Encoder => CALIBRATION_CROP[1],
    }
}

/// The documented default when no calibration data is given. Decoder: two latents of
/// independent N(0, 1) values (VAE-space latents of real videos have about unit variance);
/// encoder: two videos of smooth random colour fields in [−1, 1]. Fixed seeds: reproducible.
pub fn default_calibration(part: Part) -> Vec<Tensor> {
    synthetic_inputs(part, 0x5eed_0000)
}

/// Inputs like [`default_calibration`]'s from other seeds, for measuring quality on data the
/// calibration did not see.
pub fn default_evaluation(part: Part) -> Vec<Tensor> {
    synthetic_inputs(part, 0xe7a1_0000)
}

fn synthetic_inputs(part: Part, seed: u64) -> Vec<Tensor> {
    let (t, h, w) = crop_for(part);
    (0..2u64)
        .map(|i| {
            let mut r = seedvae_weights::synth::Rng::new(seed + i);
            match part {
                Part::Decoder => {
                    let mut v = vec![0f32; 16 * t * h * w];
                    r.fill_normal(&mut v);
                    Tensor::exact(vec![1, 16, t, h, w], v)
                }
                Part::Encoder => {
                    // Sum of a few random low-frequency waves per channel, squashed by tanh.
                    let mut coef = vec![0f32; 3 * 4 * 4];
                    r.fill_normal(&mut coef);
                    let mut v = Vec::with_capacity(3 * t * h * w);
                    for c in 0..3 {
                        for f in 0..t {
                            for y in 0..h {
                                for x in 0..w {
                                    let mut s = 0f32;
                                    for k in 0..4 {
                                        let a = &coef[(c * 4 + k) * 4..(c * 4 + k) * 4 + 4];
                                        s += a[0]
                                            * (a[1] * x as f32 / 16.0
                                                + a[2] * y as f32 / 16.0
                                                + a[3] * f as f32 / 4.0)
                                                .sin();
                                    }
                                    v.push((0.5 * s).tanh());
                                }
                            }
                        }
                    }
                    Tensor::exact(vec![1, 3, t, h, w], v)
                }
            }
        })
        .collect()
}

/// Calibration inputs for `part` from `files` (latents or videos), cropped to
/// [`CALIBRATION_CROP`]; no files: [`default_calibration`].
pub fn calibration_inputs(part: Part, files: &[PathBuf]) -> Result<Vec<Tensor>, Error> {
    if files.is_empty() {
        return Ok(default_calibration(part));
    }
    let (t, h, w) = crop_for(part);
    files
        .iter()
        .map(|p| {
            let x = match part {
                Part::Decoder => read_latent(p)?,
                Part::Encoder => read_video(p)?,
            };
            Ok(crop(&x, t, h, w))
        })
        .collect()
}

/// Everything that determines the graph an engine is built from.
pub struct GraphRecipe<'a> {
    pub weights: &'a WeightFile,
    pub part: Part,
    pub streaming: bool,
    pub precision: EnginePrecision,
    /// FP8 only: module prefixes kept in FP16.
    pub fp16_blocks: Vec<String>,
    /// FP8 only: latents (decoder) or videos (encoder); empty = [`default_calibration`].
    pub calibration: Vec<PathBuf>,
}

impl GraphRecipe<'_> {
    /// A hash of the weights' content and every setting (and this seedvae's version, since the
    /// exporter may change between versions).
    pub fn hash(&self) -> Result<String, Error> {
        let mut h = blake3::Hasher::new();
        h.update(b"seedvae graph recipe v1\n");
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(self.weights.content_hash().as_bytes());
        let desc = format!("{} {} {}", self.part, self.streaming, self.precision.name());
        h.update(desc.as_bytes());
        if self.precision == EnginePrecision::Fp8 {
            for b in &self.fp16_blocks {
                h.update(b"\nkeep ");
                h.update(b.as_bytes());
            }
            for p in &self.calibration {
                let bytes =
                    std::fs::read(p).map_err(|e| Error::Input(format!("{}: {e}", p.display())))?;
                h.update(b"\ncalibration ");
                h.update(blake3::hash(&bytes).as_bytes());
            }
        }
        Ok(h.finalize().to_hex().to_string())
    }

    /// The calibration inputs, read and cropped.
    pub fn calibration_inputs(&self) -> Result<Vec<Tensor>, Error> {
        calibration_inputs(self.part, &self.calibration)
    }

    /// Write the graph to `out`.
    pub fn write(&self, out: &Path) -> Result<seedvae_onnx::Contract, Error> {
        let opts = ExportOptions {
            part: self.part,
            precision: self.precision.graph(),
            streaming: self.streaming,
        };
        if self.precision == EnginePrecision::Fp8 {
            let inputs = self.calibration_inputs()?;
            let (c, stats) = crate::prepare::calibrate::export_fp8(
                self.weights,
                opts,
                &inputs,
                &self.fp16_blocks,
                out,
            )?;
            tracing::info!(
                "FP8 graph: {} convolutions and {} attention projections quantized, {} kept in FP16",
                stats.quantized_convs,
                stats.quantized_matmuls,
                stats.kept_high_precision
            );
            Ok(c)
        } else {
            Ok(seedvae_onnx::convert(self.weights, opts, out, |_, _| {})?.0)
        }
    }
}

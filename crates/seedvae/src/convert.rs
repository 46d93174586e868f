//! Weights to ONNX graphs, random checkpoints, and the precision check: the steps before an
//! engine that a user may want on their own.

use crate::error::{invalid, Error, Result};
use crate::progress::Progress;
use seedvae_engine::Profile;
use seedvae_onnx::write::WriteStats;
use seedvae_onnx::{Contract, ExportOptions};
use seedvae_runner::{calibration_inputs, default_evaluation, read_latent, read_video, Tensor};
use seedvae_weights::synth::SynthOptions;
use seedvae_weights::{Part, WeightFile};
use std::path::{Path, PathBuf};

/// Export one part of the weights at `weights` as an ONNX graph at `out` (appears whole or not
/// at all); progress in tensors.
pub fn convert(
    weights: &Path,
    out: &Path,
    opts: ExportOptions,
    force: bool,
    progress: &Progress,
) -> Result<(Contract, WriteStats)> {
    seedvae_weights::output::check_output(out, force, &[weights])?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(invalid!(
                "{}: output directory {} does not exist",
                out.display(),
                dir.display()
            ));
        }
    }
    let w = WeightFile::open(weights)?;
    Ok(seedvae_onnx::convert(&w, opts, out, progress.tensors())?)
}

/// Write a random-weight checkpoint with the exact SeedVR2 VAE names and shapes.
pub fn synth(out: &Path, opts: &SynthOptions, force: bool, progress: &Progress) -> Result<()> {
    seedvae_weights::output::check_overwrite(out, force)?;
    Ok(seedvae_weights::synth::synth(
        out,
        opts,
        progress.tensors(),
    )?)
}

/// What `verify-precision` compares.
#[derive(Debug, Clone)]
pub struct PrecisionRequest {
    pub weights: PathBuf,
    pub part: Part,
    /// Latents (decoder) or videos (encoder); empty: two fixed random inputs.
    pub inputs: Vec<PathBuf>,
    /// FP8 calibration files, as for an engine build; empty: the defaults.
    pub calibration: Vec<PathBuf>,
    /// The profile whose FP16 blocks the FP8 graph keeps.
    pub profile: String,
}

/// fp16 and FP8 against fp32 on the CPU: PSNR, max and mean error.
pub fn verify_precision(
    req: &PrecisionRequest,
    progress: &Progress,
) -> Result<(seedvae_runner::prepare::precision::Report, Profile)> {
    let profile = Profile::load(&req.profile)?;
    let w = WeightFile::open(&req.weights)?;
    w.model_for(req.part)?;
    let inputs: Vec<Tensor> = if req.inputs.is_empty() {
        default_evaluation(req.part)
    } else {
        req.inputs
            .iter()
            .map(|p| match req.part {
                Part::Decoder => read_latent(p),
                Part::Encoder => read_video(p),
            })
            .collect::<Result<_, _>>()?
    };
    let calibration = calibration_inputs(req.part, &req.calibration)?;
    let work = seedvae_weights::output::temp_path(&std::env::temp_dir().join("seedvae-verify"));
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    progress.emit(crate::Event::Stage("verify-precision"));
    let report = seedvae_runner::prepare::precision::verify(
        &w,
        req.part,
        &inputs,
        &calibration,
        &profile.fp16_blocks,
        &work,
        |m| progress.emit(crate::Event::Stage(m)),
    );
    progress.emit(crate::Event::StageDone);
    let _ = std::fs::remove_dir_all(&work);
    Ok((report?, profile))
}

use super::convert::PartArg;
use super::Ui;
use anyhow::Result;
use seedvae_engine::Profile;
use seedvae_runner::io::{read_latent, read_video};
use seedvae_runner::prepare::{calibration_inputs, default_evaluation};
use seedvae_weights::{Part, WeightFile};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    after_help = "Runs on the CPU (ONNX Runtime); no GPU needed. Example:\n  \
seedvae verify-precision ema_vae_fp16.safetensors my_latent.safetensors --calibrate other_latent.safetensors"
)]
pub struct Args {
    /// SeedVR2 VAE weights (.safetensors / .gguf).
    pub weights: PathBuf,
    /// Inputs to compare on: latents (decoder; .safetensors `latent` or .npy, [1,16,T,h,w]) or
    /// videos (encoder; `video`, [1,3,T,H,W]). Used whole: keep them small on a CPU.
    /// Default: two fixed random inputs (not the calibration defaults).
    pub inputs: Vec<PathBuf>,
    /// Which half of the VAE.
    #[arg(long, value_enum, default_value = "decoder")]
    pub part: PartArg,
    /// FP8 calibration data, as for `seedvae build` (default: its fixed random inputs).
    #[arg(long, num_args = 1..)]
    pub calibrate: Vec<PathBuf>,
    /// The profile whose fp16_blocks the FP8 graph keeps (as `seedvae build` would).
    #[arg(long, default_value = seedvae_engine::DEFAULT_PROFILE)]
    pub profile: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    let part = match a.part {
        PartArg::Decoder => Part::Decoder,
        PartArg::Encoder => Part::Encoder,
    };
    let profile = Profile::load(&a.profile)?;
    let w = WeightFile::open(&a.weights)?;
    w.model_for(part)?;
    let inputs = if a.inputs.is_empty() {
        default_evaluation(part)
    } else {
        a.inputs
            .iter()
            .map(|p| match part {
                Part::Decoder => read_latent(p),
                Part::Encoder => read_video(p),
            })
            .collect::<Result<_, _>>()?
    };
    let calibration = calibration_inputs(part, &a.calibrate)?;
    let work = tempfile_dir()?;
    let pb = ui.spinner("verify-precision");
    let report = seedvae_runner::precision::verify(
        &w,
        part,
        &inputs,
        &calibration,
        &profile.fp16_blocks,
        &work,
        |m| pb.set_message(m.to_string()),
    );
    pb.finish_and_clear();
    let _ = std::fs::remove_dir_all(&work);
    let report = report?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} on {} input(s), `{}` vs fp32 (ONNX Runtime, CPU):",
        part, report.inputs, report.output
    );
    for q in &report.results {
        println!(
            "  {:<5} PSNR {:6.2} dB   max |error| {:.3e}   mean |error| {:.3e}",
            q.precision, q.psnr_db, q.max_abs_error, q.mean_abs_error
        );
    }
    println!(
        "  fp8: {} convolutions and {} attention projections in FP8, {} kept in FP16 ({})",
        report.fp8.quantized_convs,
        report.fp8.quantized_matmuls,
        report.fp8.kept_high_precision,
        profile.fp16_blocks.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// A private working directory under the system temp dir.
fn tempfile_dir() -> Result<PathBuf> {
    let d = seedvae_weights::atomic::temp_path(&std::env::temp_dir().join("seedvae-verify"));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

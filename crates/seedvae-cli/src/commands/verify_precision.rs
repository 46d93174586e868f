use super::args::PartArg;
use super::Ui;
use anyhow::Result;
use seedvae::weights::PrecisionRequest;
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
    #[arg(long, default_value = seedvae::engines::DEFAULT_PROFILE)]
    pub profile: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    let req = PrecisionRequest {
        weights: a.weights.clone(),
        part: a.part.into(),
        inputs: a.inputs.clone(),
        calibration: a.calibrate.clone(),
        profile: a.profile.clone(),
    };
    let (report, profile) =
        seedvae::weights::verify_precision(&req, &ui.progress("verify-precision"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} on {} input(s), `{}` vs fp32 (ONNX Runtime, CPU):",
        req.part, report.inputs, report.output
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

use super::Ui;
use anyhow::Result;
use seedvae::selftest::{SelftestOptions, Status};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    after_help = "Tries every backend: cpu (fp32), cuda (fp32 with TF32 off, and fp16) and \
tensorrt; one that cannot load here is listed as skipped with the reason. Exit code 0 when every \
backend that loaded passed. Examples:\n  \
seedvae selftest\n  \
seedvae selftest --fixtures ../shared/fixtures/vae_tiny --json > selftest.json"
)]
pub struct Args {
    /// The reduced-width `vae_tiny` fixture folder (weights.safetensors, latent_*, decoded_*,
    /// video_*, encoded_*): compare with the PyTorch module's fp64 goldens. Default: a tiny
    /// random VAE synthesized here, compared with the CPU fp32 graph.
    #[arg(long)]
    pub fixtures: Option<PathBuf>,
    /// Print the report as JSON on standard output instead of the table (as every command's
    /// --json does).
    #[arg(long)]
    pub json: bool,
    /// Cache for the graphs and engines it converts (default: a temporary folder).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Folder with the TensorRT-RTX libraries (default: $SEEDVAE_TENSORRT_DIR, else the setup venv).
    #[arg(long)]
    pub tensorrt_dir: Option<PathBuf>,
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    let opts = SelftestOptions {
        fixtures: a.fixtures.clone(),
        cache: a.cache.clone(),
        tensorrt_dir: a.tensorrt_dir.clone(),
    };
    let r = seedvae::selftest::selftest(&opts, &ui.progress("selftest"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(if r.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!("seedvae {} selftest; reference: {}", r.seedvae, r.reference);
    if let Some(g) = &r.gpu {
        println!(
            "GPU: {} (compute capability {}.{}, {:.1} of {:.1} GB free)",
            g.name,
            g.compute_capability.0,
            g.compute_capability.1,
            g.free_bytes as f64 / 1e9,
            g.total_bytes as f64 / 1e9
        );
    }
    println!(
        "{:<10} {:<28} {:>11}  {:<16} result",
        "backend", "case", "value", "bound"
    );
    for c in &r.checks {
        let value = c.value.map_or("-".into(), |v| format!("{v:.3e}"));
        let status = match c.status {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Skipped => "skipped",
            _ => "?",
        };
        let note = c
            .note
            .as_deref()
            .map(|n| format!(": {}", super::flags::speak_cli(n)))
            .unwrap_or_default();
        println!(
            "{:<10} {:<28} {:>11}  {:<16} {status}{note}",
            c.backend,
            c.case,
            value,
            c.bound.to_string()
        );
    }
    if r.passed() {
        println!("selftest passed");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "selftest FAILED. For a bug report, send this table (or the --json report), the output of \
         `nvidia-smi` and the command you ran; run again with -v for the logs."
    );
    Ok(ExitCode::FAILURE)
}

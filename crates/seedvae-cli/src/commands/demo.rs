use super::{inspect, synth, Ui};
use anyhow::{ensure, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Working directory for the demo's files (created; default: ./out/demo).
    #[arg(long, default_value = "out/demo")]
    pub dir: PathBuf,
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    std::fs::create_dir_all(&a.dir)?;
    let weights = a.dir.join("tiny_vae.safetensors");
    println!("[1/2] synth: a tiny random SeedVR2 VAE -> {}", weights.display());
    synth::run(
        synth::Args {
            output: weights.clone(),
            width: synth::Width::Tiny,
            dtype: synth::SynthDType::Fp16,
            seed: 1,
            format: synth::Fmt::Safetensors,
            force: true,
        },
        ui,
    )?;
    println!("[2/2] inspect:");
    let w = seedvae_weights::WeightFile::open(&weights)?;
    let s = inspect::summarize(&w);
    inspect::print(&s);
    ensure!(s.valid, "the synthesized checkpoint did not validate");
    Ok(ExitCode::SUCCESS)
}

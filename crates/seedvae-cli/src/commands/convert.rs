use super::args::{PartArg, PrecisionArg};
use super::{bytes, Ui};
use anyhow::{Context, Result};
use seedvae::weights::ExportOptions;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The SeedVR2 VAE weights: ema_vae_fp16.safetensors or a .gguf.
    pub weights: PathBuf,
    /// Output ONNX file (weights over 2 GB go to OUT.data beside it).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Which half of the VAE to export.
    #[arg(long, value_enum, default_value = "decoder")]
    pub part: PartArg,
    /// Weight and activation precision. fp16 keeps GroupNorm statistics and softmax in fp32.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: PrecisionArg,
    /// Export the streaming form: causal-conv state as extra inputs/outputs, for chunked
    /// decoding of any length in bounded memory.
    #[arg(long)]
    pub streaming: bool,
    /// Overwrite OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    let opts = ExportOptions {
        part: a.part.into(),
        precision: a.precision.into(),
        streaming: a.streaming,
    };
    let t = std::time::Instant::now();
    let (c, stats) = seedvae::weights::convert(
        &a.weights,
        &a.output,
        opts,
        a.force,
        &ui.progress("weights"),
    )
    .with_context(|| {
        format!(
            "converting {} to {}",
            a.weights.display(),
            a.output.display()
        )
    })?;
    println!(
        "wrote {} ({}, {} {}{}, {} state pairs, {} in {:.1}s)",
        a.output.display(),
        bytes(stats.model_bytes + stats.external_bytes),
        c.part,
        c.precision.name(),
        if c.streaming { ", streaming" } else { "" },
        c.states.len(),
        stats.initializers,
        t.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

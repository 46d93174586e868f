use super::{bytes, Ui};
use anyhow::{bail, Context, Result};
use seedvae_onnx::{ExportOptions, Precision};
use seedvae_weights::{Part, WeightFile};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PartArg {
    Decoder,
    Encoder,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Fp16,
}

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

pub fn options(a: &Args) -> ExportOptions {
    ExportOptions {
        part: match a.part {
            PartArg::Decoder => Part::Decoder,
            PartArg::Encoder => Part::Encoder,
        },
        precision: match a.precision {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Fp16 => Precision::Fp16,
        },
        streaming: a.streaming,
    }
}

/// Convert, printing a one-line summary; used by `convert` and `demo`.
pub fn convert(
    weights: &Path,
    out: &Path,
    opts: ExportOptions,
    force: bool,
    ui: &Ui,
) -> Result<()> {
    seedvae_weights::atomic::check_overwrite(out, force)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!(
                "{}: output directory {} does not exist",
                out.display(),
                dir.display()
            );
        }
    }
    let w = WeightFile::open(weights)?;
    let t = std::time::Instant::now();
    let pb = ui.bar(0, "weights");
    let (c, stats) = seedvae_onnx::convert(&w, opts, out, |i, n| {
        pb.set_length(n as u64);
        pb.set_position(i as u64);
    })
    .with_context(|| format!("converting {} to {}", weights.display(), out.display()))?;
    pb.finish_and_clear();
    println!(
        "wrote {} ({}, {} {}{}, {} state pairs, {} in {:.1}s)",
        out.display(),
        bytes(stats.model_bytes + stats.external_bytes),
        c.part,
        c.precision.name(),
        if c.streaming { ", streaming" } else { "" },
        c.states.len(),
        stats.initializers,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    convert(&a.weights, &a.output, options(&a), a.force, ui)?;
    Ok(ExitCode::SUCCESS)
}

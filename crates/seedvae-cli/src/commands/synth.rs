use super::Ui;
use anyhow::Result;
use seedvae_weights::schema::FULL_WIDTHS;
use seedvae_weights::synth::{synth, SynthFormat, SynthOptions};
use seedvae_weights::{DType, Model};
use std::path::PathBuf;
use std::process::ExitCode;

/// Block widths of the reduced "tiny" model (the same as the test fixtures).
pub const TINY_WIDTHS: [usize; 4] = [32, 32, 64, 64];

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Width {
    /// The real model: 250 tensors, 250,648,227 parameters.
    Full,
    /// Reduced widths [32, 32, 64, 64]: 246 tensors, 4.2 M parameters (fast tests and demos).
    Tiny,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SynthDType {
    Fp16,
    Fp32,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Fmt {
    Safetensors,
    Gguf,
}

#[derive(clap::Args)]
pub struct Args {
    /// Output file.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value = "full")]
    pub width: Width,
    #[arg(long, value_enum, default_value = "fp16")]
    pub dtype: SynthDType,
    /// Random seed (the same seed gives the same file).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "safetensors")]
    pub format: Fmt,
    /// Overwrite the output if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn options(a: &Args) -> SynthOptions {
    SynthOptions {
        model: Model {
            widths: match a.width {
                Width::Full => FULL_WIDTHS,
                Width::Tiny => TINY_WIDTHS,
            },
        },
        dtype: match a.dtype {
            SynthDType::Fp16 => DType::F16,
            SynthDType::Fp32 => DType::F32,
        },
        seed: a.seed,
        format: match a.format {
            Fmt::Safetensors => SynthFormat::SafeTensors,
            Fmt::Gguf => SynthFormat::Gguf,
        },
    }
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    seedvae_weights::atomic::check_overwrite(&a.output, a.force)?;
    let opts = options(&a);
    let pb = ui.bar(opts.model.all_tensors().len() as u64, "tensors");
    synth(&a.output, &opts, |i, _| pb.set_position(i as u64))?;
    pb.finish_and_clear();
    tracing::info!("wrote {}", a.output.display());
    Ok(ExitCode::SUCCESS)
}

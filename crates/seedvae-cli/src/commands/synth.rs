use super::Ui;
use anyhow::Result;
use seedvae::{weights::SynthOptions, DType};
use std::path::PathBuf;
use std::process::ExitCode;

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

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    let opts = SynthOptions {
        model: match a.width {
            Width::Full => seedvae::weights::Architecture {
                widths: seedvae::weights::FULL_WIDTHS,
            },
            Width::Tiny => seedvae::weights::Architecture {
                widths: seedvae::weights::TINY_WIDTHS,
            },
        },
        dtype: match a.dtype {
            SynthDType::Fp16 => DType::F16,
            SynthDType::Fp32 => DType::F32,
        },
        seed: a.seed,
        format: match a.format {
            Fmt::Safetensors => seedvae::weights::SynthFormat::SafeTensors,
            Fmt::Gguf => seedvae::weights::SynthFormat::Gguf,
        },
    };
    seedvae::weights::synth(&a.output, &opts, a.force, &ui.progress("tensors"))?;
    tracing::info!("wrote {}", a.output.display());
    Ok(ExitCode::SUCCESS)
}

use super::{convert, inspect, synth, Ui};
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
    println!(
        "[1/3] synth: a tiny random SeedVR2 VAE -> {}",
        weights.display()
    );
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
    println!("[2/3] inspect:");
    let w = seedvae_weights::WeightFile::open(&weights)?;
    let s = inspect::summarize(&w);
    inspect::print(&s);
    ensure!(s.valid, "the synthesized checkpoint did not validate");
    println!("[3/3] convert: ONNX graphs of the decoder (one-shot and streaming) and encoder");
    for (name, part, streaming) in [
        ("decoder.onnx", seedvae_weights::Part::Decoder, false),
        (
            "decoder_streaming.onnx",
            seedvae_weights::Part::Decoder,
            true,
        ),
        ("encoder.onnx", seedvae_weights::Part::Encoder, false),
    ] {
        let opts = seedvae_onnx::ExportOptions {
            part,
            precision: seedvae_onnx::Precision::Fp32,
            streaming,
        };
        convert::convert(&weights, &a.dir.join(name), opts, true, ui)?;
    }
    Ok(ExitCode::SUCCESS)
}

//! # seedvae — the command line
//!
//! Owns: argument parsing, progress display, logging setup, and turning library errors into
//! messages and exit codes. Must not own model, format, cache or engine logic: every command
//! parses its flags into the `seedvae` library's request types, calls it, and prints
//! (tests/cli/layering.rs keeps it so).

mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "seedvae",
    version,
    about = "Turn the SeedVR2 video VAE into fast, offline TensorRT-RTX engines",
    long_about = "seedvae reads your local SeedVR2 VAE checkpoint (ema_vae_fp16.safetensors or a .gguf), \
checks it against the hardcoded model, converts it to ONNX, builds FP8 TensorRT-RTX engines ahead of time \
(no GPU needed) and decodes latents to frames (and encodes frames to latents) on an RTX GPU, any NVIDIA GPU \
(ONNX Runtime's CUDA provider) or the CPU. \
Nothing is downloaded: everything runs offline.\n\n\
Start with `seedvae demo`, or `seedvae inspect YOUR_FILE`.",
    after_help = "Set RUST_LOG=debug (or pass -v) for detailed logs."
)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// No progress bars or informational logs.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a weights file: format, tensors, dtypes, variant, parameter count, problems.
    /// Exit code 0 only if the file is a valid SeedVR2 VAE (or a valid half of one).
    Inspect(commands::inspect::Args),
    /// Convert weights to an ONNX graph of the decoder or encoder (one-shot or streaming).
    Convert(commands::convert::Args),
    /// Build (or fetch from the cache) a TensorRT-RTX engine for an RTX GPU; no GPU needed.
    Build(commands::build::Args),
    /// Decode a latent to frames (PNG, .y4m, raw tensor): streaming, tiled, any length, offline.
    Decode(commands::decode::Args),
    /// Encode frames (PNG directory, .y4m, tensor) to a latent (the posterior mean).
    Encode(commands::encode::Args),
    /// Pack engines into one file to ship (.seedvae: engines, sha256 and compatibility facts).
    Pack(commands::pack::PackArgs),
    /// Verify a pack offline: checksums, manifests, and whether it runs on this machine.
    Verify(commands::pack::VerifyArgs),
    /// Install a pack's engines into the cache (all verified first; refuses on mismatch).
    Install(commands::pack::InstallArgs),
    /// The engine cache: list, rm, gc.
    Engines(commands::pack::EnginesArgs),
    /// Measure how much fp16 and FP8 change the output vs fp32 (PSNR, max error), on the CPU.
    VerifyPrecision(commands::verify_precision::Args),
    /// Write a random-weight checkpoint with the exact SeedVR2 VAE names and shapes.
    Synth(commands::synth::Args),
    /// Which backends can run on this machine (tensorrt, cuda, cpu), on which GPU, or why not.
    Backends(commands::backends::Args),
    /// Check decoding and encoding on every backend that loads here (cpu, cuda, tensorrt)
    /// against references; exit code 0 when all pass.
    Selftest(commands::selftest::Args),
    /// Run the whole pipeline on a built-in default (a tiny random VAE) and say what each step produced.
    Demo(commands::demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    // trtx narrates every builder step at info; keep that for -vv.
    let trtx = if cli.verbose >= 2 { "" } else { ",trtx=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level}{trtx}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| commands::flags::Speaking(std::io::stderr()))
        .with_target(false)
        .init();
    let ui = commands::Ui { quiet: cli.quiet };
    commands::install_interrupt_handler();
    let result = match cli.command {
        Command::Inspect(a) => commands::inspect::run(a, &ui),
        Command::Synth(a) => commands::synth::run(a, &ui),
        Command::Convert(a) => commands::convert::run(a, &ui),
        Command::Build(a) => commands::build::run(a, &ui),
        Command::Decode(a) => commands::decode::run(a, &ui),
        Command::Encode(a) => commands::encode::run(a, &ui),
        Command::Pack(a) => commands::pack::run_pack(a, &ui),
        Command::Verify(a) => commands::pack::run_verify(a, &ui),
        Command::Install(a) => commands::pack::run_install(a, &ui),
        Command::Engines(a) => commands::pack::run_engines(a, &ui),
        Command::VerifyPrecision(a) => commands::verify_precision::run(a, &ui),
        Command::Demo(a) => commands::demo::run(a, &ui),
        Command::Backends(a) => commands::backends::run(a, &ui),
        Command::Selftest(a) => commands::selftest::run(a, &ui),
    };
    match result {
        Ok(code) => code,
        Err(e)
            if e.downcast_ref::<seedvae::Error>()
                .is_some_and(seedvae::Error::is_interrupted) =>
        {
            eprintln!("interrupted: nothing was left half-written");
            ExitCode::from(commands::interrupted_exit_code())
        }
        // -v: every cause on its own line; else the chain on one line.
        Err(e) if cli.verbose > 0 => {
            eprintln!("error: {}", commands::flags::speak_cli(&format!("{e:?}")));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", commands::flags::speak_cli(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

use super::args::{EnginePrecisionArg, PartArg};
use super::{bytes, Ui};
use anyhow::Result;
use seedvae::engines::{EngineEntry, EngineRequest, Outcome, Target};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
seedvae build ema_vae_fp16.safetensors                       # FP8 decoder for an RTX 5070 Ti (default profile)\n  \
seedvae build ema_vae_fp16.safetensors --streaming -o vae.trt\n  \
seedvae build vae.onnx --profile rtx4090 --precision fp16\n  \
seedvae build ema_vae_fp16.safetensors --calibrate a.safetensors b.npy\n\n\
Engines are cached (see --cache) by the graph, profile, TensorRT-RTX version, targets, precision and part: \
building the same thing again returns the cached engine at once. No GPU is needed: TensorRT-RTX compiles \
ahead of time for the named architectures.")]
pub struct Args {
    /// The model: SeedVR2 VAE weights (.safetensors / .gguf; converted on the way) or an ONNX
    /// graph written by `seedvae convert`.
    pub model: PathBuf,
    /// A shipped profile name (rtx5070ti, rtx5090, rtx4090, rtx4070) or a profile YAML file.
    #[arg(long, default_value = seedvae::engines::DEFAULT_PROFILE)]
    pub profile: String,
    /// GPU architectures to build for, comma separated (default: the profile's). sm_120: RTX 50;
    /// sm_89: RTX 40; sm_86: RTX 30 (no FP8).
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<String>,
    /// Engine precision (default: the profile's; for an ONNX model: the graph's).
    #[arg(long, value_enum)]
    pub precision: Option<EnginePrecisionArg>,
    /// Which half of the VAE [default: decoder] (an ONNX graph says which it is).
    #[arg(long, value_enum)]
    pub part: Option<PartArg>,
    /// Build the streaming form (chunked decoding of any length; weights only).
    #[arg(long)]
    pub streaming: bool,
    /// FP8 calibration data: latents (decoder; .safetensors with a `latent` tensor, or .npy,
    /// [1,16,T,h,w]) or videos (encoder; `video`, [1,3,T,H,W]). Cropped small. Default: two
    /// fixed random inputs.
    #[arg(long, num_args = 1..)]
    pub calibrate: Vec<PathBuf>,
    /// Engine cache directory (default: $SEEDVAE_CACHE, else the user cache dir: ~/.cache/seedvae,
    /// %LOCALAPPDATA%\seedvae).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Also write the engine here (and its manifest to ENGINE.manifest.json).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Folder with the TensorRT-RTX libraries (default: $SEEDVAE_TENSORRT_DIR, else the setup venv).
    #[arg(long)]
    pub tensorrt_dir: Option<PathBuf>,
    /// Print the manifest as JSON at the end.
    #[arg(long)]
    pub json: bool,
    /// Strip the weights from the engine: a much smaller file that carries no model weights;
    /// the runner refits it on the GPU from your own weights file (whose hash must match).
    #[arg(long)]
    pub weightless: bool,
}

impl Args {
    fn request(&self) -> Result<EngineRequest> {
        Ok(EngineRequest {
            profile: self.profile.clone(),
            targets: self
                .target
                .iter()
                .map(|t| Target::parse(t.trim()))
                .collect::<Result<_, _>>()?,
            precision: self.precision.map(Into::into),
            part: self.part.map(Into::into),
            streaming: self.streaming,
            calibration: self.calibrate.clone(),
            cache: self.cache.clone(),
            tensorrt_dir: self.tensorrt_dir.clone(),
            weightless: self.weightless,
            output: self.output.clone(),
            force: self.force,
            ..EngineRequest::new(&self.model)
        })
    }
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    let got = seedvae::engines::ensure_engine(&a.request()?, &ui.progress("building"))?;
    report(&a, &got)?;
    Ok(ExitCode::SUCCESS)
}

fn report(a: &Args, got: &EngineEntry) -> Result<()> {
    let (e, m) = (&got.entry, &got.entry.manifest);
    if a.json {
        println!("{}", serde_json::to_string_pretty(m)?);
        return Ok(());
    }
    let how = match &got.outcome {
        Outcome::Hit => "cache hit".to_string(),
        Outcome::Built => format!("built in {:.1}s", m.info.build_seconds),
        Outcome::Rebuilt(why) => format!(
            "rebuilt in {:.1}s (cached copy was bad: {why})",
            m.info.build_seconds
        ),
    };
    let k = &m.key_parts;
    println!(
        "engine {} ({}): {} {}{}, {} for {}, TensorRT-RTX {}, profile {}",
        m.key,
        how,
        k.part,
        k.precision.name(),
        if k.streaming { " streaming" } else { "" },
        bytes(m.engine.bytes),
        Target::list(&k.targets),
        k.tensorrt_rtx,
        m.info.profile
    );
    if let Some(l) = &m.info.layers {
        println!(
            "layers: {} convolutions ({} in FP8), {} matmuls ({} in FP8)",
            l.convolutions, l.fp8_convolutions, l.matmuls, l.fp8_matmuls
        );
    }
    println!("cached: {}", e.engine.display());
    if let Some(o) = &a.output {
        println!(
            "wrote:  {} (+ {})",
            o.display(),
            seedvae::engines::sidecar(o).display()
        );
    }
    Ok(())
}

use super::args::{ModelArgs, OutArgs, Summary, TileArgs};
use super::Ui;
use anyhow::Result;
use seedvae::{Pad, Part};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PadArg {
    /// Mirror the last frames (the ComfyUI node).
    Reflect,
    /// Repeat the last frame (the original SeedVR2 pipeline).
    Repeat,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
seedvae encode -m ema_vae_fp16.safetensors frames/ -o latent.safetensors     # PNG frames in\n  \
seedvae encode -m ema_vae_fp16.safetensors clip.y4m -o latent.npy --pad repeat\n  \
seedvae encode -m ema_vae_fp16.safetensors clip.y4m -o dit_in.safetensors --dit-latent\n\n\
FRAMES: a directory of PNG frames (file-name order), a .y4m file, or a [1,3,T,H,W] tensor in [-1,1] \
(.safetensors `video` / .npy). H and W must be multiples of 8 (the pipelines crop or pad to 16). The clip is \
padded to 4n+1 frames (--pad). Writes the posterior mean, [1,16,n+1,H/8,W/8], tensor `latent`.")]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The frames to encode.
    pub frames: PathBuf,
    /// The latent (.safetensors or .npy).
    #[arg(short, long)]
    pub output: PathBuf,
    /// How the clip is padded to 4n+1 frames.
    #[arg(long, value_enum, default_value = "reflect")]
    pub pad: PadArg,
    /// Write the DiT's layout: [T,h,w,16], scaled by 0.9152.
    #[arg(long)]
    pub dit_latent: bool,
    #[command(flatten)]
    pub tiles: TileArgs,
    #[command(flatten)]
    pub out: OutArgs,
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    seedvae::media::check_output(&a.output, a.out.force, &[&a.frames, &a.model.model])?;
    let pad = match a.pad {
        PadArg::Reflect => Pad::Reflect,
        PadArg::Repeat => Pad::Repeat,
    };
    let progress = ui.progress("encoding");
    let mut src = seedvae::media::open_frames(&a.frames)?;
    let mut model = a.model.open(Part::Encoder, &progress)?;
    let (mean, report) = model
        .encode(src.as_mut(), pad, &a.tiles.options(), &progress)
        .map_err(|e| seedvae::media::name_input(&a.frames, e))?;
    let out = if a.dit_latent {
        seedvae::latent::to_dit(&mean)?
    } else {
        mean
    };
    seedvae::write_tensor(&a.output, "latent", &out, a.out.dtype.into(), a.out.force)?;
    Summary::new(&a.output, report).print(a.out.json, "encoded")?;
    Ok(ExitCode::SUCCESS)
}

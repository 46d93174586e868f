use super::args::{ModelArgs, OutArgs, Summary, TileArgs};
use super::Ui;
use anyhow::Result;
use seedvae::{ColorCorrection, ColorMethod, FileOutput, LatentLayout, Part};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
seedvae decode -m ema_vae_fp16.safetensors latent.safetensors -o frames/     # PNG frames, best backend\n  \
seedvae decode -m vae.trt latent.npy -o clip.y4m --fps 24\n  \
seedvae decode -m ema_vae_fp16.safetensors dit_out.safetensors --dit-latent -o video.safetensors --backend cpu\n  \
seedvae decode -m ema_vae_fp16.safetensors latent.safetensors -o out.y4m --color-fix lab --color-ref input.y4m\n\n\
LATENT: .safetensors (tensor `latent`, or the only one) or .npy, [1,16,T,h,w] in VAE space (T latent frames \
give 4T-3 frames of 8h x 8w). OUTPUT by extension: a directory (PNG frames), .y4m, .safetensors or .npy \
(tensor `video`, [1,3,F,H,W] in [-1,1]). The output appears whole at the end or not at all.")]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The latent to decode.
    pub latent: PathBuf,
    /// Where the frames go.
    #[arg(short, long)]
    pub output: PathBuf,
    /// LATENT is the DiT's output: [T,h,w,16] (or [1,T,h,w,16]), scaled by 0.9152 (divided out here).
    #[arg(long)]
    pub dit_latent: bool,
    #[command(flatten)]
    pub tiles: TileArgs,
    /// Frame rate written into a .y4m output (at least 1).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..))]
    pub fps: u32,
    /// Colour correction after decoding, as the SeedVR2 ComfyUI node (numz) does it: `lab` (its
    /// default), `wavelet`, `wavelet_adaptive`, `hsv`, `adain`, or `none`. Needs --color-ref.
    #[arg(long, value_enum, default_value = "none")]
    pub color_fix: ColorFixArg,
    /// The clip whose colours to keep (the input video: PNG frames, .y4m or a [1,3,T,H,W]
    /// tensor), frame for frame; resized to the output when its size differs.
    #[arg(long)]
    pub color_ref: Option<PathBuf>,
    /// Frames corrected together: the node's batch size (lab, hsv and wavelet_adaptive match
    /// histograms over a batch).
    #[arg(long, default_value_t = 5)]
    pub color_batch: usize,
    #[command(flatten)]
    pub out: OutArgs,
}

/// The numz node's colour-correction methods, by its names.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorFixArg {
    None,
    Lab,
    Wavelet,
    #[value(name = "wavelet_adaptive")]
    WaveletAdaptive,
    Hsv,
    Adain,
}

impl From<ColorFixArg> for ColorMethod {
    fn from(c: ColorFixArg) -> ColorMethod {
        match c {
            ColorFixArg::None => ColorMethod::None,
            ColorFixArg::Lab => ColorMethod::Lab,
            ColorFixArg::Wavelet => ColorMethod::Wavelet,
            ColorFixArg::WaveletAdaptive => ColorMethod::WaveletAdaptive,
            ColorFixArg::Hsv => ColorMethod::Hsv,
            ColorFixArg::Adain => ColorMethod::Adain,
        }
    }
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    let color = match (a.color_fix, &a.color_ref) {
        (ColorFixArg::None, _) => None,
        (m, Some(reference)) => Some(ColorCorrection {
            method: m.into(),
            reference: reference.clone(),
            batch: a.color_batch,
        }),
        (_, None) => anyhow::bail!(
            "--color-fix needs --color-ref: the clip whose colours to keep (the input video)"
        ),
    };
    let out = FileOutput {
        path: a.output.clone(),
        dtype: a.out.dtype.into(),
        fps: a.fps,
        force: a.out.force,
        color,
    };
    // What can be checked before the (possibly slow) model setup.
    out.check(&[&a.latent, &a.model.model])?;
    let layout = if a.dit_latent {
        LatentLayout::Dit
    } else {
        LatentLayout::Vae
    };
    let latent = seedvae::read_latent(&a.latent, layout)?;
    let progress = ui.progress("decoding");
    let mut model = a.model.open(Part::Decoder, &progress)?;
    let report = model
        .decode_to_file(&latent, &out, &a.tiles.options(), &progress)
        .map_err(|e| seedvae::media::name_input(&a.latent, e))?;
    Summary::new(&a.output, report).print(a.out.json, "decoded")?;
    Ok(ExitCode::SUCCESS)
}

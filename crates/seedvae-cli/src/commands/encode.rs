use super::decode::{progress, OutArgs, Summary, TileArgs, DIT_SCALE};
use super::model::{self, ModelArgs};
use super::Ui;
use anyhow::{anyhow, bail, Result};
use seedvae_runner::pipeline::{self, Pad};
use seedvae_runner::planner;
use seedvae_runner::video::{open_source, write_tensor};
use seedvae_runner::Tensor;
use seedvae_weights::Part;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

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

/// `[1, 16, T, h, w]` → the DiT's `[T, h, w, 16]` × [`DIT_SCALE`].
fn to_dit(t: &Tensor) -> Tensor {
    let [_, c, tt, h, w] = <[usize; 5]>::try_from(t.shape.as_slice()).expect("5-D");
    let v = t.to_f32();
    let mut out = vec![0f32; v.len()];
    for ch in 0..c {
        for ti in 0..tt {
            for y in 0..h {
                for x in 0..w {
                    out[((ti * h + y) * w + x) * c + ch] =
                        v[((ch * tt + ti) * h + y) * w + x] * DIT_SCALE;
                }
            }
        }
    }
    Tensor::f32(vec![tt, h, w, c], out)
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    seedvae_weights::atomic::check_overwrite(&a.output, a.out.force)?;
    let mut src = open_source(&a.frames)?;
    let (hh, ww) = src.size();
    if hh % 8 != 0 || ww % 8 != 0 {
        bail!(
            "{}: frames are {ww}×{hh}; the VAE needs multiples of 8 (crop or pad to multiples of 16, as the \
             SeedVR2 pipelines do)",
            a.frames.display()
        );
    }
    let t = src.len();
    let padded = Pad::padded_len(t);
    let pad = match a.pad {
        PadArg::Reflect => Pad::Reflect,
        PadArg::Repeat => Pad::Repeat,
    };
    if padded != t {
        tracing::info!("{t} frames padded to {padded} (4n+1) by {:?}", pad);
    }
    let mut o = model::open(&a.model, Part::Encoder, ui)?;
    let streaming = o.backend.contract().streaming;
    let chunks = planner::plan_chunks(Part::Encoder, padded, streaming, a.tiles.chunk, &o.limits)
        .map_err(|e| anyhow!("{}: {e}", a.frames.display()))?;
    let plan = planner::plan_spatial(
        Part::Encoder,
        hh / 8,
        ww / 8,
        &o.limits,
        &a.tiles.request(o.memory_cap.map(|c| c / 8)),
    )
    .map_err(|e| anyhow!("{}: {e}", a.frames.display()))?;
    let (pb, mut tick) = progress(ui, padded, "encoding");
    let start = Instant::now();
    let (mean, stats) = pipeline::encode(
        o.backend.as_mut(),
        src.as_mut(),
        pad,
        &plan,
        &chunks,
        &mut tick,
    )?;
    pb.finish_and_clear();
    let out = if a.dit_latent { to_dit(&mean) } else { mean };
    write_tensor(&a.output, "latent", &out, a.out.dtype.dtype(), a.out.force)?;
    let secs = start.elapsed().as_secs_f64();
    let tile = plan.is_tiled().then_some(plan.tile * 8);
    Summary::new(&a.output, &o, &stats, tile, (hh, ww), secs).print(a.out.json, "encoded")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dit_layout_round_trips() {
        let v: Vec<f32> = (0..16 * 2 * 3 * 4).map(|i| i as f32).collect();
        let t = seedvae_runner::Tensor::f32(vec![1, 16, 2, 3, 4], v.clone());
        let d = super::to_dit(&t);
        assert_eq!(d.shape, vec![2, 3, 4, 16]);
        // channel 5, frame 1, y 2, x 3
        assert_eq!(
            d.to_f32()[((3 + 2) * 4 + 3) * 16 + 5],
            v[((5 * 2 + 1) * 3 + 2) * 4 + 3] * super::DIT_SCALE
        );
        let back = super::super::decode::from_dit(std::path::Path::new("x"), &d).unwrap();
        let err = back
            .to_f32()
            .iter()
            .zip(&v)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs() / b.abs().max(1.0)));
        assert!(err < 1e-6, "{err}");
    }
}

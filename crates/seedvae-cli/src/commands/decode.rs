use super::model::{self, ModelArgs};
use super::Ui;
use anyhow::{bail, Result};
use seedvae_runner::io::read_tensor;
use seedvae_runner::pipeline::{self, RunStats};
use seedvae_runner::planner::{self, decoded_frames, TileRequest};
use seedvae_runner::video::{create_sink, SinkSpec};
use seedvae_runner::Tensor;
use seedvae_weights::{DType, Part};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The pipeline's VAE ↔ DiT latent scale (spec §7).
pub const DIT_SCALE: f32 = 0.9152;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DTypeArg {
    F32,
    F16,
}

impl DTypeArg {
    pub fn dtype(self) -> DType {
        match self {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
        }
    }
}

/// Output flags shared by decode and encode.
#[derive(clap::Args)]
pub struct OutArgs {
    /// Value type of a .safetensors / .npy output.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DTypeArg,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary at the end.
    #[arg(long)]
    pub json: bool,
}

/// Spatial tiling flags shared by decode and encode.
#[derive(clap::Args)]
pub struct TileArgs {
    /// Tile edge in output pixels (the ComfyUI node's tile size); frames larger than this, or
    /// than the engine takes, are decoded in overlapping tiles blended with a raised cosine.
    #[arg(long, default_value_t = planner::DEFAULT_TILE_PX)]
    pub tile_size: usize,
    /// Tile overlap in output pixels.
    #[arg(long, default_value_t = planner::DEFAULT_OVERLAP_PX)]
    pub tile_overlap: usize,
    /// Never tile: a frame larger than the model takes is an error.
    #[arg(long)]
    pub no_tiling: bool,
    /// Latent frames per backend call (streaming models; default: the largest the engine takes,
    /// 1 on the CPU). Results do not depend on it.
    #[arg(long)]
    pub chunk: Option<usize>,
}

impl TileArgs {
    pub fn request(&self, memory_cap: Option<usize>) -> TileRequest {
        TileRequest {
            tile_px: self.tile_size,
            overlap_px: self.tile_overlap,
            allow: !self.no_tiling,
            memory_cap,
        }
    }
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
seedvae decode -m ema_vae_fp16.safetensors latent.safetensors -o frames/     # PNG frames, best backend\n  \
seedvae decode -m vae.trt latent.npy -o clip.y4m --fps 24\n  \
seedvae decode -m ema_vae_fp16.safetensors dit_out.safetensors --dit-latent -o video.safetensors --backend cpu\n\n\
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
    /// Frame rate written into a .y4m output.
    #[arg(long, default_value_t = 24)]
    pub fps: u32,
    #[command(flatten)]
    pub out: OutArgs,
}

/// `[T, h, w, 16]` (or with a leading 1) scaled by [`DIT_SCALE`] → `[1, 16, T, h, w]` in VAE space.
pub fn from_dit(path: &Path, t: &Tensor) -> Result<Tensor> {
    let s: Vec<usize> = match t.shape.as_slice() {
        [1, rest @ ..] if rest.len() == 4 => rest.to_vec(),
        s => s.to_vec(),
    };
    let [tt, h, w, c] = <[usize; 4]>::try_from(s.as_slice()).map_err(|_| {
        anyhow::anyhow!(
            "{}: a DiT latent must be [T, h, w, 16]; found {:?}",
            path.display(),
            t.shape
        )
    })?;
    if c != 16 {
        bail!(
            "{}: a DiT latent must have 16 channels last ([T, h, w, 16]); found {:?}",
            path.display(),
            t.shape
        );
    }
    let v = t.to_f32();
    let mut out = vec![0f32; v.len()];
    for ti in 0..tt {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..16 {
                    out[((ch * tt + ti) * h + y) * w + x] =
                        v[((ti * h + y) * w + x) * 16 + ch] / DIT_SCALE;
                }
            }
        }
    }
    Ok(Tensor::f32(vec![1, 16, tt, h, w], out))
}

/// A VAE-space latent: `[1, 16, T, h, w]`, or `[1, 16, h, w]` (one frame).
fn read_vae_latent(path: &Path) -> Result<Tensor> {
    let mut t = read_tensor(path, "latent")?;
    if t.shape.len() == 4 && t.shape[0] == 1 {
        t.shape.insert(2, 1);
    }
    let s = &t.shape;
    if s.len() != 5 || s[0] != 1 || s[1] != 16 || s[2..].contains(&0) {
        let hint = if s.last() == Some(&16) {
            " (channels last? pass --dit-latent for the DiT's [T, h, w, 16])"
        } else {
            ""
        };
        bail!(
            "{}: latent must be [1, 16, T, h, w] with T, h, w ≥ 1; found {s:?}{hint}",
            path.display()
        );
    }
    Ok(t)
}

/// Progress and Ctrl-C for a run over `total` frames.
pub fn progress(
    ui: &Ui,
    total: usize,
    what: &str,
) -> (
    indicatif::ProgressBar,
    impl FnMut(usize) -> Result<(), seedvae_runner::Error>,
) {
    let pb = ui.bar(total as u64, what);
    let p = pb.clone();
    let tick = move |done: usize| {
        p.set_position(done as u64);
        if super::interrupted() {
            return Err(seedvae_runner::Error::Interrupted);
        }
        Ok(())
    };
    (pb, tick)
}

/// The end-of-run summary (printed as text or JSON).
#[derive(serde::Serialize)]
pub struct Summary {
    pub output: PathBuf,
    pub backend: String,
    pub fallback_reason: Option<String>,
    pub frames: usize,
    pub width: usize,
    pub height: usize,
    pub tiles: usize,
    pub tile_px: Option<usize>,
    pub chunks: usize,
    pub calls: usize,
    pub seconds: f64,
    pub frames_per_second: f64,
    pub state_bytes: usize,
    /// Peak resident host memory of the whole process (Linux only).
    pub peak_host_bytes: Option<u64>,
}

impl Summary {
    pub fn new(
        output: &Path,
        o: &model::Opened,
        st: &RunStats,
        plan_tile: Option<usize>,
        hw: (usize, usize),
        secs: f64,
    ) -> Summary {
        Summary {
            output: output.to_path_buf(),
            backend: o.backend.name().to_string(),
            fallback_reason: o.fallback.clone(),
            frames: st.frames,
            width: hw.1,
            height: hw.0,
            tiles: st.tiles,
            tile_px: plan_tile,
            chunks: st.chunks,
            calls: st.calls,
            seconds: secs,
            frames_per_second: st.frames as f64 / secs.max(1e-9),
            state_bytes: st.state_bytes,
            peak_host_bytes: super::peak_host_bytes(),
        }
    }

    pub fn print(&self, json: bool, verb: &str) -> Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        println!(
            "{verb} {} frames of {}×{} in {:.1}s ({:.2} frames/s) on {}{}; {} chunk(s), {} tile(s){} → {}",
            self.frames,
            self.width,
            self.height,
            self.seconds,
            self.frames_per_second,
            self.backend,
            self.fallback_reason
                .as_ref()
                .map(|r| format!(" (TensorRT-RTX not used: {r})"))
                .unwrap_or_default(),
            self.chunks,
            self.tiles,
            self.tile_px.map(|t| format!(" of {t} px")).unwrap_or_default(),
            self.output.display()
        );
        Ok(())
    }
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    // Check what can be checked before the (possibly slow) model setup.
    seedvae_runner::video::Container::of(&a.output)?;
    if a.output.exists() && !a.out.force {
        bail!(
            "{}: already exists; pass --force to replace it",
            a.output.display()
        );
    }
    let latent = if a.dit_latent {
        from_dit(&a.latent, &read_tensor(&a.latent, "latent")?)?
    } else {
        read_vae_latent(&a.latent)?
    };
    let [t, h, w] = [latent.shape[2], latent.shape[3], latent.shape[4]];
    let mut o = model::open(&a.model, Part::Decoder, ui)?;
    let streaming = o.backend.contract().streaming;
    let chunks = planner::plan_chunks(Part::Decoder, t, streaming, a.tiles.chunk, &o.limits)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.latent.display()))?;
    let plan = planner::plan_spatial(
        Part::Decoder,
        h,
        w,
        &o.limits,
        &a.tiles.request(o.memory_cap),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", a.latent.display()))?;
    if plan.is_tiled() {
        tracing::info!(
            "decoding in {} tiles of {} px with {} px overlap",
            plan.tiles.len(),
            plan.tile * 8,
            plan.overlap * 8
        );
    }
    let frames: usize = chunks.iter().map(|&(s, e)| decoded_frames(s, e)).sum();
    let mut sink = create_sink(&SinkSpec {
        path: &a.output,
        frames,
        h: 8 * h,
        w: 8 * w,
        dtype: a.out.dtype.dtype(),
        fps: (a.fps, 1),
        force: a.out.force,
    })?;
    let (pb, mut tick) = progress(ui, frames, "decoding");
    let start = Instant::now();
    let stats = pipeline::decode(
        o.backend.as_mut(),
        &latent,
        &plan,
        &chunks,
        sink.as_mut(),
        &mut tick,
    )?;
    sink.finish()?;
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let tile = plan.is_tiled().then_some(plan.tile * 8);
    Summary::new(&a.output, &o, &stats, tile, (8 * h, 8 * w), secs).print(a.out.json, "decoded")?;
    Ok(ExitCode::SUCCESS)
}

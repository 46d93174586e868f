//! Decode and encode whole clips with a [`Model`]: the chunk and tile plan within the backend's
//! limits, the run through the runner's pipeline, and a [`RunReport`] of what happened.

use crate::error::{invalid, Error, Result};
use crate::model::Model;
use crate::progress::Progress;
use seedvae_runner::media::{self, FrameSink, FrameSource, SinkSpec};
use seedvae_runner::planner::{self, decoded_frames, SpatialPlan, TileRequest};
use seedvae_runner::{pipeline, BackendKind, Foreign, Pad, RunStats, Tensor};
use seedvae_weights::{DType, Part};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Spatial tiling and temporal chunking of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TileOptions {
    /// Tile edge in output pixels (decode) or input pixels (encode); the ComfyUI node's default.
    pub tile_px: usize,
    /// Tile overlap, same units.
    pub overlap_px: usize,
    /// Never tile: a frame larger than the model takes is an error.
    pub no_tiling: bool,
    /// Latent frames (decode) or video frames (encode) per backend call; None: the largest the
    /// backend takes (1 latent frame on the CPU). Results do not depend on it.
    pub chunk: Option<usize>,
}

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions {
            tile_px: planner::DEFAULT_TILE_PX,
            overlap_px: planner::DEFAULT_OVERLAP_PX,
            no_tiling: false,
            chunk: None,
        }
    }
}

impl TileOptions {
    /// Tiles of at least 64 px (8 latent pixels, the smallest any engine takes), in steps of
    /// 8 px (one latent pixel), overlapping by less than a tile.
    pub fn validate(&self) -> Result<()> {
        let (t, o) = (self.tile_px, self.overlap_px);
        if t < 64 || !t.is_multiple_of(8) {
            return Err(invalid!(
                "`tile_px` {t}: tiles are at least 64 px and a multiple of 8 (one latent pixel), e.g. {}",
                (t.max(64) / 8) * 8
            ));
        }
        if !o.is_multiple_of(8) || o >= t {
            return Err(invalid!(
                "`overlap_px` {o}: the overlap is a multiple of 8 px and smaller than the tile ({t} px)"
            ));
        }
        if self.chunk == Some(0) {
            return Err(invalid!("`chunk` 0: a chunk is at least one latent frame"));
        }
        Ok(())
    }

    /// On seedvae's executor a tile edge other than the default is a band height: frames taller
    /// than it run every layer in bands of that many rows (exact — the result does not change).
    /// None: whole frames (`no_tiling`, the default edge — the executor then cuts into bands only
    /// when the memory plan needs them — or a frame that fits).
    pub fn band_px(&self, frame_h: usize) -> Option<usize> {
        let asked = !self.no_tiling && self.tile_px != planner::DEFAULT_TILE_PX;
        (asked && frame_h > self.tile_px).then_some(self.tile_px)
    }

    fn request(&self, memory_cap: Option<usize>) -> TileRequest {
        TileRequest {
            tile_px: self.tile_px,
            overlap_px: self.overlap_px,
            allow: !self.no_tiling,
            memory_cap,
        }
    }
}

/// A file to decode into: a directory (PNG frames), `.y4m`, `.safetensors` or `.npy`.
#[derive(Debug, Clone)]
pub struct FileOutput {
    pub path: PathBuf,
    /// Value type of a `.safetensors` / `.npy` output.
    pub dtype: DType,
    /// Frame rate of a `.y4m` output.
    pub fps: u32,
    /// Replace an existing output.
    pub force: bool,
    /// Colour-correct the decoded frames against a reference clip (the numz node's methods).
    pub color: Option<ColorCorrection>,
}

/// SeedVR2's colour correction of decoded frames, as the numz ComfyUI node does it.
#[derive(Debug, Clone)]
pub struct ColorCorrection {
    pub method: ColorMethod,
    /// The clip whose colours to keep (the input video: PNG frames, .y4m or a tensor), frame for
    /// frame; resized to the output bilinearly when its size differs, its last frame repeated
    /// when it is shorter.
    pub reference: PathBuf,
    /// Frames corrected together (the node's generation batch; `lab`, `hsv` and
    /// `wavelet_adaptive` match histograms over it).
    pub batch: usize,
}

pub use seedvae_runner::color::Method as ColorMethod;

impl FileOutput {
    pub fn new(path: impl Into<PathBuf>) -> FileOutput {
        FileOutput {
            path: path.into(),
            dtype: DType::F32,
            fps: 24,
            force: false,
            color: None,
        }
    }

    /// Refuse early (before any slow model setup): an unknown extension, or a path the output
    /// rules forbid (`seedvae_weights::output`), `inputs` included.
    pub fn check(&self, inputs: &[&Path]) -> Result<()> {
        media::Container::of(&self.path)?;
        let mut all = inputs.to_vec();
        if let Some(c) = &self.color {
            if c.batch == 0 {
                return Err(invalid!("`color_batch` must be at least 1"));
            }
            all.push(&c.reference);
        }
        check_output(&self.path, self.force, &all)
    }
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct RunReport {
    /// Written as its name ("onnxruntime-cpu", …) in `--json` and Python.
    pub backend: BackendKind,
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
    /// Largest carried causal state held at once (bytes; one tile's: tiles run one after
    /// another), wherever the backend keeps it (device memory on a GPU).
    pub state_bytes: usize,
    /// Host bytes of the whole-clip blending accumulator of a tiled run (0 untiled).
    pub accumulator_bytes: usize,
    /// seedvae's CUDA executor: the device bytes its buffers were planned to need within the
    /// memory budget, and the most its memory pool held (None on other backends, or where the
    /// device does not say).
    pub device_planned_bytes: Option<u64>,
    pub device_peak_bytes: Option<u64>,
    /// seedvae's CUDA executor: host bytes its plan parks carried states in when the budget
    /// needs them off the device (page-locked; None or 0 otherwise).
    pub host_parked_bytes: Option<u64>,
}

/// A decode's plan: latent-frame chunks and latent tiles.
struct Plan {
    chunks: Vec<(usize, usize)>,
    spatial: SpatialPlan,
    frames: usize,
}

impl Model {
    fn report(
        &self,
        st: &RunStats,
        plan: &SpatialPlan,
        hw: (usize, usize),
        t: Instant,
    ) -> RunReport {
        let seconds = t.elapsed().as_secs_f64();
        RunReport {
            backend: self.backend.kind(),
            fallback_reason: self.fallback.clone(),
            frames: st.frames,
            width: hw.1,
            height: hw.0,
            tiles: st.tiles,
            tile_px: plan.is_tiled().then_some(plan.tile * 8),
            chunks: st.chunks,
            calls: st.calls,
            seconds,
            frames_per_second: st.frames as f64 / seconds.max(1e-9),
            state_bytes: st.state_bytes,
            accumulator_bytes: st.accumulator_bytes,
            device_planned_bytes: st.device_memory.map(|m| m.planned_bytes),
            device_peak_bytes: st.device_memory.and_then(|m| m.peak_bytes),
            host_parked_bytes: st.device_memory.map(|m| m.parked_bytes),
        }
    }

    /// What the spatial planner is asked for: `opts`' tiles within `memory_cap`, or on
    /// seedvae's executor the whole frame (it runs any size exactly; tiling would only change
    /// the picture).
    fn tile_request(&self, opts: &TileOptions, memory_cap: Option<usize>) -> TileRequest {
        let req = opts.request(memory_cap);
        if self.whole_frames {
            return TileRequest {
                tile_px: usize::MAX,
                allow: false,
                ..req
            };
        }
        req
    }

    /// `opts` as this model uses them: seedvae's executor takes the tile edge as a band height
    /// and has no overlap (bands are exact), so the overlap is not held against it.
    fn check_options(&self, opts: &TileOptions) -> Result<()> {
        if self.whole_frames {
            return TileOptions {
                overlap_px: 0,
                ..*opts
            }
            .validate();
        }
        opts.validate()
    }

    /// The most GPU memory a run over `input` (`[1, C, T, H, W]`: a latent to decode, frames to
    /// encode) takes, where it is planned — seedvae's CUDA executor (its plan for the run's first
    /// chunk, whole, or as it must be cut), ONNX Runtime's CUDA provider (one call on the tile
    /// its plan will use); None elsewhere (the CPU; engines, which size themselves). For a host application
    /// that holds other models on the GPU: free this much, not everything.
    pub fn device_need(&mut self, input: &[usize]) -> Result<Option<u64>> {
        let &[1, c, t, h, w] = input else {
            return Err(invalid!(
                "a {} input of shape {input:?}: expected [1, C, T, H, W]",
                self.part
            ));
        };
        let t = match self.part {
            Part::Decoder => t,
            Part::Encoder => Pad::padded_len(t),
        };
        let chunks = planner::plan_chunks(self.part, t, self.is_streaming(), None, &self.limits)?;
        let first = chunks.first().map_or(t, |&(s, e)| e - s);
        if let Some(need) = self.backend.device_need(&[1, c, first, h, w])? {
            return Ok(Some(need));
        }
        // A graph backend on a GPU: one call on the tile its plan will use.
        Ok(self.graph_memory.as_ref().and_then(|m| m.need(first, h, w)))
    }

    /// Bands of `px` rows on seedvae's executor (said once, as tiles are).
    fn set_bands(&mut self, px: Option<usize>) {
        if let Some(px) = px {
            tracing::info!(
                "every layer in bands of {px} px (exact: the same values as whole frames)"
            );
        }
        self.backend.set_band_px(px);
    }

    /// The largest tile edge (input units) the memory plan allows for calls as long as the
    /// longest of `chunks`.
    fn tile_cap(&self, chunks: &[(usize, usize)]) -> Option<usize> {
        let Some(m) = self.graph_memory.as_ref() else {
            return self.memory_cap;
        };
        let t = chunks.iter().map(|&(s, e)| e - s).max().unwrap_or(1);
        let cap = m.cap(t);
        tracing::info!(
            "GPU memory plan: {:.1} GB to plan within; calls of {t} frames take tiles up to {cap} \
             (input units; {:.2} GB per call at that size, {:.2} GB of it carried state)",
            m.budget as f64 / 1e9,
            m.call_bytes(t, cap, cap) as f64 / 1e9,
            2.0 * m.state_bytes(cap, cap) as f64 / 1e9,
        );
        Some(cap)
    }

    fn need(&self, part: Part) -> Result<()> {
        if self.part != part {
            return Err(invalid!(
                "this is the {} model; {part} it with the {part} model",
                self.part
            ));
        }
        Ok(())
    }

    fn plan_decode(&self, latent: &Tensor, opts: &TileOptions) -> Result<Plan> {
        self.need(Part::Decoder)?;
        self.check_options(opts)?;
        crate::latent::check_vae_latent(latent)?;
        seedvae_runner::media::check_finite("latent", latent)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let [t, h, w] = [latent.shape()[2], latent.shape()[3], latent.shape()[4]];
        let chunks = planner::plan_chunks(
            Part::Decoder,
            t,
            self.is_streaming(),
            opts.chunk,
            &self.limits,
        )?;
        let spatial = planner::plan_spatial(
            Part::Decoder,
            h,
            w,
            &self.limits,
            &self.tile_request(opts, self.tile_cap(&chunks)),
        )?;
        if spatial.is_tiled() {
            tracing::info!(
                "decoding in {} tiles of {} px with {} px overlap",
                spatial.tiles.len(),
                spatial.tile * 8,
                spatial.overlap * 8
            );
        }
        let frames = chunks.iter().map(|&(s, e)| decoded_frames(s, e)).sum();
        Ok(Plan {
            chunks,
            spatial,
            frames,
        })
    }

    /// Run `attempt` (planning and the pipeline, each finished call reported through the hook
    /// it is given) until it succeeds or fails for good: a GPU backend whose first call failed
    /// for an environment reason gives way to the next one and the attempt runs again.
    fn until_done<T>(
        &mut self,
        progress: &Progress,
        total_frames: usize,
        mut attempt: impl FnMut(&mut Model, &mut pipeline::Hook) -> Result<T>,
    ) -> Result<T> {
        loop {
            let mut calls = 0usize;
            let mut frames = progress.frames(total_frames);
            let r = attempt(self, &mut |f| {
                calls += 1;
                frames(f)
            });
            match r {
                Ok(v) => return Ok(v),
                Err(e) => crate::load::fall_back_at_first_call(self, e, calls, progress)?,
            }
        }
    }

    fn run_decode(
        &mut self,
        latent: &Tensor,
        opts: &TileOptions,
        plan: &Plan,
        sink: &mut dyn FrameSink,
        progress: &Progress,
    ) -> Result<RunReport> {
        // The caller's plan first; after a fallback, the next backend's.
        let mut given = Some(plan);
        self.until_done(progress, plan.frames, |m, frames| {
            let replanned;
            let plan = match given.take() {
                Some(p) => p,
                None => {
                    replanned = m.plan_decode(latent, opts)?;
                    &replanned
                }
            };
            if m.whole_frames {
                m.set_bands(opts.band_px(8 * latent.shape()[3]));
            }
            let start = Instant::now();
            let stats = pipeline::decode(
                m.backend.as_mut(),
                latent,
                &plan.spatial,
                &plan.chunks,
                &mut *sink,
                frames,
            )?;
            let hw = (8 * latent.shape()[3], 8 * latent.shape()[4]);
            Ok(m.report(&stats, &plan.spatial, hw, start))
        })
    }

    /// Decode `latent` (`[1, 16, T, h, w]`, VAE space) into `sink`: `4T − 3` frames of
    /// `8h × 8w`, pushed a chunk at a time.
    pub fn decode(
        &mut self,
        latent: &Tensor,
        sink: &mut dyn FrameSink,
        opts: &TileOptions,
        progress: &Progress,
    ) -> Result<RunReport> {
        let plan = self.plan_decode(latent, opts)?;
        self.run_decode(latent, opts, &plan, sink, progress)
    }

    /// Decode a latent in GPU memory straight into a tensor there: `latent` `[1, 16, T, h, w]`
    /// into `video` `[1, 3, 4T − 3, 8h, 8w]`, both f32 and another library's (torch CUDA
    /// tensors handed over by DLPack), with no copy through the host. seedvae's CUDA executor
    /// only (and the reference device, whose memory is the host's), no fallback to another
    /// backend; `opts`' chunk and band height as for [`Model::decode`]. Returns once the GPU is
    /// done with both tensors.
    pub fn decode_foreign(
        &mut self,
        latent: &Foreign,
        video: &Foreign,
        opts: &TileOptions,
        progress: &Progress,
    ) -> Result<RunReport> {
        self.need(Part::Decoder)?;
        self.run_foreign(latent, video, opts, progress)
    }

    /// Encode frames in GPU memory straight into a latent there: `frames` `[1, 3, 4n + 1, H, W]`
    /// in [−1, 1] (`H`, `W` multiples of 8; padded by the caller) into the posterior mean
    /// `[1, 16, n + 1, H/8, W/8]`, as [`Model::decode_foreign`].
    pub fn encode_foreign(
        &mut self,
        frames: &Foreign,
        latent: &Foreign,
        opts: &TileOptions,
        progress: &Progress,
    ) -> Result<RunReport> {
        self.need(Part::Encoder)?;
        self.run_foreign(frames, latent, opts, progress)
    }

    fn run_foreign(
        &mut self,
        input: &Foreign,
        output: &Foreign,
        opts: &TileOptions,
        progress: &Progress,
    ) -> Result<RunReport> {
        // The reference device's memory is the host's: what the tests hand over there.
        let kind = self.backend.kind();
        if !matches!(kind, BackendKind::Cuda | BackendKind::Reference) {
            return Err(invalid!(
                "a tensor on the GPU is run in place only by seedvae's CUDA executor (backend \
                 \"cuda\"); this model runs on {kind}"
            ));
        }
        self.check_options(opts)?;
        let d = input.dims;
        let (t, hw, total) = match self.part {
            Part::Decoder => (d.t, (8 * d.h, 8 * d.w), output.dims.t),
            Part::Encoder => (d.t, (d.h, d.w), d.t),
        };
        let chunks =
            planner::plan_chunks(self.part, t, self.is_streaming(), opts.chunk, &self.limits)?;
        if self.whole_frames {
            self.set_bands(opts.band_px(hw.0));
        }
        let start = Instant::now();
        let mut calls = 0;
        let mut frames = progress.frames(total);
        let state_bytes = self.backend.run_foreign(input, output, &chunks, &mut |f| {
            calls += 1;
            frames(f)
        })?;
        let stats = RunStats {
            frames: output.dims.t,
            chunks: calls,
            tiles: 1,
            calls,
            state_bytes,
            accumulator_bytes: 0,
            device_memory: self.backend.device_memory(),
        };
        let whole = planner::plan_spatial(
            self.part,
            hw.0 / 8,
            hw.1 / 8,
            &self.limits,
            &self.tile_request(opts, None),
        )?;
        Ok(self.report(&stats, &whole, hw, start))
    }

    /// Decode into a file; the output appears whole at the end, or not at all.
    pub fn decode_to_file(
        &mut self,
        latent: &Tensor,
        out: &FileOutput,
        opts: &TileOptions,
        progress: &Progress,
    ) -> Result<RunReport> {
        let plan = self.plan_decode(latent, opts)?;
        let hw = (8 * latent.shape()[3], 8 * latent.shape()[4]);
        // The reference first: a bad one is refused before anything is created.
        let reference = match &out.color {
            Some(c) if c.method != ColorMethod::None => {
                // Any size: the reference is resized to the output.
                let src = media::open_source(&c.reference)?;
                if src.is_empty() {
                    return Err(invalid!("{}: no frames", c.reference.display()));
                }
                Some((src, c))
            }
            _ => None,
        };
        let mut sink = media::create_sink(&SinkSpec {
            path: &out.path,
            frames: plan.frames,
            h: hw.0,
            w: hw.1,
            dtype: out.dtype,
            fps: (out.fps, 1),
            force: out.force,
        })?;
        if let Some((src, c)) = reference {
            sink = Box::new(seedvae_runner::color::ColorSink::new(
                sink, src, c.method, c.batch, hw,
            ));
        }
        let report = self.run_decode(latent, opts, &plan, sink.as_mut(), progress)?;
        sink.finish()?;
        Ok(report)
    }

    /// Decode to a `[1, 3, 4T − 3, 8h, 8w]` tensor in [−1, 1] (unclamped).
    pub fn decode_tensor(
        &mut self,
        latent: &Tensor,
        opts: &TileOptions,
        progress: &Progress,
    ) -> Result<(Tensor, RunReport)> {
        let plan = self.plan_decode(latent, opts)?;
        let mut sink =
            media::MemorySink::new(8 * latent.shape()[3], 8 * latent.shape()[4], plan.frames)?;
        let report = self.run_decode(latent, opts, &plan, &mut sink, progress)?;
        Ok((sink.into_tensor(), report))
    }

    /// Encode `source` (frames of `H × W`, multiples of 8), padded to 4n+1 frames with `pad`;
    /// returns the posterior mean `[1, 16, n + 1, H/8, W/8]`.
    pub fn encode(
        &mut self,
        source: &mut dyn FrameSource,
        pad: Pad,
        opts: &TileOptions,
        progress: &Progress,
    ) -> Result<(Tensor, RunReport)> {
        self.need(Part::Encoder)?;
        self.check_options(opts)?;
        let (hh, ww) = source.size();
        check_frame_size(hh, ww)?;
        if source.is_empty() {
            return Err(invalid!("no frames to encode"));
        }
        let t = source.len();
        let padded = Pad::padded_len(t);
        if padded != t {
            tracing::info!("{t} frames padded to {padded} (4n+1) by {pad:?}");
        }
        self.until_done(progress, padded, |m, frames| {
            let chunks = planner::plan_chunks(
                Part::Encoder,
                padded,
                m.is_streaming(),
                opts.chunk,
                &m.limits,
            )?;
            let plan = planner::plan_spatial(
                Part::Encoder,
                hh / 8,
                ww / 8,
                &m.limits,
                &m.tile_request(opts, m.tile_cap(&chunks).map(|c| c / 8)),
            )?;
            if m.whole_frames {
                m.set_bands(opts.band_px(hh));
            }
            let start = Instant::now();
            let (mean, stats) = pipeline::encode(
                m.backend.as_mut(),
                &mut *source,
                pad,
                &plan,
                &chunks,
                frames,
            )?;
            Ok((mean, m.report(&stats, &plan, (hh, ww), start)))
        })
    }
}

/// `video`, a decoded `[1, 3, F, H, W]` (in [−1, 1], as decoders return it), colour-corrected
/// against `reference` `[1, 3, T, H', W']` (the input clip in [−1, 1]), as
/// [`FileOutput::color`] does to a file: frame for frame, the reference resized to the video
/// bilinearly when its size differs and its last frame repeated when it is shorter, `batch`
/// frames corrected together. Both are taken, not copied (videos are large).
pub fn correct_colors(
    video: Tensor,
    reference: Tensor,
    method: ColorMethod,
    batch: usize,
) -> Result<Tensor> {
    let five = |t: &Tensor, what: &str| match t.shape() {
        &[1, 3, f, h, w] if f > 0 && h > 0 && w > 0 => Ok((f, h, w)),
        s => Err(invalid!(
            "{what} must be [1, 3, frames, height, width] with every size ≥ 1; found {s:?}"
        )),
    };
    let dims = five(&video, "the video to colour-correct")?;
    five(&reference, "the colour reference")?;
    if batch == 0 {
        return Err(invalid!("the colour-correction batch must be at least 1"));
    }
    // The video is a decoder's output: any finite values (decoders overshoot, random weights
    // far); the reference is an input clip, in [-1, 1].
    media::check_finite("the video to colour-correct", &video).map_err(|e| invalid!("{e}"))?;
    let shape = video.shape().to_owned();
    let mut v = video.into_f32();
    media::check_frame_values("the colour reference", &reference.values())
        .map_err(|e| invalid!("{e}"))?;
    let mut src = media::TensorFrames(reference);
    seedvae_runner::color::correct_video(&mut v, dims, &mut src, method, batch)?;
    Ok(Tensor::f32(shape, v)?)
}

/// May `path` be written (replacing what is there only with `force`)? Never through a link,
/// never over a directory seedvae did not write, the working directory, or one of `inputs`.
pub fn check_output(path: &Path, force: bool, inputs: &[&Path]) -> Result<()> {
    Ok(seedvae_weights::output::check_output(path, force, inputs)?)
}

/// The frames at `path` to encode: a PNG directory, `.y4m`, or a `[1, 3, T, H, W]` tensor;
/// refused early (naming the file) unless H and W are multiples of 8.
pub fn open_frames(path: &Path) -> Result<Box<dyn FrameSource>> {
    let src = media::open_source(path)?;
    let (hh, ww) = src.size();
    check_frame_size(hh, ww).map_err(|e| with_path(path, e))?;
    Ok(src)
}

/// The encoder takes frames whose sides are multiples of 8.
fn check_frame_size(hh: usize, ww: usize) -> Result<()> {
    if !hh.is_multiple_of(8) || !ww.is_multiple_of(8) {
        return Err(invalid!(
            "frames are {ww}×{hh}; the VAE needs multiples of 8 (crop or pad to multiples of 16, as the \
             SeedVR2 pipelines do)"
        ));
    }
    Ok(())
}

/// Name the input file in an error about its content that could not name it (a clip the model
/// cannot take, frames of the wrong size); other errors already name their file.
pub fn name_input(path: &Path, e: Error) -> Error {
    with_path(path, e)
}

fn with_path(path: &Path, e: Error) -> Error {
    match e {
        Error::Invalid(m) => invalid!("{}: {m}", path.display()),
        Error::Runner(seedvae_runner::Error::Plan(m)) => invalid!("{}: {m}", path.display()),
        e => e,
    }
}

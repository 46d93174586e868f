//! Decoding and encoding whole clips through a [`Backend`]: time-major over the planned chunks,
//! and within a chunk over the planned tiles, each tile with its own carried causal state. Only
//! one chunk of output (and each tile's state) is held at a time, so memory does not grow with
//! the clip's length; frames go to a [`FrameSink`] as each chunk completes.

use crate::backend::Backend;
use crate::media::{FrameSink, FrameSource};
use crate::planner::{decoded_frames, SpatialPlan};
use crate::stream::Streamer;
use crate::tensor::Tensor;
use crate::tiling::{Blender, Tile};
use crate::Error;
use seedvae_onnx::contract::{LATENT, LATENT_MEAN, VIDEO};
use std::collections::HashMap;

/// One backend call over a tile's input, queued through the tile's streamer (its outputs
/// later, from [`Streamer::collect`], when the backend computes asynchronously), or one-shot.
fn call(
    backend: &mut dyn Backend,
    streamer: Option<&mut Streamer>,
    name: &str,
    input: &Tensor,
) -> Result<Option<HashMap<String, Tensor>>, Error> {
    match streamer {
        Some(s) => s.submit(backend, input),
        None => backend.run(&[(name, input)]).map(Some),
    }
}

/// Output `name` of a call on `input`, which must have the shape `want`.
fn output(
    mut out: HashMap<String, Tensor>,
    name: &str,
    input: &Tensor,
    want: [usize; 5],
) -> Result<Tensor, Error> {
    let t = out
        .remove(name)
        .ok_or_else(|| Error::Backend(format!("the backend returned no '{name}'")))?;
    if t.shape != want {
        return Err(Error::Backend(format!(
            "the backend returned {name} {:?} for input {:?}; expected {want:?}",
            t.shape, input.shape
        )));
    }
    Ok(t)
}

/// The hook a run calls after each backend call with the frames done so far; an error from it
/// (e.g. Ctrl-C) stops the run.
pub type Hook<'a> = dyn FnMut(usize) -> Result<(), Error> + 'a;

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    pub frames: usize,
    pub chunks: usize,
    pub tiles: usize,
    pub calls: usize,
    /// Largest carried state held at once (bytes): one tile's, since tiles run one after another.
    pub state_bytes: usize,
    /// Bytes of the whole-clip blending accumulator (tiled runs only; 0 untiled).
    pub accumulator_bytes: usize,
    /// Device memory planned and measured at the peak (seedvae's CUDA executor).
    pub device_memory: Option<crate::DeviceMemory>,
}

/// One part's calls: names, output channels and size, and how a tile maps to output pixels.
struct Job<'a> {
    input: &'a str,
    output: &'a str,
    channels: usize,
    /// Output frame size.
    out_hw: (usize, usize),
    /// Output pixels per tile unit (8 for the decoder; 1 for the encoder, tiled in latent units).
    scale: usize,
    /// Output frames of each chunk.
    out_frames: Vec<usize>,
    /// Progress units (frames) of each chunk.
    progress_frames: Vec<usize>,
    /// Where a tiled run's accumulator may spill when it does not fit in memory.
    spill: Option<std::path::PathBuf>,
}

/// Run every tile's stream over the chunks. Untiled: chunk after chunk, each emitted as it
/// completes. Tiled: tile after tile over the whole clip, each tile's causal state carried from
/// chunk to chunk and dropped before the next tile starts — so at most one tile's state exists
/// at a time, wherever the backend keeps it (on a GPU: device memory) — into a whole-clip
/// blending accumulator emitted at the end. (The other order, all tiles per chunk, would hold
/// every tile's state at once: tiles × gigabytes on the device, or a host round trip per call.)
/// `input(chunk, tile)` gives a call's input; `emit(values [C, f, H, W], f)` takes output.
fn drive(
    backend: &mut dyn Backend,
    plan: &SpatialPlan,
    chunks: &[(usize, usize)],
    job: &Job,
    input: &mut dyn FnMut(usize, &Tile) -> Result<Tensor, Error>,
    emit: &mut dyn FnMut(Vec<f32>, usize) -> Result<(), Error>,
    progress: &mut Hook,
) -> Result<RunStats, Error> {
    let streaming = backend.contract().streaming;
    let mut stats = RunStats {
        tiles: plan.tiles.len(),
        chunks: chunks.len(),
        ..Default::default()
    };
    let total_frames: usize = job.out_frames.iter().sum();
    let total_progress: usize = job.progress_frames.iter().sum();
    let total_calls = chunks.len() * plan.tiles.len();
    let (hh, ww) = job.out_hw;
    let mut run_tile = |backend: &mut dyn Backend,
                        tile: &Tile,
                        stats: &mut RunStats,
                        sink: &mut dyn FnMut(usize, Tensor) -> Result<(), Error>|
     -> Result<(), Error> {
        let mut streamer = streaming
            .then(|| Streamer::new(backend.contract()))
            .transpose()?;
        let (th, tw) = (
            job.scale * (tile.y.1 - tile.y.0),
            job.scale * (tile.x.1 - tile.x.0),
        );
        // A chunk the backend queued (its output comes later) is taken after the next one is
        // queued, so the output is written while the device computes; a chunk computed at once
        // is taken at once.
        let mut chunks_of_tile = || -> Result<(), Error> {
            let mut queued: Option<(usize, Tensor)> = None;
            let mut take = |backend: &mut dyn Backend,
                            k: usize,
                            x: &Tensor,
                            out: HashMap<String, Tensor>,
                            stats: &mut RunStats|
             -> Result<(), Error> {
                let want = [1, job.channels, job.out_frames[k], th, tw];
                let y = output(out, job.output, x, want)?;
                stats.calls += 1;
                if let Some(m) = backend.device_memory() {
                    let was = stats.device_memory.unwrap_or_default();
                    stats.device_memory = Some(crate::DeviceMemory {
                        planned_bytes: was.planned_bytes.max(m.planned_bytes),
                        peak_bytes: was.peak_bytes.max(m.peak_bytes),
                        parked_bytes: was.parked_bytes.max(m.parked_bytes),
                    });
                }
                sink(k, y)
            };
            let collect = |backend: &mut dyn Backend, streamer: Option<&mut Streamer>| {
                streamer
                    .ok_or_else(|| Error::Backend("internal: a one-shot call was queued".into()))?
                    .collect(backend)
            };
            for k in 0..chunks.len() {
                let x = input(k, tile)?;
                let ready = call(backend, streamer.as_mut(), job.input, &x)?;
                if let Some(s) = &streamer {
                    stats.state_bytes = stats.state_bytes.max(s.state_bytes());
                }
                if let Some((pk, px)) = queued.take() {
                    let out = collect(backend, streamer.as_mut())?;
                    take(backend, pk, &px, out, stats)?;
                }
                match ready {
                    Some(out) => take(backend, k, &x, out, stats)?,
                    None => queued = Some((k, x)),
                }
            }
            if let Some((pk, px)) = queued.take() {
                let out = collect(backend, streamer.as_mut())?;
                take(backend, pk, &px, out, stats)?;
            }
            Ok(())
        };
        let r = chunks_of_tile();
        // The tile's state goes back before the next tile (or the caller) goes on, error or not.
        if let Some(s) = streamer {
            s.end(backend);
        }
        r
    };
    if plan.tiles.len() == 1 {
        let mut sink = |k: usize, y: Tensor| {
            emit(y.to_f32(), job.out_frames[k])?;
            progress(job.progress_frames[..=k].iter().sum())
        };
        run_tile(backend, &plan.tiles[0], &mut stats, &mut sink)?;
    } else {
        let mut blend = Blender::with_spill(
            job.channels,
            total_frames,
            hh,
            ww,
            plan.ramp,
            job.spill.as_deref(),
        )?;
        stats.accumulator_bytes = blend.bytes();
        let starts: Vec<usize> = job
            .out_frames
            .iter()
            .scan(0, |f, &n| {
                let s = *f;
                *f += n;
                Some(s)
            })
            .collect();
        let mut calls = 0;
        for tile in &plan.tiles {
            let mut sink = |k: usize, y: Tensor| {
                let (th, tw) = (y.shape[3], y.shape[4]);
                blend.add_frames(
                    &y.to_f32(),
                    starts[k],
                    job.out_frames[k],
                    job.scale * tile.y.0,
                    job.scale * tile.x.0,
                    th,
                    tw,
                );
                calls += 1;
                progress(total_progress * calls / total_calls)
            };
            run_tile(backend, tile, &mut stats, &mut sink)?;
        }
        let per = job.out_frames.iter().copied().max().unwrap_or(1);
        blend.emit(per, emit)?;
    }
    stats.frames = total_progress;
    Ok(stats)
}

/// Decode `latent` (`[1, 16, T, h, w]`) over latent-frame `chunks` and `plan`'s tiles into `sink`;
/// `progress(frames_done)` after each call (an error from it, e.g. Ctrl-C, stops the run).
pub fn decode(
    backend: &mut dyn Backend,
    latent: &Tensor,
    plan: &SpatialPlan,
    chunks: &[(usize, usize)],
    sink: &mut dyn FrameSink,
    progress: &mut Hook,
) -> Result<RunStats, Error> {
    let (h, w) = (latent.shape[3], latent.shape[4]);
    let frames: Vec<usize> = chunks.iter().map(|&(a, b)| decoded_frames(a, b)).collect();
    let job = Job {
        input: LATENT,
        output: VIDEO,
        channels: 3,
        out_hw: (8 * h, 8 * w),
        scale: 8,
        out_frames: frames.clone(),
        progress_frames: frames,
        spill: sink.spill_dir(),
    };
    let mut input = |k: usize, tile: &Tile| Ok(latent.window(chunks[k], tile.y, tile.x));
    let mut emit = |v: Vec<f32>, f: usize| sink.push(&v, f);
    drive(backend, plan, chunks, &job, &mut input, &mut emit, progress)
}

/// How a clip is padded to 4n+1 frames (spec §7): the original pipeline repeats the last frame,
/// the ComfyUI node reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pad {
    Repeat,
    Reflect,
}

impl Pad {
    /// The number of frames after padding `t` to 4n+1.
    pub fn padded_len(t: usize) -> usize {
        (t.max(1) - 1).div_ceil(4) * 4 + 1
    }

    /// The source frame for padded frame `i` of a clip of `t` frames.
    pub fn source(self, i: usize, t: usize) -> usize {
        if i < t || t == 1 {
            return i.min(t - 1);
        }
        match self {
            Pad::Repeat => t - 1,
            // Mirror about the last frame (…, t−2, t−1, t−2, …), periodic for long pads.
            Pad::Reflect => {
                let p = 2 * (t - 1);
                let k = i % p;
                if k < t {
                    k
                } else {
                    p - k
                }
            }
        }
    }
}

/// Encode `source` (padded with `pad`) over video-frame `chunks` of the padded clip and `plan`'s
/// latent tiles; returns the posterior mean `[1, 16, T', H/8, W/8]`.
pub fn encode(
    backend: &mut dyn Backend,
    source: &mut dyn FrameSource,
    pad: Pad,
    plan: &SpatialPlan,
    chunks: &[(usize, usize)],
    progress: &mut Hook,
) -> Result<(Tensor, RunStats), Error> {
    let (hh, ww) = source.size();
    let (h, w) = (hh / 8, ww / 8);
    let t = source.len();
    let latent_frames = |&(f0, f1): &(usize, usize)| {
        let n = f1 - f0;
        if f0 == 0 {
            (n - 1) / 4 + 1
        } else {
            n / 4
        }
    };
    let job = Job {
        input: VIDEO,
        output: LATENT_MEAN,
        channels: 16,
        out_hw: (h, w),
        scale: 1,
        out_frames: chunks.iter().map(latent_frames).collect(),
        progress_frames: chunks.iter().map(|&(a, b)| b - a).collect(),
        spill: None,
    };
    // The chunk's frames, read once per chunk and reused by the tiles of an untiled run; a tiled
    // run (tile-major) reads each chunk once per tile.
    let mut cached: Option<(usize, Tensor)> = None;
    let mut input = |k: usize, tile: &Tile| -> Result<Tensor, Error> {
        if cached.as_ref().is_none_or(|c| c.0 != k) {
            cached = Some((k, read_chunk(source, pad, t, chunks[k])?));
        }
        let video = &cached.as_ref().expect("read above").1;
        let n = chunks[k].1 - chunks[k].0;
        let py = (8 * tile.y.0, (8 * tile.y.1).min(hh));
        let px = (8 * tile.x.0, (8 * tile.x.1).min(ww));
        Ok(video.window((0, n), py, px))
    };
    let mut parts: Vec<Tensor> = Vec::new();
    let mut emit = |v: Vec<f32>, lt: usize| {
        parts.push(Tensor::f32(vec![1, 16, lt, h, w], v)?);
        Ok(())
    };
    let stats = drive(backend, plan, chunks, &job, &mut input, &mut emit, progress)?;
    Ok((crate::stream::concat_time(&parts), stats))
}

/// Frames `[f0, f1)` of the padded clip as `[1, 3, n, H, W]`; non-finite values are an error.
fn read_chunk(
    source: &mut dyn FrameSource,
    pad: Pad,
    t: usize,
    (f0, f1): (usize, usize),
) -> Result<Tensor, Error> {
    let (hh, ww) = source.size();
    let n = f1 - f0;
    let mut v = seedvae_weights::memory::zeroed(3 * n * hh * ww, || {
        format!("{n} frames of {ww}×{hh} to encode")
    })?;
    for (k, i) in (f0..f1).enumerate() {
        let frame = source.read(pad.source(i, t))?;
        crate::media::check_frame_values(&format!("frame {}", pad.source(i, t)), &frame)?;
        for c in 0..3 {
            v[(c * n + k) * hh * ww..(c * n + k + 1) * hh * ww]
                .copy_from_slice(&frame[c * hh * ww..(c + 1) * hh * ww]);
        }
    }
    Tensor::f32(vec![1, 3, n, hh, ww], v)
}

#[cfg(test)]
mod tests {
    use super::Pad;

    #[test]
    fn padding_to_4n_plus_1() {
        assert_eq!(Pad::padded_len(1), 1);
        assert_eq!(Pad::padded_len(5), 5);
        assert_eq!(Pad::padded_len(6), 9);
        assert_eq!(Pad::padded_len(9), 9);
        let idx = |p: Pad, t| {
            (0..Pad::padded_len(t))
                .map(|i| p.source(i, t))
                .collect::<Vec<_>>()
        };
        assert_eq!(idx(Pad::Repeat, 6), vec![0, 1, 2, 3, 4, 5, 5, 5, 5]);
        assert_eq!(idx(Pad::Reflect, 6), vec![0, 1, 2, 3, 4, 5, 4, 3, 2]);
        // Longer pad than the clip: keeps bouncing.
        assert_eq!(idx(Pad::Reflect, 2), vec![0, 1, 0, 1, 0]);
        assert_eq!(idx(Pad::Reflect, 1), vec![0]);
    }
}

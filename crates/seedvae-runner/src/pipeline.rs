//! Decoding and encoding whole clips through a [`Backend`]: time-major over the planned chunks,
//! and within a chunk over the planned tiles, each tile with its own carried causal state. Only
//! one chunk of output (and each tile's state) is held at a time, so memory does not grow with
//! the clip's length; frames go to a [`FrameSink`] as each chunk completes.

use crate::backend::Backend;
use crate::media::{FrameSink, FrameSource};
use crate::planner::{decoded_frames, SpatialPlan};
use crate::stream::Streamer;
use crate::tensor::Tensor;
use crate::tiling::Blender;
use crate::Error;
use seedvae_onnx::contract::{LATENT, LATENT_MEAN, VIDEO};
use std::collections::HashMap;

/// One backend call over a tile's input: through the tile's streamer, or one-shot.
fn call(
    backend: &mut dyn Backend,
    streamer: Option<&mut Streamer>,
    name: &str,
    input: &Tensor,
) -> Result<HashMap<String, Tensor>, Error> {
    match streamer {
        Some(s) => s.step(backend, input),
        None => backend.run(&[(name, input)]),
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

fn streamers(backend: &dyn Backend, n: usize) -> Result<Vec<Option<Streamer>>, Error> {
    (0..n)
        .map(|_| {
            Ok(if backend.contract().streaming {
                Some(Streamer::new(backend.contract())?)
            } else {
                None
            })
        })
        .collect()
}

/// Account for a finished chunk of `frames` frames and report progress.
fn chunk_done(
    stats: &mut RunStats,
    state: &[Option<Streamer>],
    frames: usize,
    progress: &mut dyn FnMut(usize) -> Result<(), Error>,
) -> Result<(), Error> {
    let held: usize = state.iter().flatten().map(Streamer::state_bytes).sum();
    stats.state_bytes = stats.state_bytes.max(held);
    stats.frames += frames;
    stats.chunks += 1;
    progress(stats.frames)
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    pub frames: usize,
    pub chunks: usize,
    pub tiles: usize,
    pub calls: usize,
    /// Largest carried state held at once, all tiles together (bytes).
    pub state_bytes: usize,
}

/// Decode `latent` (`[1, 16, T, h, w]`) over latent-frame `chunks` and `plan`'s tiles into `sink`;
/// `progress(frames_done)` after each chunk (an error from it, e.g. Ctrl-C, stops the run).
pub fn decode(
    backend: &mut dyn Backend,
    latent: &Tensor,
    plan: &SpatialPlan,
    chunks: &[(usize, usize)],
    sink: &mut dyn FrameSink,
    progress: &mut dyn FnMut(usize) -> Result<(), Error>,
) -> Result<RunStats, Error> {
    let (h, w) = (latent.shape[3], latent.shape[4]);
    let mut state = streamers(backend, plan.tiles.len())?;
    let mut stats = RunStats {
        tiles: plan.tiles.len(),
        ..Default::default()
    };
    for &(t0, t1) in chunks {
        let f = decoded_frames(t0, t1);
        let mut blend = Blender::new(3, f, 8 * h, 8 * w, plan.ramp);
        for (tile, st) in plan.tiles.iter().zip(state.iter_mut()) {
            let input = latent.window((t0, t1), tile.y, tile.x);
            let (th, tw) = (8 * (tile.y.1 - tile.y.0), 8 * (tile.x.1 - tile.x.0));
            let out = call(backend, st.as_mut(), LATENT, &input)?;
            let video = output(out, VIDEO, &input, [1, 3, f, th, tw])?;
            blend.add(&video.to_f32(), 8 * tile.y.0, 8 * tile.x.0, th, tw);
            stats.calls += 1;
        }
        sink.push(&blend.finish(), f)?;
        chunk_done(&mut stats, &state, f, progress)?;
    }
    Ok(stats)
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
    progress: &mut dyn FnMut(usize) -> Result<(), Error>,
) -> Result<(Tensor, RunStats), Error> {
    let (hh, ww) = source.size();
    let (h, w) = (hh / 8, ww / 8);
    let t = source.len();
    let mut state = streamers(backend, plan.tiles.len())?;
    let mut stats = RunStats {
        tiles: plan.tiles.len(),
        ..Default::default()
    };
    let mut parts: Vec<Tensor> = Vec::new();
    for &(f0, f1) in chunks {
        let mut v = vec![0f32; 3 * (f1 - f0) * hh * ww];
        let n = f1 - f0;
        for (k, i) in (f0..f1).enumerate() {
            let frame = source.read(pad.source(i, t))?;
            if let Some(at) = frame.iter().position(|x| !x.is_finite()) {
                return Err(Error::Input(format!(
                    "frame {} holds NaN/Inf values (the first at value {at}); seedvae only takes finite values",
                    pad.source(i, t)
                )));
            }
            for c in 0..3 {
                v[(c * n + k) * hh * ww..(c * n + k + 1) * hh * ww]
                    .copy_from_slice(&frame[c * hh * ww..(c + 1) * hh * ww]);
            }
        }
        let video = Tensor::f32(vec![1, 3, n, hh, ww], v);
        let lt = if f0 == 0 { (n - 1) / 4 + 1 } else { n / 4 };
        let mut blend = Blender::new(16, lt, h, w, plan.ramp);
        for (tile, st) in plan.tiles.iter().zip(state.iter_mut()) {
            let (py, px) = (
                (8 * tile.y.0, (8 * tile.y.1).min(hh)),
                (8 * tile.x.0, (8 * tile.x.1).min(ww)),
            );
            let input = video.window((0, n), py, px);
            let (th, tw) = (tile.y.1 - tile.y.0, tile.x.1 - tile.x.0);
            let out = call(backend, st.as_mut(), VIDEO, &input)?;
            let mean = output(out, LATENT_MEAN, &input, [1, 16, lt, th, tw])?;
            blend.add(&mean.to_f32(), tile.y.0, tile.x.0, th, tw);
            stats.calls += 1;
        }
        parts.push(Tensor::f32(vec![1, 16, lt, h, w], blend.finish()));
        chunk_done(&mut stats, &state, n, progress)?;
    }
    Ok((crate::stream::concat_time(&parts), stats))
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

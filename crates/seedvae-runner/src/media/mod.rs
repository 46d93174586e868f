//! Where decoded frames go and where frames to encode come from, one chunk or frame at a time so
//! that memory does not grow with the clip's length.
//!
//! Outputs ([`FrameSink`]): a directory of PNG frames, a `.y4m` file, or the raw `[1, 3, F, H, W]`
//! tensor as `.safetensors` (tensor `video`) or `.npy`, f32 or f16. Each appears whole or not at
//! all (temporary name, renamed by [`FrameSink::finish`]; dropped unfinished: removed).
//! Inputs ([`FrameSource`]): a directory of PNG frames (sorted by name), a `.y4m` file, or a
//! `[1, 3, T, H, W]` tensor in [−1, 1] (`.safetensors` / `.npy`).
//! Each format is read and written in one file: [`png`], [`y4m`], [`npy`], [`safetensors`].

pub mod npy;
pub mod png;
pub mod safetensors;
pub mod y4m;

use crate::tensor::Tensor;
use crate::{bad, Error};
use png::{PngFrames, PngSink};
use seedvae_weights::output::AtomicFile;
use seedvae_weights::DType;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use y4m::{Y4mReader, Y4mSink};

/// The largest frame accepted from a file, per side (32768 px: 8K video is 7680 wide) and in
/// pixels (2^28, a 16384² frame, 3 GB as f32): checked from the header, before any allocation.
pub const MAX_FRAME_SIDE: usize = 1 << 15;
pub const MAX_FRAME_PIXELS: usize = 1 << 28;

/// Refuse a frame size read from a header that seedvae will not allocate.
pub(crate) fn check_frame_size(path: &Path, w: usize, h: usize) -> Result<(), Error> {
    if h == 0 || w == 0 || h > MAX_FRAME_SIDE || w > MAX_FRAME_SIDE || h * w > MAX_FRAME_PIXELS {
        return Err(bad(
            path,
            format!(
                "bad frame size {w}×{h} in the header (at most {MAX_FRAME_SIDE} px a side and \
                 {MAX_FRAME_PIXELS} pixels)"
            ),
        ));
    }
    Ok(())
}

/// How a path is read or written, from its extension (none or a directory: PNG frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    PngDir,
    Y4m,
    Safetensors,
    Npy,
}

impl Container {
    pub fn of(path: &Path) -> Result<Container, Error> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        Ok(match ext.as_deref() {
            None => Container::PngDir,
            Some("y4m") => Container::Y4m,
            Some("safetensors") => Container::Safetensors,
            Some("npy") => Container::Npy,
            _ if path.is_dir() => Container::PngDir,
            Some(e) => {
                return Err(bad(
                    path,
                    format!(
                        "unknown extension '.{e}': use a directory (PNG frames), .y4m, .safetensors or .npy"
                    ),
                ))
            }
        })
    }
}

/// Frames out, chunk by chunk.
pub trait FrameSink {
    /// Append `f` frames given channel-major: `[3, f, H, W]` in [−1, 1] (unclamped).
    fn push(&mut self, v: &[f32], f: usize) -> Result<(), Error>;
    /// Make the output appear; returns the number of frames written.
    fn finish(self: Box<Self>) -> Result<usize, Error>;
    /// A folder on the output's disk for scratch data too large for memory (None: keep it in
    /// memory or fail).
    fn spill_dir(&self) -> Option<PathBuf> {
        None
    }
}

/// The folder `path` is written in (its parent; `.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// What to create: `frames` frames of `h × w` (known up front for the tensor formats).
pub struct SinkSpec<'a> {
    pub path: &'a Path,
    pub frames: usize,
    pub h: usize,
    pub w: usize,
    /// Tensor formats only.
    pub dtype: DType,
    /// `.y4m` only: frame rate as a fraction.
    pub fps: (u32, u32),
    pub force: bool,
}

pub fn create_sink(spec: &SinkSpec) -> Result<Box<dyn FrameSink>, Error> {
    Ok(match Container::of(spec.path)? {
        Container::PngDir => Box::new(PngSink::create(spec)?),
        Container::Y4m => Box::new(Y4mSink::create(spec)?),
        c => Box::new(TensorSink::create(spec, c == Container::Npy)?),
    })
}

pub(crate) fn atomic(path: &Path, force: bool) -> Result<AtomicFile, Error> {
    seedvae_weights::output::check_overwrite(path, force)?;
    Ok(AtomicFile::create(path)?)
}

/// `[1, 3, F, H, W]` written a chunk of frames at a time: each chunk's frames of one channel are
/// contiguous in the file, so every chunk is three seeks and three writes.
struct TensorSink {
    file: AtomicFile,
    path: PathBuf,
    base: u64,
    frames: usize,
    hw: usize,
    dtype: DType,
    n: usize,
}

fn encode_values(v: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn tensor_header(npy: bool, name: &str, dtype: DType, shape: &[usize]) -> Vec<u8> {
    if npy {
        npy::header(dtype, shape)
    } else {
        safetensors::header(name, dtype, shape)
    }
}

/// Write one whole tensor as `.safetensors` (under `name`) or `.npy` (by extension).
pub fn write_tensor(
    path: &Path,
    name: &str,
    t: &Tensor,
    dtype: DType,
    force: bool,
) -> Result<(), Error> {
    let npy = match Container::of(path)? {
        Container::Npy => true,
        Container::Safetensors => false,
        _ => {
            return Err(bad(
                path,
                "a latent is written as .safetensors or .npy; give one of those extensions",
            ))
        }
    };
    let mut f = atomic(path, force)?;
    f.write_all(&tensor_header(npy, name, dtype, &t.shape))
        .and_then(|_| f.write_all(&encode_values(&t.to_f32(), dtype)))
        .map_err(|e| bad(path, e))?;
    f.commit()?;
    Ok(())
}

impl TensorSink {
    fn create(s: &SinkSpec, npy: bool) -> Result<TensorSink, Error> {
        if !matches!(s.dtype, DType::F32 | DType::F16) {
            return Err(bad(s.path, "raw video is written as f32 or f16"));
        }
        let mut file = atomic(s.path, s.force)?;
        let header = tensor_header(npy, "video", s.dtype, &[1, 3, s.frames, s.h, s.w]);
        file.write_all(&header).map_err(|e| bad(s.path, e))?;
        Ok(TensorSink {
            file,
            path: s.path.to_path_buf(),
            base: header.len() as u64,
            frames: s.frames,
            hw: s.h * s.w,
            dtype: s.dtype,
            n: 0,
        })
    }
}

impl FrameSink for TensorSink {
    fn push(&mut self, v: &[f32], f: usize) -> Result<(), Error> {
        if self.n + f > self.frames {
            return Err(bad(
                &self.path,
                format!("more than the {} frames announced", self.frames),
            ));
        }
        let es = self.dtype.size() as u64;
        for c in 0..3 {
            let at = self.base + ((c * self.frames + self.n) * self.hw) as u64 * es;
            let bytes = encode_values(&v[c * f * self.hw..(c + 1) * f * self.hw], self.dtype);
            self.file
                .seek(SeekFrom::Start(at))
                .and_then(|_| self.file.write_all(&bytes))
                .map_err(|e| bad(&self.path, e))?;
        }
        self.n += f;
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<usize, Error> {
        if self.n != self.frames {
            return Err(bad(
                &self.path,
                format!("{} of {} frames written", self.n, self.frames),
            ));
        }
        self.file.commit()?;
        Ok(self.n)
    }
    fn spill_dir(&self) -> Option<PathBuf> {
        Some(parent_dir(&self.path))
    }
}

/// Frames in, one at a time.
pub trait FrameSource {
    fn len(&self) -> usize;
    /// (H, W) of every frame.
    fn size(&self) -> (usize, usize);
    /// Frame `i` as `[3, H, W]` RGB in [−1, 1].
    fn read(&mut self, i: usize) -> Result<Vec<f32>, Error>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn open_source(path: &Path) -> Result<Box<dyn FrameSource>, Error> {
    let meta = std::fs::metadata(path).map_err(|e| bad(path, e))?;
    let container = Container::of(path)?;
    if (container == Container::PngDir) != meta.is_dir() || !(meta.is_dir() || meta.is_file()) {
        return Err(bad(
            path,
            "is not frames seedvae reads: a folder of PNG frames, or a .y4m, .safetensors or \
             .npy file",
        ));
    }
    Ok(match container {
        Container::PngDir => Box::new(PngFrames::open(path)?),
        Container::Y4m => Box::new(Y4mReader::open(path)?),
        _ => Box::new(TensorFrames(crate::media::read_video(path)?)),
    })
}

/// Decoded frames kept in memory as one `[1, 3, F, H, W]` tensor (for callers that want the
/// video itself, not a file), allocated whole up front, checked to fit.
pub struct MemorySink {
    h: usize,
    w: usize,
    frames: usize,
    n: usize,
    v: Vec<f32>,
}

impl MemorySink {
    /// Room for `frames` frames of `h × w`, or the error saying that they do not fit.
    pub fn new(h: usize, w: usize, frames: usize) -> Result<MemorySink, Error> {
        let v = seedvae_weights::memory::zeroed(3 * frames * h * w, || {
            format!("the decoded video ({frames} frames of {w}×{h}, f32)")
        })?;
        Ok(MemorySink {
            h,
            w,
            frames,
            n: 0,
            v,
        })
    }

    /// The frames pushed so far, channel-major.
    pub fn into_tensor(mut self) -> Tensor {
        let hw = self.h * self.w;
        if self.n < self.frames {
            // Fewer than announced (a run that stopped early): close the gaps between channels.
            for c in 1..3 {
                let from = c * self.frames * hw;
                self.v
                    .copy_within(from..from + self.n * hw, c * self.n * hw);
            }
            self.v.truncate(3 * self.n * hw);
        }
        Tensor::exact(vec![1, 3, self.n, self.h, self.w], self.v)
    }
}

impl FrameSink for MemorySink {
    fn push(&mut self, v: &[f32], f: usize) -> Result<(), Error> {
        let hw = self.h * self.w;
        if v.len() != 3 * f * hw || self.n + f > self.frames {
            return Err(Error::Backend(format!(
                "a chunk of {f} frames of {}×{} has {} values, or runs past the {} frames announced",
                self.w,
                self.h,
                v.len(),
                self.frames
            )));
        }
        for c in 0..3 {
            let at = (c * self.frames + self.n) * hw;
            self.v[at..at + f * hw].copy_from_slice(&v[c * f * hw..(c + 1) * f * hw]);
        }
        self.n += f;
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<usize, Error> {
        Ok(self.n)
    }
}

/// A `[1, 3, T, H, W]` video tensor as frames to encode.
pub struct TensorFrames(pub Tensor);

impl FrameSource for TensorFrames {
    fn len(&self) -> usize {
        self.0.shape[2]
    }
    fn size(&self) -> (usize, usize) {
        (self.0.shape[3], self.0.shape[4])
    }
    fn read(&mut self, i: usize) -> Result<Vec<f32>, Error> {
        let (h, w) = self.size();
        Ok(self.0.window((i, i + 1), (0, h), (0, w)).to_f32())
    }
}

/// One tensor from `path` as f32: `.npy`, or `.safetensors` holding `name` (or only one tensor).
pub fn read_tensor(path: &Path, name: &str) -> Result<Tensor, Error> {
    // A device or pipe (`/dev/zero` named `x.npy`) would be read without end.
    if !std::fs::metadata(path).map_err(|e| bad(path, e))?.is_file() {
        return Err(bad(path, "not a regular file"));
    }
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if is_npy {
        return npy::read(path);
    }
    safetensors::read(path, name)
}

/// A decoder input: `[1, 16, T, h, w]` in VAE space.
pub fn read_latent(path: &Path) -> Result<Tensor, Error> {
    let t = read_tensor(path, "latent")?;
    check_latent(path, &t)?;
    check_finite("latent", &t).map_err(|e| bad(path, e))?;
    Ok(t)
}

/// A tensor holding NaN or infinite values: how many, and where the first one is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NonFinite(pub String);

/// Why `t` cannot be a model input: how many values are NaN or infinite, and where the first
/// one is (seedvae refuses them rather than decode a video of NaN).
pub fn check_finite(name: &str, t: &Tensor) -> Result<(), NonFinite> {
    let v = t.values();
    let bad = v.iter().filter(|x| !x.is_finite()).count();
    let Some(first) = v.iter().position(|x| !x.is_finite()) else {
        return Ok(());
    };
    let mut at = vec![0; t.shape.len()];
    let mut rest = first;
    for (i, d) in t.shape.iter().enumerate().rev() {
        at[i] = rest % d;
        rest /= d;
    }
    Err(NonFinite(format!(
        "tensor '{name}' holds {bad} NaN/Inf value(s), the first at {at:?}; seedvae only takes finite values"
    )))
}

/// Frames are in [−1, 1]; decoders overshoot a little at highlights and edges, so values up to
/// this far are taken as frames, and beyond it refused: 0..255 levels or a stray scale cannot
/// be meant.
pub const FRAME_VALUE_LIMIT: f32 = 2.0;

/// Why the values of frame(s) `what` cannot be frames in [−1, 1]: NaN/Inf, or beyond
/// [`FRAME_VALUE_LIMIT`] (with the largest magnitude found and how to convert).
pub fn check_frame_values(what: &str, v: &[f32]) -> Result<(), Error> {
    if let Some(at) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::Input(format!(
            "{what} holds NaN/Inf values (the first at value {at}); seedvae only takes finite values"
        )));
    }
    let top = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if top > FRAME_VALUE_LIMIT {
        let hint = if top <= 255.0 {
            "; 8-bit levels (0..255) convert to frames as x / 127.5 - 1"
        } else {
            ""
        };
        return Err(Error::Input(format!(
            "{what} holds values up to {top} in magnitude; frames are in [-1, 1]{hint}"
        )));
    }
    Ok(())
}

/// Is `t` (read from `path`) a decoder input `[1, 16, T, h, w]`?
pub fn check_latent(path: &Path, t: &Tensor) -> Result<(), Error> {
    check_shape(path, "latent", &t.shape, 16, "T, H, W")
}

/// An encoder input: `[1, 3, T, H, W]` in [−1, 1].
pub fn read_video(path: &Path) -> Result<Tensor, Error> {
    let t = read_tensor(path, "video")?;
    check_shape(path, "video", &t.shape, 3, "T, H, W")?;
    check_finite("video", &t).map_err(|e| bad(path, e))?;
    Ok(t)
}

fn check_shape(path: &Path, what: &str, s: &[usize], ch: usize, dims: &str) -> Result<(), Error> {
    if s.len() != 5 || s[0] != 1 || s[1] != ch || s[2..].contains(&0) {
        return Err(bad(
            path,
            format!("{what} must be [1, {ch}, {dims}] with {dims} ≥ 1; found {s:?}"),
        ));
    }
    Ok(())
}

/// The first `t` frames and the central `h × w` window (at most) of a `[1, C, T, H, W]` tensor.
pub fn crop(x: &Tensor, t: usize, h: usize, w: usize) -> Tensor {
    let [tt, hh, ww] = [x.shape[2], x.shape[3], x.shape[4]];
    let (t, h, w) = (t.min(tt), h.min(hh), w.min(ww));
    let (y0, x0) = ((hh - h) / 2, (ww - w) / 2);
    x.window((0, t), (y0, y0 + h), (x0, x0 + w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_takes_the_centre() {
        let v: Vec<f32> = (0..2 * 3 * 4 * 4).map(|i| i as f32).collect();
        let x = Tensor::f32(vec![1, 2, 3, 4, 4], v).unwrap();
        let c = crop(&x, 2, 2, 2);
        assert_eq!(c.shape, vec![1, 2, 2, 2, 2]);
        // channel 0, frame 0: rows 1-2, cols 1-2 of a 4×4 grid numbered row-major.
        assert_eq!(&c.to_f32()[..4], &[5.0, 6.0, 9.0, 10.0]);
        assert_eq!(c.to_f32()[4], 16.0 + 5.0);
    }
}

//! Where decoded frames go and where frames to encode come from, one chunk or frame at a time so
//! that memory does not grow with the clip's length.
//!
//! Outputs ([`FrameSink`]): a directory of PNG frames, a `.y4m` file, or the raw `[1, 3, F, H, W]`
//! tensor as `.safetensors` (tensor `video`) or `.npy`, f32 or f16. Each appears whole or not at
//! all (temporary name, renamed by [`FrameSink::finish`]; dropped unfinished: removed).
//! Inputs ([`FrameSource`]): a directory of PNG frames (sorted by name), a `.y4m` file, or a
//! `[1, 3, T, H, W]` tensor in [−1, 1] (`.safetensors` / `.npy`).

use crate::frames::FrameDir;
use crate::tensor::Tensor;
use crate::y4m::{Y4mReader, Y4mWriter};
use crate::Error;
use seedvae_weights::atomic::AtomicFile;
use seedvae_weights::DType;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: {msg}", path.display()))
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
        Container::PngDir => Box::new(PngSink {
            dir: FrameDir::create(spec.path, spec.force)?,
            h: spec.h,
            w: spec.w,
        }),
        Container::Y4m => Box::new(Y4mSink::create(spec)?),
        c => Box::new(TensorSink::create(spec, c == Container::Npy)?),
    })
}

fn atomic(path: &Path, force: bool) -> Result<AtomicFile, Error> {
    seedvae_weights::atomic::check_overwrite(path, force)?;
    Ok(AtomicFile::create(path)?)
}

struct PngSink {
    dir: FrameDir,
    h: usize,
    w: usize,
}

impl FrameSink for PngSink {
    fn push(&mut self, v: &[f32], f: usize) -> Result<(), Error> {
        self.dir.push(&[1, 3, f, self.h, self.w], v).map(|_| ())
    }
    fn finish(self: Box<Self>) -> Result<usize, Error> {
        self.dir.finish()
    }
}

struct Y4mSink {
    out: Y4mWriter<AtomicFile>,
    hw: usize,
    n: usize,
}

impl Y4mSink {
    fn create(s: &SinkSpec) -> Result<Y4mSink, Error> {
        let f = atomic(s.path, s.force)?;
        let out = Y4mWriter::new(f, s.h, s.w, s.fps).map_err(|e| bad(s.path, e))?;
        Ok(Y4mSink {
            out,
            hw: s.h * s.w,
            n: 0,
        })
    }
}

impl FrameSink for Y4mSink {
    fn push(&mut self, v: &[f32], f: usize) -> Result<(), Error> {
        let (hw, fhw) = (self.hw, f * self.hw);
        for i in 0..f {
            let p = |c: usize| &v[c * fhw + i * hw..c * fhw + (i + 1) * hw];
            self.out
                .frame([p(0), p(1), p(2)])
                .map_err(|e| Error::Input(format!("writing frame {}: {e}", self.n)))?;
            self.n += 1;
        }
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<usize, Error> {
        self.out.into_inner().commit()?;
        Ok(self.n)
    }
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

/// The `.npy` (version 1) header for a little-endian C-order array.
pub fn npy_header(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let descr = if dtype == DType::F16 { "<f2" } else { "<f4" };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    crate::io::npy_header_text(descr, &shape_txt)
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
        npy_header(dtype, shape)
    } else {
        let bytes = shape.iter().product::<usize>() * dtype.size();
        seedvae_weights::safetensors::header_for(
            &Default::default(),
            &[(name, dtype, shape, bytes)],
        )
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
    Ok(match Container::of(path)? {
        Container::PngDir => Box::new(PngFrames::open(path)?),
        Container::Y4m => Box::new(Y4mReader::open(path)?),
        _ => Box::new(TensorFrames(crate::io::read_video(path)?)),
    })
}

impl FrameSource for Y4mReader {
    fn len(&self) -> usize {
        Y4mReader::len(self)
    }
    fn size(&self) -> (usize, usize) {
        (self.h, self.w)
    }
    fn read(&mut self, i: usize) -> Result<Vec<f32>, Error> {
        Y4mReader::read(self, i)
    }
}

/// A `[1, 3, T, H, W]` tensor already in memory.
struct TensorFrames(Tensor);

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

/// A directory of PNG frames (8- or 16-bit grey, grey+alpha, RGB or RGBA; alpha ignored),
/// taken in file-name order (name them with zero-padded numbers).
pub struct PngFrames {
    files: Vec<PathBuf>,
    h: usize,
    w: usize,
}

impl PngFrames {
    pub fn open(dir: &Path) -> Result<PngFrames, Error> {
        let rd = std::fs::read_dir(dir).map_err(|e| bad(dir, e))?;
        let mut files = Vec::new();
        for e in rd {
            let p = e.map_err(|e| bad(dir, e))?.path();
            if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
                files.push(p);
            }
        }
        files.sort();
        let first = files
            .first()
            .ok_or_else(|| bad(dir, "no .png frames in this directory"))?;
        let (_, h, w) = decode_png(first)?;
        Ok(PngFrames { files, h, w })
    }
}

/// One PNG as `[3, H, W]` in [−1, 1], with its size.
fn decode_png(path: &Path) -> Result<(Vec<f32>, usize, usize), Error> {
    let f = std::fs::File::open(path).map_err(|e| bad(path, e))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(f));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut r = dec
        .read_info()
        .map_err(|e| bad(path, format!("PNG: {e}")))?;
    let size = r
        .output_buffer_size()
        .ok_or_else(|| bad(path, "PNG image too large"))?;
    let mut buf = vec![0u8; size];
    let info = r
        .next_frame(&mut buf)
        .map_err(|e| bad(path, format!("PNG: {e}")))?;
    let (h, w) = (info.height as usize, info.width as usize);
    let channels = info.color_type.samples();
    let wide = info.bit_depth == png::BitDepth::Sixteen;
    let (max, n) = (if wide { 65535.0 } else { 255.0 }, h * w);
    let sample = |i: usize| -> f32 {
        if wide {
            u16::from_be_bytes([buf[2 * i], buf[2 * i + 1]]) as f32
        } else {
            buf[i] as f32
        }
    };
    let mut out = vec![0f32; 3 * n];
    for p in 0..n {
        for c in 0..3 {
            // Grey (with or without alpha): the one channel three times.
            let src = if channels >= 3 { c } else { 0 };
            out[c * n + p] = sample(p * channels + src) / max * 2.0 - 1.0;
        }
    }
    Ok((out, h, w))
}

impl FrameSource for PngFrames {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn size(&self) -> (usize, usize) {
        (self.h, self.w)
    }
    fn read(&mut self, i: usize) -> Result<Vec<f32>, Error> {
        let p = &self.files[i];
        let (v, h, w) = decode_png(p)?;
        if (h, w) != (self.h, self.w) {
            return Err(bad(
                p,
                format!(
                    "frame is {w}×{h}, the first frame is {}×{}; all frames must be the same size",
                    self.w, self.h
                ),
            ));
        }
        Ok(v)
    }
}

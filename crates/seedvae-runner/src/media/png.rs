//! Decoded video to image files. The VAE's output is not clamped (spec §1); frames are
//! `clamp(x, −1, 1) · 0.5 + 0.5`, scaled to 8 bits and rounded. A frame directory appears whole
//! or not at all: frames are written into a hidden temporary directory that is renamed at the end
//! and removed on any error.

use super::{FrameSink, FrameSource, SinkSpec};
use crate::{bad, Error};
use std::path::{Path, PathBuf};

/// One decoded value in [−1, 1] (clamped) to an 8-bit level.
pub fn to_u8(x: f32) -> u8 {
    let v = (x.clamp(-1.0, 1.0) * 0.5 + 0.5) * 255.0;
    v.round() as u8
}

/// Encode one RGB frame (`planes`: the 3 channel planes of `h × w`) as PNG bytes.
pub fn png_bytes(planes: [&[f32]; 3], h: usize, w: usize) -> Result<Vec<u8>, Error> {
    let mut rgb = Vec::with_capacity(3 * h * w);
    for i in 0..h * w {
        rgb.extend(planes.iter().map(|p| to_u8(p[i])));
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc
            .write_header()
            .map_err(|e| Error::Backend(format!("PNG: {e}")))?;
        wr.write_image_data(&rgb)
            .map_err(|e| Error::Backend(format!("PNG: {e}")))?;
    }
    Ok(out)
}

fn frame_name(i: usize) -> String {
    format!("frame_{i:06}.png")
}

/// Writes frames `frame_000000.png`, … into a directory that appears only on [`FrameDir::finish`].
pub struct FrameDir {
    target: PathBuf,
    tmp: PathBuf,
    force: bool,
    next: usize,
    done: bool,
}

impl FrameDir {
    /// Refuses an existing `target` unless `force` (then it is replaced at the end).
    pub fn create(target: &Path, force: bool) -> Result<FrameDir, Error> {
        use seedvae_weights::output;
        output::check_overwrite(target, force)?;
        let tmp = output::temp_path(target);
        std::fs::create_dir(&tmp).map_err(|e| bad(&tmp, e))?;
        output::register_temporary(&tmp);
        let dir = FrameDir {
            target: target.to_path_buf(),
            tmp,
            force,
            next: 0,
            done: false,
        };
        // Marks the directory as seedvae's own (only such a directory is replaced by --force);
        // `finish` lists the frames in it.
        output::write_dir_marker(&dir.tmp, &[])?;
        Ok(dir)
    }

    /// Append the frames of a `[1, 3, F, H, W]` chunk; returns how many were written so far.
    pub fn push(&mut self, shape: &[usize], v: &[f32]) -> Result<usize, Error> {
        let [_, c, f, h, w] = <[usize; 5]>::try_from(shape)
            .map_err(|_| Error::Input(format!("video chunk shape {shape:?} is not 5-D")))?;
        if c != 3 || v.len() != c * f * h * w {
            return Err(Error::Input(format!(
                "video chunk must be [1, 3, F, H, W]; found {shape:?}"
            )));
        }
        let plane = h * w;
        for fi in 0..f {
            let p = |ci: usize| &v[(ci * f + fi) * plane..(ci * f + fi + 1) * plane];
            let bytes = png_bytes([p(0), p(1), p(2)], h, w)?;
            let path = self.tmp.join(frame_name(self.next));
            std::fs::write(&path, bytes)
                .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
            self.next += 1;
        }
        Ok(self.next)
    }

    /// Move the finished directory into place (the output rules checked again first).
    pub fn finish(mut self) -> Result<usize, Error> {
        let frames: Vec<String> = (0..self.next).map(frame_name).collect();
        seedvae_weights::output::write_dir_marker(&self.tmp, &frames)?;
        seedvae_weights::output::replace_dir(&self.tmp, &self.target, self.force)?;
        self.done = true;
        Ok(self.next)
    }
}

impl Drop for FrameDir {
    /// An unfinished directory (error, early return, Ctrl-C unwinding) is removed.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
            seedvae_weights::output::forget_temporary(&self.tmp);
        }
    }
}

pub(crate) struct PngSink {
    dir: FrameDir,
    h: usize,
    w: usize,
}

impl PngSink {
    pub(crate) fn create(s: &SinkSpec) -> Result<PngSink, Error> {
        Ok(PngSink {
            dir: FrameDir::create(s.path, s.force)?,
            h: s.h,
            w: s.w,
        })
    }
}

impl FrameSink for PngSink {
    fn push(&mut self, v: &[f32], f: usize) -> Result<(), Error> {
        self.dir.push(&[1, 3, f, self.h, self.w], v).map(|_| ())
    }
    fn finish(self: Box<Self>) -> Result<usize, Error> {
        self.dir.finish()
    }
    fn spill_dir(&self) -> Option<PathBuf> {
        Some(super::parent_dir(&self.dir.target))
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
        // The size from the header alone: the pixels are read frame by frame, later.
        let r = png_reader(first)?;
        let (w, h) = (r.info().width as usize, r.info().height as usize);
        Ok(PngFrames { files, h, w })
    }
}

type PngReader = png::Reader<std::io::BufReader<std::fs::File>>;

/// A PNG's reader, its header read and its size checked.
fn png_reader(path: &Path) -> Result<PngReader, Error> {
    let f = std::fs::File::open(path).map_err(|e| bad(path, e))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(f));
    dec.set_transformations(png::Transformations::EXPAND);
    let r = dec
        .read_info()
        .map_err(|e| bad(path, format!("PNG: {e}")))?;
    let (w, h) = (r.info().width as usize, r.info().height as usize);
    super::check_frame_size(path, w, h)?;
    Ok(r)
}

/// One PNG as `[3, H, W]` in [−1, 1], with its size; both buffers checked to fit first.
fn decode_png(path: &Path) -> Result<(Vec<f32>, usize, usize), Error> {
    let mut r = png_reader(path)?;
    let (w, h) = (r.info().width as usize, r.info().height as usize);
    let size = r
        .output_buffer_size()
        .ok_or_else(|| bad(path, "PNG image too large"))?;
    let what = || format!("{}: a {w}×{h} frame", path.display());
    seedvae_weights::memory::check(size as u64 + 12 * (w * h) as u64, what)?;
    let mut buf = seedvae_weights::memory::zeroed(size, what)?;
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
    let mut out = seedvae_weights::memory::zeroed(3 * n, what)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(to_u8(-1.0), 0);
        assert_eq!(to_u8(-7.0), 0);
        assert_eq!(to_u8(1.0), 255);
        assert_eq!(to_u8(3.0), 255);
        assert_eq!(to_u8(0.0), 128); // 127.5 rounds up
        assert_eq!(to_u8(f32::NAN), 0);
    }

    #[test]
    fn frames_round_trip_and_appear_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("frames");
        let (f, h, w) = (2, 3, 4);
        let v: Vec<f32> = (0..3 * f * h * w)
            .map(|i| (i as f32 / 36.0) - 1.0)
            .collect();
        let mut fd = FrameDir::create(&target, false).unwrap();
        assert_eq!(fd.push(&[1, 3, f, h, w], &v).unwrap(), 2);
        assert!(!target.exists());
        assert_eq!(fd.finish().unwrap(), 2);
        // Two frames, and the marker that makes the directory seedvae's own.
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 2 + 1);
        assert!(target.join(seedvae_weights::output::DIR_MARKER).is_file());
        // Decode frame 1 and compare every level.
        let file = std::fs::File::open(target.join("frame_000001.png")).unwrap();
        let mut dec = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .unwrap();
        let mut buf = vec![0; dec.output_buffer_size().unwrap()];
        let info = dec.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (w as u32, h as u32));
        for i in 0..h * w {
            for c in 0..3 {
                assert_eq!(buf[i * 3 + c], to_u8(v[(c * f + 1) * h * w + i]));
            }
        }
        // Existing target: refused without force.
        assert!(FrameDir::create(&target, false).is_err());
        // An error midway leaves nothing behind.
        let other = dir.path().join("other");
        {
            let mut fd = FrameDir::create(&other, false).unwrap();
            fd.push(&[1, 3, f, h, w], &v).unwrap();
            assert!(fd.push(&[1, 4, f, h, w], &v).is_err());
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("frames")], "{left:?}");
    }
}

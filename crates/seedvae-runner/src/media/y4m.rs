//! YUV4MPEG2 (`.y4m`) video, read and written one frame at a time (memory does not grow with
//! length). Colour: BT.601 matrix. Written files are 4:4:4, full range (`XCOLORRANGE=FULL`), so
//! nothing but 8-bit rounding is lost; read files may be 4:2:0 (any siting; chroma is replicated,
//! not interpolated), 4:2:2, 4:4:4 or mono, limited range unless the header says `FULL`.
//! Every length is checked before use; errors name the file and the frame.
//!
//! Ours rather than the `y4m` crate: its `Decoder` reads frames in order from a `Read`
//! (`read_frame`), while encode's reflect padding reads frames out of order — ours seeks to frame
//! `i` from offsets checked against the file's size — and it leaves `XCOLORRANGE` to the caller's
//! parsing of raw parameters. The writer is the reader's mirror image (4:4:4, full range).

use super::{FrameSink, FrameSource, SinkSpec};
use crate::{bad, Error};
use seedvae_weights::output::AtomicFile;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Chroma subsampling of a `.y4m` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    C420,
    C422,
    C444,
    Mono,
}

impl Chroma {
    /// (horizontal, vertical) subsampling shifts; None for mono.
    fn shifts(self) -> Option<(u32, u32)> {
        match self {
            Chroma::C420 => Some((1, 1)),
            Chroma::C422 => Some((1, 0)),
            Chroma::C444 => Some((0, 0)),
            Chroma::Mono => None,
        }
    }
}

/// One 8-bit RGB level (0..=255, real) per channel to full-range BT.601 Y, Cb, Cr.
pub fn rgb_to_ycbcr(r: f32, g: f32, b: f32) -> [u8; 3] {
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    [y, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

/// BT.601 Y, Cb, Cr (full or limited range) to RGB levels 0..=255 (real, clamped).
pub fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8, full: bool) -> [f32; 3] {
    let (y, cb, cr) = if full {
        (y as f32, cb as f32 - 128.0, cr as f32 - 128.0)
    } else {
        (
            (y as f32 - 16.0) * 255.0 / 219.0,
            (cb as f32 - 128.0) * 255.0 / 224.0,
            (cr as f32 - 128.0) * 255.0 / 224.0,
        )
    };
    [
        y + 1.402 * cr,
        y - 0.344_136 * cb - 0.714_136 * cr,
        y + 1.772 * cb,
    ]
    .map(|v| v.clamp(0.0, 255.0))
}

/// Writes frames given as three [−1, 1] planes (clamped; ×0.5+0.5 as the pipelines do).
pub struct Y4mWriter<W: Write> {
    out: W,
    h: usize,
    w: usize,
}

impl<W: Write> Y4mWriter<W> {
    pub fn new(mut out: W, h: usize, w: usize, fps: (u32, u32)) -> std::io::Result<Self> {
        writeln!(
            out,
            "YUV4MPEG2 W{w} H{h} F{}:{} Ip A1:1 C444 XCOLORRANGE=FULL",
            fps.0, fps.1
        )?;
        Ok(Y4mWriter { out, h, w })
    }

    pub fn frame(&mut self, planes: [&[f32]; 3]) -> std::io::Result<()> {
        let n = self.h * self.w;
        let mut yuv = vec![0u8; 3 * n];
        let level = |x: f32| (x.clamp(-1.0, 1.0) * 0.5 + 0.5) * 255.0;
        for i in 0..n {
            let [y, cb, cr] = rgb_to_ycbcr(
                level(planes[0][i]),
                level(planes[1][i]),
                level(planes[2][i]),
            );
            yuv[i] = y;
            yuv[n + i] = cb;
            yuv[2 * n + i] = cr;
        }
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(&yuv)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A `.y4m` file indexed by frame, read one frame at a time.
pub struct Y4mReader {
    path: PathBuf,
    file: BufReader<File>,
    pub h: usize,
    pub w: usize,
    chroma: Chroma,
    full_range: bool,
    /// Payload offset of each frame.
    frames: Vec<u64>,
}

fn header_line(r: &mut impl BufRead, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = r.take(limit as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(line))
}

impl Y4mReader {
    pub fn open(path: &Path) -> Result<Y4mReader, Error> {
        let f = File::open(path).map_err(|e| bad(path, e))?;
        let len = f.metadata().map_err(|e| bad(path, e))?.len();
        let mut r = BufReader::new(f);
        let line = header_line(&mut r, 4096)
            .map_err(|e| bad(path, e))?
            .filter(|l| l.ends_with(b"\n"))
            .ok_or_else(|| bad(path, "not a .y4m file (no header line)"))?;
        let text = std::str::from_utf8(&line).map_err(|_| bad(path, "non-text .y4m header"))?;
        let mut words = text.trim_end().split(' ');
        if words.next() != Some("YUV4MPEG2") {
            return Err(bad(path, "not a .y4m file (bad magic)"));
        }
        let (mut h, mut w, mut chroma, mut full) = (0usize, 0usize, Chroma::C420, false);
        for word in words {
            let (tag, val) = word.split_at(word.len().min(1));
            match tag {
                "W" => w = val.parse().map_err(|_| bad(path, format!("bad width '{val}'")))?,
                "H" => h = val.parse().map_err(|_| bad(path, format!("bad height '{val}'")))?,
                "I" if !matches!(val, "p" | "?") => {
                    return Err(bad(path, format!("interlaced video (I{val}) is not supported")))
                }
                "C" => {
                    chroma = match val {
                        "420jpeg" | "420paldv" | "420mpeg2" | "420" => Chroma::C420,
                        "422" => Chroma::C422,
                        "444" => Chroma::C444,
                        "mono" => Chroma::Mono,
                        other => {
                            return Err(bad(
                                path,
                                format!(
                                    "colour space C{other} is not supported (8-bit 420, 422, 444 or mono are)"
                                ),
                            ))
                        }
                    }
                }
                "X" if val.starts_with("COLORRANGE=") => {
                    full = match &val["COLORRANGE=".len()..] {
                        "FULL" => true,
                        "LIMITED" => false,
                        other => {
                            return Err(bad(
                                path,
                                format!(
                                    "unknown colour range XCOLORRANGE={other} (FULL or LIMITED are \
                                     read); re-export the video with one of them"
                                ),
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        super::check_frame_size(path, w, h)?;
        let mut rd = Y4mReader {
            path: path.to_path_buf(),
            file: r,
            h,
            w,
            chroma,
            full_range: full,
            frames: Vec::new(),
        };
        let size = rd.frame_bytes() as u64;
        let mut pos = line.len() as u64;
        while let Some(l) = header_line(&mut rd.file, 1024).map_err(|e| bad(path, e))? {
            let i = rd.frames.len();
            if !l.starts_with(b"FRAME") || !l.ends_with(b"\n") {
                return Err(bad(path, format!("frame {i}: bad FRAME header")));
            }
            pos += l.len() as u64;
            if pos + size > len {
                return Err(bad(
                    path,
                    format!(
                        "frame {i} is truncated: needs {size} bytes, {} left",
                        len - pos
                    ),
                ));
            }
            rd.frames.push(pos);
            pos += size;
            rd.file
                .seek(SeekFrom::Start(pos))
                .map_err(|e| bad(path, e))?;
        }
        if rd.frames.is_empty() {
            return Err(bad(path, "no frames"));
        }
        Ok(rd)
    }

    fn frame_bytes(&self) -> usize {
        let n = self.h * self.w;
        match self.chroma.shifts() {
            None => n,
            Some((sx, sy)) => n + 2 * self.w.div_ceil(1 << sx) * self.h.div_ceil(1 << sy),
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frame `i` as three planes `[3, H, W]` of RGB in [−1, 1].
    pub fn read(&mut self, i: usize) -> Result<Vec<f32>, Error> {
        let what = || format!("{}: a {}×{} frame", self.path.display(), self.w, self.h);
        let bytes = self.frame_bytes();
        seedvae_weights::memory::check(bytes as u64 + 12 * (self.h * self.w) as u64, what)?;
        let mut buf = seedvae_weights::memory::zeroed(bytes, what)?;
        self.file
            .seek(SeekFrom::Start(self.frames[i]))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| bad(&self.path, format!("frame {i}: {e}")))?;
        let (h, w, n) = (self.h, self.w, self.h * self.w);
        let mut out = seedvae_weights::memory::zeroed(3 * n, what)?;
        let (luma, chroma) = buf.split_at(n);
        let (cw, ch_) = match self.chroma.shifts() {
            Some((sx, sy)) => (w.div_ceil(1 << sx), h.div_ceil(1 << sy)),
            None => (0, 0),
        };
        for y in 0..h {
            for x in 0..w {
                let (cb, cr) = match self.chroma.shifts() {
                    None => (128, 128),
                    Some((sx, sy)) => {
                        let j = (y >> sy) * cw + (x >> sx);
                        (chroma[j], chroma[cw * ch_ + j])
                    }
                };
                let rgb = ycbcr_to_rgb(luma[y * w + x], cb, cr, self.full_range);
                for (c, v) in rgb.iter().enumerate() {
                    out[c * n + y * w + x] = v / 127.5 - 1.0;
                }
            }
        }
        Ok(out)
    }
}

pub(crate) struct Y4mSink {
    path: PathBuf,
    out: Y4mWriter<AtomicFile>,
    hw: usize,
    n: usize,
}

impl Y4mSink {
    pub(crate) fn create(s: &SinkSpec) -> Result<Y4mSink, Error> {
        if s.fps.0 == 0 || s.fps.1 == 0 {
            return Err(bad(
                s.path,
                format!(
                    "frame rate {}:{} is not a frame rate: a .y4m output needs a rate above 0",
                    s.fps.0, s.fps.1
                ),
            ));
        }
        let f = super::atomic(s.path, s.force)?;
        let out = Y4mWriter::new(f, s.h, s.w, s.fps).map_err(|e| bad(s.path, e))?;
        Ok(Y4mSink {
            path: s.path.to_path_buf(),
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
                .map_err(|e| bad(&self.path, format!("writing frame {}: {e}", self.n)))?;
            self.n += 1;
        }
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<usize, Error> {
        self.out.into_inner().commit()?;
        Ok(self.n)
    }
    fn spill_dir(&self) -> Option<PathBuf> {
        Some(super::parent_dir(&self.path))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_within_rounding_and_bad_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (h, w) = (6, 10);
        let frame: Vec<f32> = (0..3 * h * w)
            .map(|i| ((i * 37) % 255) as f32 / 127.5 - 1.0)
            .collect();
        let p = dir.path().join("a.y4m");
        let mut wr = Y4mWriter::new(File::create(&p).unwrap(), h, w, (24, 1)).unwrap();
        let n = h * w;
        for _ in 0..3 {
            wr.frame([&frame[..n], &frame[n..2 * n], &frame[2 * n..]])
                .unwrap();
        }
        drop(wr);
        let mut r = Y4mReader::open(&p).unwrap();
        assert_eq!((r.len(), r.h, r.w), (3, h, w));
        let back = r.read(2).unwrap();
        let err = back
            .iter()
            .zip(&frame)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // 8-bit YCbCr rounding: about 1.5 levels of 255 at worst.
        assert!(err <= 2.0 / 127.5, "max error {err}");

        // Truncated: the last frame is cut.
        let bytes = std::fs::read(&p).unwrap();
        let t = dir.path().join("t.y4m");
        std::fs::write(&t, &bytes[..bytes.len() - 5]).unwrap();
        let e = Y4mReader::open(&t).err().unwrap().to_string();
        assert!(e.contains("frame 2 is truncated"), "{e}");
        // Not y4m; unsupported chroma; interlaced.
        for (hdr, want) in [
            ("RIFF....\n", "bad magic"),
            ("YUV4MPEG2 W4 H4 C420p10\n", "C420p10"),
            ("YUV4MPEG2 W4 H4 It\n", "interlaced"),
            ("YUV4MPEG2 W0 H4\n", "frame size"),
        ] {
            std::fs::write(&t, hdr).unwrap();
            let e = Y4mReader::open(&t).err().unwrap().to_string();
            assert!(e.contains(want), "{hdr}: {e}");
        }
    }

    #[test]
    fn limited_range_420_reads_grey_and_colour() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.y4m");
        // 2×2 frame, 4:2:0: Y = 16 (black), 235 (white) in limited range; neutral chroma.
        let mut b = b"YUV4MPEG2 W2 H2 F25:1 C420jpeg\nFRAME\n".to_vec();
        b.extend_from_slice(&[16, 235, 126, 126, 128, 128]);
        std::fs::write(&p, b).unwrap();
        let mut r = Y4mReader::open(&p).unwrap();
        let f = r.read(0).unwrap();
        assert!(
            (f[0] + 1.0).abs() < 1e-5 && (f[1] - 1.0).abs() < 1e-5,
            "{f:?}"
        );
        assert!((f[2] - f[6]).abs() < 1e-6 && (f[6] - f[10]).abs() < 1e-6);
    }

    /// `XCOLORRANGE=LIMITED` (ffmpeg's usual output) and an untagged file are read as limited
    /// range (16–235 → black–white); `FULL` as full range: the tag changes the result.
    #[test]
    fn the_colour_range_tag_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let read = |tag: &str| {
            let p = dir.path().join(format!("r{}.y4m", tag.len()));
            let mut b = format!("YUV4MPEG2 W2 H1 F25:1 C444{tag}\nFRAME\n").into_bytes();
            b.extend_from_slice(&[16, 235, 128, 128, 128, 128]);
            std::fs::write(&p, b).unwrap();
            Y4mReader::open(&p).unwrap().read(0).unwrap()
        };
        let (limited, untagged, full) = (
            read(" XCOLORRANGE=LIMITED"),
            read(""),
            read(" XCOLORRANGE=FULL"),
        );
        assert_eq!(limited, untagged);
        assert!(
            (limited[0] + 1.0).abs() < 1e-5 && (limited[1] - 1.0).abs() < 1e-5,
            "{limited:?}"
        );
        // Full range: 16 and 235 are not black and white.
        assert!(
            (full[0] - (16.0 / 255.0 * 2.0 - 1.0)).abs() < 1e-5,
            "{full:?}"
        );
        assert!(
            (full[1] - (235.0 / 255.0 * 2.0 - 1.0)).abs() < 1e-5,
            "{full:?}"
        );
    }
}

//! Spatial tiling as the ComfyUI SeedVR2 node does it (spec §9): tile placement in latent units,
//! and blending in output pixels with separable raised-cosine ramps on interior edges only,
//! normalized by the summed weights. Tiling is an approximation (GroupNorm and attention see one
//! tile, not the frame); temporal streaming is the exact part.

/// One axis's tiles `[start, end)` in latent units for a latent extent `len`, a tile of `tile`
/// and an overlap of `overlap` latent units (the node's rules: stride = tile − overlap, tiles at
/// 0, stride, 2·stride, … clipped at the border, a later tile no longer than the overlap skipped).
pub fn plan_axis(len: usize, tile: usize, overlap: usize) -> Vec<(usize, usize)> {
    let tile = tile.max(1);
    if len <= tile {
        return vec![(0, len)];
    }
    let overlap = overlap.min(tile - 1);
    let stride = tile - overlap;
    let mut out = Vec::new();
    let mut s = 0;
    while s < len {
        let e = (s + tile).min(len);
        if s == 0 || e - s > overlap {
            out.push((s, e));
        }
        s += stride;
    }
    out
}

/// The node's tile parameters from its UI values in output pixels: latent tile = ⌊tile/8⌋,
/// latent overlap = min(⌊overlap/8⌋, latent tile − 1).
pub fn latent_tiling(tile_px: usize, overlap_px: usize) -> (usize, usize) {
    let t = (tile_px / 8).max(1);
    (t, (overlap_px / 8).min(t - 1))
}

/// `w(t) = ½ − ½·cos(π·t)` at `n` points `t = linspace(0, 1, n)`.
pub fn ramp(n: usize) -> Vec<f32> {
    match n {
        0 => vec![],
        1 => vec![0.0],
        _ => (0..n)
            .map(|i| {
                let t = i as f64 / (n - 1) as f64;
                (0.5 - 0.5 * (std::f64::consts::PI * t).cos()) as f32
            })
            .collect(),
    }
}

/// Blend weights along one axis of a tile `extent` output pixels long: 1, except a rising ramp
/// at the start when `fade_start` (an interior edge) and a falling one at the end when
/// `fade_end`; ramps have min(overlap_px, extent − 1) samples (the node uses the raw pixel
/// overlap here).
pub fn axis_weights(
    extent: usize,
    fade_start: bool,
    fade_end: bool,
    overlap_px: usize,
) -> Vec<f32> {
    let mut w = vec![1f32; extent];
    let n = overlap_px.min(extent.saturating_sub(1));
    let r = ramp(n);
    if fade_start {
        for (i, v) in r.iter().enumerate() {
            w[i] *= v;
        }
    }
    if fade_end {
        for (i, v) in r.iter().enumerate() {
            w[extent - n + i] *= 1.0 - v;
        }
    }
    w
}

/// A tile in latent units and its place in the output (×`scale` pixels per latent pixel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub y: (usize, usize),
    pub x: (usize, usize),
}

/// All tiles of an `h × w` latent.
#[cfg(test)]
pub fn plan(h: usize, w: usize, tile: usize, overlap: usize) -> Vec<Tile> {
    let ys = plan_axis(h, tile, overlap);
    let xs = plan_axis(w, tile, overlap);
    ys.iter()
        .flat_map(|&y| xs.iter().map(move |&x| Tile { y, x }))
        .collect()
}

/// Accumulates tile outputs `[C, F, th, tw]` into a `[C, F, H, W]` frame buffer with the blend
/// weights; [`Blender::finish`] divides by the summed weights (at least 1e-6, as the node does).
pub struct Blender {
    c: usize,
    f: usize,
    h: usize,
    w: usize,
    overlap_px: usize,
    acc: Store,
    wsum: Vec<f32>,
}

/// Where the accumulator lives: in memory while it fits, else in a temporary file beside the
/// output, mapped (the page cache holds what is in use; a y4m or PNG output of any length then
/// never needs the whole video in memory).
enum Store {
    Heap(Vec<f32>),
    File(memmap2::MmapMut),
}

impl std::ops::Deref for Store {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Store::Heap(v) => v,
            Store::File(m) => bytemuck::cast_slice(m),
        }
    }
}

impl std::ops::DerefMut for Store {
    fn deref_mut(&mut self) -> &mut [f32] {
        match self {
            Store::Heap(v) => v,
            Store::File(m) => bytemuck::cast_slice_mut(m),
        }
    }
}

/// A zeroed accumulator of `n` values in a temporary file in `dir` (removed by the OS when
/// closed, even after a crash on Unix). The zeros are written, not left sparse: a full disk is
/// then an error here, never a fault while the map is written.
fn file_store(n: usize, dir: &std::path::Path) -> std::io::Result<memmap2::MmapMut> {
    use std::io::Write;
    let file = tempfile::tempfile_in(dir)?;
    let zeros = vec![0u8; 1 << 24];
    let mut left = 4 * n;
    let mut w = std::io::BufWriter::new(&file);
    while left > 0 {
        let k = left.min(zeros.len());
        w.write_all(&zeros[..k])?;
        left -= k;
    }
    w.flush()?;
    drop(w);
    // SAFETY: the file is this process's own unnamed temporary file, nobody else maps or
    // truncates it; its length is exactly the map's.
    unsafe { memmap2::MmapMut::map_mut(&file) }
}

impl Blender {
    /// An accumulator of `c` channels, `f` frames of `h × w` in memory (which must fit).
    pub fn new(
        c: usize,
        f: usize,
        h: usize,
        w: usize,
        overlap_px: usize,
    ) -> Result<Blender, crate::Error> {
        Blender::with_spill(c, f, h, w, overlap_px, None)
    }

    /// As [`Blender::new`], in a temporary file in `spill` when it does not fit in memory.
    pub fn with_spill(
        c: usize,
        f: usize,
        h: usize,
        w: usize,
        overlap_px: usize,
        spill: Option<&std::path::Path>,
    ) -> Result<Blender, crate::Error> {
        let n = c * f * h * w;
        let what = || format!("the tile blending accumulator ({f} frames of {w}×{h})");
        let wsum = seedvae_weights::memory::zeroed(h * w, what)?;
        // Room for the accumulator and, as the frames are emitted, a chunk of them.
        let acc = match seedvae_weights::memory::check(
            4 * n as u64 + (4 * n as u64).min(1 << 30),
            what,
        ) {
            Ok(()) => Store::Heap(seedvae_weights::memory::zeroed(n, what)?),
            Err(e) => match spill {
                Some(dir) => {
                    tracing::info!(
                        "{}; accumulating the tiles in a temporary file in {} instead",
                        e,
                        dir.display()
                    );
                    Store::File(file_store(n, dir).map_err(|err| {
                        crate::Error::Input(format!(
                            "{}: the tile blending accumulator ({:.1} GB) does not fit in memory, \
                             and a temporary file for it could not be written there: {err}",
                            dir.display(),
                            4.0 * n as f64 / 1e9
                        ))
                    })?)
                }
                None => return Err(e.into()),
            },
        };
        Ok(Blender {
            c,
            f,
            h,
            w,
            overlap_px,
            acc,
            wsum,
        })
    }

    /// Add a tile whose output covers every frame, rows `y0..y0+th`, columns `x0..x0+tw`.
    pub fn add(&mut self, tile: &[f32], y0: usize, x0: usize, th: usize, tw: usize) {
        self.add_frames(tile, 0, self.f, y0, x0, th, tw);
    }

    /// Bytes held (accumulator and weights).
    pub fn bytes(&self) -> usize {
        4 * (self.acc.len() + self.wsum.len())
    }

    /// Add a tile `[C, f, th, tw]` covering frames `f0..f0+f`, rows `y0..y0+th`, columns
    /// `x0..x0+tw`. Each tile's chunks are added in turn, the first at frame 0: its weights are
    /// summed then, once per tile.
    #[allow(clippy::too_many_arguments)]
    pub fn add_frames(
        &mut self,
        tile: &[f32],
        f0: usize,
        f: usize,
        y0: usize,
        x0: usize,
        th: usize,
        tw: usize,
    ) {
        assert_eq!(tile.len(), self.c * f * th * tw, "tile size");
        assert!(
            y0 + th <= self.h && x0 + tw <= self.w && f0 + f <= self.f,
            "tile outside the frame"
        );
        let wy = axis_weights(th, y0 > 0, y0 + th < self.h, self.overlap_px);
        let wx = axis_weights(tw, x0 > 0, x0 + tw < self.w, self.overlap_px);
        if f0 == 0 {
            for (yi, &a) in wy.iter().enumerate() {
                let row = (y0 + yi) * self.w + x0;
                for (xi, &b) in wx.iter().enumerate() {
                    self.wsum[row + xi] += a * b;
                }
            }
        }
        for (ci, fi) in (0..self.c).flat_map(|c| (0..f).map(move |k| (c, k))) {
            let cf = ci * self.f + f0 + fi;
            for (yi, &a) in wy.iter().enumerate() {
                let src = ((ci * f + fi) * th + yi) * tw;
                let dst = (cf * self.h + y0 + yi) * self.w + x0;
                for (xi, &b) in wx.iter().enumerate() {
                    self.acc[dst + xi] += a * b * tile[src + xi];
                }
            }
        }
    }

    /// The blended values `per` frames at a time, each chunk `[C, n, H, W]` given to `emit`
    /// with its frame count: memory for one chunk, whatever the clip's length.
    pub fn emit(
        self,
        per: usize,
        emit: &mut dyn FnMut(Vec<f32>, usize) -> Result<(), crate::Error>,
    ) -> Result<(), crate::Error> {
        let plane = self.h * self.w;
        let mut f0 = 0;
        while f0 < self.f {
            let n = per.max(1).min(self.f - f0);
            let mut v = seedvae_weights::memory::with_capacity(self.c * n * plane, || {
                format!("{n} blended frames of {}×{}", self.w, self.h)
            })?;
            for c in 0..self.c {
                let start = (c * self.f + f0) * plane;
                let src = &self.acc[start..start + n * plane];
                v.extend(
                    src.iter()
                        .enumerate()
                        .map(|(i, x)| x / self.wsum[i % plane].max(1e-6)),
                );
            }
            emit(v, n)?;
            f0 += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_follows_the_node() {
        // Fits: one tile.
        assert_eq!(plan_axis(100, 128, 16), vec![(0, 100)]);
        // 300 latent, tile 128, overlap 16: stride 112 → 0, 112, 224 (clipped to 300).
        assert_eq!(
            plan_axis(300, 128, 16),
            vec![(0, 128), (112, 240), (224, 300)]
        );
        // A last tile no longer than the overlap is skipped: 130 with tile 64, overlap 16 →
        // starts 0, 48, 96 (96..130 = 34 > 16: kept), 144 ≥ 130: stop.
        assert_eq!(plan_axis(130, 64, 16), vec![(0, 64), (48, 112), (96, 130)]);
        // 120, tile 64, overlap 16 → 0..64, 48..112, 96..120 (24 > 16) kept.
        assert_eq!(plan_axis(120, 64, 16), vec![(0, 64), (48, 112), (96, 120)]);
        // 110: 96..110 is 14 ≤ 16: skipped (48..110 already covers it).
        assert_eq!(plan_axis(110, 64, 16), vec![(0, 64), (48, 110)]);
        // The node's UI defaults: 1024 px tiles, 128 px overlap → 128 latent, 16 overlap.
        assert_eq!(latent_tiling(1024, 128), (128, 16));
        assert_eq!(latent_tiling(64, 512), (8, 7));
        assert_eq!(plan(200, 100, 128, 16).len(), 2);
    }

    #[test]
    fn ramps_rise_from_0_to_1_and_border_edges_do_not_fade() {
        let r = ramp(5);
        assert_eq!(r[0], 0.0);
        assert!((r[2] - 0.5).abs() < 1e-7 && (r[4] - 1.0).abs() < 1e-7);
        let w = axis_weights(10, true, false, 4);
        assert_eq!(&w[4..], &[1.0; 6]);
        assert_eq!(w[0], 0.0);
        let w = axis_weights(10, false, true, 4);
        assert_eq!(&w[..6], &[1.0; 6]);
        assert!((w[9] - 0.0).abs() < 1e-7);
        // Overlap longer than the tile: the ramp is shortened to extent − 1.
        assert_eq!(axis_weights(3, true, false, 128).len(), 3);
    }

    #[test]
    fn blending_tiles_cut_from_one_image_gives_the_image_back() {
        // A smooth 2-channel, 1-frame image, 8 px per latent unit.
        let (h, w) = (40 * 8, 23 * 8);
        let img: Vec<f32> = (0..2 * h * w)
            .map(|i| ((i % w) as f32 * 0.01 + (i / w) as f32 * 0.003).sin())
            .collect();
        let overlap_px = 48;
        let mut b = Blender::new(2, 1, h, w, overlap_px).unwrap();
        let tiles = plan(40, 23, 16, overlap_px / 8);
        assert!(tiles.len() > 4, "{tiles:?}");
        for t in &tiles {
            let (y0, y1, x0, x1) = (t.y.0 * 8, t.y.1 * 8, t.x.0 * 8, t.x.1 * 8);
            let mut tile = Vec::new();
            for c in 0..2 {
                for y in y0..y1 {
                    tile.extend_from_slice(&img[(c * h + y) * w + x0..(c * h + y) * w + x1]);
                }
            }
            b.add(&tile, y0, x0, y1 - y0, x1 - x0);
        }
        let mut out = Vec::new();
        b.emit(usize::MAX, &mut |v, _| {
            out = v;
            Ok(())
        })
        .unwrap();
        let err = out
            .iter()
            .zip(&img)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-5, "max error {err}");
    }
}

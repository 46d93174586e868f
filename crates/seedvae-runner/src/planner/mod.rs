//! How a clip is cut into backend calls: temporal chunks (exact, through the carried state) and
//! spatial tiles (the node's approximation, spec §9), within what the backend accepts per call
//! (an engine's optimization profile; the CPU accepts anything) and its memory.
//!
//! Units: the decoder's calls are in latent units; the encoder's in pixels (frames, H, W), but its
//! tiles are placed in latent units as the node does (pixel crop = 8× the latent tile).

use crate::tiling::{latent_tiling, plan_axis, Tile};
use crate::Error;
use seedvae_weights::Part;

/// The node's UI defaults (spec §9), in output pixels.
mod memory;

pub use memory::{
    call_bytes, call_bytes_with, engine_memory_cap, io_bytes, largest_fitting,
    measured_engine_memory_cap, state_bytes, tensor_bytes, GraphMemory,
};

pub const DEFAULT_TILE_PX: usize = 1024;
pub const DEFAULT_OVERLAP_PX: usize = 128;

/// Inclusive per-call ranges of the part's input `[1, C, t, h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub t: (usize, usize),
    pub h: (usize, usize),
    pub w: (usize, usize),
}

impl Limits {
    /// What the ONNX graphs accept on the CPU: any size (the encoder needs 8 px).
    pub fn unbounded(part: Part) -> Limits {
        let m = if part == Part::Encoder { 8 } else { 1 };
        Limits {
            t: (1, usize::MAX),
            h: (m, usize::MAX),
            w: (m, usize::MAX),
        }
    }

    /// The spatial ranges in latent units (the encoder's pixels ÷ 8, rounded inwards).
    fn latent_hw(&self, part: Part) -> [(usize, usize); 2] {
        let f = |r: (usize, usize)| match part {
            Part::Decoder => r,
            Part::Encoder => (r.0.div_ceil(8), r.1 / 8),
        };
        [f(self.h), f(self.w)]
    }
}

fn range_text(r: (usize, usize)) -> String {
    if r.1 == usize::MAX {
        format!("≥ {}", r.0)
    } else {
        format!("{}..={}", r.0, r.1)
    }
}

/// The user's tiling request, in output pixels.
#[derive(Debug, Clone, Copy)]
pub struct TileRequest {
    /// Tile edge (the node's `decode_tile_size`): tiling starts when the frame is larger.
    pub tile_px: usize,
    pub overlap_px: usize,
    /// False: `--no-tiling`; a frame the backend cannot take whole is then an error.
    pub allow: bool,
    /// The largest tile edge (latent units) that fits the memory budget, if known.
    pub memory_cap: Option<usize>,
}

impl Default for TileRequest {
    fn default() -> Self {
        TileRequest {
            tile_px: DEFAULT_TILE_PX,
            overlap_px: DEFAULT_OVERLAP_PX,
            allow: true,
            memory_cap: None,
        }
    }
}

/// Tiles over an `h × w` latent, and how they are blended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpatialPlan {
    /// Tile edge and overlap in latent units (0 overlap and one tile when untiled).
    pub tile: usize,
    pub overlap: usize,
    /// Ramp length for blending (pixels for the decoder; latent units for the encoder).
    pub ramp: usize,
    pub tiles: Vec<Tile>,
}

impl SpatialPlan {
    pub fn is_tiled(&self) -> bool {
        self.tiles.len() > 1
    }
}

/// One axis of tiles within `[min, ∞)`: the node's placement, with a border tile shorter than the
/// backend's minimum moved back to start `min` before the end (it overlaps its neighbour more).
fn axis(len: usize, tile: usize, overlap: usize, min: usize) -> Vec<(usize, usize)> {
    let mut v = plan_axis(len, tile, overlap);
    for t in &mut v {
        if t.1 - t.0 < min {
            t.0 = t.1.saturating_sub(min);
        }
    }
    v.dedup();
    v
}

/// Choose tiles for a latent of `h × w` (for the encoder: of the video ÷ 8).
pub fn plan_spatial(
    part: Part,
    h: usize,
    w: usize,
    limits: &Limits,
    req: &TileRequest,
) -> Result<SpatialPlan, Error> {
    let [lh, lw] = limits.latent_hw(part);
    let unit = if part == Part::Encoder {
        "video pixels"
    } else {
        "latent pixels"
    };
    let scale = if part == Part::Encoder { 8 } else { 1 };
    if h < lh.0 || w < lw.0 {
        return Err(Error::Plan(format!(
            "the {} is {}×{} {unit}; this model takes h {} and w {} — it is too small for it",
            if part == Part::Encoder {
                "video"
            } else {
                "latent"
            },
            h * scale,
            w * scale,
            range_text(limits.h),
            range_text(limits.w),
        )));
    }
    let (lt, lo) = latent_tiling(req.tile_px.max(8), req.overlap_px);
    let cap = [lh.1, lw.1, req.memory_cap.unwrap_or(usize::MAX)]
        .into_iter()
        .min()
        .expect("three values");
    // The memory cap is a square tile's edge; what it bounds (memory, the largest tensor) grows
    // with the area, so a frame fits when its area does.
    let fits_backend =
        h <= lh.1 && w <= lw.1 && req.memory_cap.is_none_or(|c| h * w <= c.saturating_mul(c));
    let wants_tiles = h > lt || w > lt || !fits_backend;
    // Whole: nothing asks for tiles, or tiling is off and the backend takes the frame.
    if !wants_tiles || (!req.allow && fits_backend) {
        return Ok(SpatialPlan {
            tile: h.max(w),
            overlap: 0,
            ramp: 0,
            tiles: vec![Tile {
                y: (0, h),
                x: (0, w),
            }],
        });
    }
    if !req.allow {
        return Err(Error::Plan(format!(
            "the frame is {}×{} {unit}, more than this model takes in one call (h {}, w {}{}); \
             allow tiling (drop `no_tiling`) or use a model built for larger tiles",
            h * scale,
            w * scale,
            range_text(limits.h),
            range_text(limits.w),
            req.memory_cap
                .map(|c| format!(", {0}×{0} by the memory plan", c * scale))
                .unwrap_or_default()
        )));
    }
    let tile = lt.min(cap);
    let min_tile = lh.0.max(lw.0);
    if tile < min_tile || tile == 0 {
        return Err(Error::Plan(format!(
            "no tile fits: the memory budget allows {} {unit}, the model needs at least {}",
            tile * scale,
            min_tile * scale
        )));
    }
    let overlap = lo.min(tile - 1);
    let ys = axis(h, tile, overlap, lh.0);
    let xs = axis(w, tile, overlap, lw.0);
    let tiles = ys
        .iter()
        .flat_map(|&y| xs.iter().map(move |&x| Tile { y, x }))
        .collect();
    // The node's ramp: the raw pixel overlap (decoder), or the latent overlap (encoder); a tile
    // smaller than the request uses its own overlap.
    let ramp = match part {
        Part::Decoder if tile == lt => req.overlap_px,
        Part::Decoder => overlap * 8,
        Part::Encoder => overlap,
    };
    Ok(SpatialPlan {
        tile,
        overlap,
        ramp,
        tiles,
    })
}

/// Temporal calls over a clip: `[start, end)` in the part's input frames (decoder: latent frames;
/// encoder: video frames of the 4n+1-padded clip). `chunk` is latent frames per call (the
/// encoder's first call takes 4·chunk+1 frames, later ones 4·chunk); None: the largest the
/// limits allow.
pub fn plan_chunks(
    part: Part,
    frames: usize,
    streaming: bool,
    chunk: Option<usize>,
    limits: &Limits,
) -> Result<Vec<(usize, usize)>, Error> {
    let (tmin, tmax) = limits.t;
    let unit = match part {
        Part::Decoder => "latent frames",
        Part::Encoder => "frames",
    };
    if !streaming {
        if chunk.is_some() {
            return Err(Error::Plan(
                "`chunk` needs a streaming model (convert or build with `streaming`)".into(),
            ));
        }
        if frames < tmin || frames > tmax {
            return Err(Error::Plan(format!(
                "the clip has {frames} {unit}; this one-shot model takes {} per call: use a \
                 streaming model (any length)",
                range_text(limits.t)
            )));
        }
        return Ok(vec![(0, frames)]);
    }
    // Lengths of the first and later calls for a chunk of n latent frames.
    let lens = |n: usize| match part {
        Part::Decoder => (n, n),
        Part::Encoder => (4 * n + 1, 4 * n),
    };
    let ok = |n: usize| {
        let (a, b) = lens(n);
        (tmin..=tmax).contains(&a.min(frames)) && (tmin..=tmax).contains(&b)
    };
    let n = match chunk {
        Some(0) => return Err(Error::Plan("`chunk` must be at least 1".into())),
        Some(n) if !ok(n) => {
            let (a, b) = lens(n);
            return Err(Error::Plan(format!(
                "`chunk` {n} means calls of {a} then {b} {unit}; this model takes {} per call",
                range_text(limits.t)
            )));
        }
        Some(n) => n,
        None => {
            // CPU: one latent frame per call keeps memory lowest; engines: their largest.
            let hi = if tmax == usize::MAX { 1 } else { tmax };
            (1..=hi).rev().find(|&n| ok(n)).ok_or_else(|| {
                Error::Plan(format!(
                    "no chunk fits this model's {} {unit} per call",
                    range_text(limits.t)
                ))
            })?
        }
    };
    let (first, later) = lens(n);
    let mut out = vec![(0, first.min(frames))];
    while out.last().expect("one").1 < frames {
        let s = out.last().expect("one").1;
        out.push((s, (s + later).min(frames)));
    }
    // A short last call must still be within the limits (the encoder's is a multiple of 4).
    if let Some(&(s, e)) = out.last().filter(|_| out.len() > 1) {
        if e - s < tmin {
            return Err(Error::Plan(format!(
                "the last call would take {} {unit}, below this model's minimum {tmin}; choose \
                 another `chunk`",
                e - s
            )));
        }
    }
    Ok(out)
}

/// Output frames of a decoder call over latent frames `[s, e)`: 4n−3 for the first, 4n later.
pub fn decoded_frames(s: usize, e: usize) -> usize {
    if s == 0 {
        4 * (e - s) - 3
    } else {
        4 * (e - s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(t: (usize, usize), hw: (usize, usize)) -> Limits {
        Limits { t, h: hw, w: hw }
    }

    #[test]
    fn fits_whole_untiled() {
        let p = plan_spatial(
            Part::Decoder,
            60,
            100,
            &Limits::unbounded(Part::Decoder),
            &TileRequest::default(),
        )
        .unwrap();
        assert!(!p.is_tiled());
        assert_eq!(
            p.tiles,
            vec![Tile {
                y: (0, 60),
                x: (0, 100)
            }]
        );
    }

    #[test]
    fn node_defaults_on_the_cpu() {
        // 1080p: latent 135 × 240 → tiles of 128 with overlap 16 (stride 112): 2 × 2
        // (the third column, 224..240, is no longer than the overlap).
        let p = plan_spatial(
            Part::Decoder,
            135,
            240,
            &Limits::unbounded(Part::Decoder),
            &TileRequest::default(),
        )
        .unwrap();
        assert_eq!((p.tile, p.overlap, p.ramp), (128, 16, 128));
        assert_eq!(p.tiles.len(), 2 * 2);
    }

    #[test]
    fn engine_profile_caps_the_tile_and_border_tiles_respect_its_minimum() {
        let lim = engine((1, 1), (8, 112));
        let p = plan_spatial(Part::Decoder, 135, 240, &lim, &TileRequest::default()).unwrap();
        assert_eq!((p.tile, p.overlap, p.ramp), (112, 16, 128));
        for t in &p.tiles {
            assert!(t.y.1 - t.y.0 <= 112 && t.x.1 - t.x.0 <= 112 && t.y.1 - t.y.0 >= 8);
        }
        // Overlap 0 leaves a 2-unit border tile; it is moved back to the minimum 8.
        let req = TileRequest {
            tile_px: 64 * 8,
            overlap_px: 0,
            ..Default::default()
        };
        let p = plan_spatial(Part::Decoder, 66, 64, &lim, &req).unwrap();
        assert_eq!(
            p.tiles.iter().map(|t| t.y).collect::<Vec<_>>(),
            vec![(0, 64), (58, 66)]
        );
        // A frame below the minimum is refused with the range.
        let e = plan_spatial(Part::Decoder, 6, 10, &lim, &req)
            .unwrap_err()
            .to_string();
        assert!(e.contains("8..=112"), "{e}");
        // Too big and tiling forbidden: refused with the range; a frame that fits is fine.
        let no = TileRequest {
            allow: false,
            ..Default::default()
        };
        let e = plan_spatial(Part::Decoder, 135, 240, &lim, &no)
            .unwrap_err()
            .to_string();
        assert!(e.contains("8..=112") && e.contains("`no_tiling`"), "{e}");
        assert!(!plan_spatial(Part::Decoder, 100, 112, &lim, &no)
            .unwrap()
            .is_tiled());
    }

    #[test]
    fn memory_cap_shrinks_tiles() {
        let req = TileRequest {
            memory_cap: Some(40),
            ..Default::default()
        };
        let p = plan_spatial(Part::Decoder, 100, 100, &engine((1, 1), (8, 112)), &req).unwrap();
        assert_eq!(p.tile, 40);
        assert_eq!(p.ramp, 16 * 8);
        let req = TileRequest {
            memory_cap: Some(4),
            ..Default::default()
        };
        let e = plan_spatial(Part::Decoder, 100, 100, &engine((1, 1), (8, 112)), &req)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no tile fits"), "{e}");
        // The cap bounds the area: a 90 × 160 frame (14,400) is whole under a cap of 147
        // (147² = 21,609) though 160 > 147, with tiling off too.
        let wide = TileRequest {
            memory_cap: Some(147),
            tile_px: 2048,
            allow: false,
            ..Default::default()
        };
        let p = plan_spatial(
            Part::Decoder,
            90,
            160,
            &Limits::unbounded(Part::Decoder),
            &wide,
        );
        assert_eq!(p.unwrap().tiles.len(), 1);
    }

    #[test]
    fn encoder_tiles_in_latent_units_within_pixel_limits() {
        let lim = engine((4, 5), (64, 1088));
        // 1920×1088 video: latent 136 × 240; pixel limit 1088 → 136 latent; node tile 1024 px.
        let p = plan_spatial(Part::Encoder, 136, 240, &lim, &TileRequest::default()).unwrap();
        assert_eq!((p.tile, p.overlap, p.ramp), (128, 16, 16));
        let e = plan_spatial(Part::Encoder, 4, 100, &lim, &TileRequest::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("32×800") && e.contains("64..=1088"), "{e}");
    }

    #[test]
    fn chunks() {
        let cpu = Limits::unbounded(Part::Decoder);
        assert_eq!(
            plan_chunks(Part::Decoder, 3, true, None, &cpu).unwrap(),
            vec![(0, 1), (1, 2), (2, 3)]
        );
        assert_eq!(
            plan_chunks(Part::Decoder, 5, true, Some(2), &cpu).unwrap(),
            vec![(0, 2), (2, 4), (4, 5)]
        );
        assert_eq!(
            plan_chunks(Part::Decoder, 5, false, None, &cpu).unwrap(),
            vec![(0, 5)]
        );
        assert!(plan_chunks(Part::Decoder, 5, false, Some(1), &cpu).is_err());
        // An engine taking t ≤ 2 one-shot refuses a longer clip, naming the range.
        let e = plan_chunks(Part::Decoder, 5, false, None, &engine((1, 2), (8, 104)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1..=2") && e.contains("streaming"), "{e}");
        // Encoder streaming profile t 4..=5: first call 5 frames, then 4.
        let enc = engine((4, 5), (64, 1088));
        assert_eq!(
            plan_chunks(Part::Encoder, 13, true, None, &enc).unwrap(),
            vec![(0, 5), (5, 9), (9, 13)]
        );
        let e = plan_chunks(Part::Encoder, 13, true, Some(2), &enc)
            .unwrap_err()
            .to_string();
        assert!(e.contains("9 then 8"), "{e}");
        let cpu = Limits::unbounded(Part::Encoder);
        assert_eq!(
            plan_chunks(Part::Encoder, 9, true, Some(3), &cpu).unwrap(),
            vec![(0, 9)]
        );
        assert_eq!(
            plan_chunks(Part::Encoder, 17, true, Some(2), &cpu).unwrap(),
            vec![(0, 9), (9, 17)]
        );
        assert_eq!(decoded_frames(0, 2), 5);
        assert_eq!(decoded_frames(2, 3), 4);
    }
}

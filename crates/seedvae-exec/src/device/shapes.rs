//! What each device function may be given, checked the same way on every device (an error naming
//! the layer and the extents, never an index out of bounds).

use super::Dims;
use crate::{Error, Result};
use seedvae_weights::schema::NORM_GROUPS;

fn bad(msg: String) -> Error {
    Error::Shape(msg)
}

/// `n` host values for an activation of `d`.
pub fn upload(n: usize, d: Dims) -> Result<()> {
    if n != d.count()? {
        return Err(bad(format!("{n} values for an activation {d:?}")));
    }
    Ok(())
}

/// A conv of `cin` input channels and temporal kernel `kt` over `[head ; x]`: the frames it reads.
pub fn conv(d: Dims, head: Option<Dims>, cin: usize, kt: usize) -> Result<usize> {
    if d.c != cin || head.is_some_and(|h| (h.c, h.h, h.w) != (d.c, d.h, d.w)) {
        return Err(bad(format!(
            "conv of {cin} input channels given {d:?} (head {head:?})"
        )));
    }
    let t = d.t + head.map_or(0, |h| h.t);
    if t < kt {
        return Err(bad(format!(
            "a conv of temporal kernel {kt} given {t} frames"
        )));
    }
    Ok(t)
}

/// The last `n` frames of `[head ; x]` (`nh` head frames).
pub fn tail(d: Dims, nh: usize, n: usize) -> Result<()> {
    if n > nh + d.t {
        return Err(bad(format!("{n} frames kept of {}", nh + d.t)));
    }
    Ok(())
}

/// GroupNorm of `c` channels: the channels a group holds.
pub fn norm(d: Dims, c: usize) -> Result<usize> {
    if d.c != c || !d.c.is_multiple_of(NORM_GROUPS) {
        return Err(bad(format!("GroupNorm of {c} channels given {d:?}")));
    }
    Ok(d.c / NORM_GROUPS)
}

pub fn add(a: Dims, b: Dims) -> Result<()> {
    if a != b {
        return Err(bad(format!("adding {b:?} to {a:?}")));
    }
    Ok(())
}

/// The shuffle to `c` channels, `z` sub-frames a frame.
/// The upsampler's shuffle of `d` to `c` channels (`z` = 2 when temporal): its output extent,
/// and whether sub-frame 1 is left out (asked for, and there).
pub fn shuffle(d: Dims, c: usize, z: usize, drop_sub1: bool) -> Result<(Dims, bool)> {
    if d.c != c * 4 * z {
        return Err(bad(format!("shuffle to {c} channels given {d:?}")));
    }
    let drop = drop_sub1 && d.t * z >= 2;
    Ok((
        Dims::new(c, d.t * z - drop as usize, 2 * d.h, 2 * d.w),
        drop,
    ))
}

pub fn attention(d: Dims, c: usize) -> Result<()> {
    if d.c != c {
        return Err(bad(format!("attention of {c} channels given {d:?}")));
    }
    Ok(())
}

pub fn frames(d: Dims, t0: usize, t1: usize) -> Result<()> {
    if t0 >= t1 || t1 > d.t {
        return Err(bad(format!("frames {t0}..{t1} of {d:?}")));
    }
    Ok(())
}

/// An activation `a` into frames `f0..` of a tensor `dst`.
pub fn into_frames(dst: Dims, a: Dims, f0: usize) -> Result<()> {
    if (dst.c, dst.h, dst.w) != (a.c, a.h, a.w) || f0.checked_add(a.t).is_none_or(|e| e > dst.t) {
        return Err(bad(format!("{a:?} into frames {f0}.. of {dst:?}")));
    }
    Ok(())
}

/// Activations joined in time: the joined extent.
pub fn concat(parts: &[Dims]) -> Result<Dims> {
    let first = *parts.first().ok_or_else(|| bad("nothing to join".into()))?;
    if parts
        .iter()
        .any(|a| (a.c, a.h, a.w) != (first.c, first.h, first.w))
    {
        return Err(bad(format!(
            "joining activations of different extents: {parts:?}"
        )));
    }
    Ok(Dims {
        t: parts.iter().map(|a| a.t).sum(),
        ..first
    })
}

/// Rows `[r0, r1)` of `d`.
pub fn rows(d: Dims, r0: usize, r1: usize) -> Result<()> {
    if r0 >= r1 || r1 > d.h {
        return Err(bad(format!("rows {r0}..{r1} of {d:?}")));
    }
    Ok(())
}

/// Rows `[s0, s0 + n)` of `src` into rows `[d0, d0 + n)` of `dst`.
pub fn put_rows(dst: Dims, src: Dims, s0: usize, d0: usize, n: usize) -> Result<()> {
    let fits = |d: Dims, r: usize| r.checked_add(n).is_some_and(|e| e <= d.h);
    if (dst.c, dst.t, dst.w) != (src.c, src.t, src.w) || !fits(src, s0) || !fits(dst, d0) {
        return Err(bad(format!(
            "rows {s0}..+{n} of {src:?} into rows {d0}.. of {dst:?}"
        )));
    }
    Ok(())
}

pub fn channels(d: Dims, n: usize) -> Result<()> {
    if n > d.c {
        return Err(bad(format!("{n} channels of {d:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Extents a layer cannot take are errors naming the layer, on every device alike.
    #[test]
    fn wrong_extents_are_errors_naming_the_layer() {
        let d = Dims::new(64, 3, 8, 10);
        assert_eq!(conv(d, Some(Dims { t: 2, ..d }), 64, 3).unwrap(), 5);
        let e = conv(d, None, 32, 3).unwrap_err().to_string();
        assert!(e.contains("conv of 32 input channels"), "{e}");
        let e = conv(Dims { t: 1, ..d }, None, 64, 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("temporal kernel 3 given 1"), "{e}");
        assert!(conv(d, Some(Dims::new(64, 2, 8, 9)), 64, 3).is_err());
        assert_eq!(norm(d, 64).unwrap(), 2);
        assert!(norm(Dims { c: 48, ..d }, 48).is_err());
        assert!(shuffle(d, 8, 1, false).is_err());
        // d has 3 frames: ×2, sub-frame 1 dropped on a first chunk.
        assert_eq!(
            shuffle(d, 8, 2, true).unwrap(),
            (Dims::new(8, 5, 2 * d.h, 2 * d.w), true)
        );
        assert_eq!(shuffle(d, 8, 2, false).unwrap().0.t, 6);
        assert!(frames(d, 1, 3).is_ok() && frames(d, 2, 2).is_err() && frames(d, 0, 4).is_err());
        assert_eq!(concat(&[d, Dims { t: 2, ..d }]).unwrap().t, 5);
        assert!(concat(&[d, Dims { h: 4, ..d }]).is_err() && concat(&[]).is_err());
        assert!(tail(d, 2, 5).is_ok() && tail(d, 2, 6).is_err());
        assert!(upload(d.count().unwrap() - 1, d).is_err());
        assert!(channels(d, 65).is_err() && add(d, Dims { t: 2, ..d }).is_err());
        assert!(rows(d, 2, 8).is_ok() && rows(d, 3, 3).is_err() && rows(d, 0, 9).is_err());
        let band = Dims { h: 4, ..d };
        assert!(put_rows(d, band, 1, 5, 3).is_ok() && put_rows(d, band, 2, 5, 3).is_err());
        assert!(
            put_rows(d, band, 0, 6, 3).is_err()
                && put_rows(d, Dims { c: 8, ..band }, 0, 0, 1).is_err()
        );
    }
}

//! Latents as the VAE and the DiT see them (spec §7): the VAE takes `[1, 16, T, h, w]`; the
//! SeedVR2 DiT works on `[T, h, w, 16]` scaled by [`DIT_SCALE`].

use crate::error::{invalid, Result};
use seedvae_runner::Tensor;
use std::path::Path;

/// The pipeline's VAE ↔ DiT latent scale (spec §7).
pub const DIT_SCALE: f32 = 0.9152;

/// How a latent file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatentLayout {
    /// `[1, 16, T, h, w]` (or `[1, 16, h, w]`, one frame) in VAE space.
    #[default]
    Vae,
    /// The DiT's `[T, h, w, 16]` (or `[1, T, h, w, 16]`), scaled by [`DIT_SCALE`].
    Dit,
}

/// Read a latent for decoding from `.safetensors` (tensor `latent`, or the only one) or `.npy`,
/// returned in VAE space `[1, 16, T, h, w]`.
pub fn read_latent(path: &Path, layout: LatentLayout) -> Result<Tensor> {
    let mut t = seedvae_runner::read_tensor(path, "latent")?;
    seedvae_runner::media::check_finite("latent", &t)
        .map_err(|e| invalid!("{}: {e}", path.display()))?;
    if layout == LatentLayout::Dit {
        return from_dit(path, &t);
    }
    if t.shape().len() == 4 && t.shape()[0] == 1 {
        let mut s = t.shape().to_vec();
        s.insert(2, 1);
        t = t.reshape(s)?;
    }
    check_vae_latent(&t).map_err(|e| invalid!("{}: {e}", path.display()))?;
    Ok(t)
}

/// Is `t` a VAE-space latent `[1, 16, T, h, w]`? The reason, with a hint for the DiT's layout.
pub(crate) fn check_vae_latent(t: &Tensor) -> Result<()> {
    let s = &t.shape();
    if s.len() != 5 || s[0] != 1 || s[1] != 16 || s[2..].contains(&0) {
        let hint = if s.last() == Some(&16) {
            " (channels last? pass `dit_latent` for the DiT's [T, h, w, 16])"
        } else {
            ""
        };
        return Err(invalid!(
            "latent must be [1, 16, T, h, w] with T, h, w ≥ 1; found {s:?}{hint}"
        ));
    }
    Ok(())
}

/// `[T, h, w, 16]` (or with a leading 1) scaled by [`DIT_SCALE`] → `[1, 16, T, h, w]` in VAE space.
pub fn from_dit(path: &Path, t: &Tensor) -> Result<Tensor> {
    let s: Vec<usize> = match t.shape() {
        [1, rest @ ..] if rest.len() == 4 => rest.to_vec(),
        s => s.to_vec(),
    };
    let Ok([tt, h, w, c]) = <[usize; 4]>::try_from(s.as_slice()) else {
        return Err(invalid!(
            "{}: a DiT latent must be [T, h, w, 16]; found {:?}",
            path.display(),
            t.shape()
        ));
    };
    if c != 16 || tt * h * w == 0 {
        return Err(invalid!(
            "{}: a DiT latent must have 16 channels last ([T, h, w, 16], T, h, w ≥ 1); found {:?}",
            path.display(),
            t.shape()
        ));
    }
    let v = t.to_f32();
    let mut out = vec![0f32; v.len()];
    for ti in 0..tt {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..16 {
                    out[((ch * tt + ti) * h + y) * w + x] =
                        v[((ti * h + y) * w + x) * 16 + ch] / DIT_SCALE;
                }
            }
        }
    }
    Ok(Tensor::f32(vec![1, 16, tt, h, w], out)?)
}

/// `[1, 16, T, h, w]` → the DiT's `[T, h, w, 16]` × [`DIT_SCALE`].
pub fn to_dit(t: &Tensor) -> Result<Tensor> {
    let Ok([1, c, tt, h, w]) = <[usize; 5]>::try_from(t.shape()) else {
        return Err(invalid!(
            "a VAE latent must be [1, C, T, h, w]; found {:?}",
            t.shape()
        ));
    };
    let v = t.to_f32();
    let mut out = vec![0f32; v.len()];
    for ch in 0..c {
        for ti in 0..tt {
            for y in 0..h {
                for x in 0..w {
                    out[((ti * h + y) * w + x) * c + ch] =
                        v[((ch * tt + ti) * h + y) * w + x] * DIT_SCALE;
                }
            }
        }
    }
    Ok(Tensor::f32(vec![tt, h, w, c], out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dit_layout_round_trips() {
        let v: Vec<f32> = (0..16 * 2 * 3 * 4).map(|i| i as f32).collect();
        let t = Tensor::f32(vec![1, 16, 2, 3, 4], v.clone()).unwrap();
        let d = to_dit(&t).unwrap();
        assert_eq!(d.shape(), vec![2, 3, 4, 16]);
        // channel 5, frame 1, y 2, x 3
        assert_eq!(
            d.to_f32()[((3 + 2) * 4 + 3) * 16 + 5],
            v[((5 * 2 + 1) * 3 + 2) * 4 + 3] * DIT_SCALE
        );
        let back = from_dit(Path::new("x"), &d).unwrap();
        let err = back
            .to_f32()
            .iter()
            .zip(&v)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs() / b.abs().max(1.0)));
        assert!(err < 1e-6, "{err}");
    }
}

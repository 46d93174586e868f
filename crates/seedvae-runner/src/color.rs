//! SeedVR2's colour correction after decoding, as the numz ComfyUI node does it
//! (`src/utils/color_fix.py` of ComfyUI-SeedVR2_VideoUpscaler 2.5.x): each decoded frame is
//! corrected against a reference frame of the same size (the input video resized to the output),
//! channel-major `[3, H, W]` in [−1, 1].
//!
//! Here so far: `adain` (per-channel mean and standard deviation transferred) and `wavelet`
//! (the frame's high frequencies over the reference's low ones, five dilated-blur levels);
//! against the numz functions run in PyTorch f32 on 72×104 random and smooth frames: wavelet
//! bit-identical, adain within 1.2e-7 (`matches_the_numz_reference_when_given`). The node's
//! `lab`, `wavelet_adaptive` and `hsv` are issue 13's next step.

/// The numz node's 3×3 blur: [1, 2, 1] ⊗ [1, 2, 1] / 16.
const KERNEL: [[f32; 3]; 3] = [
    [0.0625, 0.125, 0.0625],
    [0.125, 0.25, 0.125],
    [0.0625, 0.125, 0.0625],
];

/// Levels of the wavelet decomposition (the node's default).
const LEVELS: u32 = 5;

/// `wavelet_blur`: the 3×3 kernel dilated by `radius` over each channel, replicate padding; the
/// radius is capped at max(1, min(H, W) / 8) as the node does.
fn wavelet_blur(img: &[f32], c: usize, h: usize, w: usize, radius: usize) -> Vec<f32> {
    let r = radius.min((h.min(w) / 8).max(1)) as isize;
    let at = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    let mut out = vec![0f32; c * h * w];
    for ch in 0..c {
        let plane = &img[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0f32;
                for (i, row) in KERNEL.iter().enumerate() {
                    let yy = at(y as isize + (i as isize - 1) * r, h);
                    for (j, k) in row.iter().enumerate() {
                        let xx = at(x as isize + (j as isize - 1) * r, w);
                        acc += k * plane[yy * w + xx];
                    }
                }
                out[(ch * h + y) * w + x] = acc;
            }
        }
    }
    out
}

/// `wavelet_decomposition`: (high, low) with high = Σ over levels of (image − blur(image, 2^i)),
/// the image replaced by its blur at each level, and low the last blur.
fn wavelet_decomposition(img: &[f32], c: usize, h: usize, w: usize) -> (Vec<f32>, Vec<f32>) {
    let mut high = vec![0f32; img.len()];
    let mut image = img.to_vec();
    for i in 0..LEVELS {
        let low = wavelet_blur(&image, c, h, w, 1 << i);
        for ((hi, &x), &l) in high.iter_mut().zip(&image).zip(&low) {
            *hi = *hi + x - l;
        }
        image = low;
    }
    (high, image)
}

/// `wavelet_reconstruction`: the frame's high frequencies plus the reference's low ones,
/// clamped to [−1, 1]. Both `[c, h, w]`.
pub fn wavelet(frame: &mut [f32], reference: &[f32], c: usize, h: usize, w: usize) {
    let (high, _) = wavelet_decomposition(frame, c, h, w);
    let (_, low) = wavelet_decomposition(reference, c, h, w);
    for ((f, hi), lo) in frame.iter_mut().zip(high).zip(low) {
        *f = (hi + lo).clamp(-1.0, 1.0);
    }
}

/// Per-channel mean and standard deviation as the node's `calc_mean_std`: unbiased variance
/// (n − 1, PyTorch's `var`) plus 1e-5 under the root.
fn mean_std(plane: &[f32]) -> (f64, f64) {
    let n = plane.len() as f64;
    let mean = plane.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = plane
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0).max(1.0);
    (mean, (var + 1e-5).sqrt())
}

/// `adaptive_instance_normalization`: each channel of the frame takes the reference's mean and
/// standard deviation. Both `[c, h, w]`.
pub fn adain(frame: &mut [f32], reference: &[f32], c: usize, h: usize, w: usize) {
    let n = h * w;
    for ch in 0..c {
        let (cm, cs) = mean_std(&frame[ch * n..(ch + 1) * n]);
        let (sm, ss) = mean_std(&reference[ch * n..(ch + 1) * n]);
        for x in &mut frame[ch * n..(ch + 1) * n] {
            *x = (((*x as f64 - cm) / cs) * ss + sm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smooth(c: usize, h: usize, w: usize, phase: f32) -> Vec<f32> {
        (0..c * h * w)
            .map(|i| {
                let (x, y, ch) = ((i % w) as f32, ((i / w) % h) as f32, (i / (w * h)) as f32);
                (0.7 * (0.11 * x + phase + ch).sin() * (0.07 * y - ch).cos()).clamp(-1.0, 1.0)
            })
            .collect()
    }

    #[test]
    fn the_decomposition_adds_back_up_to_the_image() {
        let (c, h, w) = (3, 40, 56);
        let img = smooth(c, h, w, 0.3);
        let (high, low) = wavelet_decomposition(&img, c, h, w);
        let err = img
            .iter()
            .zip(high.iter().zip(&low))
            .fold(0f32, |m, (&x, (&a, &b))| m.max((x - (a + b)).abs()));
        assert!(err < 1e-5, "{err}");
        // A constant image is its own blur (replicate padding): no high frequencies.
        let flat = vec![0.25f32; c * h * w];
        let (high, low) = wavelet_decomposition(&flat, c, h, w);
        assert!(high.iter().all(|v| v.abs() < 1e-6) && low.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn wavelet_keeps_detail_and_takes_the_references_colours() {
        let (c, h, w) = (3, 64, 64);
        let frame = smooth(c, h, w, 0.0);
        // The reference: the same picture with a colour cast (a constant per channel).
        let cast = [0.2f32, -0.1, 0.05];
        let reference: Vec<f32> = frame
            .iter()
            .enumerate()
            .map(|(i, &x)| x + cast[i / (h * w)])
            .collect();
        let mut out = frame.clone();
        wavelet(&mut out, &reference, c, h, w);
        // Inside the clamp the result is the reference (the cast is all low frequency).
        for (i, (&o, &r)) in out.iter().zip(&reference).enumerate() {
            if r.abs() < 0.99 {
                assert!((o - r).abs() < 1e-4, "{i}: {o} vs {r}");
            }
        }
    }

    #[test]
    fn adain_moves_each_channel_to_the_references_statistics() {
        let (c, h, w) = (3, 20, 30);
        let mut frame = smooth(c, h, w, 0.5);
        let reference: Vec<f32> = smooth(c, h, w, 1.7).iter().map(|x| 0.5 * x + 0.1).collect();
        adain(&mut frame, &reference, c, h, w);
        let n = h * w;
        for ch in 0..c {
            let (m1, s1) = mean_std(&frame[ch * n..(ch + 1) * n]);
            let (m2, s2) = mean_std(&reference[ch * n..(ch + 1) * n]);
            assert!((m1 - m2).abs() < 1e-5 && (s1 - s2).abs() < 1e-4, "{ch}");
        }
    }
    /// Against the numz functions themselves: `SEEDVAE_COLOR_REF=DIR` holding, per case,
    /// `CASE_{content,style,wavelet,adain}.npy` written by running `wavelet_reconstruction` and
    /// `adaptive_instance_normalization` of `color_fix.py` (PyTorch, f32). Until the test venv
    /// has PyTorch (issue 13) it runs only when asked.
    #[test]
    fn matches_the_numz_reference_when_given() {
        let Some(dir) = std::env::var_os("SEEDVAE_COLOR_REF").map(std::path::PathBuf::from) else {
            eprintln!("not run: set SEEDVAE_COLOR_REF to a folder of reference outputs");
            return;
        };
        let read = |f: String| crate::media::read_tensor(&dir.join(f), "x").unwrap();
        for case in ["random", "smooth"] {
            let content = read(format!("{case}_content.npy"));
            let style = read(format!("{case}_style.npy"));
            let (c, h, w) = (content.shape[0], content.shape[1], content.shape[2]);
            for (method, f) in [
                (
                    "wavelet",
                    wavelet as fn(&mut [f32], &[f32], usize, usize, usize),
                ),
                ("adain", adain),
            ] {
                let mut got = content.to_f32();
                f(&mut got, &style.to_f32(), c, h, w);
                let want = read(format!("{case}_{method}.npy")).to_f32();
                let err = got
                    .iter()
                    .zip(&want)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                eprintln!("{case} {method}: max |error| vs numz {err:.2e}");
                assert!(err <= 1e-4, "{case} {method}: {err}");
            }
        }
    }
}

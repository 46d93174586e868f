//! Colour correction in the run: [`ColorSink`] corrects decoded chunks as they stream to a file,
//! [`correct_video`] a video in memory; both read the reference clip frame by frame (resized to
//! the output, its last frame repeated). The arithmetic — the numz node's methods — is the
//! `seedvae-color` crate's.

pub use seedvae_color::Method;
use seedvae_color::{correct, resize_bilinear, swap_major};

/// A [`FrameSink`](crate::media::FrameSink) that colour-corrects the frames pushed to it against
/// the reference clip's frames of the same index (resized to the output when their size
/// differs), `batch` frames at a time (the node's generation batch: `lab`, `hsv` and
/// `wavelet_adaptive` match histograms over it), then passes them on.
pub struct ColorSink {
    inner: Box<dyn crate::media::FrameSink>,
    reference: Box<dyn crate::media::FrameSource>,
    method: Method,
    batch: usize,
    hw: (usize, usize),
    /// Frames waiting for a full batch, `[k, 3, h, w]`.
    pending: Vec<f32>,
    done: usize,
}

impl ColorSink {
    pub fn new(
        inner: Box<dyn crate::media::FrameSink>,
        reference: Box<dyn crate::media::FrameSource>,
        method: Method,
        batch: usize,
        hw: (usize, usize),
    ) -> ColorSink {
        ColorSink {
            inner,
            reference,
            method,
            batch: batch.max(1),
            hw,
            pending: Vec::new(),
            done: 0,
        }
    }

    /// Correct and pass on the pending frames.
    fn flush(&mut self) -> Result<(), crate::Error> {
        let (h, w) = self.hw;
        let t = self.pending.len() / (3 * h * w);
        if t == 0 {
            return Ok(());
        }
        let reference = reference_frames(self.reference.as_mut(), self.done, t, h, w)?;
        correct(self.method, &mut self.pending, &reference, t, h, w);
        self.inner
            .push(&swap_major(&self.pending, t, 3, h * w), t)?;
        self.done += t;
        self.pending.clear();
        Ok(())
    }
}

/// Frames `start..start + t` of `reference` as `[t, 3, h, w]`, resized to `h × w` when their
/// size differs, the last frame repeated past its end.
fn reference_frames(
    reference: &mut dyn crate::media::FrameSource,
    start: usize,
    t: usize,
    h: usize,
    w: usize,
) -> Result<Vec<f32>, crate::Error> {
    let (rh, rw) = reference.size();
    let mut out = Vec::with_capacity(t * 3 * h * w);
    for k in 0..t {
        let f = reference.read((start + k).min(reference.len().saturating_sub(1)))?;
        if (rh, rw) == (h, w) {
            out.extend_from_slice(&f);
        } else {
            out.extend(resize_bilinear(&f, 3, rh, rw, h, w));
        }
    }
    Ok(out)
}

/// Colour-correct a decoded video `[3, F, h, w]` (channel-major, in [−1, 1]) in place against
/// `reference`, `batch` frames at a time — what [`ColorSink`] does to a stream, for a video
/// already in memory.
pub fn correct_video(
    video: &mut [f32],
    (f, h, w): (usize, usize, usize),
    reference: &mut dyn crate::media::FrameSource,
    method: Method,
    batch: usize,
) -> Result<(), crate::Error> {
    if method == Method::None || f == 0 {
        return Ok(());
    }
    let mut frames = swap_major(video, 3, f, h * w);
    let n = 3 * h * w;
    for start in (0..f).step_by(batch.max(1)) {
        let t = batch.max(1).min(f - start);
        let r = reference_frames(reference, start, t, h, w)?;
        correct(method, &mut frames[start * n..(start + t) * n], &r, t, h, w);
    }
    video.copy_from_slice(&swap_major(&frames, f, 3, h * w));
    Ok(())
}

impl crate::media::FrameSink for ColorSink {
    fn push(&mut self, v: &[f32], f: usize) -> Result<(), crate::Error> {
        let (h, w) = self.hw;
        let plane = h * w;
        for k in 0..f {
            for c in 0..3 {
                let src = (c * f + k) * plane;
                self.pending.extend_from_slice(&v[src..src + plane]);
            }
            if self.pending.len() == self.batch * 3 * plane {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<usize, crate::Error> {
        self.flush()?;
        self.inner.finish()
    }

    fn spill_dir(&self) -> Option<std::path::PathBuf> {
        self.inner.spill_dir()
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

    /// What a sink was pushed: each push's channel-major frames and their count.
    type Pushed = std::sync::Arc<std::sync::Mutex<Vec<(Vec<f32>, usize)>>>;

    /// Collects what is pushed.
    struct Collect(Pushed);
    impl crate::media::FrameSink for Collect {
        fn push(&mut self, v: &[f32], f: usize) -> Result<(), crate::Error> {
            self.0.lock().unwrap().push((v.to_vec(), f));
            Ok(())
        }
        fn finish(self: Box<Self>) -> Result<usize, crate::Error> {
            Ok(0)
        }
    }

    #[test]
    fn a_stream_and_a_video_in_memory_are_corrected_alike() {
        use crate::media::{FrameSink, TensorFrames};
        let (f, h, w) = (7, 16, 24);
        let video = smooth(3 * f, h, w, 0.4); // [3, F, h, w]
        let reference = crate::Tensor::f32(vec![1, 3, 4, 8, 12], smooth(12, 8, 12, 1.1)).unwrap();
        for method in [Method::Lab, Method::Wavelet, Method::Hsv] {
            let mut whole = video.clone();
            let mut src = TensorFrames(reference.clone());
            correct_video(&mut whole, (f, h, w), &mut src, method, 3).unwrap();
            assert_ne!(whole, video, "{method:?} changed nothing");

            let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let mut sink: Box<dyn FrameSink> = Box::new(ColorSink::new(
                Box::new(Collect(got.clone())),
                Box::new(TensorFrames(reference.clone())),
                method,
                3,
                (h, w),
            ));
            // Pushed in chunks of 2 frames, as a decoder would.
            for start in (0..f).step_by(2) {
                let t = 2.min(f - start);
                let chunk: Vec<f32> = (0..3)
                    .flat_map(|c| &video[(c * f + start) * h * w..(c * f + start + t) * h * w])
                    .copied()
                    .collect();
                sink.push(&chunk, t).unwrap();
            }
            sink.finish().unwrap();
            let mut streamed = vec![0f32; video.len()];
            let mut at = 0;
            for (v, t) in got.lock().unwrap().iter() {
                for c in 0..3 {
                    let dst = (c * f + at) * h * w;
                    streamed[dst..dst + t * h * w]
                        .copy_from_slice(&v[c * t * h * w..(c + 1) * t * h * w]);
                }
                at += t;
            }
            assert_eq!(at, f);
            assert_eq!(streamed, whole, "{method:?}");
        }
    }
}

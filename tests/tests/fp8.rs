//! FP8 quality without a GPU: the Q/DQ graph runs on ONNX Runtime's CPU provider and is compared
//! with the fp32 graph (PSNR over the [-1, 1] pixel range, so peak-to-peak 2).

use seedvae_onnx::quantize::DEFAULT_KEEP;
use seedvae_onnx::{ExportOptions, Precision};
use seedvae_runner::prepare::calibrate::export_fp8;
use seedvae_runner::{Backend, OrtBackend, Tensor};
use seedvae_tests::*;
use seedvae_weights::{Part, WeightFile};

/// Regression floor for FP8 on the tiny random fixture (see the test).
const FP8_TINY_MIN_DB: f64 = 29.0;

fn psnr(a: &[f32], reference: &[f32]) -> f64 {
    let mse = a
        .iter()
        .zip(reference)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (4.0 / mse).log10()
}

fn latent(case: &str) -> Tensor {
    let (s, v) = fixture_tensor(&format!("vae_tiny/latent_{case}.safetensors"), "latent");
    Tensor::f32(s, v.iter().map(|&x| x as f32).collect()).unwrap()
}

#[test]
fn fp8_decoder_quality_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let w = WeightFile::open(fixture("vae_tiny/weights.safetensors")).unwrap();
    let keep: Vec<String> = DEFAULT_KEEP.iter().map(|s| s.to_string()).collect();
    let mut b32 = export_and_open(
        &fixture("vae_tiny/weights.safetensors"),
        dir.path(),
        ExportOptions {
            part: Part::Decoder,
            precision: Precision::Fp32,
            streaming: false,
        },
    );
    let mut b16 = export_and_open(
        &fixture("vae_tiny/weights.safetensors"),
        dir.path(),
        ExportOptions {
            part: Part::Decoder,
            precision: Precision::Fp16,
            streaming: false,
        },
    );
    for (act, name) in [
        (Precision::Fp32, "fp8_on_fp32.onnx"),
        (Precision::Fp16, "fp8_on_fp16.onnx"),
    ] {
        let p = dir.path().join(name);
        let opts = ExportOptions {
            part: Part::Decoder,
            precision: act,
            streaming: false,
        };
        let (_, stats) =
            export_fp8(&w, opts, &[latent("t2_8x8"), latent("t1_8x8")], &keep, &p).unwrap();
        let convs = w
            .tensors()
            .iter()
            .filter(|t| t.name.starts_with("decoder.") && t.shape.len() == 5)
            .count();
        let kept = w
            .tensors()
            .iter()
            .filter(|t| t.shape.len() == 5 && DEFAULT_KEEP.iter().any(|k| t.name.starts_with(k)))
            .count();
        assert_eq!(
            (stats.quantized_convs, stats.kept_high_precision),
            (convs - kept, kept),
            "{stats:?}"
        );
        // The attention projections live in the mid block, which stays FP16 by default.
        assert_eq!(stats.quantized_matmuls, 0, "{stats:?}");
        let mut b8 = OrtBackend::open(&p, 2).unwrap();
        for case in ["t3_8x8", "t2_6x10"] {
            let z = latent(case);
            let y32 = b32
                .run(&[("latent", &z)])
                .unwrap()
                .remove("video")
                .unwrap()
                .to_f32();
            let y16 = b16
                .run(&[("latent", &z)])
                .unwrap()
                .remove("video")
                .unwrap()
                .to_f32();
            let y8 = b8
                .run(&[("latent", &z)])
                .unwrap()
                .remove("video")
                .unwrap()
                .to_f32();
            let (p16, p8) = (psnr(&y16, &y32), psnr(&y8, &y32));
            eprintln!(
                "{case}: fp16 {p16:.1} dB, fp8 (Q/DQ on {}) {p8:.1} dB vs fp32; {stats:?}",
                act.name()
            );
            assert!(p16 >= 50.0, "{case}: fp16 {p16}");
            // Measured 29.9-30.8 dB here. This reduced model has one channel per GroupNorm group
            // and random weights, both of which amplify FP8's 3-bit-mantissa error; issue 4 sets
            // its 30 dB goal on the full-size model (benches/). This bound guards regressions.
            assert!(p8 >= FP8_TINY_MIN_DB, "{case}: fp8 {p8}");
        }
    }
}

//! TensorRT-RTX (1.7, from the setup venv) parses every exported graph and builds it ahead of
//! time for sm_120 on this machine, which has no GPU.

use seedvae_engine::{build_engine, load_libraries, BuildRequest, Range3, ShapeRange, Target};
use seedvae_tests::*;
use seedvae_weights::{Part, WeightFile};

/// The builds of this binary run one at a time: TensorRT-RTX holds concurrent builds back, and
/// the cancel test times a build.
static BUILDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    BUILDS.lock().unwrap_or_else(|p| p.into_inner())
}

fn r(min: usize, opt: usize, max: usize) -> Range3 {
    Range3 { min, opt, max }
}

#[test]
fn every_form_parses_and_builds_for_sm120_without_a_gpu() {
    let _builds = one_at_a_time();
    load_libraries(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = WeightFile::open(fixture("vae_tiny/weights.safetensors")).unwrap();
    for (p, c) in export_all_forms(&w, dir.path()) {
        let shapes = match c.part {
            Part::Decoder => ShapeRange {
                t: r(1, 2, 3),
                h: r(4, 8, 8),
                w: r(4, 8, 8),
            },
            Part::Encoder => ShapeRange {
                t: r(1, 5, 9),
                h: r(16, 32, 32),
                w: r(16, 32, 32),
            },
        };
        let req = BuildRequest {
            targets: vec![Target::Sm120],
            shapes,
            workspace_bytes: 1 << 30,
            detailed: false,
            weightless: false,
            cancel: None,
        };
        let t = std::time::Instant::now();
        let what = p.file_name().unwrap().to_string_lossy().into_owned();
        let out = build_engine(&std::fs::read(&p).unwrap(), &c, &req)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        eprintln!(
            "{what}: engine {} bytes in {:.1}s",
            out.engine.len(),
            t.elapsed().as_secs_f64()
        );
        assert!(
            out.engine.len() > 100_000,
            "{what}: suspiciously small engine"
        );
    }
}

/// A calibrated FP8 (Q/DQ on fp16) graph of the tiny decoder, written to `dir`.
fn fp8_decoder(
    w: &WeightFile,
    dir: &std::path::Path,
    streaming: bool,
) -> (
    std::path::PathBuf,
    seedvae_onnx::Contract,
    seedvae_onnx::quantize::QdqStats,
) {
    use seedvae_onnx::{ExportOptions, Precision};
    let (s, v) = fixture_tensor("vae_tiny/latent_t3_8x8.safetensors", "latent");
    let z = seedvae_runner::Tensor::f32(s, v.iter().map(|&x| x as f32).collect()).unwrap();
    let keep: Vec<String> = seedvae_onnx::quantize::DEFAULT_KEEP
        .iter()
        .map(|s| s.to_string())
        .collect();
    let p = dir.join(format!("fp8_{streaming}.onnx"));
    let opts = ExportOptions {
        part: Part::Decoder,
        precision: Precision::Fp16,
        streaming,
    };
    let (c, stats) =
        seedvae_runner::prepare::calibrate::export_fp8(w, opts, &[z], &keep, &p).unwrap();
    (p, c, stats)
}

#[test]
fn fp8_decoder_builds_for_sm120_with_fp8_convolutions_and_is_refused_for_sm86() {
    let _builds = one_at_a_time();
    load_libraries(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = WeightFile::open(fixture("vae_tiny/weights.safetensors")).unwrap();
    let shapes = ShapeRange {
        t: r(1, 2, 3),
        h: r(4, 8, 8),
        w: r(4, 8, 8),
    };
    for streaming in [false, true] {
        let (p, c, stats) = fp8_decoder(&w, dir.path(), streaming);
        let bytes = std::fs::read(&p).unwrap();
        let req = BuildRequest {
            targets: vec![Target::Sm120],
            shapes,
            workspace_bytes: 1 << 30,
            detailed: true,
            weightless: false,
            cancel: None,
        };
        let out = build_engine(&bytes, &c, &req).unwrap();
        let layers = seedvae_engine::summarize_layers(&out.log)
            .expect("detailed build log has a layer dump");
        eprintln!(
            "fp8 streaming={streaming}: {layers:?}, pass: {stats:?}, engine {} bytes",
            out.engine.len()
        );
        assert_eq!(
            layers.fp8_convolutions, stats.quantized_convs,
            "every quantized conv runs in FP8"
        );
        assert_eq!(
            layers.convolutions,
            stats.quantized_convs + stats.kept_high_precision
        );
        assert_eq!(layers.fp8_matmuls, stats.quantized_matmuls);
        let e = build_engine(
            &bytes,
            &c,
            &BuildRequest {
                targets: vec![Target::Sm120, Target::Sm86],
                ..req
            },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("sm_86") && e.contains("fp16"), "{e}");
    }
    // The fp16 graph has no FP8 layers.
    let p = dir.path().join("fp16.onnx");
    let opts = seedvae_onnx::ExportOptions {
        part: Part::Decoder,
        precision: seedvae_onnx::Precision::Fp16,
        streaming: false,
    };
    let (c16, _) = seedvae_onnx::convert(&w, opts, &p, |_, _| {}).unwrap();
    let req = BuildRequest {
        targets: vec![Target::Sm120],
        shapes,
        workspace_bytes: 1 << 30,
        detailed: true,
        weightless: false,
        cancel: None,
    };
    let out = build_engine(&std::fs::read(&p).unwrap(), &c16, &req).unwrap();
    let layers = seedvae_engine::summarize_layers(&out.log).unwrap();
    assert_eq!(
        (layers.fp8_convolutions, layers.fp8_matmuls),
        (0, 0),
        "{layers:?}"
    );
    assert!(layers.convolutions >= 37, "{layers:?}");
}

/// Issue 22, finding 8: a cancel reaches inside TensorRT-RTX's build (its progress monitor
/// stops it between steps), so the build returns `Cancelled` in a fraction of a build's time.
#[test]
fn a_cancel_stops_the_build_inside_tensorrt_rtx() {
    let _builds = one_at_a_time();
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    load_libraries(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let w = WeightFile::open(fixture("vae_tiny/weights.safetensors")).unwrap();
    let (p, c) = export_all_forms(&w, dir.path())
        .into_iter()
        .find(|(_, c)| c.part == Part::Decoder && !c.streaming)
        .unwrap();
    let onnx = std::fs::read(&p).unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let req = BuildRequest {
        targets: vec![Target::Sm120],
        shapes: ShapeRange {
            t: r(1, 2, 3),
            h: r(4, 8, 8),
            w: r(4, 8, 8),
        },
        workspace_bytes: 1 << 30,
        detailed: false,
        weightless: false,
        cancel: Some(flag.clone()),
    };
    let t = std::time::Instant::now();
    build_engine(&onnx, &c, &req).unwrap();
    let whole = t.elapsed();
    // Cancelled a tenth of the way in.
    let setter = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(whole / 10);
            flag.store(true, Ordering::SeqCst);
        })
    };
    let t = std::time::Instant::now();
    let e = build_engine(&onnx, &c, &req).err().expect("cancelled");
    let took = t.elapsed();
    setter.join().unwrap();
    // Cancelled before it starts: stopped at TensorRT-RTX's first step.
    let t = std::time::Instant::now();
    let e0 = build_engine(&onnx, &c, &req).err().expect("cancelled");
    let took0 = t.elapsed();
    eprintln!("whole {whole:?}, cancelled at a tenth {took:?}, cancelled before {took0:?}");
    assert!(matches!(e0, seedvae_engine::Error::Cancelled), "{e0}");
    assert!(
        took0 < whole / 2,
        "cancelled before it started, it took {took0:?}"
    );
    assert!(matches!(e, seedvae_engine::Error::Cancelled), "{e}");
    // TensorRT-RTX reports progress between its phases, and one phase can take a good part of
    // this small build (a CI run saw 3.6 s of a 5.6 s build): stopped well before the end.
    assert!(
        took < whole * 4 / 5,
        "the cancelled build took {took:?}, a whole one {whole:?}"
    );
}

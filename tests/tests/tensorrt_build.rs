//! TensorRT-RTX (1.7, from the setup venv) parses every exported graph and builds it ahead of
//! time for sm_120 on this machine, which has no GPU.

use seedvae_engine::{build_engine, load_libraries, BuildRequest, Range3, ShapeRange, Target};
use seedvae_tests::*;
use seedvae_weights::{Part, WeightFile};

fn r(min: usize, opt: usize, max: usize) -> Range3 {
    Range3 { min, opt, max }
}

#[test]
fn every_form_parses_and_builds_for_sm120_without_a_gpu() {
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

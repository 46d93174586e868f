//! `seedvae selftest` on this GPU-less machine: the CPU passes against the fp64 goldens, the GPU
//! backends are skipped with their reasons, and a damaged fixture fails with a bug-report hint.

use super::common::*;
use seedvae_tests::fixture;

#[test]
fn selftest_passes_on_the_cpu_and_says_why_gpu_backends_are_skipped() {
    let _machine = sharing();
    let dir = temp();
    let fixtures = fixture("vae_tiny");
    let (code, out, err) = seedvae(&[
        "selftest",
        "--fixtures",
        s(&fixtures),
        "--json",
        "--cache",
        s(&dir.path().join("c")),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    // --json prints the report on standard output, as every command's --json does.
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let checks = r["checks"].as_array().unwrap();
    let cpu: Vec<_> = checks
        .iter()
        .filter(|c| c["backend"] == "cpu fp32")
        .collect();
    // 4 latents in one call, 4 chunked runs (t3: chunks of 1 and 2; the two t2: of 1), 1 encode.
    assert_eq!(cpu.len(), 9, "{cpu:?}");
    for c in &cpu {
        assert_eq!(c["status"], "pass", "{c}");
        assert!(c["value"].as_f64().unwrap() <= 1e-5, "{c}");
    }
    for gpu in [
        "cuda fp32",
        "cuda fp16",
        "ort-cuda fp32",
        "ort-cuda fp16",
        "tensorrt",
    ] {
        let c = checks.iter().find(|c| c["backend"] == gpu).unwrap();
        assert_eq!(c["status"], "skipped", "{c}");
        assert!(!c["note"].as_str().unwrap().is_empty(), "{c}");
    }
}

#[test]
fn a_wrong_golden_fails_the_selftest_with_a_bug_report_hint() {
    let _machine = sharing();
    let dir = temp();
    let fixtures = dir.path().join("vae_tiny");
    std::fs::create_dir(&fixtures).unwrap();
    for e in std::fs::read_dir(fixture("vae_tiny")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, fixtures.join(p.file_name().unwrap())).unwrap();
    }
    // An input of the right shape that does not belong to its golden must fail on the value.
    let other = random_latent(1, 8, 8, 3);
    let wrong = fixtures.join("latent_t1_8x8.safetensors");
    std::fs::remove_file(&wrong).unwrap();
    write_latent(&wrong, &other);
    let (code, out, err) = seedvae(&[
        "selftest",
        "--fixtures",
        s(&fixtures),
        "--cache",
        s(&dir.path().join("c")),
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("decode t1_8x8 one call") && out.contains("FAIL"),
        "{out}"
    );
    assert!(err.contains("bug report"), "{err}");
}

/// Opt-in GPU test: with `SEEDVAE_GPU_TESTS=1` on a machine with an NVIDIA GPU (r580+ driver) and
/// `scripts/setup.sh --gpu`, the CUDA provider must load and pass every selftest row (fp32 and
/// fp16). Without the variable it only says that it did not run (CI has no GPU).
#[test]
fn gpu_selftest_passes_when_asked() {
    if std::env::var_os("SEEDVAE_GPU_TESTS").is_none_or(|v| v != "1") {
        eprintln!("not run: set SEEDVAE_GPU_TESTS=1 on a machine with an NVIDIA GPU");
        return;
    }
    let dir = temp();
    let (code, out, err) = seedvae(&[
        "selftest",
        "--fixtures",
        s(&fixture("vae_tiny")),
        "--json",
        "--cache",
        s(&dir.path().join("c")),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cuda: Vec<_> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["backend"].as_str().unwrap().starts_with("cuda"))
        .collect();
    assert_eq!(cuda.len(), 18, "{out}");
    assert!(cuda.iter().all(|c| c["status"] == "pass"), "{out}");
}

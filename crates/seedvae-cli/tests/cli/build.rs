//! `seedvae build` end to end on this GPU-less machine (TensorRT-RTX from the setup venv): FP8 and
//! FP16 decoders for sm_120 with the default profile, the cache (hits, corruption, concurrent
//! builds), `inspect ENGINE`, and the refusals.

use super::common::{s, seedvae_joined as seedvae, tiny};
use seedvae_tests::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `seedvae build ... --json` → the manifest.
fn build_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push("--json");
    all.push("--quiet");
    let (code, out, err) = run_cli(env!("CARGO_BIN_EXE_seedvae"), &all);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn engine_dirs(cache: &Path) -> Vec<PathBuf> {
    sorted_entries(&cache.join("engines"))
}

#[test]
fn fp8_and_fp16_decoders_build_for_sm120_and_a_second_build_is_a_cache_hit() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let w = tiny();
    for precision in ["fp8", "fp16"] {
        for streaming in [false, true] {
            let mut args = vec![w.as_str(), "--cache", s(&cache), "--precision", precision];
            if streaming {
                args.push("--streaming");
            }
            let m = build_json(&args);
            let what = format!("{precision} streaming={streaming}");
            assert_eq!(
                m["key_parts"]["targets"],
                serde_json::json!(["sm_120"]),
                "{what}"
            );
            assert_eq!(m["key_parts"]["precision"], precision, "{what}");
            assert_eq!(m["key_parts"]["streaming"], streaming, "{what}");
            assert_eq!(m["profile"], "rtx5070ti", "{what}");
            let layers = &m["layers"];
            let fp8 = layers["fp8_convolutions"].as_u64().unwrap();
            let convs = layers["convolutions"].as_u64().unwrap();
            eprintln!(
                "{what}: {} bytes, {fp8}/{convs} FP8 convs, {} FP8 matmuls, {:.1}s, activations {} bytes",
                m["engine"]["bytes"], layers["fp8_matmuls"], m["build_seconds"].as_f64().unwrap(),
                m["device_memory"]["activation_bytes"]
            );
            if precision == "fp8" {
                // Every conv outside the FP16 blocks (15 of 37, with the attention projections
                // of the mid block) runs in FP8.
                assert_eq!((convs, fp8), (37, 22), "{what}");
                assert_eq!(layers["fp8_matmuls"], 0, "{what}");
            } else {
                assert_eq!(fp8, 0, "{what}");
                assert_eq!(layers["fp8_matmuls"], 0, "{what}");
            }
            // The I/O contract and profile ranges are in the manifest.
            let inputs = m["input_ranges"].as_array().unwrap();
            assert_eq!(inputs[0]["name"], "latent");
            let max = if streaming {
                [1, 16, 1, 80, 80]
            } else {
                [1, 16, 2, 104, 104]
            };
            assert_eq!(inputs[0]["max"], serde_json::json!(max), "{what}");
            assert_eq!(inputs.len(), if streaming { 2 + 33 } else { 1 });
            assert_eq!(m["contract"]["outputs"][0]["name"], "video");
            assert!(m["device_memory"]["activation_bytes"].as_u64().unwrap() > 0);

            // Again: a cache hit, under a second, same key (timed with no other test running).
            let quiet = super::common::alone();
            let t = Instant::now();
            let (code, text) = seedvae(&{
                let mut a = vec!["build"];
                a.extend_from_slice(&args);
                a
            });
            let secs = t.elapsed().as_secs_f64();
            drop(quiet);
            assert_eq!(code, 0, "{text}");
            assert!(text.contains("cache hit"), "{what}: {text}");
            assert!(text.contains(m["key"].as_str().unwrap()), "{text}");
            assert!(secs < 1.0, "{what}: cached build took {secs:.2}s");
        }
    }
    assert_eq!(engine_dirs(&cache).len(), 4);
}

#[test]
fn a_corrupt_or_truncated_cached_engine_is_rebuilt() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let w = tiny();
    let args = ["build", &w, "--cache", s(&cache), "--precision", "fp16"];
    let (code, text) = seedvae(&args);
    assert_eq!(code, 0, "{text}");
    let entry = engine_dirs(&cache).pop().unwrap();
    let engine = entry.join("engine.trt");
    let mut b = std::fs::read(&engine).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x40;
    std::fs::write(&engine, &b).unwrap();
    // inspect says what is wrong and fails.
    let (code, text) = seedvae(&["inspect", s(&entry)]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("BAD") && text.contains("blake3"), "{text}");
    let (code, text) = seedvae(&args);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("rebuilt") && text.contains("corrupt"),
        "{text}"
    );
    std::fs::write(&engine, &std::fs::read(&engine).unwrap()[..n / 3]).unwrap();
    let (code, text) = seedvae(&args);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("rebuilt") && text.contains("truncated"),
        "{text}"
    );
    let (code, text) = seedvae(&args);
    assert!(code == 0 && text.contains("cache hit"), "{text}");
    let (code, text) = seedvae(&["inspect", s(&entry)]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("verified"), "{text}");
}

#[test]
fn concurrent_builds_of_one_key_build_once() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let w = tiny();
    let exe = env!("CARGO_BIN_EXE_seedvae");
    let kids: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(exe)
                .args(["build", &w, "--cache", s(&cache), "--precision", "fp16"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<String> = kids
        .into_iter()
        .map(|k| {
            let o = k.wait_with_output().unwrap();
            let text = output_text(&o);
            assert!(o.status.success(), "{text}");
            text
        })
        .collect();
    let built = outs.iter().filter(|t| t.contains("built in")).count();
    let hits = outs.iter().filter(|t| t.contains("cache hit")).count();
    assert_eq!((built, hits), (1, 2), "{outs:#?}");
    assert_eq!(engine_dirs(&cache).len(), 1);
}

#[test]
fn output_copy_inspect_and_onnx_models() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let w = tiny();
    // An fp16 one-shot graph from `convert`, then built from the ONNX.
    let onnx = dir.path().join("dec16.onnx");
    let (code, text) = seedvae(&["convert", &w, "-o", s(&onnx), "--precision", "fp16"]);
    assert_eq!(code, 0, "{text}");
    let out = dir.path().join("dec16.trt");
    let (code, text) = seedvae(&["build", s(&onnx), "--cache", s(&cache), "-o", s(&out)]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fp16") && text.contains("wrote"), "{text}");
    // The graph's precision wins over the profile's (fp8), with a warning.
    assert!(text.contains("profile rtx5070ti says fp8"), "{text}");
    let (code, text) = seedvae(&["inspect", s(&out)]);
    assert_eq!(code, 0, "{text}");
    for want in [
        "decoder fp16 one-shot",
        "sm_120",
        "TensorRT-RTX 1.7",
        "verified",
        "input:      latent",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    // The same graph from the weights gives the same key (the ONNX bytes are the same).
    let (code, text) = seedvae(&["build", &w, "--cache", s(&cache), "--precision", "fp16"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("cache hit"), "{text}");
    // -o refuses to overwrite without --force; nothing else is touched.
    let (code, text) = seedvae(&["build", s(&onnx), "--cache", s(&cache), "-o", s(&out)]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("--force"), "{text}");
    // Asking an fp16 graph for fp8 is refused with what to do instead.
    let (code, text) = seedvae(&[
        "build",
        s(&onnx),
        "--cache",
        s(&cache),
        "--precision",
        "fp8",
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("fp16 graph") && text.contains("weights"),
        "{text}"
    );
    let (code, text) = seedvae(&["build", s(&onnx), "--cache", s(&cache), "--streaming"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("one-shot"), "{text}");
}

#[test]
fn refusals_name_the_problem_and_leave_nothing() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let w = tiny();
    let out = dir.path().join("x.trt");
    let run = |extra: &[&str]| {
        let mut a = vec!["build", w.as_str(), "--cache", s(&cache), "-o", s(&out)];
        a.extend_from_slice(extra);
        let (code, text) = seedvae(&a);
        assert_eq!(code, 1, "{extra:?}: {text}");
        assert!(!out.exists(), "{extra:?} left {}", out.display());
        text
    };
    // FP8 for an architecture without FP8 tensor cores.
    let t = run(&["--target", "sm_86"]);
    assert!(t.contains("sm_86") && t.contains("fp16"), "{t}");
    let t = run(&["--target", "sm_99"]);
    assert!(t.contains("unknown target 'sm_99'"), "{t}");
    // TensorRT-RTX libraries missing.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let t = run(&["--tensorrt-dir", s(&empty), "--precision", "fp16"]);
    assert!(
        t.contains("no TensorRT-RTX runtime") && t.contains(s(&empty)),
        "{t}"
    );
    // Profiles: a missing one, min > max, a shape the graph does not allow.
    let t = run(&["--profile", "rtx9090"]);
    assert!(
        t.contains("no profile 'rtx9090'") && t.contains("rtx5070ti"),
        "{t}"
    );
    let base = std::fs::read_to_string(repo_root().join("profiles/rtx5070ti.yaml")).unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        base.replacen(
            "h: {min: 8, opt: 104, max: 104}",
            "h: {min: 200, opt: 104, max: 104}",
            1,
        ),
    )
    .unwrap();
    let t = run(&["--profile", s(&bad)]);
    assert!(
        t.contains("bad.yaml") && t.contains("decoder.one_shot.h: min 200"),
        "{t}"
    );
    std::fs::write(
        &bad,
        base.replacen(
            "h: {min: 64, opt: 896, max: 896}",
            "h: {min: 4, opt: 896, max: 896}",
            1,
        ),
    )
    .unwrap();
    let t = run(&["--profile", s(&bad)]);
    assert!(
        t.contains("encoder.one_shot.h") && t.contains("below 8"),
        "{t}"
    );
    // An ONNX file seedvae did not write.
    let foreign = dir.path().join("foreign.onnx");
    let py = venv_python();
    let st = std::process::Command::new(&py)
        .args([
            "-c",
            &format!(
                "import onnx, onnx.helper as h\n\
             g = h.make_graph([h.make_node('Relu', ['x'], ['y'])], 'g', \
             [h.make_tensor_value_info('x', 1, [1])], [h.make_tensor_value_info('y', 1, [1])])\n\
             onnx.save(h.make_model(g), r'{}')",
                foreign.display()
            ),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let (code, t) = seedvae(&["build", s(&foreign), "--cache", s(&cache)]);
    assert_eq!(code, 1, "{t}");
    assert!(
        t.contains("not a seedvae model") && t.contains("seedvae convert"),
        "{t}"
    );
    std::fs::write(&foreign, b"not protobuf at all \xff\xff\xff").unwrap();
    let (code, t) = seedvae(&["build", s(&foreign), "--cache", s(&cache)]);
    assert_eq!(code, 1, "{t}");
    assert!(t.contains("foreign.onnx"), "{t}");
    // Nothing was cached by any of these.
    assert!(engine_dirs(&cache).is_empty());
}

#[test]
fn verify_precision_reports_fp16_and_fp8_against_fp32() {
    let _machine = super::common::sharing();
    let w = tiny();
    let (code, out, err) = run_cli(
        env!("CARGO_BIN_EXE_seedvae"),
        &["verify-precision", &w, "--json", "--quiet"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let db = |p: &str| {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["precision"] == p)
            .unwrap()["psnr_db"]
            .as_f64()
            .unwrap()
    };
    eprintln!(
        "tiny decoder: fp16 {:.1} dB, fp8 {:.1} dB",
        db("fp16"),
        db("fp8")
    );
    // fp16 measured 70 dB; FP8 28 dB on this reduced random model (see tests/tests/fp8.rs).
    assert!(db("fp16") >= 50.0 && db("fp8") >= 25.0, "{out}");
    assert!(db("fp16") > db("fp8") + 20.0, "{out}");
    assert_eq!(r["fp8"]["quantized_convs"], 22);
    // A latent with the wrong channel count is refused with the shape found.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.npy");
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    let mut h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 8, 1, 2, 2), }".to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(&[0u8; 4 * 32]);
    std::fs::write(&bad, b).unwrap();
    let (code, text) = seedvae(&["verify-precision", &w, s(&bad)]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("bad.npy")
            && text.contains("[1, 16, T, H, W]")
            && text.contains("[1, 8, 1, 2, 2]"),
        "{text}"
    );
}

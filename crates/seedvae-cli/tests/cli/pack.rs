//! `seedvae pack / verify / install / engines`: the round trip, and every rejection leaving the
//! target cache untouched.

use super::common::{s, seedvae_joined as seedvae, tiny_engine as engine};
use seedvae_engine::cache::Manifest;
use seedvae_tests::*;
use std::path::{Path, PathBuf};

/// Nothing installed in `cache`: no engine entries and no staging leftovers.
fn untouched(cache: &Path) {
    let e = cache.join("engines");
    if e.exists() {
        assert!(sorted_entries(&e).is_empty(), "{:?}", sorted_entries(&e));
    }
}

/// A tar written entry by entry with raw names (so that '..' can be written at all).
fn raw_tar(path: &Path, entries: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        let raw = &mut h.as_gnu_mut().unwrap().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.finish().unwrap();
}

/// The entries of a tar as (name, bytes).
fn read_tar(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let n = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            (n, v)
        })
        .collect()
}

#[test]
fn pack_verify_install_round_trip() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let key = engine(&a);
    let p = dir.path().join("e.seedvae");
    let (code, out) = seedvae(&["pack", &key, "-o", s(&p), "--cache", s(&a)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&key) && out.contains("compute capability 12.0"),
        "{out}"
    );
    // The listing: every fact the issue asks for, and sha256 of each file.
    let entries = read_tar(&p);
    assert_eq!(entries[0].0, "seedvae-pack.json");
    let pm: serde_json::Value = serde_json::from_slice(&entries[0].1).unwrap();
    let e = &pm["engines"][0];
    for field in [
        "key",
        "tensorrt_rtx",
        "targets",
        "compute_capabilities",
        "profile",
        "precision",
        "source_weights",
    ] {
        assert!(!e[field].is_null(), "{field} missing: {e}");
    }
    assert_eq!(e["files"].as_array().unwrap().len(), 2);
    assert_eq!(e["files"][0]["sha256"].as_str().unwrap().len(), 64);
    let (code, out) = seedvae(&["verify", s(&p)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("verified") && out.contains("GPU not checked"),
        "{out}"
    );
    let (code, out) = seedvae(&["install", s(&p), "--cache", s(&b)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{key}: added")), "{out}");
    let (code, out) = seedvae(&["install", s(&p), "--cache", s(&b)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{key}: present")), "{out}");
    // Installed = identical to the source cache entry, and verified by `engines list`.
    for f in ["engine.trt", "manifest.json"] {
        assert_eq!(
            std::fs::read(a.join("engines").join(&key).join(f)).unwrap(),
            std::fs::read(b.join("engines").join(&key).join(f)).unwrap()
        );
    }
    let (code, out) = seedvae(&["engines", "list", "--cache", s(&b)]);
    assert_eq!(code, 0);
    assert!(out.contains(&key) && !out.contains("BAD"), "{out}");
    assert_eq!(
        sorted_entries(&b.join("engines")).len(),
        1,
        "no staging left"
    );
    // A damaged installed copy is replaced by install, and gc removes an unusable entry.
    let eng = b.join("engines").join(&key).join("engine.trt");
    std::fs::write(&eng, b"garbage").unwrap();
    let (_, out) = seedvae(&["engines", "list", "--cache", s(&b)]);
    assert!(out.contains("BAD"), "{out}");
    let (code, out) = seedvae(&["install", s(&p), "--cache", s(&b)]);
    assert!(code == 0 && out.contains("replaced"), "{out}");
    std::fs::write(&eng, b"garbage").unwrap();
    let (code, out) = seedvae(&["engines", "gc", "--cache", s(&b)]);
    assert!(code == 0 && out.contains("removed unusable"), "{out}");
    untouched(&b);
    // rm: unknown keys refused, known removed.
    let (code, out) = seedvae(&[
        "engines",
        "rm",
        "0123456789abcdef0123456789abcdef",
        "--cache",
        s(&a),
    ]);
    assert!(code != 0 && out.contains("no engine"), "{out}");
    let (code, _) = seedvae(&["engines", "rm", &key, "--cache", s(&a)]);
    assert_eq!(code, 0);
    untouched(&a);
}

/// `verify` fails and `install` installs nothing, both naming `want`.
fn refused(p: &Path, cache: &Path, want: &str) {
    let (code, out) = seedvae(&["verify", s(p)]);
    assert_ne!(code, 0, "verify accepted it: {out}");
    assert!(out.contains(want), "verify: want '{want}': {out}");
    let (code, out) = seedvae(&["install", s(p), "--cache", s(cache)]);
    assert_ne!(code, 0, "install accepted it: {out}");
    assert!(out.contains(want), "install: want '{want}': {out}");
    untouched(cache);
}

#[test]
fn damaged_foreign_and_malicious_packs_are_refused_and_nothing_is_installed() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let key = engine(&a);
    let good = dir.path().join("good.seedvae");
    assert_eq!(
        seedvae(&["pack", &key, "-o", s(&good), "--cache", s(&a)]).0,
        0
    );
    let bytes = std::fs::read(&good).unwrap();
    let entries = read_tar(&good);
    let path = |n: &str| -> PathBuf { dir.path().join(n) };

    // One byte flipped inside the engine.
    let mut flipped = bytes.clone();
    let at = bytes.len() / 2;
    flipped[at] ^= 0x01;
    std::fs::write(path("flip.seedvae"), &flipped).unwrap();
    refused(&path("flip.seedvae"), &b, "(corrupt)");

    // Truncated in the middle of the engine.
    std::fs::write(path("cut.seedvae"), &bytes[..bytes.len() / 2]).unwrap();
    refused(&path("cut.seedvae"), &b, "truncated");

    // Not a pack at all.
    std::fs::write(path("junk.seedvae"), b"hello").unwrap();
    refused(&path("junk.seedvae"), &b, "junk.seedvae");

    // A consistent pack for another TensorRT-RTX version (its manifest and key say 1.6).
    let other = path("other");
    std::fs::create_dir(&other).unwrap();
    let mut m: Manifest = serde_json::from_slice(
        &std::fs::read(a.join("engines").join(&key).join("manifest.json")).unwrap(),
    )
    .unwrap();
    m.key_parts.tensorrt_rtx = "1.6.0.20".into();
    m.key = m.key_parts.key();
    std::fs::write(
        other.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    let src = seedvae_engine::pack::Source {
        manifest: m,
        manifest_file: other.join("manifest.json"),
        engine_file: a.join("engines").join(&key).join("engine.trt"),
    };
    seedvae_engine::pack::pack(&[src], &path("v16.seedvae")).unwrap();
    refused(&path("v16.seedvae"), &b, "built with TensorRT-RTX 1.6.0.20");

    // An entry whose path escapes the cache directory.
    let (pm, man, eng) = (&entries[0].1, &entries[1].1, &entries[2].1);
    let esc = format!("../{key}/engine.trt");
    raw_tar(
        &path("escape.seedvae"),
        &[("seedvae-pack.json", pm), (&entries[1].0, man), (&esc, eng)],
    );
    refused(&path("escape.seedvae"), &b, "escapes the cache directory");
    assert!(!dir.path().join(&key).exists() && !b.join(&key).exists());

    // A duplicate entry; an entry the listing does not have; the listing not first.
    raw_tar(
        &path("dup.seedvae"),
        &[
            ("seedvae-pack.json", pm),
            (&entries[1].0, man),
            (&entries[1].0, man),
            (&entries[2].0, eng),
        ],
    );
    refused(&path("dup.seedvae"), &b, "appears twice");
    raw_tar(
        &path("extra.seedvae"),
        &[
            ("seedvae-pack.json", pm),
            (&entries[1].0, man),
            (&entries[2].0, eng),
            ("notes.txt", b"hi"),
        ],
    );
    refused(&path("extra.seedvae"), &b, "'notes.txt' is not listed");
    raw_tar(
        &path("order.seedvae"),
        &[(&entries[1].0, man), ("seedvae-pack.json", pm)],
    );
    refused(
        &path("order.seedvae"),
        &b,
        "first entry must be seedvae-pack.json",
    );

    // A listing that lies about the engine's targets (the engine's own manifest says sm_120).
    let mut lie: serde_json::Value = serde_json::from_slice(pm).unwrap();
    lie["engines"][0]["targets"] = serde_json::json!(["sm_89"]);
    let lie = serde_json::to_vec(&lie).unwrap();
    raw_tar(
        &path("lie.seedvae"),
        &[
            ("seedvae-pack.json", &lie),
            (&entries[1].0, man),
            (&entries[2].0, eng),
        ],
    );
    refused(
        &path("lie.seedvae"),
        &b,
        "disagrees with the engine's manifest",
    );
    // ...and the message names the field that differs, with both values.
    refused(
        &path("lie.seedvae"),
        &b,
        r#"targets: listing ["sm_89"], manifest ["sm_120"]"#,
    );
    // A listing over the size limit is named as such (it is the first entry).
    let big = vec![b' '; (16 << 20) + 1];
    raw_tar(&path("big.seedvae"), &[("seedvae-pack.json", &big)]);
    refused(&path("big.seedvae"), &b, "over the 16777216-byte limit");
    // The same engine listed twice.
    let mut twice: serde_json::Value = serde_json::from_slice(pm).unwrap();
    let e0 = twice["engines"][0].clone();
    twice["engines"].as_array_mut().unwrap().push(e0);
    let twice = serde_json::to_vec(&twice).unwrap();
    raw_tar(
        &path("twice.seedvae"),
        &[
            ("seedvae-pack.json", &twice),
            (&entries[1].0, man),
            (&entries[2].0, eng),
        ],
    );
    refused(&path("twice.seedvae"), &b, "listed twice");
}

#[test]
fn weightless_builds_need_a_gpu_and_say_so() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c");
    let w = fixture("vae_tiny/weights.safetensors");
    let (code, out) = seedvae(&[
        "build",
        s(&w),
        "--precision",
        "fp16",
        "--weightless",
        "--cache",
        s(&cache),
        "--quiet",
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("weightless engines need a CUDA GPU at build time"),
        "{out}"
    );
    untouched(&cache);
}

#[test]
fn a_failed_engine_build_shows_its_cause_chain_under_v() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("c");
    let w = fixture("vae_tiny/weights.safetensors");
    let args = |v: bool| {
        let mut a = vec!["build", s(&w), "--precision", "fp16", "--weightless"];
        a.extend(["--cache", s(&cache), "--quiet"]);
        if v {
            a.push("-v");
        }
        seedvae(&a)
    };
    // Without -v: one line, our reason then TensorRT-RTX's own error.
    let (code, plain) = args(false);
    assert_ne!(code, 0, "{plain}");
    let line = plain.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        line.contains("need a CUDA GPU") && line.contains("build a regular engine here: "),
        "{plain}"
    );
    // With -v: the same error, then each cause on its own line.
    let (code, verbose) = args(true);
    assert_ne!(code, 0, "{verbose}");
    let cause = verbose
        .split("Caused by:")
        .nth(1)
        .unwrap_or_else(|| panic!("no cause chain:\n{verbose}"));
    let trt_error = line.rsplit("build a regular engine here: ").next().unwrap();
    assert!(cause.contains(trt_error.trim()), "{verbose}");
    untouched(&cache);
}

#[test]
fn demo_runs_the_whole_pipeline_and_says_which_backend_decoded() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let (code, out) = seedvae(&["demo", "--dir", s(dir.path())]);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{out}");
    eprintln!("demo: {secs:.1}s (debug build)");
    for want in [
        "[1/9] synth",
        "[4/9] build",
        "[5/9] build",
        "22 of 37 convolutions in FP8",
        "[6/9] pack",
        "2 engines verified",
        "[8/9] install",
        "Added",
        "[9/9] decode",
        "decoded 9 frames of 128×128",
    ] {
        assert!(out.contains(want), "missing '{want}':\n{out}");
    }
    // Which backend decoded: on this GPU-less machine, the CPU, with the reason.
    assert!(
        out.contains("on onnxruntime-cpu") && out.contains("no NVIDIA driver"),
        "{out}"
    );
    assert_eq!(super::common::frames(&dir.path().join("frames")).len(), 9);
    assert_eq!(
        sorted_entries(&dir.path().join("cache").join("engines")).len(),
        2
    );
    assert!(secs < 300.0, "demo took {secs:.0}s");
}

/// Build `precision` streaming decoder to `dir/NAME.trt` and return its manifest.
fn engine_file(dir: &Path, name: &str, precision: &str) -> (PathBuf, Manifest) {
    let w = fixture("vae_tiny/weights.safetensors");
    let out = dir.join(format!("{name}.trt"));
    let (code, o) = seedvae(&[
        "build",
        s(&w),
        "--precision",
        precision,
        "--streaming",
        "-o",
        s(&out),
        "--cache",
        s(&dir.join("cache")),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{o}");
    let side = dir.join(format!("{name}.trt.manifest.json"));
    (
        out,
        serde_json::from_slice(&std::fs::read(side).unwrap()).unwrap(),
    )
}

#[test]
fn weightless_refit_is_checked_on_the_cpu_up_to_the_refit_call() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = fixture("vae_tiny/weights.safetensors");
    let weights = seedvae_weights::WeightFile::open(&w).unwrap();
    // Everything a refit needs comes from the user's weights: the graph the engine was built
    // from is reproduced byte for byte (FP8 calibration included) and its model weights taken.
    for precision in ["fp16", "fp8"] {
        let (_, m) = engine_file(d, precision, precision);
        seedvae_runner::prepare::refit::check_weights(&m, &weights, &w).unwrap();
        let inits = seedvae_runner::prepare::refit::regenerate(&m, &weights)
            .unwrap_or_else(|e| panic!("{precision}: {e}"));
        assert!(inits.iter().any(|i| i.name == "decoder.conv_out.weight"
            || i.name.starts_with("decoder.conv_out.weight")));
        let types: std::collections::BTreeSet<i32> = inits.iter().map(|i| i.data_type).collect();
        eprintln!(
            "{precision}: {} weights to refit, ONNX types {types:?}",
            inits.len()
        );
        assert!(
            types
                .iter()
                .all(|&t| seedvae_runner::prepare::refit::trt_data_type(t).is_some()),
            "{types:?}"
        );
        if precision == "fp8" {
            assert!(types.contains(&17), "FP8 weights are refitted as FP8");
        }
    }
    // A weightless engine (its manifest says so; the build itself needs a GPU, see above).
    let (eng, mut m) = engine_file(d, "wl", "fp16");
    m.key_parts.weightless = true;
    m.key = m.key_parts.key();
    std::fs::write(
        d.join("wl.trt.manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    let latent = fixture("vae_tiny/latent_t2_8x8.safetensors");
    let out = d.join("frames");
    let c2 = d.join("c2");
    let run = |extra: &[&str]| {
        let mut a = vec![
            "decode",
            "-m",
            s(&eng),
            s(&latent),
            "-o",
            s(&out),
            "--cache",
            s(&c2),
        ];
        a.extend_from_slice(extra);
        seedvae(&a)
    };
    let (code, o) = run(&["--backend", "tensorrt"]);
    assert!(
        code != 0 && o.contains("weightless engine: pass your weights file with --weights"),
        "{o}"
    );
    let other = d.join("other.safetensors");
    assert_eq!(
        seedvae(&["synth", "-o", s(&other), "--width", "tiny", "--seed", "9"]).0,
        0
    );
    let (code, o) = run(&["--backend", "tensorrt", "--weights", s(&other)]);
    assert!(code != 0 && o.contains("are not the ones engine"), "{o}");
    // The right weights pass the checks; here the GPU is what is missing.
    let (code, o) = run(&["--backend", "tensorrt", "--weights", s(&w)]);
    assert!(code != 0 && o.contains("no NVIDIA driver"), "{o}");
    assert!(!out.exists());
    // auto: falls back to the CPU with the same (checked) weights.
    let (code, o) = run(&["--weights", s(&w)]);
    assert_eq!(code, 0, "{o}");
    assert!(
        o.contains("TensorRT-RTX not used") && o.contains("onnxruntime-cpu"),
        "{o}"
    );
    assert_eq!(super::common::frames(&out).len(), 5);
}

//! Hostile and careless inputs (issue 14, items 2, 6, 7, 9): each refused with the reason,
//! non-zero, no panic or abort, nothing written.

use super::common::{cpu, s, seedvae_joined, tiny};
use seedvae_tests::*;
use std::path::Path;

fn latent(path: &Path, poison: Option<usize>) {
    let mut r = seedvae::weights::Rng::new(11);
    let mut v = vec![0f32; 16 * 2 * 4 * 4];
    r.fill_normal(&mut v);
    if let Some(i) = poison {
        v[i] = f32::NAN;
    }
    let t = seedvae::Tensor::f32(vec![1, 16, 2, 4, 4], v).unwrap();
    seedvae::write_tensor(path, "latent", &t, seedvae::DType::F32, true).unwrap();
}

/// Run, expect refusal with every needle in the message, no panic, `out` not written.
fn refused(args: &[&str], out: &Path, needles: &[&str]) {
    let (code, text) = seedvae_joined(args);
    assert_eq!(code, 1, "{args:?}: {text}");
    assert!(!text.contains("panicked"), "{text}");
    for n in needles {
        assert!(text.contains(n), "{args:?}: no {n:?} in: {text}");
    }
    assert!(!out.exists(), "{args:?} wrote {}", out.display());
}

#[test]
fn nan_and_inf_inputs_are_refused_with_where_they_are() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let (cache, out) = (t.path().join("c"), t.path().join("o.safetensors"));
    let nan = t.path().join("nan.safetensors");
    // [0, 3, 1, 2, 3] in a [1, 16, 2, 4, 4] latent.
    latent(&nan, Some(((3 * 2 + 1) * 4 + 2) * 4 + 3));
    let w = tiny();
    let dec = cpu("decode", &w, s(&nan), s(&out), s(&cache), &[]);
    refused(
        &dec,
        &out,
        &["nan.safetensors", "1 NaN/Inf", "[0, 3, 1, 2, 3]"],
    );
    refused(
        &["verify-precision", &tiny(), s(&nan)],
        &out,
        &["nan.safetensors", "NaN/Inf"],
    );
    refused(
        &[
            "build",
            &tiny(),
            "--calibrate",
            s(&nan),
            "--cache",
            s(&cache),
            "-o",
            s(&out),
        ],
        &out,
        &["nan.safetensors", "NaN/Inf"],
    );
    // A video with one infinite value, to encode.
    let mut v = vec![0.25f32; 3 * 5 * 8 * 8];
    v[77] = f32::INFINITY;
    let video = t.path().join("inf.npy");
    seedvae::write_tensor(
        &video,
        "video",
        &seedvae::Tensor::f32(vec![1, 3, 5, 8, 8], v).unwrap(),
        seedvae::DType::F32,
        true,
    )
    .unwrap();
    refused(
        &cpu("encode", &tiny(), s(&video), s(&out), s(&cache), &[]),
        &out,
        &["inf.npy", "NaN/Inf"],
    );
}

#[test]
fn a_png_claiming_a_huge_size_is_refused_before_allocating() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let frames = t.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    // A valid 8×8 PNG whose IHDR then claims 100000×100000 (CRC fixed up).
    let mut png =
        seedvae_runner::media::png::png_bytes([&[0.0; 64][..], &[0.0; 64], &[0.0; 64]], 8, 8)
            .unwrap();
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(frames.join("f0.png"), &png).unwrap();
    let out = t.path().join("l.safetensors");
    refused(
        &cpu(
            "encode",
            &tiny(),
            s(&frames),
            s(&out),
            s(&t.path().join("c")),
            &[],
        ),
        &out,
        &["f0.png", "100000×100000"],
    );
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn loose_flags_are_refused_with_the_reason() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let (cache, out) = (t.path().join("c"), t.path().join("o.safetensors"));
    let l = t.path().join("l.safetensors");
    latent(&l, None);
    let dec = |extra: &[&str], needles: &[&str]| {
        let mut a = vec![
            "decode",
            "-m",
            &*Box::leak(tiny().into_boxed_str()),
            s(&l),
            "-o",
            s(&out),
        ];
        a.extend(["--backend", "cpu", "--cache", s(&cache)]);
        a.extend_from_slice(extra);
        refused(&a, &out, needles);
    };
    for size in ["0", "1", "7", "100"] {
        dec(&["--tile-size", size], &["--tile-size", size]);
    }
    dec(
        &["--tile-size", "64", "--tile-overlap", "64"],
        &["--tile-overlap 64"],
    );
    dec(&["--tile-overlap", "12"], &["--tile-overlap 12"]);
    dec(&["--chunk", "0"], &["--chunk 0"]);
    dec(
        &["--threads", "100000"],
        &["--threads 100000", "logical cores"],
    );
    for b in [
        "--vram-budget=NaN",
        "--vram-budget=inf",
        "--vram-budget=-1",
        "--vram-budget=0",
    ] {
        dec(&[b], &["--vram-budget"]);
    }
}

#[test]
fn files_that_are_not_regular_or_repeat_a_name_are_refused() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let (cache, out) = (t.path().join("c"), t.path().join("o.safetensors"));
    #[cfg(unix)]
    {
        let z = t.path().join("z.npy");
        std::os::unix::fs::symlink("/dev/zero", &z).unwrap();
        refused(
            &cpu("decode", &tiny(), s(&z), s(&out), s(&cache), &[]),
            &out,
            &["z.npy", "not a regular file"],
        );
    }
    // A safetensors header naming one tensor twice.
    let h = r#"{"latent":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"latent":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(&[0; 4]);
    let dup = t.path().join("dup.safetensors");
    std::fs::write(&dup, b).unwrap();
    refused(
        &cpu("decode", &tiny(), s(&dup), s(&out), s(&cache), &[]),
        &out,
        &["dup.safetensors", "'latent' appears twice"],
    );
    // An npy header with two shapes: numpy takes the last, and so does seedvae.
    let mut text = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 16, 1, 1, 1), 'shape': (1, 16, 1, 2, 2), }".to_string();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(text.len() as u16).to_le_bytes());
    npy.extend_from_slice(text.as_bytes());
    npy.extend(std::iter::repeat_n(0u8, 4 * 16 * 4));
    let p = t.path().join("two_shapes.npy");
    std::fs::write(&p, npy).unwrap();
    let t2 = seedvae::read_tensor(&p, "latent").unwrap();
    assert_eq!(t2.shape(), vec![1, 16, 1, 2, 2]);
}

#[test]
fn a_repeated_target_is_one_target() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("c");
    let key = |targets: &str| {
        let (code, text) = seedvae_joined(&[
            "build",
            &tiny(),
            "--precision",
            "fp16",
            "--cache",
            s(&cache),
            "--target",
            targets,
            "--json",
            "--quiet",
        ]);
        assert_eq!(code, 0, "{text}");
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        m["key"].as_str().unwrap().to_string()
    };
    super::common::tiny_engine(&cache);
    assert_eq!(key("sm_120,sm_120"), key("sm_120"));
    assert_eq!(sorted_entries(&cache.join("engines")).len(), 1);
}

#[test]
fn cache_entries_from_other_weights_are_not_used() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("c");
    let other = t.path().join("other.safetensors");
    let (code, text) =
        seedvae_joined(&["synth", "-o", s(&other), "--width", "tiny", "--seed", "7"]);
    assert_eq!(code, 0, "{text}");
    let l = t.path().join("l.safetensors");
    latent(&l, None);
    let decode = |w: &str, out: &Path| {
        let (code, text) = seedvae_joined(&[
            "decode",
            "-m",
            w,
            s(&l),
            "-o",
            s(out),
            "--backend",
            "cpu",
            "--cache",
            s(&cache),
            "--quiet",
        ]);
        assert_eq!(code, 0, "{text}");
        std::fs::read(out).unwrap()
    };
    // CPU graphs: the fixture's graph swapped for the other model's, then truncated.
    let good = decode(&tiny(), &t.path().join("a.safetensors"));
    let graphs = || -> Vec<std::path::PathBuf> {
        sorted_entries(&cache.join("graphs"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
            .collect()
    };
    let mine = graphs()[0].clone();
    decode(s(&other), &t.path().join("b.safetensors"));
    let theirs = graphs().into_iter().find(|p| *p != mine).unwrap();
    std::fs::copy(&theirs, &mine).unwrap();
    assert_eq!(decode(&tiny(), &t.path().join("c.safetensors")), good);
    let len = std::fs::metadata(&mine).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&mine)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_eq!(decode(&tiny(), &t.path().join("d.safetensors")), good);

    // Recipes: the fixture's recipe pointed at the other weights' graph.
    let build = |w: &str| -> serde_json::Value {
        let (code, out, err) = super::common::seedvae(&[
            "build",
            w,
            "--precision",
            "fp16",
            "--cache",
            s(&cache),
            "--json",
            "--quiet",
        ]);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str(&out).unwrap()
    };
    let source = |m: &serde_json::Value| {
        m["source"]["seedvae.source_blake3"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before: std::collections::BTreeSet<_> =
        sorted_entries(&cache.join("recipes")).into_iter().collect();
    let fixture_source = source(&build(&tiny()));
    let after: Vec<_> = sorted_entries(&cache.join("recipes"))
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    let fixture_recipe = after[0].clone();
    let before: std::collections::BTreeSet<_> =
        sorted_entries(&cache.join("recipes")).into_iter().collect();
    build(s(&other));
    let other_recipe = sorted_entries(&cache.join("recipes"))
        .into_iter()
        .find(|p| !before.contains(p))
        .unwrap();
    std::fs::copy(&other_recipe, &fixture_recipe).unwrap();
    assert_eq!(source(&build(&tiny())), fixture_source);
}

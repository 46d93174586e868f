//! The output discipline (issue 14, item 1): `--force` replaces only seedvae's own outputs —
//! never the working directory, never through a symbolic link, never a directory seedvae did
//! not write, never an input — and an engine and its manifest appear together or not at all.

use super::common::{s, tiny};
use seedvae_tests::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `dir` (not following links) with its bytes; links as their target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(p, t.to_string_lossy().as_bytes().to_vec());
            } else if m.is_dir() {
                out.insert(p.clone(), b"<dir>".to_vec());
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A user's folder: a few files and a subfolder, and a small latent to decode.
fn workspace(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("notes.txt"), b"my notes").unwrap();
    std::fs::write(dir.join("sub/photo.png"), b"not really a png").unwrap();
    let latent = dir.join("latent.npy");
    let mut r = seedvae::weights::Rng::new(3);
    let mut v = vec![0f32; 16 * 2 * 2];
    r.fill_normal(&mut v);
    let t = seedvae::Tensor::f32(vec![1, 16, 1, 2, 2], v).unwrap();
    seedvae::write_tensor(&latent, "latent", &t, seedvae::DType::F32, true).unwrap();
    latent
}

/// `seedvae decode` on the CPU from `cwd`: (exit code, output).
fn decode_in(cwd: &Path, latent: &str, out: &str, cache: &Path, force: bool) -> (i32, String) {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_seedvae"));
    c.current_dir(cwd).args([
        "decode",
        "-m",
        &tiny(),
        latent,
        "-o",
        out,
        "--backend",
        "cpu",
        "--cache",
        s(cache),
        "--quiet",
    ]);
    if force {
        c.arg("--force");
    }
    let o = c.output().unwrap();
    (o.status.code().unwrap_or(-1), output_text(&o))
}

#[test]
fn force_never_replaces_the_working_directory_or_its_parents() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let latent = workspace(&work);
    let cache = t.path().join("cache");
    let before = snapshot(t.path());
    for out in [".", "./", "..", s(&work), s(t.path())] {
        let (code, text) = decode_in(&work, s(&latent), out, &cache, true);
        assert_ne!(code, 0, "-o {out}: {text}");
        assert!(!text.contains("panicked"), "{text}");
        assert_eq!(
            snapshot(t.path())
                .keys()
                .filter(|p| !p.starts_with(&cache))
                .count(),
            before.keys().count(),
            "-o {out} changed the tree: {text}"
        );
    }
    let after: BTreeMap<_, _> = snapshot(t.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&cache))
        .collect();
    assert_eq!(after, before);
}

#[cfg(unix)]
#[test]
fn force_never_writes_through_a_symbolic_link() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let latent = workspace(&t.path().join("in"));
    let target = t.path().join("target");
    workspace(&target);
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let file_link = t.path().join("file_link.npy");
    std::os::unix::fs::symlink(target.join("notes.txt"), &file_link).unwrap();
    let cache = t.path().join("cache");
    let before = snapshot(t.path());
    for out in [
        format!("{}/", link.display()),
        link.display().to_string(),
        file_link.display().to_string(),
    ] {
        let (code, text) = decode_in(t.path(), s(&latent), &out, &cache, true);
        assert_ne!(code, 0, "-o {out}: {text}");
        assert!(text.contains("symbolic link"), "-o {out}: {text}");
    }
    let after: BTreeMap<_, _> = snapshot(t.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&cache))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn force_replaces_only_directories_seedvae_wrote() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let latent = workspace(&t.path().join("in"));
    let cache = t.path().join("cache");
    // Someone else's folder: refused even with --force, untouched.
    let theirs = t.path().join("theirs");
    workspace(&theirs);
    let before = snapshot(&theirs);
    let (code, text) = decode_in(t.path(), s(&latent), s(&theirs), &cache, true);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("did not write"), "{text}");
    assert_eq!(snapshot(&theirs), before);
    // seedvae's own frames: written, refused without --force, replaced with it.
    let frames = t.path().join("frames");
    let (code, text) = decode_in(t.path(), s(&latent), s(&frames), &cache, false);
    assert_eq!(code, 0, "{text}");
    assert!(frames.join(".seedvae-output").is_file());
    let (code, text) = decode_in(t.path(), s(&latent), s(&frames), &cache, false);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("--force"), "{text}");
    let (code, text) = decode_in(t.path(), s(&latent), s(&frames), &cache, true);
    assert_eq!(code, 0, "{text}");
    let leftovers: Vec<_> = sorted_entries(t.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("seedvae-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let latent = workspace(t.path());
    let cache = t.path().join("cache");
    let before = std::fs::read(&latent).unwrap();
    let (code, text) = decode_in(t.path(), s(&latent), s(&latent), &cache, true);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("also an input"), "{text}");
    // The same file through another name.
    let (code, text) = decode_in(t.path(), s(&latent), "./latent.npy", &cache, true);
    assert_ne!(code, 0, "{text}");
    assert_eq!(std::fs::read(&latent).unwrap(), before);
    // The model itself as the output.
    let w = t.path().join("w.safetensors");
    std::fs::copy(tiny(), &w).unwrap();
    let (code, text) = super::common::seedvae_joined(&[
        "encode",
        "-m",
        s(&w),
        s(&latent),
        "-o",
        s(&w),
        "--force",
        "--backend",
        "cpu",
        "--cache",
        s(&cache),
    ]);
    assert_ne!(code, 0, "{text}");
    assert_eq!(std::fs::read(&w).unwrap(), std::fs::read(tiny()).unwrap());
}

#[test]
fn an_engine_and_its_manifest_appear_together_or_not_at_all() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    super::common::tiny_engine(&cache);
    let out = t.path().join("vae.trt");
    let side = t.path().join("vae.trt.manifest.json");
    let build = |force: bool| {
        let mut a = vec![
            "build",
            "--precision",
            "fp16",
            "--cache",
            s(&cache),
            "-o",
            s(&out),
            "--quiet",
        ];
        let w = tiny();
        a.insert(1, Box::leak(w.into_boxed_str()));
        if force {
            a.push("--force");
        }
        super::common::seedvae_joined(&a)
    };
    // A manifest already there: not overwritten without --force, and no engine written.
    std::fs::write(&side, b"mine").unwrap();
    let (code, text) = build(false);
    assert_ne!(code, 0, "{text}");
    assert!(!out.exists(), "{text}");
    assert_eq!(std::fs::read(&side).unwrap(), b"mine");
    // The manifest path blocked by a directory: refused before anything is written.
    std::fs::remove_file(&side).unwrap();
    std::fs::create_dir(&side).unwrap();
    let (code, text) = build(true);
    assert_ne!(code, 0, "{text}");
    assert!(!out.exists(), "{text}");
    std::fs::remove_dir(&side).unwrap();
    // Free: both appear.
    let (code, text) = build(false);
    assert_eq!(code, 0, "{text}");
    assert!(out.is_file() && side.is_file());
}

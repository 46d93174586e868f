//! Issue 22 ("nothing lost, nothing hung, round 2"): each finding of the second adversarial
//! report as a user would meet it, with its input built here. Each test failed on e67c1ce.

use super::common::{cpu, random_latent, s, seedvae_joined, tiny, write_latent};
use std::path::Path;
use std::process::Command;

/// `seedvae ARGS…` with `env` set (None: removed) in `dir`: (exit code, stdout + stderr).
fn seedvae_env(dir: &Path, env: &[(&str, Option<&str>)], args: &[&str]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seedvae"));
    c.current_dir(dir).args(args);
    for (k, v) in env {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let o = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

/// Every file and folder under `dir` with its bytes (folders as `<dir>`).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                out.push((rel, b"<dir>".to_vec()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A project folder that happens to have the names a cache has.
fn project(dir: &Path) {
    std::fs::create_dir_all(dir.join("graphs")).unwrap();
    std::fs::write(dir.join("graphs/plot.py"), b"my plot").unwrap();
    std::fs::create_dir_all(dir.join("engines/v8")).unwrap();
    std::fs::write(dir.join("engines/v8/notes.md"), b"my engine notes").unwrap();
    std::fs::write(dir.join("README.md"), b"my project").unwrap();
}

/// Finding 1: an empty SEEDVAE_CACHE is an error, not the working directory; a cache root
/// that is a user's folder is refused by every command, and gc never deletes what seedvae did
/// not write.
#[test]
fn an_empty_cache_variable_or_a_project_folder_is_never_the_cache() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let proj = t.path().join("proj");
    project(&proj);
    let before = snapshot(&proj);
    let latent = t.path().join("l.safetensors");
    write_latent(&latent, &random_latent(1, 2, 2, 3));
    let out = t.path().join("o.safetensors");
    let empty = [("SEEDVAE_CACHE", Some(""))];
    for args in [
        vec!["engines", "gc", "--graphs"],
        vec!["engines", "list"],
        vec![
            "decode",
            "-m",
            &tiny(),
            s(&latent),
            "-o",
            s(&out),
            "--backend",
            "cpu",
        ],
    ] {
        let (code, text) = seedvae_env(&proj, &empty, &args);
        assert_ne!(code, 0, "{args:?}: {text}");
        assert!(text.contains("SEEDVAE_CACHE is set but empty"), "{text}");
        assert_eq!(
            snapshot(&proj),
            before,
            "{args:?} changed the working directory"
        );
        assert!(!out.exists());
    }
    for args in [
        vec!["engines", "gc", "--graphs", "--cache", s(&proj)],
        vec![
            "decode",
            "-m",
            &tiny(),
            s(&latent),
            "-o",
            s(&out),
            "--backend",
            "cpu",
            "--cache",
            s(&proj),
        ],
    ] {
        let (code, text) = seedvae_env(t.path(), &[], &args);
        assert_ne!(code, 0, "{args:?}: {text}");
        assert!(
            text.contains("is not a seedvae cache") && text.contains("proj"),
            "{text}"
        );
        assert_eq!(snapshot(&proj), before, "{args:?} changed the project");
    }
    // A real cache, then the user's files put into it: gc removes seedvae's, keeps theirs.
    let cache = t.path().join("cache");
    let (code, text) = seedvae_joined(&cpu("decode", &tiny(), s(&latent), s(&out), s(&cache), &[]));
    assert_eq!(code, 0, "{text}");
    assert!(cache.join(".seedvae-cache").is_file());
    std::fs::write(cache.join("graphs/mine.txt"), b"mine").unwrap();
    std::fs::create_dir_all(cache.join("engines/mine")).unwrap();
    std::fs::write(cache.join("engines/mine/x"), b"mine").unwrap();
    let (code, text) = seedvae_joined(&["engines", "gc", "--graphs", "--cache", s(&cache)]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        std::fs::read(cache.join("graphs/mine.txt")).unwrap(),
        b"mine"
    );
    assert_eq!(
        std::fs::read(cache.join("engines/mine/x")).unwrap(),
        b"mine"
    );
    let graphs: Vec<_> = std::fs::read_dir(cache.join("graphs")).unwrap().collect();
    assert_eq!(graphs.len(), 1, "seedvae's graphs were not removed: {text}");
    assert!(text.contains("left alone"), "{text}");
}

/// Finding 2: `--force` over a frames folder seedvae wrote replaces it only while it holds
/// nothing but seedvae's frames.
#[test]
fn force_never_deletes_files_added_to_a_frames_folder() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let (cache, frames) = (t.path().join("c"), t.path().join("frames"));
    let latent = t.path().join("l.safetensors");
    write_latent(&latent, &random_latent(1, 2, 2, 3));
    let w = tiny();
    let dec = cpu(
        "decode",
        &w,
        s(&latent),
        s(&frames),
        s(&cache),
        &["--force"],
    );
    let (code, text) = seedvae_joined(&dec);
    assert_eq!(code, 0, "{text}");
    let marker = std::fs::read_to_string(frames.join(".seedvae-output")).unwrap();
    assert!(marker.contains("frame_000000.png"), "{marker}");
    // Replacing seedvae's own frames works.
    let (code, text) = seedvae_joined(&dec);
    assert_eq!(code, 0, "{text}");
    for (name, is_dir) in [("notes.txt", false), ("sub", true)] {
        let p = frames.join(name);
        if is_dir {
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("x.txt"), b"mine").unwrap();
        } else {
            std::fs::write(&p, b"mine").unwrap();
        }
        let (code, text) = seedvae_joined(&dec);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains(&format!("holds '{name}'")) && text.contains("--force"),
            "{text}"
        );
        assert!(p.exists(), "{name} was deleted");
        if is_dir {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// Run `seedvae ARGS…` under `ulimit -v KIB` (and `ulimit -f FILE_KIB` when given), in `dir`:
/// (exit code or -signal, output).
fn seedvae_limited(dir: &Path, kib: u64, file_kib: Option<u64>, args: &[&str]) -> (i32, String) {
    let mut script = format!("ulimit -v {kib}; ");
    if let Some(f) = file_kib {
        script.push_str(&format!("ulimit -f {f}; "));
    }
    script.push_str("exec \"$@\"");
    let o = Command::new("bash")
        .current_dir(dir)
        .args(["-c", &script, "seedvae", env!("CARGO_BIN_EXE_seedvae")])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    #[cfg(unix)]
    let code = {
        use std::os::unix::process::ExitStatusExt;
        o.status
            .code()
            .unwrap_or_else(|| -o.status.signal().unwrap_or(0))
    };
    #[cfg(not(unix))]
    let code = o.status.code().unwrap_or(-1);
    (code, text)
}

/// A `w × h` RGB PNG of one grey `level`, written a row at a time (a 16384² one is a few
/// hundred KB on disk and 3.2 GB as f32 frames).
fn solid_png(path: &Path, w: u32, h: u32, level: u8) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut png = enc.write_header().unwrap();
    let mut s = png.stream_writer().unwrap();
    let row = vec![level; 3 * w as usize];
    for _ in 0..h {
        std::io::Write::write_all(&mut s, &row).unwrap();
    }
    s.finish().unwrap();
}

/// Finding 3: inputs and outputs too large for memory are refused with what they need and what
/// there is — never an abort in the allocator — and a tiled file output spills its accumulator
/// to disk rather than hold the whole video.
#[test]
fn too_large_for_memory_is_a_clear_error_not_an_abort() {
    let _machine = super::common::alone();
    let t = tempfile::tempdir().unwrap();
    let frames = t.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    solid_png(&frames.join("f0.png"), 16384, 16384, 0);
    let (cache, out) = (t.path().join("c"), t.path().join("o.safetensors"));
    let w = tiny();
    let enc = cpu("encode", &w, s(&frames), s(&out), s(&cache), &[]);
    let (code, text) = seedvae_limited(t.path(), 4 << 20, None, &enc);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("16384×16384") && text.contains("needs") && text.contains("available"),
        "{text}"
    );
    assert!(!out.exists());
    // [1, 16, 2, 2048, 2048]: 5 frames of 16384² decoded, 16 GB as f32. The tiled run's
    // accumulator does not fit in 4 GB: it goes to a temporary file beside the output, which
    // the 1 GB file-size limit refuses — a clear error, nothing left behind.
    let latent = t.path().join("big.safetensors");
    {
        let n = 16 * 2 * 2048 * 2048;
        let mut f = seedvae_weights::output::AtomicFile::create(&latent).unwrap();
        let header = seedvae_runner::media::safetensors::header(
            "latent",
            seedvae::DType::F16,
            &[1, 16, 2, 2048, 2048],
        );
        std::io::Write::write_all(&mut f, &header).unwrap();
        std::io::Write::write_all(&mut f, &vec![0u8; 2 * n]).unwrap();
        f.commit().unwrap();
    }
    let y4m = t.path().join("o.y4m");
    let dec = cpu("decode", &w, s(&latent), s(&y4m), s(&cache), &[]);
    let (code, text) = seedvae_limited(t.path(), 4 << 20, Some(1 << 20), &dec);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("accumulator") && text.contains("could not be written"),
        "{text}"
    );
    assert!(!y4m.exists());
    let mut left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["big.safetensors", "c", "frames"], "left behind");
}

/// Finding 5: a latent file is checked from its header before its data is read: a small latent
/// padded with 3 GB is refused within a 1 GB address-space limit.
#[test]
fn a_padded_latent_is_refused_before_it_is_read() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let latent = t.path().join("l.safetensors");
    write_latent(&latent, &random_latent(1, 2, 2, 3));
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(&latent)
        .unwrap();
    f.set_len(f.metadata().unwrap().len() + (3 << 30)).unwrap(); // sparse: no disk used
    drop(f);
    let out = t.path().join("o.safetensors");
    let (w, cache) = (tiny(), t.path().join("c"));
    let dec = cpu("decode", &w, s(&latent), s(&out), s(&cache), &[]);
    let (code, text) = seedvae_limited(t.path(), 1 << 20, None, &dec);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("trailing bytes") && text.contains("l.safetensors"),
        "{text}"
    );
}

/// Findings 6 and 7: values that cannot be frames, a frame rate of 0 and an unknown colour
/// range are refused with what to do.
#[test]
fn frames_out_of_range_a_zero_frame_rate_and_an_unknown_range_are_refused() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let (cache, out) = (t.path().join("c"), t.path().join("o.safetensors"));
    let w = tiny();
    // 0..255 levels given as a float video.
    let video = t.path().join("v.npy");
    let levels: Vec<f32> = (0..3 * 16 * 16).map(|i| (i % 256) as f32).collect();
    seedvae::write_tensor(
        &video,
        "video",
        &seedvae::Tensor::f32(vec![1, 3, 1, 16, 16], levels).unwrap(),
        seedvae::DType::F32,
        true,
    )
    .unwrap();
    let (code, text) = seedvae_joined(&cpu("encode", &w, s(&video), s(&out), s(&cache), &[]));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("values up to 255") && text.contains("x / 127.5 - 1"),
        "{text}"
    );
    assert!(!out.exists());
    // --fps 0
    let latent = t.path().join("l.safetensors");
    write_latent(&latent, &random_latent(1, 2, 2, 3));
    let y4m = t.path().join("o.y4m");
    let (code, text) = seedvae_joined(&cpu(
        "decode",
        &w,
        s(&latent),
        s(&y4m),
        s(&cache),
        &["--fps", "0"],
    ));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--fps"), "{text}");
    assert!(!y4m.exists());
    // XCOLORRANGE=WEIRD
    let clip = t.path().join("c.y4m");
    let mut bytes = b"YUV4MPEG2 W16 H16 F24:1 Ip A1:1 C444 XCOLORRANGE=WEIRD\nFRAME\n".to_vec();
    bytes.extend(vec![128u8; 3 * 16 * 16]);
    std::fs::write(&clip, bytes).unwrap();
    let (code, text) = seedvae_joined(&cpu("encode", &w, s(&clip), s(&out), s(&cache), &[]));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("XCOLORRANGE=WEIRD") && text.contains("c.y4m"),
        "{text}"
    );
}

/// Finding 11: a colour reference of any size is taken (it is resized), and one that is not
/// frames at all is named as such.
#[test]
fn colour_references_of_any_size_and_non_frames_are_told_apart() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let (cache, out) = (t.path().join("c"), t.path().join("o.safetensors"));
    let latent = t.path().join("l.safetensors");
    write_latent(&latent, &random_latent(1, 2, 2, 3));
    let reference = t.path().join("ref");
    std::fs::create_dir(&reference).unwrap();
    solid_png(&reference.join("0.png"), 5, 7, 90);
    let w = tiny();
    let fix = ["--color-fix", "adain", "--color-ref"];
    let mut args = cpu("decode", &w, s(&latent), s(&out), s(&cache), &fix);
    args.push(s(&reference));
    let (code, text) = seedvae_joined(&args);
    assert_eq!(code, 0, "{text}");
    std::fs::remove_file(&out).unwrap();
    *args.last_mut().unwrap() = "/dev/zero";
    let (code, text) = seedvae_joined(&args);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("/dev/zero") && text.contains("is not frames seedvae reads"),
        "{text}"
    );
    assert!(!out.exists());
}

/// Finding 9: `seedvae selftest` without `--fixtures` holds every row, the CPU's included, to
/// PyTorch's goldens built into seedvae (not the CPU to itself: its values are not 0).
#[test]
fn selftest_without_fixtures_holds_the_cpu_to_pytorch() {
    let _machine = super::common::sharing();
    let (code, out, err) = super::common::seedvae(&["selftest", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(r["reference"].as_str().unwrap().contains("PyTorch"), "{r}");
    let cpu: Vec<_> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["backend"] == "cpu fp32")
        .collect();
    assert_eq!(cpu.len(), 9, "{cpu:?}");
    for c in cpu {
        let v = c["value"].as_f64().unwrap();
        assert!(c["status"] == "pass" && v > 1e-8 && v <= 1e-5, "{c}");
    }
}

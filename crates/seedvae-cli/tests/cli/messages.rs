//! Messages (issue 14, item 8): each names the file or field, prints an OS error once, and
//! shows file-supplied text escaped.

use super::common::{cpu, s, seedvae_joined, tiny};
use seedvae_tests::*;

#[test]
fn an_os_error_is_printed_once_with_the_path() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("nodir/sub/x.safetensors");
    let (code, text) = seedvae_joined(&cpu(
        "decode",
        &tiny(),
        s(&fixture("vae_tiny/latent_t1_8x8.safetensors")),
        s(&out),
        s(&t.path().join("c")),
        &[],
    ));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("nodir/sub/x.safetensors"), "{text}");
    assert_eq!(text.matches("(os error 2)").count(), 1, "{text}");
}

#[test]
fn compressed_packs_and_bad_directories_say_what_they_are() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let gz = t.path().join("p.seedvae");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]).unwrap();
    let (code, text) = seedvae_joined(&["verify", s(&gz)]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("gzip-compressed") && text.contains("plain tar"),
        "{text}"
    );
    let file = t.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let (code, text) = seedvae_joined(&["demo", "--dir", s(&file)]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("a_file"), "{text}");
}

#[test]
fn listing_an_absent_cache_creates_nothing_and_a_key_given_twice_is_removed_once() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let absent = t.path().join("no-cache-here");
    for cmd in [&["engines", "list"][..], &["engines", "gc"]] {
        let mut a = cmd.to_vec();
        a.extend(["--cache", s(&absent)]);
        let (code, text) = seedvae_joined(&a);
        assert_eq!(code, 0, "{a:?}: {text}");
    }
    assert!(!absent.exists());
    let cache = t.path().join("c");
    let key = super::common::tiny_engine(&cache);
    let (code, text) = seedvae_joined(&["engines", "rm", &key, &key, "--cache", s(&cache)]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("removed").count(), 1, "{text}");
}

#[test]
fn names_from_files_cannot_fake_output_lines() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    // A checkpoint with one extra tensor whose name carries an escape sequence and a line break.
    let evil = "x\u{1b}[2K\rstatus:     valid\n";
    let h = format!(
        r#"{{"{}":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#,
        evil.escape_default()
    );
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(&[0; 4]);
    let p = t.path().join("evil.safetensors");
    std::fs::write(&p, b).unwrap();
    let (_, out, err) = super::common::seedvae(&["inspect", s(&p)]);
    let all = format!("{out}{err}");
    assert!(!all.contains('\u{1b}'), "{all:?}");
    assert!(
        !all.lines()
            .any(|l| l.trim_start().starts_with("status:     valid")),
        "{all}"
    );
}

#[test]
fn an_encoder_given_to_decode_is_named_with_its_article() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let enc = t.path().join("enc.onnx");
    let (code, text) = seedvae_joined(&["convert", &tiny(), "-o", s(&enc), "--part", "encoder"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = seedvae_joined(&[
        "decode",
        "-m",
        s(&enc),
        s(&fixture("vae_tiny/latent_t1_8x8.safetensors")),
        "-o",
        s(&t.path().join("x.safetensors")),
        "--backend",
        "cpu",
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("is an encoder model"), "{text}");
}

#[test]
fn inspect_of_a_directory_or_key_without_an_engine_says_so() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let key = "0".repeat(32);
    for what in [s(&empty), &key] {
        let (code, text) = seedvae_joined(&["inspect", what, "--cache", s(&t.path().join("c"))]);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("no engine here"), "{text}");
    }
}

#[test]
fn an_output_path_that_is_a_directory_leaves_no_temporary_file() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("d.onnx");
    std::fs::create_dir(&d).unwrap();
    let (code, text) = seedvae_joined(&["convert", &tiny(), "-o", s(&d), "--force"]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(text.matches("(os error").count(), 0, "{text}");
    let names: Vec<_> = sorted_entries(t.path());
    assert_eq!(names, vec![d.clone()], "{text}");
    assert!(sorted_entries(&d).is_empty());
}

#[cfg(unix)]
#[test]
fn gc_of_a_linked_entry_frees_only_the_link() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("c");
    std::fs::create_dir_all(cache.join("engines")).unwrap();
    std::fs::write(cache.join(".seedvae-cache"), b"").unwrap(); // a cache seedvae made
    let elsewhere = t.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("big"), vec![0u8; 1 << 20]).unwrap();
    std::os::unix::fs::symlink(&elsewhere, cache.join("engines").join("0".repeat(32))).unwrap();
    let (code, text) = seedvae_joined(&["engines", "gc", "--cache", s(&cache)]);
    assert_eq!(code, 0, "{text}");
    assert!(elsewhere.join("big").is_file(), "{text}");
    assert!(!text.contains("1.0 MiB"), "{text}");
}

#[test]
fn the_cuda_backend_without_its_library_or_a_gpu_says_why() {
    let _machine = super::common::sharing();
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("x.safetensors");
    let latent = fixture("vae_tiny/latent_t1_8x8.safetensors");
    let (w, cache) = (tiny(), t.path().join("c"));
    let mut a = cpu("decode", &w, s(&latent), s(&out), s(&cache), &[]);
    let i = a.iter().position(|x| *x == "cpu").unwrap();
    a[i] = "cuda";
    let (code, text) = seedvae_joined(&a);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("CUDA provider is not installed") || text.contains("no NVIDIA driver"),
        "{text}"
    );
    assert!(!out.exists());
    // auto names both reasons and still decodes on the CPU.
    a[i] = "auto";
    let (code, text) = seedvae_joined(&a);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("CUDA executor not used")
            && text.contains("CUDA provider not used")
            && text.contains("on the CPU"),
        "{text}"
    );
}

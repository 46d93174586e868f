//! `seedvae convert` end to end, and its refusals: each leaves nothing behind.

use super::common::seedvae_joined as seedvae;
use seedvae_tests::*;
use std::path::Path;

fn files(dir: &Path) -> Vec<String> {
    sorted_entries(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn converts_and_refuses_to_overwrite_without_force() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dec.onnx");
    let w = fixture("vae_tiny/weights.safetensors");
    let (code, text) = seedvae(&[
        "convert",
        w.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--streaming",
        "--precision",
        "fp16",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("33 state pairs"), "{text}");
    let before = std::fs::read(&out).unwrap();
    let (code, text) = seedvae(&["convert", w.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("already exists") && text.contains("--force"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "refused overwrite changed the file"
    );
    let (code, text) = seedvae(&[
        "convert",
        w.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(files(dir.path()), vec!["dec.onnx"]);
}

#[test]
fn missing_decoder_tensors_are_named_and_nothing_is_written() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    // An encoder-only file, and one with one decoder tensor missing.
    for (name, keep) in [
        (
            "encoder_only.safetensors",
            Box::new(|n: &str| n.starts_with("encoder.")) as Box<dyn Fn(&str) -> bool>,
        ),
        (
            "no_conv_out.safetensors",
            Box::new(|n: &str| n != "decoder.conv_out.weight"),
        ),
    ] {
        let p = dir.path().join(name);
        write_subset(&fixture("vae_tiny/weights.safetensors"), &p, keep);
        let out = dir.path().join("out.onnx");
        let (code, text) = seedvae(&[
            "convert",
            p.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--part",
            "decoder",
        ]);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains(name), "{text}");
        if name.starts_with("encoder") {
            assert!(text.contains("no decoder tensors"), "{text}");
            // ...while its encoder converts fine.
            let (code, text) = seedvae(&[
                "convert",
                p.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--part",
                "encoder",
            ]);
            assert_eq!(code, 0, "{text}");
            std::fs::remove_file(&out).unwrap();
        } else {
            assert!(
                text.contains("missing tensor 'decoder.conv_out.weight'")
                    && text.contains("[3, 32, 3, 3, 3]"),
                "{text}"
            );
        }
        assert!(!out.exists());
        std::fs::remove_file(&p).unwrap();
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }
}

#[test]
fn unwritable_output_is_a_clear_error() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let w = fixture("vae_tiny/weights.safetensors");
    let blocker = dir.path().join("a_file");
    std::fs::write(&blocker, b"x").unwrap();
    for out in [
        dir.path().join("no/such/dir/x.onnx"),
        blocker.join("x.onnx"),
    ] {
        let (code, text) = seedvae(&["convert", w.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_eq!(code, 1, "{text}");
        assert!(
            text.contains("x.onnx") && text.contains("does not exist"),
            "{text}"
        );
    }
    assert_eq!(files(dir.path()), vec!["a_file"]);
}

#[test]
fn inspect_prints_a_graph_contract() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("enc.onnx");
    let w = fixture("vae_tiny/weights.safetensors");
    let (code, text) = seedvae(&[
        "convert",
        w.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--part",
        "encoder",
        "--streaming",
    ]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = seedvae(&["inspect", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("encoder fp32, streaming")
            && text.contains("24 pairs")
            && text.contains("latent_logvar"),
        "{text}"
    );
    let (code, text) = seedvae(&["inspect", "--json", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("\"continuation\": \"continuation\""),
        "{text}"
    );
    std::fs::write(&out, b"not a model").unwrap();
    let (code, text) = seedvae(&["inspect", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("enc.onnx") && text.contains("not an ONNX model"),
        "{text}"
    );
}

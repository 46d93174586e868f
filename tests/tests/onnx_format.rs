//! Exported files as ONNX: the official checker (full_check) on every form, and external data.

use seedvae_onnx::{ExportOptions, Precision};
use seedvae_runner::{Backend, OrtBackend, Tensor};
use seedvae_tests::*;
use seedvae_weights::{Part, WeightFile};

#[test]
fn every_exported_form_passes_the_onnx_checker() {
    let dir = tempfile::tempdir().unwrap();
    let w = WeightFile::open(fixture("vae_tiny/weights.safetensors")).unwrap();
    let paths: Vec<String> = export_all_forms(&w, dir.path())
        .into_iter()
        .map(|(p, _)| p.to_str().unwrap().to_string())
        .collect();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let out = run_oracle("onnx_check.py", &args);
    assert_eq!(out.matches(": ok ir=10 opset=21").count(), 8, "{out}");
    assert!(
        out.contains("inputs=35 outputs=34"),
        "decoder streaming has 33 state pairs: {out}"
    );
    assert!(
        out.contains("inputs=26 outputs=26"),
        "encoder streaming has 24 state pairs: {out}"
    );
}

#[test]
fn external_data_models_load_and_match_inline_ones() {
    let dir = tempfile::tempdir().unwrap();
    let w = WeightFile::open(fixture("vae_tiny/weights.safetensors")).unwrap();
    let opts = ExportOptions {
        part: Part::Decoder,
        precision: Precision::Fp32,
        streaming: false,
    };
    let (g, c) = seedvae_onnx::export::build(&w, opts).unwrap();
    let md = seedvae_onnx::metadata(&w, w.content_hash(), &c);
    let inline = dir.path().join("inline.onnx");
    let ext = dir.path().join("ext.onnx");
    let s1 = seedvae_onnx::write::write_model(&g, || Ok(md.clone()), &inline, u64::MAX, |_, _| {})
        .unwrap();
    let s2 = seedvae_onnx::write::write_model(&g, || Ok(md.clone()), &ext, 0, |_, _| {}).unwrap();
    assert_eq!(s1.external_bytes, 0);
    let weights: u64 = g
        .inits
        .iter()
        .map(|i| i.nbytes())
        .filter(|&n| n >= seedvae_onnx::write::INLINE_BELOW)
        .map(|n| n as u64)
        .sum();
    assert!(
        s2.external_bytes >= weights && s2.model_bytes < 1 << 20,
        "{s2:?} vs {weights} weight bytes"
    );
    assert!(dir.path().join("ext.onnx.data").exists());
    let out = run_oracle("onnx_check.py", &[ext.to_str().unwrap()]);
    assert!(out.contains("ok"), "{out}");
    let (s, v) = fixture_tensor("vae_tiny/latent_t1_8x8.safetensors", "latent");
    let z = Tensor::f32(s, v.iter().map(|&x| x as f32).collect()).unwrap();
    let a = OrtBackend::open(&inline, 2)
        .unwrap()
        .run(&[("latent", &z)])
        .unwrap()
        .remove("video")
        .unwrap();
    let b = OrtBackend::open(&ext, 2)
        .unwrap()
        .run(&[("latent", &z)])
        .unwrap()
        .remove("video")
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn contract_is_recorded_in_the_model_and_foreign_models_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let w = WeightFile::open(fixture("vae_tiny/weights.safetensors")).unwrap();
    let p = dir.path().join("d.onnx");
    let opts = ExportOptions {
        part: Part::Decoder,
        precision: Precision::Fp16,
        streaming: true,
    };
    let (c, _) = seedvae_onnx::convert(&w, opts, &p, |_, _| {}).unwrap();
    let (read, md) = seedvae_onnx::read_contract(&p).unwrap();
    assert_eq!(read, c);
    let get = |k: &str| {
        md.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get(seedvae_onnx::meta::SOURCE_HASH), w.content_hash());
    assert_eq!(get(seedvae_onnx::meta::PRECISION), "fp16");
    assert_eq!(get(seedvae_onnx::meta::STREAMING), "true");
    assert_eq!(c.states[0].input, "state_in.decoder.conv_in");
    assert_eq!(c.states.last().unwrap().conv, "decoder.conv_out");
    // An ONNX file from elsewhere (no seedvae metadata) and a non-ONNX file.
    let foreign = dir.path().join("foreign.onnx");
    std::fs::write(&foreign, [0x08, 0x07]).unwrap(); // ModelProto { ir_version: 7 }
    let e = seedvae_onnx::read_contract(&foreign)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a seedvae model") && e.contains("foreign.onnx"),
        "{e}"
    );
    std::fs::write(&foreign, b"\xff\xff\xff garbage").unwrap();
    let e = seedvae_onnx::read_contract(&foreign)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an ONNX model"), "{e}");
}

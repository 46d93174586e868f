//! `seedvae inspect` on broken files: each case must exit non-zero without a panic, with a
//! message naming the file and, where one is involved, the tensor.

use super::common::seedvae;
use seedvae_tests::*;
use seedvae_weights::gguf::{Value, Writer};
use seedvae_weights::GgmlType;
use std::path::Path;

/// Inspect `bytes` written as `name`; assert failure and that the output mentions every `needle`.
fn expect_rejected(name: &str, bytes: &[u8], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    let (code, out, err) = seedvae(&["inspect", p.to_str().unwrap()]);
    let all = format!("{out}{err}");
    assert_eq!(code, 1, "{name}: exit {code}\n{all}");
    assert!(!all.contains("panicked"), "{name}: panic\n{all}");
    assert!(
        all.contains(name),
        "{name}: message does not name the file\n{all}"
    );
    for n in needles {
        assert!(all.contains(n), "{name}: message lacks {n:?}\n{all}");
    }
}

fn tiny() -> Vec<u8> {
    std::fs::read(fixture("vae_tiny/weights.safetensors")).unwrap()
}

fn entry<'a>(
    m: &'a mut serde_json::Map<String, serde_json::Value>,
    n: &str,
) -> &'a mut serde_json::Value {
    m.get_mut(n).unwrap()
}

#[test]
fn valid_fixture_passes() {
    let _machine = super::common::sharing();
    let (code, out, _) = seedvae(&[
        "inspect",
        fixture("vae_tiny/weights.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("246") && out.contains("4,222,723") && out.contains("valid"),
        "{out}"
    );
}

#[test]
fn safetensors_container_corruption() {
    let _machine = super::common::sharing();
    let t = tiny();
    expect_rejected("truncated.safetensors", &t[..t.len() - 100], &["truncated"]);
    let mut h = t.clone();
    h[..8].copy_from_slice(&(t.len() as u64).to_le_bytes());
    expect_rejected(
        "header_past_eof.safetensors",
        &h,
        &["header length", "past the end"],
    );
    let f = edit_safetensors_header(&t, |m| {
        entry(m, "decoder.conv_in.bias")["data_offsets"] = serde_json::json!([0u64, 1u64 << 40]);
    });
    expect_rejected(
        "offset_range.safetensors",
        &f,
        &["decoder.conv_in.bias", "past the data section"],
    );
    let f = edit_safetensors_header(&t, |m| {
        let other = m["decoder.conv_in.bias"]["data_offsets"].clone();
        entry(m, "decoder.conv_in.weight")["data_offsets"][0] = other[0].clone();
        entry(m, "decoder.conv_in.weight")["data_offsets"][1] =
            serde_json::json!(other[0].as_u64().unwrap() + 110592);
    });
    expect_rejected("overlap.safetensors", &f, &["overlap"]);
    let f = edit_safetensors_header(&t, |m| {
        entry(m, "decoder.conv_in.bias")["dtype"] = "F8_E5M2".into()
    });
    expect_rejected(
        "dtype.safetensors",
        &f,
        &["decoder.conv_in.bias", "unsupported dtype 'F8_E5M2'"],
    );
    expect_rejected(
        "garbage.safetensors",
        b"this is not a checkpoint at all",
        &["header length"],
    );
}

#[test]
fn safetensors_schema_problems_are_all_reported() {
    let _machine = super::common::sharing();
    let t = tiny();
    let f = edit_safetensors_header(&t, |m| {
        let v = m.remove("decoder.conv_out.bias").unwrap();
        m.insert("decoder.conv_out.bias_renamed".into(), v);
    });
    expect_rejected(
        "renamed.safetensors",
        &f,
        &[
            "missing tensor 'decoder.conv_out.bias'",
            "unexpected tensor 'decoder.conv_out.bias_renamed'",
        ],
    );
    let f = edit_safetensors_header(&t, |m| {
        entry(m, "decoder.mid_block.attentions.0.to_q.weight")["shape"] =
            serde_json::json!([4096, 1]);
    });
    expect_rejected(
        "misshaped.safetensors",
        &f,
        &[
            "decoder.mid_block.attentions.0.to_q.weight",
            "[4096, 1]",
            "expected [64, 64]",
        ],
    );
    // A missing tensor: rebuild the file without it (a header-only removal would leave a gap).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("subset.safetensors");
    write_subset(&fixture("vae_tiny/weights.safetensors"), &p, |n| {
        n != "encoder.conv_out.weight"
    });
    let bytes = std::fs::read(&p).unwrap();
    expect_rejected(
        "missing.safetensors",
        &bytes,
        &[
            "missing tensor 'encoder.conv_out.weight'",
            "[32, 64, 3, 3, 3]",
        ],
    );
}

fn small_gguf(edit: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut g = Writer::new();
    g.metadata
        .push(("general.name".into(), Value::String("t".into())));
    g.add("decoder.conv_out.bias", &[3], GgmlType::F32, vec![0; 12]);
    g.add(
        "decoder.conv_in.weight",
        &[64, 16, 3, 3, 3],
        GgmlType::F16,
        vec![0; 64 * 16 * 27 * 2],
    );
    edit(&mut g);
    let mut out = Vec::new();
    g.write(&mut out).unwrap();
    out
}

/// Byte offset of the type field of tensor `name` in a file written by `Writer`.
fn type_field(bytes: &[u8], name: &str) -> usize {
    let pos = bytes
        .windows(name.len())
        .position(|w| w == name.as_bytes())
        .unwrap()
        + name.len();
    let nd = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
    pos + 4 + 8 * nd
}

#[test]
fn gguf_corruption() {
    let _machine = super::common::sharing();
    let good = small_gguf(|_| {});
    let mut f = good.clone();
    f[..4].copy_from_slice(b"GGUX");
    expect_rejected("bad_magic.gguf", &f, &["not a GGUF file", "GGUX"]);
    let mut f = good.clone();
    f[4..8].copy_from_slice(&7u32.to_le_bytes());
    expect_rejected("version.gguf", &f, &["unsupported GGUF version 7"]);
    let mut f = good.clone();
    let at = type_field(&f, "decoder.conv_in.weight");
    f[at..at + 4].copy_from_slice(&23u32.to_le_bytes());
    expect_rejected(
        "qtype.gguf",
        &f,
        &["decoder.conv_in.weight", "unsupported tensor type IQ4_XS"],
    );
    let f = small_gguf(|g| {
        g.metadata.push((
            "comfy.gguf.orig_shape.decoder.conv_out.bias".into(),
            Value::Array(vec![Value::I32(2), Value::I32(2)]),
        ));
    });
    expect_rejected(
        "orig_shape.gguf",
        &f,
        &["decoder.conv_out.bias", "[2, 2] has 4 elements", "has 3"],
    );
    expect_rejected(
        "short_data.gguf",
        &good[..good.len() - 64],
        &["decoder.conv_in.weight", "runs past the end"],
    );
}

#[test]
fn synth_full_fp16_is_the_real_size_and_valid() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("full.safetensors");
    let (code, _, err) = seedvae(&["synth", "-o", p.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 501_324_894);
    let (code, out, err) = seedvae(&["inspect", "--json", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["tensors"], 250);
    assert_eq!(j["parameters"], 250_648_227u64);
    assert_eq!(j["valid"], true);
    assert_eq!(j["variant_text"], "full, encoder + decoder");
    // Refuses to overwrite without --force.
    let (code, _, err) = seedvae(&["synth", "-o", p.to_str().unwrap(), "--width", "tiny"]);
    assert_eq!(code, 1);
    assert!(err.contains("--force"), "{err}");
    assert!(Path::new(&p).exists());
}

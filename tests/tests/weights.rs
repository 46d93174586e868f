//! Weights: fixtures in all three layouts, every GGUF block type against gguf-py, the schema
//! against the spec's tensor table, and synth round trips.

use seedvae_tests::*;
use seedvae_weights::schema::{Model, Part};
use seedvae_weights::synth::{synth, SynthFormat, SynthOptions};
use seedvae_weights::{DType, WeightFile};

#[test]
fn schema_matches_the_spec_tensor_table_in_order() {
    let tsv = std::fs::read_to_string(shared_dir().join("spec/seedvr2_vae_tensors.tsv")).unwrap();
    let rows: Vec<(String, Vec<usize>)> = tsv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), serde_json::from_str(f[1]).unwrap())
        })
        .collect();
    let ours: Vec<(String, Vec<usize>)> = Model::default()
        .all_tensors()
        .into_iter()
        .map(|s| (s.name, s.shape))
        .collect();
    assert_eq!(rows.len(), 250);
    assert_eq!(ours, rows);
}

#[test]
fn fixtures_load_to_the_same_246_tensors_in_all_layouts() {
    let st = WeightFile::open(fixture("vae_tiny/weights.safetensors")).unwrap();
    let f16 = WeightFile::open(fixture("vae_tiny_gguf/tiny_native5d_f16.gguf")).unwrap();
    let q8 = WeightFile::open(fixture("vae_tiny_gguf/tiny_origshape_q8.gguf")).unwrap();
    for w in [&st, &f16, &q8] {
        let r = w.report();
        assert!(
            r.problems.is_empty(),
            "{}: {:?}",
            w.path.display(),
            r.problems
        );
        assert_eq!(w.tensors().len(), 246);
        assert_eq!(r.model.widths, [32, 32, 64, 64]);
    }
    let mut names: Vec<_> = st.shapes();
    names.sort();
    for (other, tol) in [(&f16, 2.5e-4), (&q8, 3e-3)] {
        let mut o = other.shapes();
        o.sort();
        assert_eq!(o, names, "{}", other.path.display());
        let mut worst = 0f64;
        for (n, _) in &names {
            let a: Vec<f64> = st.f32(n).unwrap().iter().map(|&x| x as f64).collect();
            let b: Vec<f64> = other.f32(n).unwrap().iter().map(|&x| x as f64).collect();
            worst = worst.max(max_abs_diff(&b, &a));
        }
        eprintln!(
            "{}: max abs weight error {worst:.3e} (limit {tol:.1e})",
            other.path.display()
        );
        assert!(worst <= tol, "{}: {worst} > {tol}", other.path.display());
        assert!(worst > 0.0, "a quantized layout cannot be bit-exact");
    }
}

#[test]
fn every_gguf_block_type_matches_gguf_py() {
    let dir = tempfile::tempdir().unwrap();
    run_oracle("gguf_cases.py", &[dir.path().to_str().unwrap(), "7"]);
    let cases = WeightFile::open(dir.path().join("cases.gguf")).unwrap();
    let oracle = WeightFile::open(dir.path().join("oracle.safetensors")).unwrap();
    let mut types: Vec<String> = cases.tensors().iter().map(|t| t.stored.clone()).collect();
    types.sort();
    types.dedup();
    let want = [
        "BF16", "F16", "F32", "Q2_K", "Q3_K", "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K",
        "Q6_K", "Q8_0",
    ];
    assert_eq!(types, want);
    assert_eq!(cases.tensors().len(), oracle.tensors().len());
    for t in cases.tensors() {
        let o = oracle
            .get(&t.name)
            .unwrap_or_else(|| panic!("oracle lacks {}", t.name));
        assert_eq!(t.shape, o.shape, "{}", t.name);
        let a: Vec<f64> = cases
            .f32(&t.name)
            .unwrap()
            .iter()
            .map(|&x| x as f64)
            .collect();
        let b = oracle.f64(&t.name).unwrap();
        let scale = b.iter().fold(1f64, |m, x| m.max(x.abs()));
        let d = max_abs_diff(&a, &b);
        assert!(
            d <= 1e-6 * scale,
            "{} ({}): max abs diff {d} vs gguf-py",
            t.name,
            t.stored
        );
        assert!(
            b.iter().any(|&x| x != 0.0),
            "{}: oracle is all zeros, the case proves nothing",
            t.name
        );
    }
    assert_eq!(
        cases.get("five_d.Q8_0").unwrap().shape,
        vec![4, 2, 3, 1, 32]
    );
    assert_eq!(cases.get("five_d.F16").unwrap().shape, vec![4, 2, 3, 1, 32]);
}

#[test]
fn synth_is_deterministic_and_gguf_equals_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model {
        widths: [32, 32, 64, 64],
    };
    let mk = |name: &str, format, seed| {
        let p = dir.path().join(name);
        synth(
            &p,
            &SynthOptions {
                model,
                dtype: DType::F32,
                seed,
                format,
            },
            |_, _| {},
        )
        .unwrap();
        WeightFile::open(p).unwrap()
    };
    let a = mk("a.safetensors", SynthFormat::SafeTensors, 3);
    let b = mk("b.gguf", SynthFormat::Gguf, 3);
    let c = mk("c.safetensors", SynthFormat::SafeTensors, 4);
    assert!(a.report().problems.is_empty() && b.report().problems.is_empty());
    let n = "decoder.up_blocks.0.upsamplers.0.upscale_conv.weight";
    assert_eq!(a.f32(n).unwrap(), b.f32(n).unwrap());
    assert_ne!(a.f32(n).unwrap(), c.f32(n).unwrap());
    // The fixture recipe: GroupNorm weights centred at 1, conv weights ~ 1/sqrt(fan_in).
    let g = a.f32("decoder.conv_norm_out.weight").unwrap();
    let mean = g.iter().sum::<f32>() / g.len() as f32;
    assert!((mean - 1.0).abs() < 0.1, "{mean}");
    assert_eq!(b.model_for(Part::Decoder).unwrap(), model);
}

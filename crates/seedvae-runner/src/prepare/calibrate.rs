//! Activation ranges for FP8 quantization: run the fp32 graph on the CPU over calibration
//! inputs and record, for every quantization site, the largest |value| of its input.

use crate::backend::Backend;
use crate::tensor::Tensor;
use crate::{Error, OrtBackend};
use seedvae_onnx::{quantize, ExportOptions, Precision};
use seedvae_weights::{Part, WeightFile};
use std::collections::HashMap;

/// amax per site node name, over all `inputs` (each `[1, C, T, H, W]` for `part`'s input).
pub fn calibrate(
    w: &WeightFile,
    part: Part,
    inputs: &[Tensor],
    keep: &[String],
) -> Result<HashMap<String, f32>, Error> {
    if inputs.is_empty() {
        return Err(Error::Input("calibration needs at least one input".into()));
    }
    let (mut g, c) = seedvae_onnx::export::build(
        w,
        ExportOptions {
            part,
            precision: Precision::Fp32,
            streaming: false,
        },
    )?;
    let sites = quantize::sites(&g, keep);
    let outs = quantize::expose_activations(&mut g, &sites);
    let path =
        seedvae_weights::output::temp_path(&std::env::temp_dir().join("seedvae-calibration.onnx"));
    let md = seedvae_onnx::metadata(w, String::new(), &c);
    let result = (|| {
        seedvae_onnx::write::write_model(&g, || Ok(md), &path, u64::MAX, |_, _| {})?;
        let mut b = OrtBackend::open(&path, 0)?;
        let name = c.inputs[0].name.clone();
        let mut amax: HashMap<String, f32> = HashMap::new();
        for x in inputs {
            let out = b.run(&[(name.as_str(), x)])?;
            for (node, o) in &outs {
                let t = out
                    .get(o)
                    .ok_or_else(|| Error::Backend(format!("calibration output {o} missing")))?;
                let m = t.to_f32().iter().fold(0f32, |m, v| m.max(v.abs()));
                let e = amax.entry(node.clone()).or_insert(0.0);
                *e = e.max(m);
            }
        }
        Ok(amax)
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Export `part` of `w` as an FP8 graph: the `precision` graph (fp16 for engines) with Q/DQ at
/// every site outside `keep`, activation ranges calibrated on `inputs`. Written to `out`.
pub fn export_fp8(
    w: &WeightFile,
    opts: ExportOptions,
    inputs: &[Tensor],
    keep: &[String],
    out: &std::path::Path,
) -> Result<(seedvae_onnx::Contract, quantize::QdqStats), Error> {
    let amax = calibrate(w, opts.part, inputs, keep)?;
    let (mut g, c) = seedvae_onnx::export::build(w, opts)?;
    let sites = quantize::sites(&g, keep);
    let stats = quantize::insert_fp8(&mut g, &sites, &amax)?;
    let md = || {
        let mut md = seedvae_onnx::metadata(w, w.content_hash(), &c);
        md.push((seedvae_onnx::meta::QUANTIZATION.into(), "fp8-e4m3".into()));
        Ok(md)
    };
    seedvae_onnx::write::write_model(
        &g,
        md,
        out,
        seedvae_onnx::write::EXTERNAL_DATA_THRESHOLD,
        |_, _| {},
    )?;
    Ok((c, stats))
}

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
        seedvae_weights::atomic::temp_path(&std::env::temp_dir().join("seedvae-calibration.onnx"));
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
